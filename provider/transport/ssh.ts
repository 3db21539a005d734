import { createHash } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { connect as netConnect, type Socket } from "node:net";
import type { Duplex } from "node:stream";
import { Client, utils, type ConnectConfig } from "ssh2";
import { type Connection, connectionLabel } from "../connection";
import { ConnectionError, NetdevError } from "../errors";
import { verifyHostKey } from "./hostkey";
import { shellCommand } from "./quote";
import { RemoteShell } from "./shell";
import type { RunOptions, RunResult, Transport } from "./types";

/** sshd's default MaxSessions is 10; stay under it so a busy stack never sees "open failed". */
export const MAX_CHANNELS_PER_CONNECTION = 8;
const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;
const DIAL_ATTEMPTS = 3;

/** Counts of what the pool has done, for tests and the benchmark. */
export const sshStats = { connectionsOpened: 0, commandsRun: 0 };

type AuthMethod = "publickey" | "agent" | "password";

/**
 * One pooled SSH connection to (user, host, port, credentials, host-key policy,
 * bastion chain). Commands run in worker shells (shell.ts), one per session
 * channel, with bounded concurrency.
 * The socket is unref'd while no command is running (for a bastion: while nothing
 * runs through it), so the pool never keeps the provider host process alive.
 */
class PooledConnection {
  private client?: Client;
  private connecting?: Promise<Client>;
  private socket?: Socket;
  private active = 0;
  private waiting: (() => void)[] = [];
  private holders = 0;
  /** Idle worker shells (see shell.ts) of `shellsOf`, the current client. */
  private idleShells: RemoteShell[] = [];
  private shellsOf?: Client;

  constructor(
    public config: Connection,
    private readonly bastion?: PooledConnection,
  ) {}

  get label(): string {
    return connectionLabel(this.config);
  }

  /**
   * `secretStdin`: the input holds a secret (a sudo password). It then goes over a
   * one-off exec channel's stream instead of a worker shell's here-document, which
   * shells older than bash 5.1 (RHEL 8's /bin/sh) write to a temporary file.
   */
  async run(command: string, stdin: string | undefined, secretStdin = false): Promise<RunResult> {
    await this.acquireSlot();
    this.hold();
    try {
      for (let attempt = 0; ; attempt++) {
        const client = await this.connected();
        try {
          if (secretStdin) {
            sshStats.commandsRun++;
            return await execOnce(client, command, stdin, () => this.error("the SSH connection closed before the command finished"));
          }
          const shell = await this.shell(client);
          sshStats.commandsRun++;
          try {
            return await shell.run(command, stdin);
          } finally {
            if (shell.usable) this.idleShells.push(shell);
          }
        } catch (err) {
          if (!(err as { notStarted?: boolean }).notStarted) throw err;
          // The channel never opened, so the command did not run: reconnecting and
          // retrying is safe. A command that started is never retried. (sshd may
          // still count just-closed sessions against MaxSessions for a moment.)
          if (attempt >= 3) throw this.error(`cannot open an SSH session: ${(err as Error).message}`);
          if (this.client === client && attempt >= 1) this.drop(client);
          await sleep(100 * (attempt + 1));
        }
      }
    } finally {
      this.release();
      this.releaseSlot();
    }
  }

  /** An idle worker shell of this client, or a new one (at most one per slot). */
  private async shell(client: Client): Promise<RemoteShell> {
    if (this.shellsOf !== client) {
      this.idleShells = [];
      this.shellsOf = client;
    }
    for (let s = this.idleShells.pop(); s; s = this.idleShells.pop()) if (s.usable) return s;
    return RemoteShell.open(client, () => this.error("the SSH connection closed before the command finished"));
  }

