import type * as pulumi from "@pulumi/pulumi";
import type { RouteArgs } from "./args.generated";
import { NetdevResource } from "./shim";

export type { RouteArgs };

/**
 * A route (`ip route add`). Its identity is (namespace, table, family, destination,
 * metric): changing one of those replaces it; every other field changes in place
 * with `ip route replace`. Delete removes exactly this route.
 */
export class Route extends NetdevResource {
  /** "default" or the destination prefix. */
  declare readonly destination: pulumi.Output<string>;
  /** "inet" (IPv4) or "inet6" (IPv6). */
  declare readonly family: pulumi.Output<string>;
  /** Gateway the kernel reports (absent: none). */
  declare readonly via: pulumi.Output<string | undefined>;
  /** Device the kernel reports (absent for blackhole/unreachable/prohibit). */
  declare readonly device: pulumi.Output<string | undefined>;
  /** Preferred source address the kernel reports. */
  declare readonly source: pulumi.Output<string | undefined>;
  /** Metric the kernel reports. */
  declare readonly metric: pulumi.Output<number>;
  /** Routing table. */
  declare readonly table: pulumi.Output<string | number>;
  /** Scope the kernel reports. */
  declare readonly scope: pulumi.Output<string>;
  /** Protocol the kernel reports (a name when it has one, else the number). */
  declare readonly protocol: pulumi.Output<string | number>;
  /** Gateway declared on-link. */
  declare readonly onlink: pulumi.Output<boolean>;
  /** Route type the kernel reports. */
  declare readonly type: pulumi.Output<string>;

  constructor(name: string, args: RouteArgs, opts?: pulumi.CustomResourceOptions) {
    super("Route", name, args, opts);
  }
}
