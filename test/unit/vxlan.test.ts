// Vxlan: check of every field, argv golden arrays (create, in-place update, FDB
// reconcile plan), parsers over JSON recorded from a real kernel, diff
// classification, and the engine's update path over a fake transport that keeps
// an FDB, to show that peers which stay are never deleted and re-added.
import * as fs from "node:fs";
import * as path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { setTransportFactory } from "../../provider/engine";
import { floodAppendArgv, floodDelArgv, floodDestinations, type FdbJson, readFdb } from "../../provider/iproute/fdb";
import type { LinkJson } from "../../provider/iproute/link";
import type { Desired, Mismatch } from "../../provider/kinds/types";
import { vxlan } from "../../provider/kinds/vxlan";
import { provider } from "../../provider/runtime";
import { SshTransport } from "../../provider/transport/ssh";
import { FakeTransport } from "../../provider/transport/fake";
import { UNKNOWN } from "../../provider/schema";

const conn = { host: "192.0.2.10" };
const base = { connection: conn, name: "vx0", vni: 42 };
const rt = provider("Vxlan");

const FIXTURES = path.join(__dirname, "../fixtures/iproute");
function fixture<T = any>(name: string): T {
  return JSON.parse(fs.readFileSync(path.join(FIXTURES, name), "utf8"));
}

async function check(extra: Record<string, unknown>, omit: string[] = []) {
  const inputs: Record<string, unknown> = { ...base, ...extra };
  for (const k of omit) delete inputs[k];
  return rt.check({}, inputs);
}

async function accepted(extra: Record<string, unknown>): Promise<Record<string, any>> {
  const r = await check(extra);
  expect(r.failures, JSON.stringify(extra)).toEqual([]);
  return r.inputs;
}

/** The failure on `property`; asserts the reason names it. */
async function rejected(extra: Record<string, unknown>, property: string, omit: string[] = []) {
  const r = await check(extra, omit);
  const f = r.failures.find((x) => x.property === property);
  expect(f, `${JSON.stringify(extra)} should fail on ${property}; got ${JSON.stringify(r.failures)}`).toBeDefined();
  expect(f!.reason).toContain(property);
  return f!;
}

