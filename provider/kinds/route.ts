import { isIP } from "node:net";
import { isDeepStrictEqual } from "node:util";
import { z } from "zod";
import { connectionInputSchema } from "../connection";
import { checkInputs, diffInputs, guardedWrite, makeId, persistByDefault, resolveConnection, type ResourceRuntime, stripUndefined, transportFor } from "../engine";
import { NetdevError } from "../errors";
import { ipArgv } from "../iproute/link";
import { defaultMetric, type Family, protocolNumber, readRoutes, type RouteJson, routeFields, routePrefix } from "../iproute/route";
import { type NetworkdFiles, section } from "../networkd";
import * as persist from "../persist";
import { canonicalIp, containsUnknown, ifname, ipAddress, netnsName, UNKNOWN } from "../schema";
import { runSteps } from "../steps";
import type { Transport } from "../transport/types";
import { readUntilConverged } from "../verify";
import type { Mismatch } from "./types";

/** An address as a number, for prefix arithmetic. */
function ipBits(ip: string): bigint {
  if (isIP(ip) === 4) return ip.split(".").reduce((n, o) => (n << 8n) | BigInt(Number(o)), 0n);
  const full = new URL(`http://[${ip}]`).hostname.slice(1, -1);
  const [head, tail = ""] = full.split("::");
  const h = head ? head.split(":") : [];
  const t = full.includes("::") ? (tail ? tail.split(":") : []) : [];
  const groups = full.includes("::") ? [...h, ...Array(8 - h.length - t.length).fill("0"), ...t] : h;
  return groups.reduce((n, g) => (n << 16n) | BigInt(parseInt(g, 16)), 0n);
}

/** The network of a CIDR (host bits cleared), e.g. 10.1.2.3/8 → 10.0.0.0/8. */
function networkOf(ip: string, len: number): string {
  const width = isIP(ip) === 4 ? 32 : 128;
  const net = (ipBits(ip) >> BigInt(width - len)) << BigInt(width - len);
  if (width === 32) return `${[24n, 16n, 8n, 0n].map((s) => Number((net >> s) & 255n)).join(".")}/${len}`;
  const groups = Array.from({ length: 8 }, (_, i) => ((net >> BigInt(112 - 16 * i)) & 0xffffn).toString(16));
  return `${canonicalIp(groups.join(":"))}/${len}`;
}

/** "default", or a network prefix like 10.0.0.0/8 or 2001:db8::/32 (host bits must be zero). */
function isPrefix(s: unknown): s is string {
  if (s === "default") return true;
  const m = typeof s === "string" ? /^([^/%]+)\/(\d{1,3})$/.exec(s) : null;
  return !!m && isIP(m[1]) !== 0 && Number(m[2]) <= (isIP(m[1]) === 4 ? 32 : 128);
}

const destination = z
  .string()
  .refine(isPrefix, 'must be "default" or a network prefix like 10.0.0.0/8 or 2001:db8::/32')
  .transform((s) => (s === "default" ? s : `${canonicalIp(s.split("/")[0])}/${Number(s.split("/")[1])}`));

const ROUTE_TYPES = ["unicast", "blackhole", "unreachable", "prohibit"] as const;

export const routeFieldsSchema = {
  /** How to reach the host. Defaults come from stack config. */
  connection: connectionInputSchema.optional(),
  /** Network namespace (on the host) whose routing table holds the route; default the host's own. Changing it replaces the route. */
  namespace: netnsName.optional(),
  /** "default" or a network prefix (CIDR with the host bits zero). An IPv6 default route without `via` is written "::/0". Changing it replaces the route. */
  destination,
  /** Gateway address, of the destination's family. */
  via: ipAddress.optional(),
  /** Device the route leaves through. */
  device: ifname.optional(),
  /** Preferred source address for traffic the host originates on this route (`src`). */
  source: ipAddress.optional(),
  /** Route metric (priority; lower wins), 0–4294967295. Default the kernel's: 0 for IPv4, 1024 for IPv6. Changing it replaces the route. */
  metric: z.number().int("must be a whole number").min(0, "must be at least 0").max(4294967295, "must be at most 4294967295").optional(),
  /** Routing table: "main", "local", or a number 1–4294967295 (policy routing). Default "main". Changing it replaces the route. */
  table: z.union([z.enum(["main", "local"]), z.number().int("must be a whole number").min(1, "must be at least 1").max(4294967295, "must be at most 4294967295")]).default("main"),
  /** Scope: "global" (default for gateway routes), "link" (default for routes without a gateway) or "host". */
  scope: z.enum(["global", "link", "host"]).optional(),
  /** Who installed the route: "boot" (the kernel's default for `ip route add`), "static", "dhcp", "ra", or a number 0–255. */
  protocol: z.union([z.enum(["boot", "static", "dhcp", "ra"]), z.number().int().min(0, "must be at least 0").max(255, "must be at most 255")]).optional(),
  /** Treat the gateway as directly reachable on `device` even if no prefix of the device covers it. Needs `device`. Default false. */
  onlink: z.boolean().optional(),
  /** "unicast" (default), or "blackhole" (drop silently), "unreachable" (ICMP host unreachable), "prohibit" (ICMP prohibited). */
  type: z.enum(ROUTE_TYPES).default("unicast"),
  /** Take over an existing route with the same identity (namespace, table, family, destination, metric) instead of failing. Default false. */
  adopt: z.boolean().default(false),
  /**
   * Keep the route across a reboot: a `[Route]` drop-in for the `.network` of its
   * device (README "Surviving reboots"). Unicast routes in the host's namespace only.
   * Default: stack config `netdev:persist` where it applies, else false.
   */
  persist: z.boolean().optional(),
};

