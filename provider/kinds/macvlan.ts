import { z } from "zod";
import { ipArgv, type LinkJson } from "../iproute/link";
import { ifname, macAddress, setOf, UNKNOWN } from "../schema";
import { netdevUnit, networkUnit, section } from "../networkd";
import type { Desired, LinkKind, Mismatch } from "./types";

/**
 * macvlan and macvtap are one driver (macvtap is macvlan plus a character device
 * /dev/tapN that QEMU opens), so they share fields, argv and parsing; only the
 * `type` word and the extra output differ.
 */
const MODES = ["private", "vepa", "bridge", "passthru", "source"] as const;

const fields = {
  /** Device the macvlan sits on (e.g. the host's uplink), in the same namespace. Creation-only. */
  parent: ifname,
  /**
   * How endpoints on the same parent reach each other: "bridge" (directly, inside
   * the host), "vepa" (out through the parent and back: needs a hairpin switch),
   * "private" (never), "passthru" (one endpoint owns the parent: it must be the
   * parent's only macvlan, shares the parent's Ethernet address — setting
   * macAddress changes the parent's — and receives all its traffic) or "source"
   * (frames are accepted by source MAC, see sourceMacs). Default "bridge" (the
   * kernel's own default is "vepa"; we always pass the mode). Changes in place,
   * except into or out of "passthru", which replaces the device.
   */
  mode: z.enum(MODES).default("bridge"),
  /**
   * Mode "source" only: the sender MAC addresses whose frames this device
   * receives, reconciled as an exact set. The kernel accepts an empty list (the
   * device then receives nothing by source), so leaving this unset is allowed and
   * means the list is not managed here (e.g. an 802.1X daemon maintains it); []
   * keeps it empty. Default: unmanaged.
   */
  sourceMacs: setOf(macAddress, "MAC addresses").optional(),
};

function modeChange(olds: Record<string, any>, news: Record<string, any>): string[] {
  const from = olds.mode;
  const to = news.mode;
  // During preview the new mode may be unknown; the real diff at apply time decides.
  if (from === undefined || to === undefined || from === UNKNOWN || to === UNKNOWN || from === to) return [];
  // macvlan_changelink refuses (EINVAL) to enter or leave passthru: the parent's
  // promiscuity, Ethernet address and receive path are set up only at creation.
  return from === "passthru" || to === "passthru" ? ["mode"] : [];
}

function macvKind<R extends string, K extends "macvlan" | "macvtap">(resource: R, infoKind: K) {
  return {
    resource,
    infoKind,
    fields,
    refine(v, ctx) {
      if (v.sourceMacs !== undefined && v.mode !== "source" && v.mode !== UNKNOWN)
        ctx.addIssue({
          code: "custom",
          path: ["sourceMacs"],
          message: `is only used in mode "source" (got mode "${v.mode}"); the kernel refuses a MAC list in any other mode`,
        });
    },
    replaceOn: ["parent"],
    extraReplaces: modeChange,
    createArgv(d: Desired) {
      return [
        ipArgv(d.namespace, "link", "add", "link", d.parent, "name", d.name,
          ...(d.mtu !== undefined ? ["mtu", String(d.mtu)] : []),
          ...(d.macAddress ? ["address", d.macAddress] : []),
          "type", infoKind, "mode", d.mode,
          // `macaddr add` repeated in one `ip link add` keeps only the last address
          // (one netlink attribute); `macaddr set` sends the whole list.
          ...(d.mode === "source" && d.sourceMacs?.length ? ["macaddr", "set", ...d.sourceMacs] : [])),
      ];
    },
    readFields(link: LinkJson) {
      const data = link.linkinfo?.info_data ?? {};
      // The kernel reports the list (newest first) only in mode source, and omits
      // macaddr_data when it is empty; leaving source mode flushes it.
      const macs = data.mode === "source" ? ((data.macaddr_data as string[] | undefined) ?? []).map((m) => m.toLowerCase()).sort() : undefined;
      return { parent: link.link, mode: data.mode, sourceMacs: macs };
    },
    networkd(d: Desired, facts) {
      const own = section(infoKind.toUpperCase(), [["Mode", d.mode], ...(d.mode === "source" ? (d.sourceMacs ?? []).map((m: string): [string, string] => ["SourceMACAddress", m]) : [])]);
      return {
        units: [netdevUnit(d.name, infoKind, [own]), networkUnit(d.name, d, facts)],
        others: [{ device: d.parent, entries: [[infoKind.toUpperCase(), d.name]] as [string, string][] }],
      };
    },
    updateArgv(d: Desired, mismatches: Mismatch[]) {
      const set = (...args: string[]) => ipArgv(d.namespace, "link", "set", "dev", d.name, "type", infoKind, ...args);
      const steps: string[][] = [];
      const by = new Map(mismatches.map((m) => [m.field, m]));
      const parent = by.get("parent");
      if (parent) throw new Error(`${d.name}: its parent is ${parent.actual ?? "not visible"}, not ${d.parent}; the parent is fixed at creation, so replace the device`);
      const mode = by.get("mode");
      if (mode) {
        if (modeChange({ mode: mode.actual }, { mode: d.mode }).length)
          throw new Error(`${d.name}: mode ${mode.actual} cannot be changed to ${d.mode} in place (passthru is set up only at creation); replace the device`);
        steps.push(set("mode", d.mode));
      }
      const macs = by.get("sourceMacs");
      if (macs) {
        // add/del touch only the difference; `macaddr set` would flush the list
        // first, dropping frames from sources that stay listed.
        const have = new Set((macs.actual as string[] | undefined) ?? []);
        const want = new Set<string>(d.sourceMacs);
        for (const m of have) if (!want.has(m)) steps.push(set("macaddr", "del", m));
        for (const m of want) if (!have.has(m)) steps.push(set("macaddr", "add", m));
      }
      return steps;
    },
  } satisfies LinkKind;
}

/** A macvlan device: its own Ethernet address on a parent's wire (container networking). */
export const macvlan = macvKind("MacvlanLink", "macvlan");

/** A macvtap device: a macvlan whose frames a VM reads through /dev/tap<ifindex>. */
export const macvtap = {
  ...macvKind("MacvtapLink", "macvtap"),
  outputs(link: LinkJson) {
    // The kernel names the character device tap<ifindex> in devtmpfs, so it appears
    // without udev. /dev is not per-namespace while ifindexes are: a macvtap in a
    // namespace whose ifindex equals another namespace's macvtap gets no node of its
    // own (the first one keeps /dev/tapN); its major:minor is in
    // /sys/class/net/<name>/macvtap/tap<ifindex>/dev inside the namespace.
    return { tapDevicePath: `/dev/tap${link.ifindex}` };
  },
} satisfies LinkKind;
