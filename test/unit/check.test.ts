// check() as the provider host calls it: defaults filled in, connection.host from the
// resource or stack config, preview placeholders accepted, secrets kept out of failures.
import { afterEach, describe, expect, it } from "vitest";
import { configureDefaults, resetDefaults } from "../../provider/engine";
import { provider } from "../../provider/runtime";
import { UNKNOWN } from "../../provider/schema";
import { checkCore as check, conn, coreBase as base } from "../support/unit";

const KINDS = Object.keys(base);

describe("check: defaults", () => {
  it("fills in the documented defaults", async () => {
    expect((await check("Bridge", {})).inputs).toEqual({ connection: conn, name: "br0", up: true, adopt: false });
    expect((await check("TapDevice", {})).inputs).toEqual({
      connection: conn, name: "tap0", up: true, adopt: false, mode: "tap", multiQueue: false, vnetHdr: false, pi: false,
    });
    expect((await check("VethPair", {})).inputs).toEqual({ connection: conn, name: "ve0", peerName: "ve1", up: true, adopt: false, peerUp: true });
    expect((await check("Namespace", {})).inputs).toEqual({ connection: conn, name: "ns0", adopt: false });
  });

  it("does not override given values, and drops undefined ones and __provider", async () => {
    const r = await check("TapDevice", { up: false, adopt: true, mode: "tun", pi: true, mtu: undefined, __provider: "exports.handler=..." });
    expect(r.failures).toEqual([]);
    expect(r.inputs).toEqual({ connection: conn, name: "tap0", up: false, adopt: true, mode: "tun", multiQueue: false, vnetHdr: false, pi: true });
  });
});

describe("check: connection.host and stack-config defaults", () => {
  afterEach(() => resetDefaults());

  for (const kind of KINDS) {
    it(`${kind}: host is required unless stack config gives one`, async () => {
      const { connection: _c, ...rest } = base[kind];
      const none = await provider(kind).check({}, rest);
      expect(none.failures).toHaveLength(1);
      expect(none.failures[0].property).toBe("connection.host");
      const noHost = await provider(kind).check({}, { ...rest, connection: { user: "admin" } });
      expect(noHost.failures.map((f) => f.property)).toContain("connection.host");

      configureDefaults((k) => ({ "netdev:host": "192.0.2.20", "netdev:port": "2222" })[k]);
      expect((await provider(kind).check({}, rest)).failures).toEqual([]);
      expect((await provider(kind).check({}, { ...rest, connection: { user: "admin" } })).failures).toEqual([]);
      resetDefaults();
      expect((await provider(kind).check({}, rest)).failures.map((f) => f.property)).toEqual(["connection.host"]);
    });
  }

  it("configure on the runtime sets the defaults", async () => {
    const rt = provider("Bridge");
    await rt.configure({ config: { get: (k) => (k === "netdev:host" ? "192.0.2.30" : undefined) } });
    expect((await rt.check({}, { name: "br0" })).failures).toEqual([]);
  });
});

