/** Errors the provider raises. Messages name the host and what failed; they never contain credentials. */

export class NetdevError extends Error {
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}

/** A command ran on a host and exited non-zero. */
export class CommandError extends NetdevError {
  constructor(
    readonly host: string,
    readonly argv: string[],
    readonly code: number,
    readonly stderr: string,
  ) {
    super(`${host}: \`${argv.join(" ")}\` failed (exit ${code}): ${stderr.trim() || "(no output)"}`);
  }
}

/** The device (or namespace) does not exist on the host. */
export class NotFoundError extends NetdevError {}

/** After a write, the kernel does not report what was asked for. */
export class VerificationError extends NetdevError {
  constructor(
    readonly host: string,
    readonly device: string,
    readonly field: string,
    readonly desired: unknown,
    readonly actual: unknown,
  ) {
    super(
      `${host}: ${device}: ${field} is ${JSON.stringify(actual)} in the kernel after the change, wanted ${JSON.stringify(desired)}`,
    );
  }
}

/** Could not connect, authenticate, or trust the host. */
export class ConnectionError extends NetdevError {
  /** True when the command was never sent (no connection or session): nothing ran on the host. */
  notRun = false;
}
