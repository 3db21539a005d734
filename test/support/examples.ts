// Test support for the example projects under examples/: copy one into a temporary
// directory and lay out its node_modules there (nothing is ever written into
// examples/: a user's `npm install` there must find it as cloned), compile it with
// the repo's TypeScript, and run the compiled program under Pulumi mocks the way
// `pulumi up` would run it (by Node's own require, never vitest's transform: the
// program must load the BUILT package `pulumi-netdev` by name).
import { execFile } from "node:child_process";
import * as fs from "node:fs";
import { createRequire } from "node:module";
import * as os from "node:os";
import * as path from "node:path";
import { captureRegistrations, type Registration } from "./provider-host";

/** The repository root: the nearest directory above this file with pulumi-netdev's package.json (also when compiled into .cache/). */
export const REPO_ROOT = findRepoRoot(__dirname);

function findRepoRoot(from: string): string {
  for (let dir = from; dir !== path.dirname(dir); dir = path.dirname(dir)) {
    const pkg = path.join(dir, "package.json");
    if (fs.existsSync(pkg) && JSON.parse(fs.readFileSync(pkg, "utf8")).name === "pulumi-netdev") return dir;
  }
  throw new Error(`no pulumi-netdev package.json above ${from}`);
}
export const EXAMPLES_DIR = path.join(REPO_ROOT, "examples");
/** The example `npm run demo` deploys; the root Pulumi.yaml names it as its program (main). */
export const DEMO_EXAMPLE = "vxlan-fabric";

/** Every example project (a directory with a Pulumi.yaml), sorted by name. */
export function listExamples(): string[] {
  return fs
    .readdirSync(EXAMPLES_DIR, { withFileTypes: true })
    .filter((e) => e.isDirectory() && fs.existsSync(path.join(EXAMPLES_DIR, e.name, "Pulumi.yaml")))
    .map((e) => e.name)
    .sort();
}

/** The example's source folder in the repository (read it; build and run a {@link stageExample} copy). */
export function exampleDir(name: string): string {
  return path.join(EXAMPLES_DIR, name);
}

const staged: string[] = [];
process.on("exit", () => {
  for (const dir of staged) fs.rmSync(dir, { recursive: true, force: true });
});

/**
 * A fresh copy of examples/<name> (its sources, no node_modules or bin) in a temporary
 * directory, with its dependencies linked as {@link linkExampleDeps} lays them out.
 * Removed when the process exits, or by the next stageExample once that process is gone.
 */
export function stageExample(name: string, extraDeps: string[] = []): string {
  removeOrphanedStages();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `netdev-example-${process.pid}-${name}-`));
  staged.push(dir);
  const src = exampleDir(name);
  for (const e of fs.readdirSync(src, { withFileTypes: true })) {
    if (e.name === "node_modules" || e.name === "bin" || e.name === "package-lock.json") continue;
    fs.cpSync(path.join(src, e.name), path.join(dir, e.name), { recursive: true });
  }
  linkExampleDeps(dir, extraDeps);
  return dir;
}

/**
 * Removes staged copies whose process is gone (vitest ends its workers without
 * running their exit hooks). Only our own `netdev-example-<pid>-` directories.
 */
function removeOrphanedStages(): void {
  for (const e of fs.readdirSync(os.tmpdir())) {
    const m = /^netdev-example-(\d+)-/.exec(e);
    if (!m || Number(m[1]) === process.pid) continue;
    try {
      process.kill(Number(m[1]), 0);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ESRCH") fs.rmSync(path.join(os.tmpdir(), e), { recursive: true, force: true });
    }
  }
}


/** The project name from Pulumi.yaml (what `new pulumi.Config()` namespaces keys with). */
export function projectName(dir: string): string {
  const m = /^name:\s*(\S+)\s*$/m.exec(fs.readFileSync(path.join(dir, "Pulumi.yaml"), "utf8"));
  if (!m) throw new Error(`${dir}/Pulumi.yaml has no name`);
  return m[1];
}

