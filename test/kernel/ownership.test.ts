// What the stack owns on a real host: delete and update touch only the device the
// stack manages (issue 9 item 5), and IPv6 addresses the kernel manages are left
// alone (item 7). The device left on the host is the assertion.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { closeAllConnections } from "../../provider/transport/ssh";
import { netnsPrerequisites, startNetnsLab, type NetnsHost, type NetnsLab } from "../hosts/netns";
import { ipLink, labConnection } from "../support/kernel";
import { change, mustRun, up } from "../support/kernel-steps";
import { hostSuite } from "../support/prereq";
import { failure } from "../support/errors";

hostSuite("ownership on a namespace host", netnsPrerequisites().missing, () => {
  let lab: NetnsLab;
  let h: NetnsHost;
  const conn = () => labConnection(lab, h);

  beforeAll(async () => {
    lab = await startNetnsLab({ hosts: 1 });
    h = lab.hosts[0];
  });
  afterAll(async () => {
    closeAllConnections();
    await lab?.destroy();
  });

  describe("delete and update touch only the device the stack manages", () => {
    it("deleted out of band and a tap made under the name: delete and update refuse, naming it; the tap stays", async () => {
      const br = await up("Bridge", { connection: conn(), name: "ownbr", mtu: 1400 });
      await mustRun(h, ["ip", "link", "del", "dev", "ownbr"]);
      await mustRun(h, ["ip", "tuntap", "add", "dev", "ownbr", "mode", "tap"]);
      const before = await ipLink(h, "ownbr");

      const del = await failure(br.rt.delete(br.id, br.outs));
      expect(del.message).toBe(`${h.address}: refusing to delete ownbr: the device there is a tun, but the stack manages a bridge of that name (deleted and replaced outside Pulumi?). It was left untouched`);
      const { apply } = await change("Bridge", br.outs, { ...br.inputs, mtu: 1300 });
      expect((await failure(apply())).message).toMatch(/refusing to update ownbr: the device there is a tun/);

      const after = await ipLink(h, "ownbr");
      expect(after).toBeDefined();
      expect([after.ifindex, after.linkinfo.info_kind, after.mtu]).toEqual([before.ifindex, "tun", before.mtu]);
      await mustRun(h, ["ip", "link", "del", "dev", "ownbr"]);
    });

    it("recreated out of band as the same kind: refused (other ifindex) until refresh records it, then deleted", async () => {
      const br = await up("Bridge", { connection: conn(), name: "ownbr2" });
      await mustRun(h, ["ip", "link", "del", "dev", "ownbr2"]);
      await mustRun(h, ["ip", "link", "add", "name", "ownbr2", "type", "bridge"]);
      const other = await ipLink(h, "ownbr2");
      expect(other.ifindex).not.toBe(br.outs.ifindex);

      const del = await failure(br.rt.delete(br.id, br.outs));
      expect(del.message).toContain(`refusing to delete ownbr2: the device there is a bridge with ifindex ${other.ifindex}, but the one the stack manages has ifindex ${br.outs.ifindex}`);
      expect((await ipLink(h, "ownbr2"))?.ifindex).toBe(other.ifindex);

      const refreshed = await br.rt.read(br.id, br.outs);
      expect(refreshed.props.ifindex).toBe(other.ifindex);
      await br.rt.delete(br.id, refreshed.props);
      expect(await ipLink(h, "ownbr2")).toBeUndefined();
    });

    it("a device the stack manages is deleted; one already gone is fine", async () => {
      const br = await up("Bridge", { connection: conn(), name: "ownbr3" });
      await br.rt.delete(br.id, br.outs);
      expect(await ipLink(h, "ownbr3")).toBeUndefined();
      await br.rt.delete(br.id, br.outs);
    });
  });

  describe("IPv6 addresses the kernel manages are not the stack's", () => {
    const v6 = (k: any) => (k.addr_info ?? []).filter((a: any) => a.family === "inet6").map((a: any) => `${a.local}/${a.prefixlen}`).sort();

    it("an address with a finite lifetime added out of band, and the kernel's link-local, survive updates; an unlisted permanent one is removed", async () => {
      const ve = await up("VethPair", { connection: conn(), name: "own6a", peerName: "own6b", addresses: ["2001:db8:1::1/64"] });
      // The kernel's own link-local comes with carrier (both ends up).
      let k = await ipLink(h, "own6a");
      for (let i = 0; i < 50 && !v6(k).some((a: string) => a.startsWith("fe80:")); i++) {
        await new Promise((r) => setTimeout(r, 100));
        k = await ipLink(h, "own6a");
      }
      const linkLocal = v6(k).find((a: string) => a.startsWith("fe80:"));
      expect(linkLocal).toBeDefined();
      await mustRun(h, ["ip", "addr", "add", "2001:db8::5/64", "dev", "own6a", "valid_lft", "300", "preferred_lft", "300"]);
      await mustRun(h, ["ip", "addr", "add", "2001:db8::99/64", "dev", "own6a"]);

      const refreshed = await ve.rt.read(ve.id, ve.outs);
      expect(refreshed.props.addresses).toEqual(["2001:db8:1::1/64", "2001:db8::99/64"]);
      const c = await change("VethPair", refreshed.props, { ...ve.inputs, mtu: 1400 });
      const updated = (await c.apply()).outs;
      k = await ipLink(h, "own6a");
      expect(k.mtu).toBe(1400);
      expect(v6(k)).toEqual([linkLocal, "2001:db8:1::1/64", "2001:db8::5/64"].sort());
      const kept = k.addr_info.find((a: any) => a.local === "2001:db8::5");
      expect(kept.valid_life_time).toBeLessThanOrEqual(300);
      expect(updated.addresses).toEqual(["2001:db8:1::1/64"]);
      await ve.rt.delete(ve.id, updated);
    });

    it("a listed link-local address is added and verified (the create is not rolled back); refresh shows no drift", async () => {
      const inputs = { connection: conn(), name: "own6ll", peerName: "own6lp", addresses: ["fe80::1234/64", "2001:db8:2::1/64"] };
      const ve = await up("VethPair", inputs);
      expect(ve.outs.addresses).toEqual(["2001:db8:2::1/64", "fe80::1234/64"]);
      const k = await ipLink(h, "own6ll");
      expect(v6(k)).toContain("fe80::1234/64");
      const refreshed = await ve.rt.read(ve.id, ve.outs);
      const c = await change("VethPair", refreshed.props, ve.inputs);
      expect(c.diff.changes).toBe(false);
      await ve.rt.delete(ve.id, ve.outs);
      expect(await ipLink(h, "own6ll")).toBeUndefined();
    });
  });
});
