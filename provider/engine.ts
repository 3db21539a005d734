import { createHash } from "node:crypto";
import { isDeepStrictEqual } from "node:util";
import { z } from "zod";
import { type Connection, connectionDefaultsFromConfig, connectionSchema, mergeConnection, safeApplySchema } from "./connection";
import { CommandError, ConnectionError, NetdevError } from "./errors";
import { ipArgv, isAdminUp, isGoneError, LINK_ONLY, type LinkJson, linkAddresses, readLink, type ReadOptions } from "./iproute/link";
import type { Desired, LinkKind, Mismatch, ReadContext } from "./kinds/types";
import { type CheckFailure, commonLinkFields, containsUnknown, UNKNOWN, validate } from "./schema";
import { type GenericAttributes, genericLinkSteps } from "./linkSteps";
import { commonPersistLimits, type PersistLimit } from "./networkd";
import * as persist from "./persist";
import { PORT_FIELDS, portRefine, portState, portSteps } from "./bridgePort";
import { runSteps } from "./steps";
import { readUntilConverged } from "./verify";
import * as safeApply from "./safeApply";
import { dropPooledConnection, openFreshTransport, SshTransport } from "./transport/ssh";
import type { Transport } from "./transport/types";

/** The calls the Pulumi dynamic provider host makes (see sdk/shim.ts). */
export interface ResourceRuntime {
  /**
   * The resource's input fields (zod), the one source of its SDK Args type:
   * `npm run gen:sdk` writes sdk/args.generated.ts from them. Declare the runtime
   * with `satisfies ResourceRuntime` (not `: ResourceRuntime`) so their doc comments
   * stay visible to the generator.
   */
  readonly inputFields: z.ZodRawShape;
  check(olds: Record<string, any>, news: Record<string, any>): Promise<{ inputs: Record<string, any>; failures: CheckFailure[] }>;
  diff(id: string, olds: Record<string, any>, news: Record<string, any>): Promise<DiffResult>;
  create(inputs: Record<string, any>): Promise<{ id: string; outs: Record<string, any> }>;
  read(id: string, props: Record<string, any>): Promise<{ id: string; props: Record<string, any> }>;
  update(id: string, olds: Record<string, any>, news: Record<string, any>): Promise<{ outs: Record<string, any> }>;
  delete(id: string, props: Record<string, any>): Promise<void>;
}

export interface DiffResult {
  changes: boolean;
  replaces: string[];
  deleteBeforeReplace: boolean;
}

// ---- provider-wide settings (one provider host process) ----

let connectionDefaults: Partial<Connection> = {};
/** Stack config `netdev:persist`: the default of every resource's `persist`. */
let persistDefault = false;
let makeTransport: (c: Connection) => Transport = (c) => new SshTransport(c);
safeApply.setSshFunctions(openFreshTransport, dropPooledConnection);
/** The connection behind each transport connect() made, for safe apply's write guard. */
const writeTargets = new WeakMap<Transport, { connection: Connection; overSsh: boolean }>();

/** Called by the shim's `configure` with stack config (`netdev:*` keys). */
export function configureDefaults(get: (key: string) => string | undefined): void {
  connectionDefaults = connectionDefaultsFromConfig(get);
  persistDefault = get("persist") === "true";
}

/** Stack config `netdev:persist` (resources apply it where they can persist). */
export function persistByDefault(): boolean {
  return persistDefault;
}

/** Tests swap the SSH transport for a fake or local one. */
export function setTransportFactory(factory: (c: Connection) => Transport): void {
  makeTransport = factory;
}

export function resetDefaults(): void {
  connectionDefaults = {};
  persistDefault = false;
}

/** The effective connection: the resource's own fields over stack-config defaults. */
export function resolveConnection(given: unknown): Connection {
  const merged = mergeConnection(connectionDefaults, given as Partial<Connection> | undefined);
  const parsed = connectionSchema.safeParse(merged);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new NetdevError(`connection.${issue.path.join(".")}: ${issue.message} (set it on the resource or as netdev:${String(issue.path[0])} in stack config)`);
  }
  return parsed.data;
}

export function transportFor(given: unknown): Transport {
  return connect(resolveConnection(given));
}

