// Golden systemd-networkd files for every kind and option (`persist`, DESIGN.md §8).
// Key names and value spellings follow systemd.netdev(5) / systemd.network(5) of
// systemd 252 (Debian 12); the reboot test (test/kernel/persist-reboot.test.ts)
// proves networkd parses them into the same devices.
import { describe, expect, it } from "vitest";
import { registry } from "../../provider/kinds";
import type { LinkEngine } from "../../provider/engine";
import { type NetworkdFacts, renderUnit } from "../../provider/networkd";
import { provider } from "../../provider/runtime";

const conn = { host: "192.0.2.10" };

/** check() the inputs, render the kind's files, and show them as one text: `== file` then its lines. */
async function rendered(kind: string, inputs: Record<string, unknown>, facts: NetworkdFacts = {}): Promise<string> {
  const r = await provider(kind).check({}, { connection: conn, persist: true, ...inputs });
  expect(r.failures).toEqual([]);
  const files = (registry[kind] as LinkEngine).kind.networkd(r.inputs as any, facts);
  const parts = files.units.map((u) => `== ${u.device}.${u.type}\n${renderUnit("H", u)}`);
  for (const o of files.others) parts.push(`== drop-in for ${o.device}\n${renderUnit("H", { sections: [{ name: "Network", entries: o.entries }] })}`);
  return parts.join("");
}

