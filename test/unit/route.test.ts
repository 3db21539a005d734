// Route: schema (every field, valid and invalid), the argv it sends, the parser on
// `ip -j route show` output recorded on the full-kernel VM, and create/update/delete
// over a scripted transport that answers only the commands scripted here.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { type RouteJson, routeFields, routePrefix } from "../../provider/iproute/route";
import { routeAddArgv, routeDelArgv, routeReplaceArgv } from "../../provider/kinds/route";
import { provider } from "../../provider/runtime";
import { FakeTransport } from "../../provider/transport/fake";
import { installFake, kindChecks, restoreTransport } from "../support/unit";

const recorded = (name: string): RouteJson[] => JSON.parse(readFileSync(join(__dirname, "../fixtures/iproute", `${name}.json`), "utf8"));
const conn = { host: "192.0.2.10" };
const { accepted, rejected } = kindChecks("Route", { connection: conn, destination: "198.51.100.0/24", via: "192.0.2.254" });

describe("Route schema", () => {
  it("accepts every field with a valid value and fills the defaults", async () => {
    const v = await accepted({ device: "eth0", source: "192.0.2.1", metric: 50, table: 100, scope: "global", protocol: "static", onlink: true, namespace: "ns1", adopt: true });
    expect(v).toMatchObject({ destination: "198.51.100.0/24", via: "192.0.2.254", table: 100, type: "unicast", metric: 50 });
    expect((await accepted({})).table).toBe("main");
    expect((await accepted({ destination: "default" })).destination).toBe("default");
    expect((await accepted({ destination: "2001:DB8:0::/48", via: "2001:db8::FE" }))).toMatchObject({ destination: "2001:db8::/48", via: "2001:db8::fe" });
    await accepted({ destination: "default", via: "fe80::1", device: "eth0" });
    await accepted({ destination: "10.99.0.0/16", via: undefined, type: "blackhole" });
    await accepted({ destination: "10.98.0.0/16", via: undefined, type: "unreachable", metric: 0 });
    await accepted({ destination: "10.97.0.0/16", via: undefined, type: "prohibit", table: "local" });
    await accepted({ via: undefined, device: "br0", scope: "link" });
    await accepted({ protocol: 99, metric: 4294967295, table: 4294967295 });
    await accepted({ scope: "host", protocol: "boot" });
    await accepted({ protocol: "dhcp" });
    await accepted({ protocol: "ra" });
  });

  it("rejects bad values, naming the field and the value", async () => {
    expect((await rejected({ destination: "10.1.2.3/8" }, "destination")).reason).toMatch(/host bits set; the network is 10\.0\.0\.0\/8.*got "10\.1\.2\.3\/8"/);
    await rejected({ destination: "2001:db8::1/64", via: "2001:db8::fe" }, "destination", "the network is 2001:db8::/64");
    await rejected({ destination: "10.0.0.0" }, "destination", '"default" or a network prefix');
    await rejected({ destination: "10.0.0.0/33" }, "destination");
    await rejected({ destination: "nowhere" }, "destination");
    expect((await rejected({ destination: "2001:db8::/32" }, "via")).reason).toMatch(/IPv4 address but the route is IPv6.*got "192\.0\.2\.254"/);
    await rejected({ via: "2001:db8::fe" }, "via", "IPv6 address but the route is IPv4");
    await rejected({ source: "2001:db8::1" }, "source", "IPv6 address but the route is IPv4");
    await rejected({ via: "not-an-ip" }, "via", "got \"not-an-ip\"");
    await rejected({ device: "-rf" }, "device");
    await rejected({ metric: -1 }, "metric", "at least 0 (got -1)");
    await rejected({ metric: 4294967296 }, "metric", "at most 4294967295");
    await rejected({ metric: 1.5 }, "metric", "whole number");
    await rejected({ table: 0 }, "table");
    await rejected({ table: "mine" }, "table");
    await rejected({ scope: "site" }, "scope");
    await rejected({ protocol: "kernel" }, "protocol");
    await rejected({ protocol: 256 }, "protocol");
    await rejected({ onlink: true }, "onlink", "needs device");
    await rejected({ onlink: "yes" }, "onlink");
    await rejected({ type: "multicast" }, "type");
    await rejected({ type: "blackhole" }, "via", "must not be set on a blackhole route");
    await rejected({ via: undefined }, "via", "or device is required");
    await rejected({ namespace: "../x" }, "namespace");
    await rejected({ adopt: 1 }, "adopt");
    await rejected({ gateway: "192.0.2.1" }, "gateway", "unknown field");
  });
});