/** The transport for a resolved connection, with reads retried once over a connection found dead (retryReads). */
function connect(c: Connection): Transport {
  const raw = makeTransport(c);
  const t = retryReads(raw);
  writeTargets.set(t, { connection: c, overSsh: raw instanceof SshTransport });
  return t;
}

/** Runs a write through safe apply (provider/safeApply.ts): `steps` are every line `write` runs. */
export function guardedWrite<T>(t: Transport, what: string, steps: string[][], write: () => Promise<T>): Promise<T> {
  const target = writeTargets.get(t);
  return target ? safeApply.runWrite({ ...target, transport: t, what }, steps, write) : write();
}

/**
 * A pooled connection that died silently (the host rebooted or was cut off, so no FIN
 * ever arrived) is only found out by using it: the command sent on it fails with
 * "closed before the command finished". The transport cannot retry that, since the
 * command may have run; a command its caller marked idempotent (the read helpers:
 * RunOptions.idempotent) is run once more, on the fresh connection the pool then dials.
 */
function retryReads(t: Transport): Transport {
  return {
    label: t.label,
    batchKey: t.batchKey,
    async run(argv, opts) {
      try {
        return await t.run(argv, opts);
      } catch (err) {
        if (!(opts?.idempotent && err instanceof ConnectionError && /closed before the command finished/.test(err.message))) throw err;
        return t.run(argv, opts);
      }
    },
  };
}

// ---- check and diff: pure, never touch a host ----

export async function checkInputs(schema: z.ZodType, news: Record<string, any>): Promise<{ inputs: Record<string, any>; failures: CheckFailure[] }> {
  const { __provider, ...raw } = news;
  const result = validate(schema, raw);
  const failures = result.ok ? [] : result.failures;
  if (!containsUnknown(raw.connection)) {
    const merged = mergeConnection(connectionDefaults, raw.connection);
    if (!merged.host) failures.push({ property: "connection.host", reason: "connection.host is required: set connection on the resource or netdev:host in stack config" });
    // A bad netdev:safeApply in stack config fails here too, not only at the first write.
    if (raw.connection?.safeApply === undefined && connectionDefaults.safeApply !== undefined) {
      const sa = validate(safeApplySchema, connectionDefaults.safeApply as Record<string, unknown>);
      if (!sa.ok) for (const f of sa.failures) failures.push({ property: `connection.safeApply.${f.property}`, reason: `${f.reason} (from stack config netdev:safeApply)` });
    }
  }
  if (!result.ok) return { inputs: news, failures };
  return { inputs: stripUndefined(result.value as Record<string, any>), failures };
}

/** Identity of the target host: changing it means a different device. */
function hostIdentity(c: any): unknown {
  if (!c || typeof c !== "object") return c;
  return [c.host, c.port ?? 22];
}

/**
 * Compares old outputs with new inputs, looking only at keys the inputs set.
 * Credential-only connection changes are updates (state keeps the newest), never replacements.
 */
export function diffInputs(olds: Record<string, any>, news: Record<string, any>, replaceOn: string[]): DiffResult {
  const replaces: string[] = [];
  let changes = false;
  for (const [key, value] of Object.entries(news)) {
    if (key === "__provider" || key === "adopt") continue;
    const old = olds[key];
    if (key === "connection") {
      if (containsUnknown(value)) {
        changes = true;
        continue;
      }
      if (!isDeepStrictEqual(hostIdentity(old), hostIdentity(value))) replaces.push(key);
      if (!isDeepStrictEqual(stripUndefined(old ?? {}), stripUndefined(value ?? {}))) changes = true;
      continue;
    }
    if (value === undefined || isDeepStrictEqual(old, value)) continue;
    changes = true;
    if (replaceOn.includes(key)) replaces.push(key);
  }
  // Leaving `namespace` out means the host's own namespace: the device would move, not stay.
  if (replaceOn.includes("namespace") && news.namespace === undefined && olds.namespace !== undefined) replaces.push("namespace");
  return { changes: changes || replaces.length > 0, replaces, deleteBeforeReplace: true };
}

