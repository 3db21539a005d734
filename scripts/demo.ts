// `npm run demo`: the vxlan-fabric example on three throw-away hosts, end to end.
//
//   1. starts three namespace hosts: network namespaces running sshd, joined by an
//      underlay bridge (test/hosts/netns.ts);
//   2. deploys examples/vxlan-fabric onto them: with the Pulumi CLI (local file
//      backend in a temp dir) when `pulumi` is on PATH, otherwise through the Pulumi
//      dynamic provider host the CLI would start (Configure, Check, Create over gRPC;
//      the program runs under Pulumi's mocks, which hand each registration over);
//   3. proves the overlay: the endpoint on host 1 pings those on hosts 2 and 3, and
//      host 1's bridge has learned their MACs behind the VXLAN device;
//   4. prints what was created, then deletes it and destroys the hosts.
//
// Teardown also runs after a failure or Ctrl-C/SIGTERM, and the next run sweeps
// what a killed one (SIGKILL) left. Needs root (network namespaces).
import { execFile, execFileSync, spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { cleanupStaleLabs, netnsPrerequisites, startNetnsLab, type NetnsHost, type NetnsLab } from "../test/hosts/netns";
import { DEMO_EXAMPLE, exampleDir, linkExampleDeps, projectName, REPO_ROOT, runExample, stageExample } from "../test/support/examples";
import { sshExec } from "../test/support/kernel";
import { startProviderHost } from "../test/support/provider-host";
import { DYNAMIC_TYPE_PREFIX, providerHostApi, Stack } from "../test/support/stack";

const REPO = REPO_ROOT;
const EXAMPLE = exampleDir(DEMO_EXAMPLE);
const PROJECT = projectName(EXAMPLE);
const VNI = 42;
/** Lab ids of this script start with it, so a stale run's leftovers are recognisable. */
const LAB_PREFIX = "ndemo";
const PING_COUNT = 3;

const started = Date.now();
const say = (msg: string) => process.stdout.write(`[demo ${((Date.now() - started) / 1000).toFixed(1).padStart(5)}s] ${msg}\n`);

/** One deployed resource, as either way of deploying reports it. */
interface Deployed {
  type: string;
  id: string;
  outs: Record<string, any>;
}

interface Deployment {
  resources: Deployed[];
  outputs: Record<string, any>;
  destroy(): Promise<void>;
}

/** What teardownSync undoes: the lab, child processes (the Pulumi CLI), temp dirs. */
const state: { lab?: NetnsLab; children: ChildProcess[]; tempDirs: string[]; tearingDown: boolean } = { children: [], tempDirs: [], tearingDown: false };

async function main(): Promise<number> {
  if (typeof process.getuid === "function" && process.getuid() !== 0) {
    process.stderr.write(
      "The demo needs root: it creates network namespaces, veth pairs and a bridge on this machine and runs sshd inside the namespaces.\n" +
        "Run it as root, e.g. `sudo npm run demo` (everything it creates is removed when it ends).\n",
    );
    return 1;
  }
  const missing = [...netnsPrerequisites().missing, ...(onPath("ping") ? [] : ["ping (package iputils-ping)"])];
  if (missing.length > 0) {
    process.stderr.write(`The demo needs: ${missing.join(", ")}\n`);
    return 1;
  }
  if (!fs.existsSync(path.join(REPO, "dist/sdk/index.js"))) {
    process.stderr.write("dist/ is missing: run `npm run demo` (it builds first)\n");
    return 1;
  }
  installSignalHandlers();

  await cleanupStaleLabs(LAB_PREFIX);
  removeEndpointNamespaces((id) => !fs.existsSync(path.join(os.tmpdir(), `pulumi-netdev-netns-${id}`)));

  say("starting 3 test hosts: network namespaces running sshd, joined by an underlay bridge …");
  const lab = await startNetnsLab({ hosts: 3, id: LAB_PREFIX + randomBytes(2).toString("hex") });
  state.lab = lab;
  for (const [i, h] of lab.hosts.entries()) say(`  host ${i + 1}: ${h.name}, underlay ${h.address}, sshd pid ${h.sshdPid}`);

  // The stack config a user would set with `pulumi config set` (structured values as JSON text).
  const hosts = lab.hosts.map((h, i) => ({ name: h.name, host: h.address, hostKey: h.connection.hostKey, endpoint: `192.0.2.${i + 1}/24` }));
  const config = { "netdev:user": "root", [`${PROJECT}:vni`]: String(VNI), [`${PROJECT}:hosts`]: JSON.stringify(hosts) };
  const secrets = { "netdev:privateKey": lab.privateKey };

  let deployment: Deployment | undefined;
  let failure: unknown;
  try {
    const cli = onPath("pulumi");
    if (cli) {
      say("Pulumi CLI found: `pulumi up` with a local file backend in a temp dir");
      deployment = await deployWithCli(config, secrets, (d) => (deployment = d));
    } else {
      say(
        "Pulumi CLI not found — install it with `curl -fsSL https://get.pulumi.com | sh` (https://www.pulumi.com/docs/install/); " +
          "driving the same program through the Pulumi provider host instead (what `pulumi up` runs)",
      );
      deployment = await deployWithProviderHost({ ...config, ...secrets }, (d) => (deployment = d));
    }
    await proveOverlay(lab, hosts);
    printCreated(deployment);
  } catch (e) {
    failure = e;
    say(`FAILED: ${(e as Error)?.message ?? e}`);
  }

  say("tearing down: deleting what the stack created, then the test hosts …");
  try {
    await deployment?.destroy();
  } catch (e) {
    failure ??= e;
    say(`FAILED to delete some resources (destroying the hosts removes them anyway): ${(e as Error).message}`);
  }
  teardownSync();
  const left = leftovers(lab.id);
  if (left.length > 0) {
    say(`FAILED: left behind: ${left.join(", ")}`);
    return 1;
  }
  say(`removed the hosts, their namespaces, bridge and sshds: this machine is as the demo found it`);
  say(failure ? "demo FAILED" : `demo finished in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  return failure ? 1 : 0;
}

// ---------------------------------------------------------------------------
// deploying

/** Through the dynamic provider host: the program under mocks, each registration checked and created over gRPC. */
async function deployWithProviderHost(config: Record<string, string>, onStart: (d: Deployment) => void): Promise<Deployment> {
  say("compiling examples/vxlan-fabric (a copy in a temporary directory) against the built package …");
  // Never built inside examples/: a user's `npm install` there must find it as cloned.
  const project = stageExample("vxlan-fabric");
  state.tempDirs.push(project);
  await compile(project);
  say("starting the Pulumi dynamic provider host in that copy …");
  const host = await startProviderHost({ cwd: project, env: { PULUMI_NODEJS_PROJECT: PROJECT } });
  // (On exit, including a signal's, startProviderHost's own exit hook kills it.)
  say(`  provider host pid ${host.pid}, gRPC port ${host.port}; Configure with the stack config`);
  await host.configure(config);

  const stack = new Stack(providerHostApi(host), (step, r) => {
    const cls = r.type.slice(DYNAMIC_TYPE_PREFIX.length);
    const where = hostOf(r.id);
    const ifindex = r.outs.ifindex !== undefined ? ` ifindex ${r.outs.ifindex}` : "";
    say(`  ${step.op === "create" ? "+ created" : step.op === "delete" ? "- deleted" : `~ ${step.op}`} ${cls.padEnd(9)} ${String(r.outs.name ?? r.name).padEnd(14)} on host ${where}${step.op === "create" ? ifindex : ""} (${step.ms} ms)`);
  });
  const deployment: Deployment = {
    resources: [],
    outputs: {},
    async destroy() {
      try {
        await stack.destroy();
      } finally {
        await host.stop();
      }
    },
  };
  onStart(deployment);
  say("pulumi up (Check → Create per resource, in dependency order) …");
  const { run } = await stack.up((engine) => runExample(project, { config, engine }));
  deployment.outputs = run.outputs;
  deployment.resources = stack.resources.map((r) => ({ type: r.type, id: r.id, outs: r.outs }));
  return deployment;
}

/** With the Pulumi CLI: a copy of the example in a temp dir, a file backend there, passphrase secrets. */
async function deployWithCli(config: Record<string, string>, secrets: Record<string, string>, onStart: (d: Deployment) => void): Promise<Deployment> {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), "pulumi-netdev-demo-"));
  state.tempDirs.push(work);
  const project = path.join(work, "project");
  fs.mkdirSync(path.join(work, "state"));
  fs.mkdirSync(project);
  for (const f of ["Pulumi.yaml", "package.json", "tsconfig.json", "index.ts"]) fs.copyFileSync(path.join(EXAMPLE, f), path.join(project, f));
  linkExampleDeps(project, ["typescript"]);
  const env = { ...process.env, PULUMI_BACKEND_URL: `file://${path.join(work, "state")}`, PULUMI_CONFIG_PASSPHRASE: "netdev-demo", PULUMI_SKIP_UPDATE_CHECK: "true" };
  const pulumi = (args: string[], opts: { input?: string; capture?: boolean } = {}) =>
    new Promise<string>((resolve, reject) => {
      const child = spawn("pulumi", [...args, "--non-interactive"], { cwd: project, env, stdio: [opts.input ? "pipe" : "ignore", opts.capture ? "pipe" : "inherit", "inherit"] });
      state.children.push(child);
      let out = "";
      child.stdout?.on("data", (d) => (out += d));
      child.stdin?.end(opts.input);
      child.on("error", reject);
      child.on("exit", (code) => (code === 0 ? resolve(out) : reject(new Error(`pulumi ${args[0]} exited ${code}`))));
    });

  await pulumi(["stack", "init", "demo"]);
  for (const [k, v] of Object.entries(config)) await pulumi(["config", "set", k, v]);
  for (const [k, v] of Object.entries(secrets)) await pulumi(["config", "set", "--secret", k], { input: v });
  const deployment: Deployment = {
    resources: [],
    outputs: {},
    async destroy() {
      await pulumi(["destroy", "--yes", "--skip-preview"]);
      await pulumi(["stack", "rm", "--yes"]);
    },
  };
  onStart(deployment);
  await pulumi(["up", "--yes", "--skip-preview"]);
  deployment.outputs = JSON.parse(await pulumi(["stack", "output", "--json"], { capture: true }));
  const exported = JSON.parse(await pulumi(["stack", "export"], { capture: true }));
  deployment.resources = (exported.deployment.resources as any[])
    .filter((r) => r.type.startsWith(DYNAMIC_TYPE_PREFIX))
    .map((r) => ({ type: r.type, id: r.id, outs: r.outputs }));
  return deployment;
}

function compile(dir: string): Promise<void> {
  const tsc = path.join(REPO, "node_modules/typescript/bin/tsc");
  return new Promise((resolve, reject) =>
    execFile(process.execPath, [tsc, "-p", path.join(dir, "tsconfig.json"), "--pretty", "false"], { cwd: dir, encoding: "utf8" }, (err, stdout, stderr) =>
      err ? reject(new Error(`tsc failed for ${dir}:\n${stdout}${stderr}`)) : resolve(),
    ),
  );
}

// ---------------------------------------------------------------------------
// proving and showing

interface HostEntry {
  name: string;
  host: string;
  endpoint: string;
}

async function proveOverlay(lab: NetnsLab, hosts: HostEntry[]): Promise<void> {
  const [from, ...to] = lab.hosts;
  const ssh = sshExec(lab, from);
  const ns = `ep-${from.name}`;
  const source = hosts[0].endpoint.split("/")[0];
  say(`proving the overlay: pinging from namespace ${ns} on host 1 (${source}) across the VXLAN …`);
  for (const [i, h] of to.entries()) {
    const target = hosts[i + 1].endpoint.split("/")[0];
    const r = await ssh.exec(["ip", "netns", "exec", ns, "ping", "-c", String(PING_COUNT), "-i", "0.2", "-W", "2", target]);
    const stats = pingStats(r.stdout);
    if (r.code !== 0 || stats.received !== PING_COUNT)
      throw new Error(`ping ${source} → ${target} (host ${i + 2}, ${h.name}) failed: ${stats.received ?? 0}/${PING_COUNT} replies\n${r.stdout}${r.stderr}`);
    say(`  ping host 1 ${source} → host ${i + 2} ${target}: ${stats.received}/${PING_COUNT} replies, rtt avg ${stats.avgMs} ms`);
  }
  // Which port the bridge learned the far endpoints' MACs on: the vxlan device, i.e. the frames came through the tunnel.
  const macs = await Promise.all(to.map(async (h) => (await ipJson(lab, h, ["ip", "-n", `ep-${h.name}`, "-j", "link", "show", "dev", "eth0"]))[0].address as string));
  const fdb = (await ipJson(lab, from, ["bridge", "-j", "fdb", "show", "br", `brvx${VNI}`])) as { mac: string; ifname: string }[];
  for (const [i, mac] of macs.entries()) {
    const port = fdb.find((e) => e.mac === mac)?.ifname;
    if (port !== `vx${VNI}`) throw new Error(`host 1's bridge did not learn ${mac} (host ${i + 2}'s endpoint) behind vx${VNI} (found: ${port ?? "nothing"})`);
    say(`  host 1's bridge brvx${VNI} learned ${mac} (host ${i + 2}'s endpoint) on port vx${VNI}: the frames came through the tunnel`);
  }
}

async function ipJson(lab: NetnsLab, h: NetnsHost, argv: string[]): Promise<any> {
  const r = await sshExec(lab, h).exec(argv);
  if (r.code !== 0) throw new Error(`${argv.join(" ")} on ${h.name} exited ${r.code}: ${r.stderr}`);
  return JSON.parse(r.stdout);
}

function pingStats(out: string): { transmitted?: number; received?: number; avgMs?: string } {
  const m = /(\d+) packets transmitted, (\d+) (?:packets )?received/.exec(out);
  const rtt = /= [\d.]+\/([\d.]+)\//.exec(out);
  return { transmitted: m ? Number(m[1]) : undefined, received: m ? Number(m[2]) : undefined, avgMs: rtt?.[1] };
}

/** "2 (10.231.7.2)" for a resource id ("<host>:<port>/<namespace>/<name>"). */
function hostOf(id: string): string {
  const address = id.split(":")[0];
  const i = state.lab?.hosts.findIndex((h) => h.address === address) ?? -1;
  return i >= 0 ? `${i + 1} (${address})` : address;
}

function printCreated(d: Deployment): void {
  const rows = d.resources.map((r) => [r.type.slice(DYNAMIC_TYPE_PREFIX.length), String(r.outs.name), hostOf(r.id), r.outs.ifindex === undefined ? "-" : String(r.outs.ifindex)]);
  rows.sort((a, b) => a[2].localeCompare(b[2]) || a[0].localeCompare(b[0]));
  const table = [["TYPE", "NAME", "HOST", "IFINDEX"], ...rows];
  const widths = table[0].map((_, c) => Math.max(...table.map((row) => row[c].length)));
  say(`created ${rows.length} resources:`);
  for (const row of table) say(`  ${row.map((cell, c) => cell.padEnd(widths[c])).join("  ")}`);
  for (const h of d.outputs.fabricHosts ?? []) say(`  fabric on ${h.name}: bridge ${h.bridgeName} (ifindex ${h.bridgeIfindex}), vxlan ${h.vxlanName} (ifindex ${h.vxlanIfindex}), mtu ${d.outputs.mtu}`);
}

// ---------------------------------------------------------------------------
// teardown

/**
 * Synchronous, so it also runs from a signal handler. Destroying a host's network
 * namespace removes the devices in it. An endpoint namespace was created over SSH,
 * inside that sshd's mount namespace: once sshd is gone only its name file is left
 * in /run/netns, which `ip netns del` removes.
 */
function teardownSync(): void {
  for (const child of state.children.splice(0)) {
    try {
      child.kill("SIGKILL");
    } catch {
      /* already gone */
    }
  }
  const lab = state.lab;
  if (lab) {
    void lab.destroy(); // synchronous inside (see test/hosts/netns.ts)
    removeEndpointNamespaces((id) => id === lab.id);
  }
  for (const dir of state.tempDirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
}

/** Endpoint namespaces (ep-<lab id>-h<n>) of the labs `isGone` names. */
function removeEndpointNamespaces(isGone: (labId: string) => boolean): void {
  let names: string[] = [];
  try {
    names = fs.readdirSync("/run/netns");
  } catch {
    return;
  }
  for (const name of names) {
    const m = new RegExp(`^ep-(${LAB_PREFIX}[0-9a-f]{4})-h\\d+$`).exec(name);
    if (m && isGone(m[1])) {
      try {
        execFileSync("ip", ["netns", "del", name], { stdio: "ignore" });
      } catch {
        /* already gone */
      }
    }
  }
}

/** Anything of the lab still on this machine: namespaces, links, sshd processes. */
function leftovers(labId: string): string[] {
  const out: string[] = [];
  try {
    out.push(...fs.readdirSync("/run/netns").filter((n) => n.includes(labId)).map((n) => `namespace ${n}`));
  } catch {
    /* no /run/netns */
  }
  const links = JSON.parse(execFileSync("ip", ["-j", "link", "show"], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] })) as { ifname: string }[];
  out.push(...links.filter((l) => l.ifname.startsWith(labId)).map((l) => `link ${l.ifname}`));
  for (const pid of fs.readdirSync("/proc").filter((d) => /^\d+$/.test(d))) {
    try {
      if (fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").includes(`pulumi-netdev-netns-${labId}`)) out.push(`process ${pid}`);
    } catch {
      /* exited */
    }
  }
  return out;
}

function installSignalHandlers(): void {
  for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    process.on(sig, () => {
      if (state.tearingDown) return;
      state.tearingDown = true;
      say(`interrupted (${sig}): tearing down the test hosts and everything on them …`);
      teardownSync();
      say("torn down");
      process.exit(128 + os.constants.signals[sig]);
    });
  }
}

function onPath(cmd: string): boolean {
  return (process.env.PATH ?? "").split(":").some((d) => {
    try {
      fs.accessSync(path.join(d, cmd), fs.constants.X_OK);
      return fs.statSync(path.join(d, cmd)).isFile();
    } catch {
      return false;
    }
  });
}

// The provider host's child process and pipes are unref'ed (test/support/provider-host.ts):
// while main() waits on them, only this timer keeps Node from exiting early.
const keepAlive = setInterval(() => {}, 1 << 30);
main().then(
  (code) => {
    clearInterval(keepAlive);
    process.exit(code);
  },
  (e) => {
    say(`FAILED: ${(e as Error)?.stack ?? e}`);
    teardownSync();
    process.exit(1);
  },
);
