import { z } from "zod";
import { NetdevError } from "../errors";
import { ipArgv, type LinkJson, readAllLinks } from "../iproute/link";
import { ifname } from "../schema";
import { netdevUnit, networkUnit, section } from "../networkd";
import type { Desired, LinkKind, ReadContext } from "./types";

const FLAGS = ["bridge", "private", "vepa"] as const;

/** `ip -j -d` reports the flag as a key set to true: {"mode":"l2","private":true}. */
function flagOf(data: Record<string, unknown>): string | undefined {
  return FLAGS.find((f) => data[f] === true);
}

function isIpvlan(link: LinkJson): boolean {
  const kind = link.linkinfo?.info_kind;
  return kind === "ipvlan" || kind === "ipvtap";
}

/**
 * The kernel keeps mode and flag on the parent (the ipvlan "port"), not on each
 * device, and the latest write wins for all of them: `ip link add … type ipvlan
 * mode l3` on a parent whose ipvlans are in l2 silently switches them all to l3
 * (and a create without `mode` resets the port to l3). Two resources asking for
 * different modes would flip each other on every `up`, so any write that would
 * change the port's setting under another device is refused.
 */
async function checkSiblings({ transport, desired: d }: ReadContext): Promise<void> {
  for (const s of await readAllLinks(transport, d.namespace)) {
    // `link` names the parent only when it is in this namespace (else link_netnsid is set).
    if (s.ifname === d.name || !isIpvlan(s) || s.link !== d.parent || s.link_netnsid !== undefined) continue;
    const data = s.linkinfo?.info_data ?? {};
    const flag = flagOf(data);
    if (data.mode !== d.mode || flag !== d.flag)
      throw new NetdevError(
        `${transport.label}: ${d.name} asks for ipvlan mode ${d.mode} ${d.flag} on ${d.parent}, but ${s.ifname} on the same parent is in mode ${data.mode} ${flag}; ` +
          `mode and flag belong to the parent and are shared by all its ipvlans, so changing them would change ${s.ifname} too. ` +
          `Give every ipvlan on ${d.parent} the same mode and flag (to change them, remove the others first)`,
      );
  }
}

export const ipvlan = {
  resource: "IpvlanLink",
  infoKind: "ipvlan",
  fields: {
    /** Device the ipvlan sits on, in the same namespace. Creation-only. */
    parent: ifname,
    /**
     * "l2" (the parent switches by MAC and IP; ARP/ND work), "l3" (the parent routes
     * by IP; no broadcast or multicast) or "l3s" (l3 through netfilter, for
     * iptables/conntrack). Default "l3" (the kernel's and iproute's default). Shared by
     * every ipvlan on the parent: all of them must ask for the same mode. Changes in place.
     */
    mode: z.enum(["l2", "l3", "l3s"]).default("l3"),
    /**
     * How ipvlans on the same parent reach each other: "bridge" (directly),
     * "private" (never) or "vepa" (out through the parent and back). Default
     * "bridge". Shared by every ipvlan on the parent like mode. Changes in place.
     */
    flag: z.enum(FLAGS).default("bridge"),
  },
  refine(v, ctx) {
    if (v.macAddress !== undefined)
      ctx.addIssue({
        code: "custom",
        path: ["macAddress"],
        message: `cannot be set on an ipvlan device: it always uses its parent's Ethernet address (got ${v.macAddress}); use a MacvlanLink for an address of its own`,
      });
  },
  replaceOn: ["parent"],
  createArgv(d: Desired) {
    return [
      ipArgv(d.namespace, "link", "add", "link", d.parent, "name", d.name,
        ...(d.mtu !== undefined ? ["mtu", String(d.mtu)] : []),
        "type", "ipvlan", "mode", d.mode, d.flag),
    ];
  },
  beforeWrite: checkSiblings,
  readFields(link: LinkJson) {
    const data = link.linkinfo?.info_data ?? {};
    return { parent: link.link, mode: data.mode, flag: flagOf(data) };
  },
  networkd(d: Desired) {
    // An ipvlan always carries its parent's Ethernet address: nothing to pin.
    const own = section("IPVLAN", [["Mode", d.mode.toUpperCase()], ["Flags", d.flag]]);
    return {
      units: [netdevUnit(d.name, "ipvlan", [own]), networkUnit(d.name, d, {})],
      others: [{ device: d.parent, entries: [["IPVLAN", d.name]] as [string, string][] }],
    };
  },
  updateArgv(d: Desired, mismatches) {
    const parent = mismatches.find((m) => m.field === "parent");
    if (parent) throw new Error(`${d.name}: its parent is ${parent.actual ?? "not visible"}, not ${d.parent}; the parent is fixed at creation, so replace the device`);
    // Mode and flag change in place, but always together: iproute sends the flag
    // (bridge when none is named) whenever `mode` is given, so `mode l2` alone
    // would reset a private or vepa flag.
    if (mismatches.some((m) => m.field === "mode" || m.field === "flag"))
      return [ipArgv(d.namespace, "link", "set", "dev", d.name, "type", "ipvlan", "mode", d.mode, d.flag)];
    return [];
  },
} satisfies LinkKind;
