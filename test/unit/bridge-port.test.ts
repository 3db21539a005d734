// bridgePort / bondPort / Bridge.vlans: schema (every field, valid and invalid), the
// lines they plan, and the parsers on output recorded on the full-kernel VM
// (`bridge -j vlan show`, `ip -j -d addr show` with info_slave_data).
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { parseVlans, portState, portSteps, vlanSteps } from "../../provider/bridgePort";
import type { LinkJson } from "../../provider/iproute/link";
import { provider } from "../../provider/runtime";
import { FakeTransport } from "../../provider/transport/fake";
import { installFake, kindChecks, restoreTransport } from "../support/unit";

const raw = (name: string) => readFileSync(join(__dirname, "../fixtures/iproute", `${name}.json`), "utf8");
const link = (name: string): LinkJson => JSON.parse(raw(name))[0];
const conn = { host: "192.0.2.10" };

describe("bridgePort and bondPort schema", () => {
  const { accepted, rejected } = kindChecks("TapDevice", { connection: conn, name: "tap0", master: "br0" });
  it("accepts every option and normalises the VLAN set", async () => {
    const v = await accepted({
      bridgePort: { cost: 7, priority: 9, hairpin: true, learning: false, unicastFlood: false, multicastFlood: false, broadcastFlood: false, isolated: true, bpduGuard: true, rootBlock: true, neighSuppress: true,
        vlans: [{ vid: "20-22" }, { vid: 10, pvid: true, untagged: true }, { vid: 23, untagged: false }, { vid: 30, untagged: true }] },
    });
    expect(v.bridgePort.vlans).toEqual([{ vid: 10, pvid: true, untagged: true }, { vid: "20-23" }, { vid: 30, untagged: true }]);
    expect((await accepted({ bridgePort: { vlans: [] } })).bridgePort).toEqual({ vlans: [] });
    await accepted({ bridgePort: { cost: 1, priority: 0 } });
    await accepted({ bridgePort: { cost: 65535, priority: 63, vlans: [{ vid: 1 }, { vid: "2-4094" }] } });
    await accepted({ master: "bond0", bondPort: { queueId: 3, priority: -5 } });
    await accepted({ master: "bond0", bondPort: { queueId: 65535, priority: 100 } });
  });

  it("rejects bad values, naming the field and the value", async () => {
    await rejected({ bridgePort: { cost: 0 } }, "bridgePort.cost", "at least 1 (got 0)");
    await rejected({ bridgePort: { cost: 65536 } }, "bridgePort.cost", "at most 65535");
    await rejected({ bridgePort: { priority: 64 } }, "bridgePort.priority", "at most 63 (got 64)");
    for (const f of ["hairpin", "learning", "unicastFlood", "multicastFlood", "broadcastFlood", "isolated", "bpduGuard", "rootBlock", "neighSuppress"])
      await rejected({ bridgePort: { [f]: "on" } }, `bridgePort.${f}`, 'got "on"');
    await rejected({ bridgePort: { stp: true } }, "bridgePort", 'unknown field "bridgePort.stp"');
    await rejected({ bridgePort: { vlans: [{ vid: 0 }] } }, "bridgePort.vlans[0].vid");
    await rejected({ bridgePort: { vlans: [{ vid: 4095 }] } }, "bridgePort.vlans[0].vid");
    await rejected({ bridgePort: { vlans: [{ vid: "110-100" }] } }, "bridgePort.vlans[0].vid");
    await rejected({ bridgePort: { vlans: [{ vid: "1-5000" }] } }, "bridgePort.vlans[0].vid");
    await rejected({ bridgePort: { vlans: [{ vid: "20-22", pvid: true }] } }, "bridgePort.vlans[0].pvid", "cannot be set on a range");
    await rejected({ bridgePort: { vlans: [{ vid: 10 }, { vid: "5-12" }] } }, "bridgePort.vlans[1].vid", "overlaps entry 0 (VLAN 10 listed twice)");
    await rejected({ bridgePort: { vlans: [{ vid: 10, pvid: true }, { vid: 11, pvid: true }] } }, "bridgePort.vlans", "2 entries with pvid: true");
    await rejected({ bridgePort: { vlans: [{ vid: 10, tagged: true }] } }, "bridgePort.vlans[0]", "unknown field");
    await rejected({ bridgePort: { vlans: [{ vid: 10, untagged: 1 }] } }, "bridgePort.vlans[0].untagged");
    await rejected({ master: undefined, bridgePort: { cost: 5 } }, "bridgePort", "needs master");
    await rejected({ master: undefined, bondPort: { queueId: 1 } }, "bondPort", "needs master");
    await rejected({ bridgePort: { cost: 5 }, bondPort: { queueId: 1 } }, "bondPort", "one master");
    await rejected({ bondPort: { queueId: -1 } }, "bondPort.queueId", "at least 0");
    await rejected({ bondPort: { queueId: 65536 } }, "bondPort.queueId", "at most 65535");
    await rejected({ bondPort: { priority: 1.5 } }, "bondPort.priority", "whole number");
    await rejected({ bondPort: { mode: 1 } }, "bondPort", "unknown field");
  });

  it("Bridge.vlans takes the same set", async () => {
    const { accepted: ok, rejected: bad } = kindChecks("Bridge", { connection: conn, name: "br0" });
    expect((await ok({ vlanFiltering: true, vlans: [{ vid: 1, pvid: true, untagged: true }, { vid: 10 }] })).vlans).toEqual([{ vid: 1, pvid: true, untagged: true }, { vid: 10 }]);
    await bad({ vlans: [{ vid: "x" }] }, "vlans[0].vid");
  });
});