describe("check: the preview placeholder is accepted anywhere", () => {
  const cases: [string, Record<string, unknown>][] = [
    ["Bridge", { name: UNKNOWN }],
    ["Bridge", { mtu: UNKNOWN, macAddress: UNKNOWN, up: UNKNOWN, adopt: UNKNOWN, namespace: UNKNOWN }],
    ["Bridge", { master: UNKNOWN }],
    ["Bridge", { name: UNKNOWN, master: UNKNOWN }],
    ["Bridge", { addresses: UNKNOWN }],
    ["Bridge", { addresses: [UNKNOWN, "192.0.2.1/24"] }],
    ["Bridge", { addresses: [UNKNOWN, UNKNOWN] }],
    ["Bridge", { stp: true, forwardDelay: UNKNOWN }],
    ["Bridge", { stp: UNKNOWN, forwardDelay: 1 }],
    ["Bridge", { priority: UNKNOWN, vlanProtocol: UNKNOWN, ageingTime: UNKNOWN }],
    ["Bridge", { connection: UNKNOWN }],
    ["Bridge", { connection: { host: UNKNOWN } }],
    ["Bridge", { connection: { host: "192.0.2.10", port: UNKNOWN, privateKey: UNKNOWN, hostKey: UNKNOWN, sudo: UNKNOWN } }],
    ["Bridge", { connection: { host: "192.0.2.10", bastion: UNKNOWN } }],
    ["Bridge", { connection: { host: "192.0.2.10", bastion: { host: UNKNOWN, port: UNKNOWN } } }],
    ["TapDevice", { mode: UNKNOWN, macAddress: "02:00:00:00:00:01" }],
    ["TapDevice", { mode: "tun", macAddress: UNKNOWN }],
    ["TapDevice", { owner: UNKNOWN, group: UNKNOWN, multiQueue: UNKNOWN, vnetHdr: UNKNOWN, pi: UNKNOWN }],
    ["VethPair", { peerName: UNKNOWN }],
    ["VethPair", { name: UNKNOWN, peerName: UNKNOWN }],
    ["VethPair", { name: "ve0", peerName: "ve0", peerNamespace: UNKNOWN }],
    ["VethPair", { name: "ve0", peerName: "ve0", namespace: UNKNOWN, peerNamespace: UNKNOWN }],
    ["VethPair", { peerMaster: UNKNOWN, peerName: UNKNOWN }],
    ["VethPair", { peerAddresses: [UNKNOWN], peerMtu: UNKNOWN, peerMacAddress: UNKNOWN, peerUp: UNKNOWN }],
    ["Namespace", { name: UNKNOWN }],
    ["Namespace", { connection: UNKNOWN, adopt: UNKNOWN }],
  ];
  for (const [kind, extra] of cases) {
    it(`${kind} ${JSON.stringify(extra).replaceAll(UNKNOWN, "?")}`, async () => {
      expect((await check(kind, extra)).failures).toEqual([]);
    });
  }

  it("still reports real problems next to a placeholder", async () => {
    const r = await check("Bridge", { addresses: [UNKNOWN, "not-a-cidr"], mtu: 5, master: UNKNOWN });
    expect(r.failures.map((f) => f.property).sort()).toEqual(["addresses[1]", "mtu"]);
    const u = await check("Bridge", { connection: UNKNOWN, bogus: 1 });
    expect(u.failures.map((f) => f.property)).toEqual(["bogus"]);
  });
});

describe("check: secrets never appear in failures", () => {
  const secretCases: Record<string, unknown>[] = [
    { privateKey: 8675309 },
    { privateKey: "" },
    { privateKey: ["-----BEGIN OPENSSH PRIVATE KEY-----8675309"] },
    { passphrase: 8675309 },
    { passphrase: { text: "8675309" } },
    { password: 8675309 },
    { password: ["8675309"] },
    { sudo: { password: 8675309 } },
    { sudo: { password: "8675309", user: "x" } },
    { sudo: { password: "8675309" }, port: "x" },
    { bastion: { host: "192.0.2.5", privateKey: 8675309 } },
    { bastion: { host: "192.0.2.5", password: "8675309", port: 0 } },
    { bastion: { host: "192.0.2.5", sudo: { password: 8675309 } } },
    { bastion: { password: "8675309" } },
  ];
  for (const kind of KINDS) {
    it(`${kind}`, async () => {
      for (const extra of secretCases) {
        const r = await check(kind, { connection: { ...conn, ...extra } });
        expect(r.failures.length, JSON.stringify(extra)).toBeGreaterThan(0);
        expect(r.failures.every((f) => f.property.startsWith("connection"))).toBe(true);
        expect(JSON.stringify(r.failures), JSON.stringify(extra)).not.toContain("8675309");
        expect(JSON.stringify(r.failures)).not.toContain("BEGIN OPENSSH");
      }
    });
  }
});
