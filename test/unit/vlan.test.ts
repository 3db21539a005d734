// Vlan: check() of every field, argv of create/update, parsing of JSON recorded
// from the VM's kernel (6.1), diff classification, and verify-after-write catching
// the kernel's silent no-op on an id change (over a scripted fake host).
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { LinkEngine, setTransportFactory } from "../../provider/engine";
import { VerificationError } from "../../provider/errors";
import type { LinkJson } from "../../provider/iproute/link";
import { mapOf, mappings, vlan } from "../../provider/kinds/vlan";
import type { Mismatch } from "../../provider/kinds/types";
import { provider } from "../../provider/runtime";
import { UNKNOWN } from "../../provider/schema";
import { FakeTransport } from "../../provider/transport/fake";
import { SshTransport } from "../../provider/transport/ssh";
import { kindChecks } from "../support/unit";

const conn = { host: "192.0.2.10" };
const base = { connection: conn, name: "v10", parent: "eth0", vlanId: 10 };
const rt = provider("Vlan");

function fixture(name: string): LinkJson {
  return JSON.parse(readFileSync(join(__dirname, "../fixtures/iproute", `${name}.json`), "utf8"))[0];
}
const mm = (field: string, desired: unknown, actual?: unknown): Mismatch => ({ field, desired, actual });

const { check, accepted, rejected } = kindChecks("Vlan", base);

describe("Vlan check", () => {
  it("minimal inputs get the defaults", async () => {
    const v = await accepted({});
    expect(v).toMatchObject({ name: "v10", parent: "eth0", vlanId: 10, protocol: "802.1Q", up: true, adopt: false });
    expect(v).not.toHaveProperty("reorderHdr");
    expect(v).not.toHaveProperty("ingressQosMap");
  });

  it("parent and vlanId are required", async () => {
    await rejected({ parent: undefined }, "parent");
    await rejected({ vlanId: undefined }, "vlanId");
  });

  it("parent: an interface name, not the VLAN itself", async () => {
    for (const p of ["bond0", "eth0.100", "br-lan"]) expect((await accepted({ parent: p })).parent).toBe(p);
    for (const p of ["", "a".repeat(16), "a b", "$(x)", "-x", 3]) await rejected({ parent: p }, "parent");
    await rejected({ parent: "v10" }, "parent", "must not be the VLAN device itself");
  });

  it("vlanId: whole numbers 1–4094", async () => {
    for (const id of [1, 100, 4094]) expect((await accepted({ vlanId: id })).vlanId).toBe(id);
    for (const id of [0, 4095, 65536, -1, 1.5, "10", null]) {
      const f = await rejected({ vlanId: id }, "vlanId");
      expect(f.reason).toContain(JSON.stringify(id));
    }
  });

  it("protocol: 802.1Q or 802.1ad", async () => {
    expect((await accepted({ protocol: "802.1ad" })).protocol).toBe("802.1ad");
    for (const p of ["802.1q", "802.1AD", "qinq", 0x88a8]) await rejected({ protocol: p }, "protocol");
  });

  it("flags are booleans", async () => {
    for (const f of ["reorderHdr", "gvrp", "mvrp", "looseBinding"]) {
      expect((await accepted({ [f]: false }))[f]).toBe(false);
      expect((await accepted({ [f]: true }))[f]).toBe(true);
      await rejected({ [f]: "on" }, f);
      await rejected({ [f]: 1 }, f);
    }
  });

  it("ingressQosMap: VLAN priority 0–7 → skb priority u32; zero entries dropped, keys normalised", async () => {
    expect((await accepted({ ingressQosMap: { "0": 1, "7": 4294967295, "3": 0 } })).ingressQosMap).toEqual({ "0": 1, "7": 4294967295 });
    expect((await accepted({ ingressQosMap: {} })).ingressQosMap).toEqual({});
    await rejected({ ingressQosMap: { "8": 1 } }, "ingressQosMap", 'key "8" is not one of the VLAN priorities');
    await rejected({ ingressQosMap: { "01": 1 } }, "ingressQosMap", 'key "01"');
    await rejected({ ingressQosMap: { "-1": 1 } }, "ingressQosMap", 'key "-1"');
    await rejected({ ingressQosMap: { x: 1 } }, "ingressQosMap", 'key "x"');
    await rejected({ ingressQosMap: { "1": 4294967296 } }, "ingressQosMap.1", "packet priorities");
    await rejected({ ingressQosMap: { "1": -1 } }, "ingressQosMap.1");
    await rejected({ ingressQosMap: { "1": 1.5 } }, "ingressQosMap.1");
    await rejected({ ingressQosMap: ["1:2"] }, "ingressQosMap");
  });

  it("egressQosMap: skb priority u32 → VLAN priority 0–7", async () => {
    expect((await accepted({ egressQosMap: { "4294967295": 7, "5": 6, "6": 0 } })).egressQosMap).toEqual({ "4294967295": 7, "5": 6 });
    await rejected({ egressQosMap: { "5": 8 } }, "egressQosMap.5", "VLAN priorities (0–7)");
    await rejected({ egressQosMap: { "4294967296": 1 } }, "egressQosMap", 'key "4294967296" is not one of the packet priorities');
    await rejected({ egressQosMap: { "1e3": 1 } }, "egressQosMap", 'key "1e3"');
  });

  it("unknown fields are refused; preview placeholders are accepted", async () => {
    await rejected({ vlanID: 5 }, "vlanID", "unknown field");
    for (const f of ["parent", "vlanId", "protocol", "gvrp", "ingressQosMap"]) {
      const r = await check({ [f]: UNKNOWN });
      expect(r.failures, f).toEqual([]);
    }
  });
});

