// Faults, bad input and hostile values (issue 5), against real sshd on network-namespace
// hosts through the same runtime the provider host loads. docs/reliability.md lists every
// case with the test that proves it; the cases other suites already prove are cited there.
import { randomBytes } from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { Connection } from "../../provider/connection";
import { LinkEngine, setTransportFactory } from "../../provider/engine";
import { bridge } from "../../provider/kinds/bridge";
import { ConnectionError, NetdevError } from "../../provider/errors";
import { provider } from "../../provider/runtime";
import { UNKNOWN } from "../../provider/schema";
import { closeAllConnections, SshTransport, sshStats } from "../../provider/transport/ssh";
import type { RunOptions, RunResult, Transport } from "../../provider/transport/types";
import { netnsPrerequisites, startNetnsLab, type NetnsHost, type NetnsLab } from "../hosts/netns";
import { addrsOf, ipLink } from "../support/kernel";
import { up } from "../support/kernel-steps";
import { hostSuite } from "../support/prereq";
import { errorText, failure } from "../support/errors";

const useSsh = () => setTransportFactory((c) => new SshTransport(c));


// ---------------------------------------------------------------------------
// Bad input: rejected by check, naming field and value, with no transport ever made.

describe("bad input is rejected in check, naming field and value, without contacting any host", () => {
  const conn = { host: "192.0.2.10", privateKey: "not-used" };
  const base: Record<string, Record<string, unknown>> = {
    Bridge: { connection: conn, name: "br0" },
    TapDevice: { connection: conn, name: "tap0" },
    VethPair: { connection: conn, name: "ve0", peerName: "ve1" },
    Vlan: { connection: conn, name: "v10", parent: "eth0", vlanId: 10 },
    Vxlan: { connection: conn, name: "vx0", vni: 10 },
    MacvlanLink: { connection: conn, name: "mv0", parent: "eth0" },
    Bond: { connection: conn, name: "bond0" },
    Namespace: { connection: conn, name: "ns0" },
  };
  let transports = 0;
  beforeAll(() =>
    setTransportFactory((c) => {
      transports++;
      throw new Error(`check/diff tried to reach ${c.host}`);
    }),
  );
  afterAll(useSsh);

  const badNames: unknown[] = ["a".repeat(16), "", ".", "..", "a/b", "a b", "a\tb", 'a"b', "a'b", "$(touch /tmp/x)", "a;b", "a\nb", "`id`", "-x", 7, null];
  // [kind, field, value, property named in the failure (default: field)]
  const cases: [string, string, unknown, string?][] = [
    ...badNames.map((v): [string, string, unknown] => ["Bridge", "name", v]),
    ...badNames.map((v): [string, string, unknown] => ["VethPair", "peerName", v]),
    ...badNames.filter((v) => v !== null).map((v): [string, string, unknown] => ["TapDevice", "master", v]),
    ...badNames.map((v): [string, string, unknown] => ["Vlan", "parent", v]),
    ...["a".repeat(65), "", ".", "..", "a/b", "a b", "$(x)", "a;b", "a\n"].map((v): [string, string, unknown] => ["Bridge", "namespace", v]),
    ...[0, 4095, 5000, -1, 1.5, "10", null].map((v): [string, string, unknown] => ["Vlan", "vlanId", v]),
    ...[2 ** 24, 2 ** 24 + 1, -1, 0.5, "42"].map((v): [string, string, unknown] => ["Vxlan", "vni", v]),
    ...["01:00:5e:00:00:01", "03:00:00:00:00:01", "ff:ff:ff:ff:ff:ff", "02:00:00:00:00", "02:00:00:00:00:01:02", "00:00:00:00:00:00", "02-00-00-00-00-01", 5].map(
      (v): [string, string, unknown] => ["Bridge", "macAddress", v],
    ),
    ...["192.0.2.1", "192.0.2.1/33", "2001:db8::1/129", "192.0.2.256/24", "garbage/24", "fe80::1%eth0/64", " 192.0.2.1/24", "192.0.2.1/24; touch /tmp/x"].map(
      (v): [string, string, unknown, string] => ["Bridge", "addresses", [v], "addresses[0]"],
    ),
    ["Bridge", "addresses", "192.0.2.1/24"],
    ["Bridge", "mtu", "1500"],
    ["Bridge", "mtu", 1500.5],
    ["Bridge", "mtu", 67],
    ["Bridge", "up", "true"],
    ["Bridge", "stp", 1],
    ["TapDevice", "mode", "TAP"],
    ["TapDevice", "owner", "$(id)"],
    ["TapDevice", "owner", "a;b"],
    ["Bond", "mode", "round-robin"],
    ["MacvlanLink", "mode", "bridged"],
    ["Bridge", "master", "br0"], // the device itself
    ["VethPair", "peerName", "ve0"], // equal to name, same namespace
    ["Bridge", "colour", "blue"], // unknown field
    ["Vlan", "vlanID", 5], // unknown field (case matters)
    ["Bridge", "connection", { host: "h;rm -rf /" }, "connection.host"],
    ["Bridge", "connection", { host: "192.0.2.1", port: "22" }, "connection.port"],
    ["Bridge", "connection", { host: "192.0.2.1", user: "$(id)" }, "connection.user"],
    ["Bridge", "connection", { host: "192.0.2.1", hostname: "x" }, "connection"],
  ];

  it(`${cases.length} bad values: each failure names the field and the value; no host is contacted`, async () => {
    const report: string[] = [];
    for (const [kind, field, value, property = field] of cases) {
      const rt = provider(kind);
      const r = await rt.check({}, { ...base[kind], [field]: value });
      const what = `${kind}.${field} = ${JSON.stringify(value)}`;
      const f = r.failures.find((x) => x.property === property);
      expect(f, `${what}: got ${JSON.stringify(r.failures)}`).toBeDefined();
      const shown = Array.isArray(value) ? value[0] : field === "connection" ? Object.values(value as object).at(-1) : value;
      if (field === "colour" || field === "vlanID" || property === "connection") expect(f!.reason, what).toContain(`"${property === "connection" ? "connection.hostname" : field}"`);
      else expect(f!.reason, what).toContain(JSON.stringify(shown));
      report.push(`${what} -> ${f!.reason}`);
      // diff is pure too, whatever it is given.
      await rt.diff("id", base[kind], { ...base[kind], [field]: value });
    }
    expect(transports).toBe(0);
    console.log(`[reliability] ${cases.length} bad inputs rejected, 0 transports made; e.g.\n  ${report.filter((_, i) => i % 12 === 0).join("\n  ")}`);
  });

  it("preview placeholders are accepted wherever the value may later be valid, and still reach no host", async () => {
    const previews: [string, Record<string, unknown>][] = [
      ["Bridge", { name: UNKNOWN, master: UNKNOWN, mtu: UNKNOWN, addresses: [UNKNOWN, "192.0.2.1/24"], macAddress: UNKNOWN }],
      ["VethPair", { name: UNKNOWN, peerName: UNKNOWN, peerNamespace: UNKNOWN }],
      ["VethPair", { name: "ve0", peerName: "ve0", peerNamespace: UNKNOWN }],
      ["Vlan", { parent: UNKNOWN, vlanId: UNKNOWN }],
      ["Vxlan", { vni: UNKNOWN, remotes: [UNKNOWN], local: UNKNOWN }],
      ["Bridge", { connection: UNKNOWN }],
      ["Bridge", { connection: { host: UNKNOWN, privateKey: UNKNOWN } }],
    ];
    for (const [kind, extra] of previews) {
      const r = await provider(kind).check({}, { ...base[kind], ...extra });
      expect(r.failures, `${kind} ${JSON.stringify(extra)}`).toEqual([]);
      const d = await provider(kind).diff("id", base[kind], r.inputs);
      expect(d.changes).toBe(true);
    }
    // A placeholder never hides a real problem next to it.
    const mixed = await provider("Bridge").check({}, { ...base.Bridge, master: UNKNOWN, mtu: 5 });
    expect(mixed.failures.map((f) => f.property)).toEqual(["mtu"]);
    expect(transports).toBe(0);
  });
});

