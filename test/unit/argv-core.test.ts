// Golden argv of the core kinds' create/update builders and of the engine's step plan.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { LinkEngine } from "../../provider/engine";
import type { LinkJson } from "../../provider/iproute/link";
import { bridge } from "../../provider/kinds/bridge";
import { tuntap } from "../../provider/kinds/tuntap";
import type { Mismatch } from "../../provider/kinds/types";
import { veth } from "../../provider/kinds/veth";

function fixture(name: string): LinkJson {
  return JSON.parse(readFileSync(join(__dirname, "../fixtures/iproute", `${name}.json`), "utf8"))[0];
}

const mm = (field: string, desired: unknown, actual?: unknown): Mismatch => ({ field, desired, actual });

describe("bridge argv", () => {
  it("create: every option, seconds converted to centiseconds", () => {
    expect(bridge.createArgv({
      name: "br0", stp: true, forwardDelay: 4, helloTime: 2.5, maxAge: 20, ageingTime: 300, priority: 4096,
      vlanFiltering: false, vlanDefaultPvid: 1, vlanProtocol: "802.1ad", mcastSnooping: false,
    })).toEqual([[
      "ip", "link", "add", "name", "br0", "type", "bridge",
      "stp_state", "1", "forward_delay", "400", "hello_time", "250", "max_age", "2000", "ageing_time", "30000",
      "priority", "4096", "vlan_filtering", "0", "vlan_default_pvid", "1", "vlan_protocol", "802.1ad", "mcast_snooping", "0",
    ]]);
  });

  it("create: fractional seconds round to whole centiseconds", () => {
    expect(bridge.createArgv({ name: "br0", forwardDelay: 0.29, helloTime: 1.1, ageingTime: 0 })).toEqual([
      ["ip", "link", "add", "name", "br0", "type", "bridge", "forward_delay", "29", "hello_time", "110", "ageing_time", "0"],
    ]);
    expect(bridge.createArgv({ name: "br0", stp: false, vlanFiltering: true, mcastSnooping: true })).toEqual([
      ["ip", "link", "add", "name", "br0", "type", "bridge", "stp_state", "0", "vlan_filtering", "1", "mcast_snooping", "1"],
    ]);
  });

  it("create: minimal, and in a namespace with mtu and address (mtu set separately so it sticks)", () => {
    expect(bridge.createArgv({ name: "br0" })).toEqual([["ip", "link", "add", "name", "br0", "type", "bridge"]]);
    expect(bridge.createArgv({ name: "br0", namespace: "ns1", mtu: 1400, macAddress: "02:00:00:00:00:01", stp: false })).toEqual([
      ["ip", "-n", "ns1", "link", "add", "name", "br0", "address", "02:00:00:00:00:01", "type", "bridge", "stp_state", "0"],
      ["ip", "-n", "ns1", "link", "set", "dev", "br0", "mtu", "1400"],
    ]);
  });

  it("update: one option per line", () => {
    const d = { name: "br0", namespace: "ns1", stp: true, forwardDelay: 5, ageingTime: 12.34, priority: 0, mcastSnooping: false };
    expect(bridge.updateArgv(d, [mm("forwardDelay", 5, 4), mm("stp", true, false), mm("ageingTime", 12.34, 120), mm("priority", 0, 4096), mm("mcastSnooping", false, true)])).toEqual([
      ["ip", "-n", "ns1", "link", "set", "dev", "br0", "type", "bridge", "forward_delay", "500"],
      ["ip", "-n", "ns1", "link", "set", "dev", "br0", "type", "bridge", "stp_state", "1"],
      ["ip", "-n", "ns1", "link", "set", "dev", "br0", "type", "bridge", "ageing_time", "1234"],
      ["ip", "-n", "ns1", "link", "set", "dev", "br0", "type", "bridge", "priority", "0"],
      ["ip", "-n", "ns1", "link", "set", "dev", "br0", "type", "bridge", "mcast_snooping", "0"],
    ]);
    expect(bridge.updateArgv({ name: "br0" }, [])).toEqual([]);
  });
});

