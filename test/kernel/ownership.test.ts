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
});
