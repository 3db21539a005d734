import { z } from "zod";
import { ipArgv, isAdminUp, type LinkJson, READ_ONLY, runChecked } from "../iproute/link";
import { ifname, ipv4Address, setOf, UNKNOWN } from "../schema";
import type { Transport } from "../transport/types";
import { netdevUnit, networkUnit, section } from "../networkd";
import type { Desired, LinkKind, Mismatch } from "./types";

const MODES = ["balance-rr", "active-backup", "balance-xor", "broadcast", "802.3ad", "balance-tlb", "balance-alb"] as const;
/** Modes with a primary slave (the kernel refuses `primary` in the others). */
const PRIMARY_MODES = ["active-backup", "balance-tlb", "balance-alb"];
/** Modes without ARP monitoring (the kernel refuses `arp_interval`, even 0, in them). */
const NO_ARP_MODES = ["802.3ad", "balance-tlb", "balance-alb"];
const INT_MAX = 2147483647;
const BOND_MAX_ARP_TARGETS = 16;

const ms = z.number().int("must be a whole number of milliseconds").min(0, "must be at least 0").max(INT_MAX, `must be at most ${INT_MAX}`);
const count = z.number().int("must be a whole number").min(0, "must be at least 0").max(INT_MAX, `must be at most ${INT_MAX}`);

/** Options set with `ip link set dev B type bond <ip> <value>`, in the order they are applied. */
const OPTIONS: Record<string, { ip: string; kernel: string }> = {
  miimon: { ip: "miimon", kernel: "miimon" },
  // The kernel keeps up/down delays as multiples of miimon: they are sent after it.
  updelay: { ip: "updelay", kernel: "updelay" },
  downdelay: { ip: "downdelay", kernel: "downdelay" },
  arpInterval: { ip: "arp_interval", kernel: "arp_interval" },
  arpIpTargets: { ip: "arp_ip_target", kernel: "arp_ip_target" },
  xmitHashPolicy: { ip: "xmit_hash_policy", kernel: "xmit_hash_policy" },
  minLinks: { ip: "min_links", kernel: "min_links" },
  // Needs the bond down (BOND_OPTFLAG_IFDOWN).
  lacpRate: { ip: "lacp_rate", kernel: "ad_lacp_rate" },
};

function optionArgs(d: Desired, field: string): string[] {
  const v = d[field];
  if (v === undefined) return [];
  // A bare `arp_ip_target` (nothing after it) sends an empty list: the kernel clears every target.
  if (field === "arpIpTargets") return v.length ? ["arp_ip_target", v.join(",")] : ["arp_ip_target"];
  return [OPTIONS[field].ip, String(v)];
}

/**
 * The bond's slaves in enslave order. `ip link show master B` lists them by
 * ifindex, and no netlink attribute carries the order; the bonding driver's
 * /proc/net/bonding/<bond> lists them in its slave-list order, which is enslave
 * order (the order that decides the bond's MAC and, without a primary, the first
 * active slave). /proc/net follows the reader's network namespace.
 */
export async function readSlaves(t: Transport, namespace: string | undefined, bond: string): Promise<string[]> {
  const cat = ["cat", `/proc/net/bonding/${bond}`];
  return parseProcSlaves(await runChecked(t, namespace ? ["ip", "netns", "exec", namespace, ...cat] : cat, READ_ONLY));
}

export function parseProcSlaves(text: string): string[] {
  return [...text.matchAll(/^Slave Interface: (\S+)\s*$/gm)].map((m) => m[1]);
}

/**
 * Does the enslave order of `slaves` count? Not for a persisted bond: networkd
 * enslaves the slaves in the order they appear at boot (it has no setting for the
 * order), so the order cannot survive a reboot, and the files pin what the order
 * would decide: the bond's MAC (its .network's MACAddress=) and, in the modes with
 * an active slave, `primary` (required there with more than one slave; see
 * persistLimits). What is left to the order is which link a balance-xor/802.3ad
 * flow hash lands on, and balance-rr's round: a permutation of equal links.
 */
export function slaveOrderCounts(d: Desired): boolean {
  return d.persist !== true;
}

/**
 * The kernel's slaves as `readFields` reports them: in enslave order, or, where the
 * order does not count (slaveOrderCounts) and they are the wanted set, in the
 * wanted order, so that a set reordered by a reboot is no drift and any other
 * difference (a slave missing or extra) still is.
 */