describe("Vxlan check", () => {
  // [field, accepted values (with the value after check when it differs), rejected values]
  const cases: [string, [unknown, unknown?][], unknown[]][] = [
    ["vni", [[0], [4242], [16_777_215]], [16_777_216, 2 ** 24 + 5, -1, 1.5, "42", null, true]],
    ["local", [["192.0.2.1"], ["2001:DB8:0::1", "2001:db8::1"]], ["bad", "192.0.2.256", "239.1.1.1", "ff02::1", "0.0.0.0", "::", "fe80::1%eth0", "192.0.2.1/24", 5]],
    ["remote", [["198.51.100.7"], ["2001:db8::7"]], ["224.0.0.1", "ff05::1", "0.0.0.0", "::", "nope", "", 7]],
    ["dev", [["eth0"], ["bond0.100"]], ["a".repeat(16), "a b", "$(x)", "-x", "", 3]],
    ["dstPort", [[1], [4789], [8472], [65535]], [0, 65536, 4789.5, "4789", -1]],
    ["ttl", [[1], [64], [255], ["auto"], ["inherit"]], [0, 256, 1.5, "64", "Inherit", "", -1]],
    ["tos", [[0], [2], [0x10], [255], ["inherit"]], [1, 256, -1, 2.5, "0x10", "inherit ", null]],
    ["learning", [[true], [false]], ["yes", 1, null]],
    ["ageing", [[1], [300], [4_294_967_295]], [0, 4_294_967_296, 1.5, "300", -5]],
  ];
  for (const [field, good, bad] of cases) {
    it(field, async () => {
      for (const [value, want] of good) expect((await accepted({ [field]: value }))[field]).toEqual(want === undefined ? value : want);
      for (const value of bad) {
        const f = await rejected({ [field]: value }, field);
        if (!Array.isArray(value)) expect(f.reason).toContain(JSON.stringify(value));
      }
    });
  }

  it("vni is required; unknown fields are refused", async () => {
    await rejected({}, "vni", ["vni"]);
    await rejected({ srcPort: 1000 }, "srcPort");
  });

  it("dstPort defaults to 4789 (IANA), not iproute2's 8472", async () => {
    expect((await accepted({})).dstPort).toBe(4789);
  });

  it("group: multicast only, needs dev, excludes remote", async () => {
    expect(await accepted({ group: "239.1.1.1", dev: "eth0" })).toMatchObject({ group: "239.1.1.1", dev: "eth0" });
    expect((await accepted({ group: "FF05::100", dev: "eth0" })).group).toBe("ff05::100");
    expect((await rejected({ group: "239.1.1.1" }, "dev")).reason).toMatch(/required with group/);
    expect((await rejected({ group: "10.0.0.1", dev: "eth0" }, "group")).reason).toMatch(/multicast.*use remote/);
    expect((await rejected({ group: "2001:db8::1", dev: "eth0" }, "group")).reason).toMatch(/multicast/);
    expect((await rejected({ group: "239.1.1.1", dev: "eth0", remote: "192.0.2.2" }, "group")).reason).toMatch(/together with remote/);
    expect((await rejected({ remote: "239.1.1.1" }, "remote")).reason).toMatch(/use group and dev/);
  });

  it("remotes: unicast peers, canonical and sorted, no duplicates, not the remote", async () => {
    expect((await accepted({ remotes: ["192.0.2.3", "192.0.2.10", "192.0.2.2"] })).remotes).toEqual(["192.0.2.10", "192.0.2.2", "192.0.2.3"]);
    expect((await accepted({ remotes: ["2001:DB8::3", "2001:db8::2"] })).remotes).toEqual(["2001:db8::2", "2001:db8::3"]);
    expect((await accepted({ remotes: [] })).remotes).toEqual([]);
    expect((await accepted({ remote: "192.0.2.2", remotes: ["192.0.2.3"] })).remotes).toEqual(["192.0.2.3"]);
    expect((await rejected({ remotes: ["192.0.2.2", "192.0.2.2"] }, "remotes")).reason).toMatch(/duplicate/);
    expect((await rejected({ remotes: ["2001:db8::2", "2001:DB8:0::2"] }, "remotes")).reason).toMatch(/duplicate/);
    expect((await rejected({ remotes: ["192.0.2.2", "239.1.1.1"] }, "remotes")).reason).toMatch(/239\.1\.1\.1 is a multicast/);
    expect((await rejected({ remotes: ["0.0.0.0"] }, "remotes")).reason).toMatch(/unspecified/);
    expect((await rejected({ remotes: ["192.0.2.2", "nope"] }, "remotes[1]")).reason).toContain('"nope"');
    expect((await rejected({ remote: "192.0.2.2", remotes: ["192.0.2.2"] }, "remotes")).reason).toMatch(/must not contain remote/);
    await rejected({ remotes: "192.0.2.2" }, "remotes");
  });

  it("one address family across local, remote, group and remotes", async () => {
    expect((await rejected({ local: "192.0.2.1", remote: "2001:db8::2" }, "remote")).reason).toMatch(/same address family as local \(192\.0\.2\.1\)/);
    await rejected({ local: "2001:db8::1", group: "239.1.1.1", dev: "eth0" }, "group");
    await rejected({ local: "192.0.2.1", remotes: ["192.0.2.2", "2001:db8::3"] }, "remotes");
    await rejected({ remotes: ["192.0.2.2", "2001:db8::3"] }, "remotes");
    await rejected({ remote: "2001:db8::2", remotes: ["192.0.2.3"] }, "remotes");
    await accepted({ local: "2001:db8::1", group: "ff05::1", dev: "eth0", remotes: ["2001:db8::9"] });
  });

  it("the preview placeholder is accepted wherever a value may be unknown", async () => {
    for (const extra of [{ vni: UNKNOWN }, { local: UNKNOWN, remote: "2001:db8::2" }, { remotes: UNKNOWN }, { remotes: ["192.0.2.2", UNKNOWN] },
      { group: UNKNOWN, dev: "eth0" }, { group: "239.1.1.1", dev: UNKNOWN }, { ttl: UNKNOWN }, { dev: UNKNOWN }]) {
      expect((await check(extra)).failures, JSON.stringify(extra)).toEqual([]);
    }
  });
});

