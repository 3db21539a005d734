// Bond: check() of every field, argv of create/update (including the down and
// release/re-enslave plans the kernel's option rules need), parsing of JSON and
// /proc/net/bonding text recorded from the VM's kernel (6.1), diff classification,
// and the engine driving a fake host that enforces the kernel's bonding rules.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { LinkEngine, setTransportFactory } from "../../provider/engine";
import type { LinkJson } from "../../provider/iproute/link";
import { bond, parseProcSlaves, planBondUpdate } from "../../provider/kinds/bond";
import { provider } from "../../provider/runtime";
import { UNKNOWN } from "../../provider/schema";
import { FakeTransport } from "../../provider/transport/fake";
import { SshTransport } from "../../provider/transport/ssh";
import { kindChecks } from "../support/unit";

const conn = { host: "192.0.2.10" };
const base = { connection: conn, name: "bond0" };
const rt = provider("Bond");

function fixtureText(name: string): string {
  return readFileSync(join(__dirname, "../fixtures/iproute", `${name}.json`), "utf8");
}
function fixture(name: string): LinkJson {
  return JSON.parse(fixtureText(name))[0];
}
const procText = (JSON.parse(fixtureText("bond-active-backup-proc")) as { stdout: string }).stdout;

const { check, accepted, rejected } = kindChecks("Bond", base);

