import type * as pulumi from "@pulumi/pulumi";
import { LinkResource } from "./link";
import type { IpvlanLinkArgs } from "./args.generated";

export type { IpvlanLinkArgs };

/**
 * An ipvlan device: an IP endpoint on a parent that shares the parent's Ethernet
 * address (for links that allow one MAC per port). Mode and flag belong to the
 * parent: every IpvlanLink on one parent must ask for the same ones, or create
 * and update fail naming the conflicting sibling. The parent is creation-only.
 */
export class IpvlanLink extends LinkResource {
  /** Device the ipvlan sits on. */
  declare readonly parent: pulumi.Output<string>;
  /** Mode the kernel reports for the parent (l2, l3, l3s). */
  declare readonly mode: pulumi.Output<string>;
  /** Flag the kernel reports for the parent (bridge, private, vepa). */
  declare readonly flag: pulumi.Output<string>;

  constructor(name: string, args: IpvlanLinkArgs, opts?: pulumi.CustomResourceOptions) {
    super("IpvlanLink", name, args, opts);
  }
}