export function stripUndefined<T>(v: T): T {
  if (Array.isArray(v)) return v.map(stripUndefined) as T;
  if (v && typeof v === "object") {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) if (x !== undefined) out[k] = stripUndefined(x);
    return out as T;
  }
  return v;
}

// ---- ids ----

/** `host:port/namespace/name`: names the host, namespace (empty for the host's own) and device. */
export function makeId(connection: Connection, namespace: string | undefined, name: string): string {
  return `${connection.host}:${connection.port ?? 22}/${namespace ?? ""}/${name}`;
}

// ---- link resources ----

/** Fields the engine reconciles for every link kind, in the order they are applied. */
const COMMON_FIELDS = ["mtu", "macAddress", "master", "addresses", "up"] as const;
/** Inputs that are not device state (`__provider` is the shim module the provider host passes back in). */
const NOT_DEVICE_STATE = new Set(["__provider", "connection", "adopt", "name", "namespace", "persist", "persistedFiles"]);

/**
 * ifalias a create writes right after its add and clears once the device is converged.
 * A device still carrying it was left by a create that failed and could not remove it
 * (typically: the host became unreachable). The digest covers the target host, the
 * kind and every input, so only a retry of that same create takes the device over; a
 * user's device (or another stack's) never carries it.
 */
const CREATING = "pulumi-netdev:creating:";

function creatingMarker(kind: LinkKind, c: Connection, d: Desired): string {
  const { connection: _c, adopt: _a, __provider: _p, ...rest } = d;
  const digest = createHash("sha256").update(JSON.stringify([kind.resource, hostIdentity(c), sortedKeys(rest)])).digest("hex");
  return CREATING + digest.slice(0, 20);
}

function isCreatingMarker(alias: unknown): boolean {
  return typeof alias === "string" && alias.startsWith(CREATING);
}

/** An empty alias removes it (IFLA_IFALIAS of length 0). */
function clearAliasArgv(d: Desired): string[] {
  return ipArgv(d.namespace, "link", "set", "dev", d.name, "alias", "");
}

function inNamespace(d: Desired): string {
  return d.namespace ? ` in namespace ${d.namespace}` : "";
}

function sortedKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortedKeys);
  if (v && typeof v === "object") return Object.fromEntries(Object.keys(v).sort().map((k) => [k, sortedKeys((v as Record<string, unknown>)[k])]));
  return v;
}

/** `ip [-n ns] link add ...`: refused with "File exists" when the name is taken (NLM_F_EXCL). */
function isExclusiveAdd(argv: string[] | undefined): boolean {
  const words = argv?.[1] === "-n" ? argv.slice(3) : argv?.slice(1);
  return argv?.[0] === "ip" && words?.[0] === "link" && words[1] === "add";
}

/** Kernel modules whose name differs from the kind's `info_kind` (for "no support" errors). */
const KERNEL_MODULES: Record<string, string> = { vlan: "8021q", bond: "bonding" };

function linkSchema(kind: LinkKind) {
  const base = z.strictObject({ ...commonLinkFields, ...kind.fields });
  return base.superRefine((v: any, ctx) => {
    if (v.master !== undefined && v.master === v.name && v.master !== UNKNOWN)
      ctx.addIssue({ code: "custom", path: ["master"], message: `must not be the device itself ("${v.name}")` });
    portRefine(v, ctx);
    kind.refine?.(v, ctx);
    if (v.persist === true) for (const l of persistLimits(kind, v)) ctx.addIssue({ code: "custom", path: [l.field], message: l.reason });
  });
}

/** What `persist` cannot carry for these inputs (a device in a namespace, a vxlan's inherited TOS, ...). */
export function persistLimits(kind: LinkKind, v: Desired): PersistLimit[] {
  return [...commonPersistLimits(v), ...(kind.persistLimits?.(v) ?? [])];
}

function commonState(link: LinkJson, d: Desired): Record<string, unknown> {
  return {
    mtu: link.mtu,
    macAddress: link.address,
    master: link.master,
    addresses: linkAddresses(link, d.addresses),
    up: isAdminUp(link),
  };
}

export class LinkEngine<K extends LinkKind = LinkKind> implements ResourceRuntime {
  readonly inputFields: typeof commonLinkFields & K["fields"];
  readonly schema: z.ZodType;
  readonly replaceOn: string[];