describe("networkd renderers", () => {
  it("Bridge: every option, MAC pinned, addresses, master-less bridge configured without carrier", async () => {
    expect(
      await rendered("Bridge", {
        name: "br0", mtu: 9000, addresses: ["192.0.2.1/24", "2001:db8::1/64"], stp: true, forwardDelay: 4, helloTime: 1.5, maxAge: 12,
        ageingTime: 600, priority: 4096, vlanFiltering: true, vlanDefaultPvid: 0, vlanProtocol: "802.1ad", mcastSnooping: false,
      }, { macAddress: "02:00:00:00:00:01" }),
    ).toMatchInlineSnapshot(`
      "== br0.netdev
      # H

      [NetDev]
      Name=br0
      Kind=bridge

      [Bridge]
      STP=yes
      ForwardDelaySec=4
      HelloTimeSec=1.5
      MaxAgeSec=12
      AgeingTimeSec=600
      Priority=4096
      VLANFiltering=yes
      DefaultPVID=none
      VLANProtocol=802.1ad
      MulticastSnooping=no
      == br0.network
      # H

      [Match]
      Name=br0

      [Link]
      MACAddress=02:00:00:00:00:01
      MTUBytes=9000
      ActivationPolicy=up

      [Network]
      Address=192.0.2.1/24
      Address=2001:db8::1/64
      ConfigureWithoutCarrier=yes
      "
    `);
  });

  it("Bridge: up false, explicit MAC wins over the kernel's", async () => {
    expect(await rendered("Bridge", { name: "br1", up: false, macAddress: "02:aa:00:00:00:01", vlanDefaultPvid: 10 }, { macAddress: "02:00:00:00:00:09" })).toMatchInlineSnapshot(`
      "== br1.netdev
      # H

      [NetDev]
      Name=br1
      Kind=bridge

      [Bridge]
      DefaultPVID=10
      == br1.network
      # H

      [Match]
      Name=br1

      [Link]
      MACAddress=02:aa:00:00:00:01
      ActivationPolicy=down

      [Network]
      ConfigureWithoutCarrier=yes
      "
    `);
  });

  it("TapDevice: owner, group, multiQueue, vnetHdr, pi, enslaved to a bridge", async () => {
    expect(
      await rendered("TapDevice", { name: "tap0", owner: 1000, group: "kvm", multiQueue: true, vnetHdr: true, pi: true, master: "br0" }, { macAddress: "02:00:00:00:00:02", masterKind: "bridge" }),
    ).toMatchInlineSnapshot(`
      "== tap0.netdev
      # H

      [NetDev]
      Name=tap0
      Kind=tap

      [Tap]
      User=1000
      Group=kvm
      MultiQueue=yes
      VNetHeader=yes
      PacketInfo=yes
      == tap0.network
      # H

      [Match]
      Name=tap0

      [Link]
      MACAddress=02:00:00:00:00:02
      ActivationPolicy=up

      [Network]
      Bridge=br0
      ConfigureWithoutCarrier=yes
      "
    `);
  });

  it("TapDevice: a tun has no MAC to pin", async () => {
    expect(await rendered("TapDevice", { name: "tun0", mode: "tun", addresses: ["10.8.0.1/24"] }, { macAddress: "ignored" })).toMatchInlineSnapshot(`
      "== tun0.netdev
      # H

      [NetDev]
      Name=tun0
      Kind=tun
      == tun0.network
      # H

      [Match]
      Name=tun0

      [Link]
      ActivationPolicy=up

      [Network]
      Address=10.8.0.1/24
      ConfigureWithoutCarrier=yes
      "
    `);
  });

  it("VethPair: both ends, the peer's own .network, peer MAC pinned", async () => {
    expect(
      await rendered("VethPair", { name: "ve0", peerName: "ve1", mtu: 1400, peerMtu: 1400, addresses: ["10.1.0.1/30"], peerAddresses: ["10.1.0.2/30"], peerMaster: "bond0", peerUp: false },
        { macAddress: "02:00:00:00:00:03", peerMacAddress: "02:00:00:00:00:04", peerMasterKind: "bond" }),
    ).toMatchInlineSnapshot(`
      "== ve0.netdev
      # H

      [NetDev]
      Name=ve0
      Kind=veth

      [Peer]
      Name=ve1
      MACAddress=02:00:00:00:00:04
      == ve0.network
      # H

      [Match]
      Name=ve0

      [Link]
      MACAddress=02:00:00:00:00:03
      MTUBytes=1400
      ActivationPolicy=up

      [Network]
      Address=10.1.0.1/30
      ConfigureWithoutCarrier=yes
      == ve1.network
      # H

      [Match]
      Name=ve1

      [Link]
      MACAddress=02:00:00:00:00:04
      MTUBytes=1400
      ActivationPolicy=down

      [Network]
      Address=10.1.0.2/30
      Bond=bond0
      ConfigureWithoutCarrier=yes
      "
    `);
  });

  it("MacvlanLink: mode source with its MAC list; the parent names it", async () => {
    expect(
      await rendered("MacvlanLink", { name: "mv0", parent: "eth0", mode: "source", sourceMacs: ["02:00:00:00:00:22", "02:00:00:00:00:11"] }, { macAddress: "02:00:00:00:00:05" }),
    ).toMatchInlineSnapshot(`
      "== mv0.netdev
      # H

      [NetDev]
      Name=mv0
      Kind=macvlan

      [MACVLAN]
      Mode=source
      SourceMACAddress=02:00:00:00:00:11
      SourceMACAddress=02:00:00:00:00:22
      == mv0.network
      # H

      [Match]
      Name=mv0

      [Link]
      MACAddress=02:00:00:00:00:05
      ActivationPolicy=up

      [Network]
      ConfigureWithoutCarrier=yes
      == drop-in for eth0
      # H

      [Network]
      MACVLAN=mv0
      "
    `);
  });

  it("MacvtapLink: mode and parent", async () => {
    expect(await rendered("MacvtapLink", { name: "mvt0", parent: "eth0", mode: "vepa" }, { macAddress: "02:00:00:00:00:06" })).toMatchInlineSnapshot(`
      "== mvt0.netdev
      # H

      [NetDev]
      Name=mvt0
      Kind=macvtap

      [MACVTAP]
      Mode=vepa
      == mvt0.network
      # H

      [Match]
      Name=mvt0

      [Link]
      MACAddress=02:00:00:00:00:06
      ActivationPolicy=up

      [Network]
      ConfigureWithoutCarrier=yes
      == drop-in for eth0
      # H

      [Network]
      MACVTAP=mvt0
      "
    `);
  });

  it("IpvlanLink: mode and flag in networkd's spelling, no MAC", async () => {
    expect(await rendered("IpvlanLink", { name: "ipv0", parent: "eth0", mode: "l3s", flag: "private", addresses: ["10.2.0.1/32"] }, { macAddress: "not pinned" })).toMatchInlineSnapshot(`
      "== ipv0.netdev
      # H

      [NetDev]
      Name=ipv0
      Kind=ipvlan

      [IPVLAN]
      Mode=L3S
      Flags=private
      == ipv0.network
      # H

      [Match]
      Name=ipv0

      [Link]
      ActivationPolicy=up

      [Network]
      Address=10.2.0.1/32
      ConfigureWithoutCarrier=yes
      == drop-in for eth0
      # H

      [Network]
      IPVLAN=ipv0
      "
    `);
  });

  it("Vlan: id, protocol, every flag and both QoS maps", async () => {
    expect(
      await rendered("Vlan", {
        name: "vl100", parent: "bond0", vlanId: 100, protocol: "802.1ad", reorderHdr: false, gvrp: true, mvrp: true, looseBinding: true,
        ingressQosMap: { "1": 5, "2": 6 }, egressQosMap: { "10": 3, "4": 2 },
      }, { macAddress: "02:00:00:00:00:07" }),
    ).toMatchInlineSnapshot(`
      "== vl100.netdev
      # H

      [NetDev]
      Name=vl100
      Kind=vlan

      [VLAN]
      Id=100
      Protocol=802.1ad
      ReorderHeader=no
      GVRP=yes
      MVRP=yes
      LooseBinding=yes
      IngressQOSMaps=1-5 2-6
      EgressQOSMaps=4-2 10-3
      == vl100.network
      # H

      [Match]
      Name=vl100

      [Link]
      MACAddress=02:00:00:00:00:07
      ActivationPolicy=up

      [Network]
      ConfigureWithoutCarrier=yes
      == drop-in for bond0
      # H

      [Network]
      VLAN=vl100
      "
    `);
  });

  it("Vxlan: underlay device, head-end remotes as [BridgeFDB], every option", async () => {
    expect(
      await rendered("Vxlan", { name: "vx0", vni: 42, local: "192.0.2.1", dev: "eth0", remotes: ["192.0.2.3", "192.0.2.2"], dstPort: 4790, ttl: 16, tos: 8, learning: false, ageing: 120, mtu: 1450 },
        { macAddress: "02:00:00:00:00:08" }),
    ).toMatchInlineSnapshot(`
      "== vx0.netdev
      # H

      [NetDev]
      Name=vx0
      Kind=vxlan

      [VXLAN]
      VNI=42
      Local=192.0.2.1
      DestinationPort=4790
      TTL=16
      TOS=8
      MacLearning=no
      FDBAgeingSec=120
      UDPChecksum=yes
      == vx0.network
      # H

      [Match]
      Name=vx0

      [Link]
      MACAddress=02:00:00:00:00:08
      MTUBytes=1450
      ActivationPolicy=up

      [Network]
      ConfigureWithoutCarrier=yes

      [BridgeFDB]
      MACAddress=00:00:00:00:00:00
      Destination=192.0.2.2

      [BridgeFDB]
      MACAddress=00:00:00:00:00:00
      Destination=192.0.2.3
      == drop-in for eth0
      # H

      [Network]
      VXLAN=vx0
      "
    `);
  });

  it("Vxlan: no underlay device is Independent; ttl auto is TTL=0; a group", async () => {
    expect(await rendered("Vxlan", { name: "vx1", vni: 7, remote: "192.0.2.9", ttl: "auto" }, { macAddress: "02:00:00:00:00:0a" })).toMatchInlineSnapshot(`
      "== vx1.netdev
      # H

      [NetDev]
      Name=vx1
      Kind=vxlan

      [VXLAN]
      VNI=7
      Remote=192.0.2.9
      DestinationPort=4789
      TTL=0
      UDPChecksum=yes
      Independent=yes
      == vx1.network
      # H

      [Match]
      Name=vx1

      [Link]
      MACAddress=02:00:00:00:00:0a
      ActivationPolicy=up

      [Network]
      ConfigureWithoutCarrier=yes
      "
    `);
    expect(await rendered("Vxlan", { name: "vx2", vni: 8, group: "239.1.1.1", dev: "eth1" }, { macAddress: "02:00:00:00:00:0b" })).toMatchInlineSnapshot(`
      "== vx2.netdev
      # H

      [NetDev]
      Name=vx2
      Kind=vxlan

      [VXLAN]
      VNI=8
      Group=239.1.1.1
      DestinationPort=4789
      UDPChecksum=yes
      == vx2.network
      # H

      [Match]
      Name=vx2

      [Link]
      MACAddress=02:00:00:00:00:0b
      ActivationPolicy=up

      [Network]
      ConfigureWithoutCarrier=yes
      == drop-in for eth1
      # H

      [Network]
      VXLAN=vx2
      "
    `);
  });

  it("Bond: every option, slaves naming the bond, the primary marked, the MAC pinned", async () => {
    expect(
      await rendered("Bond", {
        name: "bond0", mode: "active-backup", miimon: 100, updelay: 200, downdelay: 300, primary: "dummy1", minLinks: 1, slaves: ["dummy1", "dummy0"], addresses: ["192.0.2.5/24"],
      }, { macAddress: "02:00:00:00:00:0c" }),
    ).toMatchInlineSnapshot(`
      "== bond0.netdev
      # H

      [NetDev]
      Name=bond0
      Kind=bond

      [Bond]
      Mode=active-backup
      MIIMonitorSec=100ms
      UpDelaySec=200ms
      DownDelaySec=300ms
      MinLinks=1
      == bond0.network
      # H

      [Match]
      Name=bond0

      [Link]
      MACAddress=02:00:00:00:00:0c
      ActivationPolicy=up

      [Network]
      Address=192.0.2.5/24
      ConfigureWithoutCarrier=yes
      == drop-in for dummy1
      # H

      [Network]
      Bond=bond0
      PrimarySlave=yes
      == drop-in for dummy0
      # H

      [Network]
      Bond=bond0
      "
    `);
    expect(
      await rendered("Bond", { name: "bond1", mode: "802.3ad", lacpRate: "fast", xmitHashPolicy: "layer3+4" }, { macAddress: "02:00:00:00:00:0d" }),
    ).toMatchInlineSnapshot(`
      "== bond1.netdev
      # H

      [NetDev]
      Name=bond1
      Kind=bond

      [Bond]
      Mode=802.3ad
      LACPTransmitRate=fast
      TransmitHashPolicy=layer3+4
      == bond1.network
      # H

      [Match]
      Name=bond1

      [Link]
      MACAddress=02:00:00:00:00:0d
      ActivationPolicy=up

      [Network]
      ConfigureWithoutCarrier=yes
      "
    `);
    expect(
      await rendered("Bond", { name: "bond2", mode: "balance-xor", arpInterval: 1000, arpIpTargets: ["192.0.2.20", "192.0.2.10"] }, { macAddress: "02:00:00:00:00:0e" }),
    ).toMatchInlineSnapshot(`
      "== bond2.netdev
      # H

      [NetDev]
      Name=bond2
      Kind=bond

      [Bond]
      Mode=balance-xor
      ARPIntervalSec=1000ms
      ARPIPTargets=192.0.2.10 192.0.2.20
      == bond2.network
      # H

      [Match]
      Name=bond2

      [Link]
      MACAddress=02:00:00:00:00:0e
      ActivationPolicy=up

      [Network]
      ConfigureWithoutCarrier=yes
      "
    `);
  });

  it("bridge port options as the port's [Bridge] section, VLANs as [BridgeVLAN] (a Bridge's own ones too)", async () => {
    expect(
      await rendered("TapDevice", {
        name: "tap2", master: "br0",
        bridgePort: {
          cost: 10, priority: 8, hairpin: true, learning: false, unicastFlood: false, multicastFlood: true, isolated: true, bpduGuard: true, rootBlock: true, neighSuppress: true,
          vlans: [{ vid: 100, pvid: true, untagged: true }, { vid: "200-210" }],
        },
      }, { macAddress: "02:00:00:00:00:0f", masterKind: "bridge" }),
    ).toMatchInlineSnapshot(`
      "== tap2.netdev
      # H

      [NetDev]
      Name=tap2
      Kind=tap
      == tap2.network
      # H

      [Match]
      Name=tap2

      [Link]
      MACAddress=02:00:00:00:00:0f
      ActivationPolicy=up

      [Network]
      Bridge=br0
      ConfigureWithoutCarrier=yes

      [Bridge]
      Cost=10
      Priority=8
      HairPin=yes
      Learning=no
      UnicastFlood=no
      MulticastFlood=yes
      Isolated=yes
      UseBPDU=no
      AllowPortToBeRoot=no
      NeighborSuppression=yes

      [BridgeVLAN]
      VLAN=100
      PVID=100
      EgressUntagged=100

      [BridgeVLAN]
      VLAN=200-210
      "
    `);
    expect(await rendered("Bridge", { name: "br2", vlanFiltering: true, vlans: [{ vid: 1, pvid: true, untagged: true }, { vid: 300 }] }, { macAddress: "02:00:00:00:00:10" })).toMatchInlineSnapshot(`
      "== br2.netdev
      # H

      [NetDev]
      Name=br2
      Kind=bridge

      [Bridge]
      VLANFiltering=yes
      == br2.network
      # H

      [Match]
      Name=br2

      [Link]
      MACAddress=02:00:00:00:00:10
      ActivationPolicy=up

      [Network]
      ConfigureWithoutCarrier=yes

      [BridgeVLAN]
      VLAN=1
      PVID=1
      EgressUntagged=1

      [BridgeVLAN]
      VLAN=300
      "
    `);
  });

  it("a master that is neither a bridge nor a bond cannot be written", async () => {
    await expect(rendered("TapDevice", { name: "tap1", master: "x0" }, { masterKind: "vxlan" })).rejects.toThrow(/master x0 is a vxlan/);
  });
});
