// `persist` over a scripted transport: what is written where (argv, stdin), what
// a host without systemd-networkd gets, drift in the files, delete, and the check
// errors for what networkd cannot carry.
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { configureDefaults, resetDefaults } from "../../provider/engine";
import { provider } from "../../provider/runtime";
import { FakeTransport } from "../../provider/transport/fake";
import { installFake, refuseAdds, restoreTransport } from "../support/unit";
import { type NetworkdHostOptions, scriptNetworkdHost } from "../support/networkd-host";

const raw = (name: string) => readFileSync(join(__dirname, "../fixtures/iproute", `${name}.json`), "utf8");
const conn = { host: "192.0.2.10" };
const isShow = (argv: string[]) => argv.includes("show") && argv.includes("-j");
const sha = (s: string) => createHash("sha256").update(s).digest("hex");

let fake: FakeTransport;
beforeEach(() => {
  fake = installFake();
});
afterEach(restoreTransport);

async function checked(kind: string, inputs: Record<string, unknown>) {
  const r = await provider(kind).check({}, { connection: conn, ...inputs });
  expect(r.failures).toEqual([]);
  return r.inputs;
}

/** A host with networkd enabled; files live in `disk` (path → text). */
const networkdHost = (opts: NetworkdHostOptions = {}) => scriptNetworkdHost(fake, opts);

/** A device that exists as `fixture` shows it (so an add of its name is refused). */
const shown = (fixture: string) => refuseAdds(fake).on(isShow, { stdout: raw(fixture) });
const adoptedBridge = { name: "br-ut", adopt: true, stp: true, forwardDelay: 4, addresses: ["2001:db8::1/64", "192.0.2.1/24"] };

