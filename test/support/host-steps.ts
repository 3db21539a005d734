// The engine's side of `pulumi up` and `pulumi destroy` of a new stack, driven
// through the real provider host (gRPC), for the test/host tests. These assert with
// vitest's expect, so they live apart from ./stack.ts and ./examples.ts, which
// scripts/demo.ts loads outside vitest.
import * as path from "node:path";
import { expect } from "vitest";
import type { Engine, ExampleRegistration } from "./examples";
import { type ProviderHost, startProviderHost } from "./provider-host";
import type { ResourceState } from "./stack";

/** Starts a provider host in `dir` (adding it to `hosts`, for stopping later) and configures it with `cfg`. */
export async function providerHost(dir: string, cfg: Record<string, string>, hosts: ProviderHost[]): Promise<ProviderHost> {
  const t0 = Date.now();
  const host = await startProviderHost({ cwd: dir, env: { PULUMI_NODEJS_PROJECT: path.basename(dir) } });
  hosts.push(host);
  await host.configure(cfg);
  console.log(`provider host for ${path.basename(dir)} up and configured in ${Date.now() - t0} ms`);
  return host;
}

/** `pulumi up` of a new stack: Check then Create for each registration, in the order the program makes them. */
export function upEngine(host: ProviderHost, created: ResourceState[]): Engine {
  return async (reg) => {
    const checked = await host.check(reg.urn, {}, reg.inputs);
    if (checked.failures.length) throw new Error(`${reg.name}: check failed: ${JSON.stringify(checked.failures)}`);
    const { id, outs } = await host.create(reg.urn, checked.inputs);
    created.push({ urn: reg.urn, type: reg.type, name: reg.name, id, inputs: checked.inputs, outs });
    return { id, state: outs };
  };
}

/** Every resource was created after everything it depends on. */
export function expectDependencyOrder(created: ResourceState[], regs: ExampleRegistration[]) {
  expect(created.map((c) => c.urn).sort()).toEqual(regs.map((r) => r.urn).sort());
  for (const r of regs) {
    const at = created.findIndex((c) => c.urn === r.urn);
    for (const d of r.dependencies) expect(created.findIndex((c) => c.urn === d), `${r.name} after ${d}`).toBeLessThan(at);
  }
}

/** Delete in reverse creation order, as `pulumi destroy` does. */
export async function destroyAll(host: ProviderHost, created: ResourceState[]) {
  for (const c of [...created].reverse()) await host.delete(c.urn, c.id, c.outs);
}