describe("Route argv", () => {
  const d = (extra: Record<string, unknown>) => ({ destination: "198.51.100.0/24", table: "main", type: "unicast", adopt: false, ...extra }) as any;
  it("names the whole identity on add, replace and del", () => {
    expect(routeAddArgv(d({ via: "192.0.2.254", device: "dum10", metric: 50, protocol: "static" }))).toEqual(
      ["ip", "route", "add", "198.51.100.0/24", "via", "192.0.2.254", "dev", "dum10", "metric", "50", "table", "main", "proto", "static"]);
    expect(routeReplaceArgv(d({ namespace: "n1", device: "br0", source: "192.0.2.1", scope: "link", table: 100 }))).toEqual(
      ["ip", "-n", "n1", "route", "replace", "198.51.100.0/24", "dev", "br0", "src", "192.0.2.1", "metric", "0", "table", "100", "scope", "link"]);
    expect(routeAddArgv(d({ destination: "default", via: "2001:db8::fe", device: "eth0", onlink: true }))).toEqual(
      ["ip", "route", "add", "::/0", "via", "2001:db8::fe", "dev", "eth0", "metric", "1024", "table", "main", "onlink"]);
    expect(routeAddArgv(d({ destination: "10.99.0.0/16", type: "blackhole", table: 100 }))).toEqual(
      ["ip", "route", "add", "blackhole", "10.99.0.0/16", "metric", "0", "table", "100"]);
    expect(routeDelArgv(d({ destination: "default", via: "10.0.2.2" }), recorded("route-show-main")[0])).toEqual(
      ["ip", "route", "del", "0.0.0.0/0", "via", "10.0.2.2", "dev", "eth0", "metric", "0", "table", "main"]);
    expect(routeDelArgv(d({ destination: "10.99.0.0/16", type: "blackhole", table: 100 }), recorded("route-show-table-100")[1])).toEqual(
      ["ip", "route", "del", "blackhole", "10.99.0.0/16", "metric", "0", "table", "100"]);
  });
});

describe("ip -j route show parser (recorded on the VM)", () => {
  it("fills in what ip leaves out: boot protocol, global scope, unicast, metric 0 / 1024", () => {
    const [dflt, connected, unreachable, , gw] = recorded("route-show-main");
    expect(routeFields(dflt, 4)).toEqual({ type: "unicast", via: "10.0.2.2", device: "eth0", source: undefined, scope: "global", protocol: "boot", onlink: false, metric: 0 });
    expect(routeFields(connected, 4)).toMatchObject({ protocol: "kernel", scope: "link", source: "10.0.2.15", via: undefined });
    expect(routeFields(unreachable, 4)).toMatchObject({ type: "unreachable", metric: 7, device: undefined });
    expect(routeFields(gw, 4)).toMatchObject({ protocol: "static", metric: 50, via: "192.0.2.254", device: "dum10" });
    const [onlinkDefault, blackhole, scoped] = recorded("route-show-table-100");
    expect(routeFields(onlinkDefault, 4)).toMatchObject({ onlink: true, via: "10.0.2.2" });
    expect(routeFields(blackhole, 4)).toMatchObject({ type: "blackhole", device: undefined, via: undefined });
    expect(routeFields(scoped, 4)).toMatchObject({ scope: "link", source: "192.0.2.1", protocol: "boot" });
    const v6 = recorded("route-show-v6");
    expect(routeFields(v6.find((r) => r.dst === "2001:db8:5::/48")!, 6)).toMatchObject({ metric: 1024, via: "2001:db8::fe" });
    expect(routeFields(v6.find((r) => r.protocol === "ra")!, 6)).toMatchObject({ protocol: "ra", via: "fe80::2", metric: 1024 });
  });

  it("reads destinations as prefixes", () => {
    expect(routePrefix("default", 4)).toBe("0.0.0.0/0");
    expect(routePrefix("default", 6)).toBe("::/0");
    expect(routePrefix("10.0.2.15", 4)).toBe("10.0.2.15/32");
    expect(routePrefix("2001:DB8::1", 6)).toBe("2001:db8::1/128");
  });

  it("ip's metric filter drops the metric from the output, which is why reads match it themselves", () => {
    expect(recorded("route-show-exact-metric-filter")[0].metric).toBeUndefined();
  });
});

