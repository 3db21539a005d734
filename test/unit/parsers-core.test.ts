// Parsing the kernel's JSON: fixtures recorded from `ip -j -d addr show dev X` on this
// machine's kernel (iproute2 6.1), in network namespaces ut-rec-a / ut-rec-b.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { LinkEngine } from "../../provider/engine";
import { CommandError, NotFoundError } from "../../provider/errors";
import { isAdminUp, isGoneError, type LinkJson, linkAddresses, readAllLinks, readLink } from "../../provider/iproute/link";
import { bridge } from "../../provider/kinds/bridge";
import { tuntap } from "../../provider/kinds/tuntap";
import { veth } from "../../provider/kinds/veth";
import { FakeTransport } from "../../provider/transport/fake";

function raw(name: string): string {
  return readFileSync(join(__dirname, "../fixtures/iproute", `${name}.json`), "utf8");
}
function fixture(name: string): LinkJson {
  return JSON.parse(raw(name))[0];
}
const show = (ns: string | undefined, dev: string) => (ns ? ["ip", "-n", ns, "-j", "-d", "addr", "show", "dev", dev] : ["ip", "-j", "-d", "addr", "show", "dev", dev]);

describe("bridge.readFields", () => {
  it("timers in seconds, flags as booleans", () => {
    const t = new FakeTransport();
    expect(bridge.readFields(fixture("bridge-timers"), { transport: t, desired: { name: "br-ut" } })).toEqual({
      stp: true, forwardDelay: 4, helloTime: 3, maxAge: 25, ageingTime: 120, priority: 4096,
      vlanFiltering: false, vlanDefaultPvid: undefined, vlanProtocol: undefined, mcastSnooping: false,
    });
    expect(t.calls).toEqual([]);
  });

  it("during an STP topology change the temporary ageing time (2 x forward_delay) is not reported as the setting", () => {
    const link = fixture("bridge-topology-change"); // recorded right after a port joined: ageing_time 800, topology_change 1
    expect(link.linkinfo!.info_data!.ageing_time).toBe(800);
    const t = new FakeTransport();
    expect(bridge.readFields(link, { transport: t, desired: { name: "br-ut", ageingTime: 120 } })).toMatchObject({ ageingTime: 120, forwardDelay: 4, stp: true });
    expect(bridge.readFields(link, { transport: t, desired: { name: "br-ut" } })).toMatchObject({ ageingTime: undefined });
    // Once the change is over, the kernel's value is reported again (drift is visible).
    expect(bridge.readFields(fixture("bridge-timers"), { transport: t, desired: { name: "br-ut", ageingTime: 60 } })).toMatchObject({ ageingTime: 120 });
  });

  it("options this kernel does not report stay undefined; present ones are converted", () => {
    const link = fixture("bridge-timers");
    link.linkinfo!.info_data = { ...link.linkinfo!.info_data, vlan_filtering: 1, vlan_default_pvid: 7, vlan_protocol: "802.1ad", stp_state: 0, ageing_time: 1 };
    const f = bridge.readFields(link, { transport: new FakeTransport(), desired: { name: "br-ut" } }) as Record<string, unknown>;
    expect(f).toMatchObject({ vlanFiltering: true, vlanDefaultPvid: 7, vlanProtocol: "802.1ad", stp: false, ageingTime: 0.01 });
    expect(bridge.readFields({ ...link, linkinfo: { info_kind: "bridge" } }, { transport: new FakeTransport(), desired: { name: "x" } })).toEqual({
      stp: undefined, forwardDelay: undefined, helloTime: undefined, maxAge: undefined, ageingTime: undefined, priority: undefined,
      vlanFiltering: undefined, vlanDefaultPvid: undefined, vlanProtocol: undefined, mcastSnooping: undefined,
    });
  });
});

