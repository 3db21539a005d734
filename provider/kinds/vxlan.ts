import { isIP } from "node:net";
import { z } from "zod";
import { NetdevError } from "../errors";
import { floodAppendArgv, floodDelArgv, floodDestinations, readFdb } from "../iproute/fdb";
import { ipArgv, type LinkJson } from "../iproute/link";
import { canonicalIp, ifname, ipAddress, setOf, UNKNOWN } from "../schema";
import { netdevUnit, networkUnit, type PersistLimit, section } from "../networkd";
import type { Desired, LinkKind, Mismatch } from "./types";

const VNI_MAX = 16_777_215;

/**
 * IPv4 or IPv6 for an address the schema accepts, undefined for anything else
 * (absent, preview placeholder, or a value its own field already rejects: the
 * cross-field rules still see those).
 */
function familyOf(ip: unknown): 4 | 6 | undefined {
  if (typeof ip !== "string" || ip === UNKNOWN || ip.includes("%")) return undefined;
  const f = isIP(ip);
  return f === 4 || f === 6 ? f : undefined;
}

function isMulticast(ip: string): boolean {
  const f = familyOf(ip);
  if (f === 4) return Number(ip.split(".")[0]) >= 224 && Number(ip.split(".")[0]) <= 239;
  return f === 6 && canonicalIp(ip).startsWith("ff");
}

function isUnspecified(ip: string): boolean {
  return ip === "0.0.0.0" || (familyOf(ip) === 6 && canonicalIp(ip) === "::");
}

/** Why `ip` is unusable as a unicast tunnel endpoint, or undefined when it is fine. */
function notUnicast(ip: unknown): string | undefined {
  if (typeof ip !== "string" || familyOf(ip) === undefined) return undefined;
  if (isMulticast(ip)) return "is a multicast address";
  if (isUnspecified(ip)) return "is the unspecified address";
  return undefined;
}

/** The fields that fix the device's address family, in the order they are reported. */
const FAMILY_FIELDS = ["local", "remote", "group", "remotes"] as const;

/** [field, family, address] for every address in the values, in FAMILY_FIELDS order. */
function families(v: Record<string, any>): [string, 4 | 6, string][] {
  const out: [string, 4 | 6, string][] = [];
  for (const field of FAMILY_FIELDS) {
    const values: unknown[] = field === "remotes" ? (Array.isArray(v.remotes) ? v.remotes : []) : [v[field]];
    for (const ip of values) {
      const f = familyOf(ip);
      if (f) out.push([field, f, ip as string]);
    }
  }
  return out;
}

/**
 * Replacements the values decide. The kernel refuses to switch TTL inheritance on
 * in place ("cannot change TTL_INHERIT flag") and silently keeps it on when a
 * number is set, so entering or leaving "inherit" replaces the device. A device's
 * address family is fixed at creation ("New local address family does not match
 * old"); one created without any address is IPv4.
 */
function valueReplaces(olds: Record<string, any>, news: Record<string, any>): string[] {
  const out: string[] = [];
  const known = (x: unknown) => x !== undefined && x !== UNKNOWN;
  if (known(olds.ttl) && known(news.ttl) && (olds.ttl === "inherit") !== (news.ttl === "inherit")) out.push("ttl");
  const oldFamily = families(olds)[0]?.[1] ?? 4;
  const changed = families(news).find(([, f]) => f !== oldFamily);
  if (changed) out.push(changed[0]);
  return out;
}

function tosArg(tos: number | "inherit"): string {
  // iproute2 parses a TOS number as hex even without 0x ("10" is 16), so always write 0x.
  return tos === "inherit" ? "inherit" : `0x${tos.toString(16)}`;
}

/** `ip -j` prints tos as hex text and omits it when 0; 1 is the kernel's "inherit". */
function parseTos(raw: unknown): number | "inherit" {
  const n = typeof raw === "number" ? raw : typeof raw === "string" ? parseInt(raw, 16) : 0;
  return n === 1 ? "inherit" : n;
}

