import type * as pulumi from "@pulumi/pulumi";
import { LinkResource } from "./link";
import type { VlanArgs } from "./args.generated";

export type { VlanArgs };

/**
 * An 802.1Q (or 802.1ad) VLAN device on a parent: tagged traffic of one VLAN id
 * as its own interface. Flags and priority maps change in place; parent, vlanId
 * and protocol are creation-only (changing one replaces the device).
 */
export class Vlan extends LinkResource {
  /** Device the VLAN sits on. */
  declare readonly parent: pulumi.Output<string>;
  /** VLAN id the kernel reports. */
  declare readonly vlanId: pulumi.Output<number>;
  /** Tag protocol the kernel reports ("802.1Q" or "802.1ad"). */
  declare readonly protocol: pulumi.Output<string>;
  /** Tag moved out of received frames. */
  declare readonly reorderHdr: pulumi.Output<boolean>;
  /** GVRP registration on. */
  declare readonly gvrp: pulumi.Output<boolean>;
  /** MVRP registration on. */
  declare readonly mvrp: pulumi.Output<boolean>;
  /** Operational state independent of the parent's. */
  declare readonly looseBinding: pulumi.Output<boolean>;
  /** VLAN priority → packet priority on receive (non-zero entries). */
  declare readonly ingressQosMap: pulumi.Output<Record<string, number>>;
  /** Packet priority → VLAN priority on send (non-zero entries). */
  declare readonly egressQosMap: pulumi.Output<Record<string, number>>;

  constructor(name: string, args: VlanArgs, opts?: pulumi.CustomResourceOptions) {
    super("Vlan", name, args, opts);
  }
}
