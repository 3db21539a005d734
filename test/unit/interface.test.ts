// Interface: schema (every field, valid and invalid), and create/delete over a
// scripted transport answering with output recorded on the VM: a missing device
// changes nothing; moveAddresses is ONE `ip -batch` in the order that keeps an SSH
// session (enslave, addresses off the port, onto the bridge, routes onto the bridge);
// delete puts back exactly what was recorded.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { configureDefaults } from "../../provider/engine";
import { interfaceNetworkd } from "../../provider/kinds/interface";
import { renderUnit } from "../../provider/networkd";
import { provider } from "../../provider/runtime";
import { FakeTransport } from "../../provider/transport/fake";
import { scriptNetworkdHost } from "../support/networkd-host";
import { installFake, kindChecks, restoreTransport } from "../support/unit";

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
    await rejected({ persist: "yes" }, "persist");
    await rejected({ namespace: "n1", persist: true }, "persist", 'inside a network namespace (namespace "n1")');
    await rejected({ master: "bond0", bondPort: { queueId: 1 }, persist: true }, "bondPort", "queue id or priority");
    await rejected({ namespace: "a/b" }, "namespace");
  });
});

describe("Interface over a scripted transport", () => {
  let fake: FakeTransport;
  let eth0: any;
  let br0: any;
  let batches: string[];
  beforeEach(() => {
    fake = installFake();
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
  afterEach(restoreTransport);
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

describe("Interface persist", () => {
  let fake: FakeTransport;
  let eth0: any;
  let br0: any;
  beforeEach(() => {
    fake = installFake();
    eth0 = JSON.parse(raw("vm-eth0"))[0];
    br0 = { ...JSON.parse(raw("bridge-timers"))[0], ifname: "br0", addr_info: [] };
    fake.on(["ip", "-j", "-d", "addr", "show", "dev", "eth0"], () => ({ stdout: JSON.stringify([eth0]) }));
    fake.on(["ip", "-j", "-d", "addr", "show", "dev", "br0"], () => ({ stdout: JSON.stringify([br0]) }));
    fake.on(["ip", "-j", "-4", "route", "show", "table", "all", "dev", "eth0"], { stdout: raw("route-show-dev-eth0") });
    fake.on(["ip", "-j", "-6", "route", "show", "table", "all", "dev", "eth0"], { stdout: "[]" });
    fake.on(["ip", "-batch", "-"], (_a, o) => {
      for (const line of (o.stdin ?? "").trim().split("\n")) {
        const w = line.split(" ");
        const dev = w[w.indexOf("dev") + 1] === "eth0" ? eth0 : br0;
        if (w[0] === "link" && w.includes("master")) eth0.master = w[w.indexOf("master") + 1];
        if (w[0] === "link" && w.includes("nomaster")) delete eth0.master;
        if (w[0] === "link" && w.includes("mtu")) eth0.mtu = Number(w[w.indexOf("mtu") + 1]);
        if (w[0] === "addr") {
          const [ip, len] = w[2].split("/");
          dev.addr_info = w[1] === "add" ? [...dev.addr_info, { family: "inet", local: ip, prefixlen: Number(len), scope: "global" }] : dev.addr_info.filter((a: any) => a.local !== ip);
        }
      }
      return {};
    });
    fake.on(["ip", "link", "set", "dev", "eth0", "mtu"], (a) => {
      eth0.mtu = Number(a[6]);
      return {};
    });
  });
  afterEach(restoreTransport);
  const inputs = async (extra: Record<string, unknown>) => {
    const r = await provider("Interface").check({}, { connection: conn, name: "eth0", ...extra });
    expect(r.failures).toEqual([]);
    return r.inputs;
  };
  const header = "# Managed by pulumi-netdev: Interface eth0 (persist: true).\n# Edits are reported as drift by `pulumi refresh` and replaced by the next `pulumi up`.\n";

  it("golden: every field the stack sets on the NIC, and moved addresses and routes for the master's .network", () => {
    const files = interfaceNetworkd(
      { name: "eth0", macAddress: "02:00:00:00:00:01", mtu: 9000, up: false, addresses: ["192.0.2.1/24"], master: "br0", bridgePort: { cost: 5, learning: false, vlans: [{ vid: 10, pvid: true, untagged: true }] } },
      "bridge",
    );
    expect(files.units).toEqual([]);
    expect(files.others.map((o) => [o.device, renderUnit("H", { sections: [{ name: "Network", entries: o.entries }, ...(o.sections ?? [])] })])).toEqual([[
      "eth0",
      "# H\n\n[Network]\nAddress=192.0.2.1/24\nBridge=br0\n\n[Link]\nMACAddress=02:00:00:00:00:01\nMTUBytes=9000\nActivationPolicy=down\n\n[Bridge]\nCost=5\nLearning=no\n\n[BridgeVLAN]\nVLAN=10\nPVID=10\nEgressUntagged=10\n",
    ]]);
    const moved = interfaceNetworkd({ name: "eth0", master: "bond0", moveAddresses: true }, "bond", {
      to: "bond0",
      addresses: ["10.0.2.15/24", "2001:db8::5/64"],
      routes: [
        { dst: "default", gateway: "10.0.2.2", flags: [], family: 4 },
        { dst: "10.9.0.0/16", gateway: "10.0.2.3", metric: 100, table: "100", protocol: "static", flags: ["onlink"], family: 4 },
        { dst: "2001:db8:1::/48", gateway: "2001:db8::1", family: 6 },
      ],
    });
    expect(moved.others[0]).toEqual({ device: "eth0", entries: [["Bond", "bond0"]], sections: [] });
    expect(renderUnit("H", { sections: [{ name: "Network", entries: moved.others[1].entries }, ...moved.others[1].sections!] })).toBe(
      "# H\n\n[Network]\nAddress=10.0.2.15/24\nAddress=2001:db8::5/64\n\n" +
        "[Route]\nDestination=0.0.0.0/0\nGateway=10.0.2.2\nMetric=0\nProtocol=boot\n\n" +
        "[Route]\nDestination=10.9.0.0/16\nGateway=10.0.2.3\nMetric=100\nTable=100\nProtocol=static\nGatewayOnLink=yes\n\n" +
        "[Route]\nDestination=2001:db8:1::/48\nGateway=2001:db8::1\nMetric=1024\nProtocol=boot\n",
    );
  });

  it("a NIC netplan configures (10-netplan-…, which wins over any 60- file): a drop-in for that file; the moved address and route in the persisted bridge's own file", async () => {
    const disk = scriptNetworkdHost(fake, { networkFile: { eth0: "/run/systemd/network/10-netplan-eth0.network" } });
    disk.set("/etc/systemd/network/60-pulumi-netdev-br0.network", "# Managed by pulumi-netdev: Bridge br0\n");
    const { outs } = await provider("Interface").create(await inputs({ master: "br0", moveAddresses: true, persist: true }));
    const nic = "/etc/systemd/network/10-netplan-eth0.network.d/60-pulumi-netdev-eth0.conf";
    const onBridge = "/etc/systemd/network/60-pulumi-netdev-br0.network.d/60-pulumi-netdev-eth0.conf";
    expect(disk.get(nic)).toBe(`${header}\n[Network]\nBridge=br0\n`);
    expect(disk.get(onBridge)).toBe(`${header}\n[Network]\nAddress=10.0.2.15/24\n\n[Route]\nDestination=0.0.0.0/0\nGateway=10.0.2.2\nMetric=0\nProtocol=boot\n`);
    expect(outs.persist).toBe(true);
    expect(outs.persistedFiles.map((f: { path: string }) => f.path)).toEqual([nic, onBridge]);
    // Nothing asks networkd to reload: the running links are left alone.
    expect(fake.calls.some((c) => c.argv[0] === "networkctl" && c.argv[1] !== "status")).toBe(false);

    const rt = provider("Interface");
    expect((await rt.read("id", outs)).props.persist).toBe(true);
    disk.set(nic, disk.get(nic)!.replace("Bridge=br0", "Bridge=br1"));
    const drifted = await rt.read("id", outs);
    expect(drifted.props.persist).toBe(false);
    expect((await rt.diff("id", drifted.props, await inputs({ master: "br0", moveAddresses: true, persist: true }))).changes).toBe(true);

    await rt.delete("id", outs);
    expect([...disk.keys()]).toEqual(["/etc/systemd/network/60-pulumi-netdev-br0.network"]);
  });

  it("a NIC nothing configures: a holder .network of ours with the drop-in beside it; persist off removes both", async () => {
    const disk = scriptNetworkdHost(fake);
    const rt = provider("Interface");
    const { outs } = await rt.create(await inputs({ mtu: 9000, persist: true }));
    expect(disk.get("/etc/systemd/network/60-pulumi-netdev-eth0.network")).toMatch(/^# pulumi-netdev: holds drop-ins [^]*\[Match\]\nName=eth0\n/);
    expect(disk.get("/etc/systemd/network/60-pulumi-netdev-eth0.network.d/60-pulumi-netdev-eth0.conf")).toBe(`${header}\n[Link]\nMTUBytes=9000\n`);
    const { outs: off } = await rt.update("id", outs, await inputs({ mtu: 9000, persist: false }));
    expect(off.persistedFiles).toBeUndefined();
    expect(disk.size).toBe(0);
  });

  it("a host without networkd enabled: create fails before any change; without persist nothing about networkd is asked", async () => {
    scriptNetworkdHost(fake, { enabled: "masked" });
    await expect(provider("Interface").create(await inputs({ mtu: 9000, persist: true }))).rejects.toThrow(/persist needs systemd-networkd enabled, but systemd-networkd\.service is masked/);
    expect(fake.calls.map((c) => c.argv[0])).toEqual(["systemctl"]);
    const { outs } = await provider("Interface").create(await inputs({ mtu: 9000 }));
    expect(outs.persistedFiles).toBeUndefined();
    expect(fake.calls.filter((c) => ["sh", "networkctl", "sha256sum", "test"].includes(c.argv[0]))).toEqual([]);
  });

  it("stack config netdev:persist is the default where it applies (not in a namespace)", async () => {
    configureDefaults((k) => (k === "persist" ? "true" : undefined));
    expect((await inputs({ mtu: 9000 })).persist).toBe(true);
    expect((await inputs({ mtu: 9000, persist: false })).persist).toBe(false);
    expect((await inputs({ namespace: "n1" })).persist).toBeUndefined();
  });
});
