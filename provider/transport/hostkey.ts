import { createHash, createHmac } from "node:crypto";
import { readFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";

/** OpenSSH's SHA256 fingerprint of a raw public key blob: "SHA256:" + unpadded base64. */
export function fingerprint(rawKey: Buffer): string {
  return "SHA256:" + createHash("sha256").update(rawKey).digest("base64").replace(/=+$/, "");
}

function keyType(rawKey: Buffer): string {
  const len = rawKey.readUInt32BE(0);
  return rawKey.subarray(4, 4 + len).toString("latin1");
}

export function defaultKnownHostsPath(): string {
  return join(homedir(), ".ssh", "known_hosts");
}

function hostMatches(pattern: string, names: string[]): boolean {
  if (pattern.startsWith("|1|")) {
    const [, , salt, hash] = pattern.split("|");
    return names.some((n) => createHmac("sha1", Buffer.from(salt, "base64")).update(n).digest("base64") === hash);
  }
  const re = new RegExp("^" + pattern.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*").replace(/\?/g, ".") + "$");
  return names.some((n) => re.test(n));
}

/** What known_hosts says about this host's key: "match", "mismatch" (a different key is listed), "revoked" or "unknown". */
export function checkKnownHosts(text: string, host: string, port: number, rawKey: Buffer): "match" | "mismatch" | "revoked" | "unknown" {
  const names = port === 22 ? [host] : [`[${host}]:${port}`];
  const blob = rawKey.toString("base64");
  let listedOther = false;
  let matched = false;
  // Like OpenSSH, a @revoked line wins wherever it is in the file.
  for (const line of text.split("\n")) {
    const fields = line.trim().split(/\s+/);
    if (!fields[0] || fields[0].startsWith("#")) continue;
    const marker = fields[0].startsWith("@") ? fields.shift() : undefined;
    const [hosts, type, key] = fields;
    if (!hosts || !key) continue;
    const patterns = hosts.split(",");
    if (patterns.some((p) => p.startsWith("!") && hostMatches(p.slice(1), names))) continue;
    if (!patterns.some((p) => !p.startsWith("!") && hostMatches(p, names))) continue;
    if (marker === "@revoked" && key === blob) return "revoked";
    if (marker) continue;
    if (key === blob && type === keyType(rawKey)) matched = true;
    else if (type === keyType(rawKey)) listedOther = true;
  }
  return matched ? "match" : listedOther ? "mismatch" : "unknown";
}

export interface HostKeyPolicy {
  hostKey?: string;
  knownHostsPath?: string;
  insecureSkipHostKeyCheck?: boolean;
}

/** Returns undefined when the key is trusted, or the reason it is refused (with the fingerprint and how to pin it). */
export function verifyHostKey(label: string, host: string, port: number, rawKey: Buffer, policy: HostKeyPolicy): string | undefined {
  if (policy.insecureSkipHostKeyCheck) return undefined;
  const fp = fingerprint(rawKey);
  const howToPin = `To trust it, set connection.hostKey to "${fp}" (compare with \`ssh-keygen -lf /etc/ssh/ssh_host_${keyType(rawKey).replace(/^ssh-/, "").replace(/-sha2-nistp\d+$/, "")}_key.pub\` on the host) or add the host to known_hosts.`;
  if (policy.hostKey) {
    if (policy.hostKey.replace(/=+$/, "") === fp) return undefined;
    return `${label}: host key ${fp} (${keyType(rawKey)}) does not match the pinned connection.hostKey ${policy.hostKey}. Refusing to connect: the host may have been replaced or the connection intercepted.`;
  }
  const path = policy.knownHostsPath ?? defaultKnownHostsPath();
  let text = "";
  try {
    text = readFileSync(path, "utf8");
  } catch {
    // A missing known_hosts file means "no host is known yet".
  }
  const verdict = checkKnownHosts(text, host, port, rawKey);
  if (verdict === "match") return undefined;
  if (verdict === "mismatch")
    return `${label}: host key ${fp} (${keyType(rawKey)}) differs from the key listed in ${path}. Refusing to connect: the host may have been replaced or the connection intercepted. ${howToPin}`;
  if (verdict === "revoked") return `${label}: host key ${fp} is marked @revoked in ${path}. Refusing to connect.`;
  return `${label}: unknown host key ${fp} (${keyType(rawKey)}); it is not in ${path} and no connection.hostKey is pinned. Refusing to connect. ${howToPin}`;
}
