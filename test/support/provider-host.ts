// Test support: drive the REAL Pulumi dynamic provider host over gRPC, and capture a
// Pulumi program's resource registrations under mocks (DESIGN.md §6).
//
// Together these are the closest we get to `pulumi up` without the Pulumi CLI:
//   1. captureRegistrations(dir, program) runs the program under pulumi.runtime.setMocks and
//      returns each resource's inputs as the engine would send them to the provider, including
//      the serialized dynamic provider in `__provider`.
//   2. startProviderHost({ cwd: dir }) launches `node @pulumi/pulumi/cmd/dynamic-provider` in the
//      program's directory, exactly as the engine would, and exposes its gRPC methods.
//   3. The test replays configure → check → diff → create/update → read → delete.
//
// How values must be passed (this mirrors what the engine does for the dynamic provider):
// - Config: `configure({"netdev:host": "10.0.0.1"})`, fully-qualified keys, string values (stack
//   config arrives as strings). Un-qualified keys in `req.config.get("host")` are qualified with
//   the host's project, which is PULUMI_NODEJS_PROJECT (defaults to "project"), so prefer
//   qualified keys.
// - Secrets: the dynamic provider answers Configure with acceptSecrets=false, so the engine strips
//   secret markers and sends plain values. Pass plain values; captureRegistrations already unwraps
//   them and lists the affected top-level keys in `secretKeys`.
// - Unknowns (preview): pass the string UNKNOWN in place of the value to check and diff.