/** Validated inputs, as the engine hands them to the kind. */
async function desired(extra: Record<string, unknown>): Promise<Desired> {
  return (await accepted(extra)) as Desired;
}

describe("Vxlan argv", () => {
  it("create: every option, always an explicit dstport", async () => {
    const d = await desired({ namespace: "ns1", mtu: 1450, macAddress: "02:00:00:00:0A:01", local: "192.0.2.1", remote: "192.0.2.2", dev: "eth0", ttl: 32, tos: 0x10, learning: false, ageing: 120, remotes: ["192.0.2.3"] });
    expect(vxlan.createArgv(d)).toEqual([
      ["ip", "-n", "ns1", "link", "add", "name", "vx0", "mtu", "1450", "address", "02:00:00:00:0a:01", "type", "vxlan", "id", "42",
        "local", "192.0.2.1", "remote", "192.0.2.2", "dev", "eth0", "dstport", "4789", "ttl", "32", "tos", "0x10", "nolearning", "ageing", "120"],
    ]);
  });

  it("create: minimal, multicast group, IPv6, inherit", async () => {
    expect(vxlan.createArgv(await desired({}))).toEqual([["ip", "link", "add", "name", "vx0", "type", "vxlan", "id", "42", "dstport", "4789"]]);
    expect(vxlan.createArgv(await desired({ vni: 0, group: "239.1.1.1", dev: "eth1", dstPort: 8472, ttl: "inherit", tos: "inherit", learning: true }))).toEqual([
      ["ip", "link", "add", "name", "vx0", "type", "vxlan", "id", "0", "group", "239.1.1.1", "dev", "eth1", "dstport", "8472", "ttl", "inherit", "tos", "inherit", "learning"],
    ]);
    expect(vxlan.createArgv(await desired({ vni: 16_777_215, local: "2001:DB8::1", ttl: "auto", tos: 0xfc }))).toEqual([
      ["ip", "link", "add", "name", "vx0", "type", "vxlan", "id", "16777215", "local", "2001:db8::1", "dstport", "4789", "ttl", "auto", "tos", "0xfc"],
    ]);
  });

  const link = fixture<LinkJson[]>("vxlan-headend.json")[0];
  const mm = (field: string, actual: unknown, d: Desired): Mismatch => ({ field, desired: d[field], actual });

  it("update: one change per line, through `ip link set ... type vxlan`", async () => {
    const d = await desired({ namespace: "ns1", local: "192.0.2.5", remote: "192.0.2.9", ttl: 10, tos: "inherit", learning: true, ageing: 30 });
    const steps = vxlan.updateArgv(d, [mm("remote", undefined, d), mm("local", "192.0.2.1", d), mm("ttl", 32, d), mm("tos", 16, d), mm("learning", false, d), mm("ageing", 120, d)], link);
    const set = ["ip", "-n", "ns1", "link", "set", "dev", "vx0", "type", "vxlan"];
    expect(steps).toEqual([
      [...set, "remote", "192.0.2.9"],
      [...set, "local", "192.0.2.5"],
      [...set, "ttl", "10"],
      [...set, "tos", "inherit"],
      [...set, "learning"],
      [...set, "ageing", "30"],
    ]);
    const off = await desired({ learning: false, ttl: "auto", tos: 0 });
    expect(vxlan.updateArgv(off, [mm("learning", true, off), mm("ttl", 5, off), mm("tos", 16, off)], link)).toEqual([
      ["ip", "link", "set", "dev", "vx0", "type", "vxlan", "ttl", "auto"],
      ["ip", "link", "set", "dev", "vx0", "type", "vxlan", "tos", "0x0"],
      ["ip", "link", "set", "dev", "vx0", "type", "vxlan", "nolearning"],
    ]);
  });

  it("update: a group change names dev (iproute2 requires it)", async () => {
    const d = await desired({ group: "239.2.2.2", dev: "eth0" });
    expect(vxlan.updateArgv(d, [mm("group", "239.1.1.1", d)], link)).toEqual([["ip", "link", "set", "dev", "vx0", "type", "vxlan", "group", "239.2.2.2", "dev", "eth0"]]);
  });

  it("FDB plan: deletes only gone peers, appends only new ones, never flushes", async () => {
    const d = await desired({ namespace: "ns1", remotes: ["192.0.2.2", "192.0.2.4", "192.0.2.5"] });
    expect(vxlan.updateArgv(d, [mm("remotes", ["192.0.2.10", "192.0.2.2", "192.0.2.3"], d)], link)).toEqual([
      ["bridge", "-n", "ns1", "fdb", "del", "00:00:00:00:00:00", "dst", "192.0.2.10", "dev", "vx0"],
      ["bridge", "-n", "ns1", "fdb", "del", "00:00:00:00:00:00", "dst", "192.0.2.3", "dev", "vx0"],
      ["bridge", "-n", "ns1", "fdb", "append", "00:00:00:00:00:00", "dst", "192.0.2.4", "dev", "vx0"],
      ["bridge", "-n", "ns1", "fdb", "append", "00:00:00:00:00:00", "dst", "192.0.2.5", "dev", "vx0"],
    ]);
    const empty = await desired({ remotes: [] });
    expect(vxlan.updateArgv(empty, [mm("remotes", ["192.0.2.2"], empty)], link)).toEqual([floodDelArgv(undefined, "vx0", "192.0.2.2")]);
  });

  it("FDB plan: gone peers before a remote change, new peers after it", async () => {
    // A peer becomes the point-to-point remote, and the old remote becomes a peer.
    const d = await desired({ remote: "192.0.2.3", remotes: ["192.0.2.2"] });
    expect(vxlan.updateArgv(d, [mm("remote", "192.0.2.2", d), mm("remotes", ["192.0.2.3"], d)], link)).toEqual([
      floodDelArgv(undefined, "vx0", "192.0.2.3"),
      ["ip", "link", "set", "dev", "vx0", "type", "vxlan", "remote", "192.0.2.3"],
      floodAppendArgv(undefined, "vx0", "192.0.2.2"),
    ]);
  });

  it("FDB plan: an unmanaged remote that becomes a peer is cleared first", async () => {
    const withRemote = fixture<LinkJson[]>("vxlan-remote-dev.json")[0]; // remote 192.0.2.2
    const d = await desired({ remotes: ["192.0.2.2", "192.0.2.3"] });
    expect(vxlan.updateArgv(d, [mm("remotes", ["192.0.2.3"], d)], withRemote)).toEqual([
      ["ip", "link", "set", "dev", "vx0", "type", "vxlan", "remote", "0.0.0.0"],
      floodAppendArgv(undefined, "vx0", "192.0.2.2"),
    ]);
    const v6 = fixture<LinkJson[]>("vxlan-v6.json")[0]; // remote6 2001:db8:1::2
    const d6 = await desired({ remotes: ["2001:db8:1::2"] });
    expect(vxlan.updateArgv(d6, [mm("remotes", [], d6)], v6)[0]).toEqual(["ip", "link", "set", "dev", "vx0", "type", "vxlan", "remote", "::"]);
  });

  it("creation-only fields are refused in place with what to do", async () => {
    const d = await desired({ vni: 43, dstPort: 4790, dev: "eth1" });
    expect(() => vxlan.updateArgv(d, [mm("vni", 42, d)], link)).toThrow(/vni is 42, wanted 43.*only when the device is created.*replace/);
    expect(() => vxlan.updateArgv(d, [mm("dstPort", 4789, d), mm("dev", "eth0", d)], link)).toThrow(/dstPort is 4789, wanted 4790; dev is "eth0", wanted "eth1"/);
    const inherit = await desired({ ttl: "inherit" });
    expect(() => vxlan.updateArgv(inherit, [mm("ttl", 64, inherit)], link)).toThrow(/ttl is 64, wanted "inherit"/);
    const number = await desired({ ttl: 64 });
    expect(() => vxlan.updateArgv(number, [mm("ttl", "inherit", number)], link)).toThrow(/ttl is "inherit", wanted 64/);
  });
});

