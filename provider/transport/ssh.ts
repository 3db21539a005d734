import { createHash } from "node:crypto";
import { type Connection, connectionLabel } from "../connection";
import { closePool, dropPooled, type PooledConnection, poolKey, pooled, unpooled } from "./pool";
import { shellCommand } from "./quote";
import { forgetSudo, runAsRoot } from "./sudo";
import type { RunOptions, RunResult, Transport } from "./types";

export { CommandTimeoutError, DEFAULT_COMMAND_TIMEOUT_MS, DEFAULT_KEEPALIVE_INTERVAL_MS, sshStats } from "./pool";
export { MAX_CHANNELS_PER_CONNECTION } from "./slots";

/**
 * Runs argv on a remote host over SSH, through sudo if configured. The pieces:
 * pool.ts (one connection per host and credentials, commandTimeoutMs), dial.ts
 * (socket, handshake, host key), auth.ts (credentials), keepalive.ts, slots.ts
 * (channels per connection), shell.ts (worker shells), sudo.ts, redact.ts.
 */
export class SshTransport implements Transport {
  readonly label: string;
  readonly batchKey?: string;

  constructor(
    private readonly config: Connection,
    private readonly connection: () => PooledConnection = () => pooled(config),
    shareable = true,
  ) {
    this.label = connectionLabel(config);
    // Same pooled connection and same sudo settings: the same host and privileges.
    if (shareable) this.batchKey = `${poolKey(config)}#${createHash("sha256").update(JSON.stringify(config.sudo ?? null)).digest("hex").slice(0, 16)}`;
  }

  async run(argv: string[], opts: RunOptions = {}): Promise<RunResult> {
    const conn = this.connection();
    if (this.config.sudo && !opts.unprivileged) return runAsRoot(conn, this.config, argv, opts.stdin);
    return conn.run(shellCommand(argv), opts.stdin, argv.join(" "));
  }
}

/**
 * A transport over a NEW SSH connection to the target, never the pooled one (safe
 * apply confirms a risky write over it: the pooled connection may survive a change
 * that new connections do not). Its bastions, if any, are the pooled ones (the same
 * chain): a change on the target cannot cut them. It dials on its first command; its
 * commands are never combined with other operations' (no batchKey). close() ends it.
 */
export function openFreshTransport(config: Connection): Transport & { close(): void } {
  const own = unpooled(config);
  return Object.assign(new SshTransport(config, () => own, false), { close: () => own.close() });
}

/**
 * Drops the pooled connection to this target (not its bastions), so the next command
 * dials again. After a risky write was rolled back the old connection may be stuck
 * on a path that no longer exists.
 */
export function dropPooledConnection(config: Connection): void {
  dropPooled(config);
}

/** Closes every pooled connection and forgets what was learnt about sudo (tests and benchmarks). */
export function closeAllConnections(): void {
  closePool();
  forgetSudo();
}
