// VxlanFabric on a real kernel over real SSH: namespace hosts joined by one underlay
// bridge, each given the fabric's bridge + vxlan and an endpoint namespace by the
// examples/vxlan-fabric program.
//
// The program is the compiled example, run under Pulumi's mocks with stack config,
// so the VxlanFabric component itself produces every resource's inputs; a small
// in-memory engine (test/support/stack.ts) answers each registration like `pulumi up`
// (check, then create, or diff against the old outputs and update/replace; removed
// resources deleted last) through the provider runtime in this process. Every kernel
// fact is read independently: `ip`/`bridge -j` locally in the host's namespace, and
// through the system ssh client for the endpoint namespaces (created over SSH, they
// live in that sshd's mount namespace).
import { afterAll, beforeAll, expect, it } from "vitest";
import { netnsPrerequisites, startNetnsLab, type NetnsHost, type NetnsLab } from "../hosts/netns";
import { provider } from "../../provider/runtime";
import { closeAllConnections } from "../../provider/transport/ssh";
import { assertBuilt, compileExample, runExample, stageExample } from "../support/examples";
import { ipLink, sshExec } from "../support/kernel";
import { hostSuite } from "../support/prereq";
import { DYNAMIC_TYPE_PREFIX, inProcessApi, Stack, type Step } from "../support/stack";

/** A staged copy of examples/vxlan-fabric (nothing is built inside examples/). */
let EXAMPLE = "";
const VNI = 4242;
const BR = `brvx${VNI}`;
const VX = `vx${VNI}`;
const MTU = 1450;

