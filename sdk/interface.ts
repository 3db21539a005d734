import type * as pulumi from "@pulumi/pulumi";
import type { InterfaceArgs } from "./args.generated";
import { NetdevResource } from "./shim";

export type { InterfaceArgs };

/**
 * An existing device the stack did not create (a physical NIC, a bond made
 * elsewhere): its MTU, addresses, master, MAC, up state and port options applied,
 * what they replaced recorded at create (`original`) and put back on delete. Never
 * created or deleted by the stack. With `moveAddresses`, it joins a bridge together
 * with its addresses and routes in one `ip -batch`.
 */
export class Interface extends NetdevResource {
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
  /** What the stack changed, as it was before (restored on delete): the fields it manages (`had`) and their old values. */
  declare readonly original: pulumi.Output<Record<string, unknown>>;
  /** With moveAddresses: the addresses and routes moved to the master (moved back on delete). */
  declare readonly moved: pulumi.Output<{ to: string; addresses: string[]; routes: Record<string, unknown>[] } | undefined>;

  constructor(name: string, args: InterfaceArgs, opts?: pulumi.CustomResourceOptions) {
    super("Interface", name, args, opts);
  }
}
