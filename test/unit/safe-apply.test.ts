// Safe apply's decisions over fixed kernel JSON: what carries the session, which
// lines are risky, the undo batch, and the connection.safeApply input.
import { describe, expect, it } from "vitest";
import { carriersOf, classify, containsAddress, parseDiscovery, undoBatch } from "../../provider/safeApply";
import { LinkEngine } from "../../provider/engine";
import { registry } from "../../provider/kinds";
import { connectionDefaultsFromConfig } from "../../provider/connection";

const link = (ifname: string, extra: Record<string, unknown> = {}) => ({ ifindex: 1, ifname, flags: ["UP"], mtu: 1500, operstate: "UP", addr_info: [], ...extra }) as any;

// eth0 + eth1 in bond0, bond0.10 a vlan on it carrying 192.0.2.10/24; tap1 in br1 (not on the path).
const links = [
  link("eth0", { master: "bond0" }),
  link("eth1", { master: "bond0" }),
  link("bond0", { linkinfo: { info_kind: "bond" } }),
  link("bond0.10", { link: "bond0", linkinfo: { info_kind: "vlan" }, addr_info: [{ family: "inet", local: "192.0.2.10", prefixlen: 24, scope: "global" }] }),
  link("br1", { linkinfo: { info_kind: "bridge" } }),
  link("tap1", { master: "br1", mtu: 9000 }),
];
const routes = [{ dst: "default", gateway: "192.0.2.1", dev: "bond0.10", family: 4 as const }, { dst: "192.0.2.0/24", dev: "bond0.10", protocol: "kernel", family: 4 as const }];
const facts = carriersOf("198.51.100.7", "bond0.10", undefined, "192.0.2.1", [], links, routes);