describe("tuntap.readFields", () => {
  it("tap with owner and group printed by name; compared by number when the input is a number", async () => {
    const t = new FakeTransport().on(["getent", "group", "daemon"], { stdout: "daemon:x:1:\n" });
    const link = fixture("tap-user-group");
    expect(await tuntap.readFields(link, { transport: t, desired: { name: "tap-ut", owner: "daemon", group: 1 } })).toEqual({
      mode: "tap", owner: "daemon", group: 1, multiQueue: true, vnetHdr: true, pi: false,
    });
    expect(t.calls.map((c) => c.argv)).toEqual([["getent", "group", "daemon"]]);

    const t2 = new FakeTransport().on(["getent", "passwd", "daemon"], { stdout: "daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n" });
    expect(await tuntap.readFields(link, { transport: t2, desired: { name: "tap-ut", owner: 1 } })).toMatchObject({ owner: 1, group: "daemon" });
    expect(t2.calls.map((c) => c.argv)).toEqual([["getent", "passwd", "daemon"]]);
  });

  it("an owner name the host cannot resolve stays a name (and so mismatches a numeric input)", async () => {
    const t = new FakeTransport().on(["getent"], { code: 2 });
    expect(await tuntap.readFields(fixture("tap-user-group"), { transport: t, desired: { name: "tap-ut", owner: 1 } })).toMatchObject({ owner: "daemon" });
  });

  it("owner and group the kernel prints as numbers need no lookup", async () => {
    const t = new FakeTransport();
    expect(await tuntap.readFields(fixture("tap-numeric-owner"), { transport: t, desired: { name: "tap-uid", owner: 4242, group: 4343 } })).toEqual({
      mode: "tap", owner: 4242, group: 4343, multiQueue: false, vnetHdr: false, pi: false,
    });
    expect(t.calls).toEqual([]);
  });

  it("tun with packet information, no owner", async () => {
    expect(await tuntap.readFields(fixture("tun-pi"), { transport: new FakeTransport(), desired: { name: "tun-ut" } })).toEqual({
      mode: "tun", owner: undefined, group: undefined, multiQueue: false, vnetHdr: false, pi: true,
    });
  });
});

describe("veth.readFields", () => {
  it("same namespace: the peer is found by name through `link`", async () => {
    const t = new FakeTransport().on(show("ut-rec-a", "ve-b"), { stdout: raw("veth-same-ns-b") });
    expect(await veth.readFields(fixture("veth-same-ns-a"), { transport: t, desired: { name: "ve-a", namespace: "ut-rec-a", peerName: "ve-b" } })).toEqual({
      peerName: "ve-b", peerNamespace: undefined, peerMtu: 1500, peerMacAddress: "92:c1:5a:12:1d:93", peerMaster: undefined,
      peerAddresses: ["198.51.100.2/24"], peerUp: true, peerIfindex: 6,
    });
    expect(t.calls.map((c) => c.argv)).toEqual([show("ut-rec-a", "ve-b")]);
  });

  it("across namespaces: the peer is read in its namespace and matched by ifindex", async () => {
    const t = new FakeTransport().on(show("ut-rec-b", "vx-b"), { stdout: raw("veth-cross-ns-b") });
    const desired = { name: "vx-a", namespace: "ut-rec-a", peerName: "vx-b", peerNamespace: "ut-rec-b" };
    expect(await veth.readFields(fixture("veth-cross-ns-a"), { transport: t, desired })).toEqual({
      peerName: "vx-b", peerNamespace: "ut-rec-b", peerMtu: 1300, peerMacAddress: "02:00:00:00:bb:02", peerMaster: undefined,
      peerAddresses: ["2001:db8:1::5/64", "203.0.113.5/24"], peerUp: true, peerIfindex: 2,
    });
    expect(t.calls.map((c) => c.argv)).toEqual([show("ut-rec-b", "vx-b")]);
  });

  it("a peer that is missing or paired with another device reads as no peer", async () => {
    // Same namespace, but `link` of ve-a names ve-b, not vx-b.
    const other = new FakeTransport().on(show("ut-rec-a", "vx-b"), { stdout: raw("veth-cross-ns-b") });
    expect(await veth.readFields(fixture("veth-same-ns-a"), { transport: other, desired: { name: "ve-a", namespace: "ut-rec-a", peerName: "vx-b" } })).toEqual({ peerName: undefined });
    // Across namespaces, ifindex 6 is not vx-a's link_index 2.
    const wrongIndex = new FakeTransport().on(show("ut-rec-b", "ve-b"), { stdout: raw("veth-same-ns-b") });
    expect(await veth.readFields(fixture("veth-cross-ns-a"), { transport: wrongIndex, desired: { name: "vx-a", namespace: "ut-rec-a", peerName: "ve-b", peerNamespace: "ut-rec-b" } })).toEqual({ peerName: undefined });
    const gone = new FakeTransport().on(show("ut-rec-b", "vx-b"), { code: 1, stderr: 'Device "vx-b" does not exist.\n' });
    expect(await veth.readFields(fixture("veth-cross-ns-a"), { transport: gone, desired: { name: "vx-a", namespace: "ut-rec-a", peerName: "vx-b", peerNamespace: "ut-rec-b" } })).toEqual({ peerName: undefined });
    const noNs = new FakeTransport().on(show("ut-rec-b", "vx-b"), { code: 255, stderr: 'Cannot open network namespace "ut-rec-b": No such file or directory\n' });
    expect(await veth.readFields(fixture("veth-cross-ns-a"), { transport: noNs, desired: { name: "vx-a", namespace: "ut-rec-a", peerName: "vx-b", peerNamespace: "ut-rec-b" } })).toEqual({ peerName: undefined });
  });
});