describe("Bond check", () => {
  it("minimal inputs: mode defaults to the kernel's balance-rr", async () => {
    const v = await accepted({});
    expect(v).toMatchObject({ name: "bond0", mode: "balance-rr", up: true });
    for (const f of ["miimon", "slaves", "primary", "lacpRate", "arpIpTargets"]) expect(v).not.toHaveProperty(f);
  });

  it("mode: the seven kernel modes", async () => {
    for (const m of ["balance-rr", "active-backup", "balance-xor", "broadcast", "802.3ad", "balance-tlb", "balance-alb"])
      expect((await accepted({ mode: m })).mode).toBe(m);
    for (const m of ["lacp", "Active-Backup", 1, ""]) await rejected({ mode: m }, "mode");
  });

  it("milliseconds and counts: whole numbers 0–INT_MAX", async () => {
    for (const f of ["miimon", "arpInterval", "minLinks"]) {
      expect((await accepted({ [f]: 0 }))[f]).toBe(0);
      expect((await accepted({ [f]: 2147483647 }))[f]).toBe(2147483647);
      for (const bad of [-1, 2147483648, 1.5, "100"]) await rejected({ [f]: bad }, f);
    }
  });

  it("updelay/downdelay: need miimon > 0 and must be multiples of it", async () => {
    for (const f of ["updelay", "downdelay"]) {
      expect((await accepted({ miimon: 100, [f]: 300 }))[f]).toBe(300);
      expect((await accepted({ miimon: 100, [f]: 0 }))[f]).toBe(0);
      await rejected({ miimon: 100, [f]: 250 }, f, "round 250 down to 200");
      await rejected({ [f]: 200 }, f, "needs miimon > 0");
      await rejected({ miimon: 0, [f]: 200 }, f, "needs miimon > 0");
      await rejected({ miimon: 100, [f]: -100 }, f);
      expect((await check({ miimon: UNKNOWN, [f]: 250 })).failures).toEqual([]);
    }
  });

  it("lacpRate: slow/fast, only in 802.3ad", async () => {
    expect((await accepted({ mode: "802.3ad", lacpRate: "fast" })).lacpRate).toBe("fast");
    await rejected({ mode: "802.3ad", lacpRate: "1" }, "lacpRate");
    await rejected({ lacpRate: "slow" }, "lacpRate", 'only used in mode "802.3ad" (got mode "balance-rr")');
    await rejected({ mode: "active-backup", lacpRate: "fast" }, "lacpRate");
    expect((await check({ mode: UNKNOWN, lacpRate: "fast" })).failures).toEqual([]);
  });

  it("xmitHashPolicy: the kernel's policies", async () => {
    for (const p of ["layer2", "layer2+3", "layer3+4", "encap2+3", "encap3+4", "vlan+srcmac"])
      expect((await accepted({ mode: "balance-xor", xmitHashPolicy: p })).xmitHashPolicy).toBe(p);
    for (const p of ["layer34", "l2", 2]) await rejected({ xmitHashPolicy: p }, "xmitHashPolicy");
  });

  it("primary: an ifname among slaves, in active-backup/balance-tlb/balance-alb only", async () => {
    for (const m of ["active-backup", "balance-tlb", "balance-alb"])
      expect((await accepted({ mode: m, slaves: ["eth0", "eth1"], primary: "eth1" })).primary).toBe("eth1");
    await rejected({ mode: "balance-xor", slaves: ["eth0"], primary: "eth0" }, "primary", "only used in modes active-backup");
    await rejected({ mode: "active-backup", slaves: ["eth0"], primary: "eth9" }, "primary", 'must be one of slaves (eth0) (got "eth9")');
    await rejected({ mode: "active-backup", primary: "eth0" }, "primary", "needs slaves");
    await rejected({ mode: "active-backup", slaves: ["eth0"], primary: "a b" }, "primary");
    expect((await check({ mode: "active-backup", slaves: ["eth0", UNKNOWN], primary: "eth1" })).failures).toEqual([]);
  });

  it("arpInterval: not with miimon, not in 802.3ad/tlb/alb", async () => {
    expect((await accepted({ mode: "active-backup", arpInterval: 200, miimon: 0 })).arpInterval).toBe(200);
    await rejected({ arpInterval: 200, miimon: 100 }, "arpInterval", "cannot be used together with miimon");
    for (const m of ["802.3ad", "balance-tlb", "balance-alb"]) await rejected({ mode: m, arpInterval: 0 }, "arpInterval", `cannot be set in mode "${m}"`);
  });

  it("arpIpTargets: IPv4 set of at most 16, sorted, no 0.x or broadcast", async () => {
    expect((await accepted({ arpIpTargets: ["192.0.2.9", "192.0.2.1"] })).arpIpTargets).toEqual(["192.0.2.1", "192.0.2.9"]);
    expect((await accepted({ arpIpTargets: [] })).arpIpTargets).toEqual([]);
    const sixteen = Array.from({ length: 16 }, (_, i) => `198.51.100.${i + 1}`);
    expect((await accepted({ arpIpTargets: sixteen })).arpIpTargets).toHaveLength(16);
    await rejected({ arpIpTargets: [...sixteen, "198.51.100.99"] }, "arpIpTargets", "at most 16");
    await rejected({ arpIpTargets: ["192.0.2.1", "192.0.2.1"] }, "arpIpTargets", "duplicate");
    await rejected({ arpIpTargets: ["2001:db8::1"] }, "arpIpTargets[0]", "IPv4");
    await rejected({ arpIpTargets: ["0.0.0.0"] }, "arpIpTargets[0]", "0.x.x.x");
    await rejected({ arpIpTargets: ["255.255.255.255"] }, "arpIpTargets[0]", "broadcast");
    await rejected({ arpIpTargets: "192.0.2.1" }, "arpIpTargets");
  });

  it("slaves: ordered ifnames, kept in order, no duplicates, not the bond or its master", async () => {
    expect((await accepted({ slaves: ["eth1", "eth0"] })).slaves).toEqual(["eth1", "eth0"]);
    expect((await accepted({ slaves: [] })).slaves).toEqual([]);
    await rejected({ slaves: ["eth0", "eth0"] }, "slaves", "duplicate");
    await rejected({ slaves: ["eth0", "a/b"] }, "slaves[1]");
    await rejected({ slaves: ["bond0"] }, "slaves", "must not contain the bond itself");
    await rejected({ slaves: ["br0"], master: "br0" }, "slaves", "own master");
  });

  it("unknown fields are refused", async () => {
    await rejected({ slave: ["eth0"] }, "slave", "unknown field");
  });
});

