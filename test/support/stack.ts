// A small stand-in for the Pulumi engine's `up` and `destroy`, over stack state kept
// in memory, for programs run under mocks (runProgram/runExample in ./examples).
//
// `up` answers each registration as the engine does: a resource the state does not
// have is checked and created; one it has is checked against its old inputs and
// diffed against its old outputs, then left alone, updated in place, or replaced
// (delete first: every netdev diff says deleteBeforeReplace). Resources of the state
// the program no longer registers are deleted afterwards, newest first. The program
// sees the real outputs, so a resource naming another (`master: br.name`) registers
// only once that one exists, as under `pulumi up`.
//
// Not modelled: replacing a resource's dependents along with it (no caller replaces
// anything), previews, refresh, parallelism limits. Component resources have no
// provider and are skipped.
import type { Engine, ExampleRun } from "./examples";
import type { ProviderHost } from "./provider-host";

export const DYNAMIC_TYPE_PREFIX = "pulumi-nodejs:dynamic/netdev:";

/** What the engine calls on a resource provider (gRPC host or in-process runtime). */
export interface ResourceProvider {
  check(urn: string, olds: Record<string, any>, news: Record<string, any>): Promise<{ inputs: Record<string, any>; failures: { property: string; reason: string }[] }>;
  diff(urn: string, id: string, olds: Record<string, any>, news: Record<string, any>): Promise<{ changes: boolean; replaces: string[] }>;
  create(urn: string, inputs: Record<string, any>): Promise<{ id: string; outs: Record<string, any> }>;
  update(urn: string, id: string, olds: Record<string, any>, news: Record<string, any>): Promise<{ outs: Record<string, any> }>;
  delete(urn: string, id: string, outs: Record<string, any>): Promise<void>;
}

/** The real Pulumi dynamic provider host (what `pulumi up` talks to). */
export function providerHostApi(host: ProviderHost): ResourceProvider {
  return {
    check: (urn, olds, news) => host.check(urn, olds, news),
    // "unknown" only happens with unknown inputs (preview); treat it as a change.
    diff: async (urn, id, olds, news) => {
      const d = await host.diff(urn, id, olds, news);
      return { changes: d.changes !== "none", replaces: d.replaces };
    },
    create: (urn, inputs) => host.create(urn, inputs),
    update: (urn, id, olds, news) => host.update(urn, id, olds, news),
    delete: (urn, id, outs) => host.delete(urn, id, outs),
  };
}

/** The shape of `provider(kind)` from provider/runtime.ts (what the shim hands the host). */
interface Runtime {
  check(olds: Record<string, any>, news: Record<string, any>): Promise<{ inputs: Record<string, any>; failures: { property: string; reason: string }[] }>;
  diff(id: string, olds: Record<string, any>, news: Record<string, any>): Promise<{ changes: boolean; replaces: string[] }>;
  create(inputs: Record<string, any>): Promise<{ id: string; outs: Record<string, any> }>;
  update(id: string, olds: Record<string, any>, news: Record<string, any>): Promise<{ outs: Record<string, any> }>;
  delete(id: string, props: Record<string, any>): Promise<void>;
}

/** The runtime in this process, one `provider(kind)` per resource class (the type token's last part). */
export function inProcessApi(provider: (kind: string) => Runtime): ResourceProvider {
  const kindOf = (urn: string) => {
    const type = urn.split("::")[2]?.split("$").pop() ?? "";
    if (!type.startsWith(DYNAMIC_TYPE_PREFIX)) throw new Error(`not a netdev resource: ${urn}`);
    return provider(type.slice(DYNAMIC_TYPE_PREFIX.length));
  };
  return {
    check: (urn, olds, news) => kindOf(urn).check(olds, news),
    diff: (urn, id, olds, news) => kindOf(urn).diff(id, olds, news),
    create: (urn, inputs) => kindOf(urn).create(inputs),
    update: (urn, id, olds, news) => kindOf(urn).update(id, olds, news),
    delete: (urn, id, outs) => kindOf(urn).delete(id, outs),
  };
}

export interface ResourceState {
  urn: string;
  type: string;
  name: string;
  id: string;
  /** Inputs as Check returned them (what the engine keeps and checks the next inputs against). */
  inputs: Record<string, any>;
  outs: Record<string, any>;
}

export type StepOp = "create" | "same" | "update" | "replace" | "delete";

export interface Step {
  op: StepOp;
  urn: string;
  type: string;
  name: string;
  /** Time the provider took for this step. */
  ms: number;
}