type RouteInputs = z.infer<z.ZodObject<typeof routeFieldsSchema>>;

const known = (v: unknown) => v !== undefined && v !== UNKNOWN;
const familyOfIp = (ip: string): Family => (isIP(ip) === 6 ? 6 : 4);

/** The route's family: its destination's, or for "default" its gateway's (or source's); IPv4 otherwise. */
export function routeFamily(d: Pick<RouteInputs, "destination" | "via" | "source">): Family {
  if (d.destination !== "default") return familyOfIp(d.destination.split("/")[0]);
  if (d.via) return familyOfIp(d.via);
  if (d.source) return familyOfIp(d.source);
  return 4;
}

const schema = z.strictObject(routeFieldsSchema).superRefine((v, ctx) => {
  const dst = v.destination;
  // zod runs this even when a field failed: look only at values that parsed.
  if (!isPrefix(dst) || ![v.via, v.source].every((x) => x === undefined || x === UNKNOWN || isIP(x) !== 0)) return;
  if (dst !== "default") {
    const [ip, len] = dst.split("/");
    const net = networkOf(ip, Number(len));
    if (net !== dst) ctx.addIssue({ code: "custom", path: ["destination"], message: `has host bits set; the network is ${net}` });
  }
  if (![dst, v.via, v.source].every((x) => x === undefined || known(x))) return;
  const family = routeFamily(v);
  for (const field of ["via", "source"] as const) {
    const ip = v[field];
    if (ip !== undefined && familyOfIp(ip) !== family)
      ctx.addIssue({ code: "custom", path: [field], message: `is an IPv${familyOfIp(ip)} address but the route is IPv${family} (destination ${dst})` });
  }
  if (v.type !== "unicast") {
    for (const field of ["via", "device", "onlink"] as const)
      if (v[field] !== undefined) ctx.addIssue({ code: "custom", path: [field], message: `must not be set on a ${v.type} route (it sends nothing anywhere)` });
  } else if (v.via === undefined && v.device === undefined) {
    ctx.addIssue({ code: "custom", path: ["via"], message: "or device is required for a unicast route" });
  }
  if (v.onlink && v.device === undefined) ctx.addIssue({ code: "custom", path: ["onlink"], message: "needs device (the gateway is declared reachable on it)" });
  if (v.persist === true) {
    if (v.namespace !== undefined)
      ctx.addIssue({ code: "custom", path: ["persist"], message: `cannot be set on a route inside a network namespace (namespace "${v.namespace}"): systemd-networkd configures the host's own namespace only` });
    if (v.type !== "unicast")
      ctx.addIssue({ code: "custom", path: ["persist"], message: `cannot be set on a ${v.type} route: networkd writes routes into a device's .network, and a ${v.type} route has no device` });
  }
});

/**
 * The route as a `[Route]` section for the `.network` of `device` (the one it
 * leaves through: `device`, else the kernel's). Protocol and metric are always
 * written: networkd's own defaults (static; its metric) differ from `ip route add`'s.
 */
export function routeNetworkd(d: RouteInputs, device: string): NetworkdFiles {
  const { prefix, metric } = identity(d);
  const route = section("Route", [
    ["Destination", prefix],
    ["Gateway", d.via],
    ["PreferredSource", d.source],
    ["Metric", metric],
    ["Table", d.table === "main" ? undefined : d.table],
    ["Scope", d.scope],
    ["Protocol", d.protocol ?? "boot"],
    ["GatewayOnLink", d.onlink || undefined],
  ]);
  return { units: [], others: [{ device, entries: [], sections: [route] }] };
}

