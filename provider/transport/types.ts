export interface RunResult {
  stdout: string;
  stderr: string;
  code: number;
}

export interface RunOptions {
  /** Bytes fed to the command's standard input (e.g. an `ip -batch -` script). */
  stdin?: string;
  /**
   * The command only reads (running it twice changes nothing on the host). Set by the
   * read helpers; only such a command is run again when the connection it went out
   * on turns out to be dead (engine.ts retryReads). Absent: never retried.
   */
  idempotent?: boolean;
  /**
   * Run as the login user even when the connection uses sudo: for reads that need no
   * privilege and must see the login session as it is (safe apply's discovery reads
   * SSH_CONNECTION, which sudo's env_reset drops, and must work for a user whose
   * sudoers rule allows only `ip`).
   */
  unprivileged?: boolean;
}

/** The one port between the provider and a host: run an argv, get its output. */
export interface Transport {
  /** Host label used in error messages (never contains credentials). */
  readonly label: string;
  /**
   * Transports with the same key reach the same host with the same privileges, so
   * commands of concurrent operations may be combined into one (provider/batching.ts).
   * Absent: never combined.
   */
  readonly batchKey?: string;
  run(argv: string[], opts?: RunOptions): Promise<RunResult>;
}