  constructor(readonly kind: K) {
    this.inputFields = { ...commonLinkFields, ...kind.fields };
    this.schema = linkSchema(kind);
    this.replaceOn = ["name", "namespace", ...kind.replaceOn];
  }

  async check(_olds: Record<string, any>, news: Record<string, any>) {
    const result = await checkInputs(this.schema, news);
    // The stack-wide default applies where it can: a device it cannot persist (in a
    // namespace, ...) stays as it was rather than failing the whole stack's check.
    const v = result.inputs;
    if (result.failures.length === 0 && v.persist === undefined && persistDefault && !containsUnknown(v) && persistLimits(this.kind, v as Desired).length === 0) v.persist = true;
    return result;
  }

  async diff(_id: string, olds: Record<string, any>, news: Record<string, any>): Promise<DiffResult> {
    const result = diffInputs(olds, news, this.replaceOn);
    for (const field of this.kind.extraReplaces?.(olds, news) ?? []) {
      if (!result.replaces.includes(field)) result.replaces.push(field);
      result.changes = true;
    }
    return result;
  }

  /** The kernel's view of every input field, plus outputs. */
  async actualState(t: Transport, d: Desired, link: LinkJson, companions?: ReadContext["companions"]): Promise<Record<string, unknown>> {
    return { ...commonState(link, d), ...(await portState(t, d, link)), ...(await this.kind.readFields(link, { transport: t, desired: d, companions })) };
  }

  /**
   * The device and the kind's companions (a veth's peer), read in one round trip;
   * after running `steps` when given (the reads then share their last `ip -batch`).
   * `opts.addresses: false`: the caller does not need their addresses (see ReadOptions).
   */
  async readDevice(t: Transport, d: Desired, steps: string[][] = [], opts: ReadOptions = {}): Promise<{ link: LinkJson | undefined; companions?: ReadContext["companions"] }> {
    const wanted = [{ namespace: d.namespace, name: d.name }, ...(this.kind.companions?.(d) ?? [])].map((w) => ({ ...w, ...opts }));
    const [link, ...others] = await runSteps(t, steps, wanted);
    return { link, companions: wanted.length > 1 ? wanted.slice(1).map((c, i) => ({ ...c, link: others[i] })) : undefined };
  }

  mismatches(d: Desired, actual: Record<string, unknown>): Mismatch[] {
    const out: Mismatch[] = [];
    for (const [field, desired] of Object.entries(d)) {
      if (desired === undefined || NOT_DEVICE_STATE.has(field) || this.kind.unverified?.includes(field)) continue;
      const a = actual[field];
      const ok = this.kind.satisfies ? this.kind.satisfies(field, desired, a) : isDeepStrictEqual(desired, a);
      if (!ok) out.push({ field, desired, actual: a });
    }
    return out;
  }

  /**
   * Kind changes first, then the common ones (enslaving happens before `up`), then the port's options.
   * `masterKind`: the `info_kind` of the wanted master (a bond needs its slave down).
   */
  planSteps(d: Desired, mismatches: Mismatch[], link: LinkJson, actual: Record<string, unknown> = {}, masterKind?: string, masterKinds: Record<string, string | undefined> = {}): string[][] {
    const common = mismatches.filter((m) => (COMMON_FIELDS as readonly string[]).includes(m.field));
    const port = mismatches.filter((m) => (PORT_FIELDS as readonly string[]).includes(m.field));
    const steps = this.kind.updateArgv(d, mismatches.filter((m) => !common.includes(m) && !port.includes(m)), link, actual, masterKinds);
    const have = { master: link.master, addresses: linkAddresses(link, d.addresses), up: isAdminUp(link), masterKind };
    return [...steps, ...genericLinkSteps(d.namespace, d.name, new Set(common.map((m) => m.field)), d as GenericAttributes, have), ...portSteps(d, port)];
  }