// ---------------------------------------------------------------------------
// Faults and hostile values on real hosts.

/** A transport that records what it sends, and can kill the host's sshd right after a device's add returned. */
class Probe implements Transport {
  readonly sent: { argv: string[]; stdin?: string }[] = [];
  killedAfter?: string;

  constructor(
    private readonly inner: SshTransport,
    private readonly killHost?: NetnsHost,
  ) {}

  get label(): string {
    return this.inner.label;
  }

  get batchKey(): string | undefined {
    return this.inner.batchKey;
  }

  async run(argv: string[], opts: RunOptions = {}): Promise<RunResult> {
    this.sent.push({ argv, stdin: opts.stdin });
    const r = await this.inner.run(argv, opts);
    const text = `${argv.join(" ")}\n${opts.stdin ?? ""}`;
    if (this.killHost && !this.killedAfter && /^(ip (-n \S+ )?)?(link add|tuntap add) /m.test(text)) {
      this.killedAfter = text.trim();
      await this.killHost.killSshd(); // takes its sessions with it: the next command finds no server
    }
    return r;
  }
}

const isReadArgv = (argv: string[]) => argv.includes("-j") && argv.includes("show");

const missing = [...netnsPrerequisites().missing, ...["sudo", "visudo", "useradd"].filter((t) => !["/usr/bin", "/usr/sbin"].some((d) => fs.existsSync(path.join(d, t)))).map((t) => `${t} (command)`)];

