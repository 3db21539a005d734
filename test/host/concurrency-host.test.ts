// Concurrency, load and secrets through the REAL Pulumi dynamic provider host (gRPC),
// against network-namespace SSH hosts (issue 5; docs/reliability.md lists every case).
//
// The program runs under Pulumi mocks to get each resource's registration as the engine
// would send it (inputs, serialized provider, additionalSecretOutputs); the test then
// drives Check/Create/Read/Delete of many resources AT ONCE through the provider host,
// and checks the kernel and the hosts' sshd independently: `ip -j -d` and `ss` run
// locally inside the host's namespace, sshd's own process tree from /proc, sshd's log.
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import * as fs from "node:fs";
import { createRequire } from "node:module";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { netnsPrerequisites, startNetnsLab, type NetnsHost, type NetnsLab } from "../hosts/netns";
import { assertBuilt, linkExampleDeps, runProgram } from "../support/examples";
import { addrsOf } from "../support/kernel";
import { hostSuite } from "../support/prereq";
import { type ProviderHost, startProviderHost } from "../support/provider-host";

const TYPE = "pulumi-nodejs:dynamic/netdev:";
/** The pool's channel bound (provider/transport/ssh.ts MAX_CHANNELS_PER_CONNECTION), under sshd's MaxSessions 10. */
const MAX_CHANNELS = 8;
const SSHD_MAX_SESSIONS = 10;

const missing = [...netnsPrerequisites().missing, ...["sudo", "visudo", "useradd", "ss"].filter((t) => !["/usr/bin", "/usr/sbin", "/bin"].some((d) => fs.existsSync(path.join(d, t)))).map((t) => `${t} (command)`)];

