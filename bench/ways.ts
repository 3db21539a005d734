// The ways of making the same device changes that the benchmark compares, for two
// workloads (see WORKLOADS):
//
//   veth   for each device i on a host, a veth pair bv<i>/bv<i>p with one address on
//          bv<i>, bv<i> enslaved to the bridge bb0, both ends up (what a VethPair with
//          `addresses` and `master` asks for; peerUp defaults to true). The bridge is
//          set up before and removed after the timed phases.
//   vxlan  for each i, a bridge vb<i> and a vxlan vx<i> (vni i+1, two head-end
//          replication peers) enslaved to it, both up: 2 devices per i.
//
// Phases, each timed on its own: create, refresh (Read of every resource, as
// `pulumi refresh` drives them), no-change up (check + diff of every resource, in a
// fresh provider host: it must touch no host), delete.

import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import { createRequire } from "node:module";
import * as path from "node:path";
import { performance } from "node:perf_hooks";
import { Client } from "ssh2";
import type { NetnsHost, NetnsLab } from "../test/hosts/netns";
import { captureRegistrations, type ProviderHost, type Registration, startProviderHost } from "../test/support/provider-host";

export const BRIDGE = "bb0";
/** Resources (or SSH connections) in flight at once, as `pulumi up --parallel 16` would drive them. */
export const CONCURRENCY = 16;
/** BENCH_CPU_PROF=<dir>: write a V8 CPU profile of every provider host process there (see probe.ts). */
const CPU_PROF_DIR = process.env.BENCH_CPU_PROF ? path.resolve(process.env.BENCH_CPU_PROF) : undefined;

export const devName = (i: number) => `bv${i}`;
export const peerName = (i: number) => `bv${i}p`;
/** 198.18.0.0/15 is reserved for benchmarks (RFC 2544); nothing is sent to it. */
export const devAddress = (i: number) => `198.18.${Math.floor(i / 250)}.${(i % 250) + 1}/24`;
export const vxBridge = (i: number) => `vb${i}`;
export const vxName = (i: number) => `vx${i}`;
/** Head-end replication peers of every vxlan (benchmark range; the vxlans carry no traffic). */
export const VX_REMOTES = ["198.19.255.1", "198.19.255.2"];

export type WorkloadName = "veth" | "vxlan";

/** What one workload of `units` per host is made of (units: VethPairs, or vxlan + bridge pairs). */
export interface Workload {
  name: WorkloadName;
  /** Network devices per unit (a veth pair counts as one device, as a VethPair is one resource). */
  devicesPerUnit: number;
}
export const WORKLOADS: Record<WorkloadName, Workload> = {
  veth: { name: "veth", devicesPerUnit: 1 },
  vxlan: { name: "vxlan", devicesPerUnit: 2 },
};

export interface Sample {
  createMs: number;
  deleteMs: number;
  /** Read of every resource, CONCURRENCY at a time (provider, rpc-floor), or one dump per host (floor). */
  refreshMs?: number;
  /** check + diff of every resource in a fresh provider host (provider, rpc-floor). */
  noChangeUpMs?: number;
  /**
   * SSH connections opened by the provider host that created (and, in a second host,
   * refreshed and deleted): the most either opened. Measured inside the provider host
   * (probe.ts); for floor and per-resource, the connections they open by construction.
   */
  sshConnections: number;
  /** SSH connections and remote commands of the no-change up (must both be 0). */
  noChangeUpConnections?: number;
  noChangeUpCommands?: number;
  /** Remote commands (round trips) per device, per phase (the runtime's sshStats.commandsRun). */
  createCommandsPerDevice?: number;
  refreshCommandsPerDevice?: number;
  deleteCommandsPerDevice?: number;
  /** Provider host peak RSS, MiB (the larger of the two hosts). */
  peakRssMiB?: number;
}

/** Runs fn over items with at most `limit` in flight; results in input order. */
export async function pool<T, R>(items: T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i]);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

async function must(h: NetnsHost, argv: string[]): Promise<string> {
  const r = await h.exec(argv);
  if (r.code !== 0) throw new Error(`${h.name}: ${argv.join(" ")} exited ${r.code}: ${r.stderr.trim()}`);
  return r.stdout;
}