function inDesiredOrder(d: Desired, kernel: string[]): string[] {
  const wanted = d.slaves as string[] | undefined;
  if (slaveOrderCounts(d) || !Array.isArray(wanted)) return kernel;
  const sameSet = wanted.length === kernel.length && wanted.every((s) => kernel.includes(s));
  return sameSet ? [...wanted] : kernel;
}

export const bond = {
  resource: "Bond",
  infoKind: "bond",
  fields: {
    /**
     * Bonding mode: "balance-rr", "active-backup", "balance-xor", "broadcast",
     * "802.3ad" (LACP), "balance-tlb" or "balance-alb". Default "balance-rr" (the
     * kernel's). Changes in place, but the kernel takes a new mode only with the
     * bond down and without slaves: every slave is released and re-enslaved (in
     * order), so traffic stops for the change.
     */
    mode: z.enum(MODES).default("balance-rr"),
    /** MII link monitoring interval, milliseconds (0 = off). Kernel default 0, or 100 in 802.3ad/balance-tlb/balance-alb. */
    miimon: ms.optional(),
    /** Wait before using a slave whose link came up, milliseconds; a multiple of miimon (needs miimon > 0). Kernel default 0. */
    updelay: ms.optional(),
    /** Wait before dropping a slave whose link went down, milliseconds; a multiple of miimon (needs miimon > 0). Kernel default 0. */
    downdelay: ms.optional(),
    /** Mode 802.3ad only: LACPDU rate asked of the partner, "slow" (30 s) or "fast" (1 s). Kernel default "slow". Changing it takes the bond down briefly. */
    lacpRate: z.enum(["slow", "fast"]).optional(),
    /** How balance-xor, 802.3ad and balance-tlb/alb spread flows over slaves ("vlan+srcmac" needs Linux 5.12+). Kernel default "layer2". */
    xmitHashPolicy: z.enum(["layer2", "layer2+3", "layer3+4", "encap2+3", "encap3+4", "vlan+srcmac"]).optional(),
    /** Modes active-backup, balance-tlb and balance-alb: the slave to prefer while its link is up; one of `slaves` (required with it). */
    primary: ifname.optional(),
    /** Slaves that must have link before the bond reports carrier. Kernel default 0. */
    minLinks: count.optional(),
    /** ARP link monitoring interval, milliseconds (0 = off); not with miimon, nor in 802.3ad/balance-tlb/balance-alb. Kernel default 0. */
    arpInterval: ms.optional(),
    /** IPv4 addresses that ARP monitoring probes (at most 16), reconciled as a set. Default: unmanaged. */
    arpIpTargets: setOf(
      ipv4Address.refine((a) => !a.startsWith("0.") && a !== "255.255.255.255", "must not be 0.x.x.x or the broadcast address (the kernel refuses them)"),
      "addresses",
    )
      .refine((a) => a.length <= BOND_MAX_ARP_TARGETS, `must list at most ${BOND_MAX_ARP_TARGETS} addresses`)
      .optional(),
    /**
     * Devices to enslave, in order (enslave order decides the bond's MAC unless
     * macAddress is set). Reconciled exactly: others are released (the kernel
     * leaves a released device down), a new order re-enslaves from the first
     * difference. Each slave is taken down, enslaved and brought up. Default: unmanaged.
     * With `persist`, compared as a set (networkd enslaves in the order the slaves
     * appear at boot; README "Surviving reboots").
     */
    slaves: z.array(ifname).refine((a) => new Set(a).size === a.length, "must not contain duplicate devices").optional(),
  },
  refine(v, ctx) {
    const issue = (path: string, message: string) => ctx.addIssue({ code: "custom", path: [path], message });
    const known = (x: unknown) => x !== undefined && x !== UNKNOWN;
    const mode = v.mode as string;
    if (known(v.lacpRate) && known(mode) && mode !== "802.3ad")
      issue("lacpRate", `is only used in mode "802.3ad" (got mode "${mode}"); the kernel refuses it in other modes`);
    if (known(v.primary) && known(mode) && !PRIMARY_MODES.includes(mode))
      issue("primary", `is only used in modes ${PRIMARY_MODES.join(", ")} (got mode "${mode}"); the kernel refuses it in other modes`);
    if (known(v.arpInterval) && known(mode) && NO_ARP_MODES.includes(mode))
      issue("arpInterval", `cannot be set in mode "${mode}" (the kernel refuses ARP monitoring in ${NO_ARP_MODES.join(", ")}); leave it out`);
    if (typeof v.arpInterval === "number" && v.arpInterval > 0 && typeof v.miimon === "number" && v.miimon > 0)
      issue("arpInterval", `cannot be used together with miimon (the kernel turns one off when the other is set): set one of them to 0 or leave it out`);
    for (const f of ["updelay", "downdelay"]) {
      if (typeof v[f] !== "number") continue;
      if (v.miimon === UNKNOWN) continue;
      if (typeof v.miimon !== "number" || v.miimon === 0)
        issue(f, `needs miimon > 0 (the kernel counts ${f} in miimon intervals and refuses it without MII monitoring; got ${f} ${v[f]}, miimon ${v.miimon ?? "unset"})`);
      else if (v[f] % v.miimon !== 0)
        issue(f, `must be a multiple of miimon (${v.miimon} ms); the kernel would round ${v[f]} down to ${Math.floor(v[f] / v.miimon) * v.miimon}`);
    }
    if (Array.isArray(v.slaves)) {
      if (v.slaves.includes(v.name)) issue("slaves", `must not contain the bond itself ("${v.name}")`);
      if (known(v.master) && v.slaves.includes(v.master)) issue("slaves", `must not contain the bond's own master ("${v.master}")`);
    }
    if (known(v.primary)) {
      // The kernel reports a primary only while it is enslaved (IFLA_BOND_PRIMARY comes
      // from the slave list), so the bond must manage its slaves for primary to be verified.
      if (v.slaves === undefined) issue("primary", `needs slaves (the kernel reports a primary only while it is one of the bond's slaves)`);
      else if (Array.isArray(v.slaves) && !v.slaves.includes(UNKNOWN) && !v.slaves.includes(v.primary))
        issue("primary", `must be one of slaves (${v.slaves.join(", ") || "none"})`);
    }
  },
  replaceOn: [],
  createArgv(d) {
    // A new bond is down and has no slaves: every option is accepted here. The
    // kernel applies them in its own order (mode first, miimon before the delays).
    return [
      ipArgv(d.namespace, "link", "add", "name", d.name,
        ...(d.mtu !== undefined ? ["mtu", String(d.mtu)] : []),
        ...(d.macAddress ? ["address", d.macAddress] : []),
        "type", "bond", "mode", d.mode,
        // A new bond has no ARP targets; a bare `arp_ip_target` would take the next word as its list.
        ...Object.keys(OPTIONS).flatMap((f) => (f === "arpIpTargets" && !d.arpIpTargets?.length ? [] : optionArgs(d, f)))),
    ];
  },
  async readFields(link: LinkJson, { transport, desired }) {
    const data = link.linkinfo?.info_data ?? {};
    return {
      mode: data.mode,
      miimon: data.miimon,
      updelay: data.updelay,
      downdelay: data.downdelay,
      lacpRate: data.ad_lacp_rate,
      xmitHashPolicy: data.xmit_hash_policy,
      // Reported only while the primary is enslaved, and only in the modes that use one.
      primary: data.primary,
      minLinks: data.min_links,
      arpInterval: data.arp_interval,
      arpIpTargets: [...((data.arp_ip_target as string[] | undefined) ?? [])].sort(),
      slaves: inDesiredOrder(desired, await readSlaves(transport, desired.namespace, link.ifname)),
    };
  },
  persistLimits(d: Desired) {
    const slaves = Array.isArray(d.slaves) ? d.slaves : [];
    if (!PRIMARY_MODES.includes(d.mode) || slaves.length < 2 || d.primary !== undefined) return [];
    return [{
      field: "primary",
      reason: `is required to persist a bond in mode "${d.mode}" with more than one slave: networkd enslaves the slaves in the order they appear at boot, not in the order of slaves, so only primary decides which slave is active after a reboot; set primary (or persist: false)`,
    }];
  },
  networkd(d: Desired, facts) {
    const msec = (v: number | undefined) => (v === undefined ? undefined : `${v}ms`);
    const own = section("Bond", [
      ["Mode", d.mode],
      ["MIIMonitorSec", msec(d.miimon)],
      ["UpDelaySec", msec(d.updelay)],
      ["DownDelaySec", msec(d.downdelay)],
      ["LACPTransmitRate", d.lacpRate],
      ["TransmitHashPolicy", d.xmitHashPolicy],
      ["MinLinks", d.minLinks],
      ["ARPIntervalSec", msec(d.arpInterval)],
      ["ARPIPTargets", d.arpIpTargets?.length ? d.arpIpTargets.join(" ") : undefined],
    ]);
    // The bond's Ethernet address is its first slave's: networkd enslaves in the
    // order the slaves appear at boot, so the address is pinned (facts.macAddress,
    // the kernel's now) and the bond comes back with the same one.
    return {
      units: [netdevUnit(d.name, "bond", [own]), networkUnit(d.name, d, facts)],
      others: (d.slaves ?? []).map((s: string) => ({
        device: s,
        entries: [["Bond", d.name], ...(d.primary === s ? [["PrimarySlave", "yes"]] : [])] as [string, string][],
      })),
    };
  },
  updateArgv(d: Desired, mismatches: Mismatch[], link: LinkJson, actual: Record<string, unknown>) {
    return planBondUpdate(d, new Set(mismatches.map((m) => m.field)), isAdminUp(link), (actual.slaves as string[] | undefined) ?? [], slaveOrderCounts(d));
  },
  outputs(link: LinkJson) {
    return { activeSlave: link.linkinfo?.info_data?.active_slave };
  },
  async beforeDeleteArgv(d: Desired, link: LinkJson, { transport }) {
    // Released explicitly (rather than by the kernel while it unregisters the bond)
    // so a slave that cannot be released fails the delete before the bond is gone.
    return (await readSlaves(transport, d.namespace, link.ifname)).map((s) => ipArgv(d.namespace, "link", "set", "dev", s, "nomaster"));
  },
} satisfies LinkKind;

