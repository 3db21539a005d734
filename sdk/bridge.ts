import type * as pulumi from "@pulumi/pulumi";
import { LinkResource } from "./link";
import type { BridgeArgs } from "./args.generated";

export type { BridgeArgs };

/** A Linux bridge (software switch). Every option is changed in place. */
export class Bridge extends LinkResource {
  /** Spanning Tree Protocol on. */
  declare readonly stp: pulumi.Output<boolean>;
  /** STP forward delay, seconds. */
  declare readonly forwardDelay: pulumi.Output<number>;
  /** STP hello time, seconds. */
  declare readonly helloTime: pulumi.Output<number>;
  /** STP max message age, seconds. */
  declare readonly maxAge: pulumi.Output<number>;
  /** Lifetime of learned MAC addresses, seconds. */
  declare readonly ageingTime: pulumi.Output<number>;
  /** Bridge priority for root election. */
  declare readonly priority: pulumi.Output<number>;
  /** VLAN-aware (absent when the kernel lacks VLAN filtering). */
  declare readonly vlanFiltering: pulumi.Output<boolean | undefined>;
  /** PVID of new ports. */
  declare readonly vlanDefaultPvid: pulumi.Output<number | undefined>;
  /** VLAN protocol used for filtering. */
  declare readonly vlanProtocol: pulumi.Output<string | undefined>;
  /** IGMP/MLD snooping on. */
  declare readonly mcastSnooping: pulumi.Output<boolean>;
  /** VLANs of the bridge device itself, as the kernel reports them (when `vlans` is set). */
  declare readonly vlans: pulumi.Output<{ vid: number | string; pvid?: boolean; untagged?: boolean }[] | undefined>;

  constructor(name: string, args: BridgeArgs, opts?: pulumi.CustomResourceOptions) {
    super("Bridge", name, args, opts);
  }
}
