// `npm run bench`: the cost of pulumi-netdev against the floor of what the same
// changes cost, on network-namespace test hosts this script starts (see ways.ts for
// the workloads and phases):
//
//   provider      pulumi-netdev through the real Pulumi dynamic provider host over
//                 gRPC, resources driven 16 at a time as the engine does (check,
//                 create with verify-after-write; refresh; no-change up; delete)
//   floor         the same changes as one `ip -batch -` over one SSH session; refresh
//                 as one `ip -j -d addr show` dump
//   per-resource  a new SSH connection per device and operation, running its
//                 commands (what a generic remote-command resource does)
//   rpc-floor     control: the same RPCs through the same provider host to a
//                 provider that does nothing (what the host and gRPC cost alone)
//
// Scenarios: N VethPairs on one host for N in BENCH_SIZES (default 50,200,1000);
// BENCH_VXLAN vxlan+bridge pairs on one host (default 1000, i.e. 2000 devices; 0 to
// skip); BENCH_MULTI hosts x devices (default 50x20; "" to skip).
// Prints medians of BENCH_REPS repetitions (default 3; BENCH_BIG_REPS, default 3, for
// scenarios of 1,000 devices or more) and writes them to
// bench/results/latest.json. Needs root (network namespaces). Optional:
// BENCH_WAYS=provider,floor,per-resource,rpc-floor (per-resource runs only for
// N <= BENCH_PER_RESOURCE_MAX, default 200), BENCH_PACKAGE=<another pulumi-netdev
// package root with a built dist/, to measure that build instead>,
// BENCH_CPU_PROF=<dir> (V8 CPU profiles of the provider host processes),
// BENCH_NODE_FLAGS=<flags> (for every provider host, e.g. --max-semi-space-size=1),
// BENCH_IPV6=1 (new devices get IPv6 as usual; see withoutIpv6).
// A bridge takes at most 1024 ports, so veth sizes stay at or below 1000.

import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { performance } from "node:perf_hooks";
import { cleanupStaleLabs, netnsPrerequisites, startNetnsLab, type NetnsHost, type NetnsLab } from "../test/hosts/netns";
import { CONCURRENCY, planProvider, prepareProgramDir, type ProviderPlan, runFloor, runPerResource, runProvider, type Sample, type Workload, WORKLOADS } from "./ways";

const REPO = path.resolve(__dirname, "../../..");
const PROBE = path.join(__dirname, "probe.js");
const REPS = Number(process.env.BENCH_REPS ?? 3);
/** Repetitions of the big scenarios (1,000 devices or more): the goals are medians of 3. */
const BIG_REPS = Number(process.env.BENCH_BIG_REPS ?? 3);
const BIG = 1000;
const SIZES = (process.env.BENCH_SIZES ?? "50,200,1000").split(",").filter(Boolean).map(Number);
const VXLAN = Number(process.env.BENCH_VXLAN ?? 1000);
const WAYS = new Set((process.env.BENCH_WAYS ?? "provider,floor,per-resource,rpc-floor").split(","));
const PER_RESOURCE_MAX = Number(process.env.BENCH_PER_RESOURCE_MAX ?? 200);
const PACKAGE = path.resolve(process.env.BENCH_PACKAGE ?? REPO);
const MULTI = (() => {
  const m = /^(\d+)x(\d+)$/.exec(process.env.BENCH_MULTI ?? "50x20");
  return m ? { hosts: Number(m[1]), perHost: Number(m[2]) } : undefined;
})();

/** BENCH_IPV6=1: leave IPv6 on for the devices the benchmark makes (see withoutIpv6). */
const IPV6 = process.env.BENCH_IPV6 === "1";

type Way = "provider" | "floor" | "per-resource" | "rpc-floor";

interface Scenario {
  key: string;
  /** Which ratios and goals the scenario belongs to: "veth-200", "vxlan-1000", "multi". */
  group: string;
  way: Way;
  workload: Workload;
  hosts: number;
  /** Units per host: VethPairs, or vxlan + bridge pairs. */
  perHost: number;
  samples: Sample[];
  plan?: ProviderPlan;
}

