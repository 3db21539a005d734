import { createHash } from "node:crypto";
import type { Socket } from "node:net";
import type { Duplex } from "node:stream";
import type { Client, ClientChannel } from "ssh2";
import { type Connection, connectionLabel } from "../connection";
import { ConnectionError } from "../errors";
import { credentials } from "./auth";
import { DEFAULT_CONNECT_TIMEOUT_MS, type DialError, handshake, openSocket } from "./dial";
import { type PeerWatch, watchPeer } from "./keepalive";
import { redact } from "./redact";
import { RemoteShell } from "./shell";
import { ChannelSlots } from "./slots";
import type { RunResult } from "./types";

export const DEFAULT_COMMAND_TIMEOUT_MS = 60_000;
export const DEFAULT_KEEPALIVE_INTERVAL_MS = 10_000;
const DIAL_ATTEMPTS = 3;

/** Counts of what the pool has done, for tests and the benchmark. */
export const sshStats = { connectionsOpened: 0, commandsRun: 0 };

/** One remote command ran longer than connection.commandTimeoutMs; it may have run (never retried). */
export class CommandTimeoutError extends ConnectionError {}

/** Marks the error a worker shell or channel reports when its connection closed under it. */
const LOST = Symbol("lost");

/**
 * One SSH connection to (user, host, port, credentials, host-key policy, bastion
 * chain). Commands run in worker shells (shell.ts), one per session channel, at most
 * MAX_CHANNELS_PER_CONNECTION at once (slots.ts). Each command has commandTimeoutMs;
 * keepalives (keepalive.ts) find a peer that stopped answering and drop the
 * connection, so the next command dials a new one.
 * The socket is unref'd while no command is running (for a bastion: while nothing
 * runs through it), so a connection never keeps the provider host process alive.
 */
export class PooledConnection {
  private client?: Client;
  private connecting?: Promise<Client>;
  private socket?: Socket;
  private holders = 0;
  private readonly slots = new ChannelSlots();
  /** Idle worker shells (see shell.ts) of `shellsOf`, the current client. */
  private idleShells: RemoteShell[] = [];
  private shellsOf?: Client;
  private readonly watches = new WeakMap<Client, PeerWatch>();
  /** Why a client was dropped (keepalives unanswered), for the errors of the commands it took along. */
  private readonly deaths = new WeakMap<Client, string>();

  constructor(
    public config: Connection,
    private readonly bastion?: PooledConnection,
  ) {}

  get label(): string {
    return connectionLabel(this.config);
  }

  /** Runs a command string in a worker shell. `what` names the command in errors. */
  run(command: string, stdin: string | undefined, what: string): Promise<RunResult> {
    return this.session(what, async (client, onTimeout) => {
      const shell = await this.shell(client);
      onTimeout(() => shell.discard());
      sshStats.commandsRun++;
      try {
        return await shell.run(command, stdin);
      } finally {
        if (shell.usable) this.idleShells.push(shell);
      }
    });
  }

  /**
   * Runs a command string on its own exec channel, which `drive` feeds and reads
   * (sudo.ts: the password goes only after sudo's prompt). `drive` attaches its
   * listeners at once and rejects with `lost()` when the channel closes without an
   * exit status.
   */
  exec(command: string, what: string, drive: (channel: ClientChannel, lost: () => Error) => Promise<RunResult>): Promise<RunResult> {
    return this.session(what, (client, onTimeout) =>
      new Promise<RunResult>((resolve, reject) => {
        const notStarted = (err: Error) => reject(Object.assign(err, { notStarted: true }));
        try {
          client.exec(command, (err, channel) => {
            if (err) return notStarted(err);
            onTimeout(() => channel.close());
            sshStats.commandsRun++;
            drive(channel, lostError).then(resolve, reject);
          });
        } catch (err) {
          notStarted(err as Error);
        }
      }),
    );
  }

  /**
   * A slot and a live client for one command, run under commandTimeoutMs. A channel
   * that never opened means the command did not run: reconnecting and retrying is
   * safe. A command that started is never retried.
   */
  private async session(what: string, body: (client: Client, onTimeout: (cleanup: () => void) => void) => Promise<RunResult>): Promise<RunResult> {
    await this.slots.acquire();
    this.hold();
    try {
      for (let attempt = 0; ; attempt++) {
        const client = await this.connected().catch((err) => {
          throw notRun(err);
        });
        try {
          return await this.timed(client, what, (onTimeout) => body(client, onTimeout));
        } catch (err) {
          if (!(err as { notStarted?: boolean }).notStarted) {
            if (!(err as { [LOST]?: boolean })[LOST]) throw err;
            const why = this.deaths.get(client);
            throw this.error(`\`${what}\`: the SSH connection closed before the command finished${why ? `: ${why}` : ""}`);
          }
          // (sshd may still count just-closed sessions against MaxSessions for a moment.)
          if (attempt >= 3) throw notRun(this.error(`cannot open an SSH session: ${(err as Error).message}`));
          if (this.client === client && attempt >= 1) this.drop(client);
          await sleep(100 * (attempt + 1));
        }
      }
    } finally {
      this.release();
      this.slots.release();
    }
  }

