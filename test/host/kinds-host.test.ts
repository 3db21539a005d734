// Vlan, Bond and Vxlan end to end through the REAL Pulumi dynamic provider host
// (gRPC), the way test/host/core-kinds-host.test.ts drives it: a program runs under
// pulumi.runtime.setMocks and each registration is answered by the host's Check and
// Create (so a resource naming another registers only once that one exists); then
// Diff/Update, out-of-band drift seen by Read, a creation-only Diff carried out as
// delete + create, and Delete in reverse creation order — every step checked with an
// independent read through the system ssh client (or `ip netns exec` for the
// namespace hosts).
//
// - examples/vlan-on-bond on a full-kernel VM (this machine's kernel has neither
//   vlan nor bond): the example itself, proven on a real kernel, bonding the
//   guest's dummy0 and dummy1.
// - test/fixtures/hostkinds (a bridge with a VXLAN port flooding to a peer list) on
//   namespace hosts.
// - Check of out-of-range vlanId and vni through the host, with no host at all.
import * as path from "node:path";
import { createRequire } from "node:module";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { netnsPrerequisites, startNetnsLab, type NetnsHost, type NetnsLab } from "../hosts/netns";
import { startVmHost, vmPrerequisites, type VmHost } from "../hosts/vm";
import { assertBuilt, compileExample, type Engine, linkExampleDeps, runExample, runProgram, stageExample } from "../support/examples";
import { destroyAll, expectDependencyOrder, providerHost, upEngine } from "../support/host-steps";
import { addrsOf, ipLink } from "../support/kernel";
import { mustRun } from "../support/kernel-steps";
import { hostSuite } from "../support/prereq";
import type { ProviderHost } from "../support/provider-host";
import { DYNAMIC_TYPE_PREFIX as TYPE, type ResourceState } from "../support/stack";

/** A staged copy of examples/vlan-on-bond (nothing is built inside examples/). */
let VLAN_ON_BOND = "";
const FIXTURE = path.resolve(__dirname, "../fixtures/hostkinds");
// Generous: under load (other suites' TCG VMs) every ssh round trip is slow.
const E2E_TIMEOUT = 900_000;

/** check → diff, as `pulumi up` does for a changed resource; `apply` is the Update it would run. */
async function change(host: ProviderHost, c: ResourceState, olds: Record<string, any>, inputs: Record<string, any>) {
  const checked = await host.check(c.urn, c.inputs, inputs);
  expect(checked.failures).toEqual([]);
  const diff = await host.diff(c.urn, c.id, olds, checked.inputs);
  return {
    diff,
    news: checked.inputs,
    async apply() {
      const outs = (await host.update(c.urn, c.id, olds, checked.inputs)).outs;
      Object.assign(c, { inputs: checked.inputs, outs });
      return outs;
    },
  };
}

/** A creation-only change carried out as `pulumi up` does with deleteBeforeReplace: delete, then create. */
async function replace(host: ProviderHost, c: ResourceState, news: Record<string, any>) {
  await host.delete(c.urn, c.id, c.outs);
  const created = await host.create(c.urn, news);
  Object.assign(c, { id: created.id, inputs: news, outs: created.outs });
}

/** Runs the fixture program (Node's own require, a fresh module each time). */
function runFixture(opts: { config: Record<string, string>; engine?: Engine }) {
  const req = createRequire(path.join(FIXTURE, "index.js"));
  for (const key of Object.keys(req.cache)) if (key === path.join(FIXTURE, "index.js")) delete req.cache[key];
  return runProgram(FIXTURE, () => req("./index.js"), opts);
}

