import { z } from "zod";
import { ipArgv, type LinkJson } from "../iproute/link";
import { ifname } from "../schema";
import { netdevUnit, networkUnit, section } from "../networkd";
import type { Desired, LinkKind, Mismatch } from "./types";

const U32_MAX = 4294967295;

/** Kernel flag name (as `ip -j -d` prints it) and `ip` keyword of each boolean field. */
const FLAGS = {
  reorderHdr: { kernel: "REORDER_HDR", ip: "reorder_hdr" },
  gvrp: { kernel: "GVRP", ip: "gvrp" },
  mvrp: { kernel: "MVRP", ip: "mvrp" },
  looseBinding: { kernel: "LOOSE_BINDING", ip: "loose_binding" },
} as const;
type Flag = keyof typeof FLAGS;

const decimal = /^(0|[1-9][0-9]*)$/;

/**
 * A priority map as an object { from: to }. The kernel masks out-of-range values
 * without an error (ingress `9:5` becomes 1→5, egress `5:8` becomes 5→0), so the
 * ranges are checked here. A mapping to 0 is the same as no mapping (the kernel
 * stores it as 0 and stops reporting it), so such entries are dropped.
 */
function qosMap(fromMax: number, toMax: number, from: string, to: string) {
  return z
    .record(
      z.string(),
      z.number().int(`values must be whole numbers (${to})`).min(0, `values must be ${to} (0–${toMax})`).max(toMax, `values must be ${to} (0–${toMax})`),
    )
    .superRefine((m, ctx) => {
      for (const k of Object.keys(m))
        if (!decimal.test(k) || Number(k) > fromMax)
          ctx.addIssue({ code: "custom", message: `key "${k}" is not one of the ${from} (whole numbers 0–${fromMax}, no leading zeros)` });
    })
    .transform((m) => Object.fromEntries(Object.entries(m).filter(([, v]) => v !== 0).map(([k, v]) => [String(Number(k)), v])));
}