describe("safe apply", () => {
  it("finds the route device, its lower devices and the bond's slaves", () => {
    expect([...facts.carriers].sort()).toEqual(["bond0", "bond0.10", "eth0", "eth1"]);
    expect([...facts.core].sort()).toEqual(["bond0", "bond0.10", "eth0", "eth1"]);
    expect([...facts.bonds]).toEqual(["bond0"]);
  });

  it("parses the discovery script's output", () => {
    const out = [
      "@ssh 198.51.100.7 50000 192.0.2.10 22",
      "@netns",
      "@route",
      JSON.stringify([{ dst: "198.51.100.7", gateway: "192.0.2.1", dev: "bond0.10" }]),
      "@links",
      JSON.stringify(links),
      "@routes4",
      JSON.stringify(routes),
      "@routes6",
      "[]",
    ].join("\n");
    const f = parseDiscovery(out)!;
    expect(f.client).toBe("198.51.100.7");
    expect(f.neighbour).toBe("192.0.2.1");
    expect(f.routeDev).toBe("bond0.10");
    expect(parseDiscovery("@ssh \n@netns\n")).toBeUndefined();
  });

  it("calls risky exactly the lines that touch the path, move its addresses or reroute the client", () => {
    const risky = (...steps: string[][]) => classify(facts, steps).risky.map((r) => r.argv.join(" "));
    expect(risky(["ip", "link", "set", "dev", "eth1", "mtu", "1400"])).toHaveLength(1);
    expect(risky(["ip", "link", "set", "dev", "tap1", "mtu", "1400"])).toEqual([]);
    expect(risky(["ip", "link", "set", "dev", "eth9", "master", "bond0"])).toHaveLength(1);
    expect(risky(["ip", "link", "set", "dev", "eth9", "master", "br1"])).toEqual([]);
    expect(risky(["ip", "addr", "add", "192.0.2.10/24", "dev", "br1"])).toHaveLength(1);
    expect(risky(["ip", "addr", "add", "198.51.100.1/24", "dev", "br1"])).toHaveLength(1);
    expect(risky(["ip", "addr", "add", "203.0.113.1/24", "dev", "br1"])).toEqual([]);
    expect(risky(["ip", "route", "replace", "default", "via", "203.0.113.9"])).toHaveLength(1);
    expect(risky(["ip", "route", "replace", "default", "via", "203.0.113.9", "table", "100"])).toEqual([]);
    expect(risky(["ip", "route", "add", "203.0.113.0/24", "dev", "br1"])).toEqual([]);
    expect(risky(["bridge", "vlan", "add", "vid", "5", "dev", "eth0"])).toHaveLength(1);
    // Another namespace cannot cut the session.
    expect(risky(["ip", "-n", "ns1", "link", "set", "dev", "eth0", "down"])).toEqual([]);
    expect(risky(["ip", "link", "add", "name", "br2", "type", "bridge"])).toEqual([]);
    // The add of a name that exists is refused by the kernel, and nothing after it runs.
    expect(risky(["ip", "link", "add", "name", "eth1", "type", "veth", "peer", "name", "x"], ["ip", "link", "set", "dev", "eth1", "mtu", "1400"])).toEqual([]);
    expect(risky(["ip", "link", "add", "name", "br2", "type", "bridge"], ["ip", "link", "set", "dev", "eth1", "mtu", "1400"])).toHaveLength(1);
  });

  it("refuses what the host cannot undo: deleting a device the session needs, moving it to another namespace", () => {
    expect(classify(facts, [["ip", "link", "del", "dev", "bond0"]]).refusal).toMatch(/deletes bond0, which carries the SSH session from 198.51.100.7/);
    expect(classify(facts, [["ip", "link", "set", "dev", "eth0", "netns", "x"]]).refusal).toMatch(/another namespace/);
    expect(classify(facts, [["ip", "link", "del", "dev", "tap1"]]).refusal).toBeUndefined();
  });

  it("builds an undo batch that deletes what the write creates and restores masters, mtu, addresses, up and routes", () => {
    expect(undoBatch(facts, ["bond0.10", "bond0", "eth0", "eth1", "br1"], ["br9"]).trim().split("\n")).toEqual([
      "link del dev br9",
      "link set dev bond0.10 nomaster",
      "link set dev bond0 nomaster",
      "link set dev br1 nomaster",
      "link set dev eth0 down",
      "link set dev eth0 master bond0",
      "link set dev eth1 down",
      "link set dev eth1 master bond0",
      "link set dev eth0 mtu 1500",
      "addr flush dev eth0 scope global",
      "link set dev eth0 up",
      "link set dev eth1 mtu 1500",
      "addr flush dev eth1 scope global",
      "link set dev eth1 up",
      "link set dev bond0.10 mtu 1500",
      "addr flush dev bond0.10 scope global",
      "addr add 192.0.2.10/24 dev bond0.10",
      "link set dev bond0.10 up",
      "link set dev bond0 mtu 1500",
      "addr flush dev bond0 scope global",
      "link set dev bond0 up",
      "link set dev br1 mtu 1500",
      "addr flush dev br1 scope global",
      "link set dev br1 up",
      "route replace 0.0.0.0/0 via 192.0.2.1 dev bond0.10",
    ]);
  });

  it("refuses to put a word the batch parser would misread into the undo", () => {
    const bad = carriersOf("198.51.100.7", "e#0", undefined, "198.51.100.7", [], [link("e#0")], []);
    expect(() => undoBatch(bad, ["e#0"], [])).toThrow(/refusing to write "e#0"/);
  });

  it("knows which destinations cover an address", () => {
    expect(containsAddress("default", "10.0.0.1")).toBe(true);
    expect(containsAddress("10.0.0.0/8", "10.9.9.9")).toBe(true);
    expect(containsAddress("10.0.0.0/16", "10.9.9.9")).toBe(false);
    expect(containsAddress("2001:db8::/32", "2001:db8:1::5")).toBe(true);
    expect(containsAddress("2001:db8::/48", "2001:db8:1::5")).toBe(false);
    expect(containsAddress("2001:db8::/32", "10.0.0.1")).toBe(false);
  });

  it("rejects rollbackAfterSeconds out of range in check, naming the field", async () => {
    const rt = registry.Bridge as LinkEngine;
    for (const bad of [0, 3601, 1.5]) {
      const r = await rt.check({}, { name: "br0", connection: { host: "192.0.2.1", safeApply: { rollbackAfterSeconds: bad } } });
      expect(r.failures.map((f) => f.property)).toContain("connection.safeApply.rollbackAfterSeconds");
    }
    const ok = await rt.check({}, { name: "br0", connection: { host: "192.0.2.1", safeApply: { enabled: false, rollbackAfterSeconds: 3600 } } });
    expect(ok.failures).toEqual([]);
    const unknown = await rt.check({}, { name: "br0", connection: { host: "192.0.2.1", safeApply: { rollbackAfter: 5 } } });
    expect(unknown.failures[0].reason).toMatch(/safeApply.rollbackAfter/);
  });

  it("reads netdev:safeApply from stack config as JSON", () => {
    const d = connectionDefaultsFromConfig((k) => (k === "netdev:safeApply" ? '{"rollbackAfterSeconds":30}' : undefined));
    expect(d.safeApply).toEqual({ rollbackAfterSeconds: 30 });
  });
});

describe("netdev:safeApply from stack config", () => {
  it("fails check naming the field when out of range", async () => {
    const { configureDefaults, resetDefaults } = await import("../../provider/engine");
    configureDefaults((k) => (k === "netdev:safeApply" ? '{"rollbackAfterSeconds":0}' : undefined));
    try {
      const r = await (registry.Bridge as LinkEngine).check({}, { name: "br0", connection: { host: "192.0.2.1" } });
      expect(r.failures).toContainEqual({ property: "connection.safeApply.rollbackAfterSeconds", reason: expect.stringMatching(/at least 1.*netdev:safeApply/) });
    } finally {
      resetDefaults();
    }
  });
});
