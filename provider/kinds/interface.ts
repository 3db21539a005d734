import { z } from "zod";
import { portRefine } from "../bridgePort";
import { checkInputs, diffInputs, guardedWrite, LinkEngine, makeId, persistByDefault, resolveConnection, type ResourceRuntime, stripUndefined, transportFor } from "../engine";
import { NetdevError } from "../errors";
import { ipArgv, isAdminUp, LINK_ONLY, type LinkJson, linkAddresses, readLink } from "../iproute/link";
import { type Family, readRoutesVia, type RouteJson, routePrefix } from "../iproute/route";
import { commonPersistLimits, masterKey, type NetworkdFiles, portSections, type Section, section } from "../networkd";
import * as persist from "../persist";
import { canonicalIp, commonLinkFields, containsUnknown, UNKNOWN } from "../schema";
import { runSteps } from "../steps";
import type { Transport } from "../transport/types";
import { readUntilConverged } from "../verify";
import type { Desired, LinkKind, Mismatch } from "./types";

// Not `adopt`: the device always exists.
const { adopt: _adopt, up: _up, persist: _persist, ...linkInputs } = commonLinkFields;

export const interfaceFields = {
  ...linkInputs,
  /** Name of the existing device (a physical NIC, a bond made elsewhere). It must exist: Interface never creates or deletes a device. */
  name: commonLinkFields.name,
  /** Administratively up (true) or down. Unset: left as it is. */
  up: z.boolean().optional(),
  /**
   * With `master` (a bridge): in the same `ip -batch` that enslaves the device, move
   * its addresses to the bridge and re-create there the routes that went through it
   * (the default route included); on delete, move them back. This is how the NIC that
   * carries the SSH session joins a bridge without cutting it. Default false.
   */
  moveAddresses: z.boolean().default(false),
  /**
   * Keep what the stack set across a reboot: a drop-in for the `.network` that
   * systemd-networkd uses for the device (the distribution's own, which wins by
   * name order; else a file of ours), and with moveAddresses the moved addresses
   * and routes as a drop-in for the master's `.network` (README "Surviving
   * reboots"). Default: stack config `netdev:persist` where it applies, else false.
   */
  persist: z.boolean().optional(),
};

const schema = z.strictObject(interfaceFields).superRefine((v, ctx) => {
  if (v.master !== undefined && v.master === v.name && v.master !== UNKNOWN)
    ctx.addIssue({ code: "custom", path: ["master"], message: `must not be the device itself ("${v.name}")` });
  if (v.moveAddresses && v.master === undefined) ctx.addIssue({ code: "custom", path: ["moveAddresses"], message: "needs master (the bridge the addresses move to)" });
  if (v.moveAddresses && v.addresses !== undefined)
    ctx.addIssue({ code: "custom", path: ["addresses"], message: "must not be set with moveAddresses: the device's addresses move to the master (set them on the bridge instead)" });
  portRefine(v, ctx);
  if (v.persist === true) for (const l of commonPersistLimits(v)) ctx.addIssue({ code: "custom", path: [l.field], message: l.reason });
});

/** The device as it is: the engine's read/plan/verify helpers with nothing kind-specific. */
const existingDevice: LinkKind = {
  resource: "Interface",
  infoKind: "",
  fields: {},
  replaceOn: [],
  unverified: ["moveAddresses", "original", "moved"],
  createArgv: () => [],
  readFields: () => ({}),
  updateArgv: () => [],
  networkd: () => {
    throw new NetdevError("Interface does not write networkd files");
  },
};
const helper = new LinkEngine(existingDevice);

/** The generic attributes Interface may change, and so records and restores. */
const RECORDED = ["mtu", "macAddress", "master", "addresses", "up"] as const;
type Recorded = Partial<Record<(typeof RECORDED)[number], unknown>> & { had?: string[] };

/** What moveAddresses took from the device: its addresses and the routes through it (as `ip -j route` printed them). */
interface Moved {
  to: string;
  addresses: string[];
  routes: (RouteJson & { family: Family })[];
}

