// IpvlanLink (this machine's kernel has no ipvlan), MacvlanLink and MacvtapLink on
// the VM host's full Debian kernel over real SSH, through the runtime the
// provider host loads. One VM for the whole file; every write is checked with an
// independent `ip -j -d` read through the system ssh client.
//
// Parents: the guest's dummy0 and dummy1 for ipvlan; two more dummies made here for
// macvlan, because a device can carry ipvlans or macvlans but not both (the second
// kind gets EBUSY: both drivers claim the parent's receive handler).
import { afterAll, beforeAll, expect, it } from "vitest";
import { startVmHost, vmPrerequisites, type VmHost } from "../hosts/vm";
import { provider } from "../../provider/runtime";
import { closeAllConnections } from "../../provider/transport/ssh";
import { hostSuite } from "../support/prereq";
import { addrsOf, ipLink } from "../support/kernel";
import { change, mustRun, replace, up } from "../support/kernel-steps";

// Under TCG every step is slow; a loaded machine makes it slower.
const SLOW = 600_000;

hostSuite("ipvlan, macvlan and macvtap on a VM host", vmPrerequisites().missing, () => {
  let vm: VmHost;
  let conn: VmHost["connection"];

  beforeAll(async () => {
    vm = await startVmHost({ name: "vm-ipmv" });
    conn = vm.connection;
    for (const d of ["mvd0", "mvd1"]) {
      await ok(["ip", "link", "add", d, "type", "dummy"]);
      await ok(["ip", "link", "set", "dev", d, "up"]);
    }
  }, 600_000);
  afterAll(async () => {
    closeAllConnections();
    await vm?.stop();
  });

  const ok = (argv: string[]) => mustRun(vm, argv);

  const modeOf = async (dev: string) => {
    const d = (await ipLink(vm, dev)).linkinfo.info_data;
    return `${d.mode} ${["bridge", "private", "vepa"].filter((f) => d[f] === true).join(",")}`;
  };

  it("IpvlanLink: create, mode and flag in place, drift, replace on parent, delete", async () => {
    const inputs = { connection: conn, name: "ipv-a", parent: "dummy0", mode: "l2", mtu: 1400, addresses: ["198.51.100.1/24"] };
    const { rt, id, outs } = await up("IpvlanLink", inputs);
    expect(id).toBe(`127.0.0.1:${conn.port}//ipv-a`);
    let k = await ipLink(vm, "ipv-a");
    expect(k.linkinfo.info_kind).toBe("ipvlan");
    expect(k.linkinfo.info_data).toEqual({ mode: "l2", bridge: true });
    expect(k.link).toBe("dummy0");
    expect(k.mtu).toBe(1400);
    expect(k.flags).toContain("UP");
    expect(addrsOf(k)).toEqual(["198.51.100.1/24"]);
    expect(k.address).toBe((await ipLink(vm, "dummy0")).address);
    expect(outs).toMatchObject({ parent: "dummy0", mode: "l2", flag: "bridge", macAddress: k.address, ifindex: k.ifindex });

    // Flag, then mode, in place: the same device (ifindex) throughout.
    const priv = { ...inputs, flag: "private" };
    let c = await change("IpvlanLink", outs, priv);
    expect(c.diff).toEqual({ changes: true, replaces: [], deleteBeforeReplace: true });
    let updated = (await c.apply()).outs;
    expect(await modeOf("ipv-a")).toBe("l2 private");
    const l3s = { ...priv, mode: "l3s" };
    c = await change("IpvlanLink", updated, l3s);
    expect(c.diff).toEqual({ changes: true, replaces: [], deleteBeforeReplace: true });
    updated = (await c.apply()).outs;
    k = await ipLink(vm, "ipv-a");
    expect(k.ifindex).toBe(outs.ifindex);
    // Changing the mode kept the flag (iproute would reset it to bridge without it).
    expect(await modeOf("ipv-a")).toBe("l3s private");
    expect(updated).toMatchObject({ mode: "l3s", flag: "private" });

    // Drift made outside Pulumi.
    await ok(["ip", "link", "set", "dev", "ipv-a", "type", "ipvlan", "mode", "l2", "vepa"]);
    const refreshed = await rt.read(id, updated);
    expect(refreshed.props).toMatchObject({ mode: "l2", flag: "vepa" });
    const fix = await change("IpvlanLink", refreshed.props, l3s);
    expect(fix.diff).toMatchObject({ changes: true, replaces: [] });
    await fix.apply();
    expect(await modeOf("ipv-a")).toBe("l3s private");

    // Creation-only: the parent.
    const moved = { ...l3s, parent: "dummy1" };
    expect((await change("IpvlanLink", updated, moved)).diff.replaces).toEqual(["parent"]);
    const onDummy1 = await replace("IpvlanLink", updated, moved);
    k = await ipLink(vm, "ipv-a");
    expect(k.link).toBe("dummy1");
    expect(k.address).toBe((await ipLink(vm, "dummy1")).address);
    expect(await modeOf("ipv-a")).toBe("l3s private");

    await onDummy1.rt.delete(onDummy1.id, onDummy1.outs);
    expect(await ipLink(vm, "ipv-a")).toBeUndefined();
    expect((await rt.read(id, onDummy1.outs)).id).toBe("");
    await rt.delete(id, onDummy1.outs);
  }, SLOW);

  it("IpvlanLink siblings: a different mode or flag on the same parent is refused by name, nothing changes", async () => {
    const s1 = await up("IpvlanLink", { connection: conn, name: "ipv-s1", parent: "dummy0", mode: "l2" });
    const rt = provider("IpvlanLink");

    const conflicting = (await rt.check({}, { connection: conn, name: "ipv-s2", parent: "dummy0", mode: "l3" })).inputs;
    await expect(rt.create(conflicting)).rejects.toThrow(/ipv-s2 asks for ipvlan mode l3 bridge on dummy0, but ipv-s1 on the same parent is in mode l2 bridge/);
    expect(await ipLink(vm, "ipv-s2")).toBeUndefined();
    expect(await modeOf("ipv-s1")).toBe("l2 bridge");

    const s2 = await up("IpvlanLink", { connection: conn, name: "ipv-s2", parent: "dummy0", mode: "l2" });
    expect(await modeOf("ipv-s2")).toBe("l2 bridge");

    // Changing one sibling's flag would change the other's: refused before any write.
    const flip = await change("IpvlanLink", s1.outs, { connection: conn, name: "ipv-s1", parent: "dummy0", mode: "l2", flag: "private" });
    expect(flip.diff.replaces).toEqual([]);
    await expect(flip.apply()).rejects.toThrow(/ipv-s1 asks for ipvlan mode l2 private on dummy0, but ipv-s2 on the same parent is in mode l2 bridge/);
    expect(await modeOf("ipv-s1")).toBe("l2 bridge");
    expect(await modeOf("ipv-s2")).toBe("l2 bridge");

    // The parent is taken by ipvlans: the kernel refuses a macvlan on it.
    const mv = provider("MacvlanLink");
    const onBusy = (await mv.check({}, { connection: conn, name: "mv-busy", parent: "dummy0" })).inputs;
    await expect(mv.create(onBusy)).rejects.toThrow(/Device or resource busy/);
    expect(await ipLink(vm, "mv-busy")).toBeUndefined();

    await s2.rt.delete(s2.id, s2.outs);
    await s1.rt.delete(s1.id, s1.outs);
  }, SLOW);

  it("IpvlanLink: an ipvlan added outside Pulumi switches its siblings' mode; refresh shows it and up restores it", async () => {
    const a = await up("IpvlanLink", { connection: conn, name: "ipv-k1", parent: "dummy1", mode: "l2" });
    // The kernel's "latest write wins" for the parent: a bare add resets the port to l3.
    await ok(["ip", "link", "add", "link", "dummy1", "name", "ipv-raw", "type", "ipvlan"]);
    const refreshed = await a.rt.read(a.id, a.outs);
    expect(refreshed.props.mode).toBe("l3");
    // With the foreign sibling still there, switching back would switch it too: refused.
    const back = await change("IpvlanLink", refreshed.props, { connection: conn, name: "ipv-k1", parent: "dummy1", mode: "l2" });
    await expect(back.apply()).rejects.toThrow(/ipv-raw on the same parent is in mode l3 bridge/);
    await ok(["ip", "link", "del", "dev", "ipv-raw"]);
    await back.apply();
    expect(await modeOf("ipv-k1")).toBe("l2 bridge");
    await a.rt.delete(a.id, a.outs);
  }, SLOW);

  for (const kind of ["MacvlanLink", "MacvtapLink"] as const) {
    const infoKind = kind === "MacvlanLink" ? "macvlan" : "macvtap";
    const dev = kind === "MacvlanLink" ? "mvl0" : "mvt0";

    it(`${kind}: create, bridge→vepa in place, drift, replace on parent and into passthru, delete`, async () => {
      const inputs = { connection: conn, name: dev, parent: "mvd0", mode: "bridge", addresses: ["203.0.113.7/24"] };
      const { rt, id, outs } = await up(kind, inputs);
      let k = await ipLink(vm, dev);
      expect(k.linkinfo.info_kind).toBe(infoKind);
      expect(k.linkinfo.info_data.mode).toBe("bridge");
      expect(k.link).toBe("mvd0");
      expect(addrsOf(k)).toEqual(["203.0.113.7/24"]);

      if (kind === "MacvtapLink") {
        expect(outs.tapDevicePath).toBe(`/dev/tap${k.ifindex}`);
        expect((await ok(["stat", "-c", "%F", outs.tapDevicePath])).trim()).toBe("character special file");
        const [maj, min] = (await ok(["stat", "-c", "%t:%T", outs.tapDevicePath])).trim().split(":").map((x) => parseInt(x, 16));
        expect(`${maj}:${min}`).toBe((await ok(["cat", `/sys/class/net/${dev}/macvtap/tap${k.ifindex}/dev`])).trim());
      } else {
        expect(outs).not.toHaveProperty("tapDevicePath");
      }

      const vepa = { ...inputs, mode: "vepa" };
      const c = await change(kind, outs, vepa);
      expect(c.diff).toEqual({ changes: true, replaces: [], deleteBeforeReplace: true });
      const updated = (await c.apply()).outs;
      k = await ipLink(vm, dev);
      expect(k.ifindex).toBe(outs.ifindex);
      expect(k.linkinfo.info_data.mode).toBe("vepa");

      await ok(["ip", "link", "set", "dev", dev, "type", infoKind, "mode", "private"]);
      const refreshed = await rt.read(id, updated);
      expect(refreshed.props.mode).toBe("private");
      await (await change(kind, refreshed.props, vepa)).apply();
      expect((await ipLink(vm, dev)).linkinfo.info_data.mode).toBe("vepa");

      const moved = { ...vepa, parent: "mvd1" };
      expect((await change(kind, updated, moved)).diff.replaces).toEqual(["parent"]);
      const onMvd1 = await replace(kind, updated, moved);
      expect((await ipLink(vm, dev)).link).toBe("mvd1");

      const pt = { ...moved, mode: "passthru" };
      expect((await change(kind, onMvd1.outs, pt)).diff.replaces).toEqual(["mode"]);
      expect((await vm.exec(["ip", "link", "set", "dev", dev, "type", infoKind, "mode", "passthru"])).stderr).toMatch(/Invalid argument/);
      const passthru = await replace(kind, onMvd1.outs, pt);
      k = await ipLink(vm, dev);
      expect(k.linkinfo.info_data.mode).toBe("passthru");
      expect(k.address).toBe((await ipLink(vm, "mvd1")).address);
      if (kind === "MacvtapLink") expect((await ok(["stat", "-c", "%F", passthru.outs.tapDevicePath])).trim()).toBe("character special file");

      await passthru.rt.delete(passthru.id, passthru.outs);
      expect(await ipLink(vm, dev)).toBeUndefined();
      expect((await rt.read(id, passthru.outs)).id).toBe("");
      if (kind === "MacvtapLink") expect((await vm.exec(["stat", passthru.outs.tapDevicePath])).code).not.toBe(0);
    }, SLOW);
  }
});
