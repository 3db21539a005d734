import { z } from "zod";
import { readVlans, vlanSteps } from "../bridgePort";
import { vlanSet } from "../portSchema";
import { ipArgv } from "../iproute/link";
import { netdevUnit, networkUnit, sec, section } from "../networkd";
import type { Desired, LinkKind } from "./types";

/**
 * Bridge options. The kernel keeps bridge timers in clock_t (centiseconds) and
 * `ip` passes and prints them raw; inputs are in seconds and converted here.
 */
const OPTIONS: Record<string, { ip: string; toKernel: (v: any) => string; fromKernel: (v: any) => unknown }> = {
  stp: { ip: "stp_state", toKernel: (v) => (v ? "1" : "0"), fromKernel: (v) => v !== undefined ? Number(v) !== 0 : undefined },
  forwardDelay: { ip: "forward_delay", toKernel: centis, fromKernel: seconds },
  helloTime: { ip: "hello_time", toKernel: centis, fromKernel: seconds },
  maxAge: { ip: "max_age", toKernel: centis, fromKernel: seconds },
  ageingTime: { ip: "ageing_time", toKernel: centis, fromKernel: seconds },
  priority: { ip: "priority", toKernel: String, fromKernel: (v) => v },
  vlanFiltering: { ip: "vlan_filtering", toKernel: (v) => (v ? "1" : "0"), fromKernel: (v) => v !== undefined ? Number(v) !== 0 : undefined },
  vlanDefaultPvid: { ip: "vlan_default_pvid", toKernel: String, fromKernel: (v) => v },
  vlanProtocol: { ip: "vlan_protocol", toKernel: String, fromKernel: (v) => v },
  mcastSnooping: { ip: "mcast_snooping", toKernel: (v) => (v ? "1" : "0"), fromKernel: (v) => v !== undefined ? Number(v) !== 0 : undefined },
};

function centis(seconds: number): string {
  return String(Math.round(seconds * 100));
}

function seconds(centiseconds: unknown): number | undefined {
  return typeof centiseconds === "number" ? centiseconds / 100 : undefined;
}

const hundredths = (min: number, max: number) =>
  z.number().min(min, `must be at least ${min}`).max(max, `must be at most ${max}`).refine((v) => Number.isInteger(Math.round(v * 100) ) && Math.abs(v * 100 - Math.round(v * 100)) < 1e-6, "must have at most two decimals (the kernel counts in 1/100 s)");

function optionArgs(d: Desired, fields: string[]): string[] {
  return fields.flatMap((f) => (d[f] === undefined ? [] : [OPTIONS[f].ip, OPTIONS[f].toKernel(d[f])]));
}

