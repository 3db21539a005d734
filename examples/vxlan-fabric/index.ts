// One layer-2 network across several hosts that share only an IP underlay: on each
// host a bridge with a VXLAN device in it, whose head-end replication list names
// every other host, so a frame entering any bridge can reach every other one. Each
// host also gets an endpoint: a namespace whose eth0 is a veth into the bridge, with
// an address on the overlay.
//
//      node1                     node2                     node3
//   ep-node1 (namespace)      ep-node2                  ep-node3
//     eth0 192.0.2.1/24         eth0 192.0.2.2/24         eth0 192.0.2.3/24
//      │ veth                    │                         │
//     ep0                       ep0                       ep0
//      │                         │                         │
//   brvx42 ─ vx42             brvx42 ─ vx42             brvx42 ─ vx42
//              │                         │                         │
//   ═══════════╧══ underlay (IPv4 or IPv6): UDP 4789, every pair ═══╧═══
//
// Try it: on node1, `ip netns exec ep-node1 ping 192.0.2.3`. Adding a host to
// `vxlan-fabric:hosts` creates its devices and adds it to the other hosts' lists in
// place (`pulumi up` shows updates, no replacements); removing one removes it
// everywhere. The overlay's MTU is 50 bytes below the underlay's (1450 on a 1500
// underlay): the endpoints use it too, or large packets would be dropped.
//
// The SSH user and key come from stack config (netdev:*), each host's address and
// host key from vxlan-fabric:hosts (see Pulumi.dev.yaml).
import * as pulumi from "@pulumi/pulumi";
import * as netdev from "pulumi-netdev";

interface HostConfig {
  /** Short name of the host: names its resources and its endpoint namespace "ep-<name>". */
  name: string;
  /** SSH address of the host. */
  host: string;
  /** SSH port. Default 22 (or netdev:port). */
  port?: number;
  /** The host's SSH key fingerprint ("SHA256:…"). Default: checked against netdev:knownHostsPath. */
  hostKey?: string;
  /** The host's address on the underlay, where the others send its VXLAN traffic. Default: host (which must then be an IP address). */
  underlayAddress?: string;
  /** Underlay device the tunnel uses (e.g. "eth0"). Default: chosen by routing. */
  underlayDevice?: string;
  /** The endpoint's overlay address, CIDR (e.g. "192.0.2.1/24"), unique in the fabric. */
  endpoint: string;
}

const config = new pulumi.Config();
/** The hosts of the fabric: at least one; all of one underlay address family. */
const hosts = config.requireObject<HostConfig[]>("hosts");
/** VXLAN network identifier, 0–16777215; it also names the devices (brvx<vni>, vx<vni>). */
const vni = config.getNumber("vni") ?? 42;

const connectionOf = (h: HostConfig) => ({
  host: h.host,
  ...(h.port !== undefined ? { port: h.port } : {}),
  ...(h.hostKey !== undefined ? { hostKey: h.hostKey } : {}),
});

const fabric = new netdev.VxlanFabric("fabric", {
  vni,
  hosts: hosts.map((h) => ({
    name: h.name,
    connection: connectionOf(h),
    underlayAddress: h.underlayAddress ?? h.host,
    ...(h.underlayDevice !== undefined ? { underlayDevice: h.underlayDevice } : {}),
  })),
});

const attached = hosts.map((h, i) => {
  const connection = connectionOf(h);
  // Namespace names are host-wide: "ep-<name>" keeps hosts that share a machine apart.
  const ns = new netdev.Namespace(`${h.name}-endpoint-ns`, { connection, name: `ep-${h.name}` });
  const veth = new netdev.VethPair(`${h.name}-endpoint`, {
    connection,
    name: "ep0",
    master: fabric.bridges[i].name,
    mtu: fabric.mtu,
    peerName: "eth0",
    peerNamespace: ns.name,
    peerMtu: fabric.mtu,
    peerAddresses: [h.endpoint],
  });
  return { host: h.name, namespace: ns.name, address: h.endpoint, ifindex: veth.peerIfindex, macAddress: veth.peerMacAddress };
});

/** Per host: bridge and vxlan device names and ifindexes. */
export const fabricHosts = fabric.hosts;
/** The overlay's MTU, bytes. */
export const mtu = fabric.mtu;
/** Per host: the endpoint's namespace, overlay address, and eth0's ifindex and MAC. */
export const endpoints = attached;
