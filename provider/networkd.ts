// systemd-networkd files for `persist` (DESIGN.md §8): the shared vocabulary the
// per-kind renderers use. Everything here is pure: the files are a function of
// the desired state plus a few facts read from the kernel (NetworkdFacts).

/** `[Section]` with its `Key=value` lines, in order (a key may repeat). */
export interface Section {
  name: string;
  entries: [string, string][];
}

/** One file of a device: `<device>.netdev` or `<device>.network`. */
export interface UnitFile {
  device: string;
  type: "netdev" | "network";
  sections: Section[];
}

/**
 * What a resource persists. `others`: `[Network]` lines that belong in the
 * `.network` of ANOTHER device (the parent naming its VLAN, a slave naming its
 * bond): networkd creates a stacked device only when its parent's `.network`
 * names it. provider/persist.ts decides where those lines go.
 */
export interface NetworkdFiles {
  units: UnitFile[];
  others: { device: string; entries: [string, string][]; sections?: Section[] }[];
}

/** Facts the files need that the inputs do not fix; read from the kernel after the write. */
export interface NetworkdFacts {
  /** The device's Ethernet address now (pinned so the device comes back identical). */
  macAddress?: string;
  /** info_kind of `master` ("bridge" or "bond"): networkd says Bridge= or Bond=. */
  masterKind?: string;
  /** A veth peer's Ethernet address and its master's kind. */
  peerMacAddress?: string;
  peerMasterKind?: string;
}

/** An input `persist` cannot carry across a reboot: a check error on that field. */
export interface PersistLimit {
  field: string;
  reason: string;
}

export const yesNo = (v: boolean): string => (v ? "yes" : "no");

/** Seconds as networkd time spans: "15" is read as seconds, "1.5" too. */
export function sec(seconds: number): string {
  return String(Number(seconds.toFixed(2)));
}

/** Lines for the defined values only. */
export function entries(pairs: [string, string | number | boolean | undefined][]): [string, string][] {
  return pairs
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => [k, typeof v === "boolean" ? yesNo(v) : String(v)]);
}

export function section(name: string, pairs: [string, string | number | boolean | undefined][]): Section {
  return { name, entries: entries(pairs) };
}

/** `[NetDev]` plus the kind's own section. MAC and MTU go in the .network (they apply to every kind alike). */
export function netdevUnit(device: string, kind: string, own: Section[] = []): UnitFile {
  return { device, type: "netdev", sections: [section("NetDev", [["Name", device], ["Kind", kind]]), ...own.filter((s) => s.entries.length > 0)] };
}

/** The generic attributes of one device, as they apply to a link resource or a veth peer. */
export interface LinkAttributes {
  [field: string]: unknown;
  mtu?: number;
  macAddress?: string;
  up?: boolean;
  master?: string;
  addresses?: string[];
}

/**
 * The device's own `.network`: matched by name; MTU and MAC under [Link];
 * addresses and master under [Network]. ConfigureWithoutCarrier: networkd
 * otherwise puts no address on a link without carrier (a bridge without ports,
 * a tap nobody opened), where the provider's `ip addr add` does.
 */
export function networkUnit(device: string, a: LinkAttributes, facts: { macAddress?: string; masterKind?: string }, extra: Section[] = [], network: [string, string][] = []): UnitFile {
  const mac = a.macAddress ?? facts.macAddress;
  const link = section("Link", [
    ["MACAddress", mac],
    ["MTUBytes", a.mtu],
    ["ActivationPolicy", a.up === false ? "down" : "up"],
  ]);
  const master = a.master === undefined ? [] : [[masterKey(facts.masterKind, a.master), a.master] as [string, string]];
  const net: Section = {
    name: "Network",
    entries: [
      ...(a.addresses ?? []).map((addr): [string, string] => ["Address", addr]),
      ...master,
      ["ConfigureWithoutCarrier", "yes"],
      ...network,
    ],
  };
  return { device, type: "network", sections: [section("Match", [["Name", device]]), link, net, ...portSections(a), ...extra.filter((s) => s.entries.length > 0)] };
}

/** A bridge port's options (systemd.network [Bridge]); networkd's UseBPDU= and AllowPortToBeRoot= are guard and root_block inverted. */
const invert = (v: unknown) => (typeof v === "boolean" ? !v : undefined);

/**
 * `bridgePort` as the port's [Bridge] section and its VLANs as one [BridgeVLAN] each
 * (on a Bridge itself networkd applies them to the bridge, as `self`).
 */
export function portSections(a: LinkAttributes): Section[] {
  const out: Section[] = [];
  const p = a.bridgePort as Record<string, unknown> | undefined;
  if (p) {
    const port = section("Bridge", [
      ["Cost", p.cost as number | undefined],
      ["Priority", p.priority as number | undefined],
      ["HairPin", p.hairpin as boolean | undefined],
      ["Learning", p.learning as boolean | undefined],
      ["UnicastFlood", p.unicastFlood as boolean | undefined],
      ["MulticastFlood", p.multicastFlood as boolean | undefined],
      ["Isolated", p.isolated as boolean | undefined],
      ["UseBPDU", invert(p.bpduGuard)],
      ["AllowPortToBeRoot", invert(p.rootBlock)],
      ["NeighborSuppression", p.neighSuppress as boolean | undefined],
    ]);
    if (port.entries.length) out.push(port);
  }
  // A port's VLANs are bridgePort.vlans; a Bridge's own are its `vlans`.
  const vlans = (p?.vlans ?? a.vlans) as { vid: number | string; pvid?: boolean; untagged?: boolean }[] | undefined;
  for (const v of vlans ?? []) {
    out.push(section("BridgeVLAN", [["VLAN", v.vid], ["PVID", v.pvid ? v.vid : undefined], ["EgressUntagged", v.untagged ? v.vid : undefined]]));
  }
  return out;
}

export function masterKey(kind: string | undefined, master: string): string {
  if (kind === "bridge") return "Bridge";
  if (kind === "bond") return "Bond";
  throw new Error(`master ${master} is a ${kind ?? "device that does not exist"}; networkd can enslave only into a bridge or a bond`);
}

/** The text of a unit file, headed by the comment that names its resource. */
export function renderUnit(header: string, unit: { sections: Section[] }): string {
  const lines = header.split("\n").map((l) => `# ${l}`.trimEnd());
  for (const s of unit.sections) {
    lines.push("", `[${s.name}]`);
    for (const [k, v] of s.entries) lines.push(`${k}=${v}`);
  }
  return lines.join("\n") + "\n";
}

/** Limits every link kind shares: networkd configures the host's own namespace only. */
export function commonPersistLimits(d: { namespace?: string; bridgePort?: { broadcastFlood?: boolean }; bondPort?: object }): PersistLimit[] {
  const out: PersistLimit[] = [];
  if (d.namespace !== undefined)
    out.push({ field: "persist", reason: `cannot be set on a device inside a network namespace (namespace "${d.namespace}"): systemd-networkd creates devices only in the host's own namespace` });
  if (d.bridgePort?.broadcastFlood !== undefined)
    out.push({ field: "bridgePort.broadcastFlood", reason: "cannot be persisted: systemd-networkd (252) has no setting for a port's broadcast flooding; leave it unset or set persist: false" });
  if (d.bondPort !== undefined)
    out.push({ field: "bondPort", reason: "cannot be persisted: systemd-networkd (252) has no settings for a bond slave's queue id or priority; leave it unset or set persist: false" });
  return out;
}