/**
 * Independent check (local `ip`, not over SSH) that each host has exactly the
 * expected devices, as configured — or none left (units = 0).
 */
export async function expectDevices(w: Workload, hosts: NetnsHost[], units: number): Promise<void> {
  for (const h of hosts) {
    const links = JSON.parse(await must(h, ["ip", "-j", "-d", "addr", "show"])) as any[];
    const ours = links.filter((l) => (w.name === "veth" ? /^bv\d+p?$/ : /^v[bx]\d+$/).test(l.ifname));
    if (units === 0) {
      if (ours.length > 0) throw new Error(`${h.name}: ${ours.length} benchmark devices left after delete (${ours[0].ifname}, …)`);
      continue;
    }
    if (ours.length !== 2 * units) throw new Error(`${h.name}: expected ${2 * units} benchmark devices, found ${ours.length}`);
    const byName = new Map(ours.map((l) => [l.ifname, l]));
    for (let i = 0; i < units; i++) {
      if (w.name === "veth") {
        const l = byName.get(devName(i));
        const addr = l?.addr_info?.some((a: any) => `${a.local}/${a.prefixlen}` === devAddress(i));
        if (!l || l.master !== BRIDGE || !l.flags.includes("UP") || !addr) throw new Error(`${h.name}: ${devName(i)} is not as configured: ${JSON.stringify(l)}`);
        if (!byName.get(peerName(i))?.flags.includes("UP")) throw new Error(`${h.name}: ${peerName(i)} is not up`);
      } else {
        const v = byName.get(vxName(i));
        const ok = v?.master === vxBridge(i) && v.flags.includes("UP") && v.linkinfo?.info_data?.id === i + 1 && byName.get(vxBridge(i))?.flags.includes("UP");
        if (!ok) throw new Error(`${h.name}: ${vxName(i)} is not as configured: ${JSON.stringify(v)}`);
      }
    }
    if (w.name === "vxlan") {
      const fdb = JSON.parse(await must(h, ["bridge", "-j", "fdb", "show"])) as any[];
      const peers = fdb.filter((e) => e.mac === "00:00:00:00:00:00" && /^vx\d+$/.test(e.ifname) && VX_REMOTES.includes(e.dst));
      if (peers.length !== units * VX_REMOTES.length) throw new Error(`${h.name}: expected ${units * VX_REMOTES.length} vxlan peer entries, found ${peers.length}`);
    }
  }
}

// ---------------------------------------------------------------------------
// 1. pulumi-netdev through the real provider host

export interface ProviderPlan {
  /** Made before and removed after the timed phases (veth: the shared bridge). */
  setup: Registration[];
  /** The timed resources, tier by tier (a tier's resources depend on the previous tier's). */
  tiers: Registration[][];
  /** Bytes of the `__provider` string each resource carries in its state. */
  providerBytes: number;
}

/**
 * Builds the program directory the provider host runs in: like a user's stack, it
 * resolves `pulumi-netdev` by name from its node_modules (a link to `pkg`: this
 * checkout, whose dist/ was just built, or another build to compare with).
 */
export function prepareProgramDir(repo: string, pkg: string = repo): string {
  const dir = path.join(repo, ".cache", "bench", "program");
  fs.mkdirSync(path.join(dir, "node_modules"), { recursive: true });
  fs.writeFileSync(path.join(dir, "package.json"), JSON.stringify({ name: "netdev-bench-program", private: true }) + "\n");
  const link = path.join(dir, "node_modules", "pulumi-netdev");
  fs.rmSync(link, { force: true });
  fs.symlinkSync(pkg, link, "dir");
  return dir;
}

/**
 * Runs the user program under Pulumi's mocks and returns the registrations (inputs
 * exactly as the engine would send them, including the serialized `__provider`).
 */
