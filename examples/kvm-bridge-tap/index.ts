// A host bridge with an address and one tap device per KVM guest, enslaved to it:
//
//              br0 (10.1.1.1/24)
//             /                 \
//        tap-kvm1            tap-kvm2
//     (QEMU guest kvm1)   (QEMU guest kvm2)
//
// Frames from a guest enter its tap, cross the bridge and reach the other guest (or
// the host, through br0's address) without passing through the host's IP stack.
//
// The SSH connection comes from stack config (netdev:host, netdev:privateKeyPath,
// netdev:hostKey…; see Pulumi.dev.yaml), so no resource names it.
import * as pulumi from "@pulumi/pulumi";
import * as netdev from "pulumi-netdev";

const config = new pulumi.Config();
/** Bridge device name. */
const bridgeName = config.get("bridgeName") ?? "br0";
/** The host's address on the guests' segment (CIDR). */
const bridgeAddress = config.get("bridgeAddress") ?? "10.1.1.1/24";
/** One tap per guest, named tap-<guest>. */
const guests = config.getObject<string[]>("guests") ?? ["kvm1", "kvm2"];
/**
 * User allowed to open the taps without CAP_NET_ADMIN (e.g. "libvirt-qemu", or the
 * account QEMU runs as). Unset: only root can attach.
 */
const tapOwner = config.get("tapOwner");

const bridge = new netdev.Bridge("bridge", {
  name: bridgeName,
  stp: false, // a bridge with only guests behind it has no loops to break
  addresses: [bridgeAddress],
});

const taps = guests.map(
  (guest) =>
    new netdev.TapDevice(`tap-${guest}`, {
      name: `tap-${guest}`,
      mode: "tap",
      // vhost-net and virtio-net exchange a virtio header with every frame; QEMU's
      // `vhost=on` refuses a tap without IFF_VNET_HDR.
      vnetHdr: true,
      // One queue per guest vCPU pair; needs `queues=N` on QEMU's -netdev and `mq=on` on the NIC.
      multiQueue: true,
      owner: tapOwner,
      master: bridge.name, // also orders the bridge before the taps
    }),
);

export const bridgeIfindex = bridge.ifindex;
// (No bridge MAC output: a bridge without a pinned macAddress takes the lowest MAC of
// its ports, so it changes as guests' taps join. Pin `macAddress` if you need it stable.)
export const tapNames = taps.map((t) => t.name);
/** How to start each guest on its tap (QEMU command-line fragment). */
export const qemuNetdevArgs = taps.map((t) =>
  pulumi.interpolate`-netdev tap,id=net0,ifname=${t.name},script=no,downscript=no,vhost=on,queues=4 -device virtio-net-pci,netdev=net0,mq=on,vectors=10`,
);
