// The seeds' bridged KVM host on the full Debian kernel, over SSH THROUGH THE VERY
// NIC BEING BRIDGED: the VM's sshd is reached through eth0 (QEMU user networking,
// 10.0.2.15/24, default via 10.0.2.2, set up by the VM's init). Bridge br0,
// Interface eth0 { master: br0, moveAddresses: true } and a TapDevice on br0 apply
// over the provider's pooled connection; an independent ssh (a new connection each
// time, through the same NIC) checks the kernel after every step; destroy gives eth0
// its address and default route back. Then the same through the REAL Pulumi
// provider host (gRPC): examples/kvm-host-bridge, up and destroy, on the same VM.
import { afterAll, beforeAll, expect, it } from "vitest";
import { assertBuilt, compileExample, runExample, stageExample } from "../support/examples";
import { destroyAll, expectDependencyOrder, providerHost, upEngine } from "../support/host-steps";
import type { ProviderHost } from "../support/provider-host";
import { DYNAMIC_TYPE_PREFIX as TYPE, type ResourceState } from "../support/stack";
import { provider } from "../../provider/runtime";
import { safeApplyStats } from "../../provider/safeApply";
import { closeAllConnections, sshStats } from "../../provider/transport/ssh";
import { startVmHost, vmPrerequisites, type VmHost } from "../hosts/vm";
import { addrsOf, ipLink } from "../support/kernel";
import { mustRun, up } from "../support/kernel-steps";
import { hostSuite } from "../support/prereq";

