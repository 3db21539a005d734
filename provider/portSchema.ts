/**
 * The port inputs' schemas (bridgePort, bondPort, a VLAN set) and the one written
 * form of a VLAN set. Apart from provider/bridgePort.ts so that provider/schema.ts
 * can use them without importing the reading code.
 */
import { isDeepStrictEqual } from "node:util";
import { z } from "zod";

const vidNumber = z.number().int("must be a whole number").min(1, "must be at least 1").max(4094, "must be at most 4094");

/** A VLAN id 1–4094, or a range "100-110". */
const vid = z.union([
  vidNumber,
  z.string().refine((s) => {
    const m = /^(\d{1,4})-(\d{1,4})$/.exec(s);
    return !!m && Number(m[1]) >= 1 && Number(m[2]) <= 4094 && Number(m[1]) < Number(m[2]);
  }, 'must be a VLAN id 1–4094 or a range like "100-110" (low < high)'),
]);

export const vlanEntry = z.strictObject({
  /** VLAN id (1–4094) or a range "100-110". */
  vid,
  /** Untagged frames entering the port are put in this VLAN (port VLAN id). One entry at most; not a range. Default false. */
  pvid: z.boolean().optional(),
  /** Frames of this VLAN leave the port without a tag. Default false (tagged). */
  untagged: z.boolean().optional(),
});

export type VlanEntry = z.infer<typeof vlanEntry>;
export type VlanFlags = { pvid: boolean; untagged: boolean };

export function vidRange(v: number | string): [number, number] {
  if (typeof v === "number") return [v, v];
  const [lo, hi] = v.split("-").map(Number);
  return [lo, hi];
}

/** vid → flags, one entry per VLAN id. */
export function expand(entries: VlanEntry[]): Map<number, VlanFlags> {
  const out = new Map<number, VlanFlags>();
  for (const e of entries) {
    const [lo, hi] = vidRange(e.vid);
    for (let v = lo; v <= hi; v++) out.set(v, { pvid: !!e.pvid, untagged: !!e.untagged });
  }
  return out;
}

/** The one written form of a VLAN set: sorted, consecutive ids with the same flags as a range, false flags left out. */
export function canonical(map: Map<number, VlanFlags>): VlanEntry[] {
  const vids = [...map.keys()].sort((a, b) => a - b);
  const out: VlanEntry[] = [];
  for (let i = 0; i < vids.length; ) {
    const f = map.get(vids[i])!;
    let j = i;
    while (!f.pvid && j + 1 < vids.length && vids[j + 1] === vids[j] + 1 && isDeepStrictEqual(map.get(vids[j + 1]), f)) j++;
    out.push({ vid: i === j ? vids[i] : `${vids[i]}-${vids[j]}`, ...(f.pvid ? { pvid: true } : {}), ...(f.untagged ? { untagged: true } : {}) });
    i = j + 1;
  }
  return out;
}

/** A VLAN set (a port's or a bridge's own), reconciled exactly: ids not listed are removed. */
export const vlanSet = z
  .array(vlanEntry)
  .superRefine((entries, ctx) => {
    const seen = new Map<number, number>();
    entries.forEach((e, i) => {
      if (e.pvid && typeof e.vid === "string") ctx.addIssue({ code: "custom", path: [i, "pvid"], message: `cannot be set on a range (${e.vid}): a port has one PVID` });
      if (typeof e.vid !== "number" && typeof e.vid !== "string") return;
      if (typeof e.vid === "string" && !/^\d+-\d+$/.test(e.vid)) return;
      const [lo, hi] = vidRange(e.vid);
      for (let v = lo; v <= hi; v++) {
        if (seen.has(v)) {
          ctx.addIssue({ code: "custom", path: [i, "vid"], message: `overlaps entry ${seen.get(v)} (VLAN ${v} listed twice)` });
          return;
        }
        seen.set(v, i);
      }
    });
    const pvids = entries.filter((e) => e.pvid).length;
    if (pvids > 1) ctx.addIssue({ code: "custom", path: [], message: `has ${pvids} entries with pvid: true; a port has one PVID` });
  })
  .transform((entries) => canonical(expand(entries)));

export const bridgePortSchema = z.strictObject({
  /** STP path cost of the port, 1–65535. Kernel default: from the link speed (100 for 10 Mb/s and unknown). */
  cost: z.number().int("must be a whole number").min(1, "must be at least 1").max(65535, "must be at most 65535").optional(),
  /** STP port priority, 0–63 (lower wins). Kernel default 32. */
  priority: z.number().int("must be a whole number").min(0, "must be at least 0").max(63, "must be at most 63").optional(),
  /** Send frames back out of the port they came in on (reflective relay, for VEPA). Kernel default false. */
  hairpin: z.boolean().optional(),
  /** Learn source MAC addresses seen on the port. Kernel default true. */
  learning: z.boolean().optional(),
  /** Flood unicast frames to unknown destinations out of this port. Kernel default true. */
  unicastFlood: z.boolean().optional(),
  /** Flood multicast out of this port. Kernel default true. */
  multicastFlood: z.boolean().optional(),
  /** Flood broadcast out of this port. Kernel default true. */
  broadcastFlood: z.boolean().optional(),
  /** Isolated port: talks only to non-isolated ports. Kernel default false. */
  isolated: z.boolean().optional(),
  /** BPDU guard: a BPDU received disables the port. Kernel default false. */
  bpduGuard: z.boolean().optional(),
  /** Root guard: the port may not become the root port. Kernel default false. */
  rootBlock: z.boolean().optional(),
  /** ARP/ND suppression: the bridge answers neighbour requests from its table. Kernel default false. */
  neighSuppress: z.boolean().optional(),
  /** VLAN membership of the port, reconciled as an exact set (needs a VLAN-filtering bridge). Unset: left as the kernel has it (PVID 1 untagged on a new port). */
  vlans: vlanSet.optional(),
});

export const bondPortSchema = z.strictObject({
  /** Queue the slave's traffic is sent on (`queue_id`, for tc-based steering), 0–65535. Kernel default 0. */
  queueId: z.number().int("must be a whole number").min(0, "must be at least 0").max(65535, "must be at most 65535").optional(),
  /** Slave priority for active-backup reselection (`prio`, kernel 6.0+), higher wins. Kernel default 0. */
  priority: z.number().int("must be a whole number").min(-2147483648).max(2147483647).optional(),
});

export type BridgePort = z.infer<typeof bridgePortSchema>;
export type BondPort = z.infer<typeof bondPortSchema>;

