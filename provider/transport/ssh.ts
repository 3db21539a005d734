import { readFileSync } from "node:fs";
import { connect as netConnect, type Socket } from "node:net";
import type { Duplex } from "node:stream";
import { Client, type ClientChannel, type ConnectConfig } from "ssh2";
import { type Connection, connectionKey, connectionLabel } from "../connection";
import { ConnectionError, NetdevError } from "../errors";
import { verifyHostKey } from "./hostkey";
import { shellCommand } from "./quote";
import type { RunOptions, RunResult, Transport } from "./types";

/** sshd's default MaxSessions is 10; stay under it so a busy stack never sees "open failed". */
export const MAX_CHANNELS_PER_CONNECTION = 8;
const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;
const DIAL_ATTEMPTS = 3;

/** Counts of what the pool has done, for tests and the benchmark. */
export const sshStats = { connectionsOpened: 0, commandsRun: 0 };

/**
 * One pooled SSH connection to (user, host, port, bastion chain). Commands are
 * multiplexed as channels with bounded concurrency. The socket is unref'd while
 * idle so the pool never keeps the provider host process alive.
 */
class PooledConnection {
  private client?: Client;
  private connecting?: Promise<Client>;
  private socket?: Socket;
  private active = 0;
  private waiting: (() => void)[] = [];
  private holders = 0;

  constructor(
    public config: Connection,
    private readonly bastion?: PooledConnection,
  ) {}

  get label(): string {
    return connectionLabel(this.config);
  }

  async run(command: string, stdin: string | undefined): Promise<RunResult> {
    await this.acquireSlot();
    this.hold();
    try {
      for (let attempt = 0; ; attempt++) {
        const client = await this.connected();
        let channel: ClientChannel;
        try {
          channel = await openExec(client, command);
        } catch (err) {
          // The channel never opened, so the command did not run: reconnecting and
          // retrying is safe. A command that started is never retried.
          if (attempt >= 3) throw new ConnectionError(`${this.label}: cannot open an SSH session: ${(err as Error).message}`);
          if (this.client === client && attempt >= 1) this.drop(client);
          await sleep(100 * (attempt + 1));
          continue;
        }
        sshStats.commandsRun++;
        return await collect(channel, stdin, this.label);
      }
    } finally {
      this.release();
      this.releaseSlot();
    }
  }

  /** Opens a forwarded TCP stream through this connection (used when it is a bastion). */
  async forward(host: string, port: number): Promise<Duplex> {
    this.hold();
    try {
      const client = await this.connected();
      return await new Promise<Duplex>((resolve, reject) =>
        client.forwardOut("127.0.0.1", 0, host, port, (err, stream) => (err ? reject(err) : resolve(stream))),
      );
    } catch (err) {
      this.release();
      throw new ConnectionError(`${this.label}: cannot reach ${host}:${port} through this bastion: ${(err as Error).message}`);
    }
  }

  hold(): void {
    if (this.holders++ === 0) this.socket?.ref();
  }

  release(): void {
    if (--this.holders === 0) this.socket?.unref();
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

  private async dialWithRetry(): Promise<Client> {
    for (let attempt = 1; ; attempt++) {
      try {
        const client = await this.dial();
        this.client = client;
        return client;
      } catch (err) {
        // Refused or reset connections are retried (sshd restarting); timeouts,
        // auth failures and host-key refusals are final.
        const retryable = err instanceof ConnectionError && (err as ConnectionError & { retryable?: boolean }).retryable;
        if (!retryable || attempt >= DIAL_ATTEMPTS) throw err;
        await sleep(250 * 4 ** (attempt - 1));
      }
    }
  }

  private async dial(): Promise<Client> {
    const c = this.config;
    const port = c.port ?? 22;
    const timeout = c.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
    let sock: Duplex;
    if (this.bastion) {
      sock = await this.bastion.forward(c.host, port);
    } else {
      const socket = await openSocket(c.host, port, timeout, this.label);
      this.socket = socket;
      if (this.holders === 0) socket.unref();
      sock = socket;
    }
    let refusal: string | undefined;
    const client = new Client();
    const opts: ConnectConfig = {
      sock,
      username: c.user ?? "root",
      readyTimeout: timeout,
      hostVerifier: (key: Buffer) => {
        refusal = verifyHostKey(this.label, c.host, port, key, c);
        return refusal === undefined;
      },
    };
    if (c.privateKey) opts.privateKey = c.privateKey;
    else if (c.privateKeyPath) opts.privateKey = readKeyFile(c.privateKeyPath, this.label);
    if (c.passphrase) opts.passphrase = c.passphrase;
    if (c.password) opts.password = c.password;
    if (c.agent) opts.agent = c.agent === true ? process.env.SSH_AUTH_SOCK : c.agent;
    return await new Promise<Client>((resolve, reject) => {
      client.once("ready", () => {
        sshStats.connectionsOpened++;
        client.on("error", () => undefined);
        resolve(client);
      });
      client.once("error", (err: Error & { level?: string }) => {
        sock.destroy();
        if (refusal) return reject(new ConnectionError(refusal));
        if (err.level === "client-authentication")
          return reject(new ConnectionError(`${this.label}: authentication as ${opts.username} failed (methods tried: key/password/agent as configured)`));
        if (/Timed out/i.test(err.message))
          return reject(new ConnectionError(`${this.label}: SSH handshake did not finish within ${timeout} ms (connectTimeoutMs)`));
        const e = new ConnectionError(`${this.label}: SSH connection failed: ${err.message}`) as ConnectionError & { retryable?: boolean };
        e.retryable = true;
        reject(e);
      });
      client.on("close", () => {
        if (this.client === client) this.client = undefined;
        if (!this.bastion) this.socket = undefined;
        if (this.bastion) this.bastion.release();
      });
      client.connect(opts);
    });
  }
}

function readKeyFile(path: string, label: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new ConnectionError(`${label}: cannot read connection.privateKeyPath ${path}: ${(err as NodeJS.ErrnoException).code}`);
  }
}

