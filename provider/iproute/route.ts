import { CommandError } from "../errors";
import { canonicalIp } from "../schema";
import type { Transport } from "../transport/types";
import { ipArgv, isGoneError, parseJson, READ_ONLY } from "./link";

/** One entry of `ip -j route show` (fields the kernel leaves at their default are omitted). */
export interface RouteJson {
  dst: string;
  type?: string;
  gateway?: string;
  dev?: string;
  protocol?: string | number;
  scope?: string;
  prefsrc?: string;
  metric?: number;
  table?: string;
  flags?: string[];
  nexthops?: unknown[];
  [key: string]: unknown;
}

export type Family = 4 | 6;

/** The destination as a CIDR (`ip` prints "default" for /0 and drops /32, /128 of host routes). */
export function routePrefix(dst: string, family: Family): string {
  if (dst === "default") return family === 6 ? "::/0" : "0.0.0.0/0";
  if (!dst.includes("/")) return `${canonicalIp(dst)}/${family === 6 ? 128 : 32}`;
  const [ip, len] = dst.split("/");
  return `${canonicalIp(ip)}/${Number(len)}`;
}

/** The metric the kernel gives a route added without one: 0 for IPv4, 1024 for IPv6. */
export function defaultMetric(family: Family): number {
  return family === 6 ? 1024 : 0;
}

/**
 * Routes of one family and table whose destination is exactly `prefix`.
 * No `metric` filter: `ip route show ... metric N` drops the metric from what it prints.
 * A namespace that does not exist holds no routes.
 */
export async function readRoutes(t: Transport, namespace: string | undefined, family: Family, table: string, prefix: string): Promise<RouteJson[]> {
  const argv = ipArgv(namespace, "-j", `-${family}`, "route", "show", "table", table, "exact", prefix);
  const r = await t.run(argv, READ_ONLY);
  if (r.code !== 0) {
    if (isGoneError(r.stderr)) return [];
    throw new CommandError(t.label, argv, r.code, r.stderr);
  }
  return parseJson<RouteJson[]>(r.stdout, t.label, argv) ?? [];
}

/** Every route of one family in a table that leaves through `dev` (its `dev` field is then omitted). */
export async function readRoutesVia(t: Transport, namespace: string | undefined, family: Family, dev: string, table = "all"): Promise<RouteJson[]> {
  const argv = ipArgv(namespace, "-j", `-${family}`, "route", "show", "table", table, "dev", dev);
  const r = await t.run(argv, READ_ONLY);
  if (r.code !== 0) throw new CommandError(t.label, argv, r.code, r.stderr);
  return (parseJson<RouteJson[]>(r.stdout, t.label, argv) ?? []).map((x) => ({ ...x, dev }));
}

/** Route protocol numbers (rtnetlink.h, /etc/iproute2/rt_protos); `ip` prints the name when it knows one. */
export const PROTOCOLS: Record<string, number> = { redirect: 1, kernel: 2, boot: 3, static: 4, ra: 9, dhcp: 16 };

/** A protocol name or number as the number, so that "static" and 4 compare equal. */
export function protocolNumber(p: string | number | undefined): number | undefined {
  if (p === undefined) return undefined;
  if (typeof p === "number") return p;
  return PROTOCOLS[p] ?? (/^\d+$/.test(p) ? Number(p) : undefined);
}

/** The route's inputs as the kernel reports them, defaults filled in. */
export function routeFields(r: RouteJson, family: Family): Record<string, unknown> {
  const protocol = r.protocol ?? "boot";
  const name = Object.entries(PROTOCOLS).find(([, n]) => n === protocolNumber(protocol))?.[0];
  return {
    type: r.type ?? "unicast",
    via: r.gateway !== undefined ? canonicalIp(r.gateway) : undefined,
    device: r.dev,
    source: r.prefsrc !== undefined ? canonicalIp(r.prefsrc) : undefined,
    scope: r.scope ?? "global",
    protocol: name ?? protocolNumber(protocol),
    onlink: (r.flags ?? []).includes("onlink"),
    metric: r.metric ?? defaultMetric(family),
  };
}