/** Children of a process, from /proc (CONFIG_PROC_CHILDREN). */
function children(pid: number): number[] {
  try {
    return fs.readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/**
 * sshd's own view of a host: each connection is a child of the listening sshd, each
 * session (channel running a shell) a child of its connection's process.
 */
function sshdView(h: NetnsHost): { connections: number; maxSessions: number } {
  const conns = children(h.sshdPid);
  return { connections: conns.length, maxSessions: Math.max(0, ...conns.map((c) => children(c).length)) };
}

/** Samples sshdView of every host every few ms until stopped; returns the peaks. */
function sampler(hosts: NetnsHost[]) {
  const peak = hosts.map(() => ({ connections: 0, maxSessions: 0 }));
  let samples = 0;
  const timer = setInterval(() => {
    samples++;
    hosts.forEach((h, i) => {
      const v = sshdView(h);
      peak[i].connections = Math.max(peak[i].connections, v.connections);
      peak[i].maxSessions = Math.max(peak[i].maxSessions, v.maxSessions);
    });
  }, 5);
  return {
    stop() {
      clearInterval(timer);
      return { peak, samples };
    },
  };
}

hostSuite("provider host: concurrency, load and secrets", missing, () => {
  let lab: NetnsLab;
  let dir: string;
  const hosts: ProviderHost[] = [];
  // The user's password: what password logins and sudo both check.
  const userPassword = `user-${randomBytes(12).toString("base64url")}`;
  let pwUser = "";

  beforeAll(async () => {
    assertBuilt();
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "netdev-concurrency-"));
    fs.writeFileSync(path.join(dir, "Pulumi.yaml"), "name: concurrency\nruntime: nodejs\n");
    linkExampleDeps(dir);
    const t0 = Date.now();
    lab = await startNetnsLab({
      hosts: 10,
      sshdConfig: ["PasswordAuthentication yes"],
      users: [{ suffix: "pw", password: userPassword, sudo: `ALL=(root) /usr/sbin/ip, /usr/bin/ip, /bin/ip` }],
    });
    pwUser = lab.users[0].name;
    console.log(`[concurrency] lab of 10 hosts up in ${Date.now() - t0} ms`);
  });

  afterAll(async () => {
    for (const host of hosts) await host.stop();
    await lab?.destroy();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  const conn = (h: NetnsHost, extra: Record<string, unknown> = {}) => ({ host: h.address, hostKey: h.connection.hostKey, privateKey: lab.privateKey, ...extra });

  async function providerHost(config: Record<string, string> = {}): Promise<ProviderHost> {
    const host = await startProviderHost({ cwd: dir, env: { PULUMI_NODEJS_PROJECT: "concurrency" } });
    hosts.push(host);
    await host.configure(config);
    return host;
  }

  /** The host's links, read locally inside its namespace (not over SSH). */
  async function links(h: NetnsHost): Promise<any[]> {
    const r = await h.exec(["ip", "-j", "-d", "addr", "show"]);
    expect(r.code, r.stderr).toBe(0);
    return JSON.parse(r.stdout);
  }

  /** Established TCP connections to sshd, as the host's kernel counts them. */
  async function established(h: NetnsHost): Promise<number> {
    const r = await h.exec(["ss", "-Htn", "state", "established", "( sport = :22 )"]);
    expect(r.code, r.stderr).toBe(0);
    return r.stdout.split("\n").filter((l) => l.trim() !== "").length;
  }

  function sshdLog(h: NetnsHost): string {
    return fs.readFileSync(path.join(os.tmpdir(), `pulumi-netdev-netns-${lab.id}`, h.name, "sshd.log"), "utf8");
  }

  it("50 veths and taps enslaved to one bridge, created at once through the provider host: all verified; then deleted at once", async () => {
    const h = lab.hosts[0];
    const connection = conn(h);
    const req = createRequire(path.join(dir, "index.js"));
    const run = await runProgram(dir, () => {
      // The built SDK, loaded by name by Node (as a user's program does).
      const netdev = req("pulumi-netdev");
      const br = new netdev.Bridge("br", { connection, name: "cbr", addresses: ["10.77.0.1/24"] });
      for (let i = 0; i < 25; i++) {
        new netdev.VethPair(`veth${i}`, { connection, name: `cv${i}`, peerName: `cv${i}p`, master: br.name, addresses: [`10.78.${i}.1/24`], peerAddresses: [`10.78.${i}.2/24`] });
        new netdev.TapDevice(`tap${i}`, { connection, name: `ct${i}`, master: br.name, addresses: [`10.79.${i}.1/24`], vnetHdr: true });
      }
      return {};
    });
    expect(run.registrations).toHaveLength(51);
    for (const r of run.registrations) {
      expect(r.type.startsWith(TYPE)).toBe(true);
      // What keeps `connection` (credentials) a secret in state.
      expect(r.additionalSecretOutputs).toEqual(["connection"]);
    }
    const host = await providerHost();
    const checked = await Promise.all(run.registrations.map(async (r) => {
      const c = await host.check(r.urn, {}, r.inputs);
      expect(c.failures, r.name).toEqual([]);
      return { urn: r.urn, name: r.name, inputs: c.inputs };
    }));
    const [bridge, ...ports] = checked;
    expect(bridge.name).toBe("br");
    const br = await host.create(bridge.urn, bridge.inputs);

    const before = sshdView(h);
    const watch = sampler([h]);
    let t0 = performance.now();
    let inFlight = 0;
    let peakInFlight = 0;
    const made = await Promise.all(ports.map(async (p) => {
      peakInFlight = Math.max(peakInFlight, ++inFlight);
      const created = await host.create(p.urn, p.inputs);
      inFlight--;
      return { ...p, ...created };
    }));
    const createMs = performance.now() - t0;
    const { peak, samples } = watch.stop();
    expect(peakInFlight).toBe(50);

    // Independent read of the kernel: every port is there, enslaved, addressed and up.
    const k = new Map((await links(h)).map((l) => [l.ifname, l]));
    for (let i = 0; i < 25; i++) {
      const [v, p, t] = [k.get(`cv${i}`), k.get(`cv${i}p`), k.get(`ct${i}`)];
      expect([v?.linkinfo.info_kind, v?.master, addrsOf(v), v?.flags.includes("UP")], `cv${i}`).toEqual(["veth", "cbr", [`10.78.${i}.1/24`], true]);
      expect(addrsOf(p), `cv${i}p`).toEqual([`10.78.${i}.2/24`]);
      expect([t?.linkinfo.info_kind, t?.linkinfo.info_data.vnet_hdr, t?.master, addrsOf(t), t?.flags.includes("UP")], `ct${i}`).toEqual(["tun", true, "cbr", [`10.79.${i}.1/24`], true]);
    }
    const enslaved = [...k.values()].filter((l) => l.master === "cbr").map((l) => l.ifname);
    expect(enslaved).toHaveLength(50); // no lost enslavement
    for (const m of made) expect(m.outs.ifindex, m.name).toBe(k.get(m.inputs.name).ifindex);

    // Reads, all at once, agree.
    const reads = await Promise.all(made.map((m) => host.read(m.urn, m.id, m.outs, m.inputs)));
    reads.forEach((r, i) => expect([r.id, r.props.master, r.props.addresses], made[i].name).toEqual([made[i].id, "cbr", made[i].inputs.addresses]));

    // One connection, channels within the pool's bound, and sshd never refused a session.
    expect(await established(h)).toBe(1);
    expect(peak[0].connections).toBe(1);
    expect(peak[0].maxSessions).toBeLessThanOrEqual(MAX_CHANNELS);
    expect(sshdLog(h)).not.toMatch(/no more sessions|drop connection|beginning MaxStartups/);

    t0 = performance.now();
    await Promise.all(made.map((m) => host.delete(m.urn, m.id, m.outs)));
    const deleteMs = performance.now() - t0;
    await host.delete(bridge.urn, br.id, br.outs);
    expect((await links(h)).map((l) => l.ifname).filter((n) => /^c(v|t|br)/.test(n))).toEqual([]);
    console.log(
      `[concurrency] 50 ports on one host: create ${createMs.toFixed(0)} ms, delete ${deleteMs.toFixed(0)} ms; ` +
        `sshd saw ${peak[0].connections} connection(s), at most ${peak[0].maxSessions} sessions (${samples} samples; before: ${JSON.stringify(before)})`,
    );
  });

  it("10 hosts x 10 devices at once: one connection per host, never more, and sessions within sshd's limit", async () => {
    // Earlier provider hosts hold pooled connections: stop them, so every connection counted is this run's.
    for (const x of hosts.splice(0)) await x.stop();
    for (let i = 0; i < 100 && (await established(lab.hosts[0])) > 0; i++) await new Promise((r) => setTimeout(r, 20));
    expect(await Promise.all(lab.hosts.map(established))).toEqual(Array(10).fill(0));
    const host = await providerHost(); // a fresh pool: every host is dialled during the run
    const urn = (i: number, j: number) => `urn:pulumi:dev::concurrency::${TYPE}Bridge::h${i}-br${j}`;
    const work = lab.hosts.flatMap((h, i) => Array.from({ length: 10 }, (_, j) => ({ h, urn: urn(i, j), inputs: { __provider: `exports.handler=function(){return require("pulumi-netdev/runtime").provider("Bridge")};`, connection: conn(h), name: `cx${j}`, addresses: [`10.80.${j}.1/24`] } })));
    const checked = await Promise.all(work.map(async (w) => ({ ...w, inputs: (await host.check(w.urn, {}, w.inputs)).inputs })));
    const watch = sampler(lab.hosts);
    const t0 = performance.now();
    const made = await Promise.all(checked.map(async (w) => ({ ...w, ...(await host.create(w.urn, w.inputs)) })));
    const ms = performance.now() - t0;
    const { peak, samples } = watch.stop();

    for (const h of lab.hosts) {
      const k = (await links(h)).filter((l) => l.ifname.startsWith("cx"));
      expect(k.map((l) => [l.ifname, l.linkinfo.info_kind, addrsOf(l)[0]]).sort(), h.name).toEqual(
        Array.from({ length: 10 }, (_, j) => [`cx${j}`, "bridge", `10.80.${j}.1/24`]).sort(),
      );
    }
    const counted = await Promise.all(lab.hosts.map(established));
    expect(counted).toEqual(Array(10).fill(1));
    expect(peak.map((p) => p.connections)).toEqual(Array(10).fill(1));
    for (const p of peak) expect(p.maxSessions).toBeLessThanOrEqual(MAX_CHANNELS);
    expect(Math.max(...peak.map((p) => p.maxSessions))).toBeLessThan(SSHD_MAX_SESSIONS);
    for (const h of lab.hosts) expect(sshdLog(h), h.name).not.toMatch(/no more sessions|drop connection|beginning MaxStartups/);

    await Promise.all(made.map((m) => host.delete(m.urn, m.id, m.outs)));
    for (const h of lab.hosts) expect((await links(h)).filter((l) => l.ifname.startsWith("cx"))).toEqual([]);
    console.log(
      `[concurrency] 100 bridges on 10 hosts in ${ms.toFixed(0)} ms; per host: connections ${peak.map((p) => p.connections).join(",")}, ` +
        `peak sessions ${peak.map((p) => p.maxSessions).join(",")} (${samples} samples); ss after: ${counted.join(",")}`,
    );
  });

  it("secrets never reach gRPC errors, the provider host's stderr (stack traces included) or non-secret outputs", async () => {
    const h = lab.hosts[1];
    const s = (what: string) => `${what}-${randomBytes(9).toString("base64url")}`;
    const wrongLogin = s("wrong-login");
    const wrongSudo = s("wrong-sudo");
    const wrongSudoConfig = s("wrong-sudo-config");
    const wrongPassphrase = s("wrong-passphrase");
    const keySecret = s("key-material");
    const passphrase = s("passphrase");
    const encrypted = path.join(dir, "encrypted_key");
    fs.copyFileSync(lab.privateKeyPath, encrypted);
    fs.chmodSync(encrypted, 0o600);
    execFileSync("ssh-keygen", ["-q", "-p", "-f", encrypted, "-P", "", "-N", passphrase]);
    const encryptedKey = fs.readFileSync(encrypted, "utf8");
    const secrets = [userPassword, wrongLogin, wrongSudo, wrongSudoConfig, wrongPassphrase, keySecret, passphrase, ...lab.privateKey.split("\n").filter((l) => l.length > 20), ...encryptedKey.split("\n").filter((l) => l.length > 20)];

    const provider = (kind: string) => `exports.handler=function(){return require("pulumi-netdev/runtime").provider(${JSON.stringify(kind)})};`;
    const urn = (name: string) => `urn:pulumi:dev::concurrency::${TYPE}Bridge::${name}`;
    const host = await providerHost();
    const failures: [string, Record<string, unknown>, RegExp][] = [
      ["wrong login password", { host: h.address, hostKey: h.connection.hostKey, user: pwUser, password: wrongLogin }, /authentication as .* failed \(tried the password\)/],
      ["private key text that is no key", { host: h.address, hostKey: h.connection.hostKey, privateKey: `-----BEGIN OPENSSH PRIVATE KEY-----\n${keySecret}\n-----END OPENSSH PRIVATE KEY-----\n` }, /connection\.privateKey is not a private key/],
      ["wrong passphrase", { host: h.address, hostKey: h.connection.hostKey, privateKey: encryptedKey, passphrase: wrongPassphrase }, /connection\.passphrase does not decrypt/],
      ["wrong sudo password", conn(h, { user: pwUser, sudo: { password: wrongSudo } }), /sudo refused .*incorrect password/],
      ["a failing command run through sudo with the right password", conn(h, { user: pwUser, password: userPassword, sudo: { password: userPassword } }), /no-such-br/],
    ];
    const seen: string[] = [];
    for (const [what, connection, reason] of failures) {
      const inputs = { __provider: provider("Bridge"), connection, name: "csec", ...(what.startsWith("a failing") ? { master: "no-such-br" } : {}) };
      const checked = await host.check(urn(what.replaceAll(" ", "-")), {}, inputs);
      expect(checked.failures, what).toEqual([]);
      const e = await host.create(urn("csec"), checked.inputs).then(() => undefined, (err: Error) => err);
      expect(e, what).toBeDefined();
      expect(e!.message, what).toMatch(reason);
      expect(e!.message, what).toContain(h.address);
      seen.push(e!.message);
    }

    // The right credentials: created; the outputs other than `connection` (a secret by
    // additionalSecretOutputs, asserted above) carry none of them; read and delete work.
    const good = { __provider: provider("Bridge"), connection: conn(h, { user: pwUser, password: userPassword, passphrase, privateKey: encryptedKey, sudo: { password: userPassword } }), name: "csec", addresses: ["10.81.0.1/24"] };
    const checked = await host.check(urn("good"), {}, good);
    expect(checked.failures).toEqual([]);
    const made = await host.create(urn("good"), checked.inputs);
    const read = await host.read(urn("good"), made.id, made.outs, checked.inputs);
    for (const outs of [made.outs, read.props]) {
      const { connection: _secretByOption, ...plain } = outs;
      const text = JSON.stringify(plain);
      for (const x of secrets) expect(text).not.toContain(x);
    }
    expect(made.id).toBe(`${h.address}:22//csec`);
    // Read and Delete failing on a wrong passphrase: the provider host prints their stack traces to stderr.
    const wrong = { ...made.outs, connection: { ...made.outs.connection, passphrase: wrongPassphrase } };
    for (const call of [() => host.read(urn("good"), made.id, wrong, checked.inputs), () => host.delete(urn("good"), made.id, wrong)]) {
      const err = await call().then(() => undefined, (x: Error) => x);
      expect(err?.message).toMatch(/connection\.passphrase does not decrypt/);
      seen.push(err!.message);
    }
    await host.delete(urn("good"), made.id, made.outs);

    // The same from stack config (netdev:* keys), the way most stacks set credentials.
    const configured = await providerHost({
      "netdev:host": h.address,
      "netdev:hostKey": h.connection.hostKey,
      "netdev:user": pwUser,
      "netdev:privateKey": lab.privateKey,
      "netdev:sudo": JSON.stringify({ password: wrongSudoConfig }),
    });
    const fromConfig = await configured.check(urn("cfg"), {}, { __provider: provider("Bridge"), name: "csec" });
    expect(fromConfig.failures).toEqual([]);
    const e = await configured.create(urn("cfg"), fromConfig.inputs).then(() => undefined, (err: Error) => err);
    expect(e?.message).toMatch(/sudo refused .*incorrect password/);
    seen.push(e!.message);

    const everything = [...seen, ...hosts.map((x) => x.stderr())].join("\n");
    expect(everything).toMatch(/at .*\.js:\d+/); // the hosts did print stack traces: they were scanned
    for (const x of secrets) expect(everything).not.toContain(x);
    console.log(`[concurrency] secrets scan: ${seen.length} gRPC errors and ${everything.length} bytes of errors + provider-host stderr, ${secrets.length} secret strings, none found`);
  });
});