describe("persist writes networkd files", () => {
  it("a persisted create writes .netdev and .network atomically through argv, reads them back and records them", async () => {
    const disk = networkdHost();
    shown("bridge-timers");
    const { outs } = await provider("Bridge").create(await checked("Bridge", { ...adoptedBridge, persist: true }));
    const writes = fake.calls.filter((c) => c.argv[0] === "sh");
    expect(writes.map((c) => c.argv.slice(3))).toEqual([
      ["sh", "/etc/systemd/network/60-pulumi-netdev-br-ut.netdev", "/etc/systemd/network"],
      ["sh", "/etc/systemd/network/60-pulumi-netdev-br-ut.network", "/etc/systemd/network"],
    ]);
    // A constant script: the paths and contents never become shell text.
    expect(new Set(writes.map((c) => c.argv[2])).size).toBe(1);
    expect(writes[0].argv[2]).toMatch(/cat > "\$t"; chmod 0644 "\$t"; mv -f -- "\$t" "\$1"; cat -- "\$1"$/);
    expect(disk.get("/etc/systemd/network/60-pulumi-netdev-br-ut.netdev")).toBe(
      "# Managed by pulumi-netdev: Bridge br-ut (persist: true).\n# Edits are reported as drift by `pulumi refresh` and replaced by the next `pulumi up`.\n\n[NetDev]\nName=br-ut\nKind=bridge\n\n[Bridge]\nSTP=yes\nForwardDelaySec=4\n",
    );
    expect(disk.get("/etc/systemd/network/60-pulumi-netdev-br-ut.network")).toContain("[Link]\nMACAddress=02:00:00:00:aa:01\n");
    expect(outs.persist).toBe(true);
    expect(outs.persistedFiles).toEqual([...disk].map(([path, text]) => ({ path, sha256: sha(text) })));
    // The running kernel is left alone: nothing asks networkd to reload or reconfigure.
    expect(fake.calls.some((c) => c.argv[0] === "networkctl" && c.argv[1] !== "status")).toBe(false);
  });

  it("a file that does not read back as written fails the create", async () => {
    networkdHost();
    shown("bridge-timers");
    fake.on(["sh", "-c"], (_argv, o) => ({ stdout: (o.stdin ?? "").slice(0, 10) }));
    await expect(provider("Bridge").create(await checked("Bridge", { ...adoptedBridge, persist: true }))).rejects.toThrow(/60-pulumi-netdev-br-ut.netdev does not read back as written/);
  });

  it("a host without networkd enabled fails the create before any change, naming host and what is missing", async () => {
    networkdHost({ enabled: "disabled" });
    fake.on(isShow, { code: 1, stderr: 'Device "br9" does not exist.\n' });
    const err = provider("Bridge").create(await checked("Bridge", { name: "br9", persist: true }));
    await expect(err).rejects.toThrow(/^192\.0\.2\.10: persist needs systemd-networkd enabled, but systemd-networkd\.service is disabled .*nothing was changed/);
    expect(fake.calls.map((c) => c.argv[0])).toEqual(["systemctl"]);
  });

  it("a host without systemd at all says so", async () => {
    fake.on(["systemctl"], { code: 127, stderr: "sh: 1: systemctl: not found\n" });
    await expect(provider("Bridge").create(await checked("Bridge", { name: "br9", persist: true }))).rejects.toThrow(/systemctl was not found \(the host does not run systemd\)/);
  });

  it("a non-persisted device writes nothing and asks nothing about networkd", async () => {
    networkdHost();
    shown("bridge-timers");
    const { outs } = await provider("Bridge").create(await checked("Bridge", adoptedBridge));
    expect(fake.calls.filter((c) => ["sh", "systemctl", "networkctl", "sha256sum", "test"].includes(c.argv[0]))).toEqual([]);
    expect(outs.persistedFiles).toBeUndefined();
  });

  it("the parent side: a drop-in into the parent's own networkd file, or into a holder file we create", async () => {
    const disk = networkdHost({ networkFile: { dummy0: "/usr/lib/systemd/network/80-uplink.network" } });
    shown("vlan-default");
    const fix = JSON.parse(raw("vlan-default"))[0];
    await provider("Vlan").create(await checked("Vlan", { name: fix.ifname, parent: fix.link, vlanId: fix.linkinfo.info_data.id, adopt: true, persist: true }));
    expect([...disk.keys()]).toContain(`/etc/systemd/network/80-uplink.network.d/60-pulumi-netdev-${fix.ifname}.conf`);
    expect(disk.get(`/etc/systemd/network/80-uplink.network.d/60-pulumi-netdev-${fix.ifname}.conf`)).toMatch(new RegExp(`\\[Network\\]\\nVLAN=${fix.ifname}\\n$`));

  });

  it("the parent side of a parent nothing manages: a holder file of ours with the drop-in beside it", async () => {
    const disk = networkdHost();
    shown("vlan-default");
    const fix = JSON.parse(raw("vlan-default"))[0];
    await provider("Vlan").create(await checked("Vlan", { name: fix.ifname, parent: fix.link, vlanId: fix.linkinfo.info_data.id, adopt: true, persist: true }));
    expect(disk.get(`/etc/systemd/network/60-pulumi-netdev-${fix.link}.network`)).toMatch(new RegExp(`^# pulumi-netdev: holds drop-ins for devices stacked on or enslaved to ${fix.link}\\.\\n[^]*\\[Match\\]\\nName=${fix.link}\\n`));
    expect([...disk.keys()]).toContain(`/etc/systemd/network/60-pulumi-netdev-${fix.link}.network.d/60-pulumi-netdev-${fix.ifname}.conf`);
  });
});