describe("tuntap argv", () => {
  it("create: flags in order, owner and group by id or name", () => {
    expect(tuntap.createArgv({ name: "tap0", mode: "tap", owner: 1000, group: "kvm", multiQueue: true, vnetHdr: true, pi: true })).toEqual([
      ["ip", "tuntap", "add", "dev", "tap0", "mode", "tap", "user", "1000", "group", "kvm", "multi_queue", "vnet_hdr", "pi"],
    ]);
    expect(tuntap.createArgv({ name: "tap0", mode: "tap", owner: 0, group: 0, multiQueue: false, vnetHdr: false, pi: false })).toEqual([
      ["ip", "tuntap", "add", "dev", "tap0", "mode", "tap", "user", "0", "group", "0"],
    ]);
    expect(tuntap.createArgv({ name: "tun0", mode: "tun", multiQueue: false, vnetHdr: true, pi: false })).toEqual([
      ["ip", "tuntap", "add", "dev", "tun0", "mode", "tun", "vnet_hdr"],
    ]);
  });

  it("create: in a namespace, mtu and address set right after the add", () => {
    expect(tuntap.createArgv({ name: "tap0", namespace: "vm1", mode: "tap", owner: "qemu", mtu: 9000, macAddress: "02:00:00:00:00:09" })).toEqual([
      ["ip", "-n", "vm1", "tuntap", "add", "dev", "tap0", "mode", "tap", "user", "qemu"],
      ["ip", "-n", "vm1", "link", "set", "dev", "tap0", "mtu", "9000", "address", "02:00:00:00:00:09"],
    ]);
    expect(tuntap.createArgv({ name: "tun0", mode: "tun", mtu: 1280 })).toEqual([
      ["ip", "tuntap", "add", "dev", "tun0", "mode", "tun"],
      ["ip", "link", "set", "dev", "tun0", "mtu", "1280"],
    ]);
  });

  it("update: nothing is changeable in place", () => {
    expect(tuntap.updateArgv({ name: "tap0" }, [])).toEqual([]);
    expect(() => tuntap.updateArgv({ name: "tap0" }, [mm("vnetHdr", false, true), mm("pi", true, false)])).toThrow(/tap0: vnetHdr, pi can only be set when the device is created/);
  });
});

describe("veth argv", () => {
  it("create: both ends in the host's namespace", () => {
    expect(veth.createArgv({ name: "ve0", peerName: "ve1" })).toEqual([["ip", "link", "add", "name", "ve0", "type", "veth", "peer", "name", "ve1"]]);
  });

  it("create: each end's mtu and address, peer moved into its namespace", () => {
    expect(veth.createArgv({
      name: "ve0", namespace: "a", mtu: 1400, macAddress: "02:00:00:00:00:01",
      peerName: "eth0", peerNamespace: "c1", peerMtu: 1300, peerMacAddress: "02:00:00:00:00:02",
    })).toEqual([[
      "ip", "-n", "a", "link", "add", "name", "ve0", "mtu", "1400", "address", "02:00:00:00:00:01",
      "type", "veth", "peer", "name", "eth0", "netns", "c1", "mtu", "1300", "address", "02:00:00:00:00:02",
    ]]);
    expect(veth.createArgv({ name: "ve0", peerName: "eth0", peerNamespace: "c1" })).toEqual([
      ["ip", "link", "add", "name", "ve0", "type", "veth", "peer", "name", "eth0", "netns", "c1"],
    ]);
    // The peer's namespace equal to this end's: no netns argument (the peer is created there).
    expect(veth.createArgv({ name: "ve0", namespace: "a", peerName: "ve1", peerNamespace: "a", peerMtu: 9000 })).toEqual([
      ["ip", "-n", "a", "link", "add", "name", "ve0", "type", "veth", "peer", "name", "ve1", "mtu", "9000"],
    ]);
  });

  it("update: peer changes in the peer's namespace, nomaster before master, del before add, up last", () => {
    const d = {
      name: "ve0", namespace: "a", peerName: "ve1", peerNamespace: "b", peerMtu: 1300, peerMacAddress: "02:00:00:00:00:02",
      peerMaster: "br1", peerAddresses: ["10.0.0.2/24", "10.0.0.3/24"], peerUp: false,
    };
    const steps = veth.updateArgv(d, [
      mm("peerUp", false, true),
      mm("peerAddresses", d.peerAddresses, ["10.0.0.1/24", "10.0.0.2/24"]),
      mm("peerMaster", "br1", "br0"),
      mm("peerMacAddress", d.peerMacAddress, "02:00:00:00:00:99"),
      mm("peerMtu", 1300, 1500),
    ], fixture("veth-cross-ns-a"));
    expect(steps).toEqual([
      ["ip", "-n", "b", "link", "set", "dev", "ve1", "mtu", "1300"],
      ["ip", "-n", "b", "link", "set", "dev", "ve1", "address", "02:00:00:00:00:02"],
      ["ip", "-n", "b", "link", "set", "dev", "ve1", "nomaster"],
      ["ip", "-n", "b", "link", "set", "dev", "ve1", "master", "br1"],
      ["ip", "-n", "b", "addr", "del", "10.0.0.1/24", "dev", "ve1"],
      ["ip", "-n", "b", "addr", "add", "10.0.0.3/24", "dev", "ve1"],
      ["ip", "-n", "b", "link", "set", "dev", "ve1", "down"],
    ]);
  });

  it("update: peer in this end's namespace; no nomaster when it had no master; addresses from none", () => {
    const d = { name: "ve0", namespace: "a", peerName: "ve1", peerMaster: "br1", peerAddresses: ["10.0.0.2/24"], peerUp: true };
    expect(veth.updateArgv(d, [mm("peerMaster", "br1", undefined), mm("peerAddresses", d.peerAddresses, undefined), mm("peerUp", true, false)], fixture("veth-same-ns-a"))).toEqual([
      ["ip", "-n", "a", "link", "set", "dev", "ve1", "master", "br1"],
      ["ip", "-n", "a", "addr", "add", "10.0.0.2/24", "dev", "ve1"],
      ["ip", "-n", "a", "link", "set", "dev", "ve1", "up"],
    ]);
    expect(veth.updateArgv({ name: "ve0", peerName: "ve1" }, [], fixture("veth-same-ns-a"))).toEqual([]);
  });

  it("update: a missing or re-paired peer cannot be fixed in place", () => {
    expect(() => veth.updateArgv({ name: "ve0", peerName: "ve1" }, [mm("peerName", "ve1", undefined)], fixture("veth-same-ns-a"))).toThrow(/replace the VethPair/);
  });
});

