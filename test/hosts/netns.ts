// Network-namespace SSH test hosts (DESIGN.md §5).
//
// A "lab" is N network namespaces, each running its own sshd, joined by a bridge
// in the root namespace:
//
//   root ns:  <id>-ul (bridge, 10.231.S.254/24) ── <id>h1 ── eth0 in <id>-h1 (10.231.S.1/24, sshd)
//                                               ── <id>h2 ── eth0 in <id>-h2 (10.231.S.2/24, sshd)
//
// The bridge has an address only so that tests running in the root namespace can
// reach every host's sshd; the hosts have no default route, so nothing they send
// can leave the bridge.
//
// Everything a lab creates carries its id as a prefix, and its state lives in
// <tmpdir>/pulumi-netdev-netns-<id>/ with an owner.json naming the owning process,
// so a crashed run can be recognised and swept by cleanupStaleLabs() without
// touching labs that other (live) processes are still using.
//
// Only node built-ins; every command is an argv array, never a shell string.

import { execFile, execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import { randomBytes } from "node:crypto";

export interface NetnsHost {
  /** e.g. "nd3a1f-h1"; also the namespace name. */
  name: string;
  netns: string;
  /** Underlay IPv4 of the host: 10.231.<subnet>.<index>. */
  address: string;
  /** What the project's `connection` input needs to reach this host from the root namespace. */
  connection: { host: string; port: 22; user: "root"; privateKeyPath: string; hostKey: string };
  /** Runs `ip netns exec <ns> ...argv` locally (not over SSH). Never rejects on a non-zero exit. */
  exec(argv: string[]): Promise<{ stdout: string; stderr: string; code: number }>;
  /** Pid of the listening sshd (0 while it is killed). */
  sshdPid: number;
  /**
   * Kills this host's sshd. By default also kills its per-connection session
   * processes, so open connections drop as they would if the host's sshd died;
   * pass keepSessions to kill only the listener (new connections are refused,
   * established ones keep working, like `systemctl stop ssh`).
   */
  killSshd(opts?: { keepSessions?: boolean }): Promise<void>;
  /** Starts sshd again with the same config and host key; resolves once it accepts TCP. */
  startSshd(): Promise<void>;
}

/** A non-root login user a lab creates on this machine (the hosts share its /etc). */
export interface LabUserSpec {
  /** Appended to the lab id: the login name is `<id>-<suffix>`. Lower-case letters and digits. */
  suffix: string;
  /** Login password (also what `sudo` asks for). Password logins need `PasswordAuthentication yes` in `sshdConfig`. */
  password: string;
  /** Right-hand side of a sudoers rule for this user, e.g. "ALL=(root) NOPASSWD: /usr/sbin/ip"; none by default. */
  sudo?: string;
}

export interface LabUser {
  name: string;
  password: string;
}

export interface NetnsLabOptions {
  hosts: number;
  id?: string;
  subnet?: number;
  /**
   * Non-root users, created with useradd and removed by destroy() (and by
   * cleanupStaleLabs after a crash). They log in with the lab's key or their password.
   */
  users?: LabUserSpec[];
  /**
   * Extra sshd_config lines for every host, placed before the lab's defaults
   * because sshd keeps the first value it reads for a keyword (so
   * "PasswordAuthentication yes" overrides the default "no"; "Port 2222" adds a
   * second port). No Match blocks.
   */
  sshdConfig?: string[];
}

export interface NetnsLab {
  id: string;
  hosts: NetnsHost[];
  /** The users asked for in NetnsLabOptions.users, in the same order. */
  users: LabUser[];
  underlayBridge: string;
  knownHostsPath: string;
  privateKeyPath: string;
  privateKey: string;
  addHost(): Promise<NetnsHost>;
  removeHost(h: NetnsHost): Promise<void>;
  /** Idempotent. Kills every process in the lab's namespaces, deletes them, the veths, the bridge and the temp dir. */
  destroy(): Promise<void>;
}

const SSHD = "/usr/sbin/sshd";
const STATE_PREFIX = "pulumi-netdev-netns-";
const DEFAULT_ID_PREFIX = "nd";
const SSHD_READY_TIMEOUT_MS = 10_000;

// ---------------------------------------------------------------------------
// prerequisites

export function netnsPrerequisites(): { ok: boolean; missing: string[] } {
  const missing: string[] = [];
  if (typeof process.getuid !== "function" || process.getuid() !== 0) missing.push("root (uid 0)");
  if (!isExecutable(SSHD)) missing.push(`sshd (${SSHD}, package openssh-server)`);
  if (!onPath("ip")) missing.push("ip (package iproute2)");
  if (!onPath("ssh-keygen")) missing.push("ssh-keygen (package openssh-client)");
  return { ok: missing.length === 0, missing };
}

function isExecutable(p: string): boolean {
  try {
    fs.accessSync(p, fs.constants.X_OK);
    return fs.statSync(p).isFile();
  } catch {
    return false;
  }
}

function onPath(cmd: string): boolean {
  // sbin is often missing from a non-root PATH, but ip lives there.
  const dirs = (process.env.PATH ?? "").split(":").concat(["/usr/sbin", "/sbin", "/usr/bin", "/bin"]);
  return dirs.some((d) => d !== "" && isExecutable(path.join(d, cmd)));
}

// ---------------------------------------------------------------------------
// running commands

interface RunResult {
  stdout: string;
  stderr: string;
  code: number;
}

function run(cmd: string, argv: string[]): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    execFile(cmd, argv, { encoding: "utf8", maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      // A string code means the program could not be run at all (ENOENT, ...);
      // a number is its exit status; null means it was killed by a signal.
      if (err && typeof err.code === "string") return reject(err);
      const code = err ? (typeof err.code === "number" ? err.code : 128) : 0;
      resolve({ stdout, stderr, code });
    });
  });
}