describe("Bond argv: create", () => {
  it("minimal: the mode is always sent", () => {
    expect(bond.createArgv({ name: "bond0", mode: "balance-rr" })).toEqual([["ip", "link", "add", "name", "bond0", "type", "bond", "mode", "balance-rr"]]);
  });

  it("every option (slaves and primary come after, in the update plan)", () => {
    expect(bond.createArgv({
      name: "bond0", namespace: "ns1", mtu: 9000, macAddress: "02:00:00:00:00:b0", mode: "802.3ad", miimon: 100, updelay: 200, downdelay: 300,
      lacpRate: "fast", xmitHashPolicy: "layer3+4", minLinks: 1, arpIpTargets: ["192.0.2.1", "192.0.2.9"], slaves: ["eth0"],
    })).toEqual([[
      "ip", "-n", "ns1", "link", "add", "name", "bond0", "mtu", "9000", "address", "02:00:00:00:00:b0", "type", "bond", "mode", "802.3ad",
      "miimon", "100", "updelay", "200", "downdelay", "300", "arp_ip_target", "192.0.2.1,192.0.2.9",
      "xmit_hash_policy", "layer3+4", "min_links", "1", "lacp_rate", "fast",
    ]]);
  });

  it("an empty target list sends nothing (a bare arp_ip_target would eat the next word)", () => {
    expect(bond.createArgv({ name: "b", mode: "active-backup", arpInterval: 100, arpIpTargets: [], xmitHashPolicy: "layer2" })).toEqual([
      ["ip", "link", "add", "name", "b", "type", "bond", "mode", "active-backup", "arp_interval", "100", "xmit_hash_policy", "layer2"],
    ]);
  });
});