describe("Vxlan parsers on recorded kernel JSON", () => {
  /** readFields with a fake transport that answers the FDB read with a fixture. */
  async function read(linkFixture: string, fdbFixture: string | undefined, d: Partial<Desired> = {}) {
    const t = new FakeTransport();
    if (fdbFixture) t.on(["bridge"], { stdout: fs.readFileSync(path.join(FIXTURES, fdbFixture), "utf8") });
    else t.on(["bridge"], { code: 255, stderr: 'Cannot find device "vx0"\n' });
    const link = fixture<LinkJson[]>(linkFixture)[0];
    const fields = await vxlan.readFields(link, { transport: t, desired: { name: link.ifname, namespace: "ns1", ...d } });
    return { fields, calls: t.calls };
  }

  it("IPv4 head-end replication device enslaved to a bridge", async () => {
    const { fields, calls } = await read("vxlan-headend.json", "fdb-headend.json");
    expect(calls.map((c) => c.argv)).toEqual([["bridge", "-n", "ns1", "-j", "fdb", "show", "dev", "vx-he"]]);
    expect(fields).toEqual({
      vni: 4242, local: "192.0.2.1", remote: undefined, group: undefined, dev: undefined,
      // The bridge's own entry and the learned/static unicast entry are not peers.
      remotes: ["192.0.2.10", "192.0.2.2", "192.0.2.3"],
      dstPort: 4789, ttl: 32, tos: 0x10, learning: false, ageing: 120,
    });
  });

  it("point-to-point remote with dev: the default destination is not a peer", async () => {
    const { fields } = await read("vxlan-remote-dev.json", "fdb-remote-dev.json");
    expect(fields).toMatchObject({ vni: 100, local: "192.0.2.1", remote: "192.0.2.2", dev: "ul0", remotes: ["192.0.2.3"], ttl: "auto", tos: 0, learning: true, ageing: 300 });
  });

  it("multicast group, ttl and tos inherit (no ttl key in JSON), legacy port", async () => {
    const { fields } = await read("vxlan-group-inherit.json", "fdb-group.json");
    expect(fields).toMatchObject({ vni: 0, group: "239.1.1.1", remote: undefined, dev: "ul0", remotes: [], dstPort: 8472, ttl: "inherit", tos: "inherit" });
  });

  it("IPv6: local6/remote6/group6 keys", async () => {
    expect((await read("vxlan-v6.json", "fdb-v6.json")).fields).toMatchObject({ vni: 16_777_215, local: "2001:db8:1::1", remote: "2001:db8:1::2", remotes: ["2001:db8:1::3"], ttl: "auto" });
    expect((await read("vxlan-group6.json", "fdb-empty.json")).fields).toMatchObject({ vni: 7, group: "ff05::100", dev: "ul0", remotes: [] });
  });

  it("a device gone between the two reads reports no remotes", async () => {
    expect((await read("vxlan-bare.json", undefined)).fields.remotes).toBeUndefined();
  });

  it("readFdb: parses, reports gone, and raises other failures", async () => {
    const t = new FakeTransport().on(["bridge"], { stdout: fs.readFileSync(path.join(FIXTURES, "fdb-v6.json"), "utf8") });
    expect((await readFdb(t, undefined, "vx0"))!.map((e) => e.dst)).toEqual(["2001:db8:1::2", "2001:db8:1::3"]);
    expect(t.calls[0].argv).toEqual(["bridge", "-j", "fdb", "show", "dev", "vx0"]);
    const gone = new FakeTransport().on(["bridge"], { code: 1, stderr: 'Cannot open network namespace "x": No such file or directory' });
    expect(await readFdb(gone, "x", "vx0")).toBeUndefined();
    const broken = new FakeTransport().on(["bridge"], { code: 1, stderr: "Operation not permitted" });
    await expect(readFdb(broken, undefined, "vx0")).rejects.toThrow(/fdb show dev vx0.*Operation not permitted/);
  });

  it("floodDestinations: all-zero entries only, canonical, de-duplicated, sorted, default excluded", () => {
    const entries: FdbJson[] = [
      { mac: "00:00:00:00:00:00", dst: "2001:DB8::2", flags: ["self"] },
      { mac: "00:00:00:00:00:00", dst: "2001:db8::2", viaIf: "eth0", flags: ["self"] },
      { mac: "00:00:00:00:00:00", dst: "2001:db8::1", flags: ["self"] },
      { mac: "02:00:00:00:00:01", dst: "2001:db8::5", flags: ["self"] },
      { mac: "00:00:00:00:00:00", flags: [], master: "br0" },
    ];
    expect(floodDestinations(entries)).toEqual(["2001:db8::1", "2001:db8::2"]);
    expect(floodDestinations(entries, ["2001:db8:0::1", undefined])).toEqual(["2001:db8::2"]);
  });
});