  /** Opens a forwarded TCP stream through this connection (used when it is a bastion). */
  async forward(host: string, port: number, timeoutMs: number): Promise<Duplex> {
    // Errors of this connection itself (refused, untrusted host key, auth) already name this host.
    const client = await this.connected();
    return await new Promise<Duplex>((resolve, reject) => {
      let settled = false;
      const timer = setTimeout(() => {
        settled = true;
        reject(this.error(`bastion could not connect to ${host}:${port} within ${timeoutMs} ms (connectTimeoutMs)`));
      }, timeoutMs);
      client.forwardOut("127.0.0.1", 0, host, port, (err, stream) => {
        clearTimeout(timer);
        if (settled) return stream?.destroy();
        settled = true;
        if (!err) return resolve(stream);
        // sshd reports the target's refusal as "Connection refused": retried like a direct dial.
        reject(this.error(`bastion could not connect to ${host}:${port}: ${err.message}`, /refused/i.test(err.message)));
      });
    });
  }

  /** A ConnectionError naming this host, with every secret of the connection masked. */
  error(message: string, retryable = false): ConnectionError {
    const e = new ConnectionError(redact(`${this.label}: ${message}`, this.config)) as ConnectionError & { retryable?: boolean };
    e.retryable = retryable;
    return e;
  }

  private hold(): void {
    if (this.holders++ === 0) {
      this.socket?.ref();
      this.bastion?.hold();
    }
  }

  private release(): void {
    if (--this.holders === 0) {
      this.socket?.unref();
      this.bastion?.release();
    }
  }

  private async acquireSlot(): Promise<void> {
    if (this.active < MAX_CHANNELS_PER_CONNECTION) {
      this.active++;
      return;
    }
    await new Promise<void>((resolve) => this.waiting.push(resolve));
  }

  private releaseSlot(): void {
    const next = this.waiting.shift();
    if (next) next();
    else this.active--;
  }

  private connected(): Promise<Client> {
    if (this.client) return Promise.resolve(this.client);
    if (!this.connecting) {
      this.connecting = this.dialWithRetry().finally(() => (this.connecting = undefined));
    }
    return this.connecting;
  }

  private drop(client: Client): void {
    if (this.client === client) this.client = undefined;
    client.end();
  }

  close(): void {
    if (this.client) this.drop(this.client);
  }

  /** Destroys the connection at once: commands still waiting on it fail instead of holding the process. */
  abandon(): void {
    const client = this.client;
    this.client = undefined;
    client?.destroy();
  }

  private async dialWithRetry(): Promise<Client> {
    for (let attempt = 1; ; attempt++) {
      try {
        const client = await this.dial();
        this.client = client;
        return client;
      } catch (err) {
        // Refused or reset connections are retried (sshd restarting); timeouts,
        // auth failures and host-key refusals are final.
        const retryable = (err as ConnectionError & { retryable?: boolean }).retryable;
        if (!retryable || attempt >= DIAL_ATTEMPTS) throw err;
        await sleep(250 * 4 ** (attempt - 1));
      }
    }
  }