export async function planProvider(programDir: string, lab: NetnsLab, w: Workload, hosts: NetnsHost[], units: number): Promise<ProviderPlan> {
  const req = createRequire(path.join(programDir, "index.js"));
  const pulumi = req("@pulumi/pulumi");
  const netdev = req("pulumi-netdev");
  const regs = await captureRegistrations(programDir, () => {
    hosts.forEach((h, k) => {
      const connection = { host: h.address, user: "root", privateKey: pulumi.secret(lab.privateKey), hostKey: h.connection.hostKey };
      if (w.name === "veth") {
        const br = new netdev.Bridge(`br-${k}`, { connection, name: BRIDGE });
        for (let i = 0; i < units; i++) {
          new netdev.VethPair(`veth-${k}-${i}`, { connection, name: devName(i), peerName: peerName(i), master: br.name, addresses: [devAddress(i)] });
        }
      } else {
        for (let i = 0; i < units; i++) {
          const br = new netdev.Bridge(`vb-${k}-${i}`, { connection, name: vxBridge(i) });
          new netdev.Vxlan(`vx-${k}-${i}`, { connection, name: vxName(i), vni: i + 1, remotes: VX_REMOTES, master: br.name });
        }
      }
    });
  });
  const of = (t: string) => regs.filter((r) => r.type.endsWith(`:${t}`));
  const plan =
    w.name === "veth"
      ? { setup: of("Bridge"), tiers: [of("VethPair")] }
      : { setup: [], tiers: [of("Bridge"), of("Vxlan")] };
  const expected = w.name === "veth" ? hosts.length * (units + 1) : hosts.length * units * 2;
  if (regs.length !== expected || plan.tiers.some((t) => t.length !== hosts.length * units)) throw new Error(`unexpected registrations: ${regs.map((r) => r.type).join(", ")}`);
  const sizes = new Set(regs.map((r) => Buffer.byteLength(String(r.inputs.__provider), "utf8")));
  return { ...plan, providerBytes: Math.max(...sizes) };
}

interface ProbeReport {
  tcpConnects22: number;
  sshHandshakes: number;
  sshCommands: number;
  peakRssKiB: number;
}

