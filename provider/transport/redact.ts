import type { Connection } from "../connection";

/**
 * Secret values of a connection and its bastions, of any length: a one-character
 * password masked is an ugly message, a one-character password shown is a leak.
 */
export function secretsOf(c: Connection | undefined): string[] {
  if (!c) return [];
  const values = [c.passphrase, c.password, typeof c.sudo === "object" ? c.sudo.password : undefined];
  // A key is masked whole and line by line, in case a message quotes part of it.
  if (c.privateKey) values.push(c.privateKey, ...c.privateKey.split(/\r?\n/).map((l) => l.trim()));
  return [...values.filter((v): v is string => v !== undefined && v !== ""), ...secretsOf(c.bastion)];
}

/** `text` with every secret of the connection (and its bastions) replaced by ***, longest first. */
export function redact(text: string, c: Connection): string {
  let out = text;
  for (const s of secretsOf(c).sort((a, b) => b.length - a.length)) out = out.split(s).join("***");
  return out;
}