  private async dial(): Promise<Client> {
    const c = this.config;
    const port = c.port ?? 22;
    const timeout = c.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
    const deadline = Date.now() + timeout;
    // Credentials are checked before any socket exists, so a bad key never leaks one.
    const opts: ConnectConfig = { username: c.user ?? "root", ...this.credentials() };
    const methods = opts.authHandler as AuthMethod[];
    let sock: Duplex;
    if (this.bastion) {
      sock = await this.bastion.forward(c.host, port, timeout);
    } else {
      const socket = await openSocket(c.host, port, timeout, this);
      this.socket = socket;
      if (this.holders === 0) socket.unref();
      sock = socket;
    }
    let refusal: string | undefined;
    let agentFailure: string | undefined;
    const client = new Client();
    opts.sock = sock;
    opts.readyTimeout = Math.max(1, deadline - Date.now());
    opts.hostVerifier = (key: Buffer) => {
      refusal = verifyHostKey(this.label, c.host, port, key, c);
      return refusal === undefined;
    };
    return await new Promise<Client>((resolve, reject) => {
      let settled = false;
      const fail = (e: ConnectionError) => {
        if (settled) return;
        settled = true;
        sock.destroy();
        reject(e);
      };
      client.on("ready", () => {
        settled = true;
        sshStats.connectionsOpened++;
        resolve(client);
      });
      // ssh2 may emit several errors for one attempt (an agent failure, then the
      // auth failure), and any error without a listener would crash the process.
      client.on("error", (err: Error & { level?: string }) => {
        if (settled) return;
        if (err.level === "agent") {
          agentFailure = err.message;
          return; // ssh2 goes on with the next method
        }
        if (refusal) return fail(new ConnectionError(refusal));
        if (err.level === "client-authentication") {
          const agentNote = agentFailure ? `; the agent failed: ${agentFailure}` : "";
          return fail(this.error(`authentication as ${opts.username} failed (tried ${methods.map(describeMethod).join(", ")})${agentNote}`));
        }
        if (err.level === "client-timeout") return fail(this.error(`SSH handshake did not finish within ${timeout} ms (connectTimeoutMs)`));
        fail(this.error(`SSH connection failed: ${err.message}`, true));
      });
      client.on("close", () => {
        if (this.client === client) this.client = undefined;
        if (this.socket === sock) this.socket = undefined;
        // sshd restarting or dropping an excess unauthenticated connection closes without an SSH error.
        fail(this.error("the connection closed during the SSH handshake", true));
      });
      client.connect(opts);
    });
  }

  /** ssh2 options for the configured auth methods, tried keys first and the password last (as OpenSSH does). */
  private credentials(): Pick<ConnectConfig, "privateKey" | "passphrase" | "agent" | "password" | "authHandler"> {
    const c = this.config;
    const out: Pick<ConnectConfig, "privateKey" | "passphrase" | "agent" | "password"> = {};
    const methods: AuthMethod[] = [];
    if (c.privateKey || c.privateKeyPath) {
      const field = c.privateKey ? "connection.privateKey" : `connection.privateKeyPath ${c.privateKeyPath}`;
      const key = c.privateKey ?? readKeyFile(c.privateKeyPath!, this);
      const parsed = utils.parseKey(key, c.passphrase);
      // ssh2's parse messages can quote bytes of the key, so only our own words are shown.
      if (parsed instanceof Error) {
        if (/no passphrase given/.test(parsed.message)) throw this.error(`${field} is encrypted and connection.passphrase is not set`);
        if (/passphrase\?/.test(parsed.message)) throw this.error(`connection.passphrase does not decrypt ${field}`);
        throw this.error(`${field} is not a private key ssh2 can read (OpenSSH or PEM format; encrypted PKCS#8 is not supported)`);
      }
      const first = Array.isArray(parsed) ? parsed[0] : parsed;
      if (!first || first.getPrivatePEM() === null) throw this.error(`${field} holds a public key, not a private key`);
      out.privateKey = key;
      if (c.passphrase) out.passphrase = c.passphrase;
      methods.push("publickey");
    }
    if (c.agent) {
      const socket = c.agent === true ? process.env.SSH_AUTH_SOCK : c.agent;
      if (!socket) throw this.error("connection.agent is true but SSH_AUTH_SOCK is not set");
      if (!existsSync(socket)) throw this.error(`ssh-agent socket ${socket} (connection.agent) does not exist`);
      out.agent = socket;
      methods.push("agent");
    }
    if (c.password !== undefined) {
      out.password = c.password;
      methods.push("password");
    }
    if (methods.length === 0) throw this.error("no SSH credentials: set connection.privateKey, privateKeyPath, password or agent");
    return { ...out, authHandler: methods };
  }
}

function describeMethod(m: AuthMethod): string {
  return m === "publickey" ? "the private key" : m === "agent" ? "the ssh-agent's keys" : "the password";
}