hostSuite("Vlan and Bond through the provider host (examples/vlan-on-bond on a VM)", vmPrerequisites().missing, () => {
  let vm: VmHost;
  let config: Record<string, string>;
  const hosts: ProviderHost[] = [];
  let tStart = 0;

  beforeAll(async () => {
    tStart = Date.now();
    assertBuilt();
    VLAN_ON_BOND = stageExample("vlan-on-bond");
    const [compiled, started] = await Promise.all([compileExample(VLAN_ON_BOND), startVmHost({ name: "vm-kinds-host" })]);
    vm = started;
    console.log(`[kinds-host] VM boot-to-SSH ${vm.bootMs} ms`);
    expect(compiled.output).toBe("");
    // The stack config a user would set for this example, pointed at the VM.
    config = {
      "netdev:host": vm.connection.host,
      "netdev:port": String(vm.connection.port),
      "netdev:user": "root",
      "netdev:privateKeyPath": vm.connection.privateKeyPath,
      "netdev:hostKey": vm.connection.hostKey,
      "vlan-on-bond:nics": JSON.stringify(["dummy0", "dummy1"]),
    };
  }, 600_000);

  afterAll(async () => {
    for (const host of hosts) await host.stop();
    await vm?.stop();
    console.log(`[kinds-host] VM suite total ${Date.now() - tStart} ms`);
  });

  const sh = (argv: string[]) => mustRun(vm, argv);
  const kernelLink = (dev: string) => ipLink(vm, dev);
  /** The bonding driver's own view: slaves in enslave order and the active one. */
  async function procBond(bond: string): Promise<{ slaves: string[]; active?: string }> {
    const text = await sh(["cat", `/proc/net/bonding/${bond}`]);
    return { slaves: [...text.matchAll(/^Slave Interface: (\S+)/gm)].map((m) => m[1]), active: /^Currently Active Slave: (\S+)/m.exec(text)?.[1] };
  }

  it("vlan-on-bond: up, in-place updates, drift, vlanId replace, destroy", { timeout: E2E_TIMEOUT }, async () => {
    const host = await providerHost(VLAN_ON_BOND, config, hosts);
    const created: ResourceState[] = [];
    let t0 = Date.now();
    const run = await runExample(VLAN_ON_BOND, { config, engine: upEngine(host, created) });
    console.log(`[kinds-host] vlan-on-bond: up (${created.length} resources) in ${Date.now() - t0} ms`);
    expectDependencyOrder(created, run.registrations);
    // The two VLANs wait for the bond's name and then register concurrently.
    expect(`${created[0].type.slice(TYPE.length)}:${created[0].name}`).toBe("Bond:bond");
    expect(created.slice(1).map((c) => `${c.type.slice(TYPE.length)}:${c.name}`).sort()).toEqual(["Vlan:vlan10", "Vlan:vlan20"]);
    const by = (name: string) => created.find((c) => c.name === name)!;
    const bond = by("bond");
    const [vlan10, vlan20] = [by("vlan10"), by("vlan20")];
    expect(bond.id).toBe(`127.0.0.1:${vm.connection.port}//bond0`);
    expect(vlan10.id).toBe(`127.0.0.1:${vm.connection.port}//bond0.10`);

    // The kernel, read independently.
    const kbond = await kernelLink("bond0");
    expect(kbond.linkinfo.info_kind).toBe("bond");
    expect(kbond.linkinfo.info_data).toMatchObject({ mode: "active-backup", miimon: 100, primary: "dummy0", active_slave: "dummy0" });
    expect(kbond.flags).toContain("UP");
    expect(await procBond("bond0")).toEqual({ slaves: ["dummy0", "dummy1"], active: "dummy0" });
    for (const s of ["dummy0", "dummy1"]) expect((await kernelLink(s)).master).toBe("bond0");
    for (const [id, dev] of [[10, "bond0.10"], [20, "bond0.20"]] as const) {
      const k = await kernelLink(dev);
      expect(k.linkinfo.info_kind).toBe("vlan");
      expect(k.link).toBe("bond0");
      expect(k.linkinfo.info_data).toMatchObject({ protocol: "802.1Q", id });
      expect(k.flags).toContain("UP");
      expect(addrsOf(k)).toEqual([`192.168.${id}.2/24`]);
    }
    // Stack outputs and resource outputs are the kernel's values.
    expect(run.outputs).toEqual({ bondIfindex: kbond.ifindex, bondMacAddress: kbond.address, vlanInterfaces: ["bond0.10", "bond0.20"] });
    expect(bond.outs).toMatchObject({ slaves: ["dummy0", "dummy1"], primary: "dummy0", activeSlave: "dummy0", ifindex: kbond.ifindex });
    expect(vlan20.outs).toMatchObject({ parent: "bond0", vlanId: 20, addresses: ["192.168.20.2/24"] });
    // The connection came from stack config: nothing of it is in any state.
    for (const c of created) expect(c.outs.connection).toBeUndefined();
    for (const c of created) expect((await host.diff(c.urn, c.id, c.outs, c.inputs)).changes, c.name).toBe("none");

    // In place: the bond's primary switches (the kernel moves the active slave to it).
    t0 = Date.now();
    const primary = await change(host, bond, bond.outs, { ...bond.inputs, primary: "dummy1" });
    expect(primary.diff).toEqual({ changes: "some", replaces: [], deleteBeforeReplace: true });
    expect(await primary.apply()).toMatchObject({ primary: "dummy1", activeSlave: "dummy1", slaves: ["dummy0", "dummy1"] });
    console.log(`[kinds-host] bond primary: check+diff+update in ${Date.now() - t0} ms`);
    expect((await kernelLink("bond0")).linkinfo.info_data).toMatchObject({ primary: "dummy1", active_slave: "dummy1" });
    expect((await kernelLink("bond0")).ifindex).toBe(kbond.ifindex);
    expect(await procBond("bond0")).toEqual({ slaves: ["dummy0", "dummy1"], active: "dummy1" });

    // In place: a VLAN's MTU and egress priority map.
    const v10ifindex = vlan10.outs.ifindex;
    const qos = await change(host, vlan10, vlan10.outs, { ...vlan10.inputs, mtu: 1400, egressQosMap: { "6": 6 } });
    expect(qos.diff).toEqual({ changes: "some", replaces: [], deleteBeforeReplace: true });
    expect(await qos.apply()).toMatchObject({ mtu: 1400, egressQosMap: { "6": 6 } });
    let k10 = await kernelLink("bond0.10");
    expect(k10.ifindex).toBe(v10ifindex);
    expect(k10.mtu).toBe(1400);
    expect(k10.linkinfo.info_data.egress_qos).toEqual([{ from: 6, to: 6 }]);

    // Drift made outside Pulumi: Read (refresh) reports it; the next up repairs it in place.
    await sh(["ip", "link", "set", "dev", "bond0", "type", "bond", "primary", "dummy0"]);
    await sh(["ip", "link", "set", "dev", "bond0.10", "type", "vlan", "egress-qos-map", "6:2", "3:5"]);
    await sh(["ip", "addr", "del", "192.168.20.2/24", "dev", "bond0.20"]);
    const reads = await Promise.all([bond, vlan10, vlan20].map((c) => host.read(c.urn, c.id, c.outs, c.inputs)));
    expect(reads.map((r) => r.id)).toEqual([bond.id, vlan10.id, vlan20.id]);
    expect(reads[0].props).toMatchObject({ primary: "dummy0", activeSlave: "dummy0" });
    expect(reads[1].props.egressQosMap).toEqual({ "3": 5, "6": 2 });
    expect(reads[2].props.addresses).toEqual([]);
    t0 = Date.now();
    for (const [i, c] of [bond, vlan10, vlan20].entries()) {
      const fix = await change(host, c, reads[i].props, c.inputs);
      expect(fix.diff, c.name).toEqual({ changes: "some", replaces: [], deleteBeforeReplace: true });
      await fix.apply();
    }
    console.log(`[kinds-host] drift repaired (3 updates) in ${Date.now() - t0} ms`);
    expect((await kernelLink("bond0")).linkinfo.info_data).toMatchObject({ primary: "dummy1", active_slave: "dummy1" });
    k10 = await kernelLink("bond0.10");
    expect(k10.linkinfo.info_data.egress_qos).toEqual([{ from: 6, to: 6 }]);
    expect(k10.ifindex).toBe(v10ifindex);
    expect(addrsOf(await kernelLink("bond0.20"))).toEqual(["192.168.20.2/24"]);

    // The VLAN id is creation-only (the kernel ignores an id change in place): replace, deleting first.
    const renum = await change(host, vlan20, vlan20.outs, { ...vlan20.inputs, vlanId: 30 });
    expect(renum.diff).toEqual({ changes: "some", replaces: ["vlanId"], deleteBeforeReplace: true });
    t0 = Date.now();
    const oldIfindex = vlan20.outs.ifindex;
    await replace(host, vlan20, renum.news);
    console.log(`[kinds-host] vlan id replace (delete + create) in ${Date.now() - t0} ms`);
    const k20 = await kernelLink("bond0.20");
    expect(k20.linkinfo.info_data).toMatchObject({ id: 30, protocol: "802.1Q" });
    expect(k20.link).toBe("bond0");
    expect(k20.ifindex).not.toBe(oldIfindex);
    expect(addrsOf(k20)).toEqual(["192.168.20.2/24"]);
    expect(vlan20.outs).toMatchObject({ vlanId: 30, ifindex: k20.ifindex });
    expect((await host.diff(vlan20.urn, vlan20.id, vlan20.outs, vlan20.inputs)).changes).toBe("none");

    t0 = Date.now();
    await destroyAll(host, created);
    console.log(`[kinds-host] vlan-on-bond: destroy in ${Date.now() - t0} ms`);
    for (const dev of ["bond0.10", "bond0.20", "bond0"]) expect(await kernelLink(dev), dev).toBeUndefined();
    expect(await sh(["ls", "/proc/net/bonding"])).not.toContain("bond0");
    // The bonded NICs outlive the bond, released.
    for (const s of ["dummy0", "dummy1"]) {
      const k = await kernelLink(s);
      expect(k, s).toBeDefined();
      expect(k.master).toBeUndefined();
    }
    for (const c of created) expect((await host.read(c.urn, c.id, c.outs, c.inputs)).id, c.name).toBe("");
    expect(host.stderr()).not.toMatch(/PRIVATE KEY/);
  });
});

