// The seeds' bridged KVM host on the full Debian kernel, over SSH THROUGH THE VERY
// NIC BEING BRIDGED: the VM's sshd is reached through eth0 (QEMU user networking,
// 10.0.2.15/24, default via 10.0.2.2, set up by the VM's init). Bridge br0,
// Interface eth0 { master: br0, moveAddresses: true } and a TapDevice on br0 apply
// over the provider's pooled connection; an independent ssh (a new connection each
// time, through the same NIC) checks the kernel after every step; destroy gives eth0
// its address and default route back.
import { afterAll, beforeAll, expect, it } from "vitest";
import { provider } from "../../provider/runtime";
import { safeApplyStats } from "../../provider/safeApply";
import { closeAllConnections, sshStats } from "../../provider/transport/ssh";
import { startVmHost, vmPrerequisites, type VmHost } from "../hosts/vm";
import { addrsOf, ipLink } from "../support/kernel";
import { mustRun, up } from "../support/kernel-steps";
import { hostSuite } from "../support/prereq";

hostSuite("eth0 into br0 with its address and routes, over SSH through eth0", vmPrerequisites().missing, () => {
  let vm: VmHost;

  const defaultRoutes = async () => JSON.parse(await mustRun(vm, ["ip", "-j", "-4", "route", "show", "table", "main", "exact", "0.0.0.0/0"]));

  beforeAll(async () => {
    vm = await startVmHost({ name: "vm-host-bridge" });
    console.log(`[vm-host-bridge] boot-to-SSH ${vm.bootMs} ms`);
  }, 600_000);
  afterAll(async () => {
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
});