  /**
   * Reads back until the kernel reports every wanted value (bounded), else names the
   * first mismatch. `first`: a read made right after the write, used as the first attempt.
   */
  async verify(t: Transport, d: Desired, first?: Awaited<ReturnType<LinkEngine["readDevice"]>>): Promise<{ link: LinkJson; actual: Record<string, unknown> }> {
    const state = async (read: Awaited<ReturnType<LinkEngine["readDevice"]>>) => {
      if (!read.link) throw new NetdevError(`${t.label}: ${d.name} disappeared right after it was written`);
      return { link: read.link, actual: await this.actualState(t, d, read.link, read.companions) };
    };
    return readUntilConverged(t.label, d.name, async () => state(await this.readDevice(t, d)), (s) => this.mismatches(d, s.actual), first && (await state(first)));
  }

  /** `actual`: the kernel's view of `link` when the caller has just read it (saves reading the kind's extra state again). */
  async outputs(t: Transport, d: Desired, link: LinkJson, actual?: Record<string, unknown>): Promise<Record<string, any>> {
    actual ??= await this.actualState(t, d, link);
    // Outputs are the kernel's view of every field it reports (drift shows up in
    // `pulumi refresh`), the inputs for the rest.
    const state: Record<string, unknown> = { ...d };
    for (const [k, v] of Object.entries(actual)) if (!NOT_DEVICE_STATE.has(k)) state[k] = v;
    return stripUndefined({
      ...state,
      macAddress: link.address,
      ifindex: link.ifindex,
      operState: link.operstate,
      ...(this.kind.outputs?.(link, d) ?? {}),
    });
  }

  /**
   * Creates the device, or finishes an interrupted create of these very inputs, or
   * adopts an existing device when asked to (refusing anything it does not own).
   */
  async create(inputs: Record<string, any>): Promise<{ id: string; outs: Record<string, any> }> {
    const d = inputs as Desired;
    const connection = resolveConnection(d.connection);
    const t = connect(connection);
    if (d.persist) await persist.preflight(t);
    const id = makeId(connection, d.namespace, d.name);
    const marker = creatingMarker(this.kind, connection, d);
    // `ip link add` is exclusive (NLM_F_EXCL): on a taken name it fails with "File
    // exists" and changes nothing. So the usual case, a free name, goes straight to the
    // add, and only a refused add reads what is there. (`ip tuntap add` attaches to an
    // existing tap instead of failing: that kind reads first.)
    const [add] = this.kind.createArgv(d);
    if (isExclusiveAdd(add)) {
      try {
        return { id, outs: await this.addMarked(t, d, marker) };
      } catch (err) {
        // The name (or a veth peer's) is taken: find out by what, as below.
        if (!(err instanceof CommandError && isDeepStrictEqual(err.argv, add) && /File exists/.test(err.stderr))) throw err;
      }
    }
    // Whether the name is taken, and by what, needs no addresses (LINK_ONLY: cheap on a busy host).
    const taken = await readLink(t, d.namespace, d.name, LINK_ONLY);
    if (!taken) return { id, outs: await this.addMarked(t, d, marker) };
    // Finishing or adopting converges the device, which needs its addresses.
    const existing = t.batchKey ? await readLink(t, d.namespace, d.name) : taken;
    if (!existing) return { id, outs: await this.addMarked(t, d, marker) };
    if (this.isOwnLeftover(existing, marker)) return { id, outs: await this.finishInterruptedCreate(t, d, existing, marker) };
    return { id, outs: await this.adoptExisting(t, d, existing) };
  }

  /** Left by an earlier create of these very inputs that could not remove it: ours to finish. */
  private isOwnLeftover(existing: LinkJson, marker: string): boolean {
    return existing.linkinfo?.info_kind === this.kind.infoKind && existing.ifalias === marker;
  }

  /** Adopt policy: only a device of this kind, only with `adopt: true`; anything else is left untouched. */
  private async adoptExisting(t: Transport, d: Desired, existing: LinkJson): Promise<Record<string, any>> {
    const kindHere = existing.linkinfo?.info_kind ?? "(plain device)";
    if (kindHere !== this.kind.infoKind)
      throw new NetdevError(`${t.label}: a device named ${d.name}${inNamespace(d)} already exists and is a ${kindHere}, not a ${this.kind.infoKind}; it was left untouched`);
    if (!d.adopt) {
      const note = isCreatingMarker(existing.ifalias) ? " (an interrupted pulumi-netdev create with other inputs left it)" : "";
      throw new NetdevError(`${t.label}: ${this.kind.infoKind} ${d.name}${inNamespace(d)} already exists${note}; it was left untouched. Set adopt: true to take it over, or choose another name`);
    }
    await this.kind.beforeWrite?.({ transport: t, desired: d });
    // A failure from here on never deletes the device: it was there before us.
    return this.persisted(t, d, await this.converge(t, d, existing, isCreatingMarker(existing.ifalias) ? [clearAliasArgv(d)] : []));
  }