/** Names the route's drop-in: its identity, in characters a file name can hold. */
function routeOwner(d: RouteInputs): persist.Owner {
  const { family, prefix, table, metric } = identity(d);
  return { resource: "Route", name: `route-${family}-${table}-${prefix}-${metric}`.replace(/[^A-Za-z0-9._-]/g, "_") };
}

async function persisted(t: Transport, d: RouteInputs, r: RouteJson, outs: Record<string, unknown>, previous?: persist.PersistedFile[]): Promise<Record<string, unknown>> {
  const { persistedFiles: _old, ...rest } = outs;
  if (!d.persist) {
    await persist.removeFiles(t, previous);
    return rest;
  }
  const device = d.device ?? r.dev;
  if (!device) throw new NetdevError(`${t.label}: ${describe(d)} has no device to persist it with`);
  return { ...rest, persist: true, persistedFiles: await persist.writeFiles(t, routeOwner(d), routeNetworkd(d, device), previous) };
}

/** The kernel's key of a route: changing any of these is a different route. */
function identity(d: RouteInputs) {
  const family = routeFamily(d);
  return { family, prefix: routePrefix(d.destination, family), table: String(d.table), metric: d.metric ?? defaultMetric(family) };
}

/** `[type] prefix via … dev … src … metric … table … scope … proto … [onlink]`: one route, as `ip route add/replace` takes it. */
export function routeSpec(d: RouteInputs): string[] {
  const { prefix, table, metric } = identity(d);
  return [
    ...(d.type !== "unicast" ? [d.type] : []),
    prefix,
    ...(d.via !== undefined ? ["via", d.via] : []),
    ...(d.device !== undefined ? ["dev", d.device] : []),
    ...(d.source !== undefined ? ["src", d.source] : []),
    "metric", String(metric),
    "table", table,
    ...(d.scope !== undefined ? ["scope", d.scope] : []),
    ...(d.protocol !== undefined ? ["proto", String(d.protocol)] : []),
    ...(d.onlink ? ["onlink"] : []),
  ];
}

export function routeAddArgv(d: RouteInputs): string[] {
  return ipArgv(d.namespace, "route", "add", ...routeSpec(d));
}

export function routeReplaceArgv(d: RouteInputs): string[] {
  return ipArgv(d.namespace, "route", "replace", ...routeSpec(d));
}

/**
 * Removes exactly the route read back as `actual`. The kernel treats IPv4 metric 0 as
 * "any metric" and takes the first match, so the gateway and device it has are named too.
 */
export function routeDelArgv(d: RouteInputs, actual: RouteJson): string[] {
  const { prefix, table, metric } = identity(d);
  return ipArgv(d.namespace, "route", "del",
    ...(actual.type && actual.type !== "unicast" ? [actual.type] : []),
    prefix,
    ...(actual.gateway ? ["via", canonicalIp(actual.gateway)] : []),
    ...(actual.dev ? ["dev", actual.dev] : []),
    "metric", String(metric), "table", table);
}

/** The route with this identity, or undefined. */
async function readRoute(t: Transport, d: RouteInputs): Promise<RouteJson | undefined> {
  const { family, prefix, table, metric } = identity(d);
  const routes = await readRoutes(t, d.namespace, family, table, prefix);
  return routes.find((r) => routePrefix(r.dst, family) === prefix && (r.metric ?? defaultMetric(family)) === metric);
}

const COMPARED = ["type", "via", "device", "source", "scope", "protocol", "onlink"] as const;

function mismatches(d: RouteInputs, r: RouteJson | undefined): Mismatch[] {
  if (!r) return [{ field: "destination", desired: d.destination, actual: undefined }];
  const actual = routeFields(r, routeFamily(d));
  const out: Mismatch[] = [];
  for (const f of COMPARED) {
    const want = d[f];
    if (want === undefined) continue;
    const have = actual[f];
    const same = f === "protocol" ? protocolNumber(want as string | number) === protocolNumber(have as string | number) : isDeepStrictEqual(want, have);
    if (!same) out.push({ field: f, desired: want, actual: have });
  }
  return out;
}

/** Outputs: the inputs, with the kernel's view of every field it reports (drift shows in refresh). */
function outputs(d: RouteInputs, r: RouteJson): Record<string, unknown> {
  const family = routeFamily(d);
  const actual = routeFields(r, family);
  return stripUndefined({ ...d, ...actual, family: family === 6 ? "inet6" : "inet" });
}

function describe(d: RouteInputs): string {
  const { family, prefix, table, metric } = identity(d);
  return `IPv${family} route ${prefix} (table ${table}, metric ${metric}${d.namespace ? `, namespace ${d.namespace}` : ""})`;
}

