// The schemas of every core kind: each field's valid and invalid values (failures name
// the field and the value), normalisation, strictness and cross-field rules.
import { afterEach, describe, expect, it } from "vitest";
import { LinkEngine, resetDefaults } from "../../provider/engine";
import { bridge } from "../../provider/kinds/bridge";
import { tuntap } from "../../provider/kinds/tuntap";
import { veth } from "../../provider/kinds/veth";
import { provider } from "../../provider/runtime";
import { checkCore as check, conn, coreBase as base } from "../support/unit";

const KINDS = Object.keys(base);
const LINK_KINDS = ["Bridge", "TapDevice", "VethPair"];

/** The field's value after check, given `value` in the inputs. */
async function accepted(kind: string, field: string, value: unknown): Promise<unknown> {
  const r = await check(kind, setPath({}, field, value));
  expect(r.failures, `${kind}.${field} = ${JSON.stringify(value)}`).toEqual([]);
  return getPath(r.inputs, field);
}

/** The failure for the field; asserts it names the field and (unless secret) the bad value. */
async function rejected(kind: string, field: string, value: unknown, property = field) {
  const r = await check(kind, setPath({}, field, value));
  const f = r.failures.find((x) => x.property === property);
  expect(f, `${kind}.${field} = ${JSON.stringify(value)} should fail on ${property}; got ${JSON.stringify(r.failures)}`).toBeDefined();
  expect(f!.reason).toContain(property);
  return f!;
}

function setPath(obj: Record<string, any>, path: string, value: unknown): Record<string, any> {
  const keys = path.split(".");
  if (keys[0] === "connection") {
    obj.connection = { ...conn };
    let cur = obj.connection;
    for (const k of keys.slice(1, -1)) cur = cur[k] = { host: "192.0.2.11" };
    cur[keys[keys.length - 1]] = value;
  } else obj[path] = value;
  return obj;
}

function getPath(obj: any, path: string): unknown {
  return path.split(".").reduce((o, k) => o?.[k], obj);
}

const longName = "a".repeat(16);
const badIfnames: unknown[] = [longName, "", ".", "..", "a/b", "a b", "a\tb", 'a"b', "a'b", "$(touch /tmp/x)", "a;b", "a\nb", "-x", "a:b", "a`b`", 7, null];
const goodIfnames = ["a".repeat(15), "eth0.100", "br_lan-1+x", "..a", "A9"];
const badNetns: unknown[] = ["a".repeat(65), "", ".", "..", "a/b", "a b", "-ns", "a+b", "$(x)", "a\n", 3];
const goodNetns = ["a".repeat(64), "ns-1_a.b", "C1"];

/** [field, valid values (with their value after check when it differs), invalid values] for the common link fields. */
const commonCases: [string, [unknown, unknown?][], unknown[]][] = [
  ["name", goodIfnames.map((v) => [v]), badIfnames],
  ["namespace", goodNetns.map((v) => [v]), badNetns],
  ["mtu", [[68], [1500], [65535]], [67, 65536, 1500.5, "1500", true, -1]],
  ["macAddress", [["02:AB:cd:00:00:01", "02:ab:cd:00:00:01"], ["00:00:00:00:00:01"], ["fe:ff:ff:ff:ff:ff"]],
    ["01:00:5e:00:00:01", "03:00:00:00:00:01", "ff:ff:ff:ff:ff:ff", "02:00:00:00:00", "02:00:00:00:00:01:02", "00:00:00:00:00:00", "02-00-00-00-00-01", "0200.0000.0001", "zz:00:00:00:00:01", "2:0:0:0:0:1", 5]],
  ["up", [[false], [true]], ["true", 1, null]],
  ["master", [["br-lan"]], badIfnames.filter((v) => v !== null)],
  ["addresses", [
    [["2001:DB8:0::1/64", "192.0.2.1/24"], ["192.0.2.1/24", "2001:db8::1/64"]],
    [["198.51.100.7/32", "10.0.0.1/8"], ["10.0.0.1/8", "198.51.100.7/32"]],
    [["2001:0db8:0000:0000:0000:0000:0000:0002/128"], ["2001:db8::2/128"]],
    [[]],
  ], [["192.0.2.1/24", "192.0.2.1/24"], ["2001:db8::1/64", "2001:DB8:0::1/64"], "192.0.2.1/24", { a: 1 }]],
  ["adopt", [[true], [false]], ["yes", 0]],
];
const badCidrs: unknown[] = ["192.0.2.1", "192.0.2.1/33", "2001:db8::1/129", "garbage/24", "192.0.2.1/24/1", "fe80::1%eth0/64", "192.0.2.256/24", "192.0.2.1/-1", "192.0.2.1/", "/24", "192.0.2.1/2x", " 192.0.2.1/24", 5];