describe("Bond argv: update plans", () => {
  const set = (...a: string[]) => ["ip", "link", "set", "dev", ...a];
  const enslave = (s: string, b = "bond0") => [set(s, "down"), set(s, "master", b), set(s, "up")];

  it("plain options: one per line, bond untouched", () => {
    const d = { name: "bond0", mode: "active-backup", up: true, xmitHashPolicy: "layer2+3", minLinks: 2, arpIpTargets: [] };
    expect(planBondUpdate(d, new Set(["xmitHashPolicy", "minLinks", "arpIpTargets"]), true, ["eth0"])).toEqual([
      set("bond0", "type", "bond", "arp_ip_target"),
      set("bond0", "type", "bond", "xmit_hash_policy", "layer2+3"),
      set("bond0", "type", "bond", "min_links", "2"),
    ]);
  });

  it("miimon change re-sends the delays the kernel keeps as multiples of it", () => {
    const d = { name: "bond0", mode: "active-backup", miimon: 50, updelay: 200, downdelay: 100 };
    expect(planBondUpdate(d, new Set(["miimon"]), true, [])).toEqual([
      set("bond0", "type", "bond", "miimon", "50"),
      set("bond0", "type", "bond", "updelay", "200"),
      set("bond0", "type", "bond", "downdelay", "100"),
    ]);
  });

  it("lacpRate on an up bond: down → change → up; on a down bond just the change", () => {
    const d = { name: "bond0", namespace: "ns1", mode: "802.3ad", lacpRate: "fast", up: true };
    const n = (...a: string[]) => ["ip", "-n", "ns1", "link", "set", "dev", ...a];
    expect(planBondUpdate(d, new Set(["lacpRate"]), true, ["eth0", "eth1"])).toEqual([
      n("bond0", "down"), n("bond0", "type", "bond", "lacp_rate", "fast"), n("bond0", "up"),
    ]);
    expect(planBondUpdate(d, new Set(["lacpRate"]), false, ["eth0"])).toEqual([n("bond0", "type", "bond", "lacp_rate", "fast")]);
    // Wanted down: taken down, left down (the engine's own `up` step then has nothing to do).
    expect(planBondUpdate({ ...d, up: false }, new Set(["lacpRate"]), true, [])).toEqual([n("bond0", "down"), n("bond0", "type", "bond", "lacp_rate", "fast")]);
  });

  it("mode: down → release all → mode → every option → re-enslave in the original order → primary → up", () => {
    const d = { name: "bond0", mode: "active-backup", miimon: 100, updelay: 200, primary: "eth1", up: true };
    expect(planBondUpdate(d, new Set(["mode"]), true, ["eth1", "eth0"])).toEqual([
      set("bond0", "down"),
      set("eth1", "nomaster"),
      set("eth0", "nomaster"),
      set("bond0", "type", "bond", "mode", "active-backup"),
      set("bond0", "type", "bond", "miimon", "100"),
      set("bond0", "type", "bond", "updelay", "200"),
      ...enslave("eth1"),
      ...enslave("eth0"),
      set("bond0", "type", "bond", "primary", "eth1"),
      set("bond0", "up"),
    ]);
  });

  it("mode with a new slave list and lacpRate: the new list is enslaved, lacp_rate set while down and empty", () => {
    const d = { name: "bond0", mode: "802.3ad", lacpRate: "fast", slaves: ["eth2", "eth0"], up: true };
    expect(planBondUpdate(d, new Set(["mode", "lacpRate", "slaves"]), false, ["eth0", "eth1"])).toEqual([
      set("eth0", "nomaster"),
      set("eth1", "nomaster"),
      set("bond0", "type", "bond", "mode", "802.3ad"),
      set("bond0", "type", "bond", "lacp_rate", "fast"),
      ...enslave("eth2"),
      ...enslave("eth0"),
    ]);
  });

  it("slaves: removed ones released, added ones enslaved at the end", () => {
    const d = { name: "bond0", mode: "active-backup", slaves: ["eth0", "eth2"] };
    expect(planBondUpdate(d, new Set(["slaves"]), true, ["eth0", "eth1"])).toEqual([set("eth1", "nomaster"), ...enslave("eth2")]);
    expect(planBondUpdate({ ...d, slaves: [] }, new Set(["slaves"]), true, ["eth0", "eth1"])).toEqual([set("eth0", "nomaster"), set("eth1", "nomaster")]);
    // Removing from the middle keeps the rest where they are.
    expect(planBondUpdate({ ...d, slaves: ["eth0", "eth2"] }, new Set(["slaves"]), true, ["eth0", "eth1", "eth2"])).toEqual([set("eth1", "nomaster")]);
  });

  it("slaves: a new order re-enslaves from the first difference; primary re-sent after", () => {
    const d = { name: "bond0", mode: "active-backup", slaves: ["eth0", "eth2", "eth1"], primary: "eth2" };
    expect(planBondUpdate(d, new Set(["slaves"]), true, ["eth0", "eth1", "eth2"])).toEqual([
      set("eth1", "nomaster"), set("eth2", "nomaster"), ...enslave("eth2"), ...enslave("eth1"),
      set("bond0", "type", "bond", "primary", "eth2"),
    ]);
  });

  it("primary alone: one line", () => {
    const d = { name: "bond0", mode: "active-backup", slaves: ["eth0", "eth1"], primary: "eth1" };
    expect(planBondUpdate(d, new Set(["primary"]), true, ["eth0", "eth1"])).toEqual([set("bond0", "type", "bond", "primary", "eth1")]);
  });

  it("updateArgv takes the current slaves from the kernel's view", () => {
    const link = fixture("bond-active-backup");
    const d = { name: "b0", mode: "balance-xor", miimon: 100, up: true };
    const steps = bond.updateArgv(d, [{ field: "mode", desired: "balance-xor", actual: "active-backup" }], link, { slaves: ["dummy1", "dummy0"] });
    expect(steps.slice(0, 4)).toEqual([set("b0", "down"), set("dummy1", "nomaster"), set("dummy0", "nomaster"), set("b0", "type", "bond", "mode", "balance-xor")]);
    expect(steps.at(-1)).toEqual(set("b0", "up"));
  });
});