describe("common state", () => {
  it("linkAddresses excludes IPv6 link-local and sorts", () => {
    expect(linkAddresses(fixture("veth-same-ns-b"))).toEqual(["198.51.100.2/24"]);
    expect(linkAddresses(fixture("veth-cross-ns-b"))).toEqual(["2001:db8:1::5/64", "203.0.113.5/24"]);
    expect(linkAddresses(fixture("veth-same-ns-a"))).toEqual([]);
    expect(linkAddresses(fixture("bridge-timers"))).toEqual(["192.0.2.1/24", "2001:db8::1/64"]);
    expect(linkAddresses(fixture("tap-user-group"))).toEqual([]);
    expect(linkAddresses({ ...fixture("tun-pi"), addr_info: undefined })).toEqual([]);
  });

  it("linkAddresses leaves out what the kernel manages (link-local, SLAAC, temporary, finite lifetime) unless listed", () => {
    const forever = 4294967295;
    const link = { ...fixture("veth-cross-ns-b"), addr_info: [
      { family: "inet6", local: "2001:db8::5", prefixlen: 64, scope: "global", dynamic: true, valid_life_time: 300, preferred_life_time: 300 },
      { family: "inet6", local: "2001:db8:0:1:aaaa:bbff:fecc:dddd", prefixlen: 64, scope: "global", dynamic: true, mngtmpaddr: true, valid_life_time: 86400, preferred_life_time: 14400 },
      { family: "inet6", local: "2001:db8:0:1:1234:5678:9abc:def0", prefixlen: 64, scope: "global", temporary: true, dynamic: true, valid_life_time: 600, preferred_life_time: 300 },
      { family: "inet", local: "198.51.100.9", prefixlen: 24, scope: "global", dynamic: true, valid_life_time: 3600, preferred_life_time: 3600 },
      { family: "inet6", local: "fe80::1", prefixlen: 64, scope: "link", valid_life_time: forever, preferred_life_time: forever },
      { family: "inet6", local: "2001:db8::7", prefixlen: 64, scope: "global", valid_life_time: forever, preferred_life_time: forever },
      { family: "inet", local: "192.0.2.7", prefixlen: 24, scope: "global", valid_life_time: forever, preferred_life_time: forever },
    ] };
    expect(linkAddresses(link)).toEqual(["192.0.2.7/24", "2001:db8::7/64"]);
    // Listed, they count (so they verify and are never added twice).
    expect(linkAddresses(link, ["fe80::1/64", "2001:db8::5/64", "192.0.2.7/24"])).toEqual(["192.0.2.7/24", "2001:db8::5/64", "2001:db8::7/64", "fe80::1/64"]);
  });

  it("addresses: an update never removes an unlisted kernel-managed address, and adds a listed link-local one", () => {
    const link = { ...fixture("bridge-timers"), addr_info: [
      ...fixture("bridge-timers").addr_info!,
      { family: "inet6", local: "2001:db8:9::5", prefixlen: 64, scope: "global", dynamic: true, valid_life_time: 300, preferred_life_time: 300 },
      { family: "inet6", local: "fe80::aa:1", prefixlen: 64, scope: "link", valid_life_time: 4294967295, preferred_life_time: 4294967295 },
    ] };
    const d = { name: "br-ut", addresses: ["192.0.2.1/24", "fe80::1/64"] };
    const have = linkAddresses(link, d.addresses);
    expect(new LinkEngine(bridge).planSteps(d, [{ field: "addresses", desired: d.addresses, actual: have }], link)).toEqual([
      ["ip", "addr", "del", "2001:db8::1/64", "dev", "br-ut"],
      ["ip", "addr", "add", "fe80::1/64", "dev", "br-ut"],
    ]);
  });

  it("linkAddresses canonicalises IPv6 text the way check does", () => {
    const link = { ...fixture("veth-cross-ns-b"), addr_info: [
      { family: "inet6", local: "2001:DB8:0:0:0:0:0:5", prefixlen: 64, scope: "global" },
      { family: "inet", local: "10.1.2.3", prefixlen: 8, scope: "global" },
      { family: "inet6", local: "FE80::1", prefixlen: 64, scope: "link" },
      { family: "inet", local: "169.254.1.1", prefixlen: 16, scope: "link" },
    ] };
    expect(linkAddresses(link)).toEqual(["10.1.2.3/8", "169.254.1.1/16", "2001:db8::5/64"]);
  });

  it("the engine's view of common fields", async () => {
    const t = new FakeTransport();
    const br = await new LinkEngine(bridge).actualState(t, { name: "br-ut" }, fixture("bridge-timers"));
    expect(br).toMatchObject({ mtu: 1400, macAddress: "02:00:00:00:aa:01", master: undefined, addresses: ["192.0.2.1/24", "2001:db8::1/64"], up: true, forwardDelay: 4 });
    const tap = await new LinkEngine(tuntap).actualState(t, { name: "tap-ut" }, fixture("tap-user-group"));
    expect(tap).toMatchObject({ mtu: 1500, up: false, addresses: [], master: undefined, mode: "tap" });
    const t2 = new FakeTransport().on(show(undefined, "ve-b"), { stdout: raw("veth-same-ns-b") });
    const ve = await new LinkEngine(veth).actualState(t2, { name: "ve-a", peerName: "ve-b" }, fixture("veth-same-ns-a"));
    expect(ve).toMatchObject({ master: "br-ut", up: true, addresses: [], peerName: "ve-b", peerUp: true });
    expect(isAdminUp(fixture("tun-pi"))).toBe(false);
    expect(isAdminUp(fixture("veth-cross-ns-a"))).toBe(true);
  });

  it("outputs carry the kernel's view plus ifindex/operState, and never undefined", async () => {
    const outs = await new LinkEngine(bridge).outputs(new FakeTransport(), { connection: { host: "h" }, name: "br-ut", mtu: 9000, up: true, adopt: false }, fixture("bridge-timers"));
    expect(outs).toMatchObject({ connection: { host: "h" }, name: "br-ut", mtu: 1400, ifindex: 2, operState: "UP", macAddress: "02:00:00:00:aa:01", forwardDelay: 4, adopt: false });
    expect(Object.values(outs)).not.toContain(undefined);
    expect("vlanDefaultPvid" in outs).toBe(false);
    expect("master" in outs).toBe(false);
  });
});

