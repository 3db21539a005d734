import type * as pulumi from "@pulumi/pulumi";
import type { InterfaceArgs } from "./args.generated";
import { DeviceResource } from "./link";

export type { InterfaceArgs };

/**
 * An existing device the stack did not create (a physical NIC, a bond made
 * elsewhere): its MTU, addresses, master, MAC, up state and port options applied,
 * what they replaced recorded at create (`original`) and put back on delete. Never
 * created or deleted by the stack. With `moveAddresses`, it joins a bridge together
 * with its addresses and routes in one `ip -batch`.
 */
export class Interface extends DeviceResource {
  /** What the stack changed, as it was before (restored on delete): the fields it manages (`had`) and their old values. */
  declare readonly original: pulumi.Output<Record<string, unknown>>;
  /** With moveAddresses: the addresses and routes moved to the master (moved back on delete). */
  declare readonly moved: pulumi.Output<{ to: string; addresses: string[]; routes: Record<string, unknown>[] } | undefined>;

  constructor(name: string, args: InterfaceArgs, opts?: pulumi.CustomResourceOptions) {
    super("Interface", name, args, opts);
  }
}