const log = (msg: string) => process.stderr.write(`[bench] ${msg}\n`);

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

function medianSample(samples: Sample[]): Sample {
  const keys = [...new Set(samples.flatMap((s) => Object.keys(s)))] as (keyof Sample)[];
  return Object.fromEntries(keys.map((k) => [k, median(samples.map((s) => s[k] as number).filter((x) => x !== undefined))])) as unknown as Sample;
}

const devices = (s: Scenario) => s.hosts * s.perHost * s.workload.devicesPerUnit;
const fmt = (x: number | undefined, digits = 2) => (x === undefined || Number.isNaN(x) ? "–" : x.toFixed(digits));

async function main(): Promise<void> {
  const pre = netnsPrerequisites();
  if (!pre.ok) throw new Error(`the benchmark starts network-namespace SSH hosts and needs: ${pre.missing.join(", ")}`);
  if (!fs.existsSync(path.join(PACKAGE, "dist", "provider", "runtime.js"))) throw new Error(`${PACKAGE}/dist is missing: run \`npm run bench\` (it builds first)`);
  const started = performance.now();

  const scenarios: Scenario[] = [];
  const add = (group: string, workload: Workload, hosts: number, perHost: number, ways: Way[]) => {
    for (const way of ways.filter((x) => WAYS.has(x))) scenarios.push({ key: `${way}-${group}`, group, way, workload, hosts, perHost, samples: [] });
  };
  for (const n of SIZES) add(`veth-${n}`, WORKLOADS.veth, 1, n, ["provider", "floor", ...(n <= PER_RESOURCE_MAX ? (["per-resource"] as Way[]) : []), "rpc-floor"]);
  if (VXLAN > 0) add(`vxlan-${VXLAN}`, WORKLOADS.vxlan, 1, VXLAN, ["provider", "floor", "rpc-floor"]);
  if (MULTI) add(`veth-${MULTI.hosts}x${MULTI.perHost}`, WORKLOADS.veth, MULTI.hosts, MULTI.perHost, ["provider", "rpc-floor"]);
  const hostsNeeded = Math.max(1, ...scenarios.map((s) => s.hosts));

  await cleanupStaleLabs();
  log(`starting ${hostsNeeded} namespace host(s) with sshd`);
  const lab: NetnsLab = await startNetnsLab({ hosts: hostsNeeded });
  try {
    if (!IPV6) for (const h of lab.hosts) await withoutIpv6(h);
    const programDir = prepareProgramDir(REPO, PACKAGE);
    if (PACKAGE !== REPO) log(`measuring the build in ${PACKAGE}`);
    log("registering the program's resources under Pulumi mocks");
    for (const s of scenarios) {
      if (s.way === "provider" || s.way === "rpc-floor") s.plan = await planProvider(programDir, lab, s.workload, lab.hosts.slice(0, s.hosts), s.perHost);
    }
    const providerBytes = scenarios.find((s) => s.plan)?.plan?.providerBytes;

    // Repetitions are interleaved so that slow phases of the machine hit every way alike.
    const repsOf = (s: Scenario) => (devices(s) >= BIG ? BIG_REPS : REPS);
    const maxReps = Math.max(...scenarios.map(repsOf));
    for (let rep = 1; rep <= maxReps; rep++) {
      for (const s of scenarios.filter((x) => rep <= repsOf(x))) {
        const hosts: NetnsHost[] = lab.hosts.slice(0, s.hosts);
        const sample =
          s.way === "provider" || s.way === "rpc-floor" ? await runProvider(programDir, PROBE, s.workload, hosts, s.plan!, s.way === "rpc-floor")
          : s.way === "floor" ? await runFloor(lab, s.workload, hosts[0], s.perHost)
          : await runPerResource(lab, hosts[0], s.perHost);
        s.samples.push(sample);
        log(`rep ${rep}/${repsOf(s)} ${s.key}: create ${fmt(sample.createMs / 1000)} s, refresh ${fmt((sample.refreshMs ?? NaN) / 1000)} s, ` +
          `no-change up ${fmt((sample.noChangeUpMs ?? NaN) / 1000)} s, delete ${fmt(sample.deleteMs / 1000)} s, ${sample.sshConnections} SSH connection(s)` +
          (sample.createCommandsPerDevice !== undefined
            ? `, ${fmt(sample.createCommandsPerDevice, 2)}/${fmt(sample.refreshCommandsPerDevice, 2)}/${fmt(sample.deleteCommandsPerDevice, 2)} round trips per device, ` +
              `no-change up: ${sample.noChangeUpConnections} connections ${sample.noChangeUpCommands} commands, RSS ${fmt(sample.peakRssMiB, 0)} MiB`
            : ""));
      }
    }

    const report = buildReport(scenarios, providerBytes, (performance.now() - started) / 1000);
    process.stdout.write(report.text);
    const out = path.join(REPO, "bench", "results", "latest.json");
    fs.mkdirSync(path.dirname(out), { recursive: true });
    fs.writeFileSync(out, JSON.stringify(report.json, null, 2) + "\n");
    log(`wrote ${path.relative(process.cwd(), out)}`);
  } finally {
    await lab.destroy();
  }
}

