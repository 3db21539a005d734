// Vxlan on a real kernel over real SSH: namespace hosts on one underlay bridge.
// Every write is checked with an independent read (`ip -j -d link show`,
// `bridge -j fdb show`, run locally with `ip netns exec`: this test creates no
// namespaces over SSH, so the local view is the host's). A recording transport
// wrapper proves that FDB reconciliation never deletes a peer that stays.
import { afterAll, afterEach, beforeAll, expect, it } from "vitest";
import { netnsPrerequisites, startNetnsLab, type NetnsHost, type NetnsLab } from "../hosts/netns";
import { provider, setTransportFactory } from "../../provider/runtime";
import { closeAllConnections, SshTransport } from "../../provider/transport/ssh";
import type { RunOptions, Transport } from "../../provider/transport/types";
import { hostSuite } from "../support/prereq";
import { addrsOf, ipLink, labConnection } from "../support/kernel";
import { change, up } from "../support/kernel-steps";

type Host = NetnsHost;
// The machine may be busy (other suites, TCG VMs): generous per-test limits.
const SLOW = 300_000;

hostSuite("Vxlan on namespace hosts", netnsPrerequisites().missing, () => {
  let lab: NetnsLab;
  let hosts: Host[];
  /** Every command the provider sent, per host label, with its stdin (`-batch` scripts). */
  const sent: { host: string; argv: string[]; stdin?: string }[] = [];

  beforeAll(async () => {
    lab = await startNetnsLab({ hosts: 4 });
    hosts = lab.hosts;
    setTransportFactory((c) => {
      const inner = new SshTransport(c);
      const recording: Transport = {
        label: inner.label,
        run(argv: string[], opts?: RunOptions) {
          sent.push({ host: c.host, argv: [...argv], stdin: opts?.stdin });
          return inner.run(argv, opts);
        },
      };
      return recording;
    });
  });
  afterEach(() => {
    sent.length = 0;
  });
  afterAll(async () => {
    setTransportFactory((c) => new SshTransport(c));
    closeAllConnections();
    await lab?.destroy();
  });

  const conn = (h: Host) => labConnection(lab, h);

  /** The device's head-end peers as the kernel reports them (all-zero entries, sorted). */
  async function fdbPeers(h: Host, dev: string): Promise<string[]> {
    const r = await h.exec(["bridge", "-j", "fdb", "show", "dev", dev]);
    expect(r.code, r.stderr).toBe(0);
    return (JSON.parse(r.stdout) as { mac: string; dst?: string }[])
      .filter((e) => e.mac === "00:00:00:00:00:00" && e.dst)
      .map((e) => e.dst!)
      .sort();
  }

  /** FDB commands the provider sent (single argv or lines of a `bridge -batch -` script), as "append <ip>" / "del <ip>". */
  function fdbOps(): string[] {
    const lines = sent.flatMap((c) => {
      const words = c.argv[0] === "bridge" ? (c.argv[1] === "-n" ? c.argv.slice(3) : c.argv.slice(1)) : [];
      if (words[0] === "-batch") return c.stdin!.trim().split("\n").map((l) => l.split(" "));
      return words[0] === "fdb" ? [words] : [];
    });
    return lines.filter((w) => w[1] !== "show").map((w) => `${w[1]} ${w[w.indexOf("dst") + 1]}`);
  }

  it("create with local + remotes, in place, FDB drift, 2 → 3 → 1 peers, vni replace, delete", async () => {
    const [h, p1, p2, p3] = hosts;
    const inputs = { connection: conn(h), name: "vx100", vni: 100, local: h.address, dev: "eth0", remotes: [p2.address, p1.address], ttl: 16, tos: 0x20, ageing: 200 };
    const { rt, id, outs } = await up("Vxlan", inputs);
    expect(id).toBe(`${h.address}:22//vx100`);
    expect(outs.remotes).toEqual([p1.address, p2.address].sort());
    expect(Object.values(outs)).not.toContain(undefined);

    let k = await ipLink(h, "vx100");
    expect(k.linkinfo.info_kind).toBe("vxlan");
    expect(k.linkinfo.info_data).toMatchObject({ id: 100, local: h.address, link: "eth0", port: 4789, ttl: 16, tos: "0x20", ageing: 200, learning: true });
    expect(k.flags).toContain("UP");
    expect(await fdbPeers(h, "vx100")).toEqual([p1.address, p2.address].sort());
    // The peers went in as appends: never a flush, never a replace of the entry.
    expect(fdbOps().sort()).toEqual([`append ${p1.address}`, `append ${p2.address}`].sort());

    // In place: ttl, tos, learning off, ageing.
    const next = { ...inputs, ttl: 32, tos: "inherit", learning: false, ageing: 60 };
    const c = await change("Vxlan", outs, next);
    expect(c.diff).toEqual({ changes: true, replaces: [], deleteBeforeReplace: true });
    const updated = (await c.apply()).outs;
    k = await ipLink(h, "vx100");
    expect(k.ifindex).toBe(outs.ifindex);
    expect(k.linkinfo.info_data).toMatchObject({ id: 100, ttl: 32, tos: "0x1", learning: false, ageing: 60 });
    expect(updated).toMatchObject({ ttl: 32, tos: "inherit", learning: false, ageing: 60 });

    // Out-of-band: one peer's entry deleted. refresh reports it, update restores only it.
    await h.exec(["bridge", "fdb", "del", "00:00:00:00:00:00", "dst", p2.address, "dev", "vx100"]);
    expect(await fdbPeers(h, "vx100")).toEqual([p1.address]);
    const refreshed = await rt.read(id, updated);
    expect(refreshed.props.remotes).toEqual([p1.address]);
    const fix = await change("Vxlan", refreshed.props, next);
    expect(fix.diff).toMatchObject({ changes: true, replaces: [] });
    sent.length = 0;
    await fix.apply();
    expect(await fdbPeers(h, "vx100")).toEqual([p1.address, p2.address].sort());
    expect(fdbOps()).toEqual([`append ${p2.address}`]);

    // 2 → 3 peers: the two that stay are not touched.
    const three = { ...next, remotes: [p1.address, p2.address, p3.address] };
    const grow = await change("Vxlan", updated, three);
    expect(grow.diff.replaces).toEqual([]);
    sent.length = 0;
    const grown = (await grow.apply()).outs;
    expect(await fdbPeers(h, "vx100")).toEqual([p1.address, p2.address, p3.address].sort());
    expect(grown.remotes).toEqual([p1.address, p2.address, p3.address].sort());
    expect(fdbOps()).toEqual([`append ${p3.address}`]);

    // 3 → 1 peer: both removals, and nothing for the one that stays.
    const one = { ...next, remotes: [p2.address] };
    const shrink = await change("Vxlan", grown, one);
    expect(shrink.diff.replaces).toEqual([]);
    sent.length = 0;
    const shrunk = (await shrink.apply()).outs;
    expect(await fdbPeers(h, "vx100")).toEqual([p2.address]);
    expect(shrunk.remotes).toEqual([p2.address]);
    expect(fdbOps().sort()).toEqual([`del ${p1.address}`, `del ${p3.address}`].sort());
    // Two deletions, one round trip: `bridge -batch -` accepted fdb del on this iproute2.
    expect(sent.filter((s) => s.argv.includes("-batch")).map((s) => s.argv)).toEqual([["bridge", "-batch", "-"]]);
    expect((await ipLink(h, "vx100")).ifindex).toBe(outs.ifindex);

    // A new VNI is a new device: replace (delete before create, as Pulumi does here).
    const renumbered = { ...one, vni: 101 };
    const vni = await change("Vxlan", shrunk, renumbered);
    expect(vni.diff).toEqual({ changes: true, replaces: ["vni"], deleteBeforeReplace: true });
    await rt.delete(id, shrunk);
    expect(await ipLink(h, "vx100")).toBeUndefined();
    const again = await up("Vxlan", renumbered);
    k = await ipLink(h, "vx100");
    expect(k.linkinfo.info_data).toMatchObject({ id: 101, ttl: 32, learning: false });
    expect(await fdbPeers(h, "vx100")).toEqual([p2.address]);

    // dstPort and dev are creation-only too; so is entering ttl inherit.
    expect((await change("Vxlan", again.outs, { ...renumbered, dstPort: 8472 })).diff.replaces).toEqual(["dstPort"]);
    expect((await change("Vxlan", again.outs, { ...renumbered, dev: "lo" })).diff.replaces).toEqual(["dev"]);
    expect((await change("Vxlan", again.outs, { ...renumbered, ttl: "inherit" })).diff.replaces).toEqual(["ttl"]);

    await rt.delete(again.id, again.outs);
    expect(await ipLink(h, "vx100")).toBeUndefined();
    expect((await rt.read(again.id, again.outs)).id).toBe("");
    await rt.delete(again.id, again.outs); // already gone: still success
  }, SLOW);

  it("remote and multicast group change in place; a device-level remote moves into remotes", async () => {
    const [h, p1, p2] = hosts;
    const inputs = { connection: conn(h), name: "vxmc", vni: 7, group: "239.1.1.1", dev: "eth0", dstPort: 4789 };
    const { rt, id, outs } = await up("Vxlan", inputs);
    expect((await ipLink(h, "vxmc")).linkinfo.info_data).toMatchObject({ id: 7, group: "239.1.1.1", link: "eth0" });
    expect(outs.remotes).toEqual([]); // the group's own all-zero entry is not a peer

    const g2 = await change("Vxlan", outs, { ...inputs, group: "239.2.2.2" });
    expect(g2.diff.replaces).toEqual([]);
    await g2.apply();
    let k = await ipLink(h, "vxmc");
    expect(k.linkinfo.info_data.group).toBe("239.2.2.2");
    expect(k.ifindex).toBe(outs.ifindex);
    // The kernel joined the new group on eth0 (IGMP membership, hex little-endian).
    const igmp = await h.exec(["cat", "/proc/net/igmp"]);
    expect(igmp.stdout).toContain("020202EF");

    // From multicast to a unicast remote, in place.
    const { group: _g, ...unicastBase } = inputs;
    const uni = { ...unicastBase, remote: p1.address };
    const toRemote = await change("Vxlan", outs, uni);
    expect(toRemote.diff.replaces).toEqual([]);
    const remoteOuts = (await toRemote.apply()).outs;
    k = await ipLink(h, "vxmc");
    expect(k.linkinfo.info_data.remote).toBe(p1.address);
    expect(k.linkinfo.info_data.group).toBeUndefined();
    expect(await fdbPeers(h, "vxmc")).toEqual([p1.address]);
    expect(remoteOuts.remotes).toEqual([]);

    // The remote stops being managed and becomes one of two head-end peers.
    const { remote: _r, ...noRemote } = uni;
    const he = { ...noRemote, remotes: [p1.address, p2.address] };
    const toHe = await change("Vxlan", remoteOuts, he);
    expect(toHe.diff.replaces).toEqual([]);
    const heOuts = (await toHe.apply()).outs;
    k = await ipLink(h, "vxmc");
    expect(k.linkinfo.info_data.remote).toBeUndefined();
    expect(await fdbPeers(h, "vxmc")).toEqual([p1.address, p2.address].sort());
    expect(heOuts.remotes).toEqual([p1.address, p2.address].sort());
    await rt.delete(id, heOuts);
  }, SLOW);

  it("kernel facts behind the replace list", async () => {
    const [h] = hosts;
    const must = async (argv: string[]) => {
      const r = await h.exec(argv);
      expect(r.code, `${argv.join(" ")}: ${r.stderr}`).toBe(0);
    };
    const set = (...a: string[]) => h.exec(["ip", "link", "set", "dev", "vxf", "type", "vxlan", ...a]);
    await must(["ip", "link", "add", "vxf", "type", "vxlan", "id", "9", "remote", "10.9.9.1", "dev", "eth0", "dstport", "4789"]);
    await must(["ip", "link", "add", "vxh", "type", "veth", "peer", "name", "vxh-p"]);
    try {
      expect((await set("id", "10")).stderr).toMatch(/Cannot change VNI/);
      // Even the same port is refused: dstport never goes into an in-place change.
      expect((await set("dstport", "4789")).stderr).toMatch(/Cannot change port/);
      expect((await set("ttl", "inherit")).stderr).toMatch(/TTL_INHERIT/);
      expect((await set("local", "2001:db8::1")).stderr).toMatch(/address family/);
      // `dev` is accepted in place, but the default destination's FDB entry keeps the
      // old device, and the next remote change leaves that entry behind.
      await must(["ip", "link", "set", "dev", "vxf", "type", "vxlan", "dev", "vxh"]);
      const fdb = async () => (await h.exec(["bridge", "fdb", "show", "dev", "vxf"])).stdout;
      expect(await fdb()).toMatch(/dst 10\.9\.9\.1 via eth0/);
      await must(["ip", "link", "set", "dev", "vxf", "type", "vxlan", "remote", "10.9.9.2"]);
      expect(await fdb()).toMatch(/dst 10\.9\.9\.1 via eth0/);
      // A number on a ttl-inherit device is accepted and ignored.
      await must(["ip", "link", "add", "vxi", "type", "vxlan", "id", "11", "dstport", "4789", "ttl", "inherit"]);
      await must(["ip", "link", "set", "dev", "vxi", "type", "vxlan", "ttl", "9"]);
      expect((await ipLink(h, "vxi")).linkinfo.info_data.ttl).toBeUndefined();
      expect((await h.exec(["ip", "-d", "link", "show", "dev", "vxi"])).stdout).toMatch(/ttl inherit/);
    } finally {
      for (const dev of ["vxf", "vxh", "vxi"]) await h.exec(["ip", "link", "del", "dev", dev]);
    }
  }, SLOW);

  it("traffic: three hosts, bridge + vxlan each, ping across the overlay", async () => {
    const members = hosts.slice(0, 3);
    const made: { rt: ReturnType<typeof provider>; id: string; outs: Record<string, any> }[] = [];
    try {
      for (const [i, h] of members.entries()) {
        const br = await up("Bridge", { connection: conn(h), name: "brov", mtu: 1450, addresses: [`192.0.2.${i + 1}/24`] });
        const vx = await up("Vxlan", {
          connection: conn(h), name: "vxov", vni: 4242, local: h.address, dev: "eth0", learning: false, mtu: 1450, master: "brov",
          remotes: members.filter((o) => o !== h).map((o) => o.address),
        });
        made.push(vx, br);
        const k = await ipLink(h, "vxov");
        expect(k.master).toBe("brov");
        expect(addrsOf(await ipLink(h, "brov"))).toEqual([`192.0.2.${i + 1}/24`]);
      }
      for (const [i, h] of members.entries()) {
        for (const j of [0, 1, 2].filter((j) => j !== i)) {
          const ping = await h.exec(["ping", "-c", "2", "-W", "2", "-I", "brov", `192.0.2.${j + 1}`]);
          expect(ping.code, `host ${i + 1} → 192.0.2.${j + 1}: ${ping.stdout}${ping.stderr}`).toBe(0);
        }
      }
      // The frames came through the tunnel: host 1's bridge learned host 2's bridge
      // address on its vxlan port (the overlay addresses exist only on the bridges).
      const mac2 = (await ipLink(members[1], "brov")).address;
      const learned = JSON.parse((await members[0].exec(["bridge", "-j", "fdb", "show", "br", "brov"])).stdout) as { mac: string; ifname?: string }[];
      expect(learned.filter((e) => e.mac === mac2).map((e) => e.ifname)).toEqual(["vxov"]);
    } finally {
      for (const m of made) await m.rt.delete(m.id, m.outs);
    }
  }, SLOW);
});