async function converge(t: Transport, d: RouteInputs, argv: string[]): Promise<RouteJson> {
  // Through safe apply: a route the SSH session uses (the default route...) is a risky write.
  await guardedWrite(t, `Route ${describe(d)} ${argv[argv.indexOf("route") + 1]}`, [argv], () => runSteps(t, [argv]));
  return readUntilConverged(t.label, describe(d), () => readRoute(t, d), (r) => mismatches(d, r)) as Promise<RouteJson>;
}

function routeId(connection: Parameters<typeof makeId>[0], d: RouteInputs): string {
  const { family, prefix, table, metric } = identity(d);
  return makeId(connection, d.namespace, `route:inet${family === 6 ? "6" : ""}:${table}:${prefix}:${metric}`);
}

/**
 * A route (`ip route add/replace/del`), in the host's namespace or another.
 * Not a device: a runtime of its own beside LinkEngine (DESIGN.md §2).
 */
export const route: ResourceRuntime & { inputFields: typeof routeFieldsSchema } = {
  inputFields: routeFieldsSchema,
  async check(_olds, news) {
    const result = await checkInputs(schema, news);
    const v = result.inputs;
    // netdev:persist applies where it can: unicast routes in the host's namespace.
    if (result.failures.length === 0 && v.persist === undefined && persistByDefault() && v.namespace === undefined && v.type === "unicast" && !containsUnknown(v)) v.persist = true;
    return result;
  },

  async diff(_id, olds, news) {
    const result = diffInputs(olds, news, ["namespace", "destination", "table", "metric"]);
    // A "default" route changes family with its gateway: a different route.
    const oldFamily = olds.family === "inet6" ? 6 : olds.family === "inet" ? 4 : undefined;
    if (oldFamily && [news.destination, news.via, news.source].every((x) => x === undefined || known(x)) && news.destination !== undefined) {
      if (routeFamily(news as RouteInputs) !== oldFamily && !result.replaces.includes("destination")) {
        result.replaces.push(news.via !== undefined ? "via" : "destination");
        result.changes = true;
      }
    }
    // Leaving metric out means the kernel default, which may be another route.
    if (news.metric === undefined && olds.metric !== undefined && olds.metric !== defaultMetric(routeFamily(news as RouteInputs)) && !result.replaces.includes("metric")) {
      result.replaces.push("metric");
      result.changes = true;
    }
    return result;
  },

  async create(inputs) {
    const d = inputs as RouteInputs;
    const connection = resolveConnection(d.connection);
    const t = transportFor(d.connection);
    if (d.persist) await persist.preflight(t);
    const existing = await readRoute(t, d);
    if (existing && !d.adopt)
      throw new NetdevError(`${t.label}: ${describe(d)} already exists; it was left untouched. Set adopt: true to take it over, or choose another metric or table`);
    const r = existing && mismatches(d, existing).length === 0 ? existing : await converge(t, d, existing ? routeReplaceArgv(d) : routeAddArgv(d));
    try {
      return { id: routeId(connection, d), outs: await persisted(t, d, r, outputs(d, r)) };
    } catch (err) {
      // A route the state will not know of must not stay (one we adopted was there before us).
      if (!existing) await runSteps(t, [routeDelArgv(d, r)]).catch(() => undefined);
      throw err;
    }
  },

  async read(id, props) {
    const d = props as RouteInputs;
    const t = transportFor(d.connection);
    const r = await readRoute(t, d);
    // The kernel removes a route with its device: gone, like a deleted device.
    if (!r) return { id: "", props: {} };
    const outs = outputs(d, r);
    // Files edited or removed outside Pulumi show up as `persist: false`.
    if (props.persist) outs.persist = await persist.filesIntact(t, props.persistedFiles ?? []);
    return { id, props: stripUndefined({ ...outs, persistedFiles: props.persistedFiles }) };
  },

  async update(_id, olds, news) {
    const d = news as RouteInputs;
    const t = transportFor(d.connection);
    if (d.persist && !olds.persistedFiles?.length) await persist.preflight(t);
    const r = await converge(t, d, routeReplaceArgv(d));
    return { outs: await persisted(t, d, r, outputs(d, r), olds.persistedFiles) };
  },

  async delete(_id, props) {
    const d = props as RouteInputs;
    const t = transportFor(d.connection);
    await persist.removeFiles(t, props.persistedFiles);
    const r = await readRoute(t, d);
    if (!r) return;
    const del = routeDelArgv(d, r);
    await guardedWrite(t, `Route ${describe(d)} delete`, [del], () => runSteps(t, [del]));
  },
};