function readKeyFile(path: string, conn: PooledConnection): Buffer {
  try {
    // Users write ~/.ssh/id_ed25519 as they would for ssh; no shell expands it here.
    return readFileSync(path.startsWith("~/") ? join(homedir(), path.slice(2)) : path);
  } catch (err) {
    throw conn.error(`cannot read connection.privateKeyPath ${path}: ${(err as NodeJS.ErrnoException).code}`);
  }
}

function openSocket(host: string, port: number, timeoutMs: number, conn: PooledConnection): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = netConnect({ host, port });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(conn.error(`cannot connect to ${host}:${port} within ${timeoutMs} ms (connectTimeoutMs)`));
    }, timeoutMs);
    socket.once("connect", () => {
      clearTimeout(timer);
      socket.setNoDelay(true);
      resolve(socket);
    });
    socket.once("error", (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(conn.error(`cannot connect to ${host}:${port}: ${err.code ?? err.message}`, err.code === "ECONNREFUSED" || err.code === "ECONNRESET"));
    });
  });
}

/**
 * Runs one command on its own exec channel, its input streamed (never on disk).
 * Rejects with `notStarted` when the channel never opened (the command did not run).
 */
function execOnce(client: Client, command: string, stdin: string | undefined, lost: () => Error): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const notStarted = (err: Error) => reject(Object.assign(err, { notStarted: true }));
    try {
      client.exec(command, (err, channel) => {
        if (err) return notStarted(err);
        // Listeners go on right here, not after an await, so no event is missed.
        const out: Buffer[] = [];
        const errOut: Buffer[] = [];
        let code: number | null = null;
        channel.on("data", (d: Buffer) => out.push(d));
        channel.stderr.on("data", (d: Buffer) => errOut.push(d));
        channel.on("exit", (c: number | null, signal?: string) => (code = c ?? (signal ? 128 : 255)));
        channel.on("error", () => undefined);
        channel.on("close", () =>
          code === null ? reject(lost()) : resolve({ stdout: Buffer.concat(out).toString("utf8"), stderr: Buffer.concat(errOut).toString("utf8"), code }),
        );
        channel.end(stdin ?? "");
      });
    } catch (err) {
      notStarted(err as Error);
    }
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Secret values of a connection and its bastions. Very short values are skipped: masking them would garble every message. */
function secretsOf(c: Connection | undefined): string[] {
  if (!c) return [];
  const values = [c.passphrase, c.password, typeof c.sudo === "object" ? c.sudo.password : undefined];
  // A key is masked whole and line by line, in case a message quotes part of it.
  if (c.privateKey) values.push(c.privateKey, ...c.privateKey.split(/\r?\n/).map((l) => l.trim()));
  return [...values.filter((v): v is string => v !== undefined && v.length >= 4), ...secretsOf(c.bastion)];
}

function redact(text: string, c: Connection): string {
  let out = text;
  for (const s of secretsOf(c).sort((a, b) => b.length - a.length)) out = out.split(s).join("***");
  return out;
}

const pool = new Map<string, PooledConnection>();

/**
 * host, port and user, plus a digest of the credentials and host-key policy:
 * a resource whose pin or password is wrong must not ride on a connection that
 * another resource authenticated and verified.
 */
function poolKey(c: Connection): string {
  const policy = [c.privateKey, c.privateKeyPath, c.passphrase, c.password, c.agent, c.hostKey, c.knownHostsPath, c.insecureSkipHostKeyCheck];
  const digest = createHash("sha256").update(JSON.stringify(policy)).digest("hex").slice(0, 16);
  const self = `${c.user ?? "root"}@${c.host}:${c.port ?? 22}#${digest}`;
  return c.bastion ? `${poolKey(c.bastion)}>${self}` : self;
}

function pooled(config: Connection): PooledConnection {
  const key = poolKey(config);
  let conn = pool.get(key);
  if (!conn) {
    conn = new PooledConnection(config, config.bastion ? pooled(config.bastion) : undefined);
    pool.set(key, conn);
  } else {
    // Only fields outside the key (connectTimeoutMs, sudo) can differ; the next dial uses the newest.
    conn.config = config;
  }
  return conn;
}

