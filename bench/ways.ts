// The ways of making the same device changes that the benchmark compares.
//
// Every way creates, for each device i on a host, a veth pair bv<i>/bv<i>p with one
// address on bv<i>, bv<i> enslaved to the bridge bb0, both ends up (what a VethPair
// with `addresses` and `master` asks for; peerUp defaults to true), then deletes it.
// The bridge is set up before and removed after the timed phases.

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

export const devName = (i: number) => `bv${i}`;
export const peerName = (i: number) => `bv${i}p`;
/** 198.18.0.0/15 is reserved for benchmarks (RFC 2544); nothing is sent to it. */
export const devAddress = (i: number) => `198.18.${Math.floor(i / 250)}.${(i % 250) + 1}/24`;

export interface Sample {
  createMs: number;
  deleteMs: number;
  /**
   * SSH connections opened while creating and deleting (bridge setup included):
   * measured inside the provider host (probe.ts); for floor and per-resource, the
   * connections they open by construction.
   */
  sshConnections: number;
  /** Remote commands per device, create and delete (the runtime's sshStats.commandsRun). */
  createCommandsPerDevice?: number;
  deleteCommandsPerDevice?: number;
  /** Provider host peak RSS, MiB. */
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
 * expected devices: enslaved, up, with their address — or none left.
 */
export async function expectDevices(hosts: NetnsHost[], perHost: number): Promise<void> {
  for (const h of hosts) {
    const links = JSON.parse(await must(h, ["ip", "-j", "addr", "show"])) as any[];
    const ours = links.filter((l) => /^bv\d+p?$/.test(l.ifname));
    if (perHost === 0) {
      if (ours.length > 0) throw new Error(`${h.name}: ${ours.length} benchmark devices left after delete (${ours[0].ifname}, …)`);
      continue;
    }
    if (ours.length !== 2 * perHost) throw new Error(`${h.name}: expected ${2 * perHost} benchmark devices, found ${ours.length}`);
    for (let i = 0; i < perHost; i++) {
      const l = ours.find((x) => x.ifname === devName(i));
      const addr = l?.addr_info?.some((a: any) => `${a.local}/${a.prefixlen}` === devAddress(i));
      if (!l || l.master !== BRIDGE || !l.flags.includes("UP") || !addr) throw new Error(`${h.name}: ${devName(i)} is not as configured: ${JSON.stringify(l)}`);
      const p = ours.find((x) => x.ifname === peerName(i));
      if (!p?.flags.includes("UP")) throw new Error(`${h.name}: ${peerName(i)} is not up`);
    }
  }
}

// ---------------------------------------------------------------------------
// 1. pulumi-netdev through the real provider host

export interface ProviderPlan {
  bridges: Registration[];
  veths: Registration[];
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
export async function planProvider(programDir: string, lab: NetnsLab, hosts: NetnsHost[], perHost: number): Promise<ProviderPlan> {
  const req = createRequire(path.join(programDir, "index.js"));
  const pulumi = req("@pulumi/pulumi");
  const netdev = req("pulumi-netdev");
  const regs = await captureRegistrations(programDir, () => {
    hosts.forEach((h, k) => {
      const connection = { host: h.address, user: "root", privateKey: pulumi.secret(lab.privateKey), hostKey: h.connection.hostKey };
      const br = new netdev.Bridge(`br-${k}`, { connection, name: BRIDGE });
      for (let i = 0; i < perHost; i++) {
        new netdev.VethPair(`veth-${k}-${i}`, { connection, name: devName(i), peerName: peerName(i), master: br.name, addresses: [devAddress(i)] });
      }
    });
  });
  const bridges = regs.filter((r) => r.type.endsWith(":Bridge"));
  const veths = regs.filter((r) => r.type.endsWith(":VethPair"));
  if (bridges.length !== hosts.length || veths.length !== hosts.length * perHost) throw new Error(`unexpected registrations: ${regs.map((r) => r.type).join(", ")}`);
  const sizes = new Set(regs.map((r) => Buffer.byteLength(String(r.inputs.__provider), "utf8")));
  return { bridges, veths, providerBytes: Math.max(...sizes) };
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
  for (let i = 0; i < 200; i++) {
    if (fs.existsSync(file)) return JSON.parse(fs.readFileSync(file, "utf8"));
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error("the provider host's probe did not answer");
}

/** check → create, as the engine does for a new resource. */
async function up(host: ProviderHost, r: Registration) {
  const checked = await host.check(r.urn, {}, r.inputs);
  if (checked.failures.length > 0) throw new Error(`${r.name}: check failed: ${JSON.stringify(checked.failures)}`);
  const created = await host.create(r.urn, checked.inputs);
  return { urn: r.urn, id: created.id, outs: created.outs };
}

/**
 * A dynamic provider that does nothing (its check echoes, create returns the inputs):
 * the same RPCs through the same host measure what the host and gRPC cost alone.
 */
const NOOP_PROVIDER = `exports.handler=function(){return{check:async function(o,n){return{inputs:n,failures:[]}},create:async function(i){return{id:i.name,outs:i}},delete:async function(){}}};`;

/** `noop`: replay the same registrations against NOOP_PROVIDER (no SSH, no devices). */
export async function runProvider(programDir: string, probePath: string, hosts: NetnsHost[], plan: ProviderPlan, noop = false): Promise<Sample> {
  if (noop) {
    const swap = (r: Registration) => ({ ...r, inputs: { ...r.inputs, __provider: NOOP_PROVIDER } });
    plan = { ...plan, bridges: plan.bridges.map(swap), veths: plan.veths.map(swap) };
  }
  const probeOut = path.join(programDir, `probe-${process.pid}.json`);
  const host = await startProviderHost({
    cwd: programDir,
    env: { NODE_OPTIONS: `--require "${probePath}"`, BENCH_PROBE_OUT: probeOut },
  });
  try {
    await host.configure({});
    const bridges = await pool(plan.bridges, CONCURRENCY, (r) => up(host, r));
    const before = await probe(host, probeOut);

    let t = performance.now();
    const veths = await pool(plan.veths, CONCURRENCY, (r) => up(host, r));
    const createMs = performance.now() - t;
    const afterCreate = await probe(host, probeOut);
    if (!noop) await expectDevices(hosts, plan.veths.length / hosts.length);

    t = performance.now();
    await pool(veths, CONCURRENCY, (v) => host.delete(v.urn, v.id, v.outs));
    const deleteMs = performance.now() - t;
    const afterDelete = await probe(host, probeOut);
    if (!noop) await expectDevices(hosts, 0);

    await pool(bridges, CONCURRENCY, (b) => host.delete(b.urn, b.id, b.outs));
    const end = await probe(host, probeOut);
    if (end.tcpConnects22 !== end.sshHandshakes) {
      throw new Error(`probe disagrees with the runtime: ${end.tcpConnects22} TCP connections to port 22, ${end.sshHandshakes} SSH handshakes`);
    }
    const n = plan.veths.length;
    return {
      createMs,
      deleteMs,
      sshConnections: end.tcpConnects22,
      createCommandsPerDevice: (afterCreate.sshCommands - before.sshCommands) / n,
      deleteCommandsPerDevice: (afterDelete.sshCommands - afterCreate.sshCommands) / n,
      peakRssMiB: end.peakRssKiB / 1024,
    };
  } catch (err) {
    const stderr = host.stderr().trim();
    if (stderr) (err as Error).message += `\nprovider host stderr:\n${stderr.slice(-2000)}`;
    throw err;
  } finally {
    await host.stop();
    fs.rmSync(probeOut, { force: true });
  }
}

// ---------------------------------------------------------------------------
// 2. The floor: every change in one `ip -batch -` over one SSH session

function createLines(n: number): string[] {
  const lines: string[] = [];
  for (let i = 0; i < n; i++) {
    lines.push(
      `link add name ${devName(i)} type veth peer name ${peerName(i)}`,
      `addr add ${devAddress(i)} dev ${devName(i)}`,
      `link set dev ${devName(i)} master ${BRIDGE}`,
      `link set dev ${devName(i)} up`,
      `link set dev ${peerName(i)} up`,
    );
  }
  return lines;
}

/** Runs `ip -batch -` on the host with the system OpenSSH client: one connection, one session. */
function sshBatch(lab: NetnsLab, h: NetnsHost, lines: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn("ssh", [
      "-F", "/dev/null", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes", "-o", `UserKnownHostsFile=${lab.knownHostsPath}`,
      "-o", "GlobalKnownHostsFile=/dev/null", "-o", "IdentitiesOnly=yes", "-i", lab.privateKeyPath, `root@${h.address}`, "--", "ip -batch -",
    ], { stdio: ["pipe", "ignore", "pipe"] });
    let stderr = "";
    child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    child.once("error", reject);
    child.once("exit", (code) => (code === 0 ? resolve() : reject(new Error(`ssh ${h.address} ip -batch - exited ${code}: ${stderr.trim()}`))));
    child.stdin.end(lines.join("\n") + "\n");
  });
}

export async function runFloor(lab: NetnsLab, h: NetnsHost, n: number): Promise<Sample> {
  await must(h, ["ip", "link", "add", "name", BRIDGE, "type", "bridge"]);
  try {
    let t = performance.now();
    await sshBatch(lab, h, createLines(n));
    const createMs = performance.now() - t;
    await expectDevices([h], n);
    t = performance.now();
    await sshBatch(lab, h, Array.from({ length: n }, (_, i) => `link del dev ${devName(i)}`));
    const deleteMs = performance.now() - t;
    await expectDevices([h], 0);
    return { createMs, deleteMs, sshConnections: 2 };
  } finally {
    await h.exec(["ip", "link", "del", "dev", BRIDGE]);
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
    await expectDevices([h], n);
    t = performance.now();
    await pool(ids, CONCURRENCY, (i) => sshOnce(lab, h, `ip link del dev ${devName(i)}`));
    const deleteMs = performance.now() - t;
    await expectDevices([h], 0);
    return { createMs, deleteMs, sshConnections: 2 * n };
  } finally {
    await h.exec(["ip", "link", "del", "dev", BRIDGE]);
  }
}

