// The SSH transport against real sshd on network-namespace hosts: pooling under
// sshd's MaxSessions, fan-out, reconnects, timeouts, every auth method, bastion
// chains, sudo, host-key policy, and secrets that must never surface.
import { execFile, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { Client } from "ssh2";
import { afterAll, beforeAll, expect, it, vi } from "vitest";
import type { Connection } from "../../provider/connection";
import { ConnectionError, NetdevError } from "../../provider/errors";
import { provider } from "../../provider/runtime";
import { closeAllConnections, MAX_CHANNELS_PER_CONNECTION, SshTransport, sshStats } from "../../provider/transport/ssh";
import { netnsPrerequisites, startNetnsLab, type NetnsHost, type NetnsLab } from "../hosts/netns";
import { hostSuite } from "../support/prereq";
import { errorText, failure } from "../support/errors";

const REPO = path.resolve(__dirname, "../..");
const tools = ["sudo", "visudo", "useradd", "ssh-agent", "ssh-add", "ss"];
const missing = [
  ...netnsPrerequisites().missing,
  ...tools.filter((t) => !["/usr/bin", "/usr/sbin", "/bin", "/sbin"].some((d) => fs.existsSync(path.join(d, t)))).map((t) => `${t} (command)`),
];

// Fresh every run, so finding one in an error or log can only mean a leak.
const secret = (what: string) => `${what}-${randomBytes(9).toString("base64url")}`;
const PW_PASSWORD = secret("pw");
const NOPW_PASSWORD = secret("nopw");
const NONE_PASSWORD = secret("none");
const PASSPHRASE = secret("passphrase");

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function sh(cmd: string, argv: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string } = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) =>
    execFile(cmd, argv, { encoding: "utf8", ...opts }, (err, stdout, stderr) =>
      resolve({ code: err ? (typeof err.code === "number" ? err.code : -1) : 0, stdout, stderr }),
    ),
  );
}


/** dist/ holds a build of the transport at least as new as its sources. */
function distIsFresh(): boolean {
  const sources = ["provider/connection.ts", "provider/errors.ts", ...fs.readdirSync(path.join(REPO, "provider/transport")).map((f) => `provider/transport/${f}`)];
  return sources.every((src) => {
    try {
      return fs.statSync(path.join(REPO, "dist", src.replace(/\.ts$/, ".js"))).mtimeMs >= fs.statSync(path.join(REPO, src)).mtimeMs;
    } catch {
      return false;
    }
  });
}

