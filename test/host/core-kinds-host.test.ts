// The kvm-bridge-tap and container-veth-netns examples, end to end through the REAL
// Pulumi dynamic provider host (gRPC), against a network-namespace SSH host.
//
// How this stands in for `pulumi up`: the example's compiled program runs under
// pulumi.runtime.setMocks, and each resource registration is answered the way the
// engine answers it — Check, then Create, on the provider host started in the example
// directory (it loads pulumi-netdev/runtime from the example's node_modules). The
// program receives the real outputs, so a resource that names another (`master:
// br.name`) registers only after that one exists, and the stack outputs are the
// kernel's values. Then: Diff/Update, out-of-band drift and Read, a creation-only
// Diff (replace), and Delete in reverse creation order — every step checked with an
// independent `ip -j -d` read over the system ssh client.
//
// Secrecy of `connection`: the dynamic provider host answers Configure with
// acceptSecrets=false, so it gets and returns plain values; the engine re-marks an output
// secret when its input was secret, and the SDK registers every resource with
// additionalSecretOutputs ["connection"], so a connection in state is a secret even
// when the program forgot pulumi.secret(). The mock monitor does not hand options to
// the mocks; test/support/examples.ts reads them off the RegisterResource request.
import * as net from "node:net";
import { createRequire } from "node:module";
import * as path from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { netnsPrerequisites, startNetnsLab, type NetnsHost, type NetnsLab } from "../hosts/netns";
import { assertBuilt, compileExample, runExample, runProgram, stageExample } from "../support/examples";
import { destroyAll, expectDependencyOrder, providerHost, upEngine } from "../support/host-steps";
import { addrsOf, ipLink, sshExec } from "../support/kernel";
import { hostSuite } from "../support/prereq";
import type { ProviderHost } from "../support/provider-host";
import { DYNAMIC_TYPE_PREFIX as TYPE, type ResourceState } from "../support/stack";

/** Staged copies of the examples (nothing is built inside examples/). */
let KVM = "";
let CT = "";