hostSuite("eth0 into br0 with its address and routes, over SSH through eth0", vmPrerequisites().missing, () => {
  let vm: VmHost;
  const hosts: ProviderHost[] = [];
  let EXAMPLE: string;
  let compiled: { output: string };

  /** The kernel's VLANs of one device as "vid[P][U]" strings, read independently. */
  async function vlansOf(dev: string): Promise<string[]> {
    const all = JSON.parse(await mustRun(vm, ["bridge", "-j", "vlan", "show", "dev", dev]));
    return (all[0]?.vlans ?? []).flatMap((v: any) => {
      const ids = Array.from({ length: (v.vlanEnd ?? v.vlan) - v.vlan + 1 }, (_, i) => v.vlan + i);
      return ids.map((id) => `${id}${(v.flags ?? []).includes("PVID") ? "P" : ""}${(v.flags ?? []).includes("Egress Untagged") ? "U" : ""}`);
    });
  }

  const defaultRoutes = async () => JSON.parse(await mustRun(vm, ["ip", "-j", "-4", "route", "show", "table", "main", "exact", "0.0.0.0/0"]));

  beforeAll(async () => {
    assertBuilt();
    EXAMPLE = stageExample("kvm-host-bridge");
    [compiled, vm] = await Promise.all([compileExample(EXAMPLE), startVmHost({ name: "vm-host-bridge" })]);
    console.log(`[vm-host-bridge] boot-to-SSH ${vm.bootMs} ms`);
  }, 600_000);
  afterAll(async () => {
    for (const host of hosts) await host.stop();
    closeAllConnections();
    await vm?.stop();
  });

  it("the starting point is what the seeds describe: eth0 carries the address, the default route and the session", async () => {
    const eth0 = await ipLink(vm, "eth0");
    expect(addrsOf(eth0)).toContain("10.0.2.15/24");
    expect(eth0.master).toBeUndefined();
    expect(await defaultRoutes()).toEqual([expect.objectContaining({ gateway: "10.0.2.2", dev: "eth0" })]);
    // The session's own route: the client (QEMU's 10.0.2.2) is reached through eth0.
    expect(JSON.parse(await mustRun(vm, ["ip", "-j", "route", "get", "10.0.2.2"]))[0].dev).toBe("eth0");
  });

  it("applies Bridge, Interface eth0 (moveAddresses) and a tap, and destroys back to the start", async () => {
    const connection = vm.connection;
    const opened0 = sshStats.connectionsOpened;
    const guarded0 = safeApplyStats.guardedWrites;
    const br = await up("Bridge", { connection, name: "br0", stp: false });
    const nic = await up("Interface", { connection, name: "eth0", master: "br0", moveAddresses: true });
    expect(nic.outs).toMatchObject({ master: "br0", moveAddresses: true, original: { had: ["master"], master: null } });
    expect(nic.outs.moved).toMatchObject({ to: "br0", addresses: ["10.0.2.15/24"], routes: [expect.objectContaining({ dst: "default", gateway: "10.0.2.2" })] });
    // The provider keeps working after the move, on the connection it had.
    const tap = await up("TapDevice", { connection, name: "tap-vm1", master: "br0" });
    const read = await provider("Interface").read(nic.id, nic.outs);
    expect(read.props.master).toBe("br0");
    expect(read.props.addresses).not.toContain("10.0.2.15/24");
    console.log(`[vm-host-bridge] SSH connections opened by the provider for the whole apply: ${sshStats.connectionsOpened - opened0}`);
    // The move touched the device carrying the session: it went through safe apply
    // (armed, written, confirmed over a new connection), and was not rolled back.
    expect(safeApplyStats.guardedWrites).toBeGreaterThan(guarded0);
    expect(safeApplyStats.rollbacks).toBe(0);

    // An independent read, over a new SSH connection through eth0 → br0.
    const eth0 = await ipLink(vm, "eth0");
    expect(eth0.master).toBe("br0");
    expect(addrsOf(eth0)).not.toContain("10.0.2.15/24");
    expect(addrsOf(await ipLink(vm, "br0"))).toContain("10.0.2.15/24");
    expect(await defaultRoutes()).toEqual([expect.objectContaining({ gateway: "10.0.2.2", dev: "br0" })]);
    expect((await ipLink(vm, "tap-vm1")).master).toBe("br0");
    expect(JSON.parse(await mustRun(vm, ["ip", "-j", "route", "get", "10.0.2.2"]))[0].dev).toBe("br0");

    // Destroy, in the order Pulumi would (dependents first).
    await provider("TapDevice").delete(tap.id, tap.outs);
    await provider("Interface").delete(nic.id, nic.outs);
    const back = await ipLink(vm, "eth0");
    expect(back.master).toBeUndefined();
    expect(addrsOf(back)).toContain("10.0.2.15/24");
    expect(await defaultRoutes()).toEqual([expect.objectContaining({ gateway: "10.0.2.2", dev: "eth0" })]);
    expect(addrsOf(await ipLink(vm, "br0"))).not.toContain("10.0.2.15/24");
    await provider("Bridge").delete(br.id, br.outs);
    expect(await ipLink(vm, "br0")).toBeUndefined();
    expect(JSON.parse(await mustRun(vm, ["ip", "-j", "route", "get", "10.0.2.2"]))[0].dev).toBe("eth0");
  });

  it("examples/kvm-host-bridge through the provider host: up over eth0, VLANs per port, no drift, destroy back to the start", { timeout: 900_000 }, async () => {
    expect(compiled.output).toBe("");
    const config = {
      "netdev:host": vm.connection.host,
      "netdev:port": String(vm.connection.port),
      "netdev:user": "root",
      "netdev:privateKeyPath": vm.connection.privateKeyPath,
      "netdev:hostKey": vm.connection.hostKey,
      "kvm-host-bridge:uplink": "eth0",
    };
    const host = await providerHost(EXAMPLE, config, hosts);
    const created: ResourceState[] = [];
    let t0 = Date.now();
    const run = await runExample(EXAMPLE, { config, engine: upEngine(host, created) });
    console.log(`[vm-host-bridge] example up (${created.length} resources) in ${Date.now() - t0} ms`);
    expectDependencyOrder(created, run.registrations);
    expect(created.map((c) => `${c.type.slice(TYPE.length)}:${c.name}`).sort()).toEqual(["Bridge:bridge", "Interface:uplink", "TapDevice:tap-db", "TapDevice:tap-web"]);

    // The kernel, read independently over a new SSH connection through eth0 → br0.
    const eth0 = await ipLink(vm, "eth0");
    expect(eth0.master).toBe("br0");
    expect(addrsOf(eth0)).not.toContain("10.0.2.15/24");
    expect(addrsOf(await ipLink(vm, "br0"))).toContain("10.0.2.15/24");
    expect(await defaultRoutes()).toEqual([expect.objectContaining({ gateway: "10.0.2.2", dev: "br0" })]);
    expect((await ipLink(vm, "br0")).linkinfo.info_data.vlan_filtering).toBe(1);
    expect(await vlansOf("br0")).toEqual(["1PU"]);
    expect(await vlansOf("eth0")).toEqual(["1PU", "10", "20"]);
    expect(await vlansOf("tap-web")).toEqual(["10PU"]);
    expect(await vlansOf("tap-db")).toEqual(["20PU"]);
    expect(run.outputs.movedAddresses).toEqual(["10.0.2.15/24"]);
    expect(run.outputs.tapNames).toEqual(["tap-web", "tap-db"]);

    // A refresh finds no drift.
    for (const c of created) {
      const read = await host.read(c.urn, c.id, c.outs, c.inputs);
      expect(read.id, c.name).toBe(c.id);
      expect((await host.diff(c.urn, c.id, read.props, c.inputs)).changes, c.name).toBe("none");
    }

    t0 = Date.now();
    await destroyAll(host, created);
    console.log(`[vm-host-bridge] example destroy in ${Date.now() - t0} ms`);
    const back = await ipLink(vm, "eth0");
    expect(back.master).toBeUndefined();
    expect(addrsOf(back)).toContain("10.0.2.15/24");
    expect(await defaultRoutes()).toEqual([expect.objectContaining({ gateway: "10.0.2.2", dev: "eth0" })]);
    for (const dev of ["br0", "tap-web", "tap-db"]) expect(await ipLink(vm, dev), dev).toBeUndefined();
  });
});