/** Asks the probe inside the provider host for its counters (see probe.ts). */
async function probe(host: ProviderHost, file: string): Promise<ProbeReport> {
  fs.rmSync(file, { force: true });
  process.kill(host.pid, "SIGUSR2");
  for (let i = 0; i < 500; i++) {
    if (fs.existsSync(file)) return JSON.parse(fs.readFileSync(file, "utf8"));
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error("the provider host's probe did not answer");
}

interface Created {
  reg: Registration;
  id: string;
  outs: Record<string, any>;
}

/** check → create, as the engine does for a new resource. */
async function up(host: ProviderHost, r: Registration): Promise<Created> {
  const checked = await host.check(r.urn, {}, r.inputs);
  if (checked.failures.length > 0) throw new Error(`${r.name}: check failed: ${JSON.stringify(checked.failures)}`);
  const created = await host.create(r.urn, checked.inputs);
  return { reg: r, id: created.id, outs: created.outs };
}

/** `pulumi refresh`: Read with the state's outputs (and inputs); the device must still be there. */
async function refresh(host: ProviderHost, c: Created): Promise<Created> {
  const got = await host.read(c.reg.urn, c.id, c.outs, c.reg.inputs);
  if (got.id !== c.id) throw new Error(`${c.reg.name}: refresh found no device (id ${JSON.stringify(got.id)})`);
  return { ...c, outs: got.props };
}

/** A `pulumi up` that changes nothing: check (olds = the state's inputs) then diff against the outputs. */
async function unchanged(host: ProviderHost, c: Created): Promise<void> {
  const checked = await host.check(c.reg.urn, c.reg.inputs, c.reg.inputs);
  if (checked.failures.length > 0) throw new Error(`${c.reg.name}: check failed: ${JSON.stringify(checked.failures)}`);
  const d = await host.diff(c.reg.urn, c.id, c.outs, checked.inputs);
  if (d.changes !== "none") throw new Error(`${c.reg.name}: a no-change up found changes: ${JSON.stringify(d)}`);
}

/**
 * A dynamic provider that does nothing (its check echoes, create returns the inputs,
 * read returns the state, diff finds nothing): the same RPCs through the same host
 * measure what the host and gRPC cost alone.
 */
const NOOP_PROVIDER =
  "exports.handler=function(){return{check:async function(o,n){return{inputs:n,failures:[]}},diff:async function(){return{changes:false}}," +
  "create:async function(i){return{id:i.name,outs:i}},read:async function(id,p){return{id:id,props:p}},delete:async function(){}}};";

async function withHost<T>(programDir: string, probePath: string, fn: (host: ProviderHost, probeNow: () => Promise<ProbeReport>) => Promise<T>): Promise<T> {
  const probeOut = path.join(programDir, `probe-${process.pid}.json`);
  const host = await startProviderHost({
    cwd: programDir,
    env: {
      // BENCH_PRELOAD=<file>: one more module preloaded into the provider host (e.g. a tracer).
      // BENCH_NODE_FLAGS: V8/Node flags for every provider host, e.g. --max-semi-space-size=1
      // to see how much of the RSS difference is the young generation's growth.
      NODE_OPTIONS:
        `${process.env.BENCH_NODE_FLAGS ?? ""} --require "${probePath}"`.trim() + (process.env.BENCH_PRELOAD ? ` --require "${path.resolve(process.env.BENCH_PRELOAD)}"` : ""),
      BENCH_PROBE_OUT: probeOut,
      ...(CPU_PROF_DIR ? { BENCH_CPU_PROF: CPU_PROF_DIR } : {}),
    },
  });
  try {
    // BENCH_SAFE_APPLY='{"enabled":false}': stack config netdev:safeApply, to measure what safe apply costs.
    await host.configure(process.env.BENCH_SAFE_APPLY ? { "netdev:safeApply": process.env.BENCH_SAFE_APPLY } : {});
    const result = await fn(host, () => probe(host, probeOut));
    const end = await probe(host, probeOut);
    if (end.tcpConnects22 !== end.sshHandshakes) {
      throw new Error(`probe disagrees with the runtime: ${end.tcpConnects22} TCP connections to port 22, ${end.sshHandshakes} SSH handshakes`);
    }
    return result;
  } catch (err) {
    const stderr = host.stderr().trim();
    if (stderr) (err as Error).message += `\nprovider host stderr:\n${stderr.slice(-2000)}`;
    throw err;
  } finally {
    await host.stop();
    fs.rmSync(probeOut, { force: true });
  }
}

/**
 * Three provider host processes, as three CLI runs would start them: `pulumi up`
 * (create), a no-change `pulumi up` (check + diff), `pulumi refresh` then
 * `pulumi destroy` (refresh, delete).
 * `noop`: replay the same registrations against NOOP_PROVIDER (no SSH, no devices).
 */
export async function runProvider(programDir: string, probePath: string, w: Workload, hosts: NetnsHost[], plan: ProviderPlan, noop = false): Promise<Sample> {
  if (noop) {
    const swap = (r: Registration) => ({ ...r, inputs: { ...r.inputs, __provider: NOOP_PROVIDER } });
    plan = { ...plan, setup: plan.setup.map(swap), tiers: plan.tiers.map((t) => t.map(swap)) };
  }
  const units = plan.tiers[0].length / hosts.length;
  const devices = units * w.devicesPerUnit * hosts.length;
  const timed = async <T>(fn: () => Promise<T>): Promise<[T, number]> => {
    const t = performance.now();
    const r = await fn();
    return [r, performance.now() - t];
  };

  const first = await withHost(programDir, probePath, async (host, probeNow) => {
    const setup = await pool(plan.setup, CONCURRENCY, (r) => up(host, r));
    const before = await probeNow();
    const [created, createMs] = await timed(async () => {
      const out: Created[] = [];
      for (const tier of plan.tiers) out.push(...(await pool(tier, CONCURRENCY, (r) => up(host, r))));
      return out;
    });
    const after = await probeNow();
    return { setup, created, createMs, connections: after.tcpConnects22, commands: after.sshCommands - before.sshCommands, rssKiB: after.peakRssKiB };
  });
  if (!noop) await expectDevices(w, hosts, units);

  const noChange = await withHost(programDir, probePath, async (host, probeNow) => {
    const [, ms] = await timed(() => pool(first.created, CONCURRENCY, (c) => unchanged(host, c)));
    const p = await probeNow();
    return { ms, connections: p.tcpConnects22, commands: p.sshCommands };
  });

  const last = await withHost(programDir, probePath, async (host, probeNow) => {
    const [refreshed, refreshMs] = await timed(() => pool(first.created, CONCURRENCY, (c) => refresh(host, c)));
    const afterRefresh = await probeNow();
    const [, deleteMs] = await timed(async () => {
      for (const tier of [...plan.tiers].reverse()) {
        const ids = new Set(tier.map((r) => r.urn));
        await pool(refreshed.filter((c) => ids.has(c.reg.urn)), CONCURRENCY, (c) => host.delete(c.reg.urn, c.id, c.outs));
      }
    });
    const afterDelete = await probeNow();
    if (!noop) await expectDevices(w, hosts, 0);
    await pool(first.setup, CONCURRENCY, (b) => host.delete(b.reg.urn, b.id, b.outs));
    return {
      refreshMs,
      deleteMs,
      connections: afterDelete.tcpConnects22,
      refreshCommands: afterRefresh.sshCommands,
      deleteCommands: afterDelete.sshCommands - afterRefresh.sshCommands,
      rssKiB: (await probeNow()).peakRssKiB,
    };
  });

  return {
    createMs: first.createMs,
    refreshMs: last.refreshMs,
    noChangeUpMs: noChange.ms,
    deleteMs: last.deleteMs,
    sshConnections: Math.max(first.connections, last.connections),
    noChangeUpConnections: noChange.connections,
    noChangeUpCommands: noChange.commands,
    createCommandsPerDevice: first.commands / devices,
    refreshCommandsPerDevice: last.refreshCommands / devices,
    deleteCommandsPerDevice: last.deleteCommands / devices,
    peakRssMiB: Math.max(first.rssKiB, last.rssKiB) / 1024,
  };
}

// ---------------------------------------------------------------------------
// 2. The floor: every change in one `ip -batch -` over one SSH session

function floorLines(w: Workload, n: number): { create: string[]; fdb: string[]; del: string[] } {
  const create: string[] = [];
  const fdb: string[] = [];
  const del: string[] = [];
  for (let i = 0; i < n; i++) {
    if (w.name === "veth") {
      create.push(
        `link add name ${devName(i)} type veth peer name ${peerName(i)}`,
        `addr add ${devAddress(i)} dev ${devName(i)}`,
        `link set dev ${devName(i)} master ${BRIDGE}`,
        `link set dev ${devName(i)} up`,
        `link set dev ${peerName(i)} up`,
      );
      del.push(`link del dev ${devName(i)}`);
    } else {
      create.push(
        `link add name ${vxBridge(i)} type bridge`,
        `link add name ${vxName(i)} type vxlan id ${i + 1} dstport 4789`,
        `link set dev ${vxName(i)} master ${vxBridge(i)}`,
        `link set dev ${vxName(i)} up`,
        `link set dev ${vxBridge(i)} up`,
      );
      for (const peer of VX_REMOTES) fdb.push(`fdb append 00:00:00:00:00:00 dev ${vxName(i)} dst ${peer}`);
      del.push(`link del dev ${vxName(i)}`, `link del dev ${vxBridge(i)}`);
    }
  }
  return { create, fdb, del };
}

/** Runs `command` on the host with the system OpenSSH client (one connection, one session), `lines` on its stdin. */
function sshRun(lab: NetnsLab, h: NetnsHost, command: string, lines: string[] = []): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn("ssh", [
      "-F", "/dev/null", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes", "-o", `UserKnownHostsFile=${lab.knownHostsPath}`,
      "-o", "GlobalKnownHostsFile=/dev/null", "-o", "IdentitiesOnly=yes", "-i", lab.privateKeyPath, `root@${h.address}`, "--", command,
    ], { stdio: ["pipe", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
    child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    child.once("error", reject);
    child.once("close", (code) => (code === 0 ? resolve(stdout) : reject(new Error(`ssh ${h.address} ${command} exited ${code}: ${stderr.trim()}`))));
    child.stdin.end(lines.length ? lines.join("\n") + "\n" : "");
  });
}

/**
 * Create and delete as one batch each; refresh as one dump of the namespace
 * (`ip -j -d addr show`, plus `bridge -j fdb show` for vxlans) parsed once.
 */
export async function runFloor(lab: NetnsLab, w: Workload, h: NetnsHost, n: number): Promise<Sample> {
  if (w.name === "veth") await must(h, ["ip", "link", "add", "name", BRIDGE, "type", "bridge"]);
  const lines = floorLines(w, n);
  try {
    let t = performance.now();
    await sshRun(lab, h, "ip -batch -", lines.create);
    if (lines.fdb.length) await sshRun(lab, h, "bridge -batch -", lines.fdb);
    const createMs = performance.now() - t;
    await expectDevices(w, [h], n);
    t = performance.now();
    const dump = JSON.parse(await sshRun(lab, h, w.name === "veth" ? "ip -j -d addr show" : "ip -j -d addr show; bridge -j fdb show >/dev/null")) as unknown[];
    const refreshMs = performance.now() - t;
    if (dump.length < 2 * n) throw new Error(`${h.name}: the floor's dump has ${dump.length} devices`);
    t = performance.now();
    await sshRun(lab, h, "ip -batch -", lines.del);
    const deleteMs = performance.now() - t;
    await expectDevices(w, [h], 0);
    return { createMs, refreshMs, deleteMs, sshConnections: lines.fdb.length ? 4 : 3 };
  } finally {
    if (w.name === "veth") await h.exec(["ip", "link", "del", "dev", BRIDGE]);
  }
}

// ---------------------------------------------------------------------------
// 3. A new SSH connection per resource and operation (a generic remote-command resource)

function fingerprint(key: Buffer): string {
  return "SHA256:" + createHash("sha256").update(key).digest("base64").replace(/=+$/, "");
}

/** Connects (host key pinned), runs one command string, disconnects. */
function sshOnce(lab: NetnsLab, h: NetnsHost, command: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const client = new Client();
    const fail = (err: Error) => {
      client.end();
      reject(err);
    };
    client.once("error", fail);
    client.once("ready", () => {
      client.exec(command, (err, channel) => {
        if (err) return fail(err);
        let code: number | null = null;
        let stderr = "";
        channel.on("data", () => undefined);
        channel.stderr.on("data", (d: Buffer) => (stderr += d.toString("utf8")));
        channel.on("exit", (c: number | null) => (code = c));
        channel.on("close", () => {
          client.end();
          if (code === 0) resolve();
          else reject(new Error(`${h.address}: ${command} exited ${code}: ${stderr.trim()}`));
        });
      });
    });
    client.connect({
      host: h.address,
      port: 22,
      username: "root",
      privateKey: lab.privateKey,
      readyTimeout: 30_000,
      hostVerifier: (key: Buffer) => fingerprint(key) === h.connection.hostKey,
    });
  });
}