export const bridge = {
  resource: "Bridge",
  infoKind: "bridge",
  fields: {
    /** Spanning Tree Protocol on (true) or off. Default: kernel default (off). */
    stp: z.boolean().optional(),
    /** STP forward delay, seconds (2–30 while STP is on). Kernel default 15. */
    forwardDelay: hundredths(0, 30).optional(),
    /** STP hello time, seconds (1–10). Kernel default 2. */
    helloTime: hundredths(1, 10).optional(),
    /** STP max message age, seconds (6–40). Kernel default 20. */
    maxAge: hundredths(6, 40).optional(),
    /** How long a learned MAC address stays in the forwarding database, seconds. Kernel default 300. */
    ageingTime: hundredths(0, 1_000_000).optional(),
    /** Bridge priority for root election (0–65535, lower wins). Kernel default 32768. */
    priority: z.number().int().min(0).max(65535).optional(),
    /** VLAN-aware bridge. Kernel default false. */
    vlanFiltering: z.boolean().optional(),
    /** PVID given to new ports when VLAN filtering is on (0 = none, 1–4094). Kernel default 1. */
    vlanDefaultPvid: z.number().int().min(0).max(4094).optional(),
    /** VLAN protocol used for filtering: "802.1Q" (default) or "802.1ad". */
    vlanProtocol: z.enum(["802.1Q", "802.1ad"]).optional(),
    /** IGMP/MLD snooping. Kernel default true. */
    mcastSnooping: z.boolean().optional(),
    /**
     * VLAN membership of the bridge device itself (`bridge vlan … self`): which VLANs
     * reach the host's own stack through the bridge's interface. A list of
     * `{ vid, pvid?, untagged? }`, reconciled as an exact set. Unset: left as the kernel
     * has it (the default PVID, untagged).
     */
    vlans: vlanSet.optional(),
  },
  refine(v, ctx) {
    if (v.stp === true && typeof v.forwardDelay === "number" && v.forwardDelay < 2)
      ctx.addIssue({ code: "custom", path: ["forwardDelay"], message: `must be 2–30 seconds while stp is on (got ${v.forwardDelay})` });
  },
  replaceOn: [],
  createArgv(d) {
    const add = ipArgv(d.namespace, "link", "add", "name", d.name,
      ...(d.macAddress ? ["address", d.macAddress] : []),
      "type", "bridge", ...optionArgs(d, Object.keys(OPTIONS)));
    // An mtu given to `link add` is not marked as set by the user (BROPT_MTU_SET_BY_USER),
    // so the kernel resets it to the ports' minimum as soon as the first port joins.
    // Only `link set mtu` makes it stick.
    return d.mtu !== undefined ? [add, ipArgv(d.namespace, "link", "set", "dev", d.name, "mtu", String(d.mtu))] : [add];
  },
  readFields(link, { desired, transport }) {
    const data = link.linkinfo?.info_data ?? {};
    const fields: Record<string, unknown> = Object.fromEntries(Object.entries(OPTIONS).map(([f, o]) => [f, o.fromKernel(data[o.ip])]));
    // While kernel STP signals a topology change, the kernel ages entries out after
    // 2 × forward_delay and reports that as ageing_time; the configured value is not
    // readable until the change ends, so it is taken as asked.
    if (data.stp_state === 1 && data.topology_change === 1) fields.ageingTime = desired.ageingTime;
    // The bridge's own VLANs cost a command: read only when managed.
    if (desired.vlans === undefined) return fields;
    return readVlans(transport, desired.namespace, desired.name).then((vlans) => ({ ...fields, vlans }));
  },
  networkd(d, facts) {
    const own = section("Bridge", [
      ["STP", d.stp],
      ["ForwardDelaySec", d.forwardDelay === undefined ? undefined : sec(d.forwardDelay)],
      ["HelloTimeSec", d.helloTime === undefined ? undefined : sec(d.helloTime)],
      ["MaxAgeSec", d.maxAge === undefined ? undefined : sec(d.maxAge)],
      ["AgeingTimeSec", d.ageingTime === undefined ? undefined : sec(d.ageingTime)],
      ["Priority", d.priority],
      ["VLANFiltering", d.vlanFiltering],
      ["DefaultPVID", d.vlanDefaultPvid === 0 ? "none" : d.vlanDefaultPvid],
      ["VLANProtocol", d.vlanProtocol?.toLowerCase()],
      ["MulticastSnooping", d.mcastSnooping],
    ]);
    return { units: [netdevUnit(d.name, "bridge", [own]), networkUnit(d.name, d, facts)], others: [] };
  },
  updateArgv(d, mismatches) {
    // Every bridge option is changeable in place (br_changelink); one per line.
    // VLAN filtering goes first: the bridge's own VLANs are set once it is on.
    const options = mismatches.filter((m) => m.field !== "vlans").map((m) => ipArgv(d.namespace, "link", "set", "dev", d.name, "type", "bridge", ...optionArgs(d, [m.field])));
    const vlans = mismatches.find((m) => m.field === "vlans");
    return [...options, ...(vlans ? vlanSteps(d.namespace, d.name, d.vlans, (vlans.actual ?? []) as never, true) : [])];
  },
} satisfies LinkKind;