/**
 * New devices on a benchmark host get no IPv6 (net.ipv6.conf.default.disable_ipv6).
 * Why: the benchmark puts every veth peer in the bridge's own namespace, so each
 * port that comes up floods its IPv6 DAD, MLD and router solicitations through the
 * bridge to every other port, and every peer that receives one looks up a route
 * among the fe80::/64 routes of all devices (fib6 __find_rr_leaf walks them one by
 * one): kernel work that grows as N³ and keeps both cores in softirq for tens of
 * seconds at N = 1,000 (measured: a floor batch of 1,000 pairs is done in 0.9 s, and
 * then softirq takes 93–97 % of the machine for at least 20 s; none with IPv6 off).
 * It follows the same changes made by any tool, but a one-batch floor is over before
 * it starts and a longer run shares the machine with it, so it would be billed to
 * pulumi-netdev. With containers, the peers would sit in namespaces of their own.
 */
async function withoutIpv6(h: NetnsHost): Promise<void> {
  const r = await h.exec(["sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1"]);
  if (r.code !== 0) throw new Error(`${h.name}: sysctl net.ipv6.conf.default.disable_ipv6=1 failed: ${r.stderr.trim()}`);
}

function buildReport(scenarios: Scenario[], providerBytes: number | undefined, totalSeconds: number) {
  const med = new Map(scenarios.map((s) => [s.key, medianSample(s.samples)]));
  const lines: string[] = [];
  const date = new Date().toISOString().slice(0, 10);
  const cpus = os.cpus();
  const load = os.loadavg().map((x) => x.toFixed(1)).join(" ");
  const machine = `${cpus.length} cores (${cpus[0]?.model.trim() ?? "unknown CPU"}), Linux ${os.release()}, Node ${process.version}, load average at the end ${load}`;
  lines.push("", `pulumi-netdev benchmark, ${date}, ${machine}`, `medians of ${REPS} repetitions (${BIG_REPS} for ${BIG} devices or more), ${CONCURRENCY} operations in flight`,
    IPV6 ? "new devices get IPv6 (BENCH_IPV6=1)" : "new devices get no IPv6 (net.ipv6.conf.default.disable_ipv6=1 on the benchmark hosts; BENCH_IPV6=1 keeps it)",
    ...(process.env.BENCH_NODE_FLAGS ? [`provider hosts run with ${process.env.BENCH_NODE_FLAGS}`] : []),
    "");
  lines.push("| way | workload | devices | create s | create dev/s | refresh s | refresh dev/s | no-change up s | delete s | delete dev/s | SSH connections | round trips/device (create/refresh/delete) | provider host peak RSS MiB |");
  lines.push("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
  for (const s of scenarios) {
    const m = med.get(s.key)!;
    const n = devices(s);
    const where = s.hosts > 1 ? `${s.hosts} hosts × ${s.perHost}` : `${n}`;
    const rt = m.createCommandsPerDevice !== undefined ? `${fmt(m.createCommandsPerDevice, 2)} / ${fmt(m.refreshCommandsPerDevice, 2)} / ${fmt(m.deleteCommandsPerDevice, 2)}` : "–";
    const perS = (ms: number | undefined) => (ms === undefined ? "–" : fmt(n / (ms / 1000), 0));
    const sec = (ms: number | undefined) => (ms === undefined ? "–" : fmt(ms / 1000));
    lines.push(`| ${s.way} | ${s.workload.name} | ${where} | ${sec(m.createMs)} | ${perS(m.createMs)} | ${sec(m.refreshMs)} | ${perS(m.refreshMs)} | ${sec(m.noChangeUpMs)} | ${sec(m.deleteMs)} | ${perS(m.deleteMs)} | ${m.sshConnections} | ${rt} | ${fmt(m.peakRssMiB, 0)} |`);
  }
  lines.push(
    "",
    "provider: pulumi-netdev through the Pulumi dynamic provider host (check + create; Read of every resource; check + diff in a fresh host; delete).",
    "floor: one `ip -batch -` over one SSH session (refresh: one `ip -j -d addr show`). per-resource: a new SSH connection per device and operation.",
    "rpc-floor: the same RPCs through the same host to a provider that does nothing. Round trips: remote commands the provider ran.",
  );

  // The cost curve: devices per second of the provider as N grows (one host).
  const groups = [...new Set(scenarios.map((s) => s.group))];
  const ratios: Record<string, Record<string, number>> = {};
  lines.push("", "| scenario | provider / floor, create | provider / floor, refresh | provider / floor, delete | per-resource / provider, create | pulumi-netdev memory MiB (provider − rpc-floor RSS) |", "|---|---:|---:|---:|---:|---:|");
  for (const g of groups) {
    const p = med.get(`provider-${g}`);
    const f = med.get(`floor-${g}`);
    const r = med.get(`per-resource-${g}`);
    const z = med.get(`rpc-floor-${g}`);
    const row = {
      providerOverFloorCreate: p && f ? p.createMs / f.createMs : NaN,
      providerOverFloorRefresh: p && f && p.refreshMs && f.refreshMs ? p.refreshMs / f.refreshMs : NaN,
      providerOverFloorDelete: p && f ? p.deleteMs / f.deleteMs : NaN,
      perResourceOverProviderCreate: p && r ? r.createMs / p.createMs : NaN,
      ownMemoryMiB: p?.peakRssMiB !== undefined && z?.peakRssMiB !== undefined ? p.peakRssMiB - z.peakRssMiB : NaN,
    };
    ratios[g] = row;
    lines.push(`| ${g} | ${fmt(row.providerOverFloorCreate, 1)} | ${fmt(row.providerOverFloorRefresh, 1)} | ${fmt(row.providerOverFloorDelete, 1)} | ${fmt(row.perResourceOverProviderCreate, 1)} | ${fmt(row.ownMemoryMiB, 0)} |`);
  }
  const curve = scenarios.filter((s) => s.way === "provider" && s.hosts === 1 && s.workload.name === "veth").map((s) => ({ devices: devices(s), m: med.get(s.key)! }));
  if (curve.length > 0) {
    lines.push("", "cost curve, provider, VethPairs on one host (devices/s):", "", "| devices | create | refresh | delete | create round trips/device |", "|---:|---:|---:|---:|---:|");
    for (const c of curve) {
      const perS = (ms: number | undefined) => (ms === undefined ? "–" : fmt(c.devices / (ms / 1000), 0));
      lines.push(`| ${c.devices} | ${perS(c.m.createMs)} | ${perS(c.m.refreshMs)} | ${perS(c.m.deleteMs)} | ${fmt(c.m.createCommandsPerDevice, 2)} |`);
    }
  }
  lines.push("", `serialized \`__provider\` in every resource's state: ${providerBytes ?? "–"} bytes`);

  // Goals from issue 13.
  const goals: { goal: string; value: string; ok: boolean }[] = [];
  for (const n of [200, 1000]) {
    const r = ratios[`veth-${n}`];
    if (!r || Number.isNaN(r.providerOverFloorCreate)) continue;
    goals.push({ goal: `provider / floor ≤ 3 at N = ${n}, create`, value: fmt(r.providerOverFloorCreate, 2), ok: r.providerOverFloorCreate <= 3 });
    goals.push({ goal: `provider / floor ≤ 1 at N = ${n}, delete`, value: fmt(r.providerOverFloorDelete, 2), ok: r.providerOverFloorDelete <= 1 });
  }
  const p200 = med.get("provider-veth-200");
  const p1000 = med.get("provider-veth-1000");
  if (p200 && p1000) {
    const share = (1000 / p1000.createMs) / (200 / p200.createMs);
    goals.push({ goal: "create devices/s at N = 1000 ≥ 70 % of devices/s at N = 200", value: `${fmt(share * 100, 0)} %`, ok: share >= 0.7 });
  }
  for (const s of scenarios.filter((x) => x.way === "provider")) {
    const n = devices(s);
    if (n >= 1000 && s.hosts === 1) {
      const worst = Math.max(...s.samples.map((x) => x.refreshMs ?? Infinity));
      const m = med.get(s.key)!;
      goals.push({ goal: `refresh of ${n} devices on one host ≤ 2 s (${s.key})`, value: `${fmt((m.refreshMs ?? NaN) / 1000)} s (worst ${fmt(worst / 1000)} s)`, ok: (m.refreshMs ?? Infinity) <= 2000 });
    }
    const worstConn = Math.max(...s.samples.map((x) => x.noChangeUpConnections ?? Infinity));
    const worstCmds = Math.max(...s.samples.map((x) => x.noChangeUpCommands ?? Infinity));
    goals.push({ goal: `no-change up opens no SSH connection, runs no command (${s.key})`, value: `${worstConn} connections, ${worstCmds} commands (worst run)`, ok: worstConn === 0 && worstCmds === 0 });
    const worst = Math.max(...s.samples.map((x) => x.sshConnections));
    goals.push({ goal: `one SSH connection per host (${s.key}: ${s.hosts} host${s.hosts > 1 ? "s" : ""})`, value: `${worst} in every run`, ok: worst === s.hosts });
    const mem = ratios[s.group]?.ownMemoryMiB;
    if (n >= 1000 && mem !== undefined && !Number.isNaN(mem)) goals.push({ goal: `pulumi-netdev's own memory ≤ 20 MiB (${s.key})`, value: `${fmt(mem, 0)} MiB`, ok: mem <= 20 });
  }
  if (providerBytes !== undefined) goals.push({ goal: "serialized __provider < 1 KiB", value: `${providerBytes} bytes`, ok: providerBytes < 1024 });
  lines.push("", "| goal | measured | met |", "|---|---|---|");
  for (const g of goals) lines.push(`| ${g.goal} | ${g.value} | ${g.ok ? "yes" : "NO"} |`);
  lines.push("", `benchmark took ${fmt(totalSeconds, 0)} s`, "");

  const json = {
    date: new Date().toISOString(),
    ipv6: IPV6,
    nodeFlags: process.env.BENCH_NODE_FLAGS ?? "",
    machine: { cpus: cpus.length, cpuModel: cpus[0]?.model.trim(), memoryMiB: Math.round(os.totalmem() / 2 ** 20), kernel: os.release(), node: process.version, loadAverage: os.loadavg() },
    repetitions: REPS,
    bigRepetitions: BIG_REPS,
    concurrency: CONCURRENCY,
    providerBytes,
    scenarios: scenarios.map((s) => ({ key: s.key, way: s.way, workload: s.workload.name, hosts: s.hosts, unitsPerHost: s.perHost, devices: devices(s), median: med.get(s.key), samples: s.samples })),
    ratios,
    goals,
    totalSeconds,
  };
  return { text: lines.join("\n"), json };
}

// The provider host harness unrefs its child and pipes (so tests never hang on it):
// keep this process alive until the benchmark is done.
const keepAlive = setInterval(() => undefined, 60_000);
main()
  .catch((err) => {
    process.stderr.write(`[bench] failed: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
    process.exitCode = 1;
  })
  .finally(() => clearInterval(keepAlive));
