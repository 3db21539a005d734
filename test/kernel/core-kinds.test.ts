// Bridge, TapDevice, VethPair and Namespace on a real kernel over real SSH
// (network-namespace hosts running sshd), through the same runtime the provider
// host loads. Every write is checked with an independent `ip -j -d` read.
import { afterAll, beforeAll, expect, it } from "vitest";
import { netnsPrerequisites, startNetnsLab, type NetnsHost, type NetnsLab } from "../hosts/netns";
import { provider } from "../../provider/runtime";
import { closeAllConnections, sshStats } from "../../provider/transport/ssh";
import { hostSuite } from "../support/prereq";
import { addrsOf, ipLink, labConnection, sshExec } from "../support/kernel";
import { change, up } from "../support/kernel-steps";

hostSuite("core kinds on namespace hosts", netnsPrerequisites().missing, () => {
  let lab: NetnsLab;
  let h: NetnsHost & ReturnType<typeof sshExec>;
  let conn: ReturnType<typeof labConnection>;
  const opened0 = sshStats.connectionsOpened;

  beforeAll(async () => {
    lab = await startNetnsLab({ hosts: 2 });
    h = Object.assign(Object.create(lab.hosts[0]), sshExec(lab, lab.hosts[0]));
    conn = labConnection(lab, h);
  });
  afterAll(async () => {
    closeAllConnections();
    await lab?.destroy();
  });

  it("Bridge: create, update in place, drift, replace, delete", async () => {
    const inputs = { connection: conn, name: "br0", stp: false, forwardDelay: 4, ageingTime: 120, addresses: ["192.0.2.1/24", "2001:db8::1/64"], mtu: 1400 };
    const { rt, id, outs } = await up("Bridge", inputs);
    expect(id).toBe(`${h.address}:22//br0`);
    expect(outs.ifindex).toBeGreaterThan(0);
    expect(outs.operState).toBeTypeOf("string");
    expect(Object.values(outs)).not.toContain(undefined);

    let k = await ipLink(h, "br0");
    expect(k.linkinfo.info_kind).toBe("bridge");
    expect(k.linkinfo.info_data.stp_state).toBe(0);
    expect(k.linkinfo.info_data.forward_delay).toBe(400);
    expect(k.linkinfo.info_data.ageing_time).toBe(12000);
    expect(k.mtu).toBe(1400);
    expect(k.flags).toContain("UP");
    expect(addrsOf(k)).toEqual(["192.0.2.1/24", "2001:db8::1/64"]);

    // In place: STP on with a legal delay, snooping off, one address swapped.
    const next = { ...inputs, stp: true, forwardDelay: 5, mcastSnooping: false, priority: 4096, addresses: ["192.0.2.1/24", "198.51.100.1/24"] };
    const c = await change("Bridge", outs, next);
    expect(c.diff).toEqual({ changes: true, replaces: [], deleteBeforeReplace: true });
    const updated = (await c.apply()).outs;
    k = await ipLink(h, "br0");
    expect(k.ifindex).toBe(outs.ifindex); // same device: not replaced
    expect(k.linkinfo.info_data.stp_state).not.toBe(0);
    expect(k.linkinfo.info_data.forward_delay).toBe(500);
    expect(k.linkinfo.info_data.mcast_snooping).toBe(0);
    expect(k.linkinfo.info_data.priority).toBe(4096);
    expect(addrsOf(k)).toEqual(["192.0.2.1/24", "198.51.100.1/24"]);

    // Drift made outside Pulumi: refresh (read) reports it, and the next diff wants an update.
    await h.exec(["ip", "link", "set", "dev", "br0", "mtu", "1300"]);
    await h.exec(["ip", "addr", "del", "198.51.100.1/24", "dev", "br0"]);
    const refreshed = await rt.read(id, updated);
    expect(refreshed.id).toBe(id);
    expect(refreshed.props.mtu).toBe(1300);
    expect(refreshed.props.addresses).toEqual(["192.0.2.1/24"]);
    const fix = await change("Bridge", refreshed.props, next);
    expect(fix.diff.changes).toBe(true);
    expect(fix.diff.replaces).toEqual([]);
    await fix.apply();
    k = await ipLink(h, "br0");
    expect(k.mtu).toBe(1400);
    expect(addrsOf(k)).toEqual(["192.0.2.1/24", "198.51.100.1/24"]);

    // Renaming is creation-only.
    const renamed = await change("Bridge", updated, { ...next, name: "br1" });
    expect(renamed.diff.replaces).toEqual(["name"]);
    expect(renamed.diff.deleteBeforeReplace).toBe(true);

    // A credential-only change is an update, never a replace.
    const creds = await change("Bridge", updated, { ...next, connection: { ...conn, connectTimeoutMs: 5000 } });
    expect(creds.diff.replaces).toEqual([]);

    await rt.delete(id, updated);
    expect(await ipLink(h, "br0")).toBeUndefined();
    expect((await rt.read(id, updated)).id).toBe("");
    await rt.delete(id, updated); // already gone: still success
  });

  it("TapDevice: creation-only options, enslaved, drift of master, replace on vnetHdr", async () => {
    const br = await up("Bridge", { connection: conn, name: "brt" });
    const inputs = { connection: conn, name: "tap-vm1", mode: "tap", vnetHdr: true, multiQueue: true, owner: 4242, group: 4343, master: "brt", mtu: 1450 };
    const { rt, id, outs } = await up("TapDevice", inputs);
    let k = await ipLink(h, "tap-vm1");
    expect(k.linkinfo.info_kind).toBe("tun");
    expect(k.linkinfo.info_data).toMatchObject({ type: "tap", vnet_hdr: true, multi_queue: true, pi: false });
    expect(String(k.linkinfo.info_data.user)).toBe("4242");
    expect(k.master).toBe("brt");
    expect(k.mtu).toBe(1450);
    expect(outs.master).toBe("brt");

    await h.exec(["ip", "link", "set", "dev", "tap-vm1", "nomaster"]);
    const refreshed = await rt.read(id, outs);
    expect(refreshed.props.master).toBeUndefined();
    const fix = await change("TapDevice", refreshed.props, inputs);
    expect(fix.diff).toMatchObject({ changes: true, replaces: [] });
    await fix.apply();
    expect((await ipLink(h, "tap-vm1")).master).toBe("brt");

    const mode = await change("TapDevice", outs, { ...inputs, vnetHdr: false });
    expect(mode.diff.replaces).toEqual(["vnetHdr"]);

    const tun = await up("TapDevice", { connection: conn, name: "tun0", mode: "tun", pi: true });
    k = await ipLink(h, "tun0");
    expect(k.linkinfo.info_data).toMatchObject({ type: "tun", pi: true });
    await tun.rt.delete(tun.id, tun.outs);

    await rt.delete(id, outs);
    await br.rt.delete(br.id, br.outs);
    expect(await ipLink(h, "tap-vm1")).toBeUndefined();
  });

  it("VethPair into a Namespace: both ends configured, peer drift, replace, Namespace delete guard", async () => {
    const nsName = `${lab.id}-ct1`;
    const ns = await up("Namespace", { connection: conn, name: nsName });
    expect((await h.exec(["ip", "netns", "list"])).stdout).toContain(nsName);
    const br = await up("Bridge", { connection: conn, name: "brv", addresses: ["203.0.113.1/24"] });
    const inputs = {
      connection: conn, name: "veth-ct1", peerName: "eth0", peerNamespace: nsName, master: "brv",
      peerAddresses: ["203.0.113.2/24"], peerMtu: 1400, peerMacAddress: "02:00:00:00:00:02",
    };
    const { rt, id, outs } = await up("VethPair", inputs);
    const host = await ipLink(h, "veth-ct1");
    const peer = await ipLink(h, "eth0", nsName);
    expect(host.master).toBe("brv");
    expect(host.flags).toContain("UP");
    expect(peer.address).toBe("02:00:00:00:00:02");
    expect(peer.mtu).toBe(1400);
    expect(addrsOf(peer)).toEqual(["203.0.113.2/24"]);
    expect(outs.peerIfindex).toBe(peer.ifindex);
    // The pair carries traffic: the bridge's address answers from inside the namespace.
    const ping = await h.exec(["ip", "netns", "exec", nsName, "ping", "-c1", "-W2", "203.0.113.1"]);
    expect(ping.code, ping.stdout + ping.stderr).toBe(0);

    await h.exec(["ip", "-n", nsName, "addr", "flush", "dev", "eth0"]);
    const refreshed = await rt.read(id, outs);
    expect(refreshed.props.peerAddresses).toEqual([]);
    const fix = await change("VethPair", refreshed.props, { ...inputs, peerMtu: 1300 });
    expect(fix.diff.replaces).toEqual([]);
    await fix.apply();
    const peer2 = await ipLink(h, "eth0", nsName);
    expect(addrsOf(peer2)).toEqual(["203.0.113.2/24"]);
    expect(peer2.mtu).toBe(1300);

    expect((await change("VethPair", outs, { ...inputs, peerName: "eth1" })).diff.replaces).toEqual(["peerName"]);

    // The namespace still holds eth0: deleting it must be refused, not silently destroy the peer.
    await expect(ns.rt.delete(ns.id, ns.outs)).rejects.toThrow(/still holds eth0/);
    await rt.delete(id, outs);
    expect(await ipLink(h, "veth-ct1")).toBeUndefined();
    expect(await ipLink(h, "eth0", nsName)).toBeUndefined();
    await ns.rt.delete(ns.id, ns.outs);
    expect((await h.exec(["ip", "netns", "list"])).stdout).not.toContain(nsName);
    await br.rt.delete(br.id, br.outs);
  });

  it("adopt: an existing device is refused untouched without adopt, taken over with it", async () => {
    await h.exec(["ip", "link", "add", "name", "bra", "mtu", "1280", "type", "bridge"]);
    const rt = provider("Bridge");
    const inputs = (await rt.check({}, { connection: conn, name: "bra", mtu: 1500 })).inputs;
    await expect(rt.create(inputs)).rejects.toThrow(/already exists.*left untouched.*adopt/);
    expect((await ipLink(h, "bra")).mtu).toBe(1280);

    const adopted = await rt.create({ ...inputs, adopt: true });
    expect((await ipLink(h, "bra")).mtu).toBe(1500);

    // Another kind with the same name is never taken over, even with adopt.
    const tap = provider("TapDevice");
    const tapInputs = (await tap.check({}, { connection: conn, name: "bra", adopt: true })).inputs;
    await expect(tap.create(tapInputs)).rejects.toThrow(/is a bridge, not a tun/);
    expect((await ipLink(h, "bra")).linkinfo.info_kind).toBe("bridge");
    await rt.delete(adopted.id, adopted.outs);
  });

  it("a create that fails halfway leaves no device behind", async () => {
    const rt = provider("TapDevice");
    const inputs = (await rt.check({}, { connection: conn, name: "tap-orphan", master: "no-such-br" })).inputs;
    await expect(rt.create(inputs)).rejects.toThrow(/no-such-br/);
    expect(await ipLink(h, "tap-orphan")).toBeUndefined();

    const veth = provider("VethPair");
    const vi = (await veth.check({}, { connection: conn, name: "v-orphan", peerName: "v-orphan-p", peerMaster: "no-such-br" })).inputs;
    await expect(veth.create(vi)).rejects.toThrow(/no-such-br/);
    expect(await ipLink(h, "v-orphan")).toBeUndefined();
    expect(await ipLink(h, "v-orphan-p")).toBeUndefined();
  });

  it("refuses a wrong or unknown host key before running anything", async () => {
    const rt = provider("Bridge");
    const other = lab.hosts[1];
    const wrongPin = (await rt.check({}, { connection: { ...labConnection(lab, other), hostKey: h.connection.hostKey }, name: "brk" })).inputs;
    await expect(rt.create(wrongPin)).rejects.toThrow(new RegExp(`${other.connection.hostKey.replace(/[+/]/g, ".")}.*does not match the pinned`));
    const { hostKey: _drop, ...unpinned } = labConnection(lab, other);
    const unknown = (await rt.check({}, { connection: { ...unpinned, knownHostsPath: "/nonexistent/known_hosts" }, name: "brk" })).inputs;
    await expect(rt.create(unknown)).rejects.toThrow(/unknown host key SHA256:.*connection.hostKey/);
    expect(await ipLink(other, "brk")).toBeUndefined();

    // A known_hosts file that lists the host is enough.
    const viaKnownHosts = (await rt.check({}, { connection: { ...unpinned, knownHostsPath: lab.knownHostsPath }, name: "brk" })).inputs;
    const made = await rt.create(viaKnownHosts);
    expect(await ipLink(other, "brk")).toBeDefined();
    await rt.delete(made.id, made.outs);
  });

  it("shares one pooled SSH connection per host across every resource", () => {
    // Two hosts were used (the second only by the host-key test's one accepted connection).
    expect(sshStats.connectionsOpened - opened0).toBe(2);
  });
});
