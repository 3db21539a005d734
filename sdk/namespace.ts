import type * as pulumi from "@pulumi/pulumi";
import { NetdevResource } from "./shim";
import type { NamespaceArgs } from "./args.generated";

export type { NamespaceArgs };

/** A network namespace on the host (`ip netns add`). Deleting it is refused while devices other than lo remain inside. */
export class Namespace extends NetdevResource {
  /** Namespace name; pass it as another resource's `namespace` to place that device here. */
  declare readonly name: pulumi.Output<string>;

  constructor(name: string, args: NamespaceArgs, opts?: pulumi.CustomResourceOptions) {
    super("Namespace", name, args, opts);
  }
}
