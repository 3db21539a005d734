// `npm run demo` end to end, as a user runs it (README's main command), in its no-CLI
// mode (PATH without `pulumi`): it must deploy the vxlan-fabric example onto its own
// namespace hosts, prove the overlay with pings, print what it created, and leave
// nothing behind — also when interrupted part-way. Leftovers are looked for
// independently of the demo's own check: /run/netns, links, processes, temp state.
import { execFileSync, spawn } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { expect, it } from "vitest";
import { netnsPrerequisites } from "../hosts/netns";
import { DEMO_EXAMPLE, exampleDir, REPO_ROOT } from "../support/examples";
import { hostSuite } from "../support/prereq";

const DEMO_JS = path.join(REPO_ROOT, ".cache/demo-build/scripts/demo.js");
const EXAMPLE = exampleDir(DEMO_EXAMPLE);

/** The environment without the Pulumi CLI (the demo's no-CLI mode) or the test runner's loader hooks. */
function demoEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, CI: "true" };
  delete env.NODE_OPTIONS;
  env.PATH = (env.PATH ?? "")
    .split(":")
    .filter((d) => d !== "" && !fs.existsSync(path.join(d, "pulumi")))
    .join(":");
  return env;
}

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  ms: number;
}

/** Runs a command; `onLine` sees each stdout line as it comes (and may act on the child). */
function run(cmd: string, argv: string[], opts: { env?: NodeJS.ProcessEnv; onLine?: (line: string, pid: number) => void; timeoutMs?: number } = {}): Promise<Run> {
  const t0 = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, argv, { cwd: REPO_ROOT, env: opts.env ?? demoEnv(), stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    let partial = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => {
      stdout += d;
      partial += d;
      const lines = partial.split("\n");
      partial = lines.pop()!;
      for (const line of lines) opts.onLine?.(line, child.pid!);
    });
    child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    // Below the test's own timeout, so a hung demo is stopped (and tears down) before vitest gives up on it.
    const timer = setTimeout(() => child.kill("SIGTERM"), opts.timeoutMs ?? 90_000);
    child.on("error", reject);
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, ms: Date.now() - t0 });
    });
  });
}

/** The demo's lab id, from its "host 1: <id>-h1, …" line. */
function labIdOf(stdout: string): string {
  const m = /host 1: (ndemo[0-9a-f]{4})-h1,/.exec(stdout);
  if (!m) throw new Error(`the demo printed no lab id:\n${stdout}`);
  return m[1];
}

/** What of the lab is still on this machine, found without the demo's code. */
function leftovers(labId: string): string[] {
  const out: string[] = [];
  const netns = fs.existsSync("/run/netns") ? fs.readdirSync("/run/netns") : [];
  out.push(...netns.filter((n) => n.includes(labId)).map((n) => `/run/netns/${n}`));
  const links = JSON.parse(execFileSync("ip", ["-j", "link", "show"], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] })) as { ifname: string }[];
  out.push(...links.filter((l) => l.ifname.startsWith(labId)).map((l) => `link ${l.ifname}`));
  const stateDir = path.join(os.tmpdir(), `pulumi-netdev-netns-${labId}`);
  if (fs.existsSync(stateDir)) out.push(stateDir);
  for (const pid of fs.readdirSync("/proc").filter((d) => /^\d+$/.test(d))) {
    try {
      const cmdline = fs.readFileSync(`/proc/${pid}/cmdline`, "utf8");
      // sshds of the lab run with their config in its state dir; the provider host runs in the example's directory.
      if (cmdline.includes(stateDir)) out.push(`process ${pid}: ${cmdline.replace(/\0/g, " ")}`);
      if (cmdline.includes("dynamic-provider") && fs.readlinkSync(`/proc/${pid}/cwd`) === EXAMPLE) out.push(`provider host ${pid}`);
    } catch {
      /* exited meanwhile */
    }
  }
  return out;
}

/** The non-root run drops privileges with setpriv (util-linux). */
const setprivMissing = ["/usr/bin/setpriv", "/bin/setpriv"].some((p) => fs.existsSync(p)) ? [] : ["setpriv (package util-linux)"];

