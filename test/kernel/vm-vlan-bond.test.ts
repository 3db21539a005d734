// Vlan and Bond on a full Debian kernel (QEMU VM host: this machine's kernel has
// neither), over real SSH, through the same runtime the provider host loads.
// Every write is checked with an independent read through the system ssh client
// (`ip -j -d addr show`, /proc/net/bonding). One VM serves the whole file.
import { afterAll, beforeAll, expect, it } from "vitest";
import { VerificationError } from "../../provider/errors";
import { closeAllConnections } from "../../provider/transport/ssh";
import { startVmHost, vmPrerequisites, type VmHost } from "../hosts/vm";
import { addrsOf, ipLink } from "../support/kernel";
import { change, mustRun, up } from "../support/kernel-steps";
import { hostSuite } from "../support/prereq";

hostSuite("Vlan and Bond on a VM host", vmPrerequisites().missing, () => {
  let vm: VmHost;
  let conn: VmHost["connection"];

  beforeAll(async () => {
    vm = await startVmHost({ name: "vm-vlan-bond" });
    conn = vm.connection;
    console.log(`[vm-vlan-bond] boot-to-SSH ${vm.bootMs} ms`);
  }, 600_000);
  afterAll(async () => {
    closeAllConnections();
    await vm?.stop();
  });

  const sh = (argv: string[]) => mustRun(vm, argv);
  /** Slaves in enslave order, as the bonding driver lists them. */
  async function procSlaves(bond: string, ns?: string): Promise<string[]> {
    const cat = ["cat", `/proc/net/bonding/${bond}`];
    const text = await sh(ns ? ["ip", "netns", "exec", ns, ...cat] : cat);
    return [...text.matchAll(/^Slave Interface: (\S+)/gm)].map((m) => m[1]);
  }

  it("Vlan: create, in-place flags and qos maps, drift, id change = replace, silent no-op caught, delete", async () => {
    const inputs = {
      connection: conn, name: "v100", parent: "dummy0", vlanId: 100, mtu: 1400, addresses: ["192.0.2.1/24"],
      ingressQosMap: { "5": 6 }, egressQosMap: { "2": 3, "100000": 7 },
    };
    const { rt, id, outs } = await up("Vlan", inputs);
    expect(id).toBe(`127.0.0.1:${conn.port}//v100`);
    expect(outs).toMatchObject({ parent: "dummy0", vlanId: 100, protocol: "802.1Q", reorderHdr: true, gvrp: false, egressQosMap: { "2": 3, "100000": 7 } });
    expect(Object.values(outs)).not.toContain(undefined);

    let k = await ipLink(vm, "v100");
    expect(k.linkinfo.info_kind).toBe("vlan");
    expect(k.link).toBe("dummy0");
    expect(k.linkinfo.info_data).toMatchObject({ protocol: "802.1Q", id: 100, flags: ["REORDER_HDR"], ingress_qos: [{ from: 5, to: 6 }] });
    expect(k.linkinfo.info_data.egress_qos).toEqual(expect.arrayContaining([{ from: 2, to: 3 }, { from: 100000, to: 7 }]));
    expect(k.mtu).toBe(1400);
    expect(k.flags).toContain("UP");
    expect(addrsOf(k)).toEqual(["192.0.2.1/24"]);

    // In place: flags flipped, one egress mapping dropped (sent as 2:0), one added, ingress emptied.
    const next = { ...inputs, reorderHdr: false, mvrp: true, looseBinding: true, ingressQosMap: {}, egressQosMap: { "4": 5, "100000": 7 } };
    const c = await change("Vlan", outs, next);
    expect(c.diff).toEqual({ changes: true, replaces: [], deleteBeforeReplace: true });
    const updated = (await c.apply()).outs;
    k = await ipLink(vm, "v100");
    expect(k.ifindex).toBe(outs.ifindex);
    expect(k.linkinfo.info_data.flags).toEqual(["MVRP", "LOOSE_BINDING"]);
    expect(k.linkinfo.info_data).not.toHaveProperty("ingress_qos");
    expect(k.linkinfo.info_data.egress_qos).toEqual(expect.arrayContaining([{ from: 4, to: 5 }, { from: 100000, to: 7 }]));
    expect(k.linkinfo.info_data.egress_qos).toHaveLength(2);
    expect(updated).toMatchObject({ reorderHdr: false, mvrp: true, looseBinding: true, ingressQosMap: {}, egressQosMap: { "4": 5, "100000": 7 } });

    // Drift made outside Pulumi: refresh reports it, the next update undoes it.
    await sh(["ip", "link", "set", "dev", "v100", "type", "vlan", "reorder_hdr", "on", "egress-qos-map", "7:1", "ingress-qos-map", "0:9"]);
    const refreshed = await rt.read(id, updated);
    expect(refreshed.props).toMatchObject({ reorderHdr: true, egressQosMap: { "4": 5, "7": 1, "100000": 7 }, ingressQosMap: { "0": 9 } });
    const fix = await change("Vlan", refreshed.props, next);
    expect(fix.diff).toMatchObject({ changes: true, replaces: [] });
    await fix.apply();
    k = await ipLink(vm, "v100");
    expect(k.linkinfo.info_data.flags).not.toContain("REORDER_HDR");
    expect(k.linkinfo.info_data.egress_qos).toHaveLength(2);
    expect(k.linkinfo.info_data).not.toHaveProperty("ingress_qos");

    // An id change through diff is a replacement (delete first, then create).
    const renum = await change("Vlan", updated, { ...next, vlanId: 101 });
    expect(renum.diff).toEqual({ changes: true, replaces: ["vlanId"], deleteBeforeReplace: true });
    await rt.delete(id, updated);
    expect(await ipLink(vm, "v100")).toBeUndefined();
    const v2 = await up("Vlan", renum.checked);
    k = await ipLink(vm, "v100");
    expect(k.linkinfo.info_data.id).toBe(101);
    expect(v2.outs.vlanId).toBe(101);

    // Bypassing diff: the kernel accepts `type vlan id 102` (exit 0) and ignores it;
    // verify-after-write reports it. The same holds for the protocol.
    const err = await rt.update(v2.id, v2.outs, { ...v2.inputs, vlanId: 102 }).catch((e) => e);
    expect(err).toBeInstanceOf(VerificationError);
    expect(err).toMatchObject({ field: "vlanId", desired: 102, actual: 101 });
    expect(err.message).toContain("vlanId");
    const proto = await rt.update(v2.id, v2.outs, { ...v2.inputs, protocol: "802.1ad" }).catch((e) => e);
    expect(proto).toMatchObject({ field: "protocol", desired: "802.1ad", actual: "802.1Q" });
    k = await ipLink(vm, "v100");
    expect(k.linkinfo.info_data).toMatchObject({ id: 101, protocol: "802.1Q" });

    await rt.delete(v2.id, v2.outs);
    expect(await ipLink(vm, "v100")).toBeUndefined();
    expect((await rt.read(v2.id, v2.outs)).id).toBe("");
    await rt.delete(v2.id, v2.outs); // already gone: still success
    expect(await ipLink(vm, "dummy0")).toBeDefined();
  });

  it("Bond: active-backup, primary switch, slave removal, mode change by release/re-enslave, vlan on the bond, delete keeps slaves", async () => {
    const inputs = { connection: conn, name: "bond0", mode: "active-backup", miimon: 100, updelay: 200, slaves: ["dummy0", "dummy1"], primary: "dummy0" };
    const { rt, id, outs } = await up("Bond", inputs);
    // activeSlave is observed, not set: with updelay 200 ms the bond may pick it just after create.
    expect(outs).toMatchObject({ mode: "active-backup", miimon: 100, updelay: 200, slaves: ["dummy0", "dummy1"], primary: "dummy0" });
    expect([undefined, "dummy0"]).toContain(outs.activeSlave);
    let k = await ipLink(vm, "bond0");
    for (let i = 0; i < 30 && k.linkinfo.info_data.active_slave !== "dummy0"; i++) {
      await new Promise((r) => setTimeout(r, 100));
      k = await ipLink(vm, "bond0");
    }
    expect(k.linkinfo.info_kind).toBe("bond");
    expect(k.linkinfo.info_data).toMatchObject({ mode: "active-backup", miimon: 100, updelay: 200, primary: "dummy0", active_slave: "dummy0" });
    expect(k.flags).toContain("UP");
    expect(await procSlaves("bond0")).toEqual(["dummy0", "dummy1"]);
    for (const s of ["dummy0", "dummy1"]) {
      const sk = await ipLink(vm, s);
      expect(sk.master).toBe("bond0");
      expect(sk.flags).toContain("UP");
    }

    // Primary switched in place; the kernel moves the active slave to it.
    const p1 = await change("Bond", outs, { ...inputs, primary: "dummy1" });
    expect(p1.diff).toEqual({ changes: true, replaces: [], deleteBeforeReplace: true });
    const afterPrimary = (await p1.apply()).outs;
    k = await ipLink(vm, "bond0");
    expect(k.ifindex).toBe(outs.ifindex);
    expect(k.linkinfo.info_data).toMatchObject({ primary: "dummy1", active_slave: "dummy1" });

    // A slave removed: released (no master), the device itself stays.
    const rm = await change("Bond", afterPrimary, { ...inputs, primary: "dummy1", slaves: ["dummy1"] });
    expect(rm.diff.replaces).toEqual([]);
    const afterRemove = (await rm.apply()).outs;
    expect(afterRemove.slaves).toEqual(["dummy1"]);
    const d0 = await ipLink(vm, "dummy0");
    expect(d0).toBeDefined();
    expect(d0.master).toBeUndefined();
    expect(await procSlaves("bond0")).toEqual(["dummy1"]);

    // Added back at the end; then drift (released outside Pulumi) is seen and repaired.
    const two = { ...inputs, primary: "dummy1", slaves: ["dummy1", "dummy0"] };
    const afterAdd = (await (await change("Bond", afterRemove, two)).apply()).outs;
    expect(await procSlaves("bond0")).toEqual(["dummy1", "dummy0"]);
    await sh(["ip", "link", "set", "dev", "dummy0", "nomaster"]);
    const refreshed = await rt.read(id, afterAdd);
    expect(refreshed.props.slaves).toEqual(["dummy1"]);
    await (await change("Bond", refreshed.props, two)).apply();
    expect(await procSlaves("bond0")).toEqual(["dummy1", "dummy0"]);

    // The kernel refuses a mode change while the bond has slaves (or is up) ...
    const direct = await vm.exec(["ip", "link", "set", "dev", "bond0", "type", "bond", "mode", "balance-xor"]);
    expect(direct.code).not.toBe(0);
    expect(direct.stderr).toContain("has slaves");
    // ... so the provider takes it down, releases, changes, re-enslaves in order, brings it up.
    const xor = { connection: conn, name: "bond0", mode: "balance-xor", miimon: 100, updelay: 200, xmitHashPolicy: "layer3+4", slaves: ["dummy1", "dummy0"] };
    const m = await change("Bond", afterAdd, xor);
    expect(m.diff).toEqual({ changes: true, replaces: [], deleteBeforeReplace: true });
    const afterMode = (await m.apply()).outs;
    k = await ipLink(vm, "bond0");
    expect(k.ifindex).toBe(outs.ifindex);
    expect(k.linkinfo.info_data).toMatchObject({ mode: "balance-xor", miimon: 100, updelay: 200, xmit_hash_policy: "layer3+4" });
    expect(k.flags).toContain("UP");
    expect(await procSlaves("bond0")).toEqual(["dummy1", "dummy0"]);
    for (const s of ["dummy0", "dummy1"]) {
      const sk = await ipLink(vm, s);
      expect(sk.master).toBe("bond0");
      expect(sk.flags).toContain("UP");
    }
    expect(afterMode).toMatchObject({ mode: "balance-xor", slaves: ["dummy1", "dummy0"] });

    // A Vlan on top of the bond (as examples/vlan-on-bond does).
    const v = await up("Vlan", { connection: conn, name: "bond0.42", parent: "bond0", vlanId: 42, addresses: ["198.51.100.1/24"] });
    const vk = await ipLink(vm, "bond0.42");
    expect(vk).toMatchObject({ link: "bond0", linkinfo: { info_kind: "vlan", info_data: { id: 42, protocol: "802.1Q" } } });
    expect(addrsOf(vk)).toEqual(["198.51.100.1/24"]);
    expect(vk.flags).toContain("UP");
    await v.rt.delete(v.id, v.outs);
    expect(await ipLink(vm, "bond0.42")).toBeUndefined();

    // Delete releases every slave first; the slave devices survive.
    await rt.delete(id, afterMode);
    expect(await ipLink(vm, "bond0")).toBeUndefined();
    for (const s of ["dummy0", "dummy1"]) {
      const sk = await ipLink(vm, s);
      expect(sk).toBeDefined();
      expect(sk.master).toBeUndefined();
    }
    await rt.delete(id, afterMode);
    // Leave the guest's dummies as init made them.
    for (const s of ["dummy0", "dummy1"]) await sh(["ip", "link", "set", "dev", s, "up"]);
  });

  it("Bond: lacpRate on an up 802.3ad bond (down → change → up), in a Namespace", async () => {
    const ns = await up("Namespace", { connection: conn, name: "lacp" });
    await sh(["ip", "-n", "lacp", "link", "add", "d2", "type", "dummy"]);
    await sh(["ip", "-n", "lacp", "link", "add", "d3", "type", "dummy"]);
    const inputs = { connection: conn, namespace: "lacp", name: "bond1", mode: "802.3ad", lacpRate: "slow", xmitHashPolicy: "layer2+3", minLinks: 1, slaves: ["d3", "d2"] };
    const { rt, id, outs } = await up("Bond", inputs);
    expect(outs).toMatchObject({ mode: "802.3ad", lacpRate: "slow", miimon: 100, slaves: ["d3", "d2"] });
    expect(await procSlaves("bond1", "lacp")).toEqual(["d3", "d2"]);

    // The kernel refuses lacp_rate on an up bond.
    const direct = await vm.exec(["ip", "-n", "lacp", "link", "set", "dev", "bond1", "type", "bond", "lacp_rate", "fast"]);
    expect(direct.code).not.toBe(0);
    expect(direct.stderr).toContain("bond is up");

    const c = await change("Bond", outs, { ...inputs, lacpRate: "fast" });
    expect(c.diff.replaces).toEqual([]);
    await c.apply();
    const k = await ipLink(vm, "bond1", "lacp");
    expect(k.ifindex).toBe(outs.ifindex);
    expect(k.linkinfo.info_data.ad_lacp_rate).toBe("fast");
    expect(k.flags).toContain("UP");
    expect(await procSlaves("bond1", "lacp")).toEqual(["d3", "d2"]);

    await rt.delete(id, outs);
    expect(await ipLink(vm, "bond1", "lacp")).toBeUndefined();
    expect((await ipLink(vm, "d2", "lacp")).master).toBeUndefined();
    for (const d of ["d2", "d3"]) await sh(["ip", "-n", "lacp", "link", "del", "dev", d]);
    await ns.rt.delete(ns.id, ns.outs);
  });

  it("master naming a bond on update: an up veth end is taken down, enslaved and brought up again in one batch (peerMaster too)", async () => {
    const bond = await up("Bond", { connection: conn, name: "bondm", mode: "active-backup", miimon: 100 });
    const bondP = await up("Bond", { connection: conn, name: "bondp", mode: "active-backup", miimon: 100 });
    const ve = await up("VethPair", { connection: conn, name: "vbm0", peerName: "vbm1", mtu: 1500 });
    expect((await ipLink(vm, "vbm0")).flags).toContain("UP");
    // What the user hit: the kernel refuses to enslave a device that is up.
    const direct = await vm.exec(["ip", "link", "set", "dev", "vbm0", "master", "bondm"]);
    expect(direct.code).not.toBe(0);
    expect(direct.stderr).toMatch(/enslaved while up/);

    const c = await change("VethPair", ve.outs, { ...ve.inputs, master: "bondm", peerMaster: "bondp" });
    expect(c.diff.replaces).toEqual([]);
    const updated = (await c.apply()).outs;
    const k = await ipLink(vm, "vbm0");
    expect(k.master).toBe("bondm");
    expect(k.flags).toContain("UP");
    expect(k.ifindex).toBe(ve.outs.ifindex);
    expect(await procSlaves("bondm")).toEqual(["vbm0"]);
    expect(updated).toMatchObject({ master: "bondm", up: true, peerMaster: "bondp", peerUp: true });
    const p = await ipLink(vm, "vbm1");
    expect([p.master, p.flags.includes("UP")]).toEqual(["bondp", true]);
    expect(await procSlaves("bondp")).toEqual(["vbm1"]);

    await ve.rt.delete(ve.id, updated);
    await bond.rt.delete(bond.id, bond.outs);
    await bondP.rt.delete(bondP.id, bondP.outs);
    expect(await ipLink(vm, "bondm")).toBeUndefined();
    expect(await ipLink(vm, "bondp")).toBeUndefined();
  });
});