import { ChildProcess, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";

/** The value the engine sends for a not-yet-known property during preview. */
export const UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9";

/** The marker key/value of a serialized secret (`{ [SECRET_SIG_KEY]: SECRET_SIG, value }`). */
const SECRET_SIG_KEY = "4dabf18193072939515e22adb298388d";
const SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270";

export interface ProviderHost {
  port: number;
  pid: number;
  configure(config: Record<string, string>): Promise<void>;
  check(
    urn: string,
    olds: Record<string, any>,
    news: Record<string, any>,
  ): Promise<{ inputs: Record<string, any>; failures: { property: string; reason: string }[] }>;
  diff(
    urn: string,
    id: string,
    olds: Record<string, any>,
    news: Record<string, any>,
  ): Promise<{ changes: "none" | "some" | "unknown"; replaces: string[]; deleteBeforeReplace: boolean }>;
  create(urn: string, props: Record<string, any>): Promise<{ id: string; outs: Record<string, any> }>;
  read(
    urn: string,
    id: string,
    props: Record<string, any>,
    inputs?: Record<string, any>,
  ): Promise<{ id: string; props: Record<string, any>; inputs?: Record<string, any> }>;
  update(
    urn: string,
    id: string,
    olds: Record<string, any>,
    news: Record<string, any>,
  ): Promise<{ outs: Record<string, any> }>;
  delete(urn: string, id: string, props: Record<string, any>): Promise<void>;
  /** Peak resident set size of the host process in KiB (VmHWM); the last value seen once it exited. */
  peakRssKiB(): number;
  /** Kills the host process. */
  stop(): Promise<void>;
  /** What the host printed on stderr so far. */
  stderr(): string;
}

/** Requires modules the way the `@pulumi/pulumi` package resolvable from `dir` sees them. */
function pulumiRequire(dir: string): NodeRequire {
  let pkgJson: string;
  try {
    pkgJson = require.resolve("@pulumi/pulumi/package.json", { paths: [dir] });
  } catch {
    pkgJson = require.resolve("@pulumi/pulumi/package.json");
  }
  return createRequire(pkgJson);
}

/** "urn:pulumi:stack::project::type::name" → { type, name }. */
function urnParts(urn: string): { type: string; name: string } {
  const parts = urn.split("::");
  if (parts.length < 4) return { type: "", name: "" };
  return { type: parts[2].split("$").pop() ?? "", name: parts.slice(3).join("::") };
}

/** grpc-js prefixes messages with "<code> <STATUS>: "; keep only the provider's message. */
function grpcError(err: any): Error {
  const message = String(err?.details || err?.message || err).replace(/^\d+ [A-Z_]+: /, "");
  const e = new Error(message);
  (e as any).code = err?.code;
  return e;
}

export async function startProviderHost(opts: {
  cwd: string;
  env?: Record<string, string>;
}): Promise<ProviderHost> {
  const preq = pulumiRequire(opts.cwd);
  const hostScript = preq.resolve("./cmd/dynamic-provider/index.js");
  // Load grpc-js and the protos through @pulumi/pulumi so the generated client, its message
  // classes and the credentials all come from the same module instances.
  const grpc = preq("@grpc/grpc-js");
  const provproto = preq("./proto/provider_pb");
  const provrpc = preq("./proto/provider_grpc_pb");
  const { Struct } = preq("google-protobuf/google/protobuf/struct_pb");

  const env: Record<string, string | undefined> = { ...process.env };
  delete env.NODE_OPTIONS; // don't inherit the test runner's loader hooks
  Object.assign(env, opts.env);

  const child: ChildProcess = spawn(process.execPath, [hostScript, "127.0.0.1:1"], {
    cwd: opts.cwd,
    env,
    stdio: ["ignore", "pipe", "pipe"],
  });
  const killOnExit = () => child.kill("SIGKILL");
  process.on("exit", killOnExit);
  // Never keep the test process alive because of the host.
  child.unref();
  (child.stdout as any).unref?.();
  (child.stderr as any).unref?.();

  let stderrText = "";
  child.stderr!.setEncoding("utf8");
  child.stderr!.on("data", (chunk: string) => (stderrText += chunk));
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));

  const port = await new Promise<number>((resolve, reject) => {
    let stdoutText = "";
    child.stdout!.setEncoding("utf8");
    child.stdout!.on("data", (chunk: string) => {
      stdoutText += chunk;
      const nl = stdoutText.indexOf("\n");
      if (nl >= 0) resolve(Number(stdoutText.slice(0, nl).trim()));
    });
    child.once("error", reject);
    child.once("exit", (code, signal) =>
      reject(new Error(`provider host exited (code ${code}, signal ${signal}) before printing its port:\n${stderrText}`)),
    );
  });
  if (!Number.isInteger(port) || port <= 0) {
    child.kill("SIGKILL");
    throw new Error(`provider host printed an invalid port: ${port}`);
  }

  const client = new provrpc.ResourceProviderClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure());

  function rpc<T>(method: string, req: any): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      client[method](req, (err: any, resp: T) => (err ? reject(grpcError(err)) : resolve(resp)));
    });
  }

  /** Builds a request with urn, name and type set, as the engine does. */
  function request(ctor: any, urn: string, id?: string): any {
    const req = new ctor();
    const { type, name } = urnParts(urn);
    req.setUrn(urn);
    req.setName(name);
    req.setType(type);
    if (id !== undefined) req.setId(id);
    return req;
  }

  const struct = (o: Record<string, any>) => Struct.fromJavaScript(o);
  const plain = (s: any): Record<string, any> => (s ? s.toJavaScript() : {});

  let peakKiB = 0;
  function peakRssKiB(): number {
    try {
      const status = readFileSync(`/proc/${child.pid}/status`, "utf8");
      const m = /^VmHWM:\s+(\d+)\s+kB/m.exec(status);
      if (m) peakKiB = Math.max(peakKiB, Number(m[1]));
    } catch {
      // The process is gone; keep the last value we saw.
    }
    return peakKiB;
  }

  return {
    port,
    pid: child.pid!,

    async configure(config) {
      const req = new provproto.ConfigureRequest();
      req.setArgs(struct(config));
      // The engine also sends the legacy "<namespace>:config:<key>" variables map.
      const variables = req.getVariablesMap();
      for (const [key, value] of Object.entries(config)) {
        const i = key.indexOf(":");
        variables.set(i > 0 ? `${key.slice(0, i)}:config:${key.slice(i + 1)}` : key, String(value));
      }
      req.setAcceptsecrets(true);
      req.setAcceptresources(true);
      await rpc("configure", req);
    },

    async check(urn, olds, news) {
      const req = request(provproto.CheckRequest, urn);
      req.setOlds(struct(olds));
      req.setNews(struct(news));
      const resp: any = await rpc("check", req);
      return {
        inputs: plain(resp.getInputs()),
        failures: resp.getFailuresList().map((f: any) => ({ property: f.getProperty(), reason: f.getReason() })),
      };
    },

    async diff(urn, id, olds, news) {
      const req = request(provproto.DiffRequest, urn, id);
      req.setOlds(struct(olds));
      req.setNews(struct(news));
      const resp: any = await rpc("diff", req);
      const C = provproto.DiffResponse.DiffChanges;
      const changes = resp.getChanges() === C.DIFF_SOME ? "some" : resp.getChanges() === C.DIFF_NONE ? "none" : "unknown";
      return { changes, replaces: resp.getReplacesList(), deleteBeforeReplace: resp.getDeletebeforereplace() };
    },

    async create(urn, props) {
      const req = request(provproto.CreateRequest, urn);
      req.setProperties(struct(props));
      const resp: any = await rpc("create", req);
      return { id: resp.getId(), outs: plain(resp.getProperties()) };
    },

    async read(urn, id, props, inputs) {
      const req = request(provproto.ReadRequest, urn, id);
      req.setProperties(struct(props));
      if (inputs) req.setInputs(struct(inputs));
      const resp: any = await rpc("read", req);
      const result: { id: string; props: Record<string, any>; inputs?: Record<string, any> } = {
        id: resp.getId(),
        props: plain(resp.getProperties()),
      };
      if (resp.hasInputs()) result.inputs = plain(resp.getInputs());
      return result;
    },

    async update(urn, id, olds, news) {
      const req = request(provproto.UpdateRequest, urn, id);
      req.setOlds(struct(olds));
      req.setNews(struct(news));
      const resp: any = await rpc("update", req);
      return { outs: plain(resp.getProperties()) };
    },

    async delete(urn, id, props) {
      const req = request(provproto.DeleteRequest, urn, id);
      req.setProperties(struct(props));
      await rpc("delete", req);
    },

    peakRssKiB,

    async stop() {
      peakRssKiB();
      client.close();
      process.removeListener("exit", killOnExit);
      if (child.exitCode === null && child.signalCode === null) {
        child.kill("SIGTERM");
        const timer = setTimeout(() => child.kill("SIGKILL"), 2000);
        await exited;
        clearTimeout(timer);
      }
    },

    stderr: () => stderrText,
  };
}

