// Two NICs bonded for failover, carrying two tagged VLANs:
//
//       bond0.10 (192.168.10.2/24)    bond0.20 (192.168.20.2/24)
//                  \                      /
//                   bond0 (active-backup, miimon 100 ms)
//                  /                    \
//              eth1 (primary)          eth2 (backup)
//
// The switch ports of eth1 and eth2 must both trunk VLANs 10 and 20; active-backup
// needs no switch-side configuration beyond that (unlike 802.3ad).
//
// The SSH connection comes from stack config (see Pulumi.dev.yaml). Careful: an
// enslaved NIC no longer carries its own IP traffic, so do not bond the NIC your SSH
// session runs over.
import * as pulumi from "@pulumi/pulumi";
import * as netdev from "pulumi-netdev";

interface VlanConfig {
  /** 802.1Q VLAN id (1–4094). */
  id: number;
  /** This host's address on the VLAN (CIDR). */
  address: string;
}

const config = new pulumi.Config();
/** Bond device name. */
const bondName = config.get("bondName") ?? "bond0";
/** The NICs to bond, in order of preference: the first one is the primary. */
const nics = config.getObject<string[]>("nics") ?? ["eth1", "eth2"];
const vlans = config.getObject<VlanConfig[]>("vlans") ?? [
  { id: 10, address: "192.168.10.2/24" },
  { id: 20, address: "192.168.20.2/24" },
];

const bond = new netdev.Bond("bond", {
  name: bondName,
  mode: "active-backup",
  // Check link state every 100 ms; fail over when the active NIC's carrier drops.
  miimon: 100,
  // Traffic returns to the primary NIC whenever it is up.
  primary: nics[0],
  // Ordered: enslave order decides the bond's MAC address.
  slaves: nics,
});

const vlanLinks = vlans.map(
  (v) =>
    new netdev.Vlan(`vlan${v.id}`, {
      name: `${bondName}.${v.id}`,
      parent: bond.name, // also orders the bond before its VLANs
      vlanId: v.id,
      addresses: [v.address],
    }),
);

export const bondIfindex = bond.ifindex;
export const bondMacAddress = bond.macAddress;
export const vlanInterfaces = vlanLinks.map((l) => l.name);