/** Fails with a clear message when dist/ (the built package) is missing or older than the sources. */
export function assertBuilt(): void {
  const built = path.join(REPO_ROOT, "dist/sdk/index.js");
  if (!fs.existsSync(built) || !fs.existsSync(path.join(REPO_ROOT, "dist/provider/runtime.js")))
    throw new Error("dist/ is missing: run `npx tsc -p tsconfig.json` at the repo root first (the examples load the built package)");
}

/**
 * What `npm install` gives an example, as links into this repo so that the program,
 * the SDK and the provider host all share ONE @pulumi/pulumi (the repo's):
 *   node_modules/pulumi-netdev → repo root (npm links `file:../..` the same way)
 *   node_modules/@pulumi, node_modules/@types → the repo's.
 * An entry that resolves elsewhere (e.g. a real `npm install`, which brings its own
 * copy of @pulumi/pulumi) is replaced: node_modules is a gitignored artifact.
 */
export function linkExampleDeps(dir: string, extra: string[] = []): void {
  const real = fs.realpathSync(dir);
  const examples = fs.realpathSync(EXAMPLES_DIR);
  if (real === examples || real.startsWith(examples + path.sep))
    throw new Error(`linkExampleDeps(${dir}): never inside examples/ (a user's npm install there would break); use stageExample()`);
  const nm = path.join(dir, "node_modules");
  fs.mkdirSync(nm, { recursive: true });
  const links: [string, string][] = [
    ["pulumi-netdev", REPO_ROOT],
    ...["@pulumi", "@types", ...extra].map((p): [string, string] => [p, path.join(REPO_ROOT, "node_modules", p)]),
  ];
  for (const [entry, target] of links) {
    const at = path.join(nm, entry);
    let current: string | undefined;
    try {
      current = fs.realpathSync(at);
    } catch {
      current = undefined;
    }
    if (current === fs.realpathSync(target)) continue;
    fs.rmSync(at, { recursive: true, force: true });
    fs.symlinkSync(target, at, "dir");
  }
}

/** Runs the repo's tsc on an example's tsconfig.json; emits bin/ unless noEmit. */
export function compileExample(dir: string, opts: { noEmit?: boolean } = {}): Promise<{ ok: boolean; output: string; ms: number }> {
  const tsc = path.join(REPO_ROOT, "node_modules/typescript/bin/tsc");
  const argv = [tsc, "-p", path.join(dir, "tsconfig.json"), "--pretty", "false", ...(opts.noEmit ? ["--noEmit"] : [])];
  const t0 = Date.now();
  return new Promise((resolve) =>
    execFile(process.execPath, argv, { cwd: dir, encoding: "utf8", timeout: 120_000 }, (err, stdout, stderr) =>
      resolve({ ok: !err, output: (stdout + stderr).trim(), ms: Date.now() - t0 }),
    ),
  );
}

export interface ExampleRegistration extends Registration {
  /** RegisterResourceRequest.additionalSecretOutputs as the SDK sent it. */
  additionalSecretOutputs: string[];
  /** URNs of the resources this one depends on (RegisterResourceRequest.dependencies). */
  dependencies: string[];
  /** RegisterResourceRequest.object as the program sent it, before anything deserialized it (secrets still wrapped). */
  wire: Record<string, any>;
}

export interface ExampleRun {
  registrations: ExampleRegistration[];
  /** The program's stack outputs (its module exports), resolved; undefined values are absent. */
  outputs: Record<string, any>;
  /** Names of the program's stack outputs (its module exports). */
  exportNames: string[];
}

/**
 * Stands in for the engine while the program runs: given a registration (inputs plain,
 * secrets unwrapped), returns the resource's id and output state, which the program then
 * sees (e.g. by calling the real provider host's Check and Create). Default: echo inputs.
 */
export type Engine = (reg: { type: string; name: string; urn: string; inputs: Record<string, any> }) => Promise<{ id: string; state: Record<string, any> }>;

/**
 * Runs `program` under pulumi.runtime.setMocks (through captureRegistrations) with the
 * @pulumi/pulumi that `dir` resolves, as `pulumi up` of a new stack would. `config` holds
 * stack config with fully-qualified keys; structured values are JSON text, as the CLI
 * passes them. With `engine`, each registration's state comes from it instead of an echo.
 */
