import type * as pulumi from "@pulumi/pulumi";
import { LinkResource } from "./link";
import type { VxlanArgs } from "./args.generated";

export type { VxlanArgs };

/**
 * A VXLAN tunnel endpoint: an Ethernet device whose frames travel in UDP to other
 * hosts. Flooded frames go to `remote`, a multicast `group`, or every peer in
 * `remotes` (head-end replication, reconciled entry by entry). vni, dstPort and
 * dev are creation-only, as are address-family changes and entering or leaving
 * ttl "inherit"; everything else changes in place.
 */
export class Vxlan extends LinkResource {
  /** VXLAN network identifier. */
  declare readonly vni: pulumi.Output<number>;
  /** Tunnel source address (absent: chosen by routing). */
  declare readonly local: pulumi.Output<string | undefined>;
  /** Unicast default destination. */
  declare readonly remote: pulumi.Output<string | undefined>;
  /** Multicast default destination. */
  declare readonly group: pulumi.Output<string | undefined>;
  /** Underlay device. */
  declare readonly dev: pulumi.Output<string | undefined>;
  /** Head-end replication peers found in the kernel's FDB (sorted). */
  declare readonly remotes: pulumi.Output<string[]>;
  /** UDP destination port. */
  declare readonly dstPort: pulumi.Output<number>;
  /** Outer TTL: 1–255, "auto" or "inherit". */
  declare readonly ttl: pulumi.Output<number | "auto" | "inherit">;
  /** Outer TOS byte, or "inherit". */
  declare readonly tos: pulumi.Output<number | "inherit">;
  /** MAC learning on. */
  declare readonly learning: pulumi.Output<boolean>;
  /** Lifetime of learned FDB entries, seconds. */
  declare readonly ageing: pulumi.Output<number>;

  constructor(name: string, args: VxlanArgs, opts?: pulumi.CustomResourceOptions) {
    super("Vxlan", name, args, opts);
  }
}
