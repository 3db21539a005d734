// IpvlanLink without a host: check() of every field (macAddress is refused), the
// argv (mode and flag always travel together), parsing of `ip -j -d` JSON recorded
// on the VM host's Debian kernel (test/fixtures/iproute/ipvlan*.json), diff
// classification, and the sibling check that keeps two resources from fighting
// over the mode their parent shares.
import * as fs from "node:fs";
import * as path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { LinkEngine, setTransportFactory } from "../../provider/engine";
import type { LinkJson } from "../../provider/iproute/link";
import { ipvlan } from "../../provider/kinds/ipvlan";
import { provider } from "../../provider/runtime";
import { UNKNOWN } from "../../provider/schema";
import { FakeTransport } from "../../provider/transport/fake";
import { SshTransport } from "../../provider/transport/ssh";

const conn = { host: "192.0.2.10" };

function fixtureText(name: string): string {
  return fs.readFileSync(path.join(__dirname, "../fixtures/iproute", name), "utf8");
}
function fixture(name: string): LinkJson {
  return JSON.parse(fixtureText(name))[0];
}

async function check(extra: Record<string, unknown>) {
  return provider("IpvlanLink").check({}, { connection: conn, name: "ipv0", parent: "dummy0", ...extra });
}

afterEach(() => setTransportFactory((c) => new SshTransport(c)));