async function must(cmd: string, argv: string[]): Promise<string> {
  const r = await run(cmd, argv);
  if (r.code !== 0) throw new Error(`${[cmd, ...argv].join(" ")} exited ${r.code}: ${r.stderr.trim()}`);
  return r.stdout;
}

/** Best-effort synchronous command for teardown: failures (already gone) are ignored. */
function trySync(cmd: string, argv: string[]): void {
  try {
    execFileSync(cmd, argv, { stdio: "ignore" });
  } catch {
    /* already gone */
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------
// processes, found through /proc so teardown needs no external tools

/**
 * Running, as opposed to gone or a zombie. Zombies count as dead: they have
 * already closed their sockets and left their namespace, and a daemonized sshd's
 * zombie is reaped by pid 1, which in some containers takes seconds.
 */
function pidAlive(pid: number): boolean {
  const state = pid > 0 ? procStatFields(pid)?.[0] : undefined;
  return state !== undefined && state !== "Z" && state !== "X";
}

/** /proc/<pid>/stat from field 3 (state) on; comm (field 2) may contain spaces. */
function procStatFields(pid: number): string[] | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  } catch {
    return undefined;
  }
}

/** Field 22 of /proc/<pid>/stat: lets us tell a live owner from a recycled pid. */
function processStartTime(pid: number): string | undefined {
  return procStatFields(pid)?.[19];
}

function allPids(): number[] {
  return fs
    .readdirSync("/proc")
    .filter((d) => /^\d+$/.test(d))
    .map(Number);
}

/** Pids whose network namespace is the named one (what `ip netns pids` does). */
function pidsInNetns(ns: string): number[] {
  let ino: number;
  try {
    ino = fs.statSync(`/run/netns/${ns}`).ino;
  } catch {
    return [];
  }
  return allPids().filter((pid) => {
    try {
      return fs.readlinkSync(`/proc/${pid}/ns/net`) === `net:[${ino}]`;
    } catch {
      return false;
    }
  });
}

function comm(pid: number): string {
  try {
    return fs.readFileSync(`/proc/${pid}/comm`, "utf8").trim();
  } catch {
    return "";
  }
}

