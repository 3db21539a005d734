/**
 * Port configuration: what a device is as a port of its master. Options of a bridge
 * port (`ip link set dev X type bridge_slave …`, read back from `ip -j -d link show`
 * info_slave_data), its VLAN membership (`bridge vlan add/del`, read back with
 * `bridge -j vlan show`), and a bond slave's options (`type bond_slave`). The same
 * VLAN logic serves a bridge's own membership (`bridge vlan … self`).
 *
 * The engine calls portState (read) and portSteps (plan); kinds know nothing of it.
 */
import { isDeepStrictEqual } from "node:util";
import type { z } from "zod";
import { CommandError } from "./errors";
import { bridgeArgv, ipArgv, LINK_ONLY, type LinkJson, parseJson, READ_ONLY, readLink } from "./iproute/link";
import type { Mismatch } from "./kinds/types";
import { type BondPort, type BridgePort, canonical, expand, type VlanEntry, type VlanFlags } from "./portSchema";
import type { Transport } from "./transport/types";

export { bondPortSchema, bridgePortSchema, vlanSet } from "./portSchema";

const onOff = (v: boolean) => (v ? "on" : "off");

/** Bridge port options: input name → `bridge_slave` keyword (also its info_slave_data key, except where noted). */
const BRIDGE_PORT_OPTIONS = {
  cost: { ip: "cost", json: "cost", arg: String },
  priority: { ip: "priority", json: "priority", arg: String },
  hairpin: { ip: "hairpin", json: "hairpin", arg: onOff },
  learning: { ip: "learning", json: "learning", arg: onOff },
  unicastFlood: { ip: "flood", json: "flood", arg: onOff },
  multicastFlood: { ip: "mcast_flood", json: "mcast_flood", arg: onOff },
  broadcastFlood: { ip: "bcast_flood", json: "bcast_flood", arg: onOff },
  isolated: { ip: "isolated", json: "isolated", arg: onOff },
  bpduGuard: { ip: "guard", json: "guard", arg: onOff },
  rootBlock: { ip: "root_block", json: "root_block", arg: onOff },
  neighSuppress: { ip: "neigh_suppress", json: "neigh_suppress", arg: onOff },
} as const;

const BOND_PORT_OPTIONS = {
  queueId: { ip: "queue_id", json: "queue_id", arg: String },
  priority: { ip: "prio", json: "prio", arg: String },
} as const;

/** `bridge -j vlan show dev X` → the device's VLAN set (self entries for a bridge itself). */
export function parseVlans(json: unknown, dev: string): VlanEntry[] {
  const map = new Map<number, VlanFlags>();
  const devs = Array.isArray(json) ? (json as { ifname: string; vlans?: { vlan: number; vlanEnd?: number; flags?: string[] }[] }[]) : [];
  for (const v of devs.find((d) => d.ifname === dev)?.vlans ?? []) {
    const flags = { pvid: (v.flags ?? []).includes("PVID"), untagged: (v.flags ?? []).includes("Egress Untagged") };
    for (let id = v.vlan; id <= (v.vlanEnd ?? v.vlan); id++) map.set(id, { ...flags });
  }
  return canonical(map);
}

export async function readVlans(t: Transport, namespace: string | undefined, dev: string): Promise<VlanEntry[]> {
  const argv = bridgeArgv(namespace, "-j", "vlan", "show", "dev", dev);
  const r = await t.run(argv, READ_ONLY);
  if (r.code !== 0) throw new CommandError(t.label, argv, r.code, r.stderr);
  return parseVlans(parseJson(r.stdout, t.label, argv), dev);
}

/**
 * `bridge vlan` lines taking `have` to `want`: removals first, then additions (an add of
 * an id the port has rewrites its flags; a new PVID takes the flag from the old one).
 */
export function vlanSteps(namespace: string | undefined, dev: string, want: VlanEntry[], have: VlanEntry[], self = false): string[][] {
  const w = expand(want);
  const h = expand(have);
  const tail = self ? ["self"] : [];
  const del = new Map([...h.keys()].filter((v) => !w.has(v)).map((v) => [v, { pvid: false, untagged: false }]));
  const add = new Map([...w].filter(([v, f]) => !isDeepStrictEqual(h.get(v), f)));
  return [
    ...canonical(del).map((e) => bridgeArgv(namespace, "vlan", "del", "vid", String(e.vid), "dev", dev, ...tail)),
    ...canonical(add).map((e) => bridgeArgv(namespace, "vlan", "add", "vid", String(e.vid), "dev", dev, ...(e.pvid ? ["pvid"] : []), ...(e.untagged ? ["untagged"] : []), ...tail)),
  ];
}