describe("Vxlan diff", () => {
  const olds = { ...base, connection: conn, dstPort: 4789, local: "192.0.2.1", remotes: ["192.0.2.2", "192.0.2.3"], ttl: 64, tos: 0, learning: true, ageing: 300, dev: "eth0", up: true };
  async function diff(news: Record<string, unknown>, from: Record<string, unknown> = olds) {
    const checked = await rt.check(from, { ...from, ...news });
    expect(checked.failures).toEqual([]);
    return rt.diff("id", from, checked.inputs);
  }

  it("in place: peers, local, ttl, tos, learning, ageing", async () => {
    for (const news of [{ remotes: ["192.0.2.2", "192.0.2.3", "192.0.2.4"] }, { remotes: [] }, { local: "192.0.2.9" }, { ttl: 10 }, { ttl: "auto" },
      { tos: "inherit" }, { learning: false }, { ageing: 30 }, { remote: "192.0.2.7" }, { group: "239.1.1.1", remotes: ["192.0.2.2"] }]) {
      expect(await diff(news), JSON.stringify(news)).toEqual({ changes: true, replaces: [], deleteBeforeReplace: true });
    }
    expect(await diff({})).toEqual({ changes: false, replaces: [], deleteBeforeReplace: true });
  });

  it("replace: vni, dstPort, dev", async () => {
    expect((await diff({ vni: 43 })).replaces).toEqual(["vni"]);
    expect((await diff({ dstPort: 8472 })).replaces).toEqual(["dstPort"]);
    expect((await diff({ dev: "eth1" })).replaces).toEqual(["dev"]);
  });

  it("replace: entering or leaving ttl inherit", async () => {
    expect((await diff({ ttl: "inherit" })).replaces).toEqual(["ttl"]);
    expect((await diff({ ttl: 5 }, { ...olds, ttl: "inherit" })).replaces).toEqual(["ttl"]);
    expect((await diff({ ttl: "auto" }, { ...olds, ttl: "inherit" })).replaces).toEqual(["ttl"]);
  });

  it("replace: a change of address family, named by the first field that changes it", async () => {
    expect((await diff({ local: "2001:db8::1", remotes: ["2001:db8::2"] })).replaces).toEqual(["local"]);
    expect((await diff({ local: undefined, remotes: ["2001:db8::2"] })).replaces).toEqual(["remotes"]);
    // A device made without any address is IPv4.
    const bare = { ...base, connection: conn, dstPort: 4789, remotes: [] };
    expect((await diff({ remote: "2001:db8::9" }, bare)).replaces).toEqual(["remote"]);
    expect((await diff({ remote: "192.0.2.9" }, bare)).replaces).toEqual([]);
  });

  it("during preview an unknown value never forces a replacement", async () => {
    const d = await rt.diff("id", olds, { ...olds, local: UNKNOWN, ttl: UNKNOWN, remotes: UNKNOWN });
    expect(d.replaces).toEqual([]);
    expect(d.changes).toBe(true);
  });
});