function cmdline(pid: number): string[] {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
  } catch {
    return [];
  }
}

function killPids(pids: number[]): void {
  for (const pid of pids) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      /* already exited */
    }
  }
}

/** For teardown, which must be synchronous (see teardownSync). Bounded: a stuck process must not hang exit. */
function killAndWaitSync(pids: number[], timeoutMs = 3_000): void {
  killPids(pids);
  const deadline = Date.now() + timeoutMs;
  const tick = new Int32Array(new SharedArrayBuffer(4));
  while (pids.some(pidAlive) && Date.now() < deadline) Atomics.wait(tick, 0, 0, 10); // sleep 10 ms
}

async function waitGone(pids: number[], timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (pids.some(pidAlive) && Date.now() < deadline) await sleep(20);
}

// ---------------------------------------------------------------------------
// lab bookkeeping shared with the exit handlers

interface HostState {
  index: number;
  ns: string;
  rootVeth: string;
  dir: string;
  host: NetnsHost;
}

interface LabState {
  id: string;
  dir: string;
  bridge: string;
  subnet: number;
  hosts: Map<number, HostState>;
  nextIndex: number;
  destroyed: boolean;
  users: string[];
  sshdConfig: string[];
}

const liveLabs = new Set<LabState>();
let handlersInstalled = false;

/**
 * Synchronous on purpose: the same code runs from process 'exit' and signal
 * handlers, where nothing asynchronous gets to run. A lab is a handful of
 * short `ip` commands, so blocking for them is fine.
 */
function teardownSync(lab: LabState): void {
  if (lab.destroyed) return;
  lab.destroyed = true;
  liveLabs.delete(lab);
  for (const h of lab.hosts.values()) teardownHostSync(h);
  lab.hosts.clear();
  // After the hosts: userdel refuses a user that still has (session) processes.
  for (const user of lab.users) trySync("userdel", [user]);
  fs.rmSync(sudoersFile(lab.id), { force: true });
  trySync("ip", ["link", "del", lab.bridge]);
  fs.rmSync(lab.dir, { recursive: true, force: true });
}

function teardownHostSync(h: HostState): void {
  // Kill everything in the namespace (sshd, its sessions, anything a test left
  // running): a namespace with processes in it outlives `ip netns del`.
  killAndWaitSync(pidsInNetns(h.ns));
  // Deleting the root end removes both ends now; relying on namespace teardown
  // would leave the root end around until the kernel's async netns cleanup runs.
  trySync("ip", ["link", "del", h.rootVeth]);
  trySync("ip", ["netns", "del", h.ns]);
  fs.rmSync(h.dir, { recursive: true, force: true });
}

function installExitHandlers(): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  const cleanupAll = () => {
    for (const lab of [...liveLabs]) teardownSync(lab);
  };
  process.on("exit", cleanupAll);
  for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    const onSignal = () => {
      cleanupAll();
      // Having a listener disables Node's default "exit on signal". If nobody
      // else handles it, restore the default and re-raise so the exit status
      // still says "killed by signal".
      if (process.listenerCount(sig) === 1) {
        process.removeListener(sig, onSignal);
        process.kill(process.pid, sig);
      }
    };
    process.on(sig, onSignal);
  }
}

// ---------------------------------------------------------------------------
// names and addresses

function newId(): string {
  return DEFAULT_ID_PREFIX + randomBytes(2).toString("hex");
}

// Interface names are limited to 15 bytes (IFNAMSIZ - 1). The longest we build is
// "<id>h<index>" with index up to 253, so ids are limited to 11 characters.
const ID_RE = /^[a-z][a-z0-9]{0,10}$/;

function sudoersFile(id: string): string {
  // No dot in the name: sudo skips files in sudoers.d whose name contains one.
  return `/etc/sudoers.d/pulumi-netdev-${id}`;
}

/** useradd's comment field; cleanupStaleLabs finds a crashed lab's users by it. */
function userComment(id: string): string {
  return `pulumi-netdev-lab ${id}`;
}

