// MacvlanLink and MacvtapLink without a host: check() of every field, the argv
// the kind builds, parsing of `ip -j -d` JSON recorded from this machine's kernel
// (test/fixtures/iproute/macv*.json, made in a network namespace), diff
// classification (passthru is the one mode that replaces), and a full update
// through the engine over the fake transport.
import * as fs from "node:fs";
import * as path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { LinkEngine, setTransportFactory } from "../../provider/engine";
import type { LinkJson } from "../../provider/iproute/link";
import { macvlan, macvtap } from "../../provider/kinds/macvlan";
import { provider } from "../../provider/runtime";
import { UNKNOWN } from "../../provider/schema";
import { SshTransport } from "../../provider/transport/ssh";
import { FakeTransport } from "../../provider/transport/fake";

const conn = { host: "192.0.2.10" };
const KINDS = ["MacvlanLink", "MacvtapLink"] as const;

function fixture(name: string): LinkJson {
  return JSON.parse(fs.readFileSync(path.join(__dirname, "../fixtures/iproute", name), "utf8"))[0];
}

async function check(kind: string, extra: Record<string, unknown>) {
  return provider(kind).check({}, { connection: conn, name: "mv0", parent: "eth0", ...extra });
}

async function failuresOf(kind: string, extra: Record<string, unknown>) {
  return (await check(kind, extra)).failures;
}

afterEach(() => setTransportFactory((c) => new SshTransport(c)));

describe.each(KINDS)("%s check", (kind) => {
  it("requires parent and validates it as a device name", async () => {
    const r = await provider(kind).check({}, { connection: conn, name: "mv0" });
    expect(r.failures.map((f) => f.property)).toEqual(["parent"]);
    for (const bad of ["", "a".repeat(16), "eth0;reboot", "-x", "a b", 7]) {
      const f = await failuresOf(kind, { parent: bad });
      expect(f.length, JSON.stringify(bad)).toBeGreaterThan(0);
      expect(f.every((x) => x.property === "parent"), JSON.stringify(f)).toBe(true);
      expect(f[0].reason).toContain(JSON.stringify(bad));
    }
    expect((await check(kind, { parent: "enp3s0.100" })).inputs.parent).toBe("enp3s0.100");
  });

  it("accepts every mode, defaults to bridge and rejects others", async () => {
    expect((await check(kind, {})).inputs.mode).toBe("bridge");
    for (const mode of ["private", "vepa", "bridge", "passthru", "source"]) {
      const r = await check(kind, { mode });
      expect(r.failures).toEqual([]);
      expect(r.inputs.mode).toBe(mode);
    }
    for (const bad of ["VEPA", "l2", "passthrough", "", 1, null]) {
      const f = await failuresOf(kind, { mode: bad });
      expect(f.map((x) => x.property), JSON.stringify(bad)).toEqual(["mode"]);
    }
  });

  it("takes sourceMacs only in mode source, as a normalised set of unicast addresses", async () => {
    const r = await check(kind, { mode: "source", sourceMacs: ["02:00:00:00:00:1B", "02:00:00:00:00:0a"] });
    expect(r.failures).toEqual([]);
    expect(r.inputs.sourceMacs).toEqual(["02:00:00:00:00:0a", "02:00:00:00:00:1b"]);
    expect((await check(kind, { mode: "source", sourceMacs: [] })).inputs.sourceMacs).toEqual([]);
    // The kernel runs source mode with an empty list; unset means "not managed here".
    const unmanaged = await check(kind, { mode: "source" });
    expect(unmanaged.failures).toEqual([]);
    expect(unmanaged.inputs).not.toHaveProperty("sourceMacs");

    for (const mode of ["bridge", "vepa", "private", "passthru"]) {
      const f = await failuresOf(kind, { mode, sourceMacs: ["02:00:00:00:00:01"] });
      expect(f).toHaveLength(1);
      expect(f[0].property).toBe("sourceMacs");
      expect(f[0].reason).toContain(`mode "${mode}"`);
    }
    // The default mode (bridge) is not source either.
    expect((await failuresOf(kind, { sourceMacs: [] }))[0].reason).toContain('mode "bridge"');

    const cases: [unknown, string][] = [
      [["02:00:00:00:00:01", "02:00:00:00:00:01"], "sourceMacs"],
      [["02:00:00:00:00:01", "02:00:00:00:00:01".toUpperCase()], "sourceMacs"],
      [["01:00:5e:00:00:01"], "sourceMacs[0]"],
      [["02:00:00:00:00:01", "00:00:00:00:00:00"], "sourceMacs[1]"],
      [["02-00-00-00-00-01"], "sourceMacs[0]"],
      ["02:00:00:00:00:01", "sourceMacs"],
    ];
    for (const [value, property] of cases) {
      const f = await failuresOf(kind, { mode: "source", sourceMacs: value });
      expect(f.map((x) => x.property), JSON.stringify(value)).toContain(property);
    }
  });

  it("accepts preview placeholders and refuses unknown fields", async () => {
    expect(await failuresOf(kind, { parent: UNKNOWN, mode: UNKNOWN })).toEqual([]);
    expect(await failuresOf(kind, { mode: "source", sourceMacs: [UNKNOWN] })).toEqual([]);
    const f = await failuresOf(kind, { flag: "private" });
    expect(f).toEqual([{ property: "flag", reason: 'unknown field "flag"' }]);
  });
});

