import { isIP } from "node:net";
import { z } from "zod";
import { bondPortSchema, bridgePortSchema } from "./portSchema";
import { connectionInputSchema, SECRET_FIELDS } from "./connection";

/** What the Pulumi engine sends in place of a value that is not known yet (during preview). */
export const UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9";

/**
 * Linux accepts almost any byte in a device name; we accept the portable subset so
 * that a name can never be read as an option, a path or shell syntax.
 * (The kernel's own limit: 1–15 bytes, not "." or "..", no "/", ":" or whitespace.)
 */
export const ifname = z
  .string()
  .min(1, "must not be empty")
  .max(15, "must be at most 15 characters (IFNAMSIZ - 1)")
  .regex(/^[A-Za-z0-9_.+-]+$/, "may contain only letters, digits and _ . + -")
  .refine((s) => s !== "." && s !== "..", "must not be . or ..")
  .refine((s) => !s.startsWith("-"), "must not start with -");

/** `ip netns` names become file names under /run/netns. */
export const netnsName = z
  .string()
  .min(1, "must not be empty")
  .max(64, "must be at most 64 characters")
  .regex(/^[A-Za-z0-9_.-]+$/, "may contain only letters, digits and _ . -")
  .refine((s) => s !== "." && s !== "..", "must not be . or ..")
  .refine((s) => !s.startsWith("-"), "must not start with -");

/** A unicast Ethernet address, normalised to lower case. */
export const macAddress = z
  .string()
  .regex(/^([0-9A-Fa-f]{2}:){5}[0-9A-Fa-f]{2}$/, "must be six colon-separated hex octets like 02:00:00:00:00:01")
  .transform((s) => s.toLowerCase())
  .refine((s) => (parseInt(s.slice(0, 2), 16) & 1) === 0, "must be a unicast address (the multicast bit of the first octet is set)")
  .refine((s) => s !== "00:00:00:00:00:00", "must not be all zeros");

/** Canonical text of an IP address: IPv6 compressed and lower case. */
export function canonicalIp(ip: string): string {
  return isIP(ip) === 6 ? new URL(`http://[${ip}]`).hostname.slice(1, -1) : ip;
}

function validIp(s: string): boolean {
  return isIP(s) !== 0 && !s.includes("%");
}

export const ipAddress = z.string().refine(validIp, "must be an IPv4 or IPv6 address").transform(canonicalIp);
export const ipv4Address = z.string().refine((s) => isIP(s) === 4, "must be an IPv4 address");

/** An interface address with its prefix length, e.g. 192.0.2.1/24 or 2001:db8::1/64. */
export const cidr = z
  .string()
  .refine((s) => {
    const m = /^([^/]+)\/(\d{1,3})$/.exec(s);
    if (!m || !validIp(m[1])) return false;
    return Number(m[2]) <= (isIP(m[1]) === 4 ? 32 : 128);
  }, "must be an address with a prefix length, like 192.0.2.1/24 or 2001:db8::1/64")
  .transform((s) => {
    const [ip, len] = s.split("/");
    return `${canonicalIp(ip)}/${Number(len)}`;
  });

/** A list reconciled as a set: duplicates are rejected, order is normalised. */
export function setOf<T extends z.ZodType<string>>(item: T, what = "entries") {
  return z
    .array(item)
    .refine((a) => new Set(a).size === a.length, `must not contain duplicate ${what}`)
    .transform((a) => [...a].sort());
}

export const mtu = z.number().int("must be a whole number").min(68, "must be at least 68").max(65535, "must be at most 65535");