describe("reading links", () => {
  it("readLink picks the named device out of the JSON", async () => {
    const t = new FakeTransport().on(show("ut-rec-a", "br-ut"), { stdout: raw("bridge-timers") });
    expect((await readLink(t, "ut-rec-a", "br-ut"))?.ifindex).toBe(2);
    expect(await readLink(new FakeTransport().on(show(undefined, "x"), { stdout: raw("bridge-timers") }), undefined, "x")).toBeUndefined();
  });

  it("gone device or namespace reads as undefined; other failures throw", async () => {
    for (const stderr of ['Device "nope" does not exist.\n', 'Cannot open network namespace "ut-nope": No such file or directory\n']) {
      expect(await readLink(new FakeTransport().on(["ip"], { code: 1, stderr }), "ut-nope", "nope")).toBeUndefined();
    }
    await expect(readLink(new FakeTransport().on(["ip"], { code: 1, stderr: "RTNETLINK answers: Operation not permitted\n" }), undefined, "x")).rejects.toBeInstanceOf(CommandError);
    await expect(readLink(new FakeTransport().on(["ip"], { stdout: "{not json" }), undefined, "x")).rejects.toThrow(/unparseable JSON/);
  });

  it("readAllLinks: NotFoundError for a missing namespace", async () => {
    const t = new FakeTransport().on(["ip", "-n", "gone"], { code: 255, stderr: 'Cannot open network namespace "gone": No such file or directory\n' });
    await expect(readAllLinks(t, "gone")).rejects.toBeInstanceOf(NotFoundError);
    const all = new FakeTransport().on(["ip", "-j", "-d", "addr", "show"], { stdout: `[${raw("veth-same-ns-a").trim().slice(1, -1)},${raw("veth-same-ns-b").trim().slice(1, -1)}]` });
    expect((await readAllLinks(all, undefined)).map((l) => l.ifname)).toEqual(["ve-a", "ve-b"]);
  });

  it("isGoneError recognises the kernel's wordings", () => {
    expect(isGoneError('Cannot find device "nope"')).toBe(true);
    expect(isGoneError('Device "nope" does not exist.')).toBe(true);
    expect(isGoneError("RTNETLINK answers: File exists")).toBe(false);
  });
});