const kindCases: Record<string, [string, [unknown, unknown?][], unknown[]][]> = {
  Bridge: [
    ["stp", [[true], [false]], ["on", 1]],
    ["forwardDelay", [[0], [4], [4.5], [30], [2.25]], [-1, 31, 4.005, "4", null]],
    ["helloTime", [[1], [2.5], [10]], [0.5, 11, 0, "2"]],
    ["maxAge", [[6], [20], [40]], [5, 41, 20.001]],
    ["ageingTime", [[0], [300], [1_000_000]], [-1, 1_000_001, 0.001, "300"]],
    ["priority", [[0], [4096], [65535]], [-1, 65536, 1.5, "4096"]],
    ["vlanFiltering", [[true], [false]], ["1", 1]],
    ["vlanDefaultPvid", [[0], [1], [4094]], [4095, -1, 1.5]],
    ["vlanProtocol", [["802.1Q"], ["802.1ad"]], ["802.1q", "QinQ", "", 0x8100]],
    ["mcastSnooping", [[true], [false]], [0, "false"]],
  ],
  TapDevice: [
    ["mode", [["tap"], ["tun"]], ["TAP", "tunnel", "", 1]],
    ["owner", [[0], [1000], [4294967294], ["qemu"], ["libvirt-qemu"], ["_apt"], ["nfs$"]], [-1, 4294967295, 1.5, "1000", "bad name", "$(id)", "a;b", "a".repeat(33), "", true]],
    ["group", [[0], [36], ["kvm"]], [-1, "10", "a b", "-kvm", false]],
    ["multiQueue", [[true]], ["true", 1]],
    ["vnetHdr", [[true]], [1, "yes"]],
    ["pi", [[true]], [null, "no"]],
  ],
  VethPair: [
    ["peerName", goodIfnames.map((v) => [v]), badIfnames],
    ["peerNamespace", goodNetns.map((v) => [v]), badNetns],
    ["peerMtu", [[68], [9000]], [10, 65536, "1500"]],
    ["peerMacAddress", [["02:00:00:00:00:AA", "02:00:00:00:00:aa"]], ["01:00:00:00:00:01", "00:00:00:00:00:00", "02:00:00:00:00"]],
    ["peerMaster", [["br0"]], ["$(x)", longName, "a b"]],
    ["peerAddresses", [[["2001:DB8::5/64", "192.0.2.5/24"], ["192.0.2.5/24", "2001:db8::5/64"]]], [["192.0.2.5/24", "192.0.2.5/24"], "192.0.2.5/24", 5]],
    ["peerUp", [[false]], ["no", 0]],
  ],
  Namespace: [
    ["name", goodNetns.map((v) => [v]), badNetns],
    ["adopt", [[true]], ["true"]],
  ],
};

