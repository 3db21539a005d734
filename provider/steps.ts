import { CommandError } from "./errors";
import type { Transport } from "./transport/types";

/** A token `ip -batch` reads back unchanged (its tokenizer splits on blanks and treats quotes and # specially). */
const BATCH_SAFE = /^[^\s"'\\#]+$/;

function batchPrefix(argv: string[]): string[] | undefined {
  if (argv[0] !== "ip" && argv[0] !== "bridge") return undefined;
  const prefixLen = argv[1] === "-n" ? 3 : 1;
  if (!argv.every((a) => BATCH_SAFE.test(a))) return undefined;
  return argv.slice(0, prefixLen);
}

/**
 * Runs the lines in order, one change per line. Consecutive `ip` (or `bridge`)
 * lines for the same namespace go to one `ip -batch -`, which stops at the first
 * failure just as running them one by one would, but costs one round trip.
 */
export async function runSteps(t: Transport, steps: string[][]): Promise<void> {
  let i = 0;
  while (i < steps.length) {
    const prefix = batchPrefix(steps[i]);
    let j = i + 1;
    if (prefix) {
      while (j < steps.length && sameArray(batchPrefix(steps[j]), prefix)) j++;
    }
    if (j - i === 1 || !prefix) {
      const argv = steps[i];
      const r = await t.run(argv);
      if (r.code !== 0) throw new CommandError(t.label, argv, r.code, r.stderr);
      i++;
      continue;
    }
    const group = steps.slice(i, j);
    const script = group.map((s) => s.slice(prefix.length).join(" ")).join("\n") + "\n";
    const argv = [...prefix, "-batch", "-"];
    const r = await t.run(argv, { stdin: script });
    if (r.code !== 0) {
      const line = Number(/Command failed -:(\d+)/.exec(r.stderr)?.[1] ?? 0);
      const failed = line ? group[line - 1] : [...argv, `<<${group.map((s) => s.slice(prefix.length).join(" ")).join("; ")}`];
      throw new CommandError(t.label, failed, r.code, r.stderr.replace(/\n?Command failed -:\d+\s*$/, ""));
    }
    i = j;
  }
}

function sameArray(a: string[] | undefined, b: string[]): boolean {
  return !!a && a.length === b.length && a.every((x, k) => x === b[k]);
}
