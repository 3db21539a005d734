import type * as pulumi from "@pulumi/pulumi";
import { LinkResource } from "./link";
import type { MacvlanLinkArgs } from "./args.generated";

export type { MacvlanLinkArgs };

/**
 * A macvlan device: a second Ethernet address on a parent device's wire, e.g. to
 * put a container straight on the host's LAN. The mode changes in place except
 * into or out of passthru; the parent is creation-only.
 */
export class MacvlanLink extends LinkResource {
  /** Device the macvlan sits on. */
  declare readonly parent: pulumi.Output<string>;
  /** Mode the kernel reports (private, vepa, bridge, passthru, source). */
  declare readonly mode: pulumi.Output<string>;
  /** Mode "source": the accepted sender MAC addresses (sorted). */
  declare readonly sourceMacs: pulumi.Output<string[] | undefined>;

  constructor(name: string, args: MacvlanLinkArgs, opts?: pulumi.CustomResourceOptions) {
    super("MacvlanLink", name, args, opts);
  }
}