const validHostKey = "SHA256:" + "A".repeat(20) + "b+/9".repeat(5) + "xyz";
const connectionCases: [string, [unknown, unknown?][], unknown[]][] = [
  ["host", [["192.0.2.1"], ["host-1.example"], ["2001:db8::1"], ["[2001:db8::1]"]], ["", "a b", "h;rm", "$(x)", "h\n", "h`x`", "-oProxyCommand=x", 5, null]],
  ["port", [[1], [22], [65535]], [0, 65536, 22.5, "22", -22]],
  ["user", [["root"], ["deploy.user"], ["_svc-1"]], ["", "-root", "a b", "ro;ot", "$(id)", 0]],
  ["privateKeyPath", [["/home/u/.ssh/id_ed25519"]], ["", 5]],
  ["agent", [[true], [false], ["/run/user/1000/ssh-agent.sock"]], [5, ""]],
  ["hostKey", [[validHostKey], [validHostKey + "="]], ["SHA256:short", "MD5:aa:bb", "sha256:" + "A".repeat(43), "SHA256:" + "A".repeat(44), 1]],
  ["knownHostsPath", [["/tmp/known_hosts"]], ["", false]],
  ["insecureSkipHostKeyCheck", [[true], [false]], ["true", 1]],
  ["sudo", [[true], [false], [{ password: "pw" }]], ["yes", 1]],
  ["connectTimeoutMs", [[100], [10_000], [600_000]], [99, 600_001, 1.5, "1000"]],
  ["bastion.host", [["198.51.100.1"]], ["", "a b", 7]],
  ["bastion.port", [[2222]], [0, "22"]],
  ["bastion.bastion.user", [["jump"]], ["-x"]],
];

describe("check: valid and invalid values of every field", () => {
  afterEach(() => resetDefaults());

  for (const [field, good, bad] of commonCases) {
    for (const kind of LINK_KINDS) {
      it(`${kind}.${field}`, async () => {
        for (const [value, want] of good) expect(await accepted(kind, field, value)).toEqual(want === undefined ? value : want);
        for (const value of bad) {
          const f = await rejected(kind, field, value);
          if (!Array.isArray(value)) expect(f.reason).toContain(JSON.stringify(value));
        }
      });
    }
  }

  for (const kind of LINK_KINDS) {
    for (const field of ["addresses", ...(kind === "VethPair" ? ["peerAddresses"] : [])]) {
      it(`${kind}.${field}: each bad CIDR is named with its index`, async () => {
        for (const value of badCidrs) {
          const f = await rejected(kind, field, ["10.0.0.1/8", value], `${field}[1]`);
          expect(f.reason).toContain(JSON.stringify(value));
        }
      });
    }
  }

  for (const [kind, cases] of Object.entries(kindCases)) {
    for (const [field, good, bad] of cases) {
      it(`${kind}.${field}`, async () => {
        for (const [value, want] of good) expect(await accepted(kind, field, value)).toEqual(want === undefined ? value : want);
        for (const value of bad) {
          const f = await rejected(kind, field, value);
          if (!Array.isArray(value)) expect(f.reason).toContain(JSON.stringify(value));
        }
      });
    }
  }

  for (const kind of KINDS) {
    it(`${kind}: connection fields`, async () => {
      for (const [field, good, bad] of connectionCases) {
        for (const [value, want] of good) expect(await accepted(kind, `connection.${field}`, value)).toEqual(want === undefined ? value : want);
        for (const value of bad) {
          const f = await rejected(kind, `connection.${field}`, value);
          expect(f.reason).toContain(JSON.stringify(value));
        }
      }
    });
  }

  it("the engine class checks the same way as the registry entry", async () => {
    const direct = await new LinkEngine(bridge).check({}, { connection: conn, name: "br0", mtu: 10 });
    expect(direct.failures).toEqual([{ property: "mtu", reason: "mtu must be at least 68 (got 10)" }]);
    expect((await new LinkEngine(tuntap).check({}, { connection: conn, name: "t", mode: "x" })).failures.map((f) => f.property)).toEqual(["mode"]);
    expect((await new LinkEngine(veth).check({}, { connection: conn, name: "v" })).failures.map((f) => f.property)).toEqual(["peerName"]);
  });

  it("required fields are named when missing", async () => {
    expect((await provider("Bridge").check({}, { connection: conn })).failures.map((f) => f.property)).toEqual(["name"]);
    expect((await provider("VethPair").check({}, { connection: conn, name: "a" })).failures.map((f) => f.property)).toEqual(["peerName"]);
    expect((await provider("Namespace").check({}, { connection: conn })).failures.map((f) => f.property)).toEqual(["name"]);
    const f = (await provider("Bridge").check({}, { connection: { port: 22 }, name: "b" })).failures;
    expect(f.map((x) => x.property)).toContain("connection.host");
  });
});