describe("parsers on recorded output", () => {
  it("bridge -j vlan show: a port's set, a bridge's own set, a trunk as one range", () => {
    const all = JSON.parse(raw("bridge-vlan-show"));
    expect(parseVlans(all, "dum10")).toEqual([{ vid: 10, pvid: true, untagged: true }]);
    expect(parseVlans(all, "dum11")).toEqual([{ vid: 1, pvid: true, untagged: true }, { vid: 10 }, { vid: "20-22" }]);
    expect(parseVlans(all, "brv")).toEqual([{ vid: 1, pvid: true, untagged: true }, { vid: 10 }]);
    expect(parseVlans(JSON.parse(raw("bridge-vlan-show-trunk")), "dum11")).toEqual([{ vid: 1, pvid: true, untagged: true }, { vid: 10 }, { vid: "20-22" }]);
    expect(parseVlans([], "dum11")).toEqual([]);
    expect(parseVlans([{ ifname: "x", vlans: [{ vlan: 5, vlanEnd: 7, flags: ["Egress Untagged"] }] }], "x")).toEqual([{ vid: "5-7", untagged: true }]);
  });

  it("info_slave_data: bridge port options and bond slave options, only the asked-for keys", async () => {
    const t = new FakeTransport();
    expect(await portState(t, { name: "dum11", master: "brv", bridgePort: { cost: 7, priority: 9, hairpin: true, learning: false, unicastFlood: false, multicastFlood: false, broadcastFlood: false, isolated: true, bpduGuard: true, rootBlock: true, neighSuppress: true } }, link("bridge-port-options")))
      .toEqual({ bridgePort: { cost: 7, priority: 9, hairpin: true, learning: false, unicastFlood: false, multicastFlood: false, broadcastFlood: false, isolated: true, bpduGuard: true, rootBlock: true, neighSuppress: true } });
    expect(await portState(t, { name: "dum10", master: "brv", bridgePort: { cost: 5, learning: true } }, link("bridge-port-default"))).toEqual({ bridgePort: { cost: 100, learning: true } });
    expect(await portState(t, { name: "dum12", master: "bnd9", bondPort: { queueId: 3, priority: 5 } }, link("bond-port-options"))).toEqual({ bondPort: { queueId: 3, priority: 5 } });
    expect(t.calls).toEqual([]);
  });

  it("reads a port's VLANs with bridge -j vlan show, and predicts them for a device about to join", async () => {
    const t = new FakeTransport();
    t.on(["bridge", "-j", "vlan", "show", "dev", "dum11"], { stdout: raw("bridge-vlan-show-trunk") });
    expect(await portState(t, { name: "dum11", master: "brv", bridgePort: { vlans: [] } }, link("bridge-port-options"))).toEqual({ bridgePort: { vlans: [{ vid: 1, pvid: true, untagged: true }, { vid: 10 }, { vid: "20-22" }] } });
    // Not a port yet: the kernel will give it the bridge's default PVID on joining.
    const br = { ...JSON.parse(raw("bridge-timers"))[0], ifname: "brv" };
    br.linkinfo.info_data.vlan_default_pvid = 7;
    t.on(["ip", "-j", "-d", "addr", "show", "dev", "brv"], { stdout: JSON.stringify([br]) });
    expect(await portState(t, { name: "eth0", master: "brv", bridgePort: { vlans: [] } }, link("vm-eth0"))).toEqual({ bridgePort: { vlans: [{ vid: 7, pvid: true, untagged: true }] } });
  });
});