function stateDir(id: string): string {
  return path.join(os.tmpdir(), STATE_PREFIX + id);
}

function hostNames(id: string, index: number) {
  return { ns: `${id}-h${index}`, rootVeth: `${id}h${index}` };
}

/** Third octets of 10.231.x.y addresses currently configured in the root namespace. */
async function subnetsInUse(): Promise<Map<number, string[]>> {
  const links = JSON.parse(await must("ip", ["-j", "-4", "addr", "show"])) as Array<{
    ifname: string;
    addr_info?: Array<{ local?: string }>;
  }>;
  const used = new Map<number, string[]>();
  for (const l of links) {
    for (const a of l.addr_info ?? []) {
      const m = /^10\.231\.(\d+)\./.exec(a.local ?? "");
      if (m) used.set(Number(m[1]), [...(used.get(Number(m[1])) ?? []), l.ifname]);
    }
  }
  return used;
}

/**
 * Gives the bridge 10.231.S.254/24 for a /24 nobody else uses. Check, add, then
 * re-check: of two labs racing for the same S, the later re-check sees the other's
 * address (both may back off and retry), so two live labs never share a subnet.
 */
async function claimSubnet(bridge: string, wanted?: number): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const s = wanted ?? 1 + Math.floor(Math.random() * 250);
    const before = await subnetsInUse();
    if (before.has(s)) {
      if (wanted !== undefined) throw new Error(`subnet 10.231.${s}.0/24 is already used by ${before.get(s)!.join(", ")}`);
      continue;
    }
    await must("ip", ["addr", "add", `10.231.${s}.254/24`, "dev", bridge]);
    const others = ((await subnetsInUse()).get(s) ?? []).filter((ifname) => ifname !== bridge);
    if (others.length === 0) return s;
    await run("ip", ["addr", "del", `10.231.${s}.254/24`, "dev", bridge]);
    if (wanted !== undefined) throw new Error(`subnet 10.231.${s}.0/24 was claimed concurrently by ${others.join(", ")}`);
    await sleep(Math.random() * 50);
  }
  throw new Error("could not find a free 10.231.x.0/24 subnet");
}

// ---------------------------------------------------------------------------
// keys and sshd

async function keygen(file: string, comment: string): Promise<void> {
  // ed25519 private keys are always written in OpenSSH format, mode 0600.
  await must("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", file]);
}

async function fingerprint(pubFile: string): Promise<string> {
  // "256 SHA256:abc... comment (ED25519)"
  const out = await must("ssh-keygen", ["-l", "-E", "sha256", "-f", pubFile]);
  const fp = out.trim().split(/\s+/)[1];
  if (!fp?.startsWith("SHA256:")) throw new Error(`unexpected ssh-keygen -l output: ${out}`);
  return fp;
}

function sshdConfig(dir: string, authorizedKeys: string, extra: string[]): string {
  return [
    ...extra,
    "ListenAddress 0.0.0.0",
    "Port 22",
    `HostKey ${path.join(dir, "host_ed25519")}`,
    `PidFile ${path.join(dir, "sshd.pid")}`,
    `AuthorizedKeysFile ${authorizedKeys}`,
    "PermitRootLogin prohibit-password",
    "PasswordAuthentication no",
    "KbdInteractiveAuthentication no",
    // No PAM: the test hosts must not depend on (or write to) the machine's PAM stack.
    // Note sshd then refuses accounts whose shadow password starts with "!".
    "UsePAM no",
    // The key files live in a temp dir whose ownership/modes sshd would otherwise audit.
    "StrictModes no",
    // Generous so parallel tests are not dropped while connecting ...
    "MaxStartups 100:30:200",
    // ... but sshd's real default channel cap, so the project's pool is tested against it.
    "MaxSessions 10",
    "PrintMotd no",
    "PrintLastLog no",
    // bash sources ~/.bashrc when it sees it was started by sshd (SSH_CLIENT set,
    // SHLVL below 2), so every command would run the machine's root dotfiles (here:
    // a `pyenv init` that serialises concurrent shells on a lock for up to 60 s
    // and writes to stderr). SHLVL=1 makes bash skip it. A test that wants rc
    // files read passes sshdConfig ["SetEnv SHLVL=0"] (sshd keeps the first SetEnv).
    "SetEnv SHLVL=1",
    "LogLevel ERROR",
    "",
  ].join("\n");
}