type InterfaceInputs = Desired & { moveAddresses?: boolean; original?: Recorded; moved?: Moved; persistedFiles?: persist.PersistedFile[] };

function inputsOnly(d: InterfaceInputs): Desired {
  const { original: _o, moved: _m, ...rest } = d;
  return rest;
}

/** The kernel's value of each field `d` sets and `have` does not record yet. */
function record(link: LinkJson, d: Desired, have: Recorded = {}): Recorded {
  const now: Recorded = { mtu: link.mtu, macAddress: link.address, master: link.master ?? null, addresses: linkAddresses(link), up: isAdminUp(link) };
  const out: Recorded = { ...have, had: [...(have.had ?? [])] };
  for (const f of RECORDED) {
    if (d[f] === undefined || out.had!.includes(f)) continue;
    out.had!.push(f);
    out[f] = now[f];
  }
  return out;
}

/** Addresses moveAddresses takes: not the kernel's own (IPv6 link-local, SLAAC/temporary ones it regenerates). */
function movableAddresses(link: LinkJson): string[] {
  return (link.addr_info ?? [])
    .filter((a) => !(a.family === "inet6" && a.scope === "link") && !(a as { dynamic?: boolean }).dynamic)
    .map((a) => `${a.local}/${a.prefixlen}`);
}

/**
 * Routes moveAddresses re-creates on the master: those through the device, in every
 * table, except what the kernel makes itself (connected and local routes, RA routes).
 */
async function movableRoutes(t: Transport, namespace: string | undefined, dev: string): Promise<Moved["routes"]> {
  const out: Moved["routes"] = [];
  for (const family of [4, 6] as const) {
    for (const r of await readRoutesVia(t, namespace, family, dev)) {
      if (r.type && r.type !== "unicast") continue;
      if (r.protocol === "kernel" || r.protocol === "ra" || r.table === "local" || r.nexthops) continue;
      out.push({ ...r, family });
    }
  }
  return out;
}

/** `ip route replace` of a recorded route, through `dev`. */
function routeOn(namespace: string | undefined, r: Moved["routes"][number], dev: string): string[] {
  const flags = r.flags ?? [];
  return ipArgv(namespace, "route", "replace",
    r.dst === "default" ? (r.family === 6 ? "::/0" : "0.0.0.0/0") : r.dst,
    ...(r.gateway ? ["via", r.gateway] : []),
    "dev", dev,
    ...(r.prefsrc ? ["src", r.prefsrc] : []),
    "metric", String(r.metric ?? (r.family === 6 ? 1024 : 0)),
    "table", r.table ?? "main",
    ...(r.scope ? ["scope", r.scope] : []),
    ...(r.protocol !== undefined ? ["proto", String(r.protocol)] : []),
    ...(flags.includes("onlink") ? ["onlink"] : []));
}

/** Move addresses from one device to another and re-create the routes there (one batch with the enslave or release). */
function moveSteps(namespace: string | undefined, moved: Moved, from: string, to: string): string[][] {
  return [
    ...moved.addresses.map((a) => ipArgv(namespace, "addr", "del", a, "dev", from)),
    ...moved.addresses.map((a) => ipArgv(namespace, "addr", "add", a, "dev", to)),
    ...moved.routes.map((r) => routeOn(namespace, r, to)),
  ];
}

/**
 * What the engine plans for `d` (mtu, address, master, addresses, up), with
 * moveAddresses' lines right after the enslave so that all of it is ONE `ip -batch`
 * (a `bridge …` line would start another), and the port's lines last.
 */
function plan(d: Desired, link: LinkJson, actual: Record<string, unknown>, masterKind: string | undefined, moved?: Moved): string[][] {
  const bad = helper.mismatches(d, actual);
  const port = bad.filter((m) => m.field === "bridgePort" || m.field === "bondPort");
  const steps = helper.planSteps(d, bad.filter((m) => !port.includes(m)), link, actual, masterKind);
  const move = moved ? moveSteps(d.namespace, moved, d.name, moved.to) : [];
  const enslave = steps.findIndex((s) => s.includes("master"));
  steps.splice(enslave < 0 ? steps.length : enslave + 1, 0, ...move);
  return [...steps, ...(port.length ? helper.planSteps(d, port, link, actual) : [])];
}