describe("read reports drift in the files; update rewrites; delete removes", () => {
  async function persisted() {
    const disk = networkdHost();
    shown("bridge-timers");
    const { id, outs } = await provider("Bridge").create(await checked("Bridge", { ...adoptedBridge, persist: true }));
    return { disk, id, outs };
  }

  it("untouched files: persist stays true", async () => {
    const { id, outs } = await persisted();
    expect((await provider("Bridge").read(id, outs)).props.persist).toBe(true);
  });

  it("a file edited outside Pulumi reads as persist: false, and so does a removed one", async () => {
    const { disk, id, outs } = await persisted();
    const netdev = "/etc/systemd/network/60-pulumi-netdev-br-ut.netdev";
    disk.set(netdev, disk.get(netdev)!.replace("STP=yes", "STP=no"));
    const edited = await provider("Bridge").read(id, outs);
    expect(edited.props.persist).toBe(false);
    expect(edited.props.persistedFiles).toEqual(outs.persistedFiles);
    disk.delete(netdev);
    expect((await provider("Bridge").read(id, outs)).props.persist).toBe(false);
    // The next up sees persist false → true and rewrites both files.
    const diff = await provider("Bridge").diff(id, edited.props, await checked("Bridge", { ...adoptedBridge, persist: true }));
    expect(diff.changes).toBe(true);
    const { outs: after } = await provider("Bridge").update(id, edited.props, await checked("Bridge", { ...adoptedBridge, persist: true }));
    expect(disk.get(netdev)).toContain("STP=yes");
    expect((await provider("Bridge").read(id, after)).props.persist).toBe(true);
  });

  it("persist turned off removes the files; delete removes them too", async () => {
    const { disk, id, outs } = await persisted();
    const { outs: off } = await provider("Bridge").update(id, outs, await checked("Bridge", { ...adoptedBridge, persist: false }));
    expect(disk.size).toBe(0);
    expect(off.persistedFiles).toBeUndefined();

    const again = await persisted();
    fake.on(["ip", "link", "del"], {});
    await provider("Bridge").delete(again.id, again.outs);
    expect(again.disk.size).toBe(0);
    const rm = fake.calls.find((c) => c.argv[0] === "sh" && c.argv[2].includes("rm -f"))!;
    expect(rm.argv.slice(4)).toEqual(["/etc/systemd/network/60-pulumi-netdev-br-ut.netdev", "/etc/systemd/network/60-pulumi-netdev-br-ut.network", "--"]);
  });
});

describe("check: what networkd cannot carry", () => {
  it("persist on a device inside a namespace names the field", async () => {
    const r = await provider("Bridge").check({}, { connection: conn, name: "br0", namespace: "ns1", persist: true });
    expect(r.failures).toEqual([{ property: "persist", reason: expect.stringContaining('cannot be set on a device inside a network namespace (namespace "ns1")') }]);
  });

  it("persist on a Namespace", async () => {
    const r = await provider("Namespace").check({}, { connection: conn, name: "ns1", persist: true });
    expect(r.failures).toEqual([{ property: "persist", reason: expect.stringContaining("cannot be set on a Namespace") }]);
  });

  it("a veth whose peer is in another namespace; a vxlan with inherited tos or ttl", async () => {
    const v = await provider("VethPair").check({}, { connection: conn, name: "ve0", peerName: "ve1", peerNamespace: "c1", persist: true });
    expect(v.failures[0]).toMatchObject({ property: "persist", reason: expect.stringContaining('peerNamespace "c1"') });
    const x = await provider("Vxlan").check({}, { connection: conn, name: "vx0", vni: 1, tos: "inherit", ttl: "inherit", persist: true });
    expect(x.failures.map((f) => f.property).sort()).toEqual(["tos", "ttl"]);
  });

  it("port settings networkd has no key for: a bridge port's broadcastFlood, a bond port", async () => {
    const b = await provider("TapDevice").check({}, { connection: conn, name: "tap0", master: "br0", bridgePort: { broadcastFlood: false }, persist: true });
    expect(b.failures).toEqual([{ property: "bridgePort.broadcastFlood", reason: expect.stringContaining("no setting for a port's broadcast flooding") }]);
    const q = await provider("VethPair").check({}, { connection: conn, name: "ve0", peerName: "ve1", master: "bond0", bondPort: { queueId: 1 }, persist: true });
    expect(q.failures).toEqual([{ property: "bondPort", reason: expect.stringContaining("queue id or priority") }]);
  });

  it("stack config netdev:persist is the default where it can apply; an explicit false wins", async () => {
    configureDefaults((k) => (k === "persist" ? "true" : undefined));
    expect((await provider("Bridge").check({}, { connection: conn, name: "br0" })).inputs.persist).toBe(true);
    expect((await provider("Bridge").check({}, { connection: conn, name: "br0", persist: false })).inputs.persist).toBe(false);
    const inNs = await provider("Bridge").check({}, { connection: conn, name: "br0", namespace: "ns1" });
    expect(inNs.failures).toEqual([]);
    expect(inNs.inputs.persist).toBeUndefined();
    expect((await provider("Namespace").check({}, { connection: conn, name: "ns1" })).failures).toEqual([]);
    resetDefaults();
    expect((await provider("Bridge").check({}, { connection: conn, name: "br0" })).inputs.persist).toBeUndefined();
  });
});