describe("LinkEngine.planSteps ordering", () => {
  it("kind changes, mtu, address, nomaster + master, address del then add, up last", () => {
    const engine = new LinkEngine(veth);
    const link = fixture("veth-same-ns-a"); // enslaved to br-ut, only a link-local address
    const d = {
      name: "ve-a", namespace: "ut-rec-a", peerName: "ve-b", peerMtu: 1400, mtu: 1400, macAddress: "02:00:00:00:00:0a",
      master: "br-other", addresses: ["192.0.2.7/24"], up: false,
    };
    const steps = engine.planSteps(d, [
      mm("up", false, true), mm("addresses", ["192.0.2.7/24"], []), mm("master", "br-other", "br-ut"),
      mm("macAddress", d.macAddress, link.address), mm("mtu", 1400, 1500), mm("peerMtu", 1400, 1500),
    ], link);
    expect(steps).toEqual([
      ["ip", "-n", "ut-rec-a", "link", "set", "dev", "ve-b", "mtu", "1400"],
      ["ip", "-n", "ut-rec-a", "link", "set", "dev", "ve-a", "mtu", "1400"],
      ["ip", "-n", "ut-rec-a", "link", "set", "dev", "ve-a", "address", "02:00:00:00:00:0a"],
      ["ip", "-n", "ut-rec-a", "link", "set", "dev", "ve-a", "nomaster"],
      ["ip", "-n", "ut-rec-a", "link", "set", "dev", "ve-a", "master", "br-other"],
      ["ip", "-n", "ut-rec-a", "addr", "add", "192.0.2.7/24", "dev", "ve-a"],
      ["ip", "-n", "ut-rec-a", "link", "set", "dev", "ve-a", "down"],
    ]);
  });

  it("addresses: removes what the kernel has beyond the wanted set, then adds; link-local is left alone", () => {
    const engine = new LinkEngine(bridge);
    const link = fixture("bridge-timers"); // 192.0.2.1/24 and 2001:db8::1/64, no master
    const d = { name: "br-ut", forwardDelay: 5, master: "br-top", addresses: ["192.0.2.1/24", "198.51.100.1/24"], up: true };
    expect(engine.planSteps(d, [mm("up", true, false), mm("addresses", d.addresses, []), mm("master", "br-top", undefined), mm("forwardDelay", 5, 4)], link)).toEqual([
      ["ip", "link", "set", "dev", "br-ut", "type", "bridge", "forward_delay", "500"],
      ["ip", "link", "set", "dev", "br-ut", "master", "br-top"],
      ["ip", "addr", "del", "2001:db8::1/64", "dev", "br-ut"],
      ["ip", "addr", "add", "198.51.100.1/24", "dev", "br-ut"],
      ["ip", "link", "set", "dev", "br-ut", "up"],
    ]);
    const ve = fixture("veth-same-ns-b"); // 198.51.100.2/24 plus a link-local
    expect(new LinkEngine(veth).planSteps({ name: "ve-b", peerName: "ve-a", addresses: [] }, [mm("addresses", [], ["198.51.100.2/24"])], ve)).toEqual([
      ["ip", "addr", "del", "198.51.100.2/24", "dev", "ve-b"],
    ]);
  });

  it("enslaving an up device to a bond: down, enslave, up again, in order; a bridge master needs no down", () => {
    const engine = new LinkEngine(bridge);
    const link = fixture("bridge-timers"); // up, no master
    const d = { name: "br-ut", master: "bond0", up: true };
    expect(engine.planSteps(d, [mm("master", "bond0", undefined)], link, {}, "bond")).toEqual([
      ["ip", "link", "set", "dev", "br-ut", "down"],
      ["ip", "link", "set", "dev", "br-ut", "master", "bond0"],
      ["ip", "link", "set", "dev", "br-ut", "up"],
    ]);
    // Wanted down: it stays down after the enslave.
    expect(engine.planSteps({ ...d, up: false }, [mm("master", "bond0", undefined), mm("up", false, true)], link, {}, "bond")).toEqual([
      ["ip", "link", "set", "dev", "br-ut", "down"],
      ["ip", "link", "set", "dev", "br-ut", "master", "bond0"],
      ["ip", "link", "set", "dev", "br-ut", "down"],
    ]);
    expect(engine.planSteps({ ...d, master: "br-top" }, [mm("master", "br-top", undefined)], link, {}, "bridge")).toEqual([["ip", "link", "set", "dev", "br-ut", "master", "br-top"]]);
    // A veth's other end, through the same planner, with the kind of its master read by the engine.
    const ve = fixture("veth-same-ns-a");
    const v = { name: "ve-a", namespace: "ut-rec-a", peerName: "ve-b", peerMaster: "bondp", peerUp: true };
    expect(new LinkEngine(veth).planSteps(v, [mm("peerMaster", "bondp", undefined)], ve, { peerUp: true }, undefined, { peerMaster: "bond" })).toEqual([
      ["ip", "-n", "ut-rec-a", "link", "set", "dev", "ve-b", "down"],
      ["ip", "-n", "ut-rec-a", "link", "set", "dev", "ve-b", "master", "bondp"],
      ["ip", "-n", "ut-rec-a", "link", "set", "dev", "ve-b", "up"],
    ]);
    expect(veth.masters!(v)).toEqual([{ field: "peerMaster", namespace: "ut-rec-a", name: "bondp" }]);
    const down = { ...link, flags: link.flags.filter((f) => f !== "UP") };
    expect(engine.planSteps({ ...d, up: false }, [mm("master", "bond0", undefined)], down, {}, "bond")).toEqual([["ip", "link", "set", "dev", "br-ut", "master", "bond0"]]);
  });

  it("mismatches: compares only fields the inputs set, never identity or connection", () => {
    const engine = new LinkEngine(bridge);
    const d = { connection: { host: "h" }, name: "br0", namespace: "x", adopt: true, mtu: 1500, stp: true, forwardDelay: undefined, addresses: ["192.0.2.1/24"] };
    const actual = { mtu: 1500, stp: false, forwardDelay: 4, addresses: ["192.0.2.1/24", "198.51.100.1/24"], name: "other", namespace: "y" };
    expect(engine.mismatches(d, actual)).toEqual([
      { field: "stp", desired: true, actual: false },
      { field: "addresses", desired: ["192.0.2.1/24"], actual: ["192.0.2.1/24", "198.51.100.1/24"] },
    ]);
  });
});