hostSuite("npm run demo", [...netnsPrerequisites().missing, ...setprivMissing], () => {
  it("deploys the fabric through the provider host, proves the overlay, prints what it made, leaves nothing", async () => {
    const r = await run("npm", ["run", "demo"], { timeoutMs: 270_000 });
    console.log(`npm run demo: exit ${r.code} in ${r.ms} ms`);
    expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(0);
    const out = r.stdout;
    expect(out).toContain("Pulumi CLI not found — install it with `curl -fsSL https://get.pulumi.com | sh` (https://www.pulumi.com/docs/install/); driving the same program through the Pulumi provider host instead (what `pulumi up` runs)");
    // The proof: host 1's endpoint reaches hosts 2 and 3, through the tunnel.
    expect(out).toMatch(/ping host 1 192\.0\.2\.1 → host 2 192\.0\.2\.2: 3\/3 replies/);
    expect(out).toMatch(/ping host 1 192\.0\.2\.1 → host 3 192\.0\.2\.3: 3\/3 replies/);
    expect(out.match(/host 1's bridge brvx42 learned ([0-9a-f]{2}:){5}[0-9a-f]{2} \(host [23]'s endpoint\) on port vx42/g)).toHaveLength(2);
    // What it created: 4 resources on each of 3 hosts, with kernel ifindexes.
    expect(out).toContain("created 12 resources:");
    for (const host of [1, 2, 3]) {
      for (const [type, name] of [["Bridge", "brvx42"], ["Vxlan", "vx42"], ["VethPair", "ep0"]]) expect(out).toMatch(new RegExp(`${type} +${name} +${host} \\(10\\.231\\.\\d+\\.${host}\\) +\\d+`));
      expect(out).toMatch(new RegExp(`Namespace +ep-ndemo[0-9a-f]{4}-h${host} +${host} \\(`));
    }
    expect(out.match(/- deleted /g)).toHaveLength(12);
    expect(out).toMatch(/demo finished in [\d.]+ s/);
    expect(leftovers(labIdOf(out))).toEqual([]);
  }, 300_000);

  it("interrupted (SIGINT) in the middle of the deployment, it still removes everything", async () => {
    // The compiled script (built by the test above), so the signal goes to the demo itself, not npm.
    expect(fs.existsSync(DEMO_JS)).toBe(true);
    let interrupted = false;
    const r = await run(process.execPath, [DEMO_JS], {
      onLine(line, pid) {
        if (!interrupted && /\+ created (Bridge|Vxlan|VethPair)/.test(line)) {
          interrupted = true;
          process.kill(pid, "SIGINT");
        }
      },
    });
    expect(interrupted, r.stdout).toBe(true);
    expect(r.stdout).toContain("interrupted (SIGINT): tearing down");
    expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(130);
    expect(leftovers(labIdOf(r.stdout))).toEqual([]);
  }, 120_000);

  it("when the deployment fails part-way (its provider host dies), it reports the failure, exits 1 and still removes everything", async () => {
    expect(fs.existsSync(DEMO_JS)).toBe(true);
    let providerPid = 0;
    let killed = false;
    const r = await run(process.execPath, [DEMO_JS], {
      onLine(line) {
        const m = /provider host pid (\d+),/.exec(line);
        if (m) providerPid = Number(m[1]);
        if (!killed && providerPid && /\+ created /.test(line)) {
          killed = true;
          process.kill(providerPid, "SIGKILL");
        }
      },
    });
    expect(killed, r.stdout).toBe(true);
    expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(1);
    expect(r.stdout).toContain("FAILED");
    expect(r.stdout).toContain("demo FAILED");
    expect(r.stdout).not.toContain("ping host 1");
    expect(leftovers(labIdOf(r.stdout))).toEqual([]);
  }, 120_000);

  it("without root it says that it needs root, and exits 1 having done nothing", async () => {
    expect(fs.existsSync(DEMO_JS)).toBe(true);
    const r = await run("setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups", process.execPath, DEMO_JS]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("The demo needs root");
    expect(r.stderr).toContain("sudo npm run demo");
    expect(r.stdout).toBe("");
  });
});