describe("Bond parsing (recorded from the VM kernel)", () => {
  it("/proc/net/bonding lists slaves in enslave order (ip link show master lists by ifindex)", () => {
    expect(parseProcSlaves(procText)).toEqual(["dummy1", "dummy0"]);
    expect(parseProcSlaves("Ethernet Channel Bonding Driver: v6.1\n\nBonding Mode: load balancing (round-robin)\nMII Status: down\n")).toEqual([]);
  });

  it("active-backup with slaves: reads options, primary and slaves", async () => {
    const t = new FakeTransport().on(["cat"], { stdout: procText });
    const link = fixture("bond-active-backup");
    expect(await bond.readFields(link, { transport: t, desired: { name: "b0" } })).toEqual({
      mode: "active-backup", miimon: 100, updelay: 200, downdelay: 300, lacpRate: "slow", xmitHashPolicy: "layer2",
      primary: "dummy1", minLinks: 0, arpInterval: 0, arpIpTargets: [], slaves: ["dummy1", "dummy0"],
    });
    expect(t.calls.map((c) => c.argv)).toEqual([["cat", "/proc/net/bonding/b0"]]);
    expect(bond.outputs(link)).toEqual({ activeSlave: "dummy1" });
  });

  it("in a namespace the proc file is read inside it", async () => {
    const t = new FakeTransport().on(["ip", "netns", "exec"], { stdout: procText });
    await bond.readFields(fixture("bond-active-backup"), { transport: t, desired: { name: "b0", namespace: "ns1" } });
    expect(t.calls[0].argv).toEqual(["ip", "netns", "exec", "ns1", "cat", "/proc/net/bonding/b0"]);
  });

  it("802.3ad and arp-monitored bonds; targets sorted", async () => {
    const t = new FakeTransport().on(["cat"], { stdout: "Bonding Mode: x\n" });
    expect(await bond.readFields(fixture("bond-8023ad"), { transport: t, desired: { name: "b1" } })).toMatchObject({
      mode: "802.3ad", miimon: 100, lacpRate: "fast", xmitHashPolicy: "layer3+4", minLinks: 1, primary: undefined, slaves: [],
    });
    expect(await bond.readFields(fixture("bond-arp"), { transport: t, desired: { name: "b2" } })).toMatchObject({
      mode: "balance-xor", miimon: 0, arpInterval: 200, arpIpTargets: ["192.0.2.1", "192.0.2.9"], xmitHashPolicy: "vlan+srcmac",
    });
  });

  it("a failing proc read is an error, not an empty slave list", async () => {
    const t = new FakeTransport().on(["cat"], { code: 1, stderr: "cat: /proc/net/bonding/b0: No such file or directory" });
    await expect(bond.readFields(fixture("bond-active-backup"), { transport: t, desired: { name: "b0" } })).rejects.toThrow(/No such file/);
  });
});

describe("Bond persisted: slave order is networkd's at each boot", () => {
  // procText lists dummy1, dummy0 (the enslave order on the VM).
  const set = (...a: string[]) => ["ip", "link", "set", "dev", ...a];
  const enslave = (s: string) => [set(s, "down"), set(s, "master", "bond0"), set(s, "up")];
  const read = (desired: Record<string, unknown>) =>
    bond.readFields(fixture("bond-active-backup"), { transport: new FakeTransport().on(["cat"], { stdout: procText }), desired: { name: "b0", ...desired } });

  it("read: the wanted set in another order reads in the wanted order (no drift after a reboot); any other difference is reported", async () => {
    expect((await read({ persist: true, slaves: ["dummy0", "dummy1"] })).slaves).toEqual(["dummy0", "dummy1"]);
    // A slave missing or extra is drift, in the kernel's order.
    expect((await read({ persist: true, slaves: ["dummy0", "dummy2"] })).slaves).toEqual(["dummy1", "dummy0"]);
    expect((await read({ persist: true, slaves: ["dummy0"] })).slaves).toEqual(["dummy1", "dummy0"]);
    // Not persisted: the order is the user's and a reordering is drift.
    expect((await read({ slaves: ["dummy0", "dummy1"] })).slaves).toEqual(["dummy1", "dummy0"]);
    expect((await read({ persist: false, slaves: ["dummy0", "dummy1"] })).slaves).toEqual(["dummy1", "dummy0"]);
  });

  it("update: a new slave joins without re-enslaving the others; a removed one is released", () => {
    const d = { name: "bond0", mode: "active-backup", slaves: ["eth0", "eth2", "eth1"], primary: "eth2", persist: true };
    expect(planBondUpdate(d, new Set(["slaves"]), true, ["eth1", "eth0"], false)).toEqual([...enslave("eth2"), set("bond0", "type", "bond", "primary", "eth2")]);
    expect(bond.updateArgv({ ...d, slaves: ["eth0"], primary: "eth0" }, [{ field: "slaves", desired: ["eth0"], actual: ["eth1", "eth0"] }], fixture("bond-active-backup"), { slaves: ["eth1", "eth0"] }))
      .toEqual([set("eth1", "nomaster"), set("bond0", "type", "bond", "primary", "eth0")]);
  });

  it("check: persisting a bond whose active slave the order would decide needs primary", async () => {
    for (const mode of ["active-backup", "balance-tlb", "balance-alb"])
      await rejected({ mode, slaves: ["eth0", "eth1"], persist: true }, "primary", "networkd enslaves the slaves in the order they appear at boot");
    expect((await check({ mode: "active-backup", slaves: ["eth0", "eth1"], primary: "eth1", persist: true })).failures).toEqual([]);
    expect((await check({ mode: "active-backup", slaves: ["eth0"], persist: true })).failures).toEqual([]);
    expect((await check({ mode: "balance-xor", slaves: ["eth0", "eth1"], persist: true })).failures).toEqual([]);
    expect((await check({ mode: "active-backup", slaves: ["eth0", "eth1"] })).failures).toEqual([]);
  });
});

