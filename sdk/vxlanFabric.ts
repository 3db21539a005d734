import * as pulumi from "@pulumi/pulumi";
import { isIP } from "node:net";
import { Bridge } from "./bridge";
import type { ConnectionArgs } from "./types";
import { Vxlan } from "./vxlan";

export interface VxlanFabricHost {
  /** How to reach this host over SSH (fields left out come from netdev:* stack config). */
  connection: ConnectionArgs;
  /** This host's address on the underlay network; the other hosts send VXLAN traffic to it. */
  underlayAddress: string;
  /** Underlay device the VXLAN traffic leaves through (e.g. "eth0"). Default: chosen by routing. */
  underlayDevice?: string;
  /** Stable name of the host in the stack: its resources are named "<fabric>-<name>-br" and "-vx". Default: underlayAddress. */
  name?: string;
}

export interface VxlanFabricArgs {
  /** VXLAN network identifier shared by every host, 0–16777215. Changing it replaces every host's vxlan device. */
  vni: number;
  /**
   * The hosts joined into one L2 overlay, at least one, all with underlay addresses of
   * one family. Adding or removing a host updates the others' peer lists in place.
   */
  hosts: VxlanFabricHost[];
  /** Name of the bridge on every host (at most 15 characters). Default "brvx<vni>". */
  bridgeName?: string;
  /** Name of the vxlan device on every host. Default "vx<vni>". */
  vxlanName?: string;
  /** UDP destination port of the tunnel, 1–65535. Default 4789 (IANA). Changing it replaces every host's vxlan device. */
  dstPort?: number;
  /**
   * MTU of the bridge and vxlan device on every host, bytes. Default: 1500 minus the
   * encapsulation, 1450 for an IPv4 underlay and 1430 for IPv6; give it when the
   * underlay's MTU is not 1500. Devices attached to the bridge should use it too.
   */
  mtu?: number;
}

export interface VxlanFabricHostOutputs {
  /** The host's name (VxlanFabricHost.name, default its underlayAddress). */
  name: string;
  /** Name of the fabric's bridge on the host. */
  bridgeName: string;
  /** Name of the fabric's vxlan device on the host. */
  vxlanName: string;
  /** Interface index of the bridge on the host. */
  bridgeIfindex: number;
  /** Interface index of the vxlan device on the host. */
  vxlanIfindex: number;
}

/**
 * What encapsulation adds to a frame the overlay carries, counted against the
 * underlay's MTU: outer IP header (20 or 40) + UDP 8 + VXLAN 8 + the inner
 * Ethernet header 14 (which the overlay's MTU, like any MTU, does not include).
 */
const OVERHEAD = { 4: 50, 6: 70 } as const;

/**
 * One L2 overlay across many hosts: on each host a bridge and a vxlan device
 * enslaved to it, whose head-end replication list (`remotes`) names every other
 * host. Adding or removing a host changes the other hosts' FDB in place.
 */
export class VxlanFabric extends pulumi.ComponentResource {
  /** Per host: bridge and vxlan names and ifindexes, to attach taps, veths and macvlans to. */
  readonly hosts: pulumi.Output<VxlanFabricHostOutputs[]>;
  /** The bridge of each host, in the order of `hosts`: attach endpoints with `master: bridges[i].name`. */
  readonly bridges: Bridge[];
  /** The vxlan device of each host, in the order of `hosts`. */
  readonly vxlans: Vxlan[];
  /** MTU of every bridge and vxlan device of the fabric, bytes. */
  readonly mtu: number;

  constructor(name: string, args: VxlanFabricArgs, opts?: pulumi.ComponentResourceOptions) {
    super("netdev:index:VxlanFabric", name, {}, opts);
    const family = checkHosts(args.hosts);
    const bridgeName = args.bridgeName ?? `brvx${args.vni}`;
    const vxlanName = args.vxlanName ?? `vx${args.vni}`;
    const mtu = args.mtu ?? 1500 - OVERHEAD[family];
    this.mtu = mtu;
    this.bridges = [];
    this.vxlans = [];
    for (const host of args.hosts) {
      const key = host.name ?? host.underlayAddress;
      const others = args.hosts.filter((h) => h !== host).map((h) => h.underlayAddress);
      const bridge = new Bridge(`${name}-${key}-br`, { connection: host.connection, name: bridgeName, mtu }, { parent: this });
      const vxlan = new Vxlan(
        `${name}-${key}-vx`,
        {
          connection: host.connection,
          name: vxlanName,
          vni: args.vni,
          local: host.underlayAddress,
          ...(host.underlayDevice ? { dev: host.underlayDevice } : {}),
          remotes: others,
          dstPort: args.dstPort ?? 4789,
          // No learning from received packets: frames for remote MACs go to every peer
          // (head-end replication), so the FDB holds exactly the peer list managed here and
          // nothing stale is left behind when an endpoint moves to another host. The cost,
          // unicast copied to every host, is fine for the small fabrics this is for.
          learning: false,
          mtu,
          master: bridge.name,
        },
        { parent: this },
      );
      this.bridges.push(bridge);
      this.vxlans.push(vxlan);
    }
    this.hosts = pulumi.all(
      args.hosts.map((h, i) =>
        pulumi.all([this.bridges[i].ifindex, this.vxlans[i].ifindex]).apply(([bridgeIfindex, vxlanIfindex]) => ({
          name: h.name ?? h.underlayAddress,
          bridgeName,
          vxlanName,
          bridgeIfindex,
          vxlanIfindex,
        })),
      ),
    );
    this.registerOutputs({ hosts: this.hosts });
  }
}

function checkHosts(hosts: VxlanFabricHost[]): 4 | 6 {
  if (hosts.length === 0) throw new Error("VxlanFabric: hosts must list at least one host");
  const families = new Set<number>();
  const keys = new Set<string>();
  const addresses = new Set<string>();
  for (const [i, h] of hosts.entries()) {
    const f = isIP(h.underlayAddress);
    if (f === 0) throw new Error(`VxlanFabric: hosts[${i}].underlayAddress must be an IP address (got ${JSON.stringify(h.underlayAddress)})`);
    families.add(f);
    const key = h.name ?? h.underlayAddress;
    if (keys.has(key)) throw new Error(`VxlanFabric: hosts[${i}] repeats host ${JSON.stringify(key)}`);
    keys.add(key);
    // A host listed twice would send every flooded frame to itself.
    if (addresses.has(h.underlayAddress)) throw new Error(`VxlanFabric: hosts[${i}] repeats underlayAddress ${h.underlayAddress}`);
    addresses.add(h.underlayAddress);
  }
  if (families.size > 1)
    throw new Error(`VxlanFabric: all hosts' underlayAddress must be of one address family (got both IPv4 and IPv6: ${hosts.map((h) => h.underlayAddress).join(", ")})`);
  return [...families][0] as 4 | 6;
}