describe("planned lines", () => {
  it("vlanSteps: removals, then additions and flag changes, as ranges", () => {
    const have = [{ vid: 1, pvid: true, untagged: true }, { vid: 10 }, { vid: "20-22" }];
    expect(vlanSteps(undefined, "dum11", [{ vid: 10, pvid: true, untagged: true }, { vid: "20-23" }], have)).toEqual([
      ["bridge", "vlan", "del", "vid", "1", "dev", "dum11"],
      ["bridge", "vlan", "add", "vid", "10", "dev", "dum11", "pvid", "untagged"],
      ["bridge", "vlan", "add", "vid", "23", "dev", "dum11"],
    ]);
    expect(vlanSteps("n1", "br0", [{ vid: 10 }], [{ vid: 1, pvid: true, untagged: true }], true)).toEqual([
      ["bridge", "-n", "n1", "vlan", "del", "vid", "1", "dev", "br0", "self"],
      ["bridge", "-n", "n1", "vlan", "add", "vid", "10", "dev", "br0", "self"],
    ]);
    expect(vlanSteps(undefined, "p", have, have)).toEqual([]);
  });

  it("portSteps: one option per line, only what differs", () => {
    const d = { name: "tap0", bridgePort: { cost: 7, hairpin: true, learning: true, unicastFlood: false, bpduGuard: true, neighSuppress: false, vlans: [{ vid: 10 }] } };
    expect(portSteps(d, [{ field: "bridgePort", desired: d.bridgePort, actual: { cost: 100, hairpin: false, learning: true, unicastFlood: true, bpduGuard: false, neighSuppress: true, vlans: [{ vid: 10 }] } }])).toEqual([
      ["ip", "link", "set", "dev", "tap0", "type", "bridge_slave", "cost", "7"],
      ["ip", "link", "set", "dev", "tap0", "type", "bridge_slave", "hairpin", "on"],
      ["ip", "link", "set", "dev", "tap0", "type", "bridge_slave", "flood", "off"],
      ["ip", "link", "set", "dev", "tap0", "type", "bridge_slave", "guard", "on"],
      ["ip", "link", "set", "dev", "tap0", "type", "bridge_slave", "neigh_suppress", "off"],
    ]);
    const all = { priority: 9, multicastFlood: false, broadcastFlood: false, isolated: true, rootBlock: true };
    expect(portSteps({ name: "p", namespace: "n", bridgePort: all }, [{ field: "bridgePort", desired: all, actual: {} }]).map((a) => a.slice(9).join(" "))).toEqual(
      ["priority 9", "mcast_flood off", "bcast_flood off", "isolated on", "root_block on"]);
    expect(portSteps({ name: "s", bondPort: { queueId: 3, priority: 5 } }, [{ field: "bondPort", desired: { queueId: 3, priority: 5 }, actual: { queueId: 0, priority: 5 } }])).toEqual([
      ["ip", "link", "set", "dev", "s", "type", "bond_slave", "queue_id", "3"],
    ]);
  });
});

describe("through the engine (scripted transport)", () => {
  let fake: FakeTransport;
  beforeEach(() => {
    fake = installFake();
  });
  afterEach(restoreTransport);

  it("update plans the port's options and VLANs after the kind's own changes, and verifies them", async () => {
    // A tap (recorded) as a port of brv, with the port data recorded for dum10.
    const tap = link("tap-numeric-owner");
    Object.assign(tap, { ifname: "tap0", master: "brv", flags: [...tap.flags, "UP"] });
    Object.assign(tap.linkinfo!, { info_slave_kind: "bridge", info_slave_data: link("bridge-port-default").linkinfo!.info_slave_data });
    let vlans = [{ ifname: "tap0", vlans: [{ vlan: 1, flags: ["PVID", "Egress Untagged"] }] }];
    let batch = "";
    fake.on(["ip", "-j", "-d", "addr", "show", "dev", "tap0"], () => ({ stdout: JSON.stringify([tap]) }));
    fake.on(["bridge", "-j", "vlan", "show", "dev", "tap0"], () => ({ stdout: JSON.stringify(vlans) }));
    fake.on(["ip", "link", "set", "dev", "tap0", "type", "bridge_slave", "cost", "7"], () => {
      (tap.linkinfo!.info_slave_data as any).cost = 7;
      return {};
    });
    fake.on(["bridge", "-batch", "-"], (_a, o) => {
      batch = o.stdin ?? "";
      vlans = [{ ifname: "tap0", vlans: [{ vlan: 10, flags: ["PVID", "Egress Untagged"] }] }];
      return {};
    });
    const rt = provider("TapDevice");
    const news = (await rt.check({}, { connection: conn, name: "tap0", master: "brv", owner: tap.linkinfo!.info_data!.user, bridgePort: { cost: 7, vlans: [{ vid: 10, pvid: true, untagged: true }] } })).inputs;
    const { outs } = await rt.update("id", {}, news);
    expect(batch).toBe("vlan del vid 1 dev tap0\nvlan add vid 10 dev tap0 pvid untagged\n");
    expect(outs.bridgePort).toEqual({ cost: 7, vlans: [{ vid: 10, pvid: true, untagged: true }] });
  });
});