  /**
   * Persistence after the kernel is converged and verified: writes (or removes) the
   * networkd files and records them in the outputs (`persistedFiles`).
   */
  private async persisted(t: Transport, d: Desired, outs: Record<string, any>, previous?: persist.PersistedFile[]): Promise<Record<string, any>> {
    const { persistedFiles: _old, ...rest } = outs;
    if (!d.persist) {
      await persist.removeFiles(t, previous);
      return rest;
    }
    return { ...rest, persist: true, persistedFiles: await persist.writeLinkFiles(t, this.kind, d, outs, previous) };
  }

  /**
   * Marker protocol: the marker goes in right after the add, in the same `ip -batch`
   * (one process on the host), so a connection lost after the add cannot leave an
   * unmarked device; converging clears it. (`ip link add ... alias X` is accepted,
   * but the kernel ignores the alias on create.)
   */
  private async addMarked(t: Transport, d: Desired, marker: string): Promise<Record<string, any>> {
    await this.kind.beforeWrite?.({ transport: t, desired: d });
    const [add, ...rest] = this.kind.createArgv(d);
    // The changes every new device needs (master, addresses, up) go in the add's own
    // batch, so a create costs one write and its read-back; converge then only finds
    // what the add could not set.
    const fresh = this.freshSteps(d);
    const steps = [add, ipArgv(d.namespace, "link", "set", "dev", d.name, "alias", marker), ...rest, ...fresh];
    let added: Awaited<ReturnType<LinkEngine["readDevice"]>>;
    try {
      // With nothing but the add, the device has no addresses yet: its read-back needs none (LINK_ONLY).
      added = await guardedWrite(t, `${this.kind.resource} ${d.name} create`, steps, () => this.readDevice(t, d, steps, fresh.length > 0 ? {} : LINK_ONLY));
    } catch (err) {
      // When the add itself failed there is nothing of ours to remove, and the name
      // may belong to something created meanwhile; nor when nothing was sent at all.
      if (err instanceof CommandError && isDeepStrictEqual(err.argv, add)) throw this.addError(t, err);
      if (err instanceof ConnectionError && err.notRun) throw err;
      throw await this.rollBackCreate(t, d, marker, err);
    }
    try {
      if (!added.link) throw new NetdevError(`${t.label}: ${d.name} was not found right after it was created`);
      return await this.persisted(t, d, await this.converge(t, d, added.link, [clearAliasArgv(d)], added.companions));
    } catch (err) {
      throw await this.rollBackCreate(t, d, marker, err);
    }
  }

  /**
   * The steps that take a device just added (down, no master, no addresses: `ip
   * link add` makes it so, and the kind's freshState says the same of the rest of
   * it, e.g. a veth's peer) to the wanted master, addresses and up state.
   */
  private freshSteps(d: Desired): string[][] {
    const link: LinkJson = { ifindex: 0, ifname: d.name, flags: [], mtu: 0, operstate: "DOWN" };
    const fresh = { ...d, master: undefined, addresses: [], up: false, ...this.kind.freshState?.(d) };
    return this.planSteps(d, this.mismatches(d, fresh), link, fresh);
  }

  /** A device left marked by an earlier create of these inputs: converge it as if just added. */
  private async finishInterruptedCreate(t: Transport, d: Desired, existing: LinkJson, marker: string): Promise<Record<string, any>> {
    await this.kind.beforeWrite?.({ transport: t, desired: d });
    try {
      return await this.persisted(t, d, await this.converge(t, d, existing, [clearAliasArgv(d)]));
    } catch (err) {
      throw await this.rollBackCreate(t, d, marker, err);
    }
  }