hostSuite("Vxlan through the provider host (namespace hosts)", netnsPrerequisites().missing, () => {
  let lab: NetnsLab;
  let config: Record<string, string>;
  const hosts: ProviderHost[] = [];
  let tStart = 0;

  beforeAll(async () => {
    tStart = Date.now();
    assertBuilt();
    linkExampleDeps(FIXTURE);
    // The tunnel's host and three peers: every peer address is a host this test made
    // (growing the flood list to three needs three peers).
    lab = await startNetnsLab({ hosts: 4 });
    const [h, p1, p2] = lab.hosts;
    config = {
      "netdev:host": h.address,
      "netdev:user": "root",
      "netdev:privateKey": lab.privateKey,
      "netdev:hostKey": h.connection.hostKey,
      "hostkinds:local": h.address,
      "hostkinds:remotes": JSON.stringify([p1.address, p2.address]),
      "hostkinds:vni": "4242",
      "hostkinds:overlayAddress": "10.77.0.1/24",
    };
  });

  afterAll(async () => {
    for (const host of hosts) await host.stop();
    await lab?.destroy();
    console.log(`[kinds-host] Vxlan suite total ${Date.now() - tStart} ms`);
  });

  /** The device's head-end peers as the kernel lists them: every all-zero entry of its own table, sorted. */
  async function fdbPeers(h: NetnsHost, dev: string): Promise<string[]> {
    const r = await h.exec(["bridge", "-j", "fdb", "show", "dev", dev]);
    expect(r.code, r.stderr).toBe(0);
    return (JSON.parse(r.stdout) as { mac: string; dst?: string; master?: string }[])
      .filter((e) => e.mac === "00:00:00:00:00:00" && !e.master)
      .map((e) => e.dst ?? "(no dst)")
      .sort();
  }
  const sorted = (...a: string[]) => [...a].sort();

  it("bridge + vxlan: up, remotes 2 → 3 → 1 in place, fdb drift, vni replace, destroy", { timeout: E2E_TIMEOUT }, async () => {
    const [h, p1, p2, p3] = lab.hosts;
    const host = await providerHost(FIXTURE, config, hosts);
    const created: ResourceState[] = [];
    let t0 = Date.now();
    const run = await runFixture({ config, engine: upEngine(host, created) });
    console.log(`[kinds-host] hostkinds: up (${created.length} resources) in ${Date.now() - t0} ms`);
    expectDependencyOrder(created, run.registrations);
    expect(created.map((c) => `${c.type.slice(TYPE.length)}:${c.name}`)).toEqual(["Bridge:bridge", "Vxlan:vxlan"]);
    const [br, vx] = created;
    expect(vx.id).toBe(`${h.address}:22//vx-ovl`);

    const kvx = await ipLink(h, "vx-ovl");
    expect(kvx.linkinfo.info_kind).toBe("vxlan");
    expect(kvx.linkinfo.info_data).toMatchObject({ id: 4242, local: h.address, port: 4789 });
    expect(kvx.master).toBe("brvx");
    expect(kvx.flags).toContain("UP");
    expect(addrsOf(await ipLink(h, "brvx"))).toEqual(["10.77.0.1/24"]);
    expect(await fdbPeers(h, "vx-ovl")).toEqual(sorted(p1.address, p2.address));
    expect(run.outputs).toEqual({ vxlanIfindex: kvx.ifindex, vxlanRemotes: sorted(p1.address, p2.address), bridgeIfindex: (await ipLink(h, "brvx")).ifindex });
    for (const c of created) expect((await host.diff(c.urn, c.id, c.outs, c.inputs)).changes, c.name).toBe("none");

    // The flood list grows to three peers, then shrinks to one: in place, same device.
    for (const peers of [[p3.address, p1.address, p2.address], [p2.address]]) {
      t0 = Date.now();
      const c = await change(host, vx, vx.outs, { ...vx.inputs, remotes: peers });
      expect(c.diff).toEqual({ changes: "some", replaces: [], deleteBeforeReplace: true });
      expect((await c.apply()).remotes).toEqual(sorted(...peers));
      console.log(`[kinds-host] remotes → ${peers.length}: check+diff+update in ${Date.now() - t0} ms`);
      expect(await fdbPeers(h, "vx-ovl")).toEqual(sorted(...peers));
      const k = await ipLink(h, "vx-ovl");
      expect(k.ifindex).toBe(kvx.ifindex);
      expect(k.master).toBe("brvx");
    }

    // Back to two peers, then one entry deleted out of band: Read reports it, Update restores it.
    await (await change(host, vx, vx.outs, { ...vx.inputs, remotes: [p1.address, p2.address] })).apply();
    expect(await fdbPeers(h, "vx-ovl")).toEqual(sorted(p1.address, p2.address));
    const del = await h.exec(["bridge", "fdb", "del", "00:00:00:00:00:00", "dst", p1.address, "dev", "vx-ovl"]);
    expect(del.code, del.stderr).toBe(0);
    expect(await fdbPeers(h, "vx-ovl")).toEqual([p2.address]);
    const read = await host.read(vx.urn, vx.id, vx.outs, vx.inputs);
    expect(read.id).toBe(vx.id);
    expect(read.props.remotes).toEqual([p2.address]);
    const fix = await change(host, vx, read.props, vx.inputs);
    expect(fix.diff).toEqual({ changes: "some", replaces: [], deleteBeforeReplace: true });
    expect((await fix.apply()).remotes).toEqual(sorted(p1.address, p2.address));
    expect(await fdbPeers(h, "vx-ovl")).toEqual(sorted(p1.address, p2.address));

    // The VNI is creation-only: replace, deleting first (the name exists once).
    const renum = await change(host, vx, vx.outs, { ...vx.inputs, vni: 4243 });
    expect(renum.diff).toEqual({ changes: "some", replaces: ["vni"], deleteBeforeReplace: true });
    t0 = Date.now();
    await replace(host, vx, renum.news);
    console.log(`[kinds-host] vni replace (delete + create) in ${Date.now() - t0} ms`);
    const k = await ipLink(h, "vx-ovl");
    expect(k.linkinfo.info_data.id).toBe(4243);
    expect(k.ifindex).not.toBe(kvx.ifindex);
    expect(k.master).toBe("brvx");
    expect(await fdbPeers(h, "vx-ovl")).toEqual(sorted(p1.address, p2.address));
    expect(vx.outs).toMatchObject({ vni: 4243, ifindex: k.ifindex });

    t0 = Date.now();
    await destroyAll(host, created);
    console.log(`[kinds-host] hostkinds: destroy in ${Date.now() - t0} ms`);
    for (const dev of ["vx-ovl", "brvx"]) expect(await ipLink(h, dev), dev).toBeUndefined();
    for (const c of [br, vx]) expect((await host.read(c.urn, c.id, c.outs, c.inputs)).id, c.name).toBe("");
    expect(host.stderr()).not.toContain(lab.privateKey.trim().split("\n")[1]);
  });
});

