// `npm run bench`: creating then deleting N VethPairs (each with an address, enslaved
// to one bridge) three ways, on network-namespace test hosts this script starts:
//
//   provider      pulumi-netdev through the real Pulumi dynamic provider host over
//                 gRPC, resources driven 16 at a time as the engine does (check,
//                 create with verify-after-write, delete)
//   floor         the same changes as one `ip -batch -` over one SSH session
//   per-resource  a new SSH connection per device and operation, running its
//                 commands (what a generic remote-command resource does)
//   rpc-floor     control: the same RPCs through the same provider host to a
//                 provider that does nothing (what the host and gRPC cost alone)
//
// plus 10 hosts x 20 devices through the provider. Prints medians of BENCH_REPS
// repetitions (default 3) and writes them to bench/results/latest.json.
// Needs root (network namespaces). Optional: BENCH_SIZES=50,200
// BENCH_WAYS=provider,floor,per-resource,rpc-floor,multi  BENCH_PACKAGE=<another
// pulumi-netdev package root with a built dist/, to measure that build instead>

import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { performance } from "node:perf_hooks";
import { cleanupStaleLabs, netnsPrerequisites, startNetnsLab, type NetnsHost, type NetnsLab } from "../test/hosts/netns";
import { CONCURRENCY, planProvider, prepareProgramDir, type ProviderPlan, runFloor, runPerResource, runProvider, type Sample } from "./ways";

const REPO = path.resolve(__dirname, "../../..");
const PROBE = path.join(__dirname, "probe.js");
const REPS = Number(process.env.BENCH_REPS ?? 3);
const SIZES = (process.env.BENCH_SIZES ?? "50,200").split(",").map(Number);
const WAYS = new Set((process.env.BENCH_WAYS ?? "provider,floor,per-resource,rpc-floor,multi").split(","));
const PACKAGE = path.resolve(process.env.BENCH_PACKAGE ?? REPO);
const MULTI = { hosts: 10, perHost: 20 };

interface Scenario {
  key: string;
  way: "provider" | "floor" | "per-resource" | "rpc-floor";
  hosts: number;
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
  const keys = Object.keys(samples[0]) as (keyof Sample)[];
  return Object.fromEntries(keys.map((k) => [k, median(samples.map((s) => s[k] as number))])) as unknown as Sample;
}

const devices = (s: Scenario) => s.hosts * s.perHost;
const fmt = (x: number | undefined, digits = 2) => (x === undefined ? "–" : x.toFixed(digits));