describe("Route runtime over a scripted transport", () => {
  let fake: FakeTransport;
  let table: RouteJson[];
  const show = ["ip", "-j", "-4", "route", "show", "table", "main", "exact", "198.51.100.0/24"];

  beforeEach(() => {
    fake = installFake();
    table = [];
    fake.on(show, () => ({ stdout: JSON.stringify(table) }));
  });
  afterEach(restoreTransport);
  const rt = provider("Route");
  const inputs = async (extra: Record<string, unknown> = {}) => (await rt.check({}, { connection: conn, destination: "198.51.100.0/24", via: "192.0.2.254", device: "dum10", metric: 50, ...extra })).inputs;

  it("create adds, reads back, and reports the kernel's view; delete removes exactly it", async () => {
    fake.on(["ip", "route", "add"], () => {
      table.push({ dst: "198.51.100.0/24", gateway: "192.0.2.254", dev: "dum10", metric: 50, flags: [] }, { dst: "198.51.100.0/24", gateway: "192.0.2.253", dev: "dum10", metric: 60, flags: [] });
      return {};
    });
    const { id, outs } = await rt.create(await inputs());
    expect(id).toBe("192.0.2.10:22//route:inet:main:198.51.100.0/24:50");
    expect(outs).toMatchObject({ destination: "198.51.100.0/24", family: "inet", via: "192.0.2.254", device: "dum10", metric: 50, protocol: "boot", scope: "global", type: "unicast" });
    expect(Object.values(outs)).not.toContain(undefined);
    fake.on(["ip", "route", "del"], () => ({}));
    await rt.delete(id, outs);
    expect(fake.calls.map((c) => c.argv.join(" "))).toEqual([
      show.join(" "),
      "ip route add 198.51.100.0/24 via 192.0.2.254 dev dum10 metric 50 table main",
      show.join(" "),
      show.join(" "),
      "ip route del 198.51.100.0/24 via 192.0.2.254 dev dum10 metric 50 table main",
    ]);
  });

  it("create refuses an existing route unless adopt, and adopt fixes it with replace", async () => {
    table = [{ dst: "198.51.100.0/24", gateway: "192.0.2.1", dev: "dum10", metric: 50, flags: [] }];
    await expect(rt.create(await inputs())).rejects.toThrow(/IPv4 route 198\.51\.100\.0\/24 \(table main, metric 50\) already exists; it was left untouched/);
    expect(fake.calls).toHaveLength(1);
    fake.on(["ip", "route", "replace"], () => {
      table = [{ dst: "198.51.100.0/24", gateway: "192.0.2.254", dev: "dum10", metric: 50, flags: [] }];
      return {};
    });
    const { outs } = await rt.create(await inputs({ adopt: true }));
    expect(outs.via).toBe("192.0.2.254");
    expect(fake.calls.at(-2)!.argv).toEqual(["ip", "route", "replace", "198.51.100.0/24", "via", "192.0.2.254", "dev", "dum10", "metric", "50", "table", "main"]);
  });

  it("read reports drift and a route that is gone", async () => {
    const d = await inputs();
    table = [{ dst: "198.51.100.0/24", gateway: "192.0.2.9", dev: "dum10", metric: 50, protocol: "static", flags: [] }];
    const r = await rt.read("id", d);
    expect(r.props).toMatchObject({ via: "192.0.2.9", protocol: "static" });
    expect((await rt.diff("id", r.props, d)).changes).toBe(true);
    table = [{ dst: "198.51.100.0/24", gateway: "192.0.2.254", dev: "dum10", metric: 60, flags: [] }];
    expect(await rt.read("id", d)).toEqual({ id: "", props: {} });
  });

  it("a write the kernel does not reflect fails naming the field", async () => {
    fake.on(["ip", "route", "add"], () => {
      table = [{ dst: "198.51.100.0/24", gateway: "192.0.2.254", dev: "dum10", metric: 50, flags: [] }];
      return {};
    });
    await expect(rt.create(await inputs({ protocol: "static" }))).rejects.toThrow(/protocol is "boot" in the kernel after the change, wanted "static"/);
  });

  it("diff: identity fields replace, the rest update in place", async () => {
    const olds = { ...(await inputs()), family: "inet", protocol: "boot", scope: "global" };
    expect(await rt.diff("id", olds, await inputs({ via: "192.0.2.1" }))).toEqual({ changes: true, replaces: [], deleteBeforeReplace: true });
    expect((await rt.diff("id", olds, await inputs({ metric: 51 }))).replaces).toEqual(["metric"]);
    expect((await rt.diff("id", olds, await inputs({ table: 100 }))).replaces).toEqual(["table"]);
    expect((await rt.diff("id", olds, await inputs({ metric: undefined }))).replaces).toEqual(["metric"]);
    expect((await rt.diff("id", olds, await inputs({ destination: "198.51.0.0/16" }))).replaces).toEqual(["destination"]);
    const dflt = { ...(await inputs({ destination: "default" })), family: "inet" };
    expect((await rt.diff("id", dflt, await inputs({ destination: "default", via: "2001:db8::1" }))).replaces).toEqual(["via"]);
  });
});