hostSuite("VxlanFabric across namespace hosts", netnsPrerequisites().missing, () => {
  let lab: NetnsLab;
  /** Lab hosts by their number (h1 → 1); a host keeps its number, address and overlay address. */
  const byNumber = new Map<number, NetnsHost>();
  const stack = new Stack(inProcessApi(provider));

  beforeAll(async () => {
    assertBuilt();
    EXAMPLE = stageExample("vxlan-fabric");
    const [compiled, started] = await Promise.all([compileExample(EXAMPLE), startNetnsLab({ hosts: 3 })]);
    lab = started;
    expect(compiled.output).toBe("");
    for (const h of lab.hosts) byNumber.set(numberOf(h), h);
    // Stack config shared by every host: how the provider logs in.
    const netdev: Record<string, string> = { "netdev:user": "root", "netdev:privateKey": lab.privateKey };
    await provider("Bridge").configure({ config: { get: (k) => netdev[k] } });
  });

  afterAll(async () => {
    try {
      if (stack.resources.length > 0) await stack.destroy();
    } finally {
      closeAllConnections();
      await lab?.destroy();
    }
  });

  function numberOf(h: NetnsHost): number {
    return Number(/-h(\d+)$/.exec(h.name)![1]);
  }
  const overlayIp = (n: number) => `192.0.2.${n}`;
  const epNs = (h: NetnsHost) => `ep-${h.name}`;

  /** The example's vxlan-fabric:hosts entry for a lab host. */
  const entry = (n: number) => {
    const h = byNumber.get(n)!;
    return { name: h.name, host: h.address, hostKey: h.connection.hostKey, endpoint: `${overlayIp(n)}/24` };
  };

  /** `pulumi up` of the example with these hosts; returns the steps by resource name. */
  async function up(hosts: object[]) {
    const config = { "vxlan-fabric:vni": String(VNI), "vxlan-fabric:hosts": JSON.stringify(hosts) };
    const t0 = Date.now();
    const { run, steps } = await stack.up((engine) => runExample(EXAMPLE, { config, engine }));
    return { run, steps, ms: Date.now() - t0, op: (name: string) => steps.find((s) => s.name === name)?.op };
  }

  /** Steps as "<op> <Class> <resource name>", sorted. */
  const describeSteps = (steps: Step[]) => steps.map((s) => `${s.op} ${s.type.slice(DYNAMIC_TYPE_PREFIX.length)} ${s.name}`).sort();
  const resourcesOf = (h: NetnsHost) => [`fabric-${h.name}-br`, `fabric-${h.name}-vx`, `${h.name}-endpoint-ns`, `${h.name}-endpoint`];
  const classOf: Record<string, string> = { br: "Bridge", vx: "Vxlan", ns: "Namespace", endpoint: "VethPair" };
  const stepsFor = (op: string, h: NetnsHost, only?: string[]) =>
    resourcesOf(h)
      .map((name) => `${op} ${classOf[name.split("-").pop()!]} ${name}`)
      .filter((s) => !only || only.some((c) => s.includes(` ${c} `)));

  /** Head-end replication peers (all-zero entries) of the host's vxlan device, and every address its FDB names. */
  async function fdb(h: NetnsHost): Promise<{ peers: string[]; named: string[] }> {
    const r = await h.exec(["bridge", "-j", "fdb", "show", "dev", VX]);
    expect(r.code, r.stderr).toBe(0);
    const entries = JSON.parse(r.stdout) as { mac: string; dst?: string }[];
    return {
      peers: entries.filter((e) => e.mac === "00:00:00:00:00:00" && e.dst).map((e) => e.dst!).sort(),
      named: [...new Set(entries.flatMap((e) => (e.dst ? [e.dst] : [])))].sort(),
    };
  }

  /** Pings from one host's endpoint namespace to another's overlay address. */
  async function ping(from: NetnsHost, toNumber: number, args: string[] = ["-c", "2", "-i", "0.2", "-W", "2"]) {
    const r = await sshExec(lab, from).exec(["ip", "netns", "exec", epNs(from), "ping", "-n", ...args, overlayIp(toNumber)]);
    const m = /(\d+) packets transmitted, (\d+) received/.exec(r.stdout);
    return { code: r.code, transmitted: m ? Number(m[1]) : 0, received: m ? Number(m[2]) : 0, out: r.stdout + r.stderr };
  }

  async function expectAllPairsReach(hosts: NetnsHost[]) {
    const pairs = hosts.flatMap((a) => hosts.filter((b) => b !== a).map((b) => [a, b] as const));
    const results = await Promise.all(pairs.map(async ([a, b]) => ({ pair: `${a.name} → ${b.name}`, ...(await ping(a, numberOf(b))) })));
    for (const r of results) expect(r.received, `${r.pair}:\n${r.out}`).toBe(r.transmitted);
    for (const r of results) expect(r.transmitted, r.pair).toBe(2);
  }

  /** The fabric's devices on a host as the kernel reports them, and its FDB. */
  async function expectFabricOn(h: NetnsHost, peers: NetnsHost[]) {
    const vx = await ipLink(h, VX);
    expect(vx?.linkinfo?.info_kind, `${VX} on ${h.name}`).toBe("vxlan");
    expect(vx.linkinfo.info_data).toMatchObject({ id: VNI, local: h.address, port: 4789, learning: false });
    expect(vx.master).toBe(BR);
    expect(vx.mtu).toBe(MTU);
    const br = await ipLink(h, BR);
    expect(br?.linkinfo?.info_kind).toBe("bridge");
    expect(br.mtu).toBe(MTU);
    expect((await fdb(h)).peers).toEqual(peers.map((p) => p.address).sort());
  }

  it("three hosts: one overlay; every endpoint pings every other across the VXLAN", async () => {
    const hosts = [1, 2, 3].map((n) => byNumber.get(n)!);
    const { run, steps, ms } = await up([1, 2, 3].map(entry));
    console.log(`fabric of 3 hosts up in ${ms} ms (${steps.length} creates)`);
    expect(describeSteps(steps)).toEqual(hosts.flatMap((h) => stepsFor("create", h)).sort());

    for (const h of hosts) await expectFabricOn(h, hosts.filter((p) => p !== h));
    // Stack outputs: the kernel's ifindexes, per host in the order given.
    expect(run.outputs.mtu).toBe(MTU);
    expect(run.outputs.fabricHosts.map((o: any) => o.name)).toEqual(hosts.map((h) => h.name));
    for (const [i, h] of hosts.entries()) {
      expect(run.outputs.fabricHosts[i]).toEqual({ name: h.name, bridgeName: BR, vxlanName: VX, bridgeIfindex: (await ipLink(h, BR)).ifindex, vxlanIfindex: (await ipLink(h, VX)).ifindex });
    }
    // Endpoint: eth0 in ep-<host> with its overlay address and the fabric MTU; the host end in the bridge.
    for (const h of hosts) {
      const eth0 = await ipLink(sshExec(lab, h), "eth0", epNs(h));
      expect(eth0?.addr_info?.map((a: any) => `${a.local}/${a.prefixlen}`)).toContain(`${overlayIp(numberOf(h))}/24`);
      expect(eth0.mtu).toBe(MTU);
      expect((await ipLink(h, "ep0")).master).toBe(BR);
    }
    const t0 = Date.now();
    await expectAllPairsReach(hosts);
    console.log(`all 6 pairs ping across the overlay (${Date.now() - t0} ms)`);
  });

  it("a fourth host joins: the others' FDBs change in place while their endpoints keep pinging, and it is reached", async () => {
    const before = new Map<string, number>();
    for (const n of [1, 2, 3]) before.set(byNumber.get(n)!.name, (await ipLink(byNumber.get(n)!, VX)).ifindex);
    const h4 = await lab.addHost();
    byNumber.set(numberOf(h4), h4);
    const [h1, h2, h3] = [1, 2, 3].map((n) => byNumber.get(n)!);

    // 40 pings 0.2 s apart (8 s; a lost one is retried until 40 replies or 30 s):
    // long enough to span the whole `up` below, which the test checks.
    const pingStart = Date.now();
    const background = ping(h1, 2, ["-c", "40", "-i", "0.2", "-W", "1", "-w", "30"]).then((r) => ({ ...r, end: Date.now() }));
    await new Promise((r) => setTimeout(r, 1000));
    const upStart = Date.now();
    const { steps, ms } = await up([1, 2, 3, numberOf(h4)].map(entry));
    const upEnd = Date.now();
    const pings = await background;
    const lost = pings.transmitted - pings.received;
    console.log(`4th host added in ${ms} ms; pings ${h1.name} → ${h2.name} meanwhile: ${pings.transmitted} sent, ${pings.received} received, ${lost} lost`);
    expect(pings.end, "the ping loop must outlast the update").toBeGreaterThan(upEnd);
    expect(upStart - pingStart).toBeGreaterThanOrEqual(1000);
    expect(lost, pings.out).toBe(0);
    expect(pings.received, pings.out).toBe(40);

    // Only the existing vxlans change (their peer lists), in place; the new host's resources are created.
    expect(describeSteps(steps)).toEqual(
      [...[h1, h2, h3].flatMap((h) => [...stepsFor("update", h, ["Vxlan"]), ...stepsFor("same", h, ["Bridge", "Namespace", "VethPair"])]), ...stepsFor("create", h4)].sort(),
    );
    for (const h of [h1, h2, h3]) expect((await ipLink(h, VX)).ifindex, `${VX} on ${h.name} kept its ifindex`).toBe(before.get(h.name));
    const all = [h1, h2, h3, h4];
    for (const h of all) await expectFabricOn(h, all.filter((p) => p !== h));

    for (const [from, to] of [[h1, h4], [h4, h2], [h3, h4]] as const) {
      const r = await ping(from, numberOf(to));
      expect(r.received, `${from.name} → ${to.name}:\n${r.out}`).toBe(2);
    }
  });

  it("a host leaves: its devices and endpoint are deleted and no other host's FDB names it", async () => {
    const [h1, h2, h3, h4] = [1, 2, 3, 4].map((n) => byNumber.get(n)!);
    const { steps, ms } = await up([1, 2, 4].map(entry));
    console.log(`host ${h3.name} removed from the fabric in ${ms} ms`);
    expect(describeSteps(steps)).toEqual(
      [...[h1, h2, h4].flatMap((h) => [...stepsFor("update", h, ["Vxlan"]), ...stepsFor("same", h, ["Bridge", "Namespace", "VethPair"])]), ...stepsFor("delete", h3)].sort(),
    );
    const rest = [h1, h2, h4];
    for (const h of rest) {
      await expectFabricOn(h, rest.filter((p) => p !== h));
      expect((await fdb(h)).named, `${h.name}'s FDB`).not.toContain(h3.address);
    }
    // Gone from the host that left: devices and the endpoint namespace.
    expect(await ipLink(h3, VX)).toBeUndefined();
    expect(await ipLink(h3, BR)).toBeUndefined();
    expect(await ipLink(h3, "ep0")).toBeUndefined();
    const netns = await sshExec(lab, h3).exec(["ip", "netns", "list"]);
    expect(netns.code, netns.stderr).toBe(0);
    expect(netns.stdout).not.toContain(epNs(h3));
    await expectAllPairsReach(rest);
  });

  it("hosts of different underlay address families are rejected before anything is registered", async () => {
    const hosts = [entry(1), { ...entry(2), host: "2001:db8::2" }];
    const config = { "vxlan-fabric:vni": String(VNI), "vxlan-fabric:hosts": JSON.stringify(hosts) };
    const before = stack.resources.length;
    await expect(stack.up((engine) => runExample(EXAMPLE, { config, engine }))).rejects.toThrow(
      `VxlanFabric: all hosts' underlayAddress must be of one address family (got both IPv4 and IPv6: ${byNumber.get(1)!.address}, 2001:db8::2)`,
    );
    expect(stack.resources.length).toBe(before);
  });

  it("an IPv6 underlay gets the IPv6 MTU (1430), each host's vxlan lists the others; a repeated underlay address is rejected", async () => {
    // Registrations only (Pulumi's echo mocks): nothing is sent to a host.
    const hosts = [1, 2, 3].map((n) => ({ ...entry(n), host: `2001:db8::${n}` }));
    const config = { "vxlan-fabric:vni": String(VNI), "vxlan-fabric:hosts": JSON.stringify(hosts) };
    const { registrations, outputs } = await runExample(EXAMPLE, { config });
    expect(outputs.mtu).toBe(1430);
    const vxlans = registrations.filter((r) => r.type === `${DYNAMIC_TYPE_PREFIX}Vxlan`);
    expect(vxlans.map((v) => v.inputs.local)).toEqual(hosts.map((h) => h.host));
    for (const v of vxlans) {
      expect(v.inputs).toMatchObject({ vni: VNI, dstPort: 4789, learning: false, mtu: 1430, master: BR });
      expect([...v.inputs.remotes].sort()).toEqual(hosts.map((h) => h.host).filter((a) => a !== v.inputs.local).sort());
    }
    for (const b of registrations.filter((r) => r.type === `${DYNAMIC_TYPE_PREFIX}Bridge`)) expect(b.inputs.mtu).toBe(1430);

    const twice = [entry(1), { ...entry(2), host: entry(1).host }];
    await expect(runExample(EXAMPLE, { config: { ...config, "vxlan-fabric:hosts": JSON.stringify(twice) } })).rejects.toThrow(
      `VxlanFabric: hosts[1] repeats underlayAddress ${entry(1).host}`,
    );
  });

  it("destroy removes every device and endpoint namespace it created", async () => {
    const hosts = [1, 2, 4].map((n) => byNumber.get(n)!);
    const steps = await stack.destroy();
    expect(steps.every((s) => s.op === "delete")).toBe(true);
    expect(describeSteps(steps)).toEqual(hosts.flatMap((h) => stepsFor("delete", h)).sort());
    for (const h of hosts) {
      for (const dev of [VX, BR, "ep0"]) expect(await ipLink(h, dev), `${dev} on ${h.name}`).toBeUndefined();
      const netns = await sshExec(lab, h).exec(["ip", "netns", "list"]);
      expect(netns.stdout).not.toContain(epNs(h));
    }
  });
});
