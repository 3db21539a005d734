// diff: old outputs against new (checked) inputs → update, replace or nothing.
import { describe, expect, it } from "vitest";
import { diffInputs } from "../../provider/engine";
import { provider } from "../../provider/runtime";
import { UNKNOWN } from "../../provider/schema";

const conn = { host: "192.0.2.10", user: "root", privateKey: "KEY-A" };

/** What create would have returned: inputs plus the kernel's view and extra outputs. */
const bridgeOuts = {
  connection: conn, name: "br0", up: true, adopt: false, stp: false, forwardDelay: 15, mtu: 1500,
  macAddress: "02:00:00:00:00:01", addresses: ["192.0.2.1/24"], ifindex: 4, operState: "UP", helloTime: 2, priority: 32768,
};
const tapOuts = {
  connection: conn, name: "tap0", up: true, adopt: false, mode: "tap", multiQueue: false, vnetHdr: true, pi: false,
  mtu: 1500, macAddress: "02:00:00:00:00:02", addresses: [], ifindex: 5, operState: "DOWN",
};
const vethOuts = {
  connection: conn, name: "ve0", up: true, adopt: false, peerName: "ve1", peerNamespace: "c1", peerUp: true, peerMtu: 1500,
  peerAddresses: [], mtu: 1500, macAddress: "02:00:00:00:00:03", addresses: [], ifindex: 6, operState: "UP", peerIfindex: 2,
};

/** check (as the engine does before diff) then diff. */
async function diff(kind: string, olds: Record<string, any>, news: Record<string, any>) {
  const checked = await provider(kind).check(olds, news);
  expect(checked.failures).toEqual([]);
  return provider(kind).diff("id", olds, checked.inputs);
}

const none = { changes: false, replaces: [], deleteBeforeReplace: true };
const update = { changes: true, replaces: [], deleteBeforeReplace: true };
const replace = (...fields: string[]) => ({ changes: true, replaces: fields, deleteBeforeReplace: true });

