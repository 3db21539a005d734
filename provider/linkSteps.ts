import { ipArgv } from "./iproute/link";

/** The generic attributes every link has (a device's own, or a veth peer's). */
export interface GenericAttributes {
  mtu?: number;
  macAddress?: string;
  master?: string;
  addresses?: string[];
  up?: boolean;
}

/** What the kernel has now, plus the kind (`info_kind`) of the wanted master when known. */
export interface CurrentAttributes extends GenericAttributes {
  masterKind?: string;
}

/**
 * Commands that bring the `fields` that differ from `have` to `want` on one device,
 * one change per line: mtu, address, master (released first; down and up again
 * around it for a bond), addresses (removed, then added), and `up` last so a device
 * is enslaved before it comes up.
 */
export function genericLinkSteps(namespace: string | undefined, dev: string, fields: Set<string>, want: GenericAttributes, have: CurrentAttributes): string[][] {
  const set = (...args: string[]) => ipArgv(namespace, "link", "set", "dev", dev, ...args);
  const steps: string[][] = [];
  if (fields.has("mtu")) steps.push(set("mtu", String(want.mtu)));
  if (fields.has("macAddress")) steps.push(set("address", want.macAddress!));
  // The bonding driver refuses to enslave a device that is up ("Device can not be
  // enslaved while up"): it goes down for the enslave and comes up again after it.
  const downForBond = fields.has("master") && want.master !== undefined && have.masterKind === "bond" && have.up === true;
  if (fields.has("master")) {
    if (downForBond) steps.push(set("down"));
    if (have.master) steps.push(set("nomaster"));
    steps.push(set("master", want.master!));
  }
  if (fields.has("addresses")) {
    const had = new Set(have.addresses ?? []);
    const wanted = new Set(want.addresses ?? []);
    for (const a of had) if (!wanted.has(a)) steps.push(ipArgv(namespace, "addr", "del", a, "dev", dev));
    for (const a of wanted) if (!had.has(a)) steps.push(ipArgv(namespace, "addr", "add", a, "dev", dev));
  }
  if (fields.has("up")) steps.push(set(want.up ? "up" : "down"));
  else if (downForBond) steps.push(set("up"));
  return steps;
}