// What sudo prints (exit 1) when it refuses; the last two lack the "sudo: " prefix.
const SUDO_REFUSAL = /^(?:sudo: .*|.* is not in the sudoers file.*|Sorry, user .* is not allowed to execute .*)$/gm;

/** Runs argv on a remote host over the pooled SSH connection, through sudo if configured. */
export class SshTransport implements Transport {
  readonly label: string;
  readonly batchKey: string | undefined;

  /** `own`: a connection of this transport alone, outside the pool (see openFreshTransport). */
  constructor(
    private readonly config: Connection,
    private readonly own?: PooledConnection,
  ) {
    this.label = connectionLabel(config);
    // Same pooled connection and same sudo settings: the same host and privileges.
    this.batchKey = own ? undefined : `${poolKey(config)}#${createHash("sha256").update(JSON.stringify(config.sudo ?? null)).digest("hex").slice(0, 16)}`;
  }

  async run(argv: string[], opts: RunOptions = {}): Promise<RunResult> {
    const sudo = this.config.sudo;
    const sudoPassword = typeof sudo === "object" ? sudo.password : undefined;
    let full = argv;
    let stdin = opts.stdin;
    if (sudo === true) full = ["sudo", "-n", "--", ...argv];
    else if (sudoPassword !== undefined) {
      // The password goes on stdin (never argv, never a log); -p '' silences the
      // prompt. -k ignores cached credentials: sudo must always read the password
      // line itself, or it would reach the command as its first input line.
      full = ["sudo", "-k", "-S", "-p", "", "--", ...argv];
      stdin = sudoPassword + "\n" + (stdin ?? "");
    }
    const conn = this.own ?? pooled(this.config);
    const result = await conn.run(shellCommand(full), stdin, sudoPassword !== undefined);
    if (sudo && result.code === 1) {
      // A wrong password gives several lines ("no password was provided; 1 incorrect password attempt").
      const refusal = result.stderr.match(SUDO_REFUSAL);
      if (refusal) {
        const reason = refusal.map((l) => l.replace(/^sudo: /, "")).join("; ");
        throw new NetdevError(redact(`${this.label}: sudo refused to run ${argv[0]} as root for user ${this.config.user ?? "root"}: ${reason}`, this.config));
      }
    }
    if (sudoPassword && sudoPassword.length >= 4 && result.stderr.includes(sudoPassword)) {
      // sudo did not ask (a NOPASSWD rule), so the password line went to the
      // command, which may echo it back (`ip -batch -`: Command "…" is unknown).
      if (opts.stdin !== undefined && result.code !== 0)
        throw new NetdevError(`${this.label}: sudo ran ${argv[0]} without asking for the password, so the password reached the command's input; use sudo: true for this host (its sudoers rule is NOPASSWD)`);
      return { ...result, stderr: result.stderr.split(sudoPassword).join("***") };
    }
    return result;
  }
}

/**
 * A transport over a NEW SSH connection to the target, never the pooled one (safe
 * apply confirms a risky write over it: the pooled connection may survive a change
 * that new connections do not). Its bastions, if any, are the pooled ones: a change
 * on the target cannot cut them. close() ends the connection.
 */
export function openFreshTransport(config: Connection): Transport & { close(): void } {
  const own = new PooledConnection(config, config.bastion ? pooled(config.bastion) : undefined);
  return Object.assign(new SshTransport(config, own), { close: () => own.close() });
}

/**
 * Drops the pooled connection to this target (not its bastions), so the next command
 * dials again. After a risky write was rolled back the old connection may be stuck
 * on a path that no longer exists.
 */
export function dropPooledConnection(config: Connection): void {
  const key = poolKey(config);
  pool.get(key)?.abandon();
  pool.delete(key);
}

/** Closes every pooled connection (tests and benchmarks). */
export function closeAllConnections(): void {
  for (const conn of pool.values()) conn.close();
  pool.clear();
}