describe("argv", () => {
  const engine = new LinkEngine(macvlan);
  const parse = (inputs: Record<string, unknown>) => engine.schema.parse({ name: "mv0", parent: "eth0", ...inputs }) as any;

  it("creates with parent, mode and the creation-time attributes", () => {
    expect(macvlan.createArgv(parse({}))).toEqual([["ip", "link", "add", "link", "eth0", "name", "mv0", "type", "macvlan", "mode", "bridge"]]);
    expect(macvlan.createArgv(parse({ namespace: "ct1", mtu: 1400, macAddress: "02:00:00:00:10:01", mode: "vepa" }))).toEqual([
      ["ip", "-n", "ct1", "link", "add", "link", "eth0", "name", "mv0", "mtu", "1400", "address", "02:00:00:00:10:01", "type", "macvlan", "mode", "vepa"],
    ]);
    expect(macvtap.createArgv(parse({ mode: "passthru" }))).toEqual([["ip", "link", "add", "link", "eth0", "name", "mv0", "type", "macvtap", "mode", "passthru"]]);
  });

  it("sends the whole source list with one `macaddr set` at creation", () => {
    const d = parse({ mode: "source", sourceMacs: ["02:00:00:00:00:12", "02:00:00:00:00:11"] });
    expect(macvlan.createArgv(d)).toEqual([
      ["ip", "link", "add", "link", "eth0", "name", "mv0", "type", "macvlan", "mode", "source", "macaddr", "set", "02:00:00:00:00:11", "02:00:00:00:00:12"],
    ]);
    expect(macvlan.createArgv(parse({ mode: "source", sourceMacs: [] }))).toEqual([["ip", "link", "add", "link", "eth0", "name", "mv0", "type", "macvlan", "mode", "source"]]);
  });

  it("changes the mode in place, one line per change", () => {
    const d = parse({ namespace: "ct1", mode: "vepa" });
    expect(macvtap.updateArgv(d, [{ field: "mode", desired: "vepa", actual: "bridge" }])).toEqual([
      ["ip", "-n", "ct1", "link", "set", "dev", "mv0", "type", "macvtap", "mode", "vepa"],
    ]);
  });

  it("reconciles sourceMacs with del/add of the difference only", () => {
    const d = parse({ mode: "source", sourceMacs: ["02:00:00:00:00:11", "02:00:00:00:00:aa"] });
    const steps = macvlan.updateArgv(d, [{ field: "sourceMacs", desired: d.sourceMacs, actual: ["02:00:00:00:00:11", "02:00:00:00:00:12", "02:00:00:00:00:13"] }]);
    expect(steps).toEqual([
      ["ip", "link", "set", "dev", "mv0", "type", "macvlan", "macaddr", "del", "02:00:00:00:00:12"],
      ["ip", "link", "set", "dev", "mv0", "type", "macvlan", "macaddr", "del", "02:00:00:00:00:13"],
      ["ip", "link", "set", "dev", "mv0", "type", "macvlan", "macaddr", "add", "02:00:00:00:00:aa"],
    ]);
    // Entering source mode: the kernel starts from an empty list, after the mode line.
    const into = parse({ mode: "source", sourceMacs: ["02:00:00:00:00:11"] });
    expect(macvlan.updateArgv(into, [
      { field: "mode", desired: "source", actual: "bridge" },
      { field: "sourceMacs", desired: into.sourceMacs, actual: undefined },
    ])).toEqual([
      ["ip", "link", "set", "dev", "mv0", "type", "macvlan", "mode", "source"],
      ["ip", "link", "set", "dev", "mv0", "type", "macvlan", "macaddr", "add", "02:00:00:00:00:11"],
    ]);
  });

  it("refuses in-place changes the kernel does not allow", () => {
    expect(() => macvlan.updateArgv(parse({ mode: "passthru" }), [{ field: "mode", desired: "passthru", actual: "bridge" }])).toThrow(/bridge cannot be changed to passthru in place/);
    expect(() => macvlan.updateArgv(parse({ mode: "bridge" }), [{ field: "mode", desired: "bridge", actual: "passthru" }])).toThrow(/passthru cannot be changed to bridge in place/);
    expect(() => macvlan.updateArgv(parse({}), [{ field: "parent", desired: "eth0", actual: "eth1" }])).toThrow(/parent is eth1, not eth0.*replace/);
  });
});

