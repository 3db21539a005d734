// Interface: schema (every field, valid and invalid), and create/delete over a
// scripted transport answering with output recorded on the VM: a missing device
// changes nothing; moveAddresses is ONE `ip -batch` in the order that keeps an SSH
// session (enslave, addresses off the port, onto the bridge, routes onto the bridge);
// delete puts back exactly what was recorded.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { resetDefaults, setTransportFactory } from "../../provider/engine";
import { provider } from "../../provider/runtime";
import { FakeTransport } from "../../provider/transport/fake";
import { SshTransport } from "../../provider/transport/ssh";
import { kindChecks } from "../support/unit";

const raw = (name: string) => readFileSync(join(__dirname, "../fixtures/iproute", `${name}.json`), "utf8");
const conn = { host: "192.0.2.10" };

describe("Interface schema", () => {
  const { accepted, rejected } = kindChecks("Interface", { connection: conn, name: "eth0" });
  it("accepts every field", async () => {
    const v = await accepted({ namespace: "n1", mtu: 9000, macAddress: "02:00:00:00:00:01", up: false, addresses: ["192.0.2.1/24"], master: "br0", bridgePort: { cost: 5, vlans: [{ vid: 10 }] } });
    expect(v.moveAddresses).toBe(false);
    expect(v.up).toBe(false);
    expect((await accepted({})).up).toBeUndefined(); // unset: left as it is
    await accepted({ master: "br0", moveAddresses: true });
    await accepted({ master: "bond0", bondPort: { queueId: 1 } });
  });
  it("rejects bad values and combinations, naming the field", async () => {
    await rejected({ name: "eth0 x" }, "name");
    await rejected({ mtu: 67 }, "mtu", "at least 68");
    await rejected({ macAddress: "01:00:00:00:00:01" }, "macAddress", "unicast");
    await rejected({ up: "yes" }, "up");
    await rejected({ addresses: ["192.0.2.1"] }, "addresses[0]");
    await rejected({ master: "eth0" }, "master", "must not be the device itself");
    await rejected({ moveAddresses: true }, "moveAddresses", "needs master");
    await rejected({ master: "br0", moveAddresses: true, addresses: ["192.0.2.1/24"] }, "addresses", "must not be set with moveAddresses");
    await rejected({ moveAddresses: "yes" }, "moveAddresses");
    await rejected({ bridgePort: { cost: 1 } }, "bridgePort", "needs master");
    await rejected({ adopt: true }, "adopt", "unknown field");
    await rejected({ persist: true }, "persist", "unknown field");
    await rejected({ namespace: "a/b" }, "namespace");
  });
});

