import type * as pulumi from "@pulumi/pulumi";
import type { namespaceFields } from "../provider/kinds/netns";
import { NetdevResource } from "./shim";
import type { ArgsOf } from "./types";

export type NamespaceArgs = ArgsOf<typeof namespaceFields>;

/** A network namespace on the host (`ip netns add`). Deleting it is refused while devices other than lo remain inside. */
export class Namespace extends NetdevResource {
  /** Namespace name; pass it as another resource's `namespace` to place that device here. */
  declare readonly name: pulumi.Output<string>;

  constructor(name: string, args: NamespaceArgs, opts?: pulumi.CustomResourceOptions) {
    super("Namespace", name, { ...args }, opts);
  }
}