/** Fields every link resource takes (DESIGN.md §1). */
export const commonLinkFields = {
  /** How to reach the host. Defaults come from stack config (`netdev:host`, …). */
  connection: connectionInputSchema.optional(),
  /** Device name (1–15 characters). Changing it replaces the device. */
  name: ifname,
  /** Network namespace (on the host) the device lives in; default the host's own. Changing it replaces the device. */
  namespace: netnsName.optional(),
  /** MTU in bytes. Default: the kernel's. */
  mtu: mtu.optional(),
  /** Ethernet address. Default: random, chosen by the kernel. */
  macAddress: macAddress.optional(),
  /** Administratively up. Default true. */
  up: z.boolean().default(true),
  /** Bridge or bond to enslave this device into. Enslaving into a bond takes an up device down and up again (the kernel refuses an up slave). */
  master: ifname.optional(),
  /** Addresses (CIDR), reconciled as an exact set: others found on the device are removed, except those the kernel manages (IPv6 link-local, SLAAC and temporary addresses, anything with a finite lifetime such as DHCP), which are left alone unless listed. A listed one (e.g. `fe80::1/64`) is managed like any other. */
  addresses: setOf(cidr, "addresses").optional(),
  /** Take over an existing device of the same kind and name instead of failing. Default false. */
  adopt: z.boolean().default(false),
  /**
   * Keep the device across a reboot: also write systemd-networkd files under
   * /etc/systemd/network/ (README "Surviving reboots"). Default: stack config
   * `netdev:persist`, else false.
   */
  persist: z.boolean().optional(),
  /** Options of this device as a port of the bridge it is enslaved to (`master`): STP cost/priority, flooding, learning, VLANs… Only the options given are managed. */
  bridgePort: bridgePortSchema.optional(),
  /** Options of this device as a slave of the bond it is enslaved to (`master`): queueId, priority. */
  bondPort: bondPortSchema.optional(),
};

export interface CheckFailure {
  property: string;
  reason: string;
}

/** True when the value, or any value inside it, is the preview placeholder. */
export function containsUnknown(v: unknown): boolean {
  if (v === UNKNOWN) return true;
  if (Array.isArray(v)) return v.some(containsUnknown);
  if (v && typeof v === "object") return Object.values(v).some(containsUnknown);
  return false;
}

function valueAt(obj: unknown, path: PropertyKey[]): unknown {
  let cur = obj;
  for (const k of path) {
    if (cur === null || typeof cur !== "object") return undefined;
    cur = (cur as Record<PropertyKey, unknown>)[k];
  }
  return cur;
}

function describe(path: PropertyKey[], value: unknown): string {
  if (path.some((k) => SECRET_FIELDS.has(String(k)))) return "[secret]";
  if (value === undefined) return "nothing";
  // A union (e.g. sudo: { password }) fails as a whole: redact secrets nested in the value.
  const text = JSON.stringify(value, (k, v) => (SECRET_FIELDS.has(k) ? "[secret]" : v));
  return text && text.length > 80 ? text.slice(0, 77) + "..." : String(text);
}

function propertyName(path: PropertyKey[]): string {
  return path.map((k, i) => (typeof k === "number" ? `[${k}]` : i === 0 ? String(k) : `.${String(k)}`)).join("") || "(inputs)";
}

/**
 * Validates inputs. Problems caused by a preview placeholder are not failures (the
 * value may be valid once known); every other problem names the field and the value.
 */
export function validate<S extends z.ZodType>(schema: S, inputs: Record<string, unknown>):
  | { ok: true; value: z.infer<S> }
  | { ok: false; failures: CheckFailure[]; unknownOnly: boolean } {
  const result = schema.safeParse(inputs);
  if (result.success) return { ok: true, value: result.data };
  const failures: CheckFailure[] = [];
  for (const issue of result.error.issues) {
    const value = valueAt(inputs, issue.path);
    const prop = propertyName(issue.path);
    // An unknown field is wrong whatever the placeholders elsewhere in the object resolve to.
    if (issue.code !== "unrecognized_keys" && containsUnknown(value)) continue;
    if (issue.code === "custom" && containsUnknown(inputs) && (issue.params as { unknownSensitive?: boolean })?.unknownSensitive) continue;
    let reason: string;
    if (issue.code === "unrecognized_keys") {
      reason = `unknown field${issue.keys.length > 1 ? "s" : ""} ${issue.keys.map((k) => `"${prop === "(inputs)" ? k : prop + "." + k}"`).join(", ")}`;
      failures.push({ property: prop === "(inputs)" ? issue.keys[0] : prop, reason });
      continue;
    }
    reason = `${prop} ${issue.message.replace(/^Invalid input: /, "")} (got ${describe(issue.path, value)})`;
    failures.push({ property: prop, reason });
  }
  return { ok: false, failures, unknownOnly: failures.length === 0 };
}