/**
 * A fake host whose vxlan FDB is state: `bridge -j fdb show` reports it and
 * `bridge fdb append/del` (alone or in `bridge -batch -`) change it.
 */
function fdbHost(initial: string[]) {
  const t = new FakeTransport("fake-vtep");
  const link = fixture<LinkJson[]>("vxlan-headend.json")[0];
  let peers = [...initial];
  const ops: string[] = [];
  const apply = (words: string[]) => {
    const [, op, , , dst] = words; // fdb append|del 00:.. dst <ip> dev <vx>
    ops.push(`${op} ${dst}`);
    if (op === "append" && !peers.includes(dst)) peers.push(dst);
    if (op === "del") peers = peers.filter((p) => p !== dst);
  };
  t.on(["ip"], (argv) => (argv.includes("show") ? { stdout: JSON.stringify([link]) } : { code: 0 }));
  t.on(["bridge"], (argv, opts) => {
    const words = argv[1] === "-n" ? argv.slice(3) : argv.slice(1);
    if (words[0] === "-batch") for (const line of opts.stdin!.trim().split("\n")) apply(line.split(" "));
    else if (words[0] === "fdb") apply(words);
    else return { stdout: JSON.stringify(peers.map((dst) => ({ mac: "00:00:00:00:00:00", dst, flags: ["self"], state: "permanent" }))) };
    return { code: 0 };
  });
  return { t, ops, peers: () => [...peers].sort() };
}

