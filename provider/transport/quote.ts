/**
 * The one POSIX shell quoting function. SSH sends a command as a single string
 * that the remote login shell splits, so every argv element is wrapped in single
 * quotes (an embedded quote becomes '\''). Nothing else in the code base builds
 * shell text.
 */
export function shellQuote(arg: string): string {
  if (arg.includes("\0")) throw new Error("argument contains a NUL byte");
  if (/^[A-Za-z0-9_@%+=:,./-]+$/.test(arg)) return arg;
  return `'${arg.replace(/'/g, `'\\''`)}'`;
}

export function shellCommand(argv: string[]): string {
  return argv.map(shellQuote).join(" ");
}