hostSuite("reliability on namespace hosts", missing, () => {
  let lab: NetnsLab;
  let tmp: string;
  const sudoPassword = `$(touch MARK-sudo1)\`touch MARK-sudo2\`;touch MARK-sudo3 |& 'q' "dq" \\ * ~ #${randomBytes(6).toString("hex")}`;
  const nosudoPassword = `nosudo-${randomBytes(9).toString("base64url")}`;
  const users = { pw: "", none: "" };

  beforeAll(async () => {
    const t0 = Date.now();
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), "netdev-reliability-"));
    lab = await startNetnsLab({
      hosts: 3,
      users: [
        // Markers are made in `tmp`: the hosts share this machine's filesystem, so a marker made "on" a host is visible here.
        { suffix: "pw", password: sudoPassword.replaceAll("MARK", tmp + "/m"), sudo: "ALL=(root) /usr/sbin/ip, /usr/bin/ip, /bin/ip, /usr/bin/printf" },
        { suffix: "none", password: nosudoPassword },
      ],
    });
    [users.pw, users.none] = lab.users.map((u) => u.name);
    console.log(`[reliability] lab of 3 hosts + 2 users up in ${Date.now() - t0} ms`);
  });
  afterEach(useSsh);
  afterAll(async () => {
    useSsh();
    closeAllConnections();
    await lab?.destroy();
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  const conn = (h: NetnsHost, extra: Partial<Connection> = {}): Connection => ({ host: h.address, hostKey: h.connection.hostKey, privateKey: lab.privateKey, ...extra });
  const markers = () => fs.readdirSync(tmp);

  async function checked(kind: string, inputs: Record<string, any>) {
    const r = await provider(kind).check({}, inputs);
    expect(r.failures).toEqual([]);
    return r.inputs;
  }

  /** Every link in the host's namespace, as the kernel reports it (read locally, not over SSH). */
  async function links(h: NetnsHost): Promise<any[]> {
    const r = await h.exec(["ip", "-j", "-d", "addr", "show"]);
    expect(r.code, r.stderr).toBe(0);
    return JSON.parse(r.stdout);
  }

  it("sshd killed right after `ip link add`: a clear error, a marked leftover, and the retry converges on that same device", async () => {
    const h = lab.hosts[0];
    const br = await up("Bridge", { connection: conn(h), name: "rbr0" });
    const inputs = await checked("VethPair", {
      connection: conn(h), name: "rv0", peerName: "rv0p", master: "rbr0", mtu: 1400, addresses: ["198.51.100.1/24"], peerAddresses: ["198.51.100.2/24"],
    });
    const probe = new Probe(new SshTransport(conn(h)), h);
    setTransportFactory(() => probe);
    let t0 = performance.now();
    const err = await failure(provider("VethPair").create(inputs));
    const failMs = performance.now() - t0;
    useSsh();

    // The fault happened where intended, and the error says what happened and what is left.
    // (The batch may also carry the read-back: `ip -j -d -batch -` with `addr show` lines after these.)
    expect(probe.killedAfter).toMatch(/^ip (-j -d )?-batch -\nlink add name rv0 .*type veth peer name rv0p\nlink set dev rv0 alias pulumi-netdev:creating:[0-9a-f]{20}$/m);
    expect(err).toBeInstanceOf(ConnectionError);
    // The next command meets either the dying session or the refused redial, depending on timing.
    const host = h.address.replaceAll(".", "\\.");
    expect(err.message).toMatch(new RegExp(`^${host}: (cannot connect to ${host}:22: ECONNREFUSED|\`[^\`]+\`: the SSH connection closed before the command finished)`));
    expect(err.message).toMatch(/rv0 could not be removed \(.*ECONNREFUSED\): it is marked with ifalias pulumi-netdev:creating:[0-9a-f]{20}, and the next create of this resource with the same inputs takes it over/);

    // What is on the host (read locally: sshd is down): the pair as the add's batch
    // left it (enslaved, addressed, up), still marked: the create never saw it verified.
    let left = (await links(h)).filter((l) => l.ifname.startsWith("rv0"));
    expect(left.map((l) => l.ifname).sort()).toEqual(["rv0", "rv0p"]);
    const rv0 = left.find((l) => l.ifname === "rv0");
    expect(rv0.linkinfo.info_kind).toBe("veth");
    expect(rv0.ifalias).toMatch(/^pulumi-netdev:creating:/);

    await h.startSshd();
    // A create with other inputs does not take the leftover: it is not that create's device.
    const other = await failure(provider("VethPair").create({ ...inputs, mtu: 1300 }));
    expect(other.message).toMatch(/veth rv0 already exists \(an interrupted pulumi-netdev create with other inputs left it\); it was left untouched/);
    expect((await ipLink(h, "rv0")).mtu).toBe(1400); // as the interrupted add left it

    // The retry of the same create converges on the leftover: same device, configured, unmarked.
    t0 = performance.now();
    const retry = await provider("VethPair").create(inputs);
    const retryMs = performance.now() - t0;
    left = (await links(h)).filter((l) => l.ifname.startsWith("rv0"));
    expect(left.map((l) => l.ifname).sort()).toEqual(["rv0", "rv0p"]);
    const fixed = left.find((l) => l.ifname === "rv0");
    expect(fixed.ifindex).toBe(rv0.ifindex); // adopted, not a second device
    expect(fixed.master).toBe("rbr0");
    expect(fixed.mtu).toBe(1400);
    expect(addrsOf(fixed)).toEqual(["198.51.100.1/24"]);
    expect(fixed.flags).toContain("UP");
    expect(fixed.ifalias).toBeUndefined();
    expect(addrsOf(left.find((l) => l.ifname === "rv0p"))).toEqual(["198.51.100.2/24"]);
    expect(retry.outs).toMatchObject({ name: "rv0", master: "rbr0", mtu: 1400, ifindex: rv0.ifindex });

    // Once created, the device is an ordinary one: a second create of it is refused, untouched.
    const again = await failure(provider("VethPair").create(inputs));
    expect(again.message).toMatch(/veth rv0 already exists; it was left untouched/);

    await provider("VethPair").delete(retry.id, retry.outs);
    await br.rt.delete(br.id, br.outs);
    expect((await links(h)).map((l) => l.ifname).filter((n) => n.startsWith("r"))).toEqual([]);
    console.log(`[reliability] create interrupted by sshd death failed after ${failMs.toFixed(0)} ms; the retry converged in ${retryMs.toFixed(0)} ms`);
  });

  it("a normal create leaves no marker, and a failed one whose rollback works leaves nothing", async () => {
    const h = lab.hosts[1];
    const tap = await up("TapDevice", { connection: conn(h), name: "rtap0", mtu: 1400 });
    expect((await ipLink(h, "rtap0")).ifalias).toBeUndefined();
    await tap.rt.delete(tap.id, tap.outs);
    const before = (await links(h)).map((l) => l.ifname);
    const err = await failure(provider("TapDevice").create(await checked("TapDevice", { connection: conn(h), name: "rtap1", master: "no-such-br" })));
    expect(err.message).toMatch(/no-such-br/);
    expect(err.message).not.toMatch(/could not be removed/);
    expect((await links(h)).map((l) => l.ifname)).toEqual(before);
  });

  it("an unreachable host fails fast, naming host and timeout, without holding up other hosts", async () => {
    const nobody = `${lab.hosts[0].address.split(".").slice(0, 3).join(".")}.200`; // the lab's subnet; no host there
    closeAllConnections();
    const t0 = performance.now();
    const bad = failure(provider("Bridge").create(await checked("Bridge", { connection: { ...conn(lab.hosts[0]), host: nobody, connectTimeoutMs: 1500 }, name: "rbad" })))
      .then((e) => ({ e, ms: performance.now() - t0 }));
    const good = Promise.all(
      [lab.hosts[1], lab.hosts[2]].map(async (h) => {
        const made = await up("Bridge", { connection: conn(h), name: "rgood" });
        return { made, ms: performance.now() - t0 };
      }),
    );
    const goods = await good;
    const { e, ms } = await bad;
    expect(e).toBeInstanceOf(ConnectionError);
    expect(e.message).toBe(`${nobody}: cannot connect to ${nobody}:22 within 1500 ms (connectTimeoutMs)`);
    expect(ms).toBeGreaterThanOrEqual(1400);
    expect(ms).toBeLessThan(2500);
    for (const g of goods) expect(g.ms, "a good host waited for the unreachable one").toBeLessThan(ms);
    for (const [i, h] of [lab.hosts[1], lab.hosts[2]].entries()) {
      expect((await ipLink(h, "rgood")).linkinfo.info_kind).toBe("bridge");
      await goods[i].made.rt.delete(goods[i].made.id, goods[i].made.outs);
    }
    console.log(`[reliability] unreachable host failed after ${ms.toFixed(0)} ms; the two good hosts finished in ${goods.map((g) => g.ms.toFixed(0)).join(", ")} ms`);
  });

  it("the pooled connection dies between two operations: the next one reconnects transparently", async () => {
    const h = lab.hosts[1];
    const br = await up("Bridge", { connection: conn(h), name: "rpool" });
    const opened = sshStats.connectionsOpened;
    await h.killSshd(); // drops the pooled connection and its worker shells
    await h.startSshd();
    const read = await br.rt.read(br.id, br.outs);
    expect(read.id).toBe(br.id);
    const updated = await br.rt.update(br.id, br.outs, { ...br.inputs, mtu: 1400 });
    expect(updated.outs.mtu).toBe(1400);
    expect((await ipLink(h, "rpool")).mtu).toBe(1400);
    expect(sshStats.connectionsOpened - opened).toBe(1);
    await br.rt.delete(br.id, updated.outs);
  });

  it("the pooled connection dies silently (host lost it, no FIN reached us): reads retry on a fresh one; a write in flight fails clearly", async () => {
    const h = lab.hosts[2];
    const br = await up("Bridge", { connection: conn(h), name: "rsilent" });
    /** The host forgets every SSH connection while cut off, as a reboot would: nothing reaches the client. */
    const forget = async () => {
      await h.exec(["ip", "link", "set", "dev", "eth0", "down"]);
      await h.killSshd();
      expect((await h.exec(["ss", "-K", "-tn", "( sport = :22 )"])).code).toBe(0);
      expect((await h.exec(["ss", "-Htn", "( sport = :22 )"])).stdout.trim()).toBe("");
      await h.exec(["ip", "link", "set", "dev", "eth0", "up"]);
      await h.startSshd();
    };

    await forget();
    let opened = sshStats.connectionsOpened;
    // Every operation starts with a read: it meets the dead connection, and runs again on a new one.
    const read = await br.rt.read(br.id, br.outs);
    expect(read.id).toBe(br.id);
    const updated = await br.rt.update(br.id, br.outs, { ...br.inputs, mtu: 1400 });
    expect((await ipLink(h, "rsilent")).mtu).toBe(1400);
    expect(sshStats.connectionsOpened - opened).toBe(1);

    // A write sent on a dead connection is not retried (it may have run): the error says so, naming the host.
    const t = new SshTransport(conn(h));
    await forget();
    opened = sshStats.connectionsOpened;
    // When no idle worker shell is left on the dead connection, opening a session fails
    // first: nothing ran, so the pool may redial and the write then succeeds once. What
    // must never happen is a write that started being sent again.
    const outcome = await t.run(["ip", "link", "set", "dev", "rsilent", "mtu", "1300"]).then(
      () => undefined,
      (err: Error) => err,
    );
    if (outcome) {
      expect(outcome).toBeInstanceOf(ConnectionError);
      expect(outcome.message).toBe(`${h.address}: \`ip link set dev rsilent mtu 1300\`: the SSH connection closed before the command finished`);
      expect((await ipLink(h, "rsilent")).mtu).toBe(1400);
    } else {
      expect((await ipLink(h, "rsilent")).mtu).toBe(1300);
    }
    console.log(`[reliability] write on a silently dead connection: ${outcome ? "failed clearly (session was open)" : "redialled before the session opened"}`);
    await br.rt.delete(br.id, updated.outs);
    expect(await ipLink(h, "rsilent")).toBeUndefined();
    expect(sshStats.connectionsOpened - opened).toBe(1);
  });

  it("a kind the kernel lacks: an error naming host, kind and module, during create, with nothing left behind", async () => {
    const h = lab.hosts[2];
    const before = await links(h);
    const expected = (infoKind: string, module: string) =>
      new RegExp(`^${h.address.replaceAll(".", "\\.")}: this kernel has no ${infoKind} support \\(module ${module} not available\\): \`ip link add .*\` failed: Error: Unknown device type\\.$`);
    // A kind no kernel has: the error path runs on every kernel.
    const nosuch = new LinkEngine({ ...bridge, resource: "NoSuch", infoKind: "nosuchkind", createArgv: (d) => [["ip", "link", "add", "name", d.name, "type", "nosuchkind"]] });
    const checkedNoSuch = await nosuch.check({}, { connection: conn(h), name: "rnosuch" });
    expect(checkedNoSuch.failures).toEqual([]);
    const e0 = await failure(nosuch.create(checkedNoSuch.inputs));
    expect(e0).toBeInstanceOf(NetdevError);
    expect(e0.message).toMatch(expected("nosuchkind", "nosuchkind"));
    // Real kinds whose module this host may lack: the mapped error naming the module when it
    // does, a working device (removed again) when it has it. Either way nothing is left.
    const cases: [string, Record<string, unknown>, string, string][] = [
      ["Vlan", { name: "rvlan", parent: "eth0", vlanId: 10 }, "vlan", "8021q"],
      ["Bond", { name: "rbond", mode: "active-backup" }, "bond", "bonding"],
      ["IpvlanLink", { name: "ripvl", parent: "eth0" }, "ipvlan", "ipvlan"],
    ];
    for (const [kind, extra, infoKind, module] of cases) {
      const inputs = await checked(kind, { connection: conn(h), ...extra });
      const made = await provider(kind).create(inputs).then((r) => r, (e: Error) => e);
      if (made instanceof Error) {
        expect(made, kind).toBeInstanceOf(NetdevError);
        expect(made.message, kind).toMatch(expected(infoKind, module));
        console.log(`[reliability] ${kind}: ${made.message}`);
      } else {
        expect((await ipLink(h, String(extra.name)))?.linkinfo?.info_kind, kind).toBe(infoKind);
        await provider(kind).delete(made.id, made.outs);
        console.log(`[reliability] ${kind}: this kernel has ${module}; created and deleted`);
      }
    }
    const after = await links(h);
    expect(after.map((l) => [l.ifindex, l.ifname, l.ifalias])).toEqual(before.map((l) => [l.ifindex, l.ifname, l.ifalias]));
  });

  it("sudo that is not permitted: a clear error naming host and reason, no password anywhere, nothing created", async () => {
    const h = lab.hosts[2];
    const c = conn(h, { user: users.none, sudo: { password: nosudoPassword } });
    const e = await failure(provider("Bridge").create(await checked("Bridge", { connection: c, name: "rsudo" })));
    // sudo -v (the password check, once per connection) words it "may not run sudo"; a command, "is not in the sudoers file".
    expect(e.message).toMatch(new RegExp(`^${h.address.replaceAll(".", "\\.")}: sudo refused to run ip as root for user ${users.none}: .*(is not in the sudoers file|Sorry, user ${users.none} may not run sudo on )`));
    expect(errorText(e)).not.toContain(nosudoPassword);
    expect(await ipLink(h, "rsudo")).toBeUndefined();
  });

  it("a device deleted out of band: read says gone, create recreates it; changed out of band: read reports it, update fixes it", async () => {
    const h = lab.hosts[1];
    const [a, b] = [await up("Bridge", { connection: conn(h), name: "rbra" }), await up("Bridge", { connection: conn(h), name: "rbrb" })];
    const tap = await up("TapDevice", { connection: conn(h), name: "rtapd", master: "rbra", mtu: 1400, addresses: ["192.0.2.7/24"] });

    // Changed: another master, another mtu, an address swapped.
    await h.exec(["ip", "link", "set", "dev", "rtapd", "master", "rbrb"]);
    await h.exec(["ip", "link", "set", "dev", "rtapd", "mtu", "1300"]);
    await h.exec(["ip", "addr", "flush", "dev", "rtapd"]);
    await h.exec(["ip", "addr", "add", "192.0.2.99/24", "dev", "rtapd"]);
    const drifted = await tap.rt.read(tap.id, tap.outs);
    expect(drifted.id).toBe(tap.id);
    expect(drifted.props).toMatchObject({ master: "rbrb", mtu: 1300, addresses: ["192.0.2.99/24"] });
    const diff = await tap.rt.diff(tap.id, drifted.props, tap.inputs);
    expect(diff).toMatchObject({ changes: true, replaces: [] });
    await tap.rt.update(tap.id, drifted.props, tap.inputs);
    let k = await ipLink(h, "rtapd");
    expect([k.master, k.mtu, addrsOf(k)]).toEqual(["rbra", 1400, ["192.0.2.7/24"]]);

    // Deleted: read reports it gone (Pulumi drops it on refresh), and the next create makes it anew.
    await h.exec(["ip", "link", "del", "dev", "rtapd"]);
    expect(await tap.rt.read(tap.id, tap.outs)).toEqual({ id: "", props: {} });
    const again = await tap.rt.create(tap.inputs);
    k = await ipLink(h, "rtapd");
    expect(k.ifindex).not.toBe(tap.outs.ifindex);
    expect([k.master, k.mtu, addrsOf(k)]).toEqual(["rbra", 1400, ["192.0.2.7/24"]]);
    expect(again.id).toBe(tap.id);

    await tap.rt.delete(again.id, again.outs);
    await a.rt.delete(a.id, a.outs);
    await b.rt.delete(b.id, b.outs);
  });

  it("a device of the same name but another kind: create fails and the device is untouched (the one write, an exclusive add, is refused), even with adopt", async () => {
    const h = lab.hosts[1];
    await h.exec(["ip", "tuntap", "add", "dev", "rother", "mode", "tap"]);
    await h.exec(["ip", "link", "set", "dev", "rother", "mtu", "1234"]);
    await h.exec(["ip", "addr", "add", "192.0.2.33/24", "dev", "rother"]);
    const snapshot = async () => {
      const l = await ipLink(h, "rother");
      return JSON.stringify([l.ifindex, l.mtu, l.flags, l.address, l.master, l.linkinfo, addrsOf(l)]);
    };
    const before = await snapshot();
    for (const [kind, extra] of [["Bridge", {}], ["VethPair", { peerName: "rotherp" }]] as const) {
      for (const adopt of [false, true]) {
        const probe = new Probe(new SshTransport(conn(h)));
        setTransportFactory(() => probe);
        const e = await failure(provider(kind).create(await checked(kind, { connection: conn(h), name: "rother", adopt, mtu: 1500, ...extra })));
        expect(e.message).toBe(`${h.address}: a device named rother already exists and is a tun, not a ${kind === "Bridge" ? "bridge" : "veth"}; it was left untouched`);
        expect(probe.sent.length).toBeGreaterThan(0);
        // Tried first because it is exclusive: the kernel refuses it and nothing after it runs.
        const writes = probe.sent.filter((s) => !isReadArgv(s.argv));
        const add = kind === "Bridge" ? "link add name rother type bridge" : "link add name rother mtu 1500 type veth peer name rotherp";
        expect(writes.map((w) => w.stdin?.split("\n")[0]), `${kind} adopt=${adopt}`).toEqual([add]);
      }
    }
    expect(await snapshot()).toBe(before);
    expect(await ipLink(h, "rotherp")).toBeUndefined();
    await h.exec(["ip", "link", "del", "dev", "rother"]);
  });

  it("values reaching the host are never read by a shell: argv and stdin arrive byte for byte, and nothing runs", async () => {
    const h = lab.hosts[2];
    const m = (n: string) => path.join(tmp, n);
    const hostile = [
      `$(touch ${m("dollar")})`, `\`touch ${m("backtick")}\``, `;touch ${m("semicolon")}`, `x\ntouch ${m("newline")}`, `x\rtouch ${m("cr")}`,
      `'; touch ${m("quote")}; '`, `"; touch ${m("dquote")}; "`, `| touch ${m("pipe")}`, `&& touch ${m("and")}`, `> ${m("redirect")}`,
      `$\{IFS}touch$\{IFS}${m("ifs")}`, `<(touch ${m("procsub")})`, "$HOME", "*", "~", "", "-n", "\\", "%s\\0", "é ✓",
    ];
    const printf = async (c: Connection) => {
      const r = await new SshTransport(c).run(["printf", "%s\\0", ...hostile]);
      expect(r.code, r.stderr).toBe(0);
      return r.stdout.split("\0").slice(0, -1);
    };
    expect(await printf(conn(h))).toEqual(hostile);
    // Through sudo with a password, whose own characters are hostile too (it goes on stdin).
    expect(await printf(conn(h, { user: users.pw, sudo: { password: lab.users[0].password } }))).toEqual(hostile);
    // stdin, including lines that look like here-document ends and shell code.
    const stdin = `EOF\n'EOF'\n$(touch ${m("stdin")})\nND0000\n${hostile.join("\n")}\nno newline at the end`;
    const cat = await new SshTransport(conn(h)).run(["cat"], { stdin });
    expect(cat).toEqual({ code: 0, stdout: stdin + "\n", stderr: "" }); // stdin is text: it gets its final newline

    // Past validation (create called without check): the values reach `ip` literally, which refuses them.
    const rt = provider("Bridge");
    for (const [field, value] of [["name", `$(touch ${m("name")})`], ["name", `x;touch ${m("name2")}`], ["namespace", `\`touch ${m("ns")}\``], ["master", `;touch ${m("master")}`]] as const) {
      const e = await failure(rt.create({ connection: conn(h), name: "rinj", up: true, adopt: false, [field]: value }));
      expect(e.message, field).toContain(value);
    }
    expect(await ipLink(h, "rinj")).toBeUndefined();

    // The widest value a user can give that reaches the host: a sudo password (any text) on a real create.
    const c = conn(h, { user: users.pw, sudo: { password: lab.users[0].password } });
    const br = await up("Bridge", { connection: c, name: "rsudopw", addresses: ["192.0.2.5/24"] });
    expect(addrsOf(await ipLink(h, "rsudopw"))).toEqual(["192.0.2.5/24"]);
    const { connection: _secret, ...plainOuts } = br.outs;
    expect(JSON.stringify(plainOuts)).not.toContain(lab.users[0].password);
    await br.rt.delete(br.id, br.outs);
    expect(await ipLink(h, "rsudopw")).toBeUndefined();

    expect(markers()).toEqual([]);
  });
});
