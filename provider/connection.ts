import { z } from "zod";

const hostKeyFingerprint = z
  .string()
  .regex(/^SHA256:[A-Za-z0-9+/]{43}=?$/, "must be an OpenSSH SHA256 fingerprint like SHA256:AbC…(43 base64 characters)");

/** connection.safeApply (docs/safe-apply.md). */
export const safeApplySchema = z.strictObject({
  /** Guard risky writes. Default true. */
  enabled: z.boolean().optional(),
  /** Seconds after a risky write at which the host restores the devices unless the change was confirmed. 1–3600, default 60. */
  rollbackAfterSeconds: z
    .number()
    .int("must be a whole number of seconds")
    .min(1, "must be at least 1 (seconds)")
    .max(3600, "must be at most 3600 (seconds)")
    .optional(),
});

const baseConnection = z.strictObject({
  /** Host name or address of the SSH server. */
  host: z.string().min(1).regex(/^[A-Za-z0-9._:%[\]-]+$/, "must be a host name or IP address"),
  /** SSH port. Default 22. */
  port: z.number().int().min(1).max(65535).optional(),
  /** Login user. Default "root". */
  user: z.string().min(1).regex(/^[A-Za-z0-9._][A-Za-z0-9._-]*$/, "must be a user name").optional(),
  /** Private key in OpenSSH/PEM format (keep it a Pulumi secret). */
  privateKey: z.string().min(1).optional(),
  /** Path (on the machine running Pulumi) of a private key file. */
  privateKeyPath: z.string().min(1).optional(),
  /** Passphrase of the private key. */
  passphrase: z.string().optional(),
  /** Password authentication. */
  password: z.string().optional(),
  /** ssh-agent socket path, or true for $SSH_AUTH_SOCK. */
  agent: z.union([z.boolean(), z.string().min(1)]).optional(),
  /** Pinned host key fingerprint ("SHA256:…", as `ssh-keygen -lf` prints it). */
  hostKey: hostKeyFingerprint.optional(),
  /** known_hosts file to verify the host key against. Default ~/.ssh/known_hosts. */
  knownHostsPath: z.string().min(1).optional(),
  /** Accept any host key. Only for throw-away lab hosts. Default false. */
  insecureSkipHostKeyCheck: z.boolean().optional(),
  /**
   * Run commands through sudo: true for `sudo -n` (NOPASSWD rules), or { password }
   * for rules that ask: given to sudo only after its prompt, never to the command.
   */
  sudo: z
    .union([
      z.boolean(),
      z.strictObject({
        /** The sudo password, written to sudo only after its own prompt (keep it a Pulumi secret). */
        password: z.string(),
      }),
    ])
    .optional(),
  /** Time allowed to connect and authenticate, in milliseconds. Default 10000. */
  connectTimeoutMs: z.number().int().min(100).max(600_000).optional(),
  /**
   * Time one remote command may take, in milliseconds. Default 60000. A command that
   * takes longer fails with an error naming host and command; its session is closed
   * and it is never retried (it may have run).
   */
  commandTimeoutMs: z.number().int().min(100).max(3_600_000).optional(),
  /**
   * Interval of SSH keepalives, in milliseconds. Default 10000; 0 turns them off.
   * After 3 intervals in a row without a byte from the host the connection is dropped:
   * the commands on it fail, the next one connects again.
   */
  keepaliveIntervalMs: z.number().int().min(0).max(600_000).optional(),
  /**
   * Safe apply (docs/safe-apply.md): a write that touches what carries this SSH session
   * is armed with a rollback the host runs by itself unless a new SSH connection
   * confirms the host is still reachable. Default { enabled: true, rollbackAfterSeconds: 60 }.
   */
  safeApply: z.lazy(() => safeApplySchema).optional(),
});

export type Connection = z.infer<typeof baseConnection> & {
  /** A jump host reached first; the target is dialled through it. May chain. */
  bastion?: Connection;
};

export const connectionSchema: z.ZodType<Connection, Connection> = baseConnection.extend({
  /** A jump host reached first; the target is dialled through it. May chain. */
  bastion: z.lazy(() => connectionSchema).optional(),
});

/**
 * A resource's own `connection`: `host` may be left to stack config (`netdev:host`);
 * checkInputs requires it once the defaults are merged in.
 */
export const connectionInputSchema = baseConnection.extend({
  /** Host name or address of the SSH server. Default: stack config `netdev:host`. */
  host: baseConnection.shape.host.optional(),
  /** A jump host reached first; the target is dialled through it. May chain. */
  bastion: z.lazy(() => connectionSchema).optional(),
});

/** Fields whose values must never appear in a message, log or plain output. */
export const SECRET_FIELDS = new Set(["privateKey", "passphrase", "password"]);

/** host, port, user and the bastion chain, without credentials (safe apply keys its per-host state by it). */
export function connectionKey(c: Connection): string {
  const self = `${c.user ?? "root"}@${c.host}:${c.port ?? 22}`;
  return c.bastion ? `${connectionKey(c.bastion)}>${self}` : self;
}

export function connectionLabel(c: Connection): string {
  return c.port && c.port !== 22 ? `${c.host}:${c.port}` : c.host;
}

const CONFIG_KEYS = [
  "host", "port", "user", "privateKey", "privateKeyPath", "passphrase", "password", "agent",
  "hostKey", "knownHostsPath", "insecureSkipHostKeyCheck", "sudo", "connectTimeoutMs", "commandTimeoutMs",
  "keepaliveIntervalMs", "bastion", "safeApply",
] as const;

/**
 * Connection defaults from stack config (`netdev:host`, `netdev:privateKey`, …).
 * The engine sends config values as strings; numbers, booleans and objects arrive JSON-encoded.
 */
export function connectionDefaultsFromConfig(get: (key: string) => string | undefined): Partial<Connection> {
  const out: Record<string, unknown> = {};
  for (const key of CONFIG_KEYS) {
    const raw = get(`netdev:${key}`);
    if (raw === undefined || raw === null) continue;
    out[key] = decodeConfigValue(key, raw);
  }
  return out as Partial<Connection>;
}

function decodeConfigValue(key: string, raw: unknown): unknown {
  if (typeof raw !== "string") return raw;
  if (key === "port" || key === "connectTimeoutMs" || key === "commandTimeoutMs" || key === "keepaliveIntervalMs") return /^\d+$/.test(raw) ? Number(raw) : raw;
  if (key === "insecureSkipHostKeyCheck" || key === "agent" || key === "sudo" || key === "bastion" || key === "safeApply") {
    if (raw === "true") return true;
    if (raw === "false") return false;
    if (raw.startsWith("{")) {
      try {
        return JSON.parse(raw);
      } catch {
        return raw;
      }
    }
  }
  return raw;
}

/** Resource connection fields win over stack-config defaults. */
export function mergeConnection(defaults: Partial<Connection>, given: Partial<Connection> | undefined): Partial<Connection> {
  const merged: Record<string, unknown> = { ...defaults };
  for (const [k, v] of Object.entries(given ?? {})) if (v !== undefined) merged[k] = v;
  return merged as Partial<Connection>;
}