async function main(): Promise<void> {
  const pre = netnsPrerequisites();
  if (!pre.ok) throw new Error(`the benchmark starts network-namespace SSH hosts and needs: ${pre.missing.join(", ")}`);
  if (!fs.existsSync(path.join(PACKAGE, "dist", "provider", "runtime.js"))) throw new Error(`${PACKAGE}/dist is missing: run \`npm run bench\` (it builds first)`);
  const started = performance.now();

  const scenarios: Scenario[] = [];
  for (const n of SIZES) {
    if (WAYS.has("provider")) scenarios.push({ key: `provider-${n}`, way: "provider", hosts: 1, perHost: n, samples: [] });
    if (WAYS.has("floor")) scenarios.push({ key: `floor-${n}`, way: "floor", hosts: 1, perHost: n, samples: [] });
    if (WAYS.has("per-resource")) scenarios.push({ key: `per-resource-${n}`, way: "per-resource", hosts: 1, perHost: n, samples: [] });
    if (WAYS.has("rpc-floor")) scenarios.push({ key: `rpc-floor-${n}`, way: "rpc-floor", hosts: 1, perHost: n, samples: [] });
  }
  if (WAYS.has("multi")) scenarios.push({ key: `provider-${MULTI.hosts}x${MULTI.perHost}`, way: "provider", ...MULTI, samples: [] });
  const hostsNeeded = Math.max(1, ...scenarios.map((s) => s.hosts));

  await cleanupStaleLabs();
  log(`starting ${hostsNeeded} namespace host(s) with sshd`);
  const lab: NetnsLab = await startNetnsLab({ hosts: hostsNeeded });
  try {
    const programDir = prepareProgramDir(REPO, PACKAGE);
    if (PACKAGE !== REPO) log(`measuring the build in ${PACKAGE}`);
    log("registering the program's resources under Pulumi mocks");
    for (const s of scenarios) {
      if (s.way === "provider" || s.way === "rpc-floor") s.plan = await planProvider(programDir, lab, lab.hosts.slice(0, s.hosts), s.perHost);
    }
    const providerBytes = scenarios.find((s) => s.plan)?.plan?.providerBytes;

    // Repetitions are interleaved so that slow phases of the machine hit every way alike.
    for (let rep = 1; rep <= REPS; rep++) {
      for (const s of scenarios) {
        const hosts: NetnsHost[] = lab.hosts.slice(0, s.hosts);
        const sample =
          s.way === "provider" || s.way === "rpc-floor" ? await runProvider(programDir, PROBE, hosts, s.plan!, s.way === "rpc-floor")
          : s.way === "floor" ? await runFloor(lab, hosts[0], s.perHost)
          : await runPerResource(lab, hosts[0], s.perHost);
        s.samples.push(sample);
        log(`rep ${rep}/${REPS} ${s.key}: create ${fmt(sample.createMs / 1000)} s, delete ${fmt(sample.deleteMs / 1000)} s, ${sample.sshConnections} SSH connection(s)` +
          (sample.createCommandsPerDevice !== undefined ? `, ${fmt(sample.createCommandsPerDevice, 1)}/${fmt(sample.deleteCommandsPerDevice, 1)} SSH commands per device, RSS ${fmt(sample.peakRssMiB, 0)} MiB` : ""));
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

function buildReport(scenarios: Scenario[], providerBytes: number | undefined, totalSeconds: number) {
  const med = new Map(scenarios.map((s) => [s.key, medianSample(s.samples)]));
  const lines: string[] = [];
  const date = new Date().toISOString().slice(0, 10);
  const cpus = os.cpus();
  const machine = `${cpus.length} cores (${cpus[0]?.model.trim() ?? "unknown CPU"}), Linux ${os.release()}, Node ${process.version}`;
  lines.push("", `pulumi-netdev benchmark, ${date}, ${machine}`, `medians of ${REPS} repetitions, ${CONCURRENCY} operations in flight`, "");
  lines.push("| way | devices | create s | create dev/s | delete s | delete dev/s | SSH connections | SSH commands/device (create/delete) | provider host peak RSS MiB |");
  lines.push("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
  for (const s of scenarios) {
    const m = med.get(s.key)!;
    const n = devices(s);
    const where = s.hosts > 1 ? `${s.hosts} hosts × ${s.perHost}` : `${n}`;
    const cmds = m.createCommandsPerDevice !== undefined ? `${fmt(m.createCommandsPerDevice, 1)} / ${fmt(m.deleteCommandsPerDevice, 1)}` : "–";
    lines.push(`| ${s.way} | ${where} | ${fmt(m.createMs / 1000)} | ${fmt(n / (m.createMs / 1000), 0)} | ${fmt(m.deleteMs / 1000)} | ${fmt(n / (m.deleteMs / 1000), 0)} | ${m.sshConnections} | ${cmds} | ${fmt(m.peakRssMiB, 0)} |`);
  }

  lines.push(
    "",
    "provider: pulumi-netdev through the Pulumi dynamic provider host (check + create, delete). floor: one `ip -batch -` over one SSH session.",
    "per-resource: a new SSH connection per device and operation. rpc-floor: the same RPCs through the same host to a provider that does nothing.",
  );
  const ratios: Record<string, Record<string, number>> = {};
  lines.push("", "| devices | provider / floor, create | provider / floor, delete | per-resource / provider, create | per-resource / provider, delete |", "|---:|---:|---:|---:|---:|");
  for (const n of SIZES) {
    const p = med.get(`provider-${n}`);
    const f = med.get(`floor-${n}`);
    const r = med.get(`per-resource-${n}`);
    const row = {
      providerOverFloorCreate: p && f ? p.createMs / f.createMs : NaN,
      providerOverFloorDelete: p && f ? p.deleteMs / f.deleteMs : NaN,
      perResourceOverProviderCreate: p && r ? r.createMs / p.createMs : NaN,
      perResourceOverProviderDelete: p && r ? r.deleteMs / p.deleteMs : NaN,
    };
    ratios[String(n)] = row;
    const c = (x: number) => (Number.isNaN(x) ? "–" : fmt(x, 1));
    lines.push(`| ${n} | ${c(row.providerOverFloorCreate)} | ${c(row.providerOverFloorDelete)} | ${c(row.perResourceOverProviderCreate)} | ${c(row.perResourceOverProviderDelete)} |`);
  }
  lines.push("", `serialized \`__provider\` in every resource's state: ${providerBytes ?? "–"} bytes`);

  // Goals from issue 6.
  const big = String(Math.max(...SIZES));
  const goals: { goal: string; value: string; ok: boolean }[] = [];
  const rb = ratios[big];
  if (rb && !Number.isNaN(rb.providerOverFloorCreate)) {
    goals.push({ goal: `provider / floor ≤ 3 at N = ${big}, create`, value: fmt(rb.providerOverFloorCreate, 2), ok: rb.providerOverFloorCreate <= 3 });
    goals.push({ goal: `provider / floor ≤ 3 at N = ${big}, delete`, value: fmt(rb.providerOverFloorDelete, 2), ok: rb.providerOverFloorDelete <= 3 });
  }
  if (rb && !Number.isNaN(rb.perResourceOverProviderCreate)) {
    goals.push({ goal: `per-resource / provider ≥ 5 at N = ${big}, create`, value: fmt(rb.perResourceOverProviderCreate, 2), ok: rb.perResourceOverProviderCreate >= 5 });
    goals.push({ goal: `per-resource / provider ≥ 5 at N = ${big}, delete`, value: fmt(rb.perResourceOverProviderDelete, 2), ok: rb.perResourceOverProviderDelete >= 5 });
  }
  for (const s of scenarios.filter((x) => x.way === "provider")) {
    const worst = Math.max(...s.samples.map((x) => x.sshConnections));
    goals.push({ goal: `one SSH connection per host (${s.key}: ${s.hosts} host${s.hosts > 1 ? "s" : ""})`, value: `${worst} in every run`, ok: worst === s.hosts });
  }
  const pBig = scenarios.find((s) => s.key === `provider-${big}`);
  if (pBig) {
    const worst = Math.max(...pBig.samples.map((x) => x.peakRssMiB ?? 0));
    goals.push({ goal: `provider host peak RSS < 150 MiB at N = ${big}`, value: `${fmt(worst, 0)} MiB (worst run)`, ok: worst < 150 });
  }
  if (providerBytes !== undefined) goals.push({ goal: "serialized __provider < 1 KiB", value: `${providerBytes} bytes`, ok: providerBytes < 1024 });
  lines.push("", "| goal | measured | met |", "|---|---|---|");
  for (const g of goals) lines.push(`| ${g.goal} | ${g.value} | ${g.ok ? "yes" : "NO"} |`);
  lines.push("", `benchmark took ${fmt(totalSeconds, 0)} s`, "");

  const json = {
    date: new Date().toISOString(),
    machine: { cpus: cpus.length, cpuModel: cpus[0]?.model.trim(), memoryMiB: Math.round(os.totalmem() / 2 ** 20), kernel: os.release(), node: process.version, loadAverage: os.loadavg() },
    repetitions: REPS,
    concurrency: CONCURRENCY,
    providerBytes,
    scenarios: scenarios.map((s) => ({ key: s.key, way: s.way, hosts: s.hosts, devicesPerHost: s.perHost, devices: devices(s), median: med.get(s.key), samples: s.samples })),
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