/**
 * Steps for the changed fields of a bond whose kernel state is `wasUp` with
 * `current` slaves (in enslave order). Options the kernel takes only from a bond
 * that is down (lacp_rate) get down → change → up; a mode change needs the bond
 * down and without slaves: down → release all → mode and every option → re-enslave
 * in order → up.
 */
export function planBondUpdate(d: Desired, changed: Set<string>, wasUp: boolean, current: string[], ordered = true): string[][] {
  const ns = d.namespace;
  const dev = (name: string, ...args: string[]) => ipArgv(ns, "link", "set", "dev", name, ...args);
  const set = (field: string) => dev(d.name, "type", "bond", ...optionArgs(d, field));
  const primary = () => dev(d.name, "type", "bond", "primary", d.primary);
  // A slave must be down to be enslaved ("Device can not be enslaved while up").
  const enslave = (s: string) => [dev(s, "down"), dev(s, "master", d.name), dev(s, "up")];
  const wanted: string[] = d.slaves ?? current;
  // The engine brings the bond up or down afterwards only when that differs from
  // its state before the change; a bond taken down here is brought back here.
  const backUp = wasUp && d.up !== false;
  const steps: string[][] = [];

  if (changed.has("mode")) {
    if (wasUp) steps.push(dev(d.name, "down"));
    for (const s of current) steps.push(dev(s, "nomaster"));
    steps.push(dev(d.name, "type", "bond", "mode", d.mode));
    // A new mode resets options (arp_interval off, miimon 100 for non-ARP modes,
    // delays rescaled): send every option, while the bond is down and empty.
    for (const f of Object.keys(OPTIONS)) if (d[f] !== undefined) steps.push(set(f));
    for (const s of wanted) steps.push(...enslave(s));
    if (d.primary !== undefined) steps.push(primary());
    if (backUp) steps.push(dev(d.name, "up"));
    return steps;
  }

  for (const f of Object.keys(OPTIONS)) {
    if (f === "lacpRate") continue;
    // A new miimon rescales the delays the kernel keeps as multiples of it.
    const rescaled = (f === "updelay" || f === "downdelay") && changed.has("miimon") && d[f] !== undefined;
    if (changed.has(f) || rescaled) steps.push(set(f));
  }
  if (changed.has("lacpRate")) {
    if (wasUp) steps.push(dev(d.name, "down"));
    steps.push(set("lacpRate"));
    if (backUp) steps.push(dev(d.name, "up"));
  }
  if (changed.has("slaves")) {
    const want = new Set(wanted);
    for (const s of current) if (!want.has(s)) steps.push(dev(s, "nomaster"));
    // Slaves that stay keep their place up to the first difference in order;
    // from there on they are released and enslaved again in the wanted order.
    const kept = current.filter((s) => want.has(s));
    if (!ordered) {
      // A persisted bond (slaveOrderCounts): the slaves that stay are left alone, the new ones join.
      for (const s of wanted) if (!kept.includes(s)) steps.push(...enslave(s));
    } else {
      let same = 0;
      while (same < kept.length && same < wanted.length && kept[same] === wanted[same]) same++;
      for (const s of kept.slice(same)) steps.push(dev(s, "nomaster"));
      for (const s of wanted.slice(same)) steps.push(...enslave(s));
    }
  }
  if (changed.has("primary") || (changed.has("slaves") && d.primary !== undefined)) steps.push(primary());
  return steps;
}