describe("parsing the kernel's JSON", () => {
  const ctx = { transport: new FakeTransport(), desired: { name: "x" } };

  it("reads parent and mode, and no source list outside source mode", async () => {
    expect(await macvlan.readFields(fixture("macvlan-bridge.json"))).toEqual({ parent: "eth0", mode: "bridge", sourceMacs: undefined });
    expect(await macvtap.readFields(fixture("macvtap-vepa.json"))).toEqual({ parent: "eth0", mode: "vepa", sourceMacs: undefined });
    expect(await macvtap.readFields(fixture("macvtap-passthru.json"))).toEqual({ parent: "mvxp", mode: "passthru", sourceMacs: undefined });
  });

  it("reads the source list sorted (the kernel lists newest first) and empty when macaddr_data is absent", async () => {
    const src = fixture("macvlan-source.json");
    expect(src.linkinfo?.info_data?.macaddr_data).toEqual(["02:00:00:00:00:13", "02:00:00:00:00:12", "02:00:00:00:00:11"]);
    expect((await macvlan.readFields(src)).sourceMacs).toEqual(["02:00:00:00:00:11", "02:00:00:00:00:12", "02:00:00:00:00:13"]);
    const empty = fixture("macvlan-source-empty.json");
    expect(empty.linkinfo?.info_data).not.toHaveProperty("macaddr_data");
    expect((await macvlan.readFields(empty)).sourceMacs).toEqual([]);
  });

  it("gives a macvtap its character device path from the ifindex", async () => {
    const engine = new LinkEngine(macvtap);
    const link = fixture("macvtap-vepa.json");
    const outs = await engine.outputs(ctx.transport, { name: "mvt-vepa", parent: "eth0", mode: "vepa", up: false, adopt: false } as any, link);
    expect(outs.tapDevicePath).toBe("/dev/tap12");
    expect(outs.ifindex).toBe(12);
    const plain = await new LinkEngine(macvlan).outputs(ctx.transport, { name: "mvl-br", parent: "eth0", mode: "bridge" } as any, fixture("macvlan-bridge.json"));
    expect(plain).not.toHaveProperty("tapDevicePath");
    expect(plain).toMatchObject({ parent: "eth0", mode: "bridge", mtu: 1400, addresses: ["192.0.2.10/24"], macAddress: "02:00:00:00:10:01", up: true });
  });
});