  /**
   * Rollback: a half-made device would block the name forever and is not in the state,
   * so it is removed. Returns `err`, saying so when the removal failed too.
   */
  private async rollBackCreate(t: Transport, d: Desired, marker: string, err: unknown): Promise<unknown> {
    const del = ipArgv(d.namespace, "link", "del", "dev", d.name);
    const left = await guardedWrite(t, `${this.kind.resource} ${d.name} create (removing the half-made device)`, [del], () => t.run(del)).then(
      (r) => (r.code === 0 || isGoneError(r.stderr) ? undefined : r.stderr.trim()),
      (e: Error) => e.message,
    );
    if (left !== undefined && err instanceof Error)
      err.message += `; ${d.name} could not be removed (${left}): it is marked with ifalias ${marker}, and the next create of this resource with the same inputs takes it over`;
    return err;
  }

  /** Error mapping of a failed add: a kernel without the kind's module says which module. */
  private addError(t: Transport, err: CommandError): Error {
    if (!/Unknown device type/i.test(err.stderr)) return err;
    return new NetdevError(`${t.label}: this kernel has no ${this.kind.infoKind} support (module ${KERNEL_MODULES[this.kind.infoKind] ?? this.kind.infoKind} not available): \`${err.argv.join(" ")}\` failed: ${err.stderr.trim()}`);
  }

  /** Fixes what differs from `d`; `extra` lines run with the fixes (or alone when nothing differs). */
  private async converge(t: Transport, d: Desired, link: LinkJson, extra: string[][] = [], companions?: ReadContext["companions"]): Promise<Record<string, any>> {
    let actual = await this.actualState(t, d, link, companions);
    const bad = this.mismatches(d, actual);
    const steps = [...(bad.length > 0 ? this.planSteps(d, bad, link, actual, await this.wantedMasterKind(t, d, bad), await this.otherMasterKinds(t, d, bad)) : []), ...extra];
    const what = `${this.kind.resource} ${d.name} ${bad.length > 0 ? "change" : "finish"}`;
    if (bad.length > 0) ({ link, actual } = await this.verify(t, d, await guardedWrite(t, what, steps, () => this.readDevice(t, d, steps))));
    else if (steps.length > 0) await guardedWrite(t, what, steps, () => runSteps(t, steps));
    return this.outputs(t, d, link, actual);
  }

  /** The kind of the master the device is to be enslaved to, when that changes (read with the other reads of the moment). */
  async wantedMasterKind(t: Transport, d: Desired, bad: Mismatch[]): Promise<string | undefined> {
    if (!d.master || !bad.some((m) => m.field === "master")) return undefined;
    return (await readLink(t, d.namespace, d.master, LINK_ONLY))?.linkinfo?.info_kind;
  }

  /** The kinds of the kind's other masters (kind.masters) whose field differs, read together. */
  private async otherMasterKinds(t: Transport, d: Desired, bad: Mismatch[]): Promise<Record<string, string | undefined>> {
    const changing = (this.kind.masters?.(d) ?? []).filter((m) => bad.some((b) => b.field === m.field));
    const links = await Promise.all(changing.map((m) => readLink(t, m.namespace, m.name, LINK_ONLY)));
    return Object.fromEntries(changing.map((m, i) => [m.field, links[i]?.linkinfo?.info_kind]));
  }

  async read(id: string, props: Record<string, any>): Promise<{ id: string; props: Record<string, any> }> {
    const t = transportFor(props.connection);
    const { link, companions } = await this.readDevice(t, props as Desired);
    // Another kind, or an interrupted create's leftover, under this name is not ours: the
    // resource is gone. A same-kind device with another ifindex is taken as ours here
    // (refresh is how a user accepts a device recreated outside Pulumi; see foreignDevice).
    if (!link || link.linkinfo?.info_kind !== this.kind.infoKind || isCreatingMarker(link.ifalias)) return { id: "", props: {} };
    const outs = await this.outputs(t, props as Desired, link, await this.actualState(t, props as Desired, link, companions));
    // Files edited or removed outside Pulumi show up as `persist: false` (a diff the next up repairs).
    if (props.persist) outs.persist = await persist.filesIntact(t, props.persistedFiles ?? []);
    return { id, props: stripUndefined({ ...outs, persistedFiles: props.persistedFiles }) };
  }