describe("Vxlan update through the engine (fake host with an FDB)", () => {
  afterEach(() => setTransportFactory((c) => new SshTransport(c)));
  const vxIn = { connection: conn, name: "vx-he", namespace: "ns1", vni: 4242, local: "192.0.2.1", ttl: 32, tos: 0x10, learning: false, ageing: 120 };

  it("2 → 3 → 1 peers: one batched command per change, kept peers untouched", async () => {
    const host = fdbHost(["192.0.2.2", "192.0.2.3"]);
    setTransportFactory(() => host.t);
    const up3 = (await rt.check({}, { ...vxIn, remotes: ["192.0.2.2", "192.0.2.3", "192.0.2.4"] })).inputs;
    await rt.update("id", {}, up3);
    expect(host.peers()).toEqual(["192.0.2.2", "192.0.2.3", "192.0.2.4"]);
    expect(host.ops).toEqual(["append 192.0.2.4"]);

    const down1 = (await rt.check({}, { ...vxIn, remotes: ["192.0.2.3"] })).inputs;
    const before = host.t.calls.length;
    const { outs } = await rt.update("id", {}, down1);
    expect(host.peers()).toEqual(["192.0.2.3"]);
    expect(host.ops).toEqual(["append 192.0.2.4", "del 192.0.2.2", "del 192.0.2.4"]);
    expect(outs.remotes).toEqual(["192.0.2.3"]);
    // Both deletions went to the host as one `bridge -n ns1 -batch -`.
    const writes = host.t.calls.slice(before).filter((c) => c.stdin !== undefined);
    expect(writes).toEqual([{
      argv: ["bridge", "-n", "ns1", "-batch", "-"],
      stdin: "fdb del 00:00:00:00:00:00 dst 192.0.2.2 dev vx-he\nfdb del 00:00:00:00:00:00 dst 192.0.2.4 dev vx-he\n",
    }]);
  });

  it("read reports an out-of-band deletion; update restores exactly that peer", async () => {
    const host = fdbHost(["192.0.2.10", "192.0.2.2"]);
    setTransportFactory(() => host.t);
    const inputs = (await rt.check({}, { ...vxIn, remotes: ["192.0.2.10", "192.0.2.2", "192.0.2.3"] })).inputs;
    const refreshed = await rt.read("id", inputs);
    expect(refreshed.props.remotes).toEqual(["192.0.2.10", "192.0.2.2"]);
    expect((await rt.diff("id", refreshed.props, inputs)).replaces).toEqual([]);
    await rt.update("id", refreshed.props, inputs);
    expect(host.ops).toEqual(["append 192.0.2.3"]);
    expect(host.peers()).toEqual(["192.0.2.10", "192.0.2.2", "192.0.2.3"]);
  });
});