export class Stack {
  /** The state, oldest first (a resource always comes after the ones it depends on). */
  readonly resources: ResourceState[] = [];

  /** `onStep` hears of every finished step (progress output). */
  constructor(
    private readonly provider: ResourceProvider,
    private readonly onStep: (step: Step, r: ResourceState) => void = () => {},
  ) {}

  /**
   * One `pulumi up`: `run` runs the program with the engine it is given (e.g.
   * `(engine) => runExample(dir, { config, engine })`). Resources already created
   * stay in the state when it fails part-way, so `destroy` removes them.
   */
  async up(run: (engine: Engine) => Promise<ExampleRun>): Promise<{ run: ExampleRun; steps: Step[] }> {
    const steps: Step[] = [];
    const seen = new Set<string>();
    const record = (op: StepOp, r: ResourceState, t0: number) => {
      const step = { op, urn: r.urn, type: r.type, name: r.name, ms: Date.now() - t0 };
      steps.push(step);
      this.onStep(step, r);
    };

    const engine: Engine = async (reg) => {
      try {
        return await step(reg);
      } catch (e) {
        // A plain Error: the provider host's gRPC errors carry a status code, and an
        // UNAVAILABLE one (host gone) would make Pulumi's SDK take the *monitor* for
        // shut down and leave the program's pending registrations unresolved forever.
        throw new Error(`${reg.name}: ${(e as Error)?.message ?? e}`);
      }
    };
    const step: Engine = async (reg) => {
      if (!reg.type.startsWith(DYNAMIC_TYPE_PREFIX)) return { id: "", state: {} };
      seen.add(reg.urn);
      const t0 = Date.now();
      const old = this.resources.find((r) => r.urn === reg.urn);
      const checked = await this.provider.check(reg.urn, old?.inputs ?? {}, reg.inputs);
      if (checked.failures.length > 0) throw new Error(`check failed: ${checked.failures.map((f) => `${f.property}: ${f.reason}`).join("; ")}`);
      if (!old) {
        const { id, outs } = await this.provider.create(reg.urn, checked.inputs);
        const r = { urn: reg.urn, type: reg.type, name: reg.name, id, inputs: checked.inputs, outs };
        this.resources.push(r);
        record("create", r, t0);
        return { id, state: outs };
      }
      const diff = await this.provider.diff(reg.urn, old.id, old.outs, checked.inputs);
      if (!diff.changes) {
        old.inputs = checked.inputs;
        record("same", old, t0);
      } else if (diff.replaces.length === 0) {
        old.outs = (await this.provider.update(reg.urn, old.id, old.outs, checked.inputs)).outs;
        old.inputs = checked.inputs;
        record("update", old, t0);
      } else {
        await this.provider.delete(reg.urn, old.id, old.outs);
        this.resources.splice(this.resources.indexOf(old), 1);
        const { id, outs } = await this.provider.create(reg.urn, checked.inputs);
        const r = { urn: reg.urn, type: reg.type, name: reg.name, id, inputs: checked.inputs, outs };
        this.resources.push(r);
        record("replace", r, t0);
        return { id, state: outs };
      }
      return { id: old.id, state: old.outs };
    };

    const result = await run(engine);
    for (const r of [...this.resources].reverse()) {
      if (seen.has(r.urn)) continue;
      const t0 = Date.now();
      await this.provider.delete(r.urn, r.id, r.outs);
      this.resources.splice(this.resources.indexOf(r), 1);
      record("delete", r, t0);
    }
    return { run: result, steps };
  }

  /**
   * `pulumi destroy`: deletes every resource, newest first. Keeps going past a
   * failed delete (removing as much as it can) and throws the failures at the end.
   */
  async destroy(): Promise<Step[]> {
    const steps: Step[] = [];
    const errors: Error[] = [];
    for (const r of [...this.resources].reverse()) {
      const t0 = Date.now();
      try {
        await this.provider.delete(r.urn, r.id, r.outs);
      } catch (e) {
        errors.push(new Error(`deleting ${r.name}: ${(e as Error).message}`));
        continue;
      }
      this.resources.splice(this.resources.indexOf(r), 1);
      const step = { op: "delete" as const, urn: r.urn, type: r.type, name: r.name, ms: Date.now() - t0 };
      steps.push(step);
      this.onStep(step, r);
    }
    if (errors.length > 0) throw new AggregateError(errors, errors.map((e) => e.message).join("\n"));
    return steps;
  }
}
