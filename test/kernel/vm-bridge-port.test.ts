// Bridge ports on the full Debian kernel (this machine's kernel has no
// CONFIG_BRIDGE_VLAN_FILTERING): a VLAN-aware bridge with its own VLANs, an access
// port and a trunk, a VLAN set changed in place, drift made with `bridge vlan del`
// reported by read and repaired, and port options read back with an independent
// `ip -j -d` and `bridge -j vlan show` over the system ssh client.
import { afterAll, beforeAll, expect, it } from "vitest";
import { provider } from "../../provider/runtime";
import { closeAllConnections } from "../../provider/transport/ssh";
import { startVmHost, vmPrerequisites, type VmHost } from "../hosts/vm";
import { addrsOf, ipLink } from "../support/kernel";
import { change, mustRun, up } from "../support/kernel-steps";
import { hostSuite } from "../support/prereq";

hostSuite("bridge ports, VLANs and Interface on a VM host", vmPrerequisites().missing, () => {
  let vm: VmHost;

  /** The kernel's VLANs of one device as "vid[P][U]" strings, read independently. */
  async function vlansOf(dev: string): Promise<string[]> {
    const all = JSON.parse(await mustRun(vm, ["bridge", "-j", "vlan", "show", "dev", dev]));
    return (all[0]?.vlans ?? []).flatMap((v: any) => {
      const ids = Array.from({ length: (v.vlanEnd ?? v.vlan) - v.vlan + 1 }, (_, i) => v.vlan + i);
      return ids.map((id) => `${id}${(v.flags ?? []).includes("PVID") ? "P" : ""}${(v.flags ?? []).includes("Egress Untagged") ? "U" : ""}`);
    });
  }

  beforeAll(async () => {
    vm = await startVmHost({ name: "vm-bridge-port" });
    console.log(`[vm-bridge-port] boot-to-SSH ${vm.bootMs} ms`);
  }, 600_000);
  afterAll(async () => {
    closeAllConnections();
    await vm?.stop();
  });

  it("VLAN-aware bridge: own VLANs, an access port, a trunk; set changed in place; drift repaired", async () => {
    const connection = vm.connection;
    const br = await up("Bridge", { connection, name: "brp", vlanFiltering: true, vlans: [{ vid: 1, pvid: true, untagged: true }, { vid: 10 }] });
    expect(await vlansOf("brp")).toEqual(["1PU", "10"]);
    expect(br.outs.vlans).toEqual([{ vid: 1, pvid: true, untagged: true }, { vid: 10 }]);

    const access = await up("TapDevice", { connection, name: "tap-acc", master: "brp", bridgePort: { vlans: [{ vid: 10, pvid: true, untagged: true }] } });
    expect(await vlansOf("tap-acc")).toEqual(["10PU"]); // the default PVID 1 the kernel gave it is gone

    const trunkPort = { cost: 7, priority: 9, hairpin: true, learning: false, unicastFlood: false, multicastFlood: false, broadcastFlood: false, isolated: true, bpduGuard: true, rootBlock: true, neighSuppress: true };
    const trunkInputs = { connection, name: "tap-trunk", master: "brp", bridgePort: { ...trunkPort, vlans: [{ vid: 10 }, { vid: "20-22" }] } };
    const trunk = await up("TapDevice", trunkInputs);
    expect(await vlansOf("tap-trunk")).toEqual(["10", "20", "21", "22"]);
    const slave = (await ipLink(vm, "tap-trunk")).linkinfo.info_slave_data;
    expect(slave).toMatchObject({ cost: 7, priority: 9, hairpin: true, learning: false, flood: false, mcast_flood: false, bcast_flood: false, isolated: true, guard: true, root_block: true, neigh_suppress: true });
    expect(trunk.outs.bridgePort).toEqual({ ...trunkPort, vlans: [{ vid: 10 }, { vid: "20-22" }] });

    // In place: 21 leaves, 23 and an untagged 30 join, cost changes; the access port and the other VLANs stay.
    const next = { ...trunkInputs, bridgePort: { ...trunkPort, cost: 8, vlans: [{ vid: 10 }, { vid: 20 }, { vid: "22-23" }, { vid: 30, untagged: true }] } };
    const c = await change("TapDevice", trunk.outs, next);
    expect(c.diff).toEqual({ changes: true, replaces: [], deleteBeforeReplace: true });
    const updated = (await c.apply()).outs;
    expect(await vlansOf("tap-trunk")).toEqual(["10", "20", "22", "23", "30U"]);
    expect(await vlansOf("tap-acc")).toEqual(["10PU"]);
    expect((await ipLink(vm, "tap-trunk")).linkinfo.info_slave_data.cost).toBe(8);
    expect((await ipLink(vm, "tap-trunk")).ifindex).toBe(trunk.outs.ifindex);

    // Drift made outside Pulumi: read reports it, the next update repairs it.
    await mustRun(vm, ["bridge", "vlan", "del", "vid", "20", "dev", "tap-trunk"]);
    await mustRun(vm, ["ip", "link", "set", "dev", "tap-trunk", "type", "bridge_slave", "learning", "on"]);
    const read = await provider("TapDevice").read("id", updated);
    expect(read.props.bridgePort).toMatchObject({ learning: true, vlans: [{ vid: 10 }, { vid: "22-23" }, { vid: 30, untagged: true }] });
    const fix = await change("TapDevice", read.props, next);
    expect(fix.diff.changes).toBe(true);
    await fix.apply();
    expect(await vlansOf("tap-trunk")).toEqual(["10", "20", "22", "23", "30U"]);
    expect((await ipLink(vm, "tap-trunk")).linkinfo.info_slave_data.learning).toBe(false);

    // The bridge's own VLANs change in place too.
    const brNext = await change("Bridge", br.outs, { connection, name: "brp", vlanFiltering: true, vlans: [{ vid: 10, pvid: true, untagged: true }, { vid: 20 }] });
    await brNext.apply();
    expect(await vlansOf("brp")).toEqual(["10PU", "20"]);

    for (const r of [["TapDevice", access], ["TapDevice", trunk], ["Bridge", br]] as const) await provider(r[0]).delete(r[1].id, r[1].outs);
    expect(await ipLink(vm, "brp")).toBeUndefined();
  });

  it("Interface: an existing NIC's MTU and addresses change and are restored on delete; a bond slave's options", async () => {
    const connection = vm.connection;
    // dummy0 stands for a NIC the stack did not create (the VM's init made it).
    await mustRun(vm, ["ip", "addr", "add", "192.0.2.50/24", "dev", "dummy0"]);
    const before = await ipLink(vm, "dummy0");
    expect(before.mtu).toBe(1500);

    const missing = await provider("Interface").create((await provider("Interface").check({}, { connection, name: "nosuchnic0", mtu: 9000 })).inputs).catch((e: Error) => e);
    expect(String(missing)).toMatch(/there is no device named nosuchnic0.*never creates one\. Nothing was changed/);

    const nic = await up("Interface", { connection, name: "dummy0", mtu: 9000, addresses: ["198.51.100.5/24", "2001:db8:9::5/64"] });
    expect(nic.outs.original).toEqual({ had: ["mtu", "addresses"], mtu: 1500, addresses: ["192.0.2.50/24"] });
    let k = await ipLink(vm, "dummy0");
    expect(k.mtu).toBe(9000);
    expect(addrsOf(k)).toEqual(["198.51.100.5/24", "2001:db8:9::5/64"]);
    expect(k.ifindex).toBe(before.ifindex);

    // In place: another MTU, one address swapped; the record of the original stays.
    const c = await change("Interface", nic.outs, { connection, name: "dummy0", mtu: 4000, addresses: ["198.51.100.6/24"] });
    expect(c.diff).toEqual({ changes: true, replaces: [], deleteBeforeReplace: true });
    const updated = (await c.apply()).outs;
    expect(updated.original).toEqual(nic.outs.original);
    k = await ipLink(vm, "dummy0");
    expect(k.mtu).toBe(4000);
    expect(addrsOf(k)).toEqual(["198.51.100.6/24"]);

    await provider("Interface").delete(nic.id, updated);
    k = await ipLink(vm, "dummy0");
    expect(k).toBeDefined(); // never deleted
    expect(k.mtu).toBe(1500);
    expect(addrsOf(k)).toEqual(["192.0.2.50/24"]);
    expect(k.flags).toContain("UP");

    // A bond made by the stack, the other spare NIC as its slave with slave options.
    const bond = await up("Bond", { connection, name: "bnd0", mode: "active-backup" });
    const slave = await up("Interface", { connection, name: "dummy1", master: "bnd0", bondPort: { queueId: 3, priority: 5 } });
    expect((await ipLink(vm, "dummy1")).linkinfo.info_slave_data).toMatchObject({ queue_id: 3, prio: 5 });
    expect(slave.outs.bondPort).toEqual({ queueId: 3, priority: 5 });
    await provider("Interface").delete(slave.id, slave.outs);
    expect((await ipLink(vm, "dummy1")).master).toBeUndefined();
    await provider("Bond").delete(bond.id, bond.outs);
  });
});
