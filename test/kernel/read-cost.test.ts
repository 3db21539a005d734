// Reads that skip addresses (ReadOptions in provider/iproute/link.ts), on real iproute2
// over real SSH: inside `ip -batch` they go as `link show dev X` lines, which cost one
// RTM_GETLINK whatever the namespace holds (an `addr show dev X` line dumps the whole
// namespace there). What they return must be the device exactly as a full read
// reports it, without addr_info; creates made together must still leave every
// device as asked; and FDB reads made together share one `bridge` process. (How much
// they save is measured by `npm run bench`.)
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import type { Connection } from "../../provider/connection";
import { setTransportFactory } from "../../provider/engine";
import { type FdbJson, readFdb } from "../../provider/iproute/fdb";
import { LINK_ONLY, type LinkJson, readLink } from "../../provider/iproute/link";
import { provider } from "../../provider/runtime";
import { closeAllConnections, SshTransport, sshStats } from "../../provider/transport/ssh";
import { netnsPrerequisites, startNetnsLab, type NetnsHost, type NetnsLab } from "../hosts/netns";
import { hostSuite } from "../support/prereq";

const COUNT = 12;
const dev = (i: number) => `rc${i}`;
const addressOf = (i: number) => `198.18.7.${i + 1}/24`;

/** What a read reports of a device that does not change by itself (bridge port timers do), addresses aside. */
function linkPart(l: LinkJson | undefined) {
  if (!l) return l;
  const { ifindex, ifname, flags, mtu, operstate, address, master, link, ifalias } = l;
  return { ifindex, ifname, flags, mtu, operstate, address, master, link, ifalias, kind: l.linkinfo?.info_kind, data: l.linkinfo?.info_data, slave: l.linkinfo?.info_slave_kind };
}

