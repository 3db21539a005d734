import { existsSync, readFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { type ConnectConfig, utils } from "ssh2";
import type { Connection } from "../connection";
import type { ConnectionError } from "../errors";

export type AuthMethod = "publickey" | "agent" | "password";

export type Credentials = Pick<ConnectConfig, "privateKey" | "passphrase" | "agent" | "password"> & { authHandler: AuthMethod[] };

/**
 * ssh2 options for the configured auth methods, tried keys first and the password
 * last (as OpenSSH does). Checked before any socket exists, so a bad key never
 * costs a connection. `error` makes a ConnectionError naming the host, secrets masked.
 */
export function credentials(c: Connection, error: (message: string) => ConnectionError): Credentials {
  const out: Pick<ConnectConfig, "privateKey" | "passphrase" | "agent" | "password"> = {};
  const methods: AuthMethod[] = [];
  if (c.privateKey || c.privateKeyPath) {
    const field = c.privateKey ? "connection.privateKey" : `connection.privateKeyPath ${c.privateKeyPath}`;
    const key = c.privateKey ?? readKeyFile(c.privateKeyPath!, error);
    const parsed = utils.parseKey(key, c.passphrase);
    // ssh2's parse messages can quote bytes of the key, so only our own words are shown.
    if (parsed instanceof Error) {
      if (/no passphrase given/.test(parsed.message)) throw error(`${field} is encrypted and connection.passphrase is not set`);
      if (/passphrase\?/.test(parsed.message)) throw error(`connection.passphrase does not decrypt ${field}`);
      throw error(`${field} is not a private key ssh2 can read (OpenSSH or PEM format; encrypted PKCS#8 is not supported)`);
    }
    const first = Array.isArray(parsed) ? parsed[0] : parsed;
    if (!first || first.getPrivatePEM() === null) throw error(`${field} holds a public key, not a private key`);
    out.privateKey = key;
    if (c.passphrase) out.passphrase = c.passphrase;
    methods.push("publickey");
  }
  if (c.agent) {
    const socket = c.agent === true ? process.env.SSH_AUTH_SOCK : c.agent;
    if (!socket) throw error("connection.agent is true but SSH_AUTH_SOCK is not set");
    if (!existsSync(socket)) throw error(`ssh-agent socket ${socket} (connection.agent) does not exist`);
    out.agent = socket;
    methods.push("agent");
  }
  if (c.password !== undefined) {
    out.password = c.password;
    methods.push("password");
  }
  if (methods.length === 0) throw error("no SSH credentials: set connection.privateKey, privateKeyPath, password or agent");
  return { ...out, authHandler: methods };
}

export function describeMethod(m: AuthMethod): string {
  return m === "publickey" ? "the private key" : m === "agent" ? "the ssh-agent's keys" : "the password";
}

function readKeyFile(path: string, error: (message: string) => ConnectionError): Buffer {
  try {
    // Users write ~/.ssh/id_ed25519 as they would for ssh; no shell expands it here.
    return readFileSync(path.startsWith("~/") ? join(homedir(), path.slice(2)) : path);
  } catch (err) {
    throw error(`cannot read connection.privateKeyPath ${path}: ${(err as NodeJS.ErrnoException).code}`);
  }
}
