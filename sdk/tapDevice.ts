import type * as pulumi from "@pulumi/pulumi";
import { LinkResource } from "./link";
import type { TapDeviceArgs } from "./args.generated";

export type { TapDeviceArgs };

/** A persistent tun or tap device (`ip tuntap add`), e.g. a KVM guest's NIC. Its options are creation-only. */
export class TapDevice extends LinkResource {
  /** "tap" or "tun". */
  declare readonly mode: pulumi.Output<"tap" | "tun">;
  /** User allowed to attach (as the kernel reports it: name, or uid when it has no name). */
  declare readonly owner: pulumi.Output<string | number | undefined>;
  /** Group allowed to attach. */
  declare readonly group: pulumi.Output<string | number | undefined>;
  /** Multiple queues. */
  declare readonly multiQueue: pulumi.Output<boolean>;
  /** virtio-net header on every frame. */
  declare readonly vnetHdr: pulumi.Output<boolean>;
  /** 4-byte packet-information header. */
  declare readonly pi: pulumi.Output<boolean>;

  constructor(name: string, args: TapDeviceArgs, opts?: pulumi.CustomResourceOptions) {
    super("TapDevice", name, args, opts);
  }
}