describe("Vlan argv", () => {
  it("create: minimal, then every option (maps sorted by key)", () => {
    expect(vlan.createArgv({ name: "v10", parent: "eth0", vlanId: 10, protocol: "802.1Q" })).toEqual([
      ["ip", "link", "add", "link", "eth0", "name", "v10", "type", "vlan", "id", "10", "protocol", "802.1Q"],
    ]);
    expect(vlan.createArgv({
      name: "v20", namespace: "ns1", parent: "bond0", vlanId: 20, protocol: "802.1ad", mtu: 1496, macAddress: "02:00:00:00:00:20",
      reorderHdr: false, gvrp: true, mvrp: false, looseBinding: true,
      ingressQosMap: { "3": 4, "1": 2 }, egressQosMap: { "100000": 7, "5": 6 },
    })).toEqual([[
      "ip", "-n", "ns1", "link", "add", "link", "bond0", "name", "v20", "mtu", "1496", "address", "02:00:00:00:00:20",
      "type", "vlan", "id", "20", "protocol", "802.1ad",
      "reorder_hdr", "off", "gvrp", "on", "mvrp", "off", "loose_binding", "on",
      "ingress-qos-map", "1:2", "3:4", "egress-qos-map", "5:6", "100000:7",
    ]]);
  });

  it("create: empty maps send nothing", () => {
    expect(vlan.createArgv({ name: "v10", parent: "eth0", vlanId: 10, protocol: "802.1Q", ingressQosMap: {}, egressQosMap: {} })).toEqual([
      ["ip", "link", "add", "link", "eth0", "name", "v10", "type", "vlan", "id", "10", "protocol", "802.1Q"],
    ]);
  });

  it("update: one line per field; maps send only differences, removals as FROM:0", () => {
    const d = { name: "v20", namespace: "ns1", parent: "dummy1", vlanId: 20, protocol: "802.1ad", reorderHdr: true, gvrp: false, ingressQosMap: { "1": 2 }, egressQosMap: { "5": 3, "9": 1 } };
    const link = fixture("vlan-qinq-flags-qos");
    const actual = vlan.readFields(link);
    expect(vlan.updateArgv(d, [
      mm("reorderHdr", true, false), mm("gvrp", false, true),
      mm("ingressQosMap", d.ingressQosMap, actual.ingressQosMap), mm("egressQosMap", d.egressQosMap, actual.egressQosMap),
    ])).toEqual([
      ["ip", "-n", "ns1", "link", "set", "dev", "v20", "type", "vlan", "reorder_hdr", "on"],
      ["ip", "-n", "ns1", "link", "set", "dev", "v20", "type", "vlan", "gvrp", "off"],
      ["ip", "-n", "ns1", "link", "set", "dev", "v20", "type", "vlan", "ingress-qos-map", "3:0"],
      ["ip", "-n", "ns1", "link", "set", "dev", "v20", "type", "vlan", "egress-qos-map", "5:3", "7:0", "9:1", "100000:0"],
    ]);
    expect(vlan.updateArgv(d, [])).toEqual([]);
  });

  it("update: id and protocol are sent (the kernel ignores them; verification reports it), parent has no command", () => {
    const d = { name: "v10", parent: "dummy1", vlanId: 11, protocol: "802.1ad" };
    expect(vlan.updateArgv(d, [mm("vlanId", 11, 10), mm("protocol", "802.1ad", "802.1Q"), mm("parent", "dummy1", "dummy0")])).toEqual([
      ["ip", "link", "set", "dev", "v10", "type", "vlan", "id", "11"],
      ["ip", "link", "set", "dev", "v10", "type", "vlan", "protocol", "802.1ad"],
    ]);
  });

  it("mappings/mapOf helpers", () => {
    expect(mappings({ "2": 1 }, undefined)).toEqual(["2:1"]);
    expect(mappings({}, { "2": 1, "10": 3 })).toEqual(["2:0", "10:0"]);
    expect(mappings({ "2": 1 }, { "2": 1 })).toEqual([]);
    expect(mapOf(undefined)).toEqual({});
    expect(mapOf([{ from: 100000, to: 7 }, { from: 5, to: 6 }])).toEqual({ "5": 6, "100000": 7 });
  });
});

