import { ipArgv } from "./iproute/link";

/** The generic attributes every link has (a device's own, or a veth peer's). */
export interface GenericAttributes {
  mtu?: number;
  macAddress?: string;
  master?: string;
  addresses?: string[];
  up?: boolean;
}

/**
 * Commands that bring the `fields` that differ from `have` to `want` on one device,
 * one change per line: mtu, address, master (released first), addresses (removed,
 * then added), and `up` last so a device is enslaved before it comes up.
 */
export function genericLinkSteps(namespace: string | undefined, dev: string, fields: Set<string>, want: GenericAttributes, have: GenericAttributes): string[][] {
  const set = (...args: string[]) => ipArgv(namespace, "link", "set", "dev", dev, ...args);
  const steps: string[][] = [];
  if (fields.has("mtu")) steps.push(set("mtu", String(want.mtu)));
  if (fields.has("macAddress")) steps.push(set("address", want.macAddress!));
  if (fields.has("master")) {
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
  return steps;
}