hostSuite("SSH transport on namespace hosts", missing, () => {
  let lab: NetnsLab;
  let tmp: string;
  let built: Promise<{ code: number; stdout: string; stderr: string }>;
  const users = { nopw: "", pw: "", none: "" };

  beforeAll(async () => {
    // The no-keep-alive check runs the built package in plain node. `npm test`
    // builds first; otherwise compile while the lab starts.
    built = distIsFresh() ? Promise.resolve({ code: 0, stdout: "", stderr: "" }) : sh("npx", ["tsc", "-p", "tsconfig.json"], { cwd: REPO });
    lab = await startNetnsLab({
      hosts: 10,
      sshdConfig: ["PasswordAuthentication yes", "Port 2222"],
      users: [
        { suffix: "nopw", password: NOPW_PASSWORD, sudo: "ALL=(root) NOPASSWD: /usr/sbin/ip, /usr/bin/ip, /bin/ip, /usr/bin/cat, /bin/cat" },
        { suffix: "pw", password: PW_PASSWORD, sudo: "ALL=(root) /usr/sbin/ip, /usr/bin/ip, /bin/ip, /usr/bin/sh, /bin/sh" },
        { suffix: "none", password: NONE_PASSWORD },
      ],
    });
    [users.nopw, users.pw, users.none] = lab.users.map((u) => u.name);
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), `${lab.id}-transport-`));
  });

  afterAll(async () => {
    closeAllConnections();
    await lab?.destroy();
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  const conn = (h: NetnsHost, extra: Partial<Connection> = {}): Connection => ({ host: h.address, hostKey: h.connection.hostKey, privateKey: lab.privateKey, ...extra });
  const run = (c: Connection, argv: string[], stdin?: string) => new SshTransport(c).run(argv, { stdin });
  const subnet = () => lab.hosts[0].address.split(".").slice(0, 3).join(".");

  /** Established SSH connections as the host's kernel sees them: an independent count. */
  async function sshConnections(h: NetnsHost): Promise<number> {
    const r = await h.exec(["ss", "-Htn", "state", "established", "( sport = :22 or sport = :2222 )"]);
    expect(r.code).toBe(0);
    return r.stdout.split("\n").filter((l) => l.trim() !== "").length;
  }

  /** The count once connections closed by closeAllConnections() have gone (FIN processing is asynchronous). */
  async function settledConnections(h: NetnsHost, expected: number): Promise<number> {
    const deadline = Date.now() + 2_000;
    let n = await sshConnections(h);
    while (n > expected && Date.now() < deadline) {
      await sleep(50);
      n = await sshConnections(h);
    }
    return n;
  }

  it("the lab's sshd really caps a connection at 10 sessions (so the pool's bound matters)", async () => {
    const h = lab.hosts[9];
    const client = new Client();
    await new Promise<void>((resolve, reject) => {
      client.once("ready", () => resolve()).once("error", reject);
      client.connect({ host: h.address, username: "root", privateKey: lab.privateKey, hostVerifier: () => true });
    });
    const outcomes = await Promise.all(
      Array.from({ length: 14 }, () =>
        new Promise<string>((resolve) =>
          client.exec("sleep 1", (err, ch) => (err ? resolve(err.message) : ch.on("close", () => resolve("ok")).resume())),
        ),
      ),
    );
    client.end();
    expect(outcomes.filter((o) => o === "ok").length).toBe(10);
    expect(outcomes.filter((o) => o !== "ok")[0]).toMatch(/open failed/i);
  });

  it("pools: 40 concurrent runs on one connection, at most 8 channels at once, and resources share it", async () => {
    const h = lab.hosts[0];
    const before = sshStats.connectionsOpened;
    const t0 = performance.now();
    const results = await Promise.all(
      Array.from({ length: 40 }, (_, i) => run(conn(h), ["sh", "-c", `echo ${i}; date +%s%N; sleep 0.25; date +%s%N`])),
    );
    const ms = performance.now() - t0;
    expect(results.map((r) => r.code)).toEqual(Array(40).fill(0));
    expect(results.map((r) => r.stdout.split("\n")[0])).toEqual(Array.from({ length: 40 }, (_, i) => String(i)));
    // Largest number of commands running at the same instant, from the host's own clock.
    const events = results.flatMap((r) => {
      const [, start, end] = r.stdout.trim().split("\n").map(BigInt);
      return [{ t: start, d: 1 }, { t: end, d: -1 }];
    });
    events.sort((a, b) => (a.t === b.t ? a.d - b.d : a.t < b.t ? -1 : 1));
    let now = 0;
    let peak = 0;
    for (const e of events) peak = Math.max(peak, (now += e.d));
    expect(peak).toBeLessThanOrEqual(MAX_CHANNELS_PER_CONNECTION);
    expect(peak).toBeGreaterThanOrEqual(4);
    expect(sshStats.connectionsOpened - before).toBe(1);
    expect(await sshConnections(h)).toBe(1);

    // Resources through the runtime, concurrently, ride on the same connection.
    const rt = provider("Bridge");
    const made = await Promise.all(
      ["tpool0", "tpool1", "tpool2"].map(async (name) => {
        const checked = await rt.check({}, { connection: conn(h), name, stp: false });
        expect(checked.failures).toEqual([]);
        return rt.create(checked.inputs);
      }),
    );
    await Promise.all(made.map((m) => rt.delete(m.id, m.outs)));
    expect(sshStats.connectionsOpened - before).toBe(1);
    expect(await sshConnections(h)).toBe(1);
    console.log(`[transport] 40 runs of 0.25 s on one connection: ${ms.toFixed(0)} ms, peak ${peak} concurrent, 1 connection`);
  });

  it("a command runs in a subshell of the worker: exit, cd or exec in it never reach the worker shell", async () => {
    const h = lab.hosts[0];
    const c = conn(h);
    await run(c, ["true"]);
    const opened = sshStats.connectionsOpened;
    const home = (await run(c, ["pwd"])).stdout;
    expect(await run(c, ["cd", "/proc"])).toMatchObject({ code: 0 });
    expect((await run(c, ["pwd"])).stdout).toBe(home);
    expect(await run(c, ["exit", "7"])).toEqual({ stdout: "", stderr: "", code: 7 });
    expect(await run(c, ["exec", "echo", "replaced"])).toEqual({ stdout: "replaced\n", stderr: "", code: 0 });
    expect(await run(c, ["cat"], "still here\n")).toEqual({ stdout: "still here\n", stderr: "", code: 0 });
    expect(sshStats.connectionsOpened - opened).toBe(0);
  });

  it("fans out: 10 hosts x 10 concurrent commands, exactly one connection per host", async () => {
    closeAllConnections();
    const before = sshStats.connectionsOpened;
    const t0 = performance.now();
    const results = await Promise.all(
      lab.hosts.flatMap((h) => Array.from({ length: 10 }, (_, i) => run(conn(h), ["echo", `${h.name} ${i}`]).then((r) => ({ h, i, r })))),
    );
    const ms = performance.now() - t0;
    for (const { h, i, r } of results) expect(r).toEqual({ stdout: `${h.name} ${i}\n`, stderr: "", code: 0 });
    expect(sshStats.connectionsOpened - before).toBe(10);
    const perHost = await Promise.all(lab.hosts.map((h) => settledConnections(h, 1)));
    expect(perHost).toEqual(Array(10).fill(1));
    console.log(`[transport] 100 commands on 10 hosts: ${ms.toFixed(0)} ms, connections per host ${perHost.join(",")}`);
  });

  it("reconnects after sshd restarts, and reports a dropped or refused connection naming the host", async () => {
    const h = lab.hosts[5];
    const c = conn(h);
    expect((await run(c, ["echo", "one"])).stdout).toBe("one\n");

    // sshd dies (taking its sessions) and comes back between two operations.
    const before = sshStats.connectionsOpened;
    await h.killSshd();
    await h.startSshd();
    expect((await run(c, ["echo", "two"])).stdout).toBe("two\n");
    expect(sshStats.connectionsOpened - before).toBe(1);

    // sshd dies while a command runs: the command is not retried, the error names the host.
    const running = failure(run(c, ["sleep", "5"]));
    await sleep(300);
    await h.killSshd();
    const dropped = await running;
    expect(dropped).toBeInstanceOf(ConnectionError);
    expect(dropped.message).toContain(h.address);
    expect(dropped.message).toMatch(/closed before the command finished/);

    // Still down: refused after the retries, quickly, naming the host.
    let t0 = performance.now();
    const refused = await failure(run(c, ["true"]));
    const refusedMs = performance.now() - t0;
    expect(refused).toBeInstanceOf(ConnectionError);
    expect(refused.message).toMatch(new RegExp(`${h.address.replace(/\./g, "\\.")}.*ECONNREFUSED`));
    expect(refusedMs).toBeLessThan(3_000);

    // Back while a run is retrying its dial: that run succeeds.
    t0 = performance.now();
    const waiting = run(c, ["echo", "three"]);
    await sleep(100);
    await h.startSshd();
    expect((await waiting).stdout).toBe("three\n");
    console.log(`[transport] refused after retries in ${refusedMs.toFixed(0)} ms; run during restart took ${(performance.now() - t0).toFixed(0)} ms`);
  });

  it("gives up on an unreachable host after connectTimeoutMs without blocking other hosts", async () => {
    closeAllConnections(); // so the good host needs a fresh dial too
    const nobody = `${subnet()}.200`; // in the lab's own subnet; no host behind it
    const bad: Connection = { host: nobody, hostKey: lab.hosts[0].connection.hostKey, privateKey: lab.privateKey, connectTimeoutMs: 1500 };
    const t0 = performance.now();
    const badRun = failure(run(bad, ["true"])).then((e) => ({ e, ms: performance.now() - t0 }));
    const goodRun = run(conn(lab.hosts[1]), ["echo", "ok"]).then((r) => ({ r, ms: performance.now() - t0 }));
    const good = await goodRun;
    expect(good.r.stdout).toBe("ok\n");
    const { e, ms } = await badRun;
    expect(good.ms, "the good host waited for the unreachable one").toBeLessThan(ms);
    expect(e).toBeInstanceOf(ConnectionError);
    expect(e.message).toContain(nobody);
    expect(e.message).toMatch(/1500 ms \(connectTimeoutMs\)/);
    expect(ms).toBeGreaterThanOrEqual(1400);
    expect(ms).toBeLessThan(2200);

    // The same bound holds behind a bastion.
    const t1 = performance.now();
    const behind = await failure(run({ ...bad, bastion: conn(lab.hosts[0]) }, ["true"]));
    const behindMs = performance.now() - t1;
    expect(behind.message).toMatch(new RegExp(`${lab.hosts[0].address}: bastion could not connect to ${nobody}:22 within 1500 ms`));
    expect(behindMs).toBeLessThan(2500);
    console.log(`[transport] unreachable host failed after ${ms.toFixed(0)} ms (behind a bastion ${behindMs.toFixed(0)} ms); good host answered in ${good.ms.toFixed(0)} ms`);
  });

  it("does not keep a process alive: a child using the built package exits on its own", async () => {
    const b = await built;
    const dist = path.join(REPO, "dist/provider/transport/ssh.js");
    expect(distIsFresh(), `tsc did not bring ${dist} up to date: ${b.stdout}${b.stderr}`).toBe(true);
    const [h1, h2, h3] = lab.hosts;
    const byPath = (h: NetnsHost): Connection => ({ host: h.address, hostKey: h.connection.hostKey, privateKeyPath: lab.privateKeyPath });
    const conns = [byPath(h1), { ...byPath(h3), bastion: { ...byPath(h2), bastion: byPath(h1) } }];
    const code = `
      const { SshTransport } = require(${JSON.stringify(dist)});
      (async () => {
        for (const c of JSON.parse(process.env.CONNS)) process.stdout.write((await new SshTransport(c).run(["hostname", "-I"])).stdout);
        process.stdout.write("done\\n");
      })().catch((e) => { console.error(e.message); process.exit(3); });`;
    const child = spawn(process.execPath, ["-e", code], { env: { ...process.env, CONNS: JSON.stringify(conns) }, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    let doneAt = 0;
    child.stdout.on("data", (d: Buffer) => {
      out += d;
      if (out.includes("done\n") && !doneAt) doneAt = performance.now();
    });
    child.stderr.on("data", (d: Buffer) => (err += d));
    const exit = await new Promise<number | null>((resolve) => {
      const timer = setTimeout(() => {
        child.kill("SIGKILL");
        resolve(null);
      }, 15_000);
      child.on("exit", (c) => {
        clearTimeout(timer);
        resolve(c);
      });
    });
    const lingerMs = performance.now() - doneAt;
    expect(err).toBe("");
    expect(exit, "the child was still alive 15 s after starting: the pool keeps the event loop busy").toBe(0);
    expect(out.split("\n").map((l) => l.trim()).filter(Boolean)).toEqual([h1.address, h3.address, "done"]);
    expect(lingerMs).toBeLessThan(1000);
    console.log(`[transport] child exited ${lingerMs.toFixed(0)} ms after its last command (direct + two-bastion chain)`);
  });

  it("authenticates with privateKey, privateKeyPath, an encrypted key, a password and an agent", async () => {
    const h = lab.hosts[0];
    const encrypted = path.join(tmp, "encrypted_ed25519");
    fs.copyFileSync(lab.privateKeyPath, encrypted);
    fs.chmodSync(encrypted, 0o600);
    expect((await sh("ssh-keygen", ["-q", "-p", "-f", encrypted, "-P", "", "-N", PASSPHRASE])).code).toBe(0);
    expect(fs.readFileSync(encrypted, "utf8")).not.toBe(lab.privateKey);

    // A key path written as users write it for ssh: ~ is the home directory.
    const homeKey = path.join(os.homedir(), `.pulumi-netdev-test-key-${process.pid}`);
    fs.copyFileSync(lab.privateKeyPath, homeKey);
    fs.chmodSync(homeKey, 0o600);

    const agentSock = path.join(tmp, "agent.sock");
    const agent = spawn("ssh-agent", ["-D", "-a", agentSock], { stdio: "ignore" });
    try {
      for (let i = 0; i < 100 && !fs.existsSync(agentSock); i++) await sleep(20);
      expect((await sh("ssh-add", ["-q", lab.privateKeyPath], { env: { ...process.env, SSH_AUTH_SOCK: agentSock } })).code).toBe(0);

      const pinned = { host: h.address, hostKey: h.connection.hostKey };
      const cases: Array<[string, Connection, string]> = [
        ["privateKey", { ...pinned, privateKey: lab.privateKey }, "root"],
        ["privateKeyPath", { ...pinned, privateKeyPath: lab.privateKeyPath }, "root"],
        ["privateKeyPath under ~/", { ...pinned, privateKeyPath: `~/${path.basename(homeKey)}` }, "root"],
        ["privateKey + passphrase", { ...pinned, privateKey: fs.readFileSync(encrypted, "utf8"), passphrase: PASSPHRASE }, "root"],
        ["privateKeyPath + passphrase", { ...pinned, privateKeyPath: encrypted, passphrase: PASSPHRASE }, "root"],
        ["password", { ...pinned, user: users.pw, password: PW_PASSWORD }, users.pw],
        ["agent", { ...pinned, agent: agentSock }, "root"],
      ];
      closeAllConnections();
      for (const [what, c, user] of cases) {
        const before = sshStats.connectionsOpened;
        const r = await run(c, ["id", "-un"]);
        expect(r.stdout, what).toBe(`${user}\n`);
        expect(sshStats.connectionsOpened - before, `${what} dialled its own connection`).toBe(1);
      }

      const wrong = secret("wrong-password");
      const e = await failure(run({ ...pinned, user: users.pw, password: wrong }, ["true"]));
      expect(e).toBeInstanceOf(ConnectionError);
      expect(e.message).toBe(`${h.address}: authentication as ${users.pw} failed (tried the password)`);
      expect(errorText(e)).not.toContain(wrong);
      const noKeyInAgent = await failure(run({ ...pinned, user: users.none, agent: path.join(tmp, "no-such.sock") }, ["true"]));
      expect(noKeyInAgent.message).toMatch(/ssh-agent socket .*no-such\.sock \(connection\.agent\) does not exist/);
    } finally {
      fs.rmSync(homeKey, { force: true });
      agent.kill();
    }
  });

  it("reaches hosts through a bastion and a chain of two, verifying every hop's host key", async () => {
    const [h1, h2, h3] = lab.hosts;
    const clientAddress = async (c: Connection) => (await run(c, ["sh", "-c", "echo $SSH_CONNECTION"])).stdout.split(" ")[0];
    closeAllConnections();
    const before = sshStats.connectionsOpened;
    expect(await clientAddress({ ...conn(h2), bastion: conn(h1) })).toBe(h1.address);
    const chain: Connection = { ...conn(h3), bastion: { ...conn(h2), bastion: conn(h1) } };
    expect(await clientAddress(chain)).toBe(h2.address);
    // h1 as a bastion and h1 used directly (same settings) share one connection.
    expect(await clientAddress(conn(h1))).toBe(`${subnet()}.254`);
    expect(sshStats.connectionsOpened - before).toBe(3); // h1, h2 via h1 (also the chain's middle hop), h3
    expect(await sshConnections(h1)).toBe(1);

    const marker = path.join(tmp, "bastion-marker");
    const refusals: Array<[string, Connection, NetnsHost]> = [
      ["wrong pin on the bastion", { ...conn(h2), bastion: conn(h1, { hostKey: h3.connection.hostKey }) }, h1],
      ["wrong pin on the chain's middle hop", { ...conn(h3), bastion: { ...conn(h2, { hostKey: h1.connection.hostKey }), bastion: conn(h1) } }, h2],
      ["wrong pin on the target behind two good hops", { ...chain, hostKey: h1.connection.hostKey }, h3],
      ["unknown bastion key", { ...conn(h2), bastion: { host: h1.address, privateKey: lab.privateKey, knownHostsPath: path.join(tmp, "none") } }, h1],
    ];
    for (const [what, c, refused] of refusals) {
      const e = await failure(run(c, ["touch", marker]));
      expect(e, what).toBeInstanceOf(ConnectionError);
      expect(e.message, what).toMatch(new RegExp(`^${refused.address}: (host key .* does not match the pinned|unknown host key ${refused.connection.hostKey.replace(/[+/]/g, "\\$&")})`));
      expect(fs.existsSync(marker), what).toBe(false);
    }
  });

  it("runs through sudo: passwordless, with a password fed on stdin, and refuses clearly", async () => {
    const h = lab.hosts[3];
    const asUser = (user: string, sudo?: Connection["sudo"]) => conn(h, { user, sudo });

    // Without sudo the user cannot change the kernel; sudo: true can (NOPASSWD rule).
    const plain = await run(asUser(users.nopw), ["ip", "link", "add", "tsudo1", "type", "bridge"]);
    expect(plain.code).not.toBe(0);
    expect(plain.stderr).toMatch(/Operation not permitted/);
    const nopw = asUser(users.nopw, true);
    expect((await run(nopw, ["ip", "link", "add", "tsudo1", "type", "bridge"])).code).toBe(0);
    expect((await h.exec(["ip", "link", "show", "tsudo1"])).code).toBe(0);
    expect((await run(nopw, ["ip", "link", "del", "tsudo1"])).code).toBe(0);

    // sudo: {password}, twice on the same connection, with the command's own stdin after the password line.
    const pw = asUser(users.pw, { password: PW_PASSWORD });
    for (const round of [1, 2]) {
      expect((await run(pw, ["ip", "link", "add", "tsudo2", "type", "bridge"])).code, `round ${round}`).toBe(0);
      const batch = await run(pw, ["ip", "-batch", "-"], "link set tsudo2 up\nlink del tsudo2\n");
      expect(batch, `round ${round}`).toMatchObject({ code: 0, stderr: "" });
      expect((await h.exec(["ip", "link", "show", "tsudo2"])).code).not.toBe(0);
    }
    // Every ancestor of the command (sudo, the login shell that got the command string, sshd)
    // as the kernel shows them: argv and environment hold no password.
    const tree = await run(pw, ["sh", "-c", `p=$$; while [ "$p" -gt 1 ]; do echo "== $p"; tr '\\0' ' ' < /proc/$p/cmdline; echo; tr '\\0' '\\n' < /proc/$p/environ; p=$(sed 's/.*) . \\([0-9]*\\) .*/\\1/' /proc/$p/stat); done`]);
    expect(tree.code).toBe(0);
    // sudo was started by sh (not the login shell), with a random prompt the password waited for.
    expect(tree.stdout).toMatch(/^sudo -k -S -p \[netdev-sudo-[0-9a-f]{16}\] -- sh -c /m);
    expect(tree.stdout).toMatch(/^sh -c sudo -k -S -p '\[netdev-sudo-[0-9a-f]{16}\]' -- sh -c /m);
    expect(tree.stdout).not.toContain(PW_PASSWORD);

    // Refusals: a clear error naming host and reason; the password is never echoed.
    const refusals: Array<[Connection, string[], RegExp]> = [
      // sudo -v (the password check) words it "may not run sudo"; a command, "is not in the sudoers file".
      [asUser(users.none, { password: NONE_PASSWORD }), ["ip", "link"], /is not in the sudoers file|Sorry, user .* may not run sudo on /],
      [asUser(users.pw, { password: PW_PASSWORD }), ["cat", "/etc/hostname"], /Sorry, user .* is not allowed to execute '.*cat \/etc\/hostname'/],
      [asUser(users.pw, { password: NOPW_PASSWORD }), ["ip", "link"], /incorrect password attempt/],
      [asUser(users.pw, true), ["ip", "link"], /a password is required/],
    ];
    for (const [c, argv, reason] of refusals) {
      const stdin = argv.includes("-batch") ? "link show lo\n" : undefined;
      const e = await failure(run(c, argv, stdin));
      expect(e).toBeInstanceOf(NetdevError);
      expect(e.message).toMatch(new RegExp(`^${h.address}: sudo `));
      expect(e.message).toMatch(reason);
      for (const s of [PW_PASSWORD, NOPW_PASSWORD, NONE_PASSWORD]) expect(errorText(e)).not.toContain(s);
    }
  });

  it("sudo: { password } on a NOPASSWD host never hands the password to the command", async () => {
    const h = lab.hosts[3];
    const c = conn(h, { user: users.nopw, sudo: { password: NOPW_PASSWORD } });
    // cat echoes exactly its input: a password line sent ahead of it would show.
    const echoed = await run(c, ["cat"], "first line\nsecond line\n");
    expect(echoed).toEqual({ stdout: "first line\nsecond line\n", stderr: "", code: 0 });
    // An ip -batch write: the password as a first line would be `Command "<pw>" is unknown` and stop the batch.
    const batch = await run(c, ["ip", "-batch", "-"], "link add tsudo3 type bridge\nlink set tsudo3 up\n");
    expect(batch).toMatchObject({ code: 0, stderr: "" });
    const shown = await h.exec(["ip", "-j", "link", "show", "tsudo3"]);
    expect(JSON.parse(shown.stdout)[0].flags).toContain("UP");
    expect((await run(c, ["ip", "link", "del", "tsudo3"])).code).toBe(0);
    // Every process of the host, argv and environment: no password anywhere.
    const procs = await h.exec(["sh", "-c", "cat /proc/[0-9]*/cmdline /proc/[0-9]*/environ 2>/dev/null | tr '\\0' '\\n'"]);
    expect(procs.stdout).not.toContain(NOPW_PASSWORD);
  });

  it("verifies host keys: pins, known_hosts (plain, hashed, [host]:port), unknown keys, and the insecure opt-out", async () => {
    const h = lab.hosts[4];
    const other = lab.hosts[0];
    const keyOf = (x: NetnsHost) => fs.readFileSync(lab.knownHostsPath, "utf8").split("\n").find((l) => l.startsWith(`${x.address} `))!.split(" ").slice(1, 3).join(" ");
    const knownHosts = (name: string, lines: string[]) => {
      const file = path.join(tmp, name);
      fs.writeFileSync(file, lines.join("\n") + "\n");
      return file;
    };
    const hashedCopy = async (file: string) => {
      expect((await sh("ssh-keygen", ["-H", "-f", file])).code).toBe(0);
      const text = fs.readFileSync(file, "utf8");
      expect(text).toMatch(/^\|1\|/);
      expect(text).not.toContain(h.address);
      return file;
    };
    const base = { host: h.address, privateKey: lab.privateKey };
    const plain22 = knownHosts("plain22", [`# comment`, `${other.address} ${keyOf(other)}`, `${h.address} ${keyOf(h)}`]);
    const plain2222 = knownHosts("plain2222", [`${h.address} ${keyOf(other)}`, `[${h.address}]:2222 ${keyOf(h)}`]);
    const accepted: Array<[string, Connection]> = [
      ["pinned", { ...base, hostKey: h.connection.hostKey }],
      ["pinned on port 2222", { ...base, port: 2222, hostKey: h.connection.hostKey }],
      ["known_hosts, plain", { ...base, knownHostsPath: plain22 }],
      ["known_hosts, hashed", { ...base, knownHostsPath: await hashedCopy(knownHosts("hashed22", [`${h.address} ${keyOf(h)}`])) }],
      ["known_hosts [host]:2222, plain", { ...base, port: 2222, knownHostsPath: plain2222 }],
      ["known_hosts [host]:2222, hashed", { ...base, port: 2222, knownHostsPath: await hashedCopy(knownHosts("hashed2222", [`[${h.address}]:2222 ${keyOf(h)}`])) }],
      ["insecureSkipHostKeyCheck", { ...base, insecureSkipHostKeyCheck: true, knownHostsPath: path.join(tmp, "none") }],
    ];
    for (const [what, c] of accepted) expect((await run(c, ["echo", "ok"])).stdout, what).toBe("ok\n");

    const fp = h.connection.hostKey;
    const marker = path.join(tmp, "hostkey-marker");
    const refused: Array<[string, Connection, string]> = [
      ["pin mismatch", { ...base, hostKey: other.connection.hostKey }, `${h.address}: host key ${fp} (ssh-ed25519) does not match the pinned connection.hostKey ${other.connection.hostKey}`],
      ["known_hosts lists another key", { ...base, knownHostsPath: knownHosts("wrong22", [`${h.address} ${keyOf(other)}`]) }, `${h.address}: host key ${fp} (ssh-ed25519) differs from the key listed in`],
      ["port-22 entry does not vouch for port 2222", { ...base, port: 2222, knownHostsPath: plain22 }, `${h.address}:2222: unknown host key ${fp} (ssh-ed25519)`],
      ["unknown", { ...base, knownHostsPath: path.join(tmp, "none") }, `${h.address}: unknown host key ${fp} (ssh-ed25519); it is not in`],
      ["revoked", { ...base, knownHostsPath: knownHosts("revoked", [`@revoked ${h.address} ${keyOf(h)}`, `${h.address} ${keyOf(h)}`]) }, `${h.address}: host key ${fp} is marked @revoked`],
    ];
    for (const [what, c, message] of refused) {
      const e = await failure(run(c, ["touch", marker]));
      expect(e, what).toBeInstanceOf(ConnectionError);
      expect(e.message.startsWith(message), `${what}: ${e.message}`).toBe(true);
      expect(fs.existsSync(marker), what).toBe(false);
    }
    const unknown = await failure(run({ ...base, knownHostsPath: path.join(tmp, "none") }, ["true"]));
    expect(unknown.message).toContain(`set connection.hostKey to "${fp}"`);
  });

  it("never lets a secret reach an error, its stack or a log", async () => {
    const h = lab.hosts[6];
    const pinned = { host: h.address, hostKey: h.connection.hostKey };
    const keySecret = secret("key-material");
    const armored = (body: Buffer) => `-----BEGIN OPENSSH PRIVATE KEY-----\n${body.toString("base64")}\n-----END OPENSSH PRIVATE KEY-----\n`;
    const lenPrefixed = (s: string) => Buffer.concat([Buffer.from([0, 0, 0, s.length]), Buffer.from(s)]);
    // ssh2 itself would quote this "cipher name" in its parse error.
    const keyQuotingSecret = armored(Buffer.concat([Buffer.from("openssh-key-v1\0"), lenPrefixed(keySecret)]));
    const keyFile = path.join(tmp, "not-a-key");
    fs.writeFileSync(keyFile, keySecret + "\n", { mode: 0o600 });
    const encrypted = path.join(tmp, "encrypted-for-secrets");
    fs.copyFileSync(lab.privateKeyPath, encrypted);
    expect((await sh("ssh-keygen", ["-q", "-p", "-f", encrypted, "-P", "", "-N", PASSPHRASE])).code).toBe(0);
    const wrongPassphrase = secret("wrong-passphrase");
    const wrongPassword = secret("wrong-password");
    const wrongSudo = secret("wrong-sudo");

    const cases: Array<[string, Connection, string[], string, RegExp]> = [
      ["key text that is no key", { ...pinned, privateKey: keySecret }, ["true"], keySecret, /connection\.privateKey is not a private key/],
      ["malformed key quoting the secret", { ...pinned, privateKey: keyQuotingSecret }, ["true"], keySecret, /connection\.privateKey is not a private key/],
      ["key file that is no key", { ...pinned, privateKeyPath: keyFile }, ["true"], keySecret, /connection\.privateKeyPath .* is not a private key/],
      ["wrong passphrase", { ...pinned, privateKeyPath: encrypted, passphrase: wrongPassphrase }, ["true"], wrongPassphrase, /connection\.passphrase does not decrypt/],
      ["missing passphrase", { ...pinned, privateKeyPath: encrypted }, ["true"], PASSPHRASE, /is encrypted and connection\.passphrase is not set/],
      ["wrong password", { ...pinned, user: users.pw, password: wrongPassword }, ["true"], wrongPassword, /authentication as .* failed/],
      ["wrong password on the bastion", { ...conn(h), bastion: { ...pinned, user: users.pw, password: wrongPassword } }, ["true"], wrongPassword, /authentication as .* failed/],
      ["wrong sudo password", conn(h, { user: users.pw, sudo: { password: wrongSudo } }), ["ip", "link"], wrongSudo, /incorrect password/],
    ];

    const logged: string[] = [];
    const spies = [
      ...(["log", "info", "warn", "error", "debug", "trace"] as const).map((m) => vi.spyOn(console, m).mockImplementation((...args) => void logged.push(args.map(String).join(" ")))),
      vi.spyOn(process.stdout, "write").mockImplementation((chunk: any) => (logged.push(String(chunk)), true)),
      vi.spyOn(process.stderr, "write").mockImplementation((chunk: any) => (logged.push(String(chunk)), true)),
    ];
    const seen: Array<[string, Error]> = [];
    try {
      for (const [what, c, argv, , ] of cases) {
        const stdin = argv.includes("-batch") ? "link show lo\n" : undefined;
        seen.push([what, await failure(run(c, argv, stdin))]);
      }
    } finally {
      for (const s of spies) s.mockRestore();
    }
    cases.forEach(([what, , , value, reason], i) => {
      const e = seen[i][1];
      expect(e.message, what).toMatch(reason);
      expect(e.message, what).toContain(h.address);
      expect(errorText(e), what).not.toContain(value);
    });
    expect(logged.join("\n")).not.toMatch(new RegExp([keySecret, PASSPHRASE, wrongPassphrase, wrongPassword, wrongSudo, NOPW_PASSWORD].join("|")));
  });
});