export interface Registration {
  type: string;
  name: string;
  urn: string;
  /** Inputs as sent to the provider: secrets unwrapped to plain values (see secretKeys). */
  inputs: Record<string, any>;
  /** Provider reference ("<urn>::<id>") for resources with an explicit provider. */
  provider?: string;
  /** false for component resources. */
  custom: boolean;
  /** Top-level input keys whose value was (or contained) a secret. */
  secretKeys: string[];
}

/** Replaces secret wrappers by their values; reports whether any were found. */
function unwrapSecrets(v: any): [any, boolean] {
  if (Array.isArray(v)) {
    let secret = false;
    const out = v.map((e) => {
      const [u, s] = unwrapSecrets(e);
      secret ||= s;
      return u;
    });
    return [out, secret];
  }
  if (v !== null && typeof v === "object" && Object.getPrototypeOf(v) === Object.prototype) {
    if (v[SECRET_SIG_KEY] === SECRET_SIG) return [unwrapSecrets(v.value)[0], true];
    let secret = false;
    const out: Record<string, any> = {};
    for (const [k, e] of Object.entries(v)) {
      const [u, s] = unwrapSecrets(e);
      secret ||= s;
      out[k] = u;
    }
    return [out, secret];
  }
  return [v, false];
}

/**
 * Runs `program` under pulumi.runtime.setMocks (preview=false) and returns every resource
 * registration once all of them have settled. The mocks echo inputs back as state and use
 * "<name>-id" as id. `opts.config` (keys like "netdev:host") is visible to `new pulumi.Config()`.
 *
 * The program must load @pulumi/pulumi from `programDir` (same module instance, or at least
 * the same global runtime store, as used here). Write dynamic providers in plain JS files
 * loaded with Node's require, not in vitest-transformed test files: the provider's closure is
 * serialized, and vite's module rewriting would end up captured.
 */
export async function captureRegistrations(
  programDir: string,
  program: () => Promise<any> | any,
  opts: { project?: string; stack?: string; config?: Record<string, string> } = {},
): Promise<Registration[]> {
  const pulumi = pulumiRequire(programDir)("./index.js");
  const runtime = pulumi.runtime;
  const project = opts.project ?? "project";
  const stack = opts.stack ?? "stack";

  const seen: { type: string; name: string; args: any }[] = [];
  await runtime.setMocks(
    {
      newResource(args: any) {
        seen.push({ type: args.type, name: args.name, args });
        return { id: `${args.name}-id`, state: args.inputs };
      },
      call() {
        return {};
      },
    },
    project,
    stack,
    false,
  );
  // Replaces the whole config map (a previous capture's config does not leak into this one).
  runtime.setAllConfig(opts.config ?? {});

  // A failed registration (e.g. a provider closure that cannot be serialized) surfaces only
  // as an unhandled rejection: collect those while the program runs.
  const failures: unknown[] = [];
  const onRejection = (reason: unknown) => failures.push(reason);
  process.on("unhandledRejection", onRejection);
  try {
    await program();
    // Registrations are asynchronous, and resources created inside apply() callbacks
    // register later still: drain pulumi's RPC queue until no new registration shows up.
    for (let i = 0; i < 200; i++) {
      const before = seen.length;
      await runtime.waitForRPCs();
      await new Promise((r) => setTimeout(r, 10));
      if (seen.length === before) break;
    }
  } finally {
    process.removeListener("unhandledRejection", onRejection);
  }
  if (failures.length > 0) {
    const f: any = failures[0];
    throw f instanceof Error ? f : new Error(String(f));
  }

  // The mock monitor knows each resource's URN (which includes parent types); match them up.
  const urns: string[] = [...runtime.getMonitor().getRegisteredResources().keys()];
  return seen.map(({ type, name, args }) => {
    const i = urns.findIndex((u) => {
      const p = urnParts(u);
      return p.type === type && p.name === name;
    });
    const urn = i >= 0 ? urns.splice(i, 1)[0] : `urn:pulumi:${stack}::${project}::${type}::${name}`;
    const inputs: Record<string, any> = {};
    const secretKeys: string[] = [];
    for (const [k, v] of Object.entries<any>(args.inputs ?? {})) {
      const [u, secret] = unwrapSecrets(v);
      inputs[k] = u;
      if (secret) secretKeys.push(k);
    }
    return { type, name, urn, inputs, provider: args.provider || undefined, custom: args.custom, secretKeys };
  });
}