describe.each(KINDS)("%s diff", (kind) => {
  const olds = { connection: conn, name: "mv0", parent: "eth0", mode: "bridge", up: true, ifindex: 9, macAddress: "02:00:00:00:10:01" };
  const diff = async (news: Record<string, unknown>, from: Record<string, unknown> = olds) => {
    const rt = provider(kind);
    const checked = await rt.check(from, { connection: conn, name: "mv0", parent: "eth0", ...news });
    expect(checked.failures).toEqual([]);
    return rt.diff("id", from, checked.inputs);
  };

  it("changes other modes in place", async () => {
    expect(await diff({})).toEqual({ changes: false, replaces: [], deleteBeforeReplace: true });
    for (const mode of ["vepa", "private", "source"]) expect(await diff({ mode })).toEqual({ changes: true, replaces: [], deleteBeforeReplace: true });
    expect(await diff({ mode: "vepa" }, { ...olds, mode: "private" })).toMatchObject({ changes: true, replaces: [] });
    expect(await diff({ mode: "source", sourceMacs: ["02:00:00:00:00:01"] }, { ...olds, mode: "source", sourceMacs: [] })).toMatchObject({ changes: true, replaces: [] });
  });

  it("replaces into and out of passthru, and on a new parent", async () => {
    expect(await diff({ mode: "passthru" })).toEqual({ changes: true, replaces: ["mode"], deleteBeforeReplace: true });
    const pt = { ...olds, mode: "passthru" };
    for (const mode of ["bridge", "vepa", "private", "source"]) expect((await diff({ mode }, pt)).replaces).toEqual(["mode"]);
    expect(await diff({ mode: "passthru" }, pt)).toEqual({ changes: false, replaces: [], deleteBeforeReplace: true });
    expect((await diff({ parent: "eth1" })).replaces).toEqual(["parent"]);
    expect((await diff({ parent: "eth1", mode: "passthru" })).replaces.sort()).toEqual(["mode", "parent"]);
  });

  it("leaves an unknown mode to the diff at apply time", async () => {
    expect(await diff({ mode: UNKNOWN }, { ...olds, mode: "passthru" })).toEqual({ changes: true, replaces: [], deleteBeforeReplace: true });
  });
});

describe("update through the engine", () => {
  it("reads, changes the mode and the source list in one ip -batch, and verifies", async () => {
    const before = fixture("macvlan-source.json");
    const after = structuredClone(before);
    after.linkinfo!.info_data = { ...after.linkinfo!.info_data, macaddr_count: 2, macaddr_data: ["02:00:00:00:00:aa", "02:00:00:00:00:11"] };
    let written = false;
    const fake = new FakeTransport()
      .on(["ip", "-n", "ct1", "-j", "-d", "addr", "show", "dev", "mvl-src"], () => ({ stdout: JSON.stringify([written ? after : before]) }))
      .on(["ip", "-n", "ct1", "-batch", "-"], () => {
        written = true;
        return {};
      });
    setTransportFactory(() => fake);
    const rt = provider("MacvlanLink");
    const inputs = { connection: conn, name: "mvl-src", namespace: "ct1", parent: "eth0", mode: "source", up: false, sourceMacs: ["02:00:00:00:00:AA", "02:00:00:00:00:11"] };
    const checked = await rt.check({}, inputs);
    const { outs } = await rt.update("id", {}, checked.inputs);
    const batch = fake.calls.find((c) => c.argv.includes("-batch"));
    expect(batch?.stdin).toBe(
      "link set dev mvl-src type macvlan macaddr del 02:00:00:00:00:12\n" +
        "link set dev mvl-src type macvlan macaddr del 02:00:00:00:00:13\n" +
        "link set dev mvl-src type macvlan macaddr add 02:00:00:00:00:aa\n",
    );
    expect(outs.sourceMacs).toEqual(["02:00:00:00:00:11", "02:00:00:00:00:aa"]);
    expect(outs.mode).toBe("source");
  });

  it("names the field when the kernel does not take the change", async () => {
    const link = fixture("macvlan-bridge.json");
    const fake = new FakeTransport()
      .on(["ip", "-j", "-d", "addr", "show", "dev", "mvl-br"], { stdout: JSON.stringify([link]) })
      .on(["ip", "link", "set", "dev", "mvl-br", "type", "macvlan", "mode", "private"], {}); // exit 0, and nothing changes
    setTransportFactory(() => fake);
    const rt = provider("MacvlanLink");
    const checked = await rt.check({}, { connection: conn, name: "mvl-br", parent: "eth0", mode: "private", mtu: 1400, macAddress: "02:00:00:00:10:01", addresses: ["192.0.2.10/24"] });
    await expect(rt.update("id", {}, checked.inputs)).rejects.toThrow(/mvl-br: mode is "bridge" in the kernel after the change, wanted "private"/);
    expect(fake.calls.filter((c) => c.argv[1] === "link" && c.argv[2] === "set").map((c) => c.argv)).toEqual([
      ["ip", "link", "set", "dev", "mvl-br", "type", "macvlan", "mode", "private"],
    ]);
  }, 10_000);
});
