// The steps of `pulumi up` for one resource, driven through the runtime in this
// process (what the provider host would call), for the kernel tests. These assert
// with vitest's expect, so they live apart from ./kernel.ts: scripts/demo.ts loads
// that one outside vitest, where vitest cannot be required.
import { expect } from "vitest";
import { provider } from "../../provider/runtime";

/** check → create, as `pulumi up` does for a new resource. `inputs` are the checked inputs. */
export async function up(kind: string, inputs: Record<string, any>) {
  const rt = provider(kind);
  const checked = await rt.check({}, inputs);
  expect(checked.failures).toEqual([]);
  const created = await rt.create(checked.inputs);
  return { rt, id: created.id, outs: created.outs, inputs: checked.inputs };
}

/** check → diff → update, as `pulumi up` does for a changed resource. */
export async function change(kind: string, olds: Record<string, any>, inputs: Record<string, any>) {
  const rt = provider(kind);
  const checked = await rt.check(olds, inputs);
  expect(checked.failures).toEqual([]);
  const diff = await rt.diff("id", olds, checked.inputs);
  return { diff, checked: checked.inputs, apply: () => rt.update("id", olds, checked.inputs) };
}

/** What `pulumi up` does for a replace with deleteBeforeReplace: delete the old, create the new. */
export async function replace(kind: string, olds: Record<string, any>, inputs: Record<string, any>) {
  await provider(kind).delete("id", olds);
  return up(kind, inputs);
}

/** Runs argv on a test host through its own exec (not the project's transport); expects exit 0 and returns stdout. */
export async function mustRun(h: { exec(argv: string[]): Promise<{ stdout: string; stderr: string; code: number }> }, argv: string[]): Promise<string> {
  const r = await h.exec(argv);
  expect(r.code, `${argv.join(" ")}: ${r.stderr}`).toBe(0);
  return r.stdout;
}
