import type * as pulumi from "@pulumi/pulumi";
import type { ArgsByResource } from "./args.generated";
import { NetdevResource } from "./shim";

/** Base of every device resource (the stack's own links and `Interface`): the outputs the kernel reports for any device. */
export abstract class DeviceResource extends NetdevResource {
  /** Device name. */
  declare readonly name: pulumi.Output<string>;
  /** Namespace the device lives in (absent: the host's own). */
  declare readonly namespace: pulumi.Output<string | undefined>;
  /** Interface index assigned by the kernel. */
  declare readonly ifindex: pulumi.Output<number>;
  /** Ethernet address the kernel reports. */
  declare readonly macAddress: pulumi.Output<string>;
  /** Operational state (UP, DOWN, UNKNOWN, LOWERLAYERDOWN…). */
  declare readonly operState: pulumi.Output<string>;
  /** MTU in bytes. */
  declare readonly mtu: pulumi.Output<number>;
  /** Addresses on the device (CIDR, sorted; IPv6 link-local excluded). */
  declare readonly addresses: pulumi.Output<string[]>;
  /** Bridge or bond the device is enslaved to. */
  declare readonly master: pulumi.Output<string | undefined>;
  /** Administratively up. */
  declare readonly up: pulumi.Output<boolean>;
  /** The port options given in `bridgePort`, as the kernel reports them. */
  declare readonly bridgePort: pulumi.Output<Record<string, unknown> | undefined>;
  /** The slave options given in `bondPort`, as the kernel reports them. */
  declare readonly bondPort: pulumi.Output<Record<string, unknown> | undefined>;

  protected constructor(kind: keyof ArgsByResource, name: string, args: object, opts: pulumi.CustomResourceOptions | undefined) {
    super(kind, name, args, opts);
  }
}

/** Base of every link resource the stack creates: a device that can also persist. */
export abstract class LinkResource extends DeviceResource {
  /** Kept across reboots by systemd-networkd files; after a refresh, false when a file was edited or removed outside Pulumi. */
  declare readonly persist: pulumi.Output<boolean | undefined>;
  /** The networkd files written for `persist` (path and SHA-256 of the content written). */
  declare readonly persistedFiles: pulumi.Output<{ path: string; sha256: string }[] | undefined>;
}