export async function runProgram(
  dir: string,
  program: () => Record<string, any> | Promise<Record<string, any>>,
  opts: { config?: Record<string, string>; engine?: Engine } = {},
): Promise<ExampleRun> {
  const pulumi = createRequire(path.join(dir, "index.js"))("@pulumi/pulumi");
  const project = projectName(dir);
  const stack = "dev";
  const extra = new Map<string, { additionalSecretOutputs: string[]; dependencies: string[]; wire: Record<string, any> }>();
  let exportsOfProgram: Record<string, any> = {};
  const registrations = await captureRegistrations(
    dir,
    async () => {
      const monitor = pulumi.runtime.getMonitor();
      // The mock monitor does not pass resource options to the mocks: read them off the request.
      const register = monitor.registerResource.bind(monitor);
      monitor.registerResource = (r: any, cb: any) => {
        extra.set(`${r.getType()}::${r.getName()}`, {
          additionalSecretOutputs: r.getAdditionalsecretoutputsList(),
          dependencies: r.getDependenciesList(),
          wire: r.getObject()?.toJavaScript() ?? {},
        });
        return register(r, cb);
      };
      if (opts.engine) {
        const engine = opts.engine;
        const mocks = monitor.mocks;
        monitor.mocks = {
          ...mocks,
          async newResource(args: any) {
            await mocks.newResource(args); // keeps captureRegistrations' record
            const inputs = unwrapSecrets(args.inputs ?? {});
            const urn = `urn:pulumi:${stack}::${project}::${args.type}::${args.name}`;
            return engine({ type: args.type, name: args.name, urn, inputs });
          },
        };
      }
      exportsOfProgram = await program();
    },
    { project, stack, config: opts.config ?? {} },
  );
  const outputs: Record<string, any> = {};
  for (const [k, v] of Object.entries(exportsOfProgram)) outputs[k] = await pulumi.output(v).promise();
  return {
    registrations: registrations.map((r) => ({ ...r, ...(extra.get(`${r.type}::${r.name}`) ?? { additionalSecretOutputs: [], dependencies: [], wire: {} }) })),
    outputs,
    exportNames: Object.keys(exportsOfProgram),
  };
}

/** Runs an example's compiled program (bin/index.js): its module exports are the stack outputs. */
export async function runExample(dir: string, opts: { config?: Record<string, string>; engine?: Engine } = {}): Promise<ExampleRun> {
  const main = path.join(dir, "bin/index.js");
  if (!fs.existsSync(main)) throw new Error(`${main} is missing: compile the example first`);
  const req = createRequire(main);
  // Node's own require (never vitest's transform); a previous run's module must not be reused.
  for (const key of Object.keys(req.cache)) if (key.startsWith(path.join(dir, "bin") + path.sep)) delete req.cache[key];
  return runProgram(dir, () => req("./index.js"), opts);
}

const SECRET_SIG_KEY = "4dabf18193072939515e22adb298388d";

/** Replaces Pulumi's secret wrappers by their values (the dynamic provider host gets plain values). */
function unwrapSecrets(v: any): any {
  if (Array.isArray(v)) return v.map(unwrapSecrets);
  if (v !== null && typeof v === "object") {
    if (SECRET_SIG_KEY in v) return unwrapSecrets(v.value);
    return Object.fromEntries(Object.entries(v).map(([k, e]) => [k, unwrapSecrets(e)]));
  }
  return v;
}

/**
 * The stack config of an example's Pulumi.<stack>.yaml: key → scalar text (quotes
 * removed), or undefined for structured values. Enough for the flat files we ship.
 */
export function stackConfig(dir: string, stack = "dev"): Record<string, string | undefined> {
  const text = fs.readFileSync(path.join(dir, `Pulumi.${stack}.yaml`), "utf8");
  const body = text.split(/^config:\s*$/m)[1] ?? "";
  const out: Record<string, string | undefined> = {};
  for (const m of body.matchAll(/^ {2}([A-Za-z0-9_-]+:[A-Za-z0-9_]+):[ \t]*(.*)$/gm)) {
    const raw = m[2].trim();
    out[m[1]] = raw === "" ? undefined : raw.replace(/^"(.*)"$/, "$1").replace(/^'(.*)'$/, "$1");
  }
  return out;
}
