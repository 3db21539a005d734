import { z } from "zod";
import { commonLinkFields, ifname, netnsName, UNKNOWN } from "../schema";
import { ipArgv, isAdminUp, type LinkJson, linkAddresses, readLink } from "../iproute/link";
import { genericLinkSteps } from "../linkSteps";
import { netdevUnit, networkUnit, section } from "../networkd";
import type { Desired, LinkKind, Mismatch } from "./types";

/** Peer input → the generic attribute it sets on the peer. */
const PEER_FIELDS: Record<string, string> = { peerMtu: "mtu", peerMacAddress: "macAddress", peerMaster: "master", peerAddresses: "addresses", peerUp: "up" };

function peerNs(d: Desired): string | undefined {
  return d.peerNamespace ?? d.namespace;
}

export const veth = {
  resource: "VethPair",
  infoKind: "veth",
  fields: {
    /** Name of the other end. Creation-only. */
    peerName: ifname,
    /** Namespace the other end lives in (e.g. a container's). Default: the same as this end. Creation-only. */
    peerNamespace: netnsName.optional(),
    /** MTU of the other end, bytes. */
    peerMtu: commonLinkFields.mtu,
    /** Ethernet address of the other end. */
    peerMacAddress: commonLinkFields.macAddress,
    /** Bridge or bond (in the peer's namespace) to enslave the other end into. Like `master`, enslaving into a bond takes an up end down and up again. */
    peerMaster: commonLinkFields.master,
    /** Addresses of the other end (CIDR), reconciled as an exact set like `addresses` (kernel-managed ones are left alone unless listed). */
    peerAddresses: commonLinkFields.addresses,
    /** Other end administratively up. Default true. */
    peerUp: z.boolean().default(true),
  },
  refine(v, ctx) {
    // Two preview placeholders compare equal but may resolve to different namespaces.
    if (v.peerName === v.name && (v.peerNamespace ?? v.namespace) === v.namespace && v.peerNamespace !== UNKNOWN)
      ctx.addIssue({ code: "custom", path: ["peerName"], message: `must differ from name ("${v.name}") when both ends are in the same namespace` });
    if (v.peerMaster !== undefined && v.peerMaster === v.peerName)
      ctx.addIssue({ code: "custom", path: ["peerMaster"], message: `must not be the peer itself ("${v.peerName}")` });
  },
  replaceOn: ["peerName", "peerNamespace"],
  extraReplaces(olds, news) {
    // Leaving peerNamespace out puts the peer with this end: compare where the peer ends up.
    const moved = news.peerNamespace === undefined && (olds.peerNamespace ?? olds.namespace) !== news.namespace;
    return moved ? ["peerNamespace"] : [];
  },
  createArgv(d) {
    return [
      ipArgv(d.namespace, "link", "add", "name", d.name,
        ...(d.mtu !== undefined ? ["mtu", String(d.mtu)] : []),
        ...(d.macAddress ? ["address", d.macAddress] : []),
        "type", "veth", "peer", "name", d.peerName,
        ...(d.peerNamespace && d.peerNamespace !== d.namespace ? ["netns", d.peerNamespace] : []),
        ...(d.peerMtu !== undefined ? ["mtu", String(d.peerMtu)] : []),
        ...(d.peerMacAddress ? ["address", d.peerMacAddress] : [])),
    ];
  },
  freshState() {
    return { peerMaster: undefined, peerAddresses: [], peerUp: false };
  },
  companions(d) {
    return [{ namespace: peerNs(d), name: d.peerName }];
  },
  async readFields(link, { transport, desired, companions }) {
    const read = companions?.find((c) => c.name === desired.peerName && c.namespace === peerNs(desired));
    const peer = read ? read.link : await readLink(transport, peerNs(desired), desired.peerName);
    // Same namespace: `link` names the peer. Across namespaces only its ifindex is known.
    const paired = peer && (link.link === peer.ifname || (link.link === undefined && link.link_index === peer.ifindex));
    if (!peer || !paired) return { peerName: undefined };
    return {
      peerName: peer.ifname,
      peerNamespace: desired.peerNamespace,
      peerMtu: peer.mtu,
      peerMacAddress: peer.address,
      peerMaster: peer.master,
      peerAddresses: linkAddresses(peer, desired.peerAddresses),
      peerUp: isAdminUp(peer),
      peerIfindex: peer.ifindex,
    };
  },
  persistLimits(d) {
    return d.peerNamespace !== undefined && d.peerNamespace !== d.namespace
      ? [{ field: "persist", reason: `cannot be set on a VethPair whose peer is in another network namespace (peerNamespace "${d.peerNamespace}"): systemd-networkd cannot put the peer there at boot` }]
      : [];
  },
  networkd(d, facts) {
    const peer = { mtu: d.peerMtu, macAddress: d.peerMacAddress, master: d.peerMaster, addresses: d.peerAddresses, up: d.peerUp };
    return {
      units: [
        netdevUnit(d.name, "veth", [section("Peer", [["Name", d.peerName], ["MACAddress", d.peerMacAddress ?? facts.peerMacAddress]])]),
        networkUnit(d.name, d, facts),
        networkUnit(d.peerName, peer, { macAddress: facts.peerMacAddress, masterKind: facts.peerMasterKind }),
      ],
      others: [],
    };
  },
  masters(d) {
    return d.peerMaster ? [{ field: "peerMaster", namespace: peerNs(d), name: d.peerMaster }] : [];
  },
  updateArgv(d, mismatches: Mismatch[], _link: LinkJson, actual: Record<string, unknown> = {}, masterKinds: Record<string, string | undefined> = {}) {
    const by = new Map(mismatches.map((m) => [m.field, m]));
    if (by.has("peerName")) throw new Error(`${d.name}: its peer ${d.peerName} is missing or paired elsewhere; replace the VethPair`);
    // The peer's generic attributes, named peerX here, get the same commands as any device's.
    const fields = new Set([...by.keys()].filter((f) => f in PEER_FIELDS).map((f) => PEER_FIELDS[f]));
    const want = { mtu: d.peerMtu, macAddress: d.peerMacAddress, master: d.peerMaster, addresses: d.peerAddresses, up: d.peerUp };
    const have = {
      master: by.get("peerMaster")?.actual as string | undefined,
      addresses: by.get("peerAddresses")?.actual as string[] | undefined,
      up: actual.peerUp as boolean | undefined,
      masterKind: masterKinds.peerMaster,
    };
    return genericLinkSteps(peerNs(d), d.peerName, fields, want, have);
  },
} satisfies LinkKind;