describe("Bond diff", () => {
  const olds = { ...base, mode: "active-backup", miimon: 100, slaves: ["eth0", "eth1"], primary: "eth0", up: true, lacpRate: "slow" };
  const diff = async (extra: Record<string, unknown>) => rt.diff("id", olds, (await rt.check(olds, { ...base, mode: "active-backup", miimon: 100, slaves: ["eth0", "eth1"], ...extra })).inputs);

  it("nothing in a bond is creation-only: every change is an update", async () => {
    expect(await diff({})).toEqual({ changes: false, replaces: [], deleteBeforeReplace: true });
    for (const extra of [{ mode: "balance-xor" }, { miimon: 200 }, { primary: "eth1" }, { slaves: ["eth1", "eth0"] }, { slaves: ["eth0"] }, { xmitHashPolicy: "layer3+4" }, { minLinks: 1 }, { arpIpTargets: ["192.0.2.1"] }])
      expect(await diff(extra), JSON.stringify(extra)).toEqual({ changes: true, replaces: [], deleteBeforeReplace: true });
    expect((await diff({ name: "bond1" })).replaces).toEqual(["name"]);
  });

  it("slave order is a change", async () => {
    expect((await diff({ slaves: ["eth1", "eth0"] })).changes).toBe(true);
  });
});

/**
 * A fake host with one bond that enforces the kernel rules the plans exist for:
 * mode needs the bond down and without slaves, lacp_rate needs it down, a slave
 * must be down to be enslaved, and a released slave is left down.
 */
function bondHost(initial: { mode: string; slaves: string[]; up: boolean; lacpRate?: string }) {
  const t = new FakeTransport("fake-bond-host");
  const s = { ...initial, lacpRate: initial.lacpRate ?? "slow", primary: undefined as string | undefined, slaves: [...initial.slaves] };
  const devUp: Record<string, boolean> = { eth0: true, eth1: true, eth2: true };
  const link = fixture("bond-active-backup");
  const fail = (msg: string) => ({ code: 2, stderr: `Error: ${msg}.` });
  const apply = (w: string[]): { code: number; stderr: string } | undefined => {
    // link set dev X ...
    const dev = w[3];
    const rest = w.slice(4);
    if (dev === "bond0" && rest[0] === "type") {
      const [, , opt, val] = rest;
      if (opt === "mode") {
        if (s.slaves.length) return fail("unable to set option because the bond device has slaves");
        if (s.up) return fail("unable to set option because the bond is up");
        s.mode = val;
      } else if (opt === "lacp_rate") {
        if (s.up) return fail("unable to set option because the bond is up");
        s.lacpRate = val;
      } else if (opt === "primary") s.primary = val;
      return undefined;
    }
    if (dev === "bond0") s.up = rest[0] === "up";
    else if (rest[0] === "master") {
      if (devUp[dev]) return fail("Device can not be enslaved while up");
      s.slaves.push(dev);
    } else if (rest[0] === "nomaster") {
      s.slaves = s.slaves.filter((x) => x !== dev);
      devUp[dev] = false;
    } else devUp[dev] = rest[0] === "up";
    return undefined;
  };
  const show = () => {
    const data = { ...link.linkinfo!.info_data, mode: s.mode, ad_lacp_rate: s.lacpRate, primary: s.slaves.includes(s.primary ?? "") ? s.primary : undefined };
    return { stdout: JSON.stringify([{ ...link, ifname: "bond0", flags: s.up ? ["MASTER", "UP"] : ["MASTER"], linkinfo: { info_kind: "bond", info_data: data } }]) };
  };
  t.on(["ip"], (argv, opts) => {
    if (argv.includes("show")) return show();
    if (argv.includes("-batch")) {
      const lines = opts.stdin!.trim().split("\n");
      for (const [i, line] of lines.entries()) {
        const r = apply(line.split(" "));
        if (r) return { code: 1, stderr: `${r.stderr}\nCommand failed -:${i + 1}` };
      }
      return { code: 0 };
    }
    return apply(argv.slice(1)) ?? { code: 0 };
  });
  t.on(["cat"], () => ({ stdout: s.slaves.map((x) => `Slave Interface: ${x}\nMII Status: up\n`).join("\n") }));
  return { t, state: s, devUp };
}

