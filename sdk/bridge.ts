import type * as pulumi from "@pulumi/pulumi";
import type { bridge } from "../provider/kinds/bridge";
import { LinkResource } from "./link";
import type { LinkArgs } from "./types";

export type BridgeArgs = LinkArgs<typeof bridge.fields>;

/** A Linux bridge (software switch). Every option is changed in place. */
export class Bridge extends LinkResource {
  constructor(name: string, args: BridgeArgs, opts?: pulumi.CustomResourceOptions) {
    super("Bridge", name, args, opts);
  }
}
