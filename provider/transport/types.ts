export interface RunResult {
  stdout: string;
  stderr: string;
  code: number;
}

export interface RunOptions {
  /** Bytes fed to the command's standard input (e.g. an `ip -batch -` script). */
  stdin?: string;
}

/** The one port between the provider and a host: run an argv, get its output. */
export interface Transport {
  /** Host label used in error messages (never contains credentials). */
  readonly label: string;
  run(argv: string[], opts?: RunOptions): Promise<RunResult>;
}