async function waitForTcp(address: string, port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const sock = net.connect({ host: address, port, timeout: 1_000 });
      const done = (v: boolean) => {
        sock.destroy();
        resolve(v);
      };
      sock.once("connect", () => done(true));
      sock.once("error", () => done(false));
      sock.once("timeout", () => done(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`sshd at ${address}:${port} did not accept connections within ${timeoutMs} ms`);
    await sleep(50);
  }
}

async function readPidFile(file: string, timeoutMs: number): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const pid = Number(fs.readFileSync(file, "utf8").trim());
      if (pid > 0) return pid;
    } catch {
      /* not written yet */
    }
    if (Date.now() > deadline) throw new Error(`sshd did not write ${file} within ${timeoutMs} ms`);
    await sleep(20);
  }
}

function logTail(file: string): string {
  try {
    return fs.readFileSync(file, "utf8").trim().split("\n").slice(-10).join("\n");
  } catch {
    return "";
  }
}

// ---------------------------------------------------------------------------
// the lab

export async function startNetnsLab(opts: NetnsLabOptions): Promise<NetnsLab> {
  const pre = netnsPrerequisites();
  if (!pre.ok) throw new Error(`network-namespace test hosts need: ${pre.missing.join(", ")}`);
  if (!Number.isInteger(opts.hosts) || opts.hosts < 0 || opts.hosts > 253) throw new Error(`hosts must be 0..253, got ${opts.hosts}`);
  if (opts.subnet !== undefined && (!Number.isInteger(opts.subnet) || opts.subnet < 0 || opts.subnet > 255)) {
    throw new Error(`subnet must be 0..255, got ${opts.subnet}`);
  }
  for (const u of opts.users ?? []) {
    if (!/^[a-z][a-z0-9]{0,19}$/.test(u.suffix)) throw new Error(`user suffix ${JSON.stringify(u.suffix)} must match /^[a-z][a-z0-9]{0,19}$/`);
    if (/[\n:]/.test(u.password) || (u.sudo !== undefined && /\n/.test(u.sudo))) throw new Error(`user ${u.suffix}: password or sudo rule contains a newline or colon`);
  }
  for (const line of opts.sshdConfig ?? []) {
    if (/\n/.test(line) || /^\s*match\b/i.test(line)) throw new Error(`sshdConfig line ${JSON.stringify(line)}: one line each, no Match blocks`);
  }

  // Claim the id atomically: mkdir fails if another lab (any process) has it.
  let id = opts.id ?? newId();
  if (!ID_RE.test(id)) throw new Error(`lab id ${JSON.stringify(id)} must match ${ID_RE} (interface names are at most 15 chars)`);
  for (;;) {
    try {
      fs.mkdirSync(stateDir(id), { mode: 0o700 });
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST" || opts.id !== undefined) throw e;
      id = newId();
    }
  }
  const lab: LabState = {
    id,
    dir: stateDir(id),
    bridge: `${id}-ul`,
    subnet: 0,
    hosts: new Map(),
    nextIndex: 1,
    destroyed: false,
    users: [],
    sshdConfig: opts.sshdConfig ?? [],
  };
  // Written before anything else exists, so every kernel object with this id has an owner record.
  fs.writeFileSync(
    path.join(lab.dir, "owner.json"),
    JSON.stringify({ pid: process.pid, startTime: processStartTime(process.pid), created: new Date().toISOString() }),
  );
  installExitHandlers();
  liveLabs.add(lab);

  try {
    const privateKeyPath = path.join(lab.dir, "client_ed25519");
    await keygen(privateKeyPath, `pulumi-netdev-test-${id}`);
    fs.copyFileSync(`${privateKeyPath}.pub`, path.join(lab.dir, "authorized_keys"));
    const knownHostsPath = path.join(lab.dir, "known_hosts");
    fs.writeFileSync(knownHostsPath, "");
    // sshd's privilege-separation directory; Debian's ssh.service normally creates it.
    fs.mkdirSync("/run/sshd", { recursive: true, mode: 0o755 });
    const users = await createUsers(lab, opts.users ?? []);

    await must("ip", ["link", "add", lab.bridge, "type", "bridge"]);
    await must("ip", ["link", "set", lab.bridge, "up"]);
    lab.subnet = await claimSubnet(lab.bridge, opts.subnet);

    const hosts: NetnsHost[] = [];
    const writeKnownHosts = () => {
      // Only finished hosts (those in `hosts`); others may still be generating keys.
      const lines = hosts.map((h) => `${h.address} ${fs.readFileSync(path.join(lab.dir, h.name, "host_ed25519.pub"), "utf8").trim()}\n`);
      fs.writeFileSync(knownHostsPath, lines.join(""));
    };

    const addHost = async (): Promise<NetnsHost> => {
      if (lab.destroyed) throw new Error(`lab ${id} is destroyed`);
      const index = lab.nextIndex++; // never reused: a reused address with a new host key would confuse known_hosts
      if (index > 253) throw new Error("a lab has at most 253 host addresses");
      let h: HostState;
      try {
        h = await createHost(lab, index, privateKeyPath);
      } catch (e) {
        const partial = lab.hosts.get(index);
        if (partial) teardownHostSync(partial);
        lab.hosts.delete(index);
        throw e;
      }
      if (lab.destroyed) {
        // destroy() ran while this host was being set up: its teardown missed it.
        teardownHostSync(h);
        throw new Error(`lab ${id} was destroyed while adding ${h.ns}`);
      }
      hosts.push(h.host);
      hosts.sort((a, b) => hostIndex(lab, a) - hostIndex(lab, b));
      writeKnownHosts();
      return h.host;
    };

    // Hosts are independent, so set them up concurrently (most of the time is sshd start-up).
    await Promise.all(Array.from({ length: opts.hosts }, () => addHost()));

    return {
      id,
      hosts,
      users,
      underlayBridge: lab.bridge,
      knownHostsPath,
      privateKeyPath,
      privateKey: fs.readFileSync(privateKeyPath, "utf8"),
      addHost,
      async removeHost(host: NetnsHost) {
        const h = [...lab.hosts.values()].find((s) => s.host === host);
        if (!h) return;
        teardownHostSync(h);
        lab.hosts.delete(h.index);
        hosts.splice(hosts.indexOf(host), 1);
        writeKnownHosts();
      },
      async destroy() {
        teardownSync(lab);
        hosts.length = 0;
      },
    };
  } catch (e) {
    teardownSync(lab);
    throw e;
  }
}