describe("Vlan parsing (JSON recorded from the VM kernel)", () => {
  it("defaults: REORDER_HDR only, no maps", () => {
    expect(vlan.readFields(fixture("vlan-default"))).toEqual({
      parent: "dummy0", vlanId: 10, protocol: "802.1Q",
      reorderHdr: true, gvrp: false, mvrp: false, looseBinding: false,
      ingressQosMap: {}, egressQosMap: {},
    });
  });

  it("802.1ad with flags and both maps", () => {
    expect(vlan.readFields(fixture("vlan-qinq-flags-qos"))).toEqual({
      parent: "dummy1", vlanId: 20, protocol: "802.1ad",
      reorderHdr: false, gvrp: true, mvrp: true, looseBinding: true,
      ingressQosMap: { "1": 2, "3": 4 }, egressQosMap: { "5": 6, "7": 1, "100000": 7 },
    });
  });

  it("no flags at all: the kernel omits the flags key", () => {
    const link = fixture("vlan-noflags");
    expect(link.linkinfo?.info_data).not.toHaveProperty("flags");
    expect(vlan.readFields(link)).toMatchObject({ vlanId: 30, reorderHdr: false, gvrp: false, mvrp: false, looseBinding: false });
  });
});

describe("Vlan diff", () => {
  const olds = { ...base, connection: conn, protocol: "802.1Q", up: true, reorderHdr: true, gvrp: false, ingressQosMap: {}, egressQosMap: { "5": 6 } };
  const diff = async (extra: Record<string, unknown>, from: Record<string, unknown> = olds) =>
    rt.diff("id", from, (await rt.check(from, { ...base, ...extra })).inputs);

  it("no change", async () => {
    expect(await diff({ egressQosMap: { "5": 6 } })).toEqual({ changes: false, replaces: [], deleteBeforeReplace: true });
  });

  it("flags and maps change in place", async () => {
    for (const extra of [{ reorderHdr: false }, { gvrp: true }, { mvrp: true }, { looseBinding: true }, { ingressQosMap: { "1": 1 } }, { egressQosMap: {} }, { egressQosMap: { "5": 7 } }])
      expect(await diff(extra), JSON.stringify(extra)).toEqual({ changes: true, replaces: [], deleteBeforeReplace: true });
  });

  it("id, protocol and parent replace the device (delete first: the name exists once)", async () => {
    expect(await diff({ vlanId: 11 })).toEqual({ changes: true, replaces: ["vlanId"], deleteBeforeReplace: true });
    expect((await diff({ protocol: "802.1ad" })).replaces).toEqual(["protocol"]);
    expect((await diff({ parent: "eth1" })).replaces).toEqual(["parent"]);
  });

  it("a zero mapping is no change (the kernel never reports it)", async () => {
    expect((await diff({ egressQosMap: { "5": 6, "4": 0 } })).changes).toBe(false);
  });
});

describe("Vlan update through the engine (fake host)", () => {
  afterEach(() => setTransportFactory((c) => new SshTransport(c)));

  it("an id change the kernel silently ignores ends in a VerificationError naming vlanId", async () => {
    const link = fixture("vlan-default"); // v10, id 10, on dummy0
    const t = new FakeTransport("fake-vm");
    t.on(["ip", "-j", "-d", "addr", "show"], { stdout: JSON.stringify([link]) });
    t.on(["ip", "link", "set", "dev", "v10", "type", "vlan", "id", "11"], {}); // exit 0, and nothing changes
    setTransportFactory(() => t);
    const inputs = (await rt.check({}, { connection: conn, name: "v10", parent: "dummy0", vlanId: 11 })).inputs;
    const err = await new LinkEngine(vlan).update("id", {}, inputs).catch((e) => e);
    expect(err).toBeInstanceOf(VerificationError);
    expect(err).toMatchObject({ field: "vlanId", desired: 11, actual: 10 });
    const writes = t.calls.filter((c) => !c.argv.includes("show"));
    expect(writes.map((c) => c.argv)).toEqual([["ip", "link", "set", "dev", "v10", "type", "vlan", "id", "11"]]);
  });
});