describe("Check through the provider host", () => {
  const hosts: ProviderHost[] = [];
  afterAll(async () => {
    for (const host of hosts) await host.stop();
  });

  it("rejects an out-of-range vlanId and vni, naming the field and the value", async () => {
    assertBuilt();
    linkExampleDeps(FIXTURE);
    // Check never contacts a host: the configured one is only there so the connection is complete.
    const host = await providerHost(FIXTURE, { "netdev:host": "127.0.0.1" }, hosts);
    // The registrations the real SDK makes (with its serialized __provider), echoed by the mocks.
    const run = await runProgram(FIXTURE, () => {
      const netdev = createRequire(path.join(FIXTURE, "index.js"))("pulumi-netdev");
      new netdev.Vlan("vlan", { name: "eth0.4095", parent: "eth0", vlanId: 4095 });
      new netdev.Vxlan("vxlan", { name: "vx-big", vni: 16777216 });
      new netdev.Vlan("vlan-ok", { name: "eth0.4094", parent: "eth0", vlanId: 4094 });
      new netdev.Vxlan("vxlan-ok", { name: "vx-max", vni: 16777215 });
      return {};
    });
    const reg = (name: string) => run.registrations.find((r) => r.name === name)!;
    const check = (name: string) => host.check(reg(name).urn, {}, reg(name).inputs);

    expect(reg("vlan").type).toBe(`${TYPE}Vlan`);
    expect((await check("vlan")).failures).toEqual([{ property: "vlanId", reason: expect.stringMatching(/^vlanId .*1–4094.*\(got 4095\)$/) }]);
    expect((await check("vxlan")).failures).toEqual([{ property: "vni", reason: expect.stringMatching(/^vni .*16777215.*\(got 16777216\)$/) }]);
    // Control: the edges of the ranges pass.
    expect((await check("vlan-ok")).failures).toEqual([]);
    expect((await check("vxlan-ok")).failures).toEqual([]);
  });
});