function openSocket(host: string, port: number, timeoutMs: number, label: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = netConnect({ host, port });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new ConnectionError(`${label}: cannot connect to ${host}:${port} within ${timeoutMs} ms (connectTimeoutMs)`));
    }, timeoutMs);
    socket.once("connect", () => {
      clearTimeout(timer);
      socket.setNoDelay(true);
      resolve(socket);
    });
    socket.once("error", (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      const e = new ConnectionError(`${label}: cannot connect to ${host}:${port}: ${err.code ?? err.message}`) as ConnectionError & { retryable?: boolean };
      e.retryable = err.code === "ECONNREFUSED" || err.code === "ECONNRESET";
      reject(e);
    });
  });
}

function openExec(client: Client, command: string): Promise<ClientChannel> {
  return new Promise((resolve, reject) => {
    try {
      client.exec(command, (err, channel) => (err ? reject(err) : resolve(channel)));
    } catch (err) {
      reject(err as Error);
    }
  });
}

function collect(channel: ClientChannel, stdin: string | undefined, label: string): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let code: number | null = null;
    channel.on("data", (d: Buffer) => out.push(d));
    channel.stderr.on("data", (d: Buffer) => err.push(d));
    channel.on("exit", (c: number | null, signal?: string) => {
      code = c ?? (signal ? 128 : 255);
    });
    channel.on("close", () => {
      if (code === null) return reject(new ConnectionError(`${label}: the SSH connection closed before the command finished`));
      resolve({ stdout: Buffer.concat(out).toString("utf8"), stderr: Buffer.concat(err).toString("utf8"), code });
    });
    channel.end(stdin ?? "");
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const pool = new Map<string, PooledConnection>();

function pooled(config: Connection): PooledConnection {
  const key = connectionKey(config);
  let conn = pool.get(key);
  if (!conn) {
    conn = new PooledConnection(config, config.bastion ? pooled(config.bastion) : undefined);
    pool.set(key, conn);
  } else {
    // Credentials may have been rotated; the next dial uses the newest.
    conn.config = config;
  }
  return conn;
}

/** Runs argv on a remote host over the pooled SSH connection, through sudo if configured. */
export class SshTransport implements Transport {
  readonly label: string;

  constructor(private readonly config: Connection) {
    this.label = connectionLabel(config);
  }

  async run(argv: string[], opts: RunOptions = {}): Promise<RunResult> {
    const sudo = this.config.sudo;
    let full = argv;
    let stdin = opts.stdin;
    if (sudo === true) full = ["sudo", "-n", "--", ...argv];
    else if (sudo && typeof sudo === "object") {
      // The password goes on stdin (never argv, never a log); -p '' silences the prompt.
      full = ["sudo", "-S", "-p", "", "--", ...argv];
      stdin = sudo.password + "\n" + (stdin ?? "");
    }
    const result = await pooled(this.config).run(shellCommand(full), stdin);
    if (sudo && result.code !== 0 && /^sudo: /m.test(result.stderr)) {
      const reason = result.stderr.split("\n").find((l) => l.startsWith("sudo: ")) ?? "sudo refused";
      throw new NetdevError(`${this.label}: sudo is configured but refused to run ${argv[0]} as ${this.config.user ?? "root"}'s superuser: ${reason.replace(/^sudo: /, "")}`);
    }
    return result;
  }
}

/** Closes every pooled connection (tests and benchmarks). */
export function closeAllConnections(): void {
  for (const conn of pool.values()) (conn as unknown as { client?: Client }).client?.end();
  pool.clear();
}
