// A macvtap device for a QEMU/KVM guest, stacked on a physical NIC:
//
//     guest virtio-net  <->  /dev/tapN  <->  macvtap0  --(bridge mode)-->  eth0  --> LAN
//
// Unlike tap + bridge, no host bridge is needed and the guest appears on the LAN
// with its own MAC address. The catch: in bridge mode the guest and the host can
// not talk to each other through eth0 (the NIC never hairpins its own frames back).
//
// The SSH connection comes from stack config (see Pulumi.dev.yaml).
import * as pulumi from "@pulumi/pulumi";
import * as netdev from "pulumi-netdev";

const config = new pulumi.Config();
/** The physical NIC the guest shares. */
const parent = config.get("parent") ?? "eth0";
/** macvtap device name. */
const name = config.get("name") ?? "macvtap0";
/**
 * The guest's MAC address. The macvtap device filters on it, so the guest's NIC must
 * use exactly this address (QEMU: `-device virtio-net-pci,mac=…`). 52:54:00 is QEMU's prefix.
 */
const macAddress = config.get("macAddress") ?? "52:54:00:12:34:56";

const tap = new netdev.MacvtapLink("guest-nic", {
  name,
  parent,
  mode: "bridge", // guests on the same parent reach each other without leaving the NIC
  macAddress,
});

/** The character device QEMU opens (/dev/tap<ifindex>). */
export const tapDevicePath = tap.tapDevicePath;
export const ifindex = tap.ifindex;
export const guestMacAddress = tap.macAddress;
/**
 * How to start the guest on it. QEMU takes an open file descriptor of the character
 * device, so the shell opens it: `qemu-system-x86_64 … 3<>/dev/tapN`.
 */
export const qemuArgs = pulumi.interpolate`-netdev tap,id=net0,fd=3,vhost=on -device virtio-net-pci,netdev=net0,mac=${tap.macAddress} 3<>${tap.tapDevicePath}`;