export const vlan = {
  resource: "Vlan",
  infoKind: "vlan",
  fields: {
    /** Device the VLAN is stacked on (a NIC, bond or bridge), in the same namespace. Creation-only. */
    parent: ifname,
    /** 802.1Q VLAN id, 1–4094. Creation-only (the kernel ignores an id change in place). */
    vlanId: z.number().int("must be a whole number").min(1, "must be 1–4094").max(4094, "must be 1–4094"),
    /** Tag protocol: "802.1Q" (customer VLAN) or "802.1ad" (QinQ service VLAN). Default "802.1Q". Creation-only. */
    protocol: z.enum(["802.1Q", "802.1ad"]).default("802.1Q"),
    /** Move the tag out of the frame on receive, so taps see plain Ethernet. Kernel default true. */
    reorderHdr: z.boolean().optional(),
    /** Register the VLAN with the switch via GVRP. Kernel default false. */
    gvrp: z.boolean().optional(),
    /** Register the VLAN with the switch via MVRP. Kernel default false. */
    mvrp: z.boolean().optional(),
    /** Keep the VLAN's operational state independent of the parent's. Kernel default false. */
    looseBinding: z.boolean().optional(),
    /**
     * Received frames: VLAN priority (PCP, key "0"–"7") → packet (skb) priority
     * (0–4294967295), e.g. { "5": 5 }. Reconciled as an exact map; unlisted
     * priorities map to 0. Default: unmanaged.
     */
    ingressQosMap: qosMap(7, U32_MAX, "VLAN priorities", "packet priorities 0–4294967295").optional(),
    /**
     * Sent frames: packet (skb) priority (key "0"–"4294967295") → VLAN priority
     * (PCP, 0–7), e.g. { "6": 6 }. Reconciled as an exact map; unlisted
     * priorities map to 0. Default: unmanaged.
     */
    egressQosMap: qosMap(U32_MAX, 7, "packet priorities", "VLAN priorities").optional(),
  },
  refine(v, ctx) {
    if (v.parent !== undefined && v.parent === v.name)
      ctx.addIssue({ code: "custom", path: ["parent"], message: `must not be the VLAN device itself ("${v.name}")` });
  },
  replaceOn: ["parent", "vlanId", "protocol"],
  createArgv(d) {
    return [
      ipArgv(d.namespace, "link", "add", "link", d.parent, "name", d.name,
        ...(d.mtu !== undefined ? ["mtu", String(d.mtu)] : []),
        ...(d.macAddress ? ["address", d.macAddress] : []),
        "type", "vlan", "id", String(d.vlanId), "protocol", d.protocol,
        ...(Object.keys(FLAGS) as Flag[]).flatMap((f) => (d[f] === undefined ? [] : [FLAGS[f].ip, d[f] ? "on" : "off"])),
        ...(d.ingressQosMap && Object.keys(d.ingressQosMap).length ? ["ingress-qos-map", ...mappings(d.ingressQosMap, {})] : []),
        ...(d.egressQosMap && Object.keys(d.egressQosMap).length ? ["egress-qos-map", ...mappings(d.egressQosMap, {})] : [])),
    ];
  },
  readFields(link: LinkJson) {
    const data = link.linkinfo?.info_data ?? {};
    // The kernel omits `flags` when none is set and each map when it is empty.
    const flags = (data.flags as string[] | undefined) ?? [];
    return {
      parent: link.link,
      vlanId: data.id,
      protocol: data.protocol,
      ...Object.fromEntries((Object.keys(FLAGS) as Flag[]).map((f) => [f, flags.includes(FLAGS[f].kernel)])),
      ingressQosMap: mapOf(data.ingress_qos),
      egressQosMap: mapOf(data.egress_qos),
    };
  },
  networkd(d: Desired, facts) {
    const qos = (m: Record<string, number> | undefined) =>
      m && Object.keys(m).length ? Object.entries(m).sort(([a], [b]) => Number(a) - Number(b)).map(([from, to]) => `${from}-${to}`).join(" ") : undefined;
    const own = section("VLAN", [
      ["Id", d.vlanId],
      ["Protocol", d.protocol.toLowerCase()],
      ["ReorderHeader", d.reorderHdr],
      ["GVRP", d.gvrp],
      ["MVRP", d.mvrp],
      ["LooseBinding", d.looseBinding],
      ["IngressQOSMaps", qos(d.ingressQosMap)],
      ["EgressQOSMaps", qos(d.egressQosMap)],
    ]);
    return {
      units: [netdevUnit(d.name, "vlan", [own]), networkUnit(d.name, d, facts)],
      others: [{ device: d.parent, entries: [["VLAN", d.name]] as [string, string][] }],
    };
  },
  updateArgv(d: Desired, mismatches: Mismatch[]) {
    const set = (...args: string[]) => ipArgv(d.namespace, "link", "set", "dev", d.name, "type", "vlan", ...args);
    const steps: string[][] = [];
    for (const m of mismatches) {
      if (m.field === "vlanId") steps.push(set("id", String(d.vlanId)));
      // vlan_changelink ignores IFLA_VLAN_ID and IFLA_VLAN_PROTOCOL and returns
      // success; the read-back after this write is what reports the change as
      // not made (diff replaces the device for these fields instead).
      else if (m.field === "protocol") steps.push(set("protocol", d.protocol));
      else if (m.field in FLAGS) steps.push(set(FLAGS[m.field as Flag].ip, d[m.field] ? "on" : "off"));
      else if (m.field === "ingressQosMap") steps.push(set("ingress-qos-map", ...mappings(d.ingressQosMap, m.actual)));
      else if (m.field === "egressQosMap") steps.push(set("egress-qos-map", ...mappings(d.egressQosMap, m.actual)));
      // parent: no `ip link set` form moves a VLAN to another parent; the
      // read-back names the mismatch (diff replaces the device instead).
    }
    return steps;
  },
} satisfies LinkKind;

/** `ip` FROM:TO words that turn the kernel's map `have` into `want`: entries to drop are mapped to 0. */
export function mappings(want: Record<string, number>, have: unknown): string[] {
  const current = (have ?? {}) as Record<string, number>;
  const keys = [...new Set([...Object.keys(current), ...Object.keys(want)])].sort((a, b) => Number(a) - Number(b));
  return keys.filter((k) => (want[k] ?? 0) !== (current[k] ?? 0)).map((k) => `${k}:${want[k] ?? 0}`);
}

/** The kernel's [{from, to}] list as a { from: to } object. */
export function mapOf(list: unknown): Record<string, number> {
  return Object.fromEntries(((list as { from: number; to: number }[] | undefined) ?? []).map((e) => [String(e.from), e.to]));
}