hostSuite("reads without addresses on real iproute2 (netns host, SSH)", netnsPrerequisites().missing, () => {
  let lab: NetnsLab;
  let h: NetnsHost;
  let connection: Connection;

  beforeAll(async () => {
    lab = await startNetnsLab({ hosts: 1 });
    h = lab.hosts[0];
    connection = { ...h.connection } as Connection;
    setTransportFactory((c) => new SshTransport(c));
    const script = path.join(os.tmpdir(), `netdev-read-cost-${process.pid}.batch`);
    const lines = ["link add name rcbr type bridge"];
    for (let i = 0; i < COUNT; i++) lines.push(`link add name ${dev(i)} type veth peer name ${dev(i)}p`, `addr add ${addressOf(i)} dev ${dev(i)}`, `link set dev ${dev(i)} master rcbr`, `link set dev ${dev(i)} up`);
    fs.writeFileSync(script, lines.join("\n") + "\n");
    try {
      const r = await h.exec(["ip", "-batch", script]);
      if (r.code !== 0) throw new Error(`setting up the devices failed: ${r.stderr}`);
    } finally {
      fs.rmSync(script, { force: true });
    }
  }, 120_000);

  afterAll(async () => {
    closeAllConnections();
    await lab?.destroy();
  }, 60_000);

  it("reads waiting together go as one invocation; each caller gets its device as a full read reports it, addresses only where asked", async () => {
    const t = new SshTransport(connection);
    const before = sshStats.commandsRun;
    const names = [...Array.from({ length: COUNT }, (_, i) => dev(i)), "rc-missing"];
    const [linkOnly, full] = await Promise.all([
      Promise.all(names.map((n) => readLink(t, undefined, n, LINK_ONLY))),
      Promise.all([readLink(t, undefined, dev(0)), readLink(t, undefined, "rc-gone")]),
    ]);
    expect(sshStats.commandsRun - before).toBe(1);

    const truth = JSON.parse((await h.exec(["ip", "-j", "-d", "addr", "show"])).stdout) as LinkJson[];
    for (let i = 0; i < COUNT; i++) {
      const want = truth.find((l) => l.ifname === dev(i));
      expect(linkPart(linkOnly[i])).toEqual(linkPart(want));
      expect(linkOnly[i]!.master).toBe("rcbr");
      // dev(0) was also asked for with addresses: that caller's read carried them (one line per device).
      if (i > 0) expect(linkOnly[i]!.addr_info).toBeUndefined();
    }
    expect(linkOnly[COUNT]).toBeUndefined();
    expect(full[0]!.addr_info?.map((a) => `${a.local}/${a.prefixlen}`)).toContain(addressOf(0));
    expect(full[1]).toBeUndefined();
  }, 60_000);

  it("FDB reads waiting together go as one `bridge -batch` (each `bridge` first dumps every link); each caller gets what `bridge fdb show dev X` says", async () => {
    const vx = (i: number) => `rcvx${i}`;
    const setup = Array.from({ length: 6 }, (_, i) => [
      ["ip", "link", "add", "name", vx(i), "type", "vxlan", "id", String(100 + i), "dstport", "4789"],
      ...(i % 2 === 0 ? [] : [["bridge", "fdb", "append", "00:00:00:00:00:00", "dst", `198.19.7.${i}`, "dev", vx(i)]]),
    ]).flat();
    for (const argv of setup) expect((await h.exec(argv)).code, argv.join(" ")).toBe(0);
    try {
      const t = new SshTransport(connection);
      await t.run(["true"]);
      const before = sshStats.commandsRun;
      const names = [...Array.from({ length: 6 }, (_, i) => vx(i)), "rcvx-missing", vx(1)];
      const got = await Promise.all(names.map((n) => readFdb(t, undefined, n)));
      expect(sshStats.commandsRun - before).toBe(1);
      for (let i = 0; i < 6; i++) {
        const truth = JSON.parse((await h.exec(["bridge", "-j", "fdb", "show", "dev", vx(i)])).stdout) as FdbJson[];
        expect(got[i]).toEqual(truth);
        expect(got[i]!.some((e) => e.dst === `198.19.7.${i}`)).toBe(i % 2 === 1);
      }
      expect(got[6]).toBeUndefined();
      expect(got[7]).toEqual(got[1]);
    } finally {
      for (let i = 0; i < 6; i++) await h.exec(["ip", "link", "del", "dev", vx(i)]);
    }
  }, 60_000);

  it("VethPairs created together (their adds, changes and read-backs share batches) end up exactly as asked", async () => {
    const runtime = provider("VethPair");
    const n = 8;
    const inputs = Array.from({ length: n }, (_, i) => ({
      connection,
      name: `rn${i}`,
      peerName: `rn${i}p`,
      master: "rcbr",
      addresses: [`198.18.8.${i + 1}/24`],
      peerAddresses: [`198.18.9.${i + 1}/24`],
    }));
    const checked = await Promise.all(inputs.map((x) => runtime.check({}, x)));
    expect(checked.flatMap((c) => c.failures)).toEqual([]);
    const created = await Promise.all(checked.map((c) => runtime.create(c.inputs)));
    try {
      const truth = JSON.parse((await h.exec(["ip", "-j", "-d", "addr", "show"])).stdout) as LinkJson[];
      const addrs = (l: LinkJson | undefined) => (l?.addr_info ?? []).filter((a) => a.family === "inet").map((a) => `${a.local}/${a.prefixlen}`);
      for (let i = 0; i < n; i++) {
        const l = truth.find((x) => x.ifname === `rn${i}`);
        const p = truth.find((x) => x.ifname === `rn${i}p`);
        expect({ master: l?.master, up: l?.flags.includes("UP"), addrs: addrs(l), alias: l?.ifalias }).toEqual({ master: "rcbr", up: true, addrs: [`198.18.8.${i + 1}/24`], alias: undefined });
        expect({ up: p?.flags.includes("UP"), addrs: addrs(p) }).toEqual({ up: true, addrs: [`198.18.9.${i + 1}/24`] });
        expect(created[i].outs).toMatchObject({ addresses: [`198.18.8.${i + 1}/24`], peerAddresses: [`198.18.9.${i + 1}/24`], master: "rcbr", up: true, peerUp: true });
      }
    } finally {
      await Promise.all(created.map((c, i) => runtime.delete(c.id, { ...c.outs, connection: inputs[i].connection })));
    }
    const left = JSON.parse((await h.exec(["ip", "-j", "link", "show"])).stdout) as LinkJson[];
    expect(left.filter((l) => /^rn\d+p?$/.test(l.ifname))).toEqual([]);
  }, 120_000);
});
