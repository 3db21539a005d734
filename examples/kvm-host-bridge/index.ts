// The seeds' bridged KVM host ("a bridge with your physical interface inside, the
// host's address on the bridge, the guests' taps on it"), VLAN-aware:
//
//                 br0  (the host's address and default route, moved from the uplink)
//               /   |   \
//         uplink  tap-web  tap-db
//   (trunk: native  (access   (access
//    VLAN 1 for the  VLAN 10)  VLAN 20)
//    host, 10, 20)
//
// ifupdown's `bridge_ports eth2` + `address`/`gateway` on br0, as a stack. The uplink
// is an Interface (the stack did not create it and never deletes it): with
// moveAddresses it joins br0 together with its addresses and the routes through it in
// ONE ip -batch, so the SSH session that runs this stack survives; destroy moves them
// back. Its frames stay untagged on VLAN 1 (the bridge's own PVID) for the host,
// VLANs 10 and 20 are trunked to the switch, and each guest's tap is an access port.
import * as pulumi from "@pulumi/pulumi";
import * as netdev from "pulumi-netdev";

const config = new pulumi.Config();
/** The host's uplink NIC (it carries the host's address and default route today). */
const uplink = config.require("uplink");
/** Bridge device name. */
const bridgeName = config.get("bridgeName") ?? "br0";
/** VLANs carried tagged between the switch and the guests. */
const trunkVlans = config.getObject<number[]>("trunkVlans") ?? [10, 20];
/** One tap per guest, an access port on the guest's VLAN. */
const guests = config.getObject<{ name: string; vlan: number }[]>("guests") ?? [
  { name: "web", vlan: 10 },
  { name: "db", vlan: 20 },
];

/** The host itself talks untagged, on the bridge's default VLAN. */
const native = { vid: 1, pvid: true, untagged: true };

const bridge = new netdev.Bridge("bridge", {
  name: bridgeName,
  stp: false, // no STP: the uplink forwards at once instead of after 2 × forward delay
  vlanFiltering: true,
  vlans: [native], // the bridge's own interface (the host's address) is on VLAN 1 only
});

const nic = new netdev.Interface("uplink", {
  name: uplink,
  master: bridge.name,
  moveAddresses: true,
  bridgePort: { vlans: [native, ...trunkVlans.map((vid) => ({ vid }))] },
});

const taps = guests.map(
  (g) =>
    new netdev.TapDevice(`tap-${g.name}`, {
      name: `tap-${g.name}`,
      vnetHdr: true, // QEMU's vhost=on needs it
      master: bridge.name,
      bridgePort: { vlans: [{ vid: g.vlan, pvid: true, untagged: true }] },
    }),
);

export const bridgeIfindex = bridge.ifindex;
/** What moved from the uplink to the bridge (moved back on destroy). */
export const movedAddresses = nic.moved.apply((m) => m?.addresses ?? []);
export const uplinkVlans = nic.bridgePort;
export const tapNames = taps.map((t) => t.name);