describe("Route: a [Route] drop-in for the .network of its device", () => {
  it("golden: every field networkd takes; protocol and metric always written", async () => {
    const { routeNetworkd } = await import("../../provider/kinds/route");
    const { renderUnit } = await import("../../provider/networkd");
    const d = (await checked("Route", { destination: "10.9.0.0/24", via: "192.0.2.254", device: "br0", source: "192.0.2.1", table: 100, scope: "global", protocol: "static", onlink: true, persist: true })) as any;
    const files = routeNetworkd(d, "br0");
    expect(files.units).toEqual([]);
    expect(files.others.map((o) => [o.device, renderUnit("H", { sections: o.sections! })])).toEqual([
      ["br0", "# H\n\n[Route]\nDestination=10.9.0.0/24\nGateway=192.0.2.254\nPreferredSource=192.0.2.1\nMetric=0\nTable=100\nScope=global\nProtocol=static\nGatewayOnLink=yes\n"],
    ]);
    const v6 = (await checked("Route", { destination: "default", via: "2001:db8::1", persist: true })) as any;
    expect(renderUnit("H", { sections: routeNetworkd(v6, "eth0").others[0].sections! })).toBe("# H\n\n[Route]\nDestination=::/0\nGateway=2001:db8::1\nMetric=1024\nProtocol=boot\n");
  });

  it("create writes the drop-in into the device's networkd file, named by the route's identity", async () => {
    const disk = networkdHost({ networkFile: { eth0: "/etc/systemd/network/10-uplink.network" } });
    let routes: unknown[] = [];
    fake.on(["ip", "-j", "-4", "route", "show"], () => ({ stdout: JSON.stringify(routes) }));
    fake.on(["ip", "route", "add"], () => {
      routes = [{ dst: "10.9.0.0/24", gateway: "10.0.2.2", dev: "eth0", protocol: "boot", flags: [] }];
      return {};
    });
    const { outs } = await provider("Route").create(await checked("Route", { destination: "10.9.0.0/24", via: "10.0.2.2", persist: true }));
    const path = "/etc/systemd/network/10-uplink.network.d/60-pulumi-netdev-route-4-main-10.9.0.0_24-0.conf";
    expect([...disk.keys()]).toEqual([path]);
    expect(disk.get(path)).toContain("[Route]\nDestination=10.9.0.0/24\nGateway=10.0.2.2\nMetric=0\nProtocol=boot\n");
    expect(outs.persistedFiles).toEqual([{ path, sha256: sha(disk.get(path)!) }]);
  });

  it("check: not in a namespace, not for a route without a device", async () => {
    const ns = await provider("Route").check({}, { connection: conn, destination: "10.9.0.0/24", device: "eth0", namespace: "n1", persist: true });
    expect(ns.failures).toEqual([{ property: "persist", reason: expect.stringContaining('inside a network namespace (namespace "n1")') }]);
    const bh = await provider("Route").check({}, { connection: conn, destination: "10.9.0.0/24", type: "blackhole", persist: true });
    expect(bh.failures).toEqual([{ property: "persist", reason: expect.stringContaining("cannot be set on a blackhole route") }]);
  });
});
