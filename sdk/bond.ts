import type * as pulumi from "@pulumi/pulumi";
import { LinkResource } from "./link";
import type { BondArgs } from "./args.generated";

export type { BondArgs };

/**
 * A bonding device: several links as one, for failover or aggregation. Every
 * option changes in place; a mode change releases and re-enslaves every slave and
 * a lacpRate change takes the bond down briefly (the kernel's rules), so both
 * interrupt traffic.
 */
export class Bond extends LinkResource {
  /** Bonding mode the kernel reports. */
  declare readonly mode: pulumi.Output<string>;
  /** MII monitoring interval, milliseconds (0 = off). */
  declare readonly miimon: pulumi.Output<number>;
  /** Up delay, milliseconds. */
  declare readonly updelay: pulumi.Output<number>;
  /** Down delay, milliseconds. */
  declare readonly downdelay: pulumi.Output<number>;
  /** LACP rate ("slow" or "fast"). */
  declare readonly lacpRate: pulumi.Output<string>;
  /** Transmit hash policy. */
  declare readonly xmitHashPolicy: pulumi.Output<string>;
  /** Primary slave, while enslaved (modes active-backup, balance-tlb, balance-alb). */
  declare readonly primary: pulumi.Output<string | undefined>;
  /** Minimum slaves with link for carrier. */
  declare readonly minLinks: pulumi.Output<number>;
  /** ARP monitoring interval, milliseconds (0 = off). */
  declare readonly arpInterval: pulumi.Output<number>;
  /** ARP monitoring targets (sorted). */
  declare readonly arpIpTargets: pulumi.Output<string[]>;
  /** Slaves in enslave order. */
  declare readonly slaves: pulumi.Output<string[]>;
  /** Slave currently carrying traffic (modes with an active slave). */
  declare readonly activeSlave: pulumi.Output<string | undefined>;

  constructor(name: string, args: BondArgs, opts?: pulumi.CustomResourceOptions) {
    super("Bond", name, args, opts);
  }
}
