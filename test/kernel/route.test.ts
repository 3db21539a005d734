// Route on a real kernel over real SSH (a network-namespace host): add, in-place
// replace, identity change, IPv4 and IPv6, a table other than main, drift, adopt,
// and a route whose device is gone. Every write is checked with `ip -j route show`
// run through the system ssh client, not the project's transport.
import { afterAll, beforeAll, expect, it } from "vitest";
import { netnsPrerequisites, startNetnsLab, type NetnsHost, type NetnsLab } from "../hosts/netns";
import { provider } from "../../provider/runtime";
import { closeAllConnections } from "../../provider/transport/ssh";
import { hostSuite } from "../support/prereq";
import { labConnection, sshExec } from "../support/kernel";
import { change, mustRun, up } from "../support/kernel-steps";

hostSuite("Route on a namespace host", netnsPrerequisites().missing, () => {
  let lab: NetnsLab;
  let h: NetnsHost & ReturnType<typeof sshExec>;
  let conn: ReturnType<typeof labConnection>;
  let bridge: { id: string; outs: Record<string, any> };

  /** The kernel's routes of one family and table for a prefix, read independently. */
  async function routes(family: 4 | 6, table: string, prefix: string): Promise<any[]> {
    return JSON.parse(await mustRun(h, ["ip", "-j", `-${family}`, "route", "show", "table", table, "exact", prefix]));
  }

  beforeAll(async () => {
    lab = await startNetnsLab({ hosts: 1 });
    h = Object.assign(Object.create(lab.hosts[0]), sshExec(lab, lab.hosts[0]));
    conn = labConnection(lab, h);
    // The device the routes go through, made by the provider itself.
    bridge = await up("Bridge", { connection: conn, name: "rtbr0", addresses: ["192.0.2.1/24", "2001:db8:1::1/64"] });
  });
  afterAll(async () => {
    closeAllConnections();
    await lab?.destroy();
  });

  it("IPv4 in table main: add, replace in place, drift reported and repaired, delete exactly that route", async () => {
    const inputs = { connection: conn, destination: "198.51.100.0/24", via: "192.0.2.254", device: "rtbr0", metric: 50 };
    const { rt, id, outs } = await up("Route", inputs);
    expect(outs).toMatchObject({ family: "inet", via: "192.0.2.254", device: "rtbr0", metric: 50, protocol: "boot", table: "main" });
    expect(await routes(4, "main", "198.51.100.0/24")).toEqual([expect.objectContaining({ gateway: "192.0.2.254", dev: "rtbr0", metric: 50 })]);

    // A second route to the same prefix with another metric is another route: never touched.
    await mustRun(h, ["ip", "route", "add", "198.51.100.0/24", "via", "192.0.2.253", "metric", "60"]);

    const c = await change("Route", outs, { ...inputs, via: "192.0.2.250", protocol: "static" });
    expect(c.diff).toEqual({ changes: true, replaces: [], deleteBeforeReplace: true });
    const updated = (await c.apply()).outs;
    expect(updated).toMatchObject({ via: "192.0.2.250", protocol: "static" });
    let k = await routes(4, "main", "198.51.100.0/24");
    expect(k).toHaveLength(2);
    expect(k.find((r) => r.metric === 50)).toMatchObject({ gateway: "192.0.2.250", protocol: "static" });

    // Drift made outside Pulumi: read reports the kernel's gateway, the next diff wants an update.
    await mustRun(h, ["ip", "route", "replace", "198.51.100.0/24", "via", "192.0.2.9", "metric", "50"]);
    const read = await rt.read(id, updated);
    expect(read.id).toBe(id);
    expect(read.props).toMatchObject({ via: "192.0.2.9", protocol: "boot" });
    const fix = await change("Route", read.props, { ...inputs, via: "192.0.2.250", protocol: "static" });
    expect(fix.diff.changes).toBe(true);
    expect(fix.diff.replaces).toEqual([]);
    await fix.apply();
    expect((await routes(4, "main", "198.51.100.0/24")).find((r) => r.metric === 50)).toMatchObject({ gateway: "192.0.2.250", protocol: "static" });

    // Changing the metric is a different route: replace.
    expect((await change("Route", updated, { ...inputs, metric: 51 })).diff.replaces).toEqual(["metric"]);

    await rt.delete(id, updated);
    k = await routes(4, "main", "198.51.100.0/24");
    expect(k).toEqual([expect.objectContaining({ gateway: "192.0.2.253", metric: 60 })]);
    await rt.delete(id, updated); // already gone: succeeds
    await mustRun(h, ["ip", "route", "del", "198.51.100.0/24", "via", "192.0.2.253", "metric", "60"]);
  });

  it("IPv6 default route and a blackhole in table 100; adopt takes over an existing route", async () => {
    const v6 = await up("Route", { connection: conn, destination: "default", via: "2001:db8:1::fe", device: "rtbr0", metric: 300 });
    expect(v6.outs).toMatchObject({ family: "inet6", metric: 300, via: "2001:db8:1::fe" });
    expect(await routes(6, "main", "::/0")).toContainEqual(expect.objectContaining({ dst: "default", gateway: "2001:db8:1::fe", dev: "rtbr0", metric: 300 }));

    const bh = await up("Route", { connection: conn, destination: "10.99.0.0/16", type: "blackhole", table: 100 });
    expect(await routes(4, "100", "10.99.0.0/16")).toEqual([expect.objectContaining({ type: "blackhole" })]);
    expect(await routes(4, "main", "10.99.0.0/16")).toEqual([]);
    // blackhole → unreachable is in place (ip route replace).
    const c = await change("Route", bh.outs, { connection: conn, destination: "10.99.0.0/16", type: "unreachable", table: 100 });
    expect(c.diff.replaces).toEqual([]);
    await c.apply();
    expect(await routes(4, "100", "10.99.0.0/16")).toEqual([expect.objectContaining({ type: "unreachable" })]);

    // A route made outside Pulumi: refused, then adopted.
    await mustRun(h, ["ip", "route", "add", "203.0.113.0/24", "via", "192.0.2.7", "table", "100"]);
    const existing = { connection: conn, destination: "203.0.113.0/24", via: "192.0.2.8", table: 100 };
    const checked = (await provider("Route").check({}, existing)).inputs;
    await expect(provider("Route").create(checked)).rejects.toThrow(/IPv4 route 203\.0\.113\.0\/24 \(table 100, metric 0\) already exists; it was left untouched/);
    expect(await routes(4, "100", "203.0.113.0/24")).toEqual([expect.objectContaining({ gateway: "192.0.2.7" })]);
    const adopted = await up("Route", { ...existing, adopt: true });
    expect(await routes(4, "100", "203.0.113.0/24")).toEqual([expect.objectContaining({ gateway: "192.0.2.8" })]);

    for (const r of [v6, bh, adopted]) await provider("Route").delete(r.id, r.outs);
    expect(await routes(6, "main", "::/0")).not.toContainEqual(expect.objectContaining({ gateway: "2001:db8:1::fe" }));
    expect(await routes(4, "100", "10.99.0.0/16")).toEqual([]);
    expect(await routes(4, "100", "203.0.113.0/24")).toEqual([]);
  });

  it("bad input fails in check and nothing reaches the host", async () => {
    const r = await provider("Route").check({}, { connection: conn, destination: "2001:db8:1::/64", via: "192.0.2.254" });
    expect(r.failures).toEqual([{ property: "via", reason: expect.stringContaining("IPv4 address but the route is IPv6") }]);
  });

  it("a route whose device is gone is reported gone", async () => {
    const r = await up("Route", { connection: conn, destination: "198.51.100.128/25", device: "rtbr0" });
    expect(r.outs).toMatchObject({ scope: "link", device: "rtbr0" });
    await provider("Bridge").delete(bridge.id, bridge.outs);
    expect(await provider("Route").read(r.id, r.outs)).toEqual({ id: "", props: {} });
    await provider("Route").delete(r.id, r.outs); // and delete of it succeeds
  });
});