describe("diff", () => {
  it("no change: outputs-only keys and defaults do not count", async () => {
    expect(await diff("Bridge", bridgeOuts, { connection: conn, name: "br0", stp: false, forwardDelay: 15 })).toEqual(none);
    expect(await diff("Bridge", bridgeOuts, { connection: conn, name: "br0", addresses: ["192.0.2.1/24"], mtu: 1500 })).toEqual(none);
    expect(await diff("TapDevice", tapOuts, { connection: conn, name: "tap0", vnetHdr: true })).toEqual(none);
    expect(await diff("VethPair", vethOuts, { connection: conn, name: "ve0", peerName: "ve1", peerNamespace: "c1" })).toEqual(none);
    expect(await diff("Namespace", { connection: conn, name: "ns0", adopt: false }, { connection: conn, name: "ns0" })).toEqual(none);
  });

  it("no change when inputs differ only in text the check normalises", async () => {
    const olds = { ...bridgeOuts, addresses: ["192.0.2.1/24", "2001:db8::1/64"] };
    expect(await diff("Bridge", olds, { connection: conn, name: "br0", addresses: ["2001:DB8:0::1/64", "192.0.2.1/24"], macAddress: "02:00:00:00:00:01".toUpperCase() })).toEqual(none);
  });

  it("in-place changes are updates", async () => {
    expect(await diff("Bridge", bridgeOuts, { connection: conn, name: "br0", mtu: 1400 })).toEqual(update);
    expect(await diff("Bridge", bridgeOuts, { connection: conn, name: "br0", stp: true, forwardDelay: 4 })).toEqual(update);
    expect(await diff("Bridge", bridgeOuts, { connection: conn, name: "br0", up: false })).toEqual(update);
    expect(await diff("Bridge", bridgeOuts, { connection: conn, name: "br0", addresses: [] })).toEqual(update);
    expect(await diff("Bridge", bridgeOuts, { connection: conn, name: "br0", master: "br-top" })).toEqual(update);
    expect(await diff("TapDevice", tapOuts, { connection: conn, name: "tap0", vnetHdr: true, macAddress: "02:00:00:00:00:22" })).toEqual(update);
    expect(await diff("VethPair", vethOuts, { connection: conn, name: "ve0", peerName: "ve1", peerNamespace: "c1", peerMtu: 9000, peerUp: false })).toEqual(update);
  });

  it("creation-only changes replace, deleting first", async () => {
    expect(await diff("TapDevice", tapOuts, { connection: conn, name: "tap0", vnetHdr: true, mode: "tun" })).toEqual(replace("mode"));
    expect(await diff("TapDevice", tapOuts, { connection: conn, name: "tap0", vnetHdr: false })).toEqual(replace("vnetHdr"));
    expect(await diff("TapDevice", tapOuts, { connection: conn, name: "tap0", vnetHdr: true, owner: 1000, multiQueue: true })).toEqual(replace("owner", "multiQueue"));
    expect(await diff("TapDevice", tapOuts, { connection: conn, name: "tap0", vnetHdr: true, pi: true, mtu: 1400 })).toEqual(replace("pi"));
    expect(await diff("VethPair", vethOuts, { connection: conn, name: "ve0", peerName: "eth0", peerNamespace: "c1" })).toEqual(replace("peerName"));
    expect(await diff("VethPair", vethOuts, { connection: conn, name: "ve0", peerName: "ve1", peerNamespace: "c2" })).toEqual(replace("peerNamespace"));
  });

  it("name and namespace replace", async () => {
    expect(await diff("Bridge", bridgeOuts, { connection: conn, name: "br1" })).toEqual(replace("name"));
    expect(await diff("Bridge", bridgeOuts, { connection: conn, name: "br0", namespace: "ns1" })).toEqual(replace("namespace"));
    expect(await diff("Bridge", { ...bridgeOuts, namespace: "ns1" }, { connection: conn, name: "br0", namespace: "ns2" })).toEqual(replace("namespace"));
    expect(await diff("Namespace", { connection: conn, name: "ns0", adopt: false }, { connection: conn, name: "ns1" })).toEqual(replace("name"));
  });

  it("leaving out namespace moves the device to the host's own namespace: replace", async () => {
    expect(await diff("Bridge", { ...bridgeOuts, namespace: "ns1" }, { connection: conn, name: "br0" })).toEqual(replace("namespace"));
    expect(await diff("TapDevice", { ...tapOuts, namespace: "vm1" }, { connection: conn, name: "tap0", vnetHdr: true })).toEqual(replace("namespace"));
  });

  it("VethPair: leaving out peerNamespace puts the peer with this end: replace, unless that is where it was", async () => {
    expect(await diff("VethPair", vethOuts, { connection: conn, name: "ve0", peerName: "ve1" })).toEqual(replace("peerNamespace"));
    const both = { ...vethOuts, namespace: "c1" };
    expect(await diff("VethPair", both, { connection: conn, name: "ve0", namespace: "c1", peerName: "ve1" })).toEqual(none);
    const hostSide = { ...vethOuts, peerNamespace: undefined };
    expect(await diff("VethPair", hostSide, { connection: conn, name: "ve0", peerName: "ve1" })).toEqual(none);
  });

  it("another host or port replaces (as 'connection')", async () => {
    expect(await diff("Bridge", bridgeOuts, { connection: { ...conn, host: "192.0.2.11" }, name: "br0" })).toEqual(replace("connection"));
    expect(await diff("Bridge", bridgeOuts, { connection: { ...conn, port: 2222 }, name: "br0" })).toEqual(replace("connection"));
    expect(await diff("Namespace", { connection: conn, name: "ns0" }, { connection: { ...conn, host: "h2" }, name: "ns0" })).toEqual(replace("connection"));
    // Port 22 written out is the same as the default.
    expect(await diff("Bridge", bridgeOuts, { connection: { ...conn, port: 22 }, name: "br0" })).toEqual(update);
  });

  it("credential-only connection changes are updates (state keeps the newest), never replacements", async () => {
    expect(await diff("Bridge", bridgeOuts, { connection: { ...conn, privateKey: "KEY-B" }, name: "br0" })).toEqual(update);
    expect(await diff("Bridge", bridgeOuts, { connection: { ...conn, user: "admin", sudo: true }, name: "br0" })).toEqual(update);
    expect(await diff("VethPair", vethOuts, { connection: { ...conn, hostKey: "SHA256:" + "a".repeat(43) }, name: "ve0", peerName: "ve1", peerNamespace: "c1" })).toEqual(update);
    expect(await diff("Namespace", { connection: conn, name: "ns0" }, { connection: { ...conn, password: "pw" }, name: "ns0" })).toEqual(update);
  });

  it("adopt is not device state: toggling it changes nothing", async () => {
    expect(await diff("Bridge", bridgeOuts, { connection: conn, name: "br0", adopt: true })).toEqual(none);
    expect(await diff("Bridge", { ...bridgeOuts, adopt: true }, { connection: conn, name: "br0", adopt: false })).toEqual(none);
    expect(await diff("Namespace", { connection: conn, name: "ns0", adopt: true }, { connection: conn, name: "ns0" })).toEqual(none);
  });

  it("preview placeholders in the new inputs are changes", async () => {
    expect(await diff("Bridge", bridgeOuts, { connection: conn, name: "br0", mtu: UNKNOWN })).toEqual(update);
    expect(await diff("Bridge", bridgeOuts, { connection: conn, name: "br0", addresses: [UNKNOWN] })).toEqual(update);
    expect(await diff("Bridge", bridgeOuts, { connection: UNKNOWN, name: "br0" })).toEqual(update);
    expect(await diff("Bridge", bridgeOuts, { connection: { ...conn, privateKey: UNKNOWN }, name: "br0" })).toEqual(update);
    expect(await diff("Bridge", bridgeOuts, { connection: conn, name: UNKNOWN })).toEqual(replace("name"));
    expect(await diff("TapDevice", tapOuts, { connection: conn, name: "tap0", vnetHdr: true, mode: UNKNOWN })).toEqual(replace("mode"));
  });

  it("diffInputs ignores __provider and keys only the outputs have", () => {
    expect(diffInputs({ a: 1, out: 2, __provider: "x" }, { a: 1, __provider: "y" }, ["a"])).toEqual(none);
    expect(diffInputs({ a: 1 }, { a: 2 }, [])).toEqual(update);
    expect(diffInputs({ a: 1 }, { a: 2 }, ["a"])).toEqual(replace("a"));
    expect(diffInputs({ a: 1 }, { a: undefined }, ["a"])).toEqual(none);
  });
});