describe("IpvlanLink check", () => {
  it("requires parent and validates it as a device name", async () => {
    const r = await provider("IpvlanLink").check({}, { connection: conn, name: "ipv0" });
    expect(r.failures.map((f) => f.property)).toEqual(["parent"]);
    for (const bad of ["a".repeat(16), "x y", "$(id)", "-p", 3]) {
      const f = (await check({ parent: bad })).failures;
      expect(f.map((x) => x.property), JSON.stringify(bad)).toEqual(["parent"]);
      expect(f[0].reason).toContain(JSON.stringify(bad));
    }
  });

  it("defaults to mode l3 with flag bridge and accepts each mode and flag", async () => {
    const d = await check({});
    expect(d.failures).toEqual([]);
    expect(d.inputs).toMatchObject({ mode: "l3", flag: "bridge" });
    for (const mode of ["l2", "l3", "l3s"]) expect((await check({ mode })).inputs.mode).toBe(mode);
    for (const flag of ["bridge", "private", "vepa"]) expect((await check({ flag })).inputs.flag).toBe(flag);
  });

  it("rejects other modes and flags, naming the value", async () => {
    for (const mode of ["L2", "l4", "bridge", "", 2]) {
      const f = (await check({ mode })).failures;
      expect(f.map((x) => x.property), JSON.stringify(mode)).toEqual(["mode"]);
      expect(f[0].reason).toContain(JSON.stringify(mode));
    }
    for (const flag of ["passthru", "Private", "l2", true]) {
      const f = (await check({ flag })).failures;
      expect(f.map((x) => x.property), JSON.stringify(flag)).toEqual(["flag"]);
    }
  });

  it("refuses macAddress: an ipvlan always uses its parent's", async () => {
    const f = (await check({ macAddress: "02:00:00:00:00:01" })).failures;
    expect(f).toHaveLength(1);
    expect(f[0].property).toBe("macAddress");
    expect(f[0].reason).toMatch(/parent's Ethernet address.*02:00:00:00:00:01/);
    expect((await check({ macAddress: UNKNOWN })).failures).toEqual([]);
  });

  it("accepts preview placeholders and refuses fields of other kinds", async () => {
    expect((await check({ parent: UNKNOWN, mode: UNKNOWN, flag: UNKNOWN })).failures).toEqual([]);
    expect((await check({ sourceMacs: [] })).failures).toEqual([{ property: "sourceMacs", reason: 'unknown field "sourceMacs"' }]);
  });
});

describe("argv", () => {
  const engine = new LinkEngine(ipvlan);
  const parse = (inputs: Record<string, unknown>) => engine.schema.parse({ name: "ipv0", parent: "dummy0", ...inputs }) as any;

  it("creates with an explicit mode and flag (a bare add would reset its siblings to l3)", () => {
    expect(ipvlan.createArgv(parse({}))).toEqual([["ip", "link", "add", "link", "dummy0", "name", "ipv0", "type", "ipvlan", "mode", "l3", "bridge"]]);
    expect(ipvlan.createArgv(parse({ namespace: "ct1", mtu: 1400, mode: "l2", flag: "private" }))).toEqual([
      ["ip", "-n", "ct1", "link", "add", "link", "dummy0", "name", "ipv0", "mtu", "1400", "type", "ipvlan", "mode", "l2", "private"],
    ]);
  });

  it("changes mode or flag in place with one line carrying both", () => {
    const d = parse({ mode: "l2", flag: "vepa" });
    const line = [["ip", "link", "set", "dev", "ipv0", "type", "ipvlan", "mode", "l2", "vepa"]];
    expect(ipvlan.updateArgv(d, [{ field: "flag", desired: "vepa", actual: "bridge" }])).toEqual(line);
    expect(ipvlan.updateArgv(d, [{ field: "mode", desired: "l2", actual: "l3" }])).toEqual(line);
    expect(ipvlan.updateArgv(d, [{ field: "mode", desired: "l2", actual: "l3" }, { field: "flag", desired: "vepa", actual: "bridge" }])).toEqual(line);
    expect(ipvlan.updateArgv(d, [])).toEqual([]);
    expect(() => ipvlan.updateArgv(d, [{ field: "parent", desired: "dummy0", actual: "dummy1" }])).toThrow(/parent is dummy1, not dummy0.*replace/);
  });
});

describe("parsing the kernel's JSON", () => {
  it("reads parent, mode and the flag (reported as a key set to true)", () => {
    const a = fixture("ipvlan-l2-private.json");
    expect(a.linkinfo?.info_data).toEqual({ mode: "l2", private: true });
    expect(ipvlan.readFields(a)).toEqual({ parent: "dummy0", mode: "l2", flag: "private" });
    expect(ipvlan.readFields(fixture("ipvlan-l3s-vepa.json"))).toEqual({ parent: "dummy1", mode: "l3s", flag: "vepa" });
    // Recorded after a bare `ip link add … type ipvlan` on dummy1 (then l3s vepa):
    // the kernel reset the whole port's mode to l3 and kept the flag.
    expect(ipvlan.readFields(fixture("ipvlan-bare-add-resets-port.json"))).toEqual({ parent: "dummy1", mode: "l3", flag: "vepa" });
  });

  it("reports the parent's MAC and excludes the kernel's link-local address", async () => {
    const outs = await new LinkEngine(ipvlan).outputs(new FakeTransport(), { name: "ipvl-a", parent: "dummy0", mode: "l2", flag: "private" } as any, fixture("ipvlan-l2-private.json"));
    expect(outs).toMatchObject({ parent: "dummy0", mode: "l2", flag: "private", mtu: 1400, addresses: ["198.51.100.5/24"], up: true, ifindex: 12 });
    expect(outs.macAddress).toBe("4e:d4:91:5f:65:fb");
  });
});

describe("diff", () => {
  const olds = { connection: conn, name: "ipv0", parent: "dummy0", mode: "l3", flag: "bridge", up: true };
  const diff = async (news: Record<string, unknown>) => {
    const rt = provider("IpvlanLink");
    const checked = await rt.check(olds, { connection: conn, name: "ipv0", parent: "dummy0", ...news });
    return rt.diff("id", olds, checked.inputs);
  };

  it("changes mode and flag in place and replaces on a new parent", async () => {
    expect(await diff({})).toEqual({ changes: false, replaces: [], deleteBeforeReplace: true });
    expect(await diff({ mode: "l2" })).toEqual({ changes: true, replaces: [], deleteBeforeReplace: true });
    expect(await diff({ mode: "l3s", flag: "private" })).toEqual({ changes: true, replaces: [], deleteBeforeReplace: true });
    expect(await diff({ parent: "dummy1" })).toEqual({ changes: true, replaces: ["parent"], deleteBeforeReplace: true });
  });
});

describe("sibling check", () => {
  // The VM's devices: ipvl-a and ipvl-b on dummy0 in l2 private, ipvl-c on dummy1 in l3s vepa.
  const all = fixtureText("ipvlan-siblings-all.json");
  const missing = { code: 1, stderr: 'Device "ipvl-x" does not exist.\n' };

  function host(ns?: string) {
    const pre = ns ? ["ip", "-n", ns] : ["ip"];
    const fake = new FakeTransport()
      .on([...pre, "-j", "-d", "addr", "show"], (argv) => (argv.length === pre.length + 4 ? { stdout: all } : missing));
    setTransportFactory(() => fake);
    return fake;
  }
  const writes = (fake: FakeTransport) => fake.calls.filter((c) => c.argv.includes("add") || c.argv.includes("set") || c.argv.includes("-batch"));

  async function create(inputs: Record<string, unknown>) {
    const rt = provider("IpvlanLink");
    const checked = await rt.check({}, { connection: conn, name: "ipvl-x", ...inputs });
    expect(checked.failures).toEqual([]);
    return rt.create(checked.inputs);
  }

  it("refuses to create a sibling with another mode, naming the sibling, its mode and the asked one", async () => {
    const fake = host();
    await expect(create({ parent: "dummy0", mode: "l3" })).rejects.toThrow(
      /ipvl-x asks for ipvlan mode l3 bridge on dummy0, but ipvl-a on the same parent is in mode l2 private; .*shared by all its ipvlans/,
    );
    expect(writes(fake)).toEqual([]);
  });

  it("refuses a sibling that differs in the flag only", async () => {
    const fake = host("ct1");
    await expect(create({ namespace: "ct1", parent: "dummy1", mode: "l3s", flag: "bridge" })).rejects.toThrow(/ipvl-c on the same parent is in mode l3s vepa/);
    expect(writes(fake)).toEqual([]);
    expect(fake.calls.map((c) => c.argv.slice(0, 3))).toContainEqual(["ip", "-n", "ct1"]);
  });

  it("creates a sibling that agrees, and a device on a parent without ipvlans", async () => {
    for (const [parent, mode, flag] of [["dummy0", "l2", "private"], ["eth0", "l3", "bridge"]]) {
      const fake = host();
      // After the add the device is "found": answer the read-back with a matching device.
      const made = { ...fixture("ipvlan-l2-private.json"), ifname: "ipvl-x", link: parent, mtu: 1500, flags: ["UP"], addr_info: [], linkinfo: { info_kind: "ipvlan", info_data: { mode, [flag]: true } } };
      let added = false;
      // The add runs in one `ip -batch` with the engine's in-progress marker (engine.ts creatingMarker).
      fake.on(["ip", "-batch", "-"], (_argv, o) => ((added ||= /^link add /m.test(o.stdin ?? "")), {}));
      fake.on(["ip", "-j", "-d", "addr", "show", "dev", "ipvl-x"], () => (added ? { stdout: JSON.stringify([made]) } : missing));
      fake.on(["ip", "link", "set", "dev", "ipvl-x", "alias", ""], {}); // nothing to fix: the marker is cleared on its own
      const { outs } = await create({ parent, mode, flag });
      expect(fake.calls.map((c) => c.stdin ?? "").join("")).toContain(`link add link ${parent} name ipvl-x type ipvlan mode ${mode} ${flag}\n`);
      expect(outs).toMatchObject({ parent, mode, flag });
    }
  });

  it("refuses an update that would switch the siblings' mode, and allows one that keeps it", async () => {
    const fake = host();
    const a = fixture("ipvlan-l2-private.json");
    fake.on(["ip", "-j", "-d", "addr", "show", "dev", "ipvl-a"], { stdout: JSON.stringify([a]) });
    const rt = provider("IpvlanLink");
    const base = { connection: conn, name: "ipvl-a", parent: "dummy0", mtu: 1400, addresses: ["198.51.100.5/24"] };
    const toL3 = (await rt.check({}, { ...base, mode: "l3", flag: "private" })).inputs;
    await expect(rt.update("id", {}, toL3)).rejects.toThrow(/ipvl-a asks for ipvlan mode l3 private on dummy0, but ipvl-b on the same parent is in mode l2 private/);
    expect(writes(fake)).toEqual([]);

    // Same mode and flag: other changes go ahead (the check does not block them).
    const same = (await rt.check({}, { ...base, mode: "l2", flag: "private", mtu: 1300 })).inputs;
    fake.on(["ip", "link", "set", "dev", "ipvl-a", "mtu", "1300"], {}); // exit 0, and nothing changes
    await expect(rt.update("id", {}, same)).rejects.toThrow(/mtu is 1400 in the kernel after the change, wanted 1300/);
    expect(writes(fake).map((c) => c.argv)).toEqual([["ip", "link", "set", "dev", "ipvl-a", "mtu", "1300"]]);
  }, 10_000);
});