  async update(_id: string, olds: Record<string, any>, news: Record<string, any>): Promise<{ outs: Record<string, any> }> {
    const d = news as Desired;
    const t = transportFor(d.connection);
    if (d.persist && !olds.persistedFiles?.length) await persist.preflight(t);
    const { link, companions } = await this.readDevice(t, d);
    if (!link) throw new NetdevError(`${t.label}: ${d.name} no longer exists (deleted outside Pulumi?); run \`pulumi refresh\` and then \`pulumi up\` to recreate it`);
    this.refuseForeign(t, d, olds, link, "update");
    await this.kind.beforeWrite?.({ transport: t, desired: d });
    return { outs: await this.persisted(t, d, await this.converge(t, d, link, [], companions), olds.persistedFiles) };
  }

  async delete(_id: string, props: Record<string, any>): Promise<void> {
    const d = props as Desired;
    const t = transportFor(d.connection);
    // Read first (reads of concurrent operations share one `ip` invocation, so this is cheap).
    const link = await readLink(t, d.namespace, d.name, LINK_ONLY);
    if (link) this.refuseForeign(t, d, props, link, "delete");
    if (!link) return persist.removeFiles(t, props.persistedFiles);
    const before = this.kind.beforeDeleteArgv ? await this.kind.beforeDeleteArgv(d, link, { transport: t, desired: d }) : [];
    // A command of its own, never shared with other deletes: after dropping the RTNL
    // lock, each `ip link del` waits for an RCU grace period. Separate processes wait
    // side by side; the lines of one `ip -batch` wait one after another (measured:
    // 200 veth deletes take 1.2 s 8 at a time, 4.7 s as one batch).
    const argv = ipArgv(d.namespace, "link", "del", "dev", d.name);
    // One guarded write: deleting a bond that carries the session is refused before its slaves are released.
    await guardedWrite(t, `${this.kind.resource} ${d.name} delete`, [...before, argv], async () => {
      // Files first: a device that outlived its delete comes back at boot only if they
      // stayed. Inside the guarded write, so a delete safe apply refuses keeps them.
      await persist.removeFiles(t, props.persistedFiles);
      if (before.length > 0) await runSteps(t, before);
      const r = await t.run(argv);
      if (r.code !== 0 && !isGoneError(r.stderr)) throw new CommandError(t.label, argv, r.code, r.stderr);
    });
  }

  /**
   * Why the device under the state's name is not the one the stack manages, or
   * undefined when it is: another kind; a device still carrying an interrupted
   * create's marker (a device the stack made has had it cleared); or a device of
   * the kind whose ifindex differs from the one the state recorded (the stack's
   * device was deleted and this one made outside Pulumi: `pulumi refresh` records
   * the new ifindex, and the stack then manages it), unless it is persisted.
   */
  private foreignDevice(state: Record<string, any>, link: LinkJson): string | undefined {
    const kindHere = link.linkinfo?.info_kind ?? "(plain device)";
    if (kindHere !== this.kind.infoKind) return `is a ${kindHere}, but the stack manages a ${this.kind.infoKind} of that name (deleted and replaced outside Pulumi?)`;
    if (isCreatingMarker(link.ifalias)) return `is a ${kindHere} left by another, interrupted create (ifalias ${link.ifalias}), not the ${this.kind.infoKind} the stack manages`;
    // A persisted device is recreated at boot by networkd from the stack's files: a new ifindex is expected.
    if (typeof state.ifindex === "number" && link.ifindex !== state.ifindex && !state.persistedFiles?.length)
      return `is a ${kindHere} with ifindex ${link.ifindex}, but the one the stack manages has ifindex ${state.ifindex} (recreated outside Pulumi?); run \`pulumi refresh\` to take this one as the stack's`;
    return undefined;
  }

  private refuseForeign(t: Transport, d: Desired, state: Record<string, any>, link: LinkJson, action: "update" | "delete"): void {
    const why = this.foreignDevice(state, link);
    if (why) throw new NetdevError(`${t.label}: refusing to ${action} ${d.name}${inNamespace(d)}: the device there ${why}. It was left untouched`);
  }
}

