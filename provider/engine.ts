import { isDeepStrictEqual } from "node:util";
import { z } from "zod";
import { type Connection, connectionDefaultsFromConfig, connectionSchema, mergeConnection } from "./connection";
import { CommandError, NetdevError, VerificationError } from "./errors";
import { ipArgv, isAdminUp, isGoneError, type LinkJson, linkAddresses, readLink } from "./iproute/link";
import type { Desired, LinkKind, Mismatch } from "./kinds/types";
import { type CheckFailure, commonLinkFields, containsUnknown, UNKNOWN, validate } from "./schema";
import { runSteps } from "./steps";
import { SshTransport } from "./transport/ssh";
import type { Transport } from "./transport/types";

/** The calls the Pulumi dynamic provider host makes (see sdk/shim.ts). */
export interface ResourceRuntime {
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
let makeTransport: (c: Connection) => Transport = (c) => new SshTransport(c);

/** Called by the shim's `configure` with stack config (`netdev:*` keys). */
export function configureDefaults(get: (key: string) => string | undefined): void {
  connectionDefaults = connectionDefaultsFromConfig(get);
}

/** Tests swap the SSH transport for a fake or local one. */
export function setTransportFactory(factory: (c: Connection) => Transport): void {
  makeTransport = factory;
}

export function resetDefaults(): void {
  connectionDefaults = {};
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
  return makeTransport(resolveConnection(given));
}

// ---- check and diff: pure, never touch a host ----

export async function checkInputs(schema: z.ZodType, news: Record<string, any>): Promise<{ inputs: Record<string, any>; failures: CheckFailure[] }> {
  const { __provider, ...raw } = news;
  const result = validate(schema, raw);
  const failures = result.ok ? [] : result.failures;
  if (!containsUnknown(raw.connection)) {
    const merged = mergeConnection(connectionDefaults, raw.connection);
    if (!merged.host) failures.push({ property: "connection.host", reason: "connection.host is required: set connection on the resource or netdev:host in stack config" });
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
const NOT_DEVICE_STATE = new Set(["__provider", "connection", "adopt", "name", "namespace"]);
const VERIFY_ATTEMPTS = 5;
const VERIFY_DELAY_MS = 150;

export function linkSchema(kind: LinkKind) {
  const base = z.strictObject({ ...commonLinkFields, ...kind.fields });
  return base.superRefine((v: any, ctx) => {
    if (v.master !== undefined && v.master === v.name && v.master !== UNKNOWN)
      ctx.addIssue({ code: "custom", path: ["master"], message: `must not be the device itself ("${v.name}")` });
    kind.refine?.(v, ctx);
  });
}

function commonState(link: LinkJson): Record<string, unknown> {
  return {
    mtu: link.mtu,
    macAddress: link.address,
    master: link.master,
    addresses: linkAddresses(link),
    up: isAdminUp(link),
  };
}

export class LinkEngine implements ResourceRuntime {
  readonly schema: z.ZodType;
  readonly replaceOn: string[];

  constructor(readonly kind: LinkKind) {
    this.schema = linkSchema(kind);
    this.replaceOn = ["name", "namespace", ...kind.replaceOn];
  }

  check(_olds: Record<string, any>, news: Record<string, any>) {
    return checkInputs(this.schema, news);
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
  async actualState(t: Transport, d: Desired, link: LinkJson): Promise<Record<string, unknown>> {
    return { ...commonState(link), ...(await this.kind.readFields(link, { transport: t, desired: d })) };
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

  /** Kind changes first, then the common ones; enslaving happens before `up`. */
  planSteps(d: Desired, mismatches: Mismatch[], link: LinkJson, actual: Record<string, unknown> = {}): string[][] {
    const ns = d.namespace;
    const dev = d.name;
    const steps = this.kind.updateArgv(d, mismatches.filter((m) => !(COMMON_FIELDS as readonly string[]).includes(m.field)), link, actual);
    const by = new Map(mismatches.map((m) => [m.field, m]));
    if (by.has("mtu")) steps.push(ipArgv(ns, "link", "set", "dev", dev, "mtu", String(d.mtu)));
    if (by.has("macAddress")) steps.push(ipArgv(ns, "link", "set", "dev", dev, "address", d.macAddress));
    if (by.has("master")) {
      if (link.master) steps.push(ipArgv(ns, "link", "set", "dev", dev, "nomaster"));
      steps.push(ipArgv(ns, "link", "set", "dev", dev, "master", d.master));
    }
    if (by.has("addresses")) {
      const have = new Set(linkAddresses(link));
      const want = new Set<string>(d.addresses);
      for (const a of have) if (!want.has(a)) steps.push(ipArgv(ns, "addr", "del", a, "dev", dev));
      for (const a of want) if (!have.has(a)) steps.push(ipArgv(ns, "addr", "add", a, "dev", dev));
    }
    if (by.has("up")) steps.push(ipArgv(ns, "link", "set", "dev", dev, d.up ? "up" : "down"));
    return steps;
  }

  /** Reads back until the kernel reports every wanted value (bounded), else names the first mismatch. */
  async verify(t: Transport, d: Desired): Promise<LinkJson> {
    let last: Mismatch | undefined;
    for (let attempt = 0; attempt < VERIFY_ATTEMPTS; attempt++) {
      if (attempt > 0) await new Promise((r) => setTimeout(r, VERIFY_DELAY_MS * attempt));
      const link = await readLink(t, d.namespace, d.name);
      if (!link) throw new NetdevError(`${t.label}: ${d.name} disappeared right after it was written`);
      const bad = this.mismatches(d, await this.actualState(t, d, link));
      if (bad.length === 0) return link;
      last = bad[0];
    }
    throw new VerificationError(t.label, d.name, last!.field, last!.desired, last!.actual);
  }

  async outputs(t: Transport, d: Desired, link: LinkJson): Promise<Record<string, any>> {
    const actual = await this.actualState(t, d, link);
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

  async create(inputs: Record<string, any>): Promise<{ id: string; outs: Record<string, any> }> {
    const d = inputs as Desired;
    const connection = resolveConnection(d.connection);
    const t = makeTransport(connection);
    const id = makeId(connection, d.namespace, d.name);
    const existing = await readLink(t, d.namespace, d.name);
    if (existing) {
      const kindHere = existing.linkinfo?.info_kind ?? "(plain device)";
      if (kindHere !== this.kind.infoKind)
        throw new NetdevError(`${t.label}: a device named ${d.name}${d.namespace ? ` in namespace ${d.namespace}` : ""} already exists and is a ${kindHere}, not a ${this.kind.infoKind}; it was left untouched`);
      if (!d.adopt)
        throw new NetdevError(`${t.label}: ${this.kind.infoKind} ${d.name}${d.namespace ? ` in namespace ${d.namespace}` : ""} already exists; it was left untouched. Set adopt: true to take it over, or choose another name`);
      await this.kind.beforeWrite?.({ transport: t, desired: d });
      const outs = await this.converge(t, d, existing);
      return { id, outs };
    }
    await this.kind.beforeWrite?.({ transport: t, desired: d });
    const createSteps = this.kind.createArgv(d);
    try {
      await runSteps(t, createSteps);
      const link = await readLink(t, d.namespace, d.name);
      if (!link) throw new NetdevError(`${t.label}: ${d.name} was not found right after it was created`);
      const outs = await this.converge(t, d, link);
      return { id, outs };
    } catch (err) {
      // A half-made device would block the name forever and is not in the state: remove it.
      // When the first line (the add) failed there is nothing of ours to remove, and the
      // name may belong to something created meanwhile.
      const addFailed = err instanceof CommandError && isDeepStrictEqual(err.argv, createSteps[0]);
      if (!addFailed) await t.run(ipArgv(d.namespace, "link", "del", "dev", d.name)).catch(() => undefined);
      throw err;
    }
  }

  private async converge(t: Transport, d: Desired, link: LinkJson): Promise<Record<string, any>> {
    const actual = await this.actualState(t, d, link);
    const bad = this.mismatches(d, actual);
    if (bad.length > 0) {
      await runSteps(t, this.planSteps(d, bad, link, actual));
      link = await this.verify(t, d);
    }
    return this.outputs(t, d, link);
  }

  async read(id: string, props: Record<string, any>): Promise<{ id: string; props: Record<string, any> }> {
    const t = transportFor(props.connection);
    const link = await readLink(t, props.namespace, props.name);
    if (!link || link.linkinfo?.info_kind !== this.kind.infoKind) return { id: "", props: {} };
    return { id, props: await this.outputs(t, props as Desired, link) };
  }

  async update(_id: string, _olds: Record<string, any>, news: Record<string, any>): Promise<{ outs: Record<string, any> }> {
    const d = news as Desired;
    const t = transportFor(d.connection);
    const link = await readLink(t, d.namespace, d.name);
    if (!link) throw new NetdevError(`${t.label}: ${d.name} no longer exists (deleted outside Pulumi?); run \`pulumi refresh\` and then \`pulumi up\` to recreate it`);
    await this.kind.beforeWrite?.({ transport: t, desired: d });
    return { outs: await this.converge(t, d, link) };
  }

  async delete(_id: string, props: Record<string, any>): Promise<void> {
    const d = props as Desired;
    const t = transportFor(d.connection);
    if (this.kind.beforeDeleteArgv) {
      const link = await readLink(t, d.namespace, d.name);
      if (!link) return;
      await runSteps(t, await this.kind.beforeDeleteArgv(d, link, { transport: t, desired: d }));
    }
    const argv = ipArgv(d.namespace, "link", "del", "dev", d.name);
    const r = await t.run(argv);
    if (r.code !== 0 && !isGoneError(r.stderr)) throw new CommandError(t.label, argv, r.code, r.stderr);
  }
}