hostSuite("core kinds through the provider host", netnsPrerequisites().missing, () => {
  let lab: NetnsLab;
  let h: NetnsHost & ReturnType<typeof sshExec>;
  let config: Record<string, string>;
  const hosts: ProviderHost[] = [];

  beforeAll(async () => {
    assertBuilt();
    KVM = stageExample("kvm-bridge-tap");
    CT = stageExample("container-veth-netns");
    const [compiledKvm, compiledCt, started] = await Promise.all([compileExample(KVM), compileExample(CT), startNetnsLab({ hosts: 1 })]);
    lab = started;
    expect(compiledKvm.output).toBe("");
    expect(compiledCt.output).toBe("");
    h = Object.assign(Object.create(lab.hosts[0]), sshExec(lab, lab.hosts[0]));
    // The stack config a user would set: `pulumi config set netdev:host …` etc.
    config = {
      "netdev:host": h.address,
      "netdev:user": "root",
      "netdev:privateKey": lab.privateKey,
      "netdev:hostKey": h.connection.hostKey,
    };
  });

  afterAll(async () => {
    for (const host of hosts) await host.stop();
    await lab?.destroy();
  });

  /** The kernel's view of a device, read independently over the system ssh client; undefined when ip says it does not exist. */
  const kernelLink = (dev: string, ns?: string) => ipLink(h, dev, ns);

  async function netnsList(): Promise<string> {
    const r = await h.exec(["ip", "netns", "list"]);
    if (r.code !== 0) throw new Error(`ip netns list failed (exit ${r.code}): ${r.stderr}`);
    return r.stdout;
  }

  // Generous: under load every ssh round trip (ours and the independent checks) is slow.
  const E2E_TIMEOUT = 600_000;

  it("kvm-bridge-tap: up, update, drift, replace, destroy", { timeout: E2E_TIMEOUT }, async () => {
    const host = await providerHost(KVM, config, hosts);
    const created: ResourceState[] = [];
    let t0 = Date.now();
    const run = await runExample(KVM, { config, engine: upEngine(host, created) });
    console.log(`kvm-bridge-tap: up (${created.length} resources) in ${Date.now() - t0} ms`);
    expectDependencyOrder(created, run.registrations);
    const by = (name: string) => created.find((c) => c.name === name)!;
    const br = by("bridge");
    expect(br.id).toBe(`${h.address}:22//br0`);

    // The kernel, read independently.
    const kbr = await kernelLink("br0");
    expect(kbr.linkinfo.info_kind).toBe("bridge");
    expect(kbr.linkinfo.info_data.stp_state).toBe(0);
    expect(kbr.flags).toContain("UP");
    expect(addrsOf(kbr)).toEqual(["10.1.1.1/24"]);
    for (const tap of ["tap-kvm1", "tap-kvm2"]) {
      const k = await kernelLink(tap);
      expect(k.linkinfo.info_kind).toBe("tun");
      expect(k.linkinfo.info_data).toMatchObject({ type: "tap", vnet_hdr: true, multi_queue: true });
      expect(k.master).toBe("br0");
    }
    // Stack outputs are the kernel's values.
    expect(run.outputs.bridgeIfindex).toBe(kbr.ifindex);
    expect(run.outputs.tapNames).toEqual(["tap-kvm1", "tap-kvm2"]);

    // The connection came from stack config: nothing of it is in any state.
    for (const c of created) {
      expect(c.outs.connection).toBeUndefined();
      expect(JSON.stringify(c.outs)).not.toContain(lab.privateKey.trim().split("\n")[1]);
    }
    for (const r of run.registrations) expect(r.additionalSecretOutputs).toContain("connection");

    // No change: Diff says none.
    expect((await host.diff(br.urn, br.id, br.outs, br.inputs)).changes).toBe("none");

    // In place: bridge MTU.
    t0 = Date.now();
    const brNews = (await host.check(br.urn, br.inputs, { ...br.inputs, mtu: 1400 })).inputs;
    expect(await host.diff(br.urn, br.id, br.outs, brNews)).toEqual({ changes: "some", replaces: [], deleteBeforeReplace: true });
    const brUpdated = (await host.update(br.urn, br.id, br.outs, brNews)).outs;
    console.log(`kvm-bridge-tap: check+diff+update in ${Date.now() - t0} ms`);
    expect(brUpdated.mtu).toBe(1400);
    expect((await kernelLink("br0")).mtu).toBe(1400);
    expect((await kernelLink("br0")).ifindex).toBe(kbr.ifindex);
    Object.assign(br, { inputs: brNews, outs: brUpdated });

    // Drift made outside Pulumi: Read (refresh) reports it; the next up repairs it in place.
    await h.exec(["ip", "addr", "del", "10.1.1.1/24", "dev", "br0"]);
    await h.exec(["ip", "link", "set", "dev", "tap-kvm1", "nomaster"]);
    const brRead = await host.read(br.urn, br.id, br.outs, br.inputs);
    expect(brRead.id).toBe(br.id);
    expect(brRead.props.addresses).toEqual([]);
    const tap1 = by("tap-kvm1");
    const tapRead = await host.read(tap1.urn, tap1.id, tap1.outs, tap1.inputs);
    expect(tapRead.props.master).toBeUndefined();
    const tapDiff = await host.diff(tap1.urn, tap1.id, tapRead.props, tap1.inputs);
    expect(tapDiff).toMatchObject({ changes: "some", replaces: [] });
    tap1.outs = (await host.update(tap1.urn, tap1.id, tapRead.props, tap1.inputs)).outs;
    br.outs = (await host.update(br.urn, br.id, brRead.props, br.inputs)).outs;
    expect((await kernelLink("tap-kvm1")).master).toBe("br0");
    expect(addrsOf(await kernelLink("br0"))).toEqual(["10.1.1.1/24"]);

    // Creation-only: vnetHdr replaces the tap (delete first: a name exists once).
    const tap2 = by("tap-kvm2");
    const tapNews = (await host.check(tap2.urn, tap2.inputs, { ...tap2.inputs, vnetHdr: false })).inputs;
    const replace = await host.diff(tap2.urn, tap2.id, tap2.outs, tapNews);
    expect(replace).toEqual({ changes: "some", replaces: ["vnetHdr"], deleteBeforeReplace: true });
    await host.delete(tap2.urn, tap2.id, tap2.outs);
    const recreated = await host.create(tap2.urn, tapNews);
    Object.assign(tap2, { id: recreated.id, inputs: tapNews, outs: recreated.outs });
    expect((await kernelLink("tap-kvm2")).linkinfo.info_data).toMatchObject({ vnet_hdr: false, multi_queue: true });
    expect((await kernelLink("tap-kvm2")).master).toBe("br0");

    t0 = Date.now();
    await destroyAll(host, created);
    console.log(`kvm-bridge-tap: destroy in ${Date.now() - t0} ms`);
    for (const dev of ["br0", "tap-kvm1", "tap-kvm2"]) expect(await kernelLink(dev), dev).toBeUndefined();
    expect((await host.read(br.urn, br.id, br.outs, br.inputs)).id).toBe("");
    expect(host.stderr()).not.toContain(lab.privateKey.trim().split("\n")[1]);
  });

  it("container-veth-netns: up, traffic, drift, namespace guard, destroy", { timeout: E2E_TIMEOUT }, async () => {
    const host = await providerHost(CT, config, hosts);
    // Namespaces are host-wide files: keep this lab's names apart from anything else.
    const prefix = `${lab.id}-`;
    const cfg = { ...config, "container-veth-netns:namespacePrefix": prefix };
    const created: ResourceState[] = [];
    let t0 = Date.now();
    const run = await runExample(CT, { config: cfg, engine: upEngine(host, created) });
    console.log(`container-veth-netns: up (${created.length} resources) in ${Date.now() - t0} ms`);
    expectDependencyOrder(created, run.registrations);
    const by = (name: string) => created.find((c) => c.name === name)!;

    const kbr = await kernelLink("ctbr0");
    expect(kbr.linkinfo.info_kind).toBe("bridge");
    expect(addrsOf(kbr)).toEqual(["10.88.0.1/24"]);
    expect((await netnsList())).toContain(`${prefix}ct1`);
    const networks = run.outputs.containerNetworks as any[];
    for (const [i, ct] of ["ct1", "ct2"].entries()) {
      const hostEnd = await kernelLink(`veth-${ct}`);
      const eth0 = await kernelLink("eth0", `${prefix}${ct}`);
      expect(hostEnd.linkinfo.info_kind).toBe("veth");
      expect(hostEnd.master).toBe("ctbr0");
      expect(hostEnd.flags).toContain("UP");
      expect(eth0.flags).toContain("UP");
      expect(addrsOf(eth0)).toEqual([`10.88.0.${i + 2}/24`]);
      expect(networks[i]).toMatchObject({ namespace: `${prefix}${ct}`, hostIfindex: hostEnd.ifindex, eth0Ifindex: eth0.ifindex, eth0MacAddress: eth0.address });
    }
    expect(run.outputs.bridgeIfindex).toBe(kbr.ifindex);
    // The containers reach each other through the bridge.
    const ping = await h.exec(["ip", "netns", "exec", `${prefix}ct1`, "ping", "-c1", "-W2", "10.88.0.3"]);
    expect(ping.code, ping.stdout + ping.stderr).toBe(0);

    // Drift inside a namespace: Read reports it, Update restores it.
    const v1 = by("veth-ct1");
    await h.exec(["ip", "-n", `${prefix}ct1`, "addr", "flush", "dev", "eth0"]);
    const read = await host.read(v1.urn, v1.id, v1.outs, v1.inputs);
    expect(read.props.peerAddresses).toEqual([]);
    expect((await host.diff(v1.urn, v1.id, read.props, v1.inputs)).changes).toBe("some");
    v1.outs = (await host.update(v1.urn, v1.id, read.props, v1.inputs)).outs;
    expect(addrsOf(await kernelLink("eth0", `${prefix}ct1`))).toEqual(["10.88.0.2/24"]);

    // Renaming the peer is creation-only.
    const peerNews = (await host.check(v1.urn, v1.inputs, { ...v1.inputs, peerName: "eth1" })).inputs;
    expect((await host.diff(v1.urn, v1.id, v1.outs, peerNews)).replaces).toEqual(["peerName"]);

    // A namespace still holding a device is not deleted (that would destroy the device unseen).
    const ns1 = by("ns-ct1");
    await expect(host.delete(ns1.urn, ns1.id, ns1.outs)).rejects.toThrow(/still holds eth0/);

    t0 = Date.now();
    await destroyAll(host, created);
    console.log(`container-veth-netns: destroy in ${Date.now() - t0} ms`);
    for (const dev of ["ctbr0", "veth-ct1", "veth-ct2"]) expect(await kernelLink(dev), dev).toBeUndefined();
    const left = (await netnsList());
    expect(left).not.toContain(`${prefix}ct1`);
    expect(left).not.toContain(`${prefix}ct2`);
  });

  it("an explicit connection is a secret in state even when the program did not mark it", { timeout: E2E_TIMEOUT }, async () => {
    const host = await providerHost(KVM, {}, hosts);
    const { privateKey } = lab;
    const conn = { host: h.address, hostKey: h.connection.hostKey };
    const created: ResourceState[] = [];
    const run = await runProgram(
      KVM,
      () => {
        // The built SDK, loaded by name by Node from the example (as the compiled program does).
        const req = createRequire(path.join(KVM, "index.js"));
        const pulumi = req("@pulumi/pulumi");
        const netdev = req("pulumi-netdev");
        new netdev.Bridge("marked", { connection: { ...conn, privateKey: pulumi.secret(privateKey) }, name: "br-marked" });
        new netdev.Bridge("unmarked", { connection: { ...conn, privateKey }, name: "br-unmarked" });
        return {};
      },
      { engine: upEngine(host, created) },
    );
    const reg = (name: string) => run.registrations.find((r) => r.name === name)!;
    // The SDK wraps `connection` in pulumi.secret whatever the program marked: the
    // engine stores checked inputs as they came, so this is what keeps them secret.
    expect(reg("marked").secretKeys).toEqual(["connection"]);
    expect(reg("unmarked").secretKeys).toEqual(["connection"]);
    // And the outputs, which the host returns plain.
    expect(reg("marked").additionalSecretOutputs).toEqual(["connection"]);
    expect(reg("unmarked").additionalSecretOutputs).toEqual(["connection"]);
    for (const c of created) {
      expect(c.type).toBe(`${TYPE}Bridge`);
      // The host returns plain values (acceptSecrets=false); the engine re-marks them.
      expect(c.outs.connection).toMatchObject({ host: h.address, privateKey });
      expect(await kernelLink(c.outs.name)).toBeDefined();
    }
    await destroyAll(host, created);
    expect(await kernelLink("br-marked")).toBeUndefined();
    expect(host.stderr()).not.toContain(privateKey.trim().split("\n")[1]);
  });

  it("Check rejects bad input naming the field, without contacting the host", async () => {
    // A stand-in "host" on loopback that counts connections: Check and Diff must make none.
    let connections = 0;
    const server = net.createServer((s) => {
      connections++;
      s.destroy();
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    try {
      const port = (server.address() as net.AddressInfo).port;
      const host = await providerHost(KVM, {
        "netdev:host": "127.0.0.1",
        "netdev:port": String(port),
        "netdev:privateKey": lab.privateKey,
        "netdev:hostKey": h.connection.hostKey,
        "netdev:connectTimeoutMs": "2000",
      }, hosts);
      const urn = `urn:pulumi:dev::kvm-bridge-tap::${TYPE}Bridge::bridge`;
      const provider = `exports.handler=function(){return require("pulumi-netdev/runtime").provider("Bridge")};`;
      const bad = await host.check(urn, {}, { __provider: provider, name: "bad name", mtu: 20 });
      expect(bad.failures).toEqual([
        { property: "name", reason: expect.stringMatching(/^name .*\(got "bad name"\)$/) },
        { property: "mtu", reason: expect.stringMatching(/^mtu .*\(got 20\)$/) },
      ]);
      const unknownField = await host.check(urn, {}, { __provider: provider, name: "br0", colour: "red" });
      expect(unknownField.failures).toEqual([{ property: "colour", reason: expect.stringContaining('"colour"') }]);
      const good = await host.check(urn, {}, { __provider: provider, name: "br0" });
      expect(good.failures).toEqual([]);
      await host.diff(urn, "x", { ...good.inputs, mtu: 1500 }, { ...good.inputs, mtu: 1400 });
      expect(connections).toBe(0);
      // Control: a call that does need the host reaches the stand-in (and fails there).
      const err = await host.read(urn, "x", good.inputs, good.inputs).then(() => undefined, (e: Error) => e);
      console.log("control read:", err?.message);
      expect(err?.message).toMatch(/127\.0\.0\.1/);
      expect(connections).toBeGreaterThan(0);
    } finally {
      server.close();
    }
  });
});