/**
 * Users live in this machine's /etc, shared by every namespace host. sshd reads
 * AuthorizedKeysFile as the logging-in user, so the lab dir becomes traversable
 * (its secrets stay 0600).
 */
async function createUsers(lab: LabState, specs: LabUserSpec[]): Promise<LabUser[]> {
  if (specs.length === 0) return [];
  fs.chmodSync(lab.dir, 0o711);
  const users: LabUser[] = [];
  const rules: string[] = [];
  for (const spec of specs) {
    const name = `${lab.id}-${spec.suffix}`;
    lab.users.push(name); // before useradd, so a failure part-way is torn down
    await must("useradd", ["--no-create-home", "--home-dir", "/", "--shell", "/bin/sh", "--comment", userComment(lab.id), name]);
    // chpasswd reads "name:password" on stdin, so the password is never in an argv.
    execFileSync("chpasswd", [], { input: `${name}:${spec.password}\n`, stdio: ["pipe", "ignore", "pipe"] });
    if (spec.sudo !== undefined) rules.push(`${name} ${spec.sudo}`);
    users.push({ name, password: spec.password });
  }
  if (rules.length > 0) {
    // Checked before it is moved into place: a broken sudoers.d file breaks sudo for the whole machine.
    const tmp = `${sudoersFile(lab.id)}.new`;
    fs.writeFileSync(tmp, rules.join("\n") + "\n", { mode: 0o440 });
    const check = await run("visudo", ["-c", "-q", "-f", tmp]);
    if (check.code !== 0) {
      fs.rmSync(tmp, { force: true });
      throw new Error(`invalid sudo rule: ${check.stdout.trim()} ${check.stderr.trim()}`);
    }
    fs.renameSync(tmp, sudoersFile(lab.id));
  }
  return users;
}