async function readExisting(t: Transport, d: Desired): Promise<LinkJson> {
  const link = await readLink(t, d.namespace, d.name);
  if (!link)
    throw new NetdevError(`${t.label}: there is no device named ${d.name}${d.namespace ? ` in namespace ${d.namespace}` : ""}; Interface manages an existing device (a NIC, a bond made elsewhere) and never creates one. Nothing was changed`);
  return link;
}

/** Reads until the device matches `d` and, after a move, the addresses are on the master and off the device. */
async function verify(t: Transport, d: Desired, moved?: Moved): Promise<{ link: LinkJson; actual: Record<string, unknown> }> {
  const done = await helper.verify(t, d);
  if (moved) {
    const wanted = moved.addresses.map(canonicalCidr);
    await readUntilConverged(t.label, `${d.name} → ${moved.to}`, async () => [await readLink(t, d.namespace, moved.to), await readLink(t, d.namespace, d.name)] as const, ([master, dev]): Mismatch[] => {
      const onMaster = master ? linkAddresses(master) : [];
      const onDev = dev ? linkAddresses(dev) : [];
      if (!wanted.every((a) => onMaster.includes(a))) return [{ field: `addresses of ${moved.to}`, desired: wanted, actual: onMaster }];
      if (wanted.some((a) => onDev.includes(a))) return [{ field: "addresses", desired: [], actual: onDev }];
      return [];
    });
  }
  return done;
}

function canonicalCidr(a: string): string {
  const [ip, len] = a.split("/");
  return `${canonicalIp(ip)}/${len}`;
}

async function outputs(t: Transport, d: InterfaceInputs, link: LinkJson, actual: Record<string, unknown>): Promise<Record<string, any>> {
  return stripUndefined({ ...(await helper.outputs(t, inputsOnly(d), link, actual)), original: d.original, moved: d.moved });
}

/** Lines that put back what `original` recorded (only those fields), after the current state `link`. */
function restoreSteps(d: InterfaceInputs, link: LinkJson, fields: string[]): string[][] {
  const o = d.original ?? {};
  const set = (...a: string[]) => ipArgv(d.namespace, "link", "set", "dev", d.name, ...a);
  const steps: string[][] = [];
  if (fields.includes("mtu") && o.mtu !== link.mtu) steps.push(set("mtu", String(o.mtu)));
  if (fields.includes("macAddress") && o.macAddress !== link.address) steps.push(set("address", String(o.macAddress)));
  if (fields.includes("master") && (o.master ?? undefined) !== link.master) {
    if (link.master) steps.push(set("nomaster"));
    if (o.master) steps.push(set("master", String(o.master)));
  }
  if (fields.includes("addresses")) {
    const have = linkAddresses(link);
    const want = (o.addresses ?? []) as string[];
    for (const a of have) if (!want.includes(a)) steps.push(ipArgv(d.namespace, "addr", "del", a, "dev", d.name));
    for (const a of want) if (!have.includes(a)) steps.push(ipArgv(d.namespace, "addr", "add", a, "dev", d.name));
  }
  if (d.moved) steps.push(...moveSteps(d.namespace, d.moved, d.moved.to, d.name));
  if (fields.includes("up") && o.up !== isAdminUp(link)) steps.push(set(o.up ? "up" : "down"));
  return steps;
}

async function converge(t: Transport, d: InterfaceInputs, link: LinkJson, what: string, extra: string[][] = []): Promise<Record<string, any>> {
  const want = inputsOnly(d);
  let actual = await helper.actualState(t, want, link);
  const masterKind = await helper.wantedMasterKind(t, want, helper.mismatches(want, actual));
  const steps = [...extra, ...plan(want, link, actual, masterKind, d.moved && link.master !== d.moved.to ? d.moved : undefined)];
  if (steps.length > 0) {
    // One guarded write (safe apply): the enslave and the move are one batch, never split.
    await guardedWrite(t, what, steps, () => runSteps(t, steps));
    ({ link, actual } = await verify(t, want, d.moved));
  }
  return outputs(t, d, link, actual);
}