describe("Bond update through the engine (fake host enforcing the kernel's rules)", () => {
  afterEach(() => setTransportFactory((c) => new SshTransport(c)));
  const engine = new LinkEngine(bond);
  const inputs = async (extra: Record<string, unknown>) => (await rt.check({}, { ...base, ...extra })).inputs;

  it("mode change on an up bond with slaves: ends in the new mode, same slaves in the same order, up", async () => {
    const host = bondHost({ mode: "active-backup", slaves: ["eth1", "eth0"], up: true });
    setTransportFactory(() => host.t);
    const { outs } = await engine.update("id", {}, await inputs({ mode: "balance-xor" }));
    expect(host.state).toMatchObject({ mode: "balance-xor", slaves: ["eth1", "eth0"], up: true });
    expect(host.devUp).toMatchObject({ eth0: true, eth1: true });
    expect(outs).toMatchObject({ mode: "balance-xor", slaves: ["eth1", "eth0"] });
  });

  it("the same change without the plan's ordering is refused by the fake kernel (the fake is strict)", async () => {
    const host = bondHost({ mode: "active-backup", slaves: ["eth0"], up: true });
    setTransportFactory(() => host.t);
    const r = await host.t.run(["ip", "link", "set", "dev", "bond0", "type", "bond", "mode", "balance-xor"]);
    expect(r.stderr).toContain("has slaves");
  });

  it("lacpRate on an up 802.3ad bond; slaves swapped and a new primary", async () => {
    const host = bondHost({ mode: "802.3ad", slaves: ["eth0"], up: true });
    setTransportFactory(() => host.t);
    await engine.update("id", {}, await inputs({ mode: "802.3ad", lacpRate: "fast", slaves: ["eth0"] }));
    expect(host.state).toMatchObject({ lacpRate: "fast", up: true, slaves: ["eth0"] });

    const ab = bondHost({ mode: "active-backup", slaves: ["eth0", "eth1"], up: true });
    setTransportFactory(() => ab.t);
    await engine.update("id", {}, await inputs({ mode: "active-backup", slaves: ["eth2", "eth1"], primary: "eth2" }));
    expect(ab.state).toMatchObject({ slaves: ["eth2", "eth1"], primary: "eth2" });
    expect(ab.devUp.eth0).toBe(false); // released: the kernel leaves it down
  });

  it("delete releases every slave first", async () => {
    const host = bondHost({ mode: "active-backup", slaves: ["eth1", "eth0"], up: true });
    setTransportFactory(() => host.t);
    await engine.delete("id", await inputs({}));
    const writes = host.t.calls.filter((c) => !c.argv.includes("show") && c.argv[0] !== "cat");
    expect(writes.map((c) => c.stdin ?? c.argv.join(" "))).toEqual([
      "link set dev eth1 nomaster\nlink set dev eth0 nomaster\n",
      "ip link del dev bond0",
    ]);
  });
});
