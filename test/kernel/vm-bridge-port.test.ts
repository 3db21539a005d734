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
});