  /**
   * Rejects with a CommandTimeoutError after commandTimeoutMs; the command's shell or
   * channel is then discarded (never reused). When the peer has also stopped
   * answering keepalives, the connection is dropped at once.
   */
  private timed(client: Client, what: string, run: (onTimeout: (cleanup: () => void) => void) => Promise<RunResult>): Promise<RunResult> {
    const ms = this.config.commandTimeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS;
    let cleanup: (() => void) | undefined;
    let timedOut = false;
    const onTimeout = (f: () => void) => {
      cleanup = f;
      if (timedOut) f();
    };
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        timedOut = true;
        cleanup?.();
        const silent = this.watches.get(client)?.keepaliveUnanswered() ?? false;
        if (silent) this.drop(client);
        const note = silent ? "; the host stopped answering keepalives, so the connection was dropped" : "";
        reject(
          new CommandTimeoutError(
            redact(`${this.label}: \`${what}\` did not finish within ${ms} ms (commandTimeoutMs)${note}; it may have run, so it is not retried`, this.config),
          ),
        );
      }, ms);
      run(onTimeout).then(
        (r) => {
          clearTimeout(timer);
          resolve(r);
        },
        (e) => {
          clearTimeout(timer);
          reject(e);
        },
      );
    });
  }

  /** An idle worker shell of this client, or a new one (at most one per slot). */
  private async shell(client: Client): Promise<RemoteShell> {
    if (this.shellsOf !== client) {
      this.idleShells = [];
      this.shellsOf = client;
    }
    for (let s = this.idleShells.pop(); s; s = this.idleShells.pop()) if (s.usable) return s;
    return RemoteShell.open(client, lostError);
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
  error(message: string, retryable = false): DialError {
    const e = new ConnectionError(redact(`${this.label}: ${message}`, this.config)) as DialError;
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

  private connected(): Promise<Client> {
    if (this.client) return Promise.resolve(this.client);
    if (!this.connecting) {
      this.connecting = this.dialWithRetry().finally(() => (this.connecting = undefined));
    }
    return this.connecting;
  }

  private drop(client: Client): void {
    if (this.client === client) this.client = undefined;
    this.watches.get(client)?.stop();
    client.end();
  }

  /** Dials now (if not connected), so that a failure to connect surfaces here. */
  async open(): Promise<void> {
    await this.connected();
  }

  close(): void {
    if (this.client) this.drop(this.client);
  }

  /** Destroys the connection at once: commands still waiting on it fail instead of holding the process. */
  abandon(): void {
    const client = this.client;
    this.client = undefined;
    if (client) this.watches.get(client)?.stop();
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
        if (!(err as DialError).retryable || attempt >= DIAL_ATTEMPTS) throw err;
        await sleep(250 * 4 ** (attempt - 1));
      }
    }
  }

  private async dial(): Promise<Client> {
    const c = this.config;
    const port = c.port ?? 22;
    const timeout = c.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
    const deadline = Date.now() + timeout;
    const error = (message: string, retryable?: boolean) => this.error(message, retryable);
    // Credentials are checked before any socket exists, so a bad key never leaks one.
    const creds = credentials(c, error);
    let sock: Duplex;
    if (this.bastion) {
      sock = await this.bastion.forward(c.host, port, timeout);
    } else {
      const socket = await openSocket(c.host, port, timeout, error);
      this.socket = socket;
      if (this.holders === 0) socket.unref();
      sock = socket;
    }
    const client = await handshake(c, creds, sock, deadline, error, (closed) => {
      this.watches.get(closed)?.stop();
      if (this.client === closed) this.client = undefined;
      if (this.socket === sock) this.socket = undefined;
    });
    sshStats.connectionsOpened++;
    this.watches.set(
      client,
      watchPeer(client, sock, c.keepaliveIntervalMs ?? DEFAULT_KEEPALIVE_INTERVAL_MS, (reason) => {
        this.deaths.set(client, reason);
        this.drop(client);
        // end() waits for the peer; a peer that stopped answering never does.
        sock.destroy();
      }),
    );
    return client;
  }
}

function lostError(): Error {
  return Object.assign(new Error("the SSH connection closed before the command finished"), { [LOST]: true });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const pool = new Map<string, PooledConnection>();

/**
 * host, port and user, plus a digest of the credentials and host-key policy:
 * a resource whose pin or password is wrong must not ride on a connection that
 * another resource authenticated and verified.
 */
export function poolKey(c: Connection): string {
  const policy = [c.privateKey, c.privateKeyPath, c.passphrase, c.password, c.agent, c.hostKey, c.knownHostsPath, c.insecureSkipHostKeyCheck];
  const digest = createHash("sha256").update(JSON.stringify(policy)).digest("hex").slice(0, 16);
  const self = `${c.user ?? "root"}@${c.host}:${c.port ?? 22}#${digest}`;
  return c.bastion ? `${poolKey(c.bastion)}>${self}` : self;
}

/** The pooled connection for `config`, made on first use. */
export function pooled(config: Connection): PooledConnection {
  const key = poolKey(config);
  let conn = pool.get(key);
  if (!conn) {
    conn = new PooledConnection(config, config.bastion ? pooled(config.bastion) : undefined);
    pool.set(key, conn);
  } else {
    // Only fields outside the key (timeouts, keepalive, sudo) can differ; the next dial and command use the newest.
    conn.config = config;
  }
  return conn;
}

/** A connection of its own, outside the pool, to the target; its bastions are the pooled ones. */
export function unpooled(config: Connection): PooledConnection {
  return new PooledConnection(config, config.bastion ? pooled(config.bastion) : undefined);
}

/** Destroys the pooled connection to this target (not its bastions) and forgets it. */
export function dropPooled(config: Connection): void {
  const key = poolKey(config);
  pool.get(key)?.abandon();
  pool.delete(key);
}

/** Closes every pooled connection (tests and benchmarks). */
export function closePool(): void {
  for (const conn of pool.values()) conn.close();
  pool.clear();
}

/** Marks an error raised before the command was sent: it did not run. */
function notRun(err: unknown): unknown {
  if (err instanceof ConnectionError) err.notRun = true;
  return err;
}