/** iproute2 prints `ttl` 0 ("auto") in JSON, but TTL inheritance only in text: no key means inherit. */
function parseTtl(raw: unknown): number | "auto" | "inherit" {
  if (raw === 0) return "auto";
  if (typeof raw === "number") return raw;
  return "inherit";
}

function kernelRemote(link: LinkJson): string | undefined {
  const data = link.linkinfo?.info_data ?? {};
  const ip = (data.remote ?? data.remote6) as string | undefined;
  return ip ? canonicalIp(ip) : undefined;
}

/** Inputs only settable by `ip link add`; the engine replaces the device when they change. */
const CREATION_ONLY = ["vni", "dstPort", "dev"];

export const vxlan = {
  resource: "Vxlan",
  infoKind: "vxlan",
  fields: {
    /** VXLAN network identifier (VNI), 0–16777215; every host of one overlay uses the same. Creation-only. */
    vni: z.number().int("must be a whole number").min(0, "must be at least 0").max(VNI_MAX, `must be at most ${VNI_MAX} (24 bits)`),
    /** Source address of the tunnel (an address of this host on the underlay), IPv4 or IPv6. Default: chosen by routing per packet. */
    local: ipAddress.optional(),
    /** Unicast address of the one peer that gets every flooded frame (point-to-point). Not together with group. */
    remote: ipAddress.optional(),
    /** Multicast group flooded frames go to (224.0.0.0/4 or ff00::/8); needs dev. Not together with remote. */
    group: ipAddress.optional(),
    /**
     * Underlay device (name, same namespace) the tunnel sends through; required with
     * group. Default: chosen by routing. Creation-only: the kernel takes a new dev in
     * place, but the FDB entry of the remote/group keeps the old device, and the next
     * remote change leaves that entry behind as a stale extra destination.
     */
    dev: ifname.optional(),
    /**
     * Head-end replication: unicast addresses of the peers every broadcast, multicast
     * and unknown-unicast frame is copied to, one all-zero FDB entry each
     * (`bridge fdb append 00:00:00:00:00:00 dst <peer>`). Reconciled as an exact set,
     * entry by entry (peers that stay are never touched). Default: unmanaged.
     */
    remotes: setOf(ipAddress, "peer addresses").optional(),
    /** UDP destination port, 1–65535. Default 4789 (IANA), always passed: iproute2's default is the kernel's legacy 8472. Creation-only. */
    dstPort: z.number().int("must be a whole number").min(1, "must be at least 1").max(65535, "must be at most 65535").default(4789),
    /**
     * TTL (IPv6 hop limit) of the outer packets: 1–255, "auto" (the route's default;
     * the kernel's default, stored as 0) or "inherit" (copied from the inner packet).
     * Changes in place, except into or out of "inherit", which replaces the device.
     */
    ttl: z
      .union([z.number().int("must be a whole number").min(1, "must be at least 1").max(255, "must be at most 255"), z.enum(["auto", "inherit"])], { error: 'must be a whole number 1–255, "auto" or "inherit"' })
      .optional(),
    /** TOS (IPv6 traffic class) byte of the outer packets: 0–255 except 1, or "inherit" (copied from the inner packet). Kernel default 0. */
    tos: z
      .union([z.number().int("must be a whole number").min(0, "must be at least 0").max(255, "must be at most 255").refine((n) => n !== 1, 'must not be 1 (the kernel stores "inherit" as 1; write "inherit")'), z.literal("inherit")], {
        error: 'must be a whole number 0–255 (not 1) or "inherit"',
      })
      .optional(),
    /** Learn remote MAC addresses from received packets into the device's FDB. Kernel default true. */
    learning: z.boolean().optional(),
    /** Lifetime of learned FDB entries, seconds, 1–4294967295 (the kernel turns 0 into its default). Kernel default 300. */
    ageing: z.number().int("must be a whole number").min(1, "must be at least 1 (the kernel reads 0 as its default, 300)").max(4_294_967_295).optional(),
  },
  refine(v, ctx) {
    const issue = (path: (string | number)[], message: string) => ctx.addIssue({ code: "custom", path, message });
    if (v.remote !== undefined && v.group !== undefined)
      issue(["group"], `must not be set together with remote (${v.remote}): the device has one default destination, a unicast remote or a multicast group`);
    if (v.group !== undefined) {
      if (familyOf(v.group) && !isMulticast(v.group)) issue(["group"], "must be a multicast address (224.0.0.0/4 or ff00::/8); use remote for a unicast peer");
      if (v.dev === undefined) issue(["dev"], `is required with group (${v.group}): the group is joined on that underlay device`);
    }
    for (const field of ["local", "remote"] as const) {
      const why = notUnicast(v[field]);
      if (why) issue([field], `must be a unicast address (it ${why}${field === "remote" && isMulticast(v[field]) ? "; use group and dev" : ""})`);
    }
    if (Array.isArray(v.remotes)) {
      for (const peer of v.remotes) {
        const why = notUnicast(peer);
        if (why) issue(["remotes"], `must list unicast peer addresses; ${peer} ${why}`);
      }
      if (typeof v.remote === "string" && v.remotes.includes(v.remote))
        issue(["remotes"], `must not contain remote (${v.remote}): the kernel keeps remote as its own all-zero FDB entry`);
    }
    const found = families(v);
    const odd = found.find(([, f]) => f !== found[0][1]);
    if (odd) issue([odd[0]], `must be of the same address family as ${found[0][0]} (${found[0][2]}); got ${odd[2]}: a vxlan device is either IPv4 or IPv6`);
  },
  replaceOn: CREATION_ONLY,
  extraReplaces: valueReplaces,
  // A new device has no flood entries but its own remote's or group's.
  freshState: () => ({ remotes: [] }),
  createArgv(d) {
    // `remotes` are appended by the engine's plan for a new device (freshState, then
    // updateArgv): one FDB plan for create, update and drift repair.
    return [
      ipArgv(d.namespace, "link", "add", "name", d.name,
        ...(d.mtu !== undefined ? ["mtu", String(d.mtu)] : []),
        ...(d.macAddress ? ["address", d.macAddress] : []),
        "type", "vxlan", "id", String(d.vni),
        ...(d.local !== undefined ? ["local", d.local] : []),
        ...(d.remote !== undefined ? ["remote", d.remote] : []),
        ...(d.group !== undefined ? ["group", d.group] : []),
        ...(d.dev !== undefined ? ["dev", d.dev] : []),
        "dstport", String(d.dstPort),
        ...(d.ttl !== undefined ? ["ttl", String(d.ttl)] : []),
        ...(d.tos !== undefined ? ["tos", tosArg(d.tos)] : []),
        ...(d.learning !== undefined ? [d.learning ? "learning" : "nolearning"] : []),
        ...(d.ageing !== undefined ? ["ageing", String(d.ageing)] : [])),
    ];
  },
  async readFields(link, { transport, desired }) {
    const data = link.linkinfo?.info_data ?? {};
    const ip = (x: unknown) => (typeof x === "string" ? canonicalIp(x) : undefined);
    const remote = ip(data.remote ?? data.remote6);
    const group = ip(data.group ?? data.group6);
    const fdb = await readFdb(transport, desired.namespace, desired.name);
    return {
      vni: data.id,
      local: ip(data.local ?? data.local6),
      remote,
      group,
      dev: data.link,
      // The default destination (remote or group) is one of the all-zero entries too.
      remotes: fdb ? floodDestinations(fdb, [remote, group]) : undefined,
      dstPort: data.port,
      ttl: parseTtl(data.ttl),
      tos: parseTos(data.tos),
      learning: data.learning,
      ageing: data.ageing,
    };
  },
  persistLimits(d: Desired) {
    const out: PersistLimit[] = [];
    // networkd's TOS= and TTL= take numbers only (TTL=0 is "auto"): inheritance cannot be written.
    if (d.tos === "inherit") out.push({ field: "tos", reason: `"inherit" cannot be persisted: systemd-networkd's TOS= takes a number only; use a number or persist: false` });
    if (d.ttl === "inherit") out.push({ field: "ttl", reason: `"inherit" cannot be persisted: systemd-networkd's TTL= takes a number only; use a number, "auto" or persist: false` });
    return out;
  },
  networkd(d: Desired, facts) {
    const own = section("VXLAN", [
      ["VNI", d.vni],
      ["Local", d.local],
      ["Remote", d.remote],
      ["Group", d.group],
      ["DestinationPort", d.dstPort],
      ["TTL", d.ttl === "auto" ? 0 : d.ttl],
      ["TOS", d.tos],
      ["MacLearning", d.learning],
      ["FDBAgeingSec", d.ageing],
      // `ip link add` leaves the kernel's default (IPv4 UDP checksums on); networkd
      // always sends its own default, off, unless told.
      ["UDPChecksum", true],
      // Without an underlay device no parent .network names it; Independent= creates it on its own.
      ["Independent", d.dev === undefined ? true : undefined],
    ]);
    const fdb = (d.remotes ?? []).map((peer: string) => section("BridgeFDB", [["MACAddress", "00:00:00:00:00:00"], ["Destination", peer]]));
    return {
      units: [netdevUnit(d.name, "vxlan", [own]), networkUnit(d.name, d, facts, fdb)],
      others: d.dev === undefined ? [] : [{ device: d.dev, entries: [["VXLAN", d.name]] as [string, string][] }],
    };
  },
  updateArgv(d: Desired, mismatches: Mismatch[], link: LinkJson) {
    const by = new Map(mismatches.map((m) => [m.field, m]));
    const fixed = CREATION_ONLY.filter((f) => by.has(f));
    const ttl = by.get("ttl");
    if (ttl && (ttl.actual === "inherit") !== (d.ttl === "inherit")) fixed.push("ttl");
    if (fixed.length)
      throw new NetdevError(`${d.name}: ${fixed.map((f) => `${f} is ${JSON.stringify(by.get(f)!.actual)}, wanted ${JSON.stringify(d[f])}`).join("; ")}; the kernel takes ${fixed.length > 1 ? "these" : "this"} only when the device is created, so replace the Vxlan`);

    const ns = d.namespace;
    const set = (...args: string[]) => ipArgv(ns, "link", "set", "dev", d.name, "type", "vxlan", ...args);
    const steps: string[][] = [];
    const peers = by.get("remotes");
    const have = new Set<string>((peers?.actual as string[] | undefined) ?? []);
    const want = new Set<string>(d.remotes ?? []);
    // Gone peers first: a peer may be becoming the device's remote.
    if (peers) for (const p of have) if (!want.has(p)) steps.push(floodDelArgv(ns, d.name, p));
    if (by.has("remote")) steps.push(set("remote", d.remote));
    // iproute2 refuses `group` without `dev` even when dev stays the same.
    if (by.has("group")) steps.push(set("group", d.group, "dev", d.dev));
    if (by.has("local")) steps.push(set("local", d.local));
    if (ttl) steps.push(set("ttl", String(d.ttl)));
    if (by.has("tos")) steps.push(set("tos", tosArg(d.tos)));
    if (by.has("learning")) steps.push(set(d.learning ? "learning" : "nolearning"));
    if (by.has("ageing")) steps.push(set("ageing", String(d.ageing)));
    if (peers) {
      const adds = [...want].filter((p) => !have.has(p));
      // Moving the old point-to-point remote into `remotes`: the kernel holds it as
      // the default entry (an append would be a no-op), so clear the default first.
      const current = kernelRemote(link);
      if (d.remote === undefined && current && adds.includes(current)) steps.push(set("remote", familyOf(current) === 6 ? "::" : "0.0.0.0"));
      for (const p of adds) steps.push(floodAppendArgv(ns, d.name, p));
    }
    return steps;
  },
} satisfies LinkKind;
