// Container-style networking without a container runtime: each "container" is a
// network namespace whose eth0 is one end of a veth pair; the host ends are ports
// of a bridge that carries the host's address on the containers' subnet.
//
//                      ctbr0 (10.88.0.1/24)
//                     /                    \
//               veth-ct1                  veth-ct2          host namespace
//   - - - - - - - - | - - - - - - - - - - - - | - - - - - - - - - - - - - - -
//                  eth0 (10.88.0.2/24)       eth0 (10.88.0.3/24)
//                namespace ct1             namespace ct2
//
// Try it: `ip netns exec ct1 ping 10.88.0.3`. (Reaching beyond the bridge needs a
// default route in each namespace plus forwarding/NAT on the host, as Docker sets up.)
//
// The SSH connection comes from stack config (see Pulumi.dev.yaml).
import * as pulumi from "@pulumi/pulumi";
import * as netdev from "pulumi-netdev";

const config = new pulumi.Config();
/** Bridge device name. */
const bridgeName = config.get("bridgeName") ?? "ctbr0";
/** The containers' subnet as its first three IPv4 octets; the bridge gets .1, container i gets .(i+2). */
const subnet = config.get("subnet") ?? "10.88.0";
/** Container names: each becomes a namespace "<namespacePrefix><name>" and a host-side veth "veth-<name>". */
const containers = config.getObject<string[]>("containers") ?? ["ct1", "ct2"];
/** Prefix of the namespace names (namespaces are host-wide files under /run/netns). */
const namespacePrefix = config.get("namespacePrefix") ?? "";

const bridge = new netdev.Bridge("bridge", {
  name: bridgeName,
  addresses: [`${subnet}.1/24`],
});

const attached = containers.map((ct, i) => {
  const ns = new netdev.Namespace(`ns-${ct}`, { name: `${namespacePrefix}${ct}` });
  const address = `${subnet}.${i + 2}/24`;
  const veth = new netdev.VethPair(`veth-${ct}`, {
    name: `veth-${ct}`,
    master: bridge.name,
    // Inside the namespace the device is an ordinary eth0; every namespace can have its own.
    peerName: "eth0",
    peerNamespace: ns.name, // also makes the namespace exist first and go last
    peerAddresses: [address],
  });
  return { ct, ns, veth, address };
});

export const bridgeIfindex = bridge.ifindex;
export const containerNetworks = attached.map(({ ct, ns, veth, address }) => ({
  container: ct,
  namespace: ns.name,
  hostInterface: veth.name,
  hostIfindex: veth.ifindex,
  eth0Ifindex: veth.peerIfindex,
  eth0MacAddress: veth.peerMacAddress,
  address,
}));