export async function runPerResource(lab: NetnsLab, h: NetnsHost, n: number): Promise<Sample> {
  await must(h, ["ip", "link", "add", "name", BRIDGE, "type", "bridge"]);
  const ids = Array.from({ length: n }, (_, i) => i);
  try {
    let t = performance.now();
    await pool(ids, CONCURRENCY, (i) =>
      sshOnce(lab, h, [
        `ip link add name ${devName(i)} type veth peer name ${peerName(i)}`,
        `ip addr add ${devAddress(i)} dev ${devName(i)}`,
        `ip link set dev ${devName(i)} master ${BRIDGE}`,
        `ip link set dev ${devName(i)} up`,
        `ip link set dev ${peerName(i)} up`,
      ].join(" && ")),
    );
    const createMs = performance.now() - t;
    await expectDevices(WORKLOADS.veth, [h], n);
    t = performance.now();
    await pool(ids, CONCURRENCY, (i) => sshOnce(lab, h, `ip link del dev ${devName(i)}`));
    const deleteMs = performance.now() - t;
    await expectDevices(WORKLOADS.veth, [h], 0);
    return { createMs, deleteMs, sshConnections: 2 * n };
  } finally {
    await h.exec(["ip", "link", "del", "dev", BRIDGE]);
  }
}