describe("check: strictness and cross-field rules", () => {
  it("unknown fields are rejected, at the top level and inside connection", async () => {
    for (const kind of KINDS) {
      const top = await check(kind, { colour: "blue" });
      expect(top.failures).toEqual([{ property: "colour", reason: 'unknown field "colour"' }]);
      const inner = await check(kind, { connection: { ...conn, hostname: "x" } });
      expect(inner.failures).toEqual([{ property: "connection", reason: 'unknown field "connection.hostname"' }]);
      const sudo = await check(kind, { connection: { ...conn, sudo: { password: "x", user: "y" } } });
      expect(sudo.failures.map((x) => x.property)).toEqual(["connection.sudo"]);
    }
    // Fields of one kind are unknown to another.
    expect((await check("Bridge", { mode: "tap" })).failures.map((f) => f.property)).toEqual(["mode"]);
    expect((await check("TapDevice", { stp: true })).failures.map((f) => f.property)).toEqual(["stp"]);
    expect((await check("Namespace", { mtu: 1500 })).failures.map((f) => f.property)).toEqual(["mtu"]);
    expect((await check("Namespace", { namespace: "x" })).failures.map((f) => f.property)).toEqual(["namespace"]);
  });

  it("master may not be the device itself", async () => {
    for (const kind of LINK_KINDS) {
      const f = await check(kind, { master: (base[kind] as any).name });
      expect(f.failures).toHaveLength(1);
      expect(f.failures[0].property).toBe("master");
      expect(f.failures[0].reason).toContain(JSON.stringify((base[kind] as any).name));
    }
  });

  it("VethPair: peerName equal to name only across namespaces", async () => {
    const same = await check("VethPair", { name: "ve0", peerName: "ve0" });
    expect(same.failures.map((f) => f.property)).toEqual(["peerName"]);
    expect(same.failures[0].reason).toContain('"ve0"');
    const sameExplicit = await check("VethPair", { name: "ve0", peerName: "ve0", namespace: "a", peerNamespace: "a" });
    expect(sameExplicit.failures.map((f) => f.property)).toEqual(["peerName"]);
    const inheritsNs = await check("VethPair", { name: "ve0", peerName: "ve0", namespace: "a" });
    expect(inheritsNs.failures.map((f) => f.property)).toEqual(["peerName"]);
    expect((await check("VethPair", { name: "ve0", peerName: "ve0", peerNamespace: "c1" })).failures).toEqual([]);
    expect((await check("VethPair", { name: "ve0", peerName: "ve0", namespace: "a", peerNamespace: "b" })).failures).toEqual([]);
    const pm = await check("VethPair", { peerMaster: "ve1" });
    expect(pm.failures.map((f) => f.property)).toEqual(["peerMaster"]);
  });

  it("TapDevice: a tun device takes no macAddress", async () => {
    const r = await check("TapDevice", { mode: "tun", macAddress: "02:00:00:00:00:01" });
    expect(r.failures.map((f) => f.property)).toEqual(["macAddress"]);
    expect(r.failures[0].reason).toContain("02:00:00:00:00:01");
    expect((await check("TapDevice", { mode: "tap", macAddress: "02:00:00:00:00:01" })).failures).toEqual([]);
    expect((await check("TapDevice", { macAddress: "02:00:00:00:00:01" })).failures).toEqual([]);
    expect((await check("TapDevice", { mode: "tun", mtu: 1400 })).failures).toEqual([]);
  });

  it("Bridge: forwardDelay below 2 s only while STP is off", async () => {
    const r = await check("Bridge", { stp: true, forwardDelay: 1.5 });
    expect(r.failures.map((f) => f.property)).toEqual(["forwardDelay"]);
    expect(r.failures[0].reason).toContain("1.5");
    expect((await check("Bridge", { stp: true, forwardDelay: 2 })).failures).toEqual([]);
    expect((await check("Bridge", { stp: false, forwardDelay: 1.5 })).failures).toEqual([]);
    expect((await check("Bridge", { forwardDelay: 0 })).failures).toEqual([]);
  });

  it("several problems are all reported", async () => {
    const r = await check("Bridge", { name: "", mtu: 1, macAddress: "01:00:00:00:00:00", extra: true });
    expect([...new Set(r.failures.map((f) => f.property))].sort()).toEqual(["extra", "macAddress", "mtu", "name"]);
  });
});