function hostIndex(lab: LabState, h: NetnsHost): number {
  return Number(h.name.slice(lab.id.length + 2));
}

async function createHost(lab: LabState, index: number, privateKeyPath: string): Promise<HostState> {
  const { ns, rootVeth } = hostNames(lab.id, index);
  const dir = path.join(lab.dir, ns);
  const address = `10.231.${lab.subnet}.${index}`;
  fs.mkdirSync(dir, { mode: 0o700 });

  const host: NetnsHost = {
    name: ns,
    netns: ns,
    address,
    connection: { host: address, port: 22, user: "root", privateKeyPath, hostKey: "" },
    exec: (argv) => run("ip", ["netns", "exec", ns, ...argv]),
    sshdPid: 0,
    killSshd: async (opts) => {
      const pids = opts?.keepSessions
        ? [host.sshdPid].filter(pidAlive)
        : pidsInNetns(ns).filter((pid) => comm(pid) === "sshd" || pid === host.sshdPid);
      killPids(pids);
      await waitGone(pids);
      host.sshdPid = 0;
    },
    startSshd: async () => {
      if (host.sshdPid && pidAlive(host.sshdPid)) return;
      const pidFile = path.join(dir, "sshd.pid");
      const logFile = path.join(dir, "sshd.log");
      fs.rmSync(pidFile, { force: true });
      // sshd daemonizes: this returns once the daemon has forked, and the pid file
      // is written after it has bound its socket.
      const r = await run("ip", ["netns", "exec", ns, SSHD, "-f", path.join(dir, "sshd_config"), "-E", logFile]);
      if (r.code !== 0) throw new Error(`sshd in ${ns} failed to start (exit ${r.code}): ${r.stderr.trim()} ${logTail(logFile)}`);
      host.sshdPid = await readPidFile(pidFile, SSHD_READY_TIMEOUT_MS);
      await waitForTcp(address, 22, SSHD_READY_TIMEOUT_MS);
    },
  };
  const state: HostState = { index, ns, rootVeth, dir, host };
  // Registered before the first kernel object so a failure part-way is torn down.
  lab.hosts.set(index, state);

  await keygen(path.join(dir, "host_ed25519"), `${ns}`);
  host.connection.hostKey = await fingerprint(path.join(dir, "host_ed25519.pub"));
  fs.writeFileSync(path.join(dir, "sshd_config"), sshdConfig(dir, path.join(lab.dir, "authorized_keys"), lab.sshdConfig));

  await must("ip", ["netns", "add", ns]);
  await must("ip", ["link", "add", rootVeth, "type", "veth", "peer", "name", "eth0", "netns", ns]);
  await must("ip", ["link", "set", rootVeth, "master", lab.bridge, "up"]);
  await must("ip", ["-n", ns, "link", "set", "lo", "up"]);
  await must("ip", ["-n", ns, "addr", "add", `${address}/24`, "dev", "eth0"]);
  await must("ip", ["-n", ns, "link", "set", "eth0", "up"]);
  await host.startSshd();
  return state;
}

// ---------------------------------------------------------------------------
// sweeping crashed runs

/**
 * Removes namespaces, veths, bridges, sshds and state dirs of labs whose id starts
 * with `prefix` and whose owning process is gone. Labs of live processes (e.g. a
 * concurrent test run) are left alone.
 */
