// Safe apply on the full-kernel VM host, whose SSH session rides its eth0 (QEMU
// user-mode networking: the client is 10.0.2.2): a Bond that enslaves eth0 without
// taking its address cuts the session; the VM puts eth0 back by itself, the create
// fails saying so, and nothing of the bond is left. Independent reads go through the
// system ssh client (a new connection, once the VM is reachable again).
import { afterAll, beforeAll, expect, it } from "vitest";
import { provider } from "../../provider/runtime";
import { closeAllConnections, sshStats } from "../../provider/transport/ssh";
import { startVmHost, vmPrerequisites, type VmHost } from "../hosts/vm";
import { addrsOf, ipLink } from "../support/kernel";
import { mustRun } from "../support/kernel-steps";
import { hostSuite } from "../support/prereq";

// TCG is slow: a new SSH connection takes a second or two, so the window is wider than on namespace hosts.
const WINDOW = 10;

hostSuite("safe apply on a VM host reached through its eth0", vmPrerequisites().missing, () => {
  let vm: VmHost;
  let conn: VmHost["connection"] & { safeApply: { rollbackAfterSeconds: number } };

  beforeAll(async () => {
    vm = await startVmHost({ name: "vm-safe-apply" });
    conn = { ...vm.connection, safeApply: { rollbackAfterSeconds: WINDOW } };
  }, 600_000);
  afterAll(async () => {
    closeAllConnections();
    await vm?.stop();
  });

  /**
   * eth0 as configured. Its SLAAC address (fec0::…, from QEMU's router advertisements)
   * is the kernel's own, dropped when eth0 goes down and learned again from the next
   * advertisement; the rollback does not write it back (docs/safe-apply.md, limits).
   */
  const eth0View = async () => {
    const l = await ipLink(vm, "eth0");
    const set = { ...l, addr_info: l.addr_info.filter((a: { dynamic?: boolean }) => !a.dynamic) };
    return { master: l.master ?? null, mtu: l.mtu, up: l.flags.includes("UP"), addresses: addrsOf(set), ifindex: l.ifindex, address: l.address };
  };
  const routes = async () => JSON.parse(await mustRun(vm, ["ip", "-4", "-j", "route", "show", "table", "main"]));

  it("a Bond that enslaves the session's eth0 without its address is rolled back by the VM, and the create fails saying so", async () => {
    const before = await eth0View();
    const routesBefore = await routes();
    expect(routesBefore).toContainEqual(expect.objectContaining({ dst: "default", gateway: "10.0.2.2", dev: "eth0" }));
    const rt = provider("Bond");
    const checked = await rt.check({}, { connection: conn, name: "bond-sa", mode: "active-backup", miimon: 100, slaves: ["eth0"] });
    expect(checked.failures).toEqual([]);
    const started = Date.now();
    const err = await rt.create(checked.inputs).then(() => undefined, (e: Error) => e);
    const took = (Date.now() - started) / 1000;
    console.log(`[vm-safe-apply] bond enslave cut → rolled back → reported in ${took.toFixed(1)} s (window ${WINDOW} s): ${err?.message}`);
    expect(err, "the create must fail").toBeInstanceOf(Error);
    expect(err!.message).toMatch(/Bond bond-sa change was rolled back/);
    expect(err!.message).toContain("ip link set dev eth0 master bond-sa");
    expect(err!.message).toMatch(/verified exactly as before/);
    expect(took).toBeGreaterThan(WINDOW - 1);
    // Reachable again (this is a new system-ssh connection), eth0 and its routes exactly as before.
    expect(await eth0View()).toEqual(before);
    expect(await routes()).toEqual(routesBefore);
    // The half-made bond was removed by the failed create; nothing is armed on the VM.
    expect(await ipLink(vm, "bond-sa")).toBeUndefined();
    expect((await mustRun(vm, ["sh", "-c", "ls /run/pulumi-netdev-safe-apply 2>/dev/null; true"])).trim()).toBe("");
    // And the provider goes on: a harmless write on the same VM over the pooled connection.
    const opened = sshStats.connectionsOpened;
    const dummy = provider("Bridge");
    const br = await dummy.create((await dummy.check({}, { connection: conn, name: "br-after" })).inputs);
    await dummy.delete(br.id, br.outs);
    expect(sshStats.connectionsOpened - opened).toBeLessThanOrEqual(1);
  }, 180_000);
});