describe("Interface over a scripted transport", () => {
  let fake: FakeTransport;
  let eth0: any;
  let br0: any;
  let batches: string[];
  beforeEach(() => {
    fake = new FakeTransport("192.0.2.10");
    setTransportFactory(() => fake);
    eth0 = JSON.parse(raw("vm-eth0"))[0];
    br0 = { ...JSON.parse(raw("bridge-timers"))[0], ifname: "br0", addr_info: [] };
    batches = [];
    fake.on(["ip", "-j", "-d", "addr", "show", "dev", "eth0"], () => ({ stdout: JSON.stringify([eth0]) }));
    fake.on(["ip", "-j", "-d", "addr", "show", "dev", "br0"], () => ({ stdout: JSON.stringify([br0]) }));
    fake.on(["ip", "-j", "-4", "route", "show", "table", "all", "dev", "eth0"], { stdout: raw("route-show-dev-eth0") });
    fake.on(["ip", "-j", "-6", "route", "show", "table", "all", "dev", "eth0"], { stdout: "[]" });
    // A tiny kernel for the batch lines these tests send.
    fake.on(["ip", "-batch", "-"], (_a, o) => {
      batches.push(o.stdin ?? "");
      for (const line of (o.stdin ?? "").trim().split("\n")) {
        const w = line.split(" ");
        const dev = w[w.indexOf("dev") + 1] === "eth0" ? eth0 : br0;
        if (w[0] === "link" && w.includes("master")) eth0.master = w[w.indexOf("master") + 1];
        if (w[0] === "link" && w.includes("nomaster")) delete eth0.master;
        if (w[0] === "addr") {
          const [ip, len] = w[2].split("/");
          dev.addr_info = w[1] === "add" ? [...dev.addr_info, { family: "inet", local: ip, prefixlen: Number(len), scope: "global" }] : dev.addr_info.filter((a: any) => a.local !== ip);
        }
      }
      return {};
    });
  });
  afterEach(() => {
    setTransportFactory((c) => new SshTransport(c));
    resetDefaults();
  });
  const inputs = async (extra: Record<string, unknown>) => (await provider("Interface").check({}, { connection: conn, name: "eth0", ...extra })).inputs;

  it("a device that does not exist fails at create, naming it, before any write", async () => {
    fake.on(["ip", "-j", "-d", "addr", "show", "dev", "eth9"], { code: 1, stderr: 'Device "eth9" does not exist.\n' });
    await expect(provider("Interface").create(await inputs({ name: "eth9", mtu: 9000 }))).rejects.toThrow(/there is no device named eth9.*Nothing was changed/);
    expect(fake.calls.map((c) => c.argv)).toEqual([["ip", "-j", "-d", "addr", "show", "dev", "eth9"]]);
  });

  it("moveAddresses: one ip -batch (enslave, address off eth0, onto br0, routes onto br0); delete moves them back in one batch", async () => {
    const { outs } = await provider("Interface").create(await inputs({ master: "br0", moveAddresses: true }));
    expect(batches).toEqual([
      "link set dev eth0 master br0\n" +
        "addr del 10.0.2.15/24 dev eth0\n" +
        "addr add 10.0.2.15/24 dev br0\n" +
        "route replace 0.0.0.0/0 via 10.0.2.2 dev br0 metric 0 table main\n",
    ]);
    // The SLAAC address (dynamic) and the kernel's connected route are the kernel's own: not moved.
    expect(outs.moved).toMatchObject({ to: "br0", addresses: ["10.0.2.15/24"], routes: [expect.objectContaining({ dst: "default", gateway: "10.0.2.2" })] });
    expect(outs.original).toEqual({ had: ["master"], master: null });

    batches = [];
    await provider("Interface").delete("id", outs);
    expect(batches).toEqual([
      "link set dev eth0 nomaster\n" +
        "addr del 10.0.2.15/24 dev br0\n" +
        "addr add 10.0.2.15/24 dev eth0\n" +
        "route replace 0.0.0.0/0 via 10.0.2.2 dev eth0 metric 0 table main\n",
    ]);
  });

  it("records only what it changes and restores exactly that", async () => {
    fake.on(["ip", "link", "set", "dev", "eth0", "mtu"], (a) => {
      eth0.mtu = Number(a[6]);
      return {};
    });
    const { outs } = await provider("Interface").create(await inputs({ mtu: 9000 }));
    expect(outs.original).toEqual({ had: ["mtu"], mtu: 1500 });
    expect(outs.mtu).toBe(9000);
    await provider("Interface").delete("id", outs);
    expect(fake.calls.filter((c) => c.argv.includes("set")).map((c) => c.argv.join(" "))).toEqual(["ip link set dev eth0 mtu 9000", "ip link set dev eth0 mtu 1500"]);
    expect(eth0.mtu).toBe(1500);
  });

  it("a field left out of the inputs later is handed back on the next update", async () => {
    fake.on(["ip", "link", "set", "dev", "eth0", "mtu"], (a) => {
      eth0.mtu = Number(a[6]);
      return {};
    });
    fake.on(["ip", "link", "set", "dev", "eth0", "down"], () => {
      eth0.flags = eth0.flags.filter((f: string) => f !== "UP");
      return {};
    });
    const rt = provider("Interface");
    fake.on(["ip", "-batch", "-"], (_a, o) => {
      batches.push(o.stdin ?? "");
      for (const line of (o.stdin ?? "").trim().split("\n")) {
        const w = line.split(" ");
        if (w.includes("mtu")) eth0.mtu = Number(w[w.indexOf("mtu") + 1]);
        if (w.at(-1) === "down") eth0.flags = eth0.flags.filter((f: string) => f !== "UP");
        if (w.at(-1) === "up") eth0.flags = [...eth0.flags, "UP"];
      }
      return {};
    });
    const { outs } = await rt.create(await inputs({ mtu: 9000, up: false }));
    expect(outs.original).toEqual({ had: ["mtu", "up"], mtu: 1500, up: true });
    const news = await inputs({ up: false });
    expect((await rt.diff("id", outs, news)).changes).toBe(true);
    const { outs: after } = await rt.update("id", outs, news);
    expect(eth0.mtu).toBe(1500);
    expect(after.original).toEqual({ had: ["up"], up: true });
    expect(after.mtu).toBe(1500);
  });
});
