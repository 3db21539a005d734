import type * as pulumi from "@pulumi/pulumi";
import { LinkResource } from "./link";
import type { VethPairArgs } from "./args.generated";

export type { VethPairArgs };

/** A veth pair: two linked Ethernet devices, often one end in a container's namespace. */
export class VethPair extends LinkResource {
  /** Interface index of the other end (in its namespace). */
  declare readonly peerIfindex: pulumi.Output<number>;
  /** Ethernet address of the other end. */
  declare readonly peerMacAddress: pulumi.Output<string>;
  /** Name of the other end. */
  declare readonly peerName: pulumi.Output<string>;
  /** Namespace of the other end. */
  declare readonly peerNamespace: pulumi.Output<string | undefined>;

  constructor(name: string, args: VethPairArgs, opts?: pulumi.CustomResourceOptions) {
    super("VethPair", name, args, opts);
  }
}
