// MacvlanLink and MacvtapLink on this machine's kernel over real SSH (network-
// namespace hosts), through the runtime the provider host loads. Every write is
// checked with an independent `ip -j -d` read over the system ssh client.
//
// Parents: the host's eth0 (its SSH uplink, as a macvlan on a server's uplink
// would be) for the non-exclusive modes, and veths made by the test for passthru,
// which takes over all of its parent's traffic and would cut SSH on eth0.
import { afterAll, beforeAll, expect, it } from "vitest";
import { netnsPrerequisites, startNetnsLab, type NetnsHost, type NetnsLab } from "../hosts/netns";
import { provider } from "../../provider/runtime";
import { closeAllConnections } from "../../provider/transport/ssh";
import { hostSuite } from "../support/prereq";
import { addrsOf, ipLink, labConnection, sshExec } from "../support/kernel";
import { change, mustRun, replace, up } from "../support/kernel-steps";

// Each step is a few SSH round trips; on a loaded machine a test takes minutes.
const SLOW = 600_000;

hostSuite("macvlan and macvtap on namespace hosts", netnsPrerequisites().missing, () => {
  let lab: NetnsLab;
  let h: NetnsHost & ReturnType<typeof sshExec>;
  let conn: ReturnType<typeof labConnection>;

  beforeAll(async () => {
    lab = await startNetnsLab({ hosts: 1 });
    h = Object.assign(Object.create(lab.hosts[0]), sshExec(lab, lab.hosts[0]));
    conn = labConnection(lab, h);
    // Spare parents; veths come up without a peer in another namespace.
    for (const [a, b] of [["par0", "par0p"], ["par1", "par1p"]]) {
      await ok(["ip", "link", "add", a, "type", "veth", "peer", "name", b]);
      await ok(["ip", "link", "set", "dev", a, "up"]);
    }
  });
  afterAll(async () => {
    closeAllConnections();
    await lab?.destroy();
  });

  const ok = (argv: string[]) => mustRun(h, argv);

  for (const kind of ["MacvlanLink", "MacvtapLink"] as const) {
    const infoKind = kind === "MacvlanLink" ? "macvlan" : "macvtap";
    const dev = kind === "MacvlanLink" ? "mvl0" : "mvt0";

    it(`${kind}: create, mode in place, drift, replace on parent and into passthru, delete`, async () => {
      const inputs = { connection: conn, name: dev, parent: "eth0", mode: "bridge", mtu: 1400, macAddress: "02:00:00:00:10:01", addresses: ["192.0.2.77/24"] };
      const { rt, id, outs } = await up(kind, inputs);
      expect(id).toBe(`${h.address}:22//${dev}`);
      let k = await ipLink(h, dev);
      expect(k.linkinfo.info_kind).toBe(infoKind);
      expect(k.linkinfo.info_data.mode).toBe("bridge");
      expect(k.link).toBe("eth0");
      expect(k.mtu).toBe(1400);
      expect(k.address).toBe("02:00:00:00:10:01");
      expect(k.flags).toContain("UP");
      expect(addrsOf(k)).toEqual(["192.0.2.77/24"]);
      expect(outs).toMatchObject({ parent: "eth0", mode: "bridge", ifindex: k.ifindex });
      expect(Object.values(outs)).not.toContain(undefined);

      // In place: bridge → vepa keeps the device.
      const vepa = { ...inputs, mode: "vepa" };
      const c = await change(kind, outs, vepa);
      expect(c.diff).toEqual({ changes: true, replaces: [], deleteBeforeReplace: true });
      const updated = (await c.apply()).outs;
      k = await ipLink(h, dev);
      expect(k.ifindex).toBe(outs.ifindex);
      expect(k.linkinfo.info_data.mode).toBe("vepa");
      expect(updated.mode).toBe("vepa");

      // Drift made outside Pulumi: refresh reports it, the next up changes it back in place.
      await ok(["ip", "link", "set", "dev", dev, "type", infoKind, "mode", "private"]);
      const refreshed = await rt.read(id, updated);
      expect(refreshed.props.mode).toBe("private");
      const fix = await change(kind, refreshed.props, vepa);
      expect(fix.diff).toMatchObject({ changes: true, replaces: [] });
      await fix.apply();
      expect((await ipLink(h, dev)).linkinfo.info_data.mode).toBe("vepa");

      // Creation-only: the parent. Carried out as Pulumi would (delete, then create).
      const moved = { ...vepa, parent: "par0" };
      const p = await change(kind, updated, moved);
      expect(p.diff.replaces).toEqual(["parent"]);
      const onPar0 = await replace(kind, updated, moved);
      k = await ipLink(h, dev);
      expect(k.link).toBe("par0");
      expect(k.linkinfo.info_data.mode).toBe("vepa");
      expect(onPar0.outs.parent).toBe("par0");

      // Into passthru is a replace, because the kernel refuses it in place (EINVAL).
      const pt = { ...moved, mode: "passthru", addresses: [] };
      const intoPt = await change(kind, onPar0.outs, pt);
      expect(intoPt.diff.replaces).toEqual(["mode"]);
      const refused = await h.exec(["ip", "link", "set", "dev", dev, "type", infoKind, "mode", "passthru"]);
      expect(refused.code).not.toBe(0);
      expect(refused.stderr).toMatch(/Invalid argument/);
      const passthru = await replace(kind, onPar0.outs, pt);
      k = await ipLink(h, dev);
      expect(k.linkinfo.info_data.mode).toBe("passthru");
      // passthru takes the parent's Ethernet address: macAddress set it on par0 too.
      expect((await ipLink(h, "par0")).address).toBe("02:00:00:00:10:01");
      // ...and out of passthru is a replace as well.
      expect((await change(kind, passthru.outs, { ...pt, mode: "bridge" })).diff.replaces).toEqual(["mode"]);

      await passthru.rt.delete(passthru.id, passthru.outs);
      expect(await ipLink(h, dev)).toBeUndefined();
      expect((await rt.read(id, passthru.outs)).id).toBe("");
      await rt.delete(id, passthru.outs); // already gone: still success
    }, SLOW);
  }

  it("MacvlanLink source mode: the MAC list is reconciled as a set, drift included; leaving source mode clears it", async () => {
    const inputs = { connection: conn, name: "mvsrc", parent: "eth0", mode: "source", sourceMacs: ["02:00:00:00:00:12", "02:00:00:00:00:11"] };
    const { rt, id, outs } = await up("MacvlanLink", inputs);
    const macs = async () => ((await ipLink(h, "mvsrc")).linkinfo.info_data.macaddr_data ?? []).slice().sort();
    expect(await macs()).toEqual(["02:00:00:00:00:11", "02:00:00:00:00:12"]);
    expect(outs.sourceMacs).toEqual(["02:00:00:00:00:11", "02:00:00:00:00:12"]);

    const next = { ...inputs, sourceMacs: ["02:00:00:00:00:12", "02:00:00:00:00:AB"] };
    const c = await change("MacvlanLink", outs, next);
    expect(c.diff).toMatchObject({ changes: true, replaces: [] });
    const updated = (await c.apply()).outs;
    expect(await macs()).toEqual(["02:00:00:00:00:12", "02:00:00:00:00:ab"]);

    await ok(["ip", "link", "set", "dev", "mvsrc", "type", "macvlan", "macaddr", "add", "02:00:00:00:00:99"]);
    const refreshed = await rt.read(id, updated);
    expect(refreshed.props.sourceMacs).toEqual(["02:00:00:00:00:12", "02:00:00:00:00:99", "02:00:00:00:00:ab"]);
    await (await change("MacvlanLink", refreshed.props, next)).apply();
    expect(await macs()).toEqual(["02:00:00:00:00:12", "02:00:00:00:00:ab"]);

    // Emptied on request.
    await (await change("MacvlanLink", updated, { ...inputs, sourceMacs: [] })).apply();
    expect((await ipLink(h, "mvsrc")).linkinfo.info_data.macaddr_count).toBe(0);

    // Out of source mode in place; the kernel flushes the list, and the kernel
    // refuses a list in any other mode (which is why check rejects it).
    await (await change("MacvlanLink", updated, { ...inputs, sourceMacs: ["02:00:00:00:00:11"] })).apply();
    const bridged = await (await change("MacvlanLink", updated, { connection: conn, name: "mvsrc", parent: "eth0", mode: "bridge" })).apply();
    let k = await ipLink(h, "mvsrc");
    expect(k.linkinfo.info_data.mode).toBe("bridge");
    expect(k.linkinfo.info_data).not.toHaveProperty("macaddr_count");
    expect(bridged.outs).not.toHaveProperty("sourceMacs");
    const r = await h.exec(["ip", "link", "set", "dev", "mvsrc", "type", "macvlan", "macaddr", "add", "02:00:00:00:00:11"]);
    expect(r.stderr).toMatch(/Invalid argument/);
    await (await change("MacvlanLink", bridged.outs, { ...inputs, sourceMacs: ["02:00:00:00:00:11"] })).apply();
    k = await ipLink(h, "mvsrc");
    expect(k.linkinfo.info_data).toMatchObject({ mode: "source", macaddr_data: ["02:00:00:00:00:11"] });

    await rt.delete(id, updated);
    expect(await ipLink(h, "mvsrc")).toBeUndefined();
  }, SLOW);

  it("MacvtapLink: tapDevicePath is the character device of this very macvtap", async () => {
    const { rt, id, outs } = await up("MacvtapLink", { connection: conn, name: "mvt-vm1", parent: "par1", mode: "bridge" });
    const k = await ipLink(h, "mvt-vm1");
    expect(outs.tapDevicePath).toBe(`/dev/tap${k.ifindex}`);
    // devtmpfs creates the node itself (no udev here, none needed). %t:%T is major:minor in hex.
    expect((await ok(["stat", "-c", "%F", outs.tapDevicePath])).trim()).toBe("character special file");
    const [maj, min] = (await ok(["stat", "-c", "%t:%T", outs.tapDevicePath])).trim().split(":").map((x) => parseInt(x, 16));
    // The kernel's own record of this device's char dev (sysfs is per namespace, /dev is not).
    const sys = (await ok(["cat", `/sys/class/net/mvt-vm1/macvtap/tap${k.ifindex}/dev`])).trim();
    expect(`${maj}:${min}`).toBe(sys);
    expect(Number(sys.split(":")[0])).toBeGreaterThan(0);

    await rt.delete(id, outs);
    expect(await ipLink(h, "mvt-vm1")).toBeUndefined();
    expect((await h.exec(["stat", outs.tapDevicePath])).code).not.toBe(0);
  }, SLOW);

  it("a macvlan on a missing parent fails cleanly and leaves nothing behind", async () => {
    const rt = provider("MacvlanLink");
    const inputs = (await rt.check({}, { connection: conn, name: "mv-orphan", parent: "no-such-dev" })).inputs;
    await expect(rt.create(inputs)).rejects.toThrow(/no-such-dev/);
    expect(await ipLink(h, "mv-orphan")).toBeUndefined();
  }, SLOW);
});