/** A moved route as a `[Route]` section (protocol and metric always written: networkd's defaults differ from the kernel's). */
function movedRouteSection(r: Moved["routes"][number]): Section {
  return section("Route", [
    ["Destination", routePrefix(r.dst, r.family)],
    ["Gateway", r.gateway],
    ["PreferredSource", r.prefsrc],
    ["Metric", r.metric ?? (r.family === 6 ? 1024 : 0)],
    ["Table", r.table && r.table !== "main" ? r.table : undefined],
    ["Scope", r.scope],
    ["Protocol", r.protocol ?? "boot"],
    ["GatewayOnLink", (r.flags ?? []).includes("onlink") || undefined],
  ]);
}

/**
 * The files of a persisted Interface, all of them drop-ins (`others`): the device is
 * not ours, and networkd applies only the first `.network` that matches it (by file
 * name: netplan's /run/systemd/network/10-netplan-*.network, a distribution's
 * /etc/systemd/network/*.network come before ours), so a file of our own would lose
 * to the one already in use. What the stack set goes into a drop-in for that file:
 * MAC, MTU and up state under [Link], addresses and the master (`Bridge=`/`Bond=`)
 * under [Network], the port's [Bridge] and [BridgeVLAN]. With moveAddresses the
 * moved addresses and routes belong to the master: a drop-in for its `.network`.
 * `masterKind`: the kernel's kind of `master`. Pure.
 */
export function interfaceNetworkd(d: Desired, masterKind: string | undefined, moved?: Moved): NetworkdFiles {
  const link = section("Link", [
    ["MACAddress", d.macAddress],
    ["MTUBytes", d.mtu],
    ["ActivationPolicy", d.up === undefined ? undefined : d.up ? "up" : "down"],
  ]);
  const network: [string, string][] = [
    ...((d.addresses ?? []) as string[]).map((a): [string, string] => ["Address", a]),
    ...(d.master !== undefined ? [[masterKey(masterKind, d.master), d.master] as [string, string]] : []),
  ];
  const own = { device: d.name, entries: network, sections: [link, ...portSections(d)].filter((s) => s.entries.length > 0) };
  if (!moved || (moved.addresses.length === 0 && moved.routes.length === 0)) return { units: [], others: [own] };
  const onMaster = {
    device: moved.to,
    entries: moved.addresses.map((a): [string, string] => ["Address", a]),
    sections: moved.routes.map(movedRouteSection),
  };
  return { units: [], others: [own, onMaster] };
}

/** After the kernel is converged: writes (or, persist off, removes) the files and records them in the outputs. */
async function persisted(t: Transport, d: InterfaceInputs, outs: Record<string, any>, previous?: persist.PersistedFile[]): Promise<Record<string, any>> {
  const { persistedFiles: _old, ...rest } = outs;
  if (!d.persist) {
    await persist.removeFiles(t, previous);
    return rest;
  }
  const masterKind = d.master ? (await readLink(t, d.namespace, d.master, LINK_ONLY))?.linkinfo?.info_kind : undefined;
  const files = interfaceNetworkd(inputsOnly(d), masterKind, d.moved);
  return { ...rest, persist: true, persistedFiles: await persist.writeFiles(t, { resource: "Interface", name: d.name }, files, previous) };
}

/**
 * An existing device the stack did not create (DESIGN.md §1): the common link inputs
 * applied to it, what they replaced recorded at create (output `original`) and put
 * back on delete. A runtime of its own beside LinkEngine, sharing its helpers.
 */