export async function cleanupStaleLabs(prefix: string = DEFAULT_ID_PREFIX): Promise<void> {
  const isOurs = (id: string) => id.startsWith(prefix) && ID_RE.test(id);
  const isLive = (id: string): boolean => {
    for (const lab of liveLabs) if (lab.id === id) return true;
    try {
      const owner = JSON.parse(fs.readFileSync(path.join(stateDir(id), "owner.json"), "utf8")) as { pid: number; startTime?: string };
      return pidAlive(owner.pid) && processStartTime(owner.pid) === owner.startTime;
    } catch {
      // The owner record is written before any kernel object exists, so an object
      // without one belongs to a run that crashed (or was destroyed) part-way.
      return false;
    }
  };

  const stale = new Set<string>();
  const namespaces: Array<{ id: string; ns: string }> = [];
  let netnsNames: string[] = [];
  try {
    netnsNames = fs.readdirSync("/run/netns");
  } catch {
    /* no namespaces at all */
  }
  for (const ns of netnsNames) {
    const m = /^(.+)-h\d+$/.exec(ns);
    if (m && isOurs(m[1]) && !isLive(m[1])) {
      stale.add(m[1]);
      namespaces.push({ id: m[1], ns });
    }
  }

  const links = JSON.parse(await must("ip", ["-j", "-d", "link", "show"])) as Array<{
    ifname: string;
    linkinfo?: { info_kind?: string };
  }>;
  const rootLinks: string[] = [];
  for (const l of links) {
    const kind = l.linkinfo?.info_kind;
    const m = (kind === "bridge" && /^(.+)-ul$/.exec(l.ifname)) || (kind === "veth" && /^(.+)h\d+$/.exec(l.ifname));
    if (m && isOurs(m[1]) && !isLive(m[1])) {
      stale.add(m[1]);
      rootLinks.push(l.ifname);
    }
  }

  for (const entry of fs.readdirSync(os.tmpdir())) {
    if (!entry.startsWith(STATE_PREFIX)) continue;
    const id = entry.slice(STATE_PREFIX.length);
    if (isOurs(id) && !isLive(id)) stale.add(id);
  }

  // sshds whose namespace is already gone are found by their config path.
  const sshds = allPids().filter((pid) => {
    if (comm(pid) !== "sshd") return false;
    const args = cmdline(pid);
    const cfg = args[args.indexOf("-f") + 1] ?? "";
    return [...stale].some((id) => cfg.startsWith(stateDir(id) + path.sep));
  });

  // Users created by a lab carry its id in their comment field (see createUsers).
  const users: string[] = [];
  try {
    for (const line of fs.readFileSync("/etc/passwd", "utf8").split("\n")) {
      const [name, , , , comment] = line.split(":");
      const m = /^pulumi-netdev-lab (\S+)$/.exec(comment ?? "");
      if (m && isOurs(m[1]) && !isLive(m[1])) {
        stale.add(m[1]);
        users.push(name);
      }
    }
  } catch {
    /* no /etc/passwd to read */
  }
  let sudoers: string[] = [];
  try {
    sudoers = fs.readdirSync("/etc/sudoers.d");
  } catch {
    /* sudo is not installed */
  }
  for (const entry of sudoers) {
    const m = /^pulumi-netdev-([a-z0-9]+)(\.new)?$/.exec(entry);
    if (m && isOurs(m[1]) && !isLive(m[1])) stale.add(m[1]);
  }

  killAndWaitSync([...namespaces.flatMap(({ ns }) => pidsInNetns(ns)), ...sshds]);
  for (const name of rootLinks) trySync("ip", ["link", "del", name]);
  for (const { ns } of namespaces) trySync("ip", ["netns", "del", ns]);
  for (const name of users) trySync("userdel", [name]);
  for (const id of stale) {
    fs.rmSync(sudoersFile(id), { force: true });
    fs.rmSync(`${sudoersFile(id)}.new`, { force: true });
  }
  for (const id of stale) fs.rmSync(stateDir(id), { recursive: true, force: true });
}