/**
 * The kernel's view of the port fields `d` asks for (only those: other options are
 * not managed). Needs the port's VLANs read only when `vlans` is asked for.
 */
export async function portState(t: Transport, d: { namespace?: string; name: string; master?: string; bridgePort?: BridgePort; bondPort?: BondPort }, link: LinkJson): Promise<Record<string, unknown>> {
  const out: Record<string, unknown> = {};
  const kind = link.linkinfo?.info_slave_kind;
  const data = link.linkinfo?.info_slave_data ?? {};
  if (d.bridgePort) {
    const view: Record<string, unknown> = {};
    for (const key of Object.keys(d.bridgePort)) {
      if (key === "vlans") view.vlans = kind === "bridge" && link.master === d.master ? await readVlans(t, d.namespace, d.name) : await vlansOnJoining(t, d);
      else view[key] = kind === "bridge" ? data[BRIDGE_PORT_OPTIONS[key as keyof typeof BRIDGE_PORT_OPTIONS].json] : undefined;
    }
    out.bridgePort = view;
  }
  if (d.bondPort) {
    const view: Record<string, unknown> = {};
    for (const key of Object.keys(d.bondPort)) view[key] = kind === "bond" ? data[BOND_PORT_OPTIONS[key as keyof typeof BOND_PORT_OPTIONS].json] : undefined;
    out.bondPort = view;
  }
  return out;
}

/**
 * The VLANs a device will have right after it is enslaved to `d.master` in this plan:
 * the kernel gives a new port the bridge's default PVID, untagged (none when it is 0).
 */
async function vlansOnJoining(t: Transport, d: { namespace?: string; master?: string }): Promise<VlanEntry[]> {
  if (!d.master) return [];
  const master = await readLink(t, d.namespace, d.master, LINK_ONLY);
  const pvid = master?.linkinfo?.info_kind === "bridge" ? Number(master.linkinfo.info_data?.vlan_default_pvid ?? 0) : 0;
  return pvid > 0 ? [{ vid: pvid, pvid: true, untagged: true }] : [];
}

/** Cross-field rules of the port inputs, for every resource that takes them. */
export function portRefine(v: { master?: unknown; bridgePort?: unknown; bondPort?: unknown }, ctx: z.RefinementCtx): void {
  for (const field of PORT_FIELDS)
    if (v[field] !== undefined && v.master === undefined)
      ctx.addIssue({ code: "custom", path: [field], message: `needs master (the ${field === "bridgePort" ? "bridge" : "bond"} this device is a port of)` });
  if (v.bridgePort !== undefined && v.bondPort !== undefined) ctx.addIssue({ code: "custom", path: ["bondPort"], message: "cannot be set together with bridgePort: a device has one master" });
}

export const PORT_FIELDS = ["bridgePort", "bondPort"] as const;

/**
 * Lines that take the port to `d`, one option per line (a multi-option `ip link set`
 * stops at the first failure). Runs after enslaving (the engine plans it last).
 */
export function portSteps(d: { namespace?: string; name: string; bridgePort?: BridgePort; bondPort?: BondPort }, mismatches: Mismatch[]): string[][] {
  const steps: string[][] = [];
  for (const m of mismatches) {
    const want = (m.desired ?? {}) as Record<string, unknown>;
    const have = (m.actual ?? {}) as Record<string, unknown>;
    const [type, options] = m.field === "bridgePort" ? ["bridge_slave", BRIDGE_PORT_OPTIONS] as const : ["bond_slave", BOND_PORT_OPTIONS] as const;
    for (const [key, value] of Object.entries(want)) {
      if (key === "vlans" || value === undefined || isDeepStrictEqual(value, have[key])) continue;
      const o = (options as Record<string, { ip: string; arg: (v: never) => string }>)[key];
      steps.push(ipArgv(d.namespace, "link", "set", "dev", d.name, "type", type, o.ip, o.arg(value as never)));
    }
    if (m.field === "bridgePort" && want.vlans !== undefined && !isDeepStrictEqual(want.vlans, have.vlans))
      steps.push(...vlanSteps(d.namespace, d.name, want.vlans as VlanEntry[], (have.vlans ?? []) as VlanEntry[]));
  }
  return steps;
}