export const iface = {
  inputFields: interfaceFields,

  async check(_olds, news) {
    const result = await checkInputs(schema, news);
    // netdev:persist applies where it can (not in a namespace, nothing networkd cannot carry).
    const v = result.inputs;
    if (result.failures.length === 0 && v.persist === undefined && persistByDefault() && !containsUnknown(v) && commonPersistLimits(v).length === 0) v.persist = true;
    return result;
  },

  async diff(_id, olds, news) {
    const result = diffInputs(olds, news, ["name", "namespace", "moveAddresses"]);
    // Moved addresses live on the master: another master is a move back and a new move.
    if (olds.moveAddresses && news.master !== undefined && news.master !== olds.master && !result.replaces.includes("master")) {
      result.replaces.push("master");
      result.changes = true;
    }
    // `changes` ignores fields the new inputs leave out; one left out is handed back (restored).
    const released = RECORDED.filter((f) => news[f] === undefined && (olds.original?.had ?? []).includes(f));
    if (released.length > 0) result.changes = true;
    return result;
  },

  async create(inputs) {
    const d = inputs as InterfaceInputs;
    const connection = resolveConnection(d.connection);
    const t = transportFor(d.connection);
    // A host that cannot keep the files refuses before any change.
    if (d.persist) await persist.preflight(t);
    const link = await readExisting(t, d);
    const original = record(link, d);
    let moved: Moved | undefined;
    if (d.moveAddresses && link.master !== d.master) {
      moved = { to: d.master!, addresses: movableAddresses(link), routes: await movableRoutes(t, d.namespace, d.name) };
    }
    const outs = await converge(t, { ...d, original, moved }, link, `Interface ${d.name} create`);
    return { id: makeId(connection, d.namespace, d.name), outs: await persisted(t, { ...d, moved }, outs) };
  },

  async read(id, props) {
    const d = props as InterfaceInputs;
    const t = transportFor(d.connection);
    const link = await readLink(t, d.namespace, d.name);
    if (!link) return { id: "", props: {} };
    const outs = await outputs(t, d, link, await helper.actualState(t, inputsOnly(d), link));
    // Files edited or removed outside Pulumi show up as `persist: false` (a diff the next up repairs).
    if (d.persist) outs.persist = await persist.filesIntact(t, d.persistedFiles ?? []);
    return { id, props: stripUndefined({ ...outs, persistedFiles: d.persistedFiles }) };
  },

  async update(_id, olds, news) {
    const d = news as InterfaceInputs;
    const t = transportFor(d.connection);
    if (d.persist && !olds.persistedFiles?.length) await persist.preflight(t);
    const link = await readExisting(t, d);
    // Fields newly managed are recorded now; fields no longer managed are put back.
    const before: Recorded = olds.original ?? {};
    const released = (before.had ?? []).filter((f) => d[f] === undefined);
    const release = restoreSteps({ ...d, original: before, moved: undefined }, link, released);
    const kept = record(link, d, { ...before, had: (before.had ?? []).filter((f) => !released.includes(f)) });
    for (const f of released) delete kept[f as keyof Recorded];
    const outs = await converge(t, { ...d, original: kept, moved: olds.moved }, link, `Interface ${d.name} update`, release);
    return { outs: await persisted(t, { ...d, moved: olds.moved }, outs, olds.persistedFiles) };
  },

  async delete(_id, props) {
    const d = props as InterfaceInputs;
    const t = transportFor(d.connection);
    const link = await readLink(t, d.namespace, d.name);
    // The device is gone (a USB NIC unplugged, a bond removed elsewhere): nothing to give back but the files.
    if (!link) return persist.removeFiles(t, d.persistedFiles);
    let moved = d.moved;
    if (moved) {
      // Only what is still on the master goes back (it may have been removed by hand).
      const master = await readLink(t, d.namespace, moved.to);
      const there = master ? linkAddresses(master) : [];
      moved = { ...moved, addresses: moved.addresses.filter((a) => there.includes(canonicalCidr(a))) };
    }
    const steps = restoreSteps({ ...d, moved }, link, d.original?.had ?? []);
    if (steps.length === 0) return persist.removeFiles(t, d.persistedFiles);
    // Files first, inside the guarded write: a restore safe apply refuses keeps them.
    await guardedWrite(t, `Interface ${d.name} delete (restoring what the stack changed)`, steps, async () => {
      await persist.removeFiles(t, d.persistedFiles);
      await runSteps(t, steps);
    });
  },
} satisfies ResourceRuntime;
