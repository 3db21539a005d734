import { CommandError } from "../errors";
import { canonicalIp } from "../schema";
import type { Transport } from "../transport/types";
import { bridgeArgv, isGoneError, parseJson, READ_ONLY } from "./link";

/** One entry of `bridge -j fdb show`. */
export interface FdbJson {
  mac: string;
  /** Remote VTEP (vxlan entries only). */
  dst?: string;
  /** Underlay device the entry sends through (`via`). */
  viaIf?: string;
  vni?: number;
  port?: number;
  /** "self" for the device's own table (vxlan), empty with `master` for the bridge's. */
  flags?: string[];
  master?: string;
  state?: string;
  [key: string]: unknown;
}

/**
 * The all-zero MAC: a vxlan device sends broadcast, unknown-unicast and multicast
 * frames to every `dst` of this entry (head-end replication); the kernel also keeps
 * the device's own `remote`/`group` here.
 */
export const FLOOD_MAC = "00:00:00:00:00:00";

/** The device's forwarding entries (`bridge [-n ns] -j fdb show dev X`), or undefined when it is gone. */
export async function readFdb(t: Transport, namespace: string | undefined, dev: string): Promise<FdbJson[] | undefined> {
  const argv = bridgeArgv(namespace, "-j", "fdb", "show", "dev", dev);
  const r = await t.run(argv, READ_ONLY);
  if (r.code !== 0) {
    if (isGoneError(r.stderr)) return undefined;
    throw new CommandError(t.label, argv, r.code, r.stderr);
  }
  return parseJson<FdbJson[]>(r.stdout, t.label, argv);
}

/**
 * Destinations of the device's own all-zero entries, canonical, de-duplicated and
 * sorted. `exclude` drops addresses (the device's default remote, which the kernel
 * stores as one of these entries).
 */
export function floodDestinations(entries: FdbJson[], exclude: (string | undefined)[] = []): string[] {
  const skip = new Set(exclude.filter((a): a is string => !!a).map(canonicalIp));
  const dsts = entries
    .filter((e) => e.mac === FLOOD_MAC && typeof e.dst === "string" && !e.master)
    .map((e) => canonicalIp(e.dst!))
    .filter((d) => !skip.has(d));
  return [...new Set(dsts)].sort();
}

/** Adds one destination to the all-zero entry, keeping the others (NLM_F_APPEND). */
export function floodAppendArgv(namespace: string | undefined, dev: string, dst: string): string[] {
  return bridgeArgv(namespace, "fdb", "append", FLOOD_MAC, "dst", dst, "dev", dev);
}

/** Removes exactly one destination from the all-zero entry; the others stay. */
export function floodDelArgv(namespace: string | undefined, dev: string, dst: string): string[] {
  return bridgeArgv(namespace, "fdb", "del", FLOOD_MAC, "dst", dst, "dev", dev);
}
