import type * as pulumi from "@pulumi/pulumi";
import { LinkResource } from "./link";
import type { MacvtapLinkArgs } from "./args.generated";

export type { MacvtapLinkArgs };

/**
 * A macvtap device: a macvlan whose frames a VM reads and writes through the
 * character device `tapDevicePath` (QEMU: `-netdev tap,fd=N` on that file).
 * Same modes and rules as MacvlanLink.
 */
export class MacvtapLink extends LinkResource {
  /** Device the macvtap sits on. */
  declare readonly parent: pulumi.Output<string>;
  /** Mode the kernel reports (private, vepa, bridge, passthru, source). */
  declare readonly mode: pulumi.Output<string>;
  /** Mode "source": the accepted sender MAC addresses (sorted). */
  declare readonly sourceMacs: pulumi.Output<string[] | undefined>;
  /** The character device a VM opens, `/dev/tap<ifindex>`. */
  declare readonly tapDevicePath: pulumi.Output<string>;

  constructor(name: string, args: MacvtapLinkArgs, opts?: pulumi.CustomResourceOptions) {
    super("MacvtapLink", name, args, opts);
  }
}
