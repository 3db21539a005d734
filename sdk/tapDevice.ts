import type * as pulumi from "@pulumi/pulumi";
import type { tuntap } from "../provider/kinds/tuntap";
import { LinkResource } from "./link";
import type { LinkArgs } from "./types";

export type TapDeviceArgs = LinkArgs<typeof tuntap.fields>;

/** A persistent tun or tap device (`ip tuntap add`), e.g. a KVM guest's NIC. Its options are creation-only. */
export class TapDevice extends LinkResource {
  constructor(name: string, args: TapDeviceArgs, opts?: pulumi.CustomResourceOptions) {
    super("TapDevice", name, args, opts);
  }
}
