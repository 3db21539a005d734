import { submit } from "./batching";
import { CommandError, ConnectionError } from "./errors";
import { ipArgv, type LinkJson, parseJson, readLine, readLink } from "./iproute/link";
import { batchScript, isBatchSafe } from "./ipBatch";
import type { Transport } from "./transport/types";

/** A device to read right after the steps (see runSteps). */
export interface ReadBack {
  namespace: string | undefined;
  name: string;
  /** false: the caller does not need the device's addresses (see ReadOptions in iproute/link.ts). */
  addresses?: boolean;
}

function batchPrefix(argv: string[]): string[] | undefined {
  if (argv[0] !== "ip" && argv[0] !== "bridge") return undefined;
  const prefixLen = argv[1] === "-n" ? 3 : 1;
  // A line with a word the batch parser would misread runs alone, as an argv.
  if (!argv.every(isBatchSafe)) return undefined;
  return argv.slice(0, prefixLen);
}

/**
 * Runs the lines in order, one change per line. Consecutive `ip` (or `bridge`)
 * lines for the same namespace go to one `ip -batch -`, which stops at the first
 * failure just as running them one by one would, but costs one round trip.
 * On a transport with a batchKey, such a group may also share its `ip -batch -`
 * with groups of other operations on the same host (provider/batching.ts).
 *
 * `readBack`: devices to read once every step is done, returned in the same order
 * (undefined: no such device). On a transport with a batchKey the reads of the last
 * group's namespace go at the end of its `ip -j -d -batch -` (saving a round trip).
 */
export async function runSteps(t: Transport, steps: string[][]): Promise<void>;
export async function runSteps(t: Transport, steps: string[][], readBack: ReadBack[]): Promise<(LinkJson | undefined)[]>;
export async function runSteps(t: Transport, steps: string[][], readBack?: ReadBack[]): Promise<(LinkJson | undefined)[] | void> {
  let sent = false;
  try {
    return await runAll(t, steps, readBack, () => (sent = true));
  } catch (err) {
    // A connection failure before anything was sent (ConnectionError.notRun) says that
    // none of the steps ran only while none was sent before it.
    if (sent && err instanceof ConnectionError && err.notRun) throw new ConnectionError(err.message);
    throw err;
  }
}

async function runAll(t: Transport, steps: string[][], readBack: ReadBack[] | undefined, sent: () => void): Promise<(LinkJson | undefined)[] | void> {
  let riding: Map<number, LinkJson | undefined> | undefined;
  let i = 0;
  while (i < steps.length) {
    const prefix = batchPrefix(steps[i]);
    let j = i + 1;
    if (prefix) {
      while (j < steps.length && sameArray(batchPrefix(steps[j]), prefix)) j++;
    }
    const group = steps.slice(i, j);
    if (prefix && t.batchKey) {
      // Reads of names the batch parser would misread are made on their own (readLink).
      const rides = (r: ReadBack) => sameArray(ipArgv(r.namespace), prefix) && r.name !== "" && isBatchSafe(r.name);
      const along = j === steps.length && prefix[0] === "ip" ? (readBack ?? []).flatMap((r, k) => (rides(r) ? [k] : [])) : [];
      const got = await runShared(t, prefix, group, along.map((k) => readBack![k]));
      if (got) riding = new Map(along.map((k, n) => [k, got[n]]));
    } else await runGroup(t, prefix, group);
    sent();
    i = j;
  }
  if (!readBack) return;
  return Promise.all(readBack.map((r, k) => (riding?.has(k) ? riding.get(k) : readLink(t, r.namespace, r.name, r))));
}

/** One group on its own: a single line directly, several as one `ip -batch -`. */
async function runGroup(t: Transport, prefix: string[] | undefined, group: string[][]): Promise<void> {
  if (group.length === 1 || !prefix) {
    const argv = group[0];
    const r = await t.run(argv);
    if (r.code !== 0) throw new CommandError(t.label, argv, r.code, r.stderr);
    return;
  }
  const argv = [...prefix, "-batch", "-"];
  const r = await t.run(argv, { stdin: script(prefix, group) });
  if (r.code !== 0) {
    const line = failedLine(r.stderr);
    const failed = line ? group[line - 1] : [...argv, `<<${script(prefix, group).trim().split("\n").join("; ")}`];
    throw new CommandError(t.label, failed, r.code, withoutLineNote(r.stderr));
  }
}

interface WriteJob {
  t: Transport;
  group: string[][];
  /** Devices to read after the group, in the same invocation. */
  reads: ReadBack[];
  /** With the reads' results, or undefined when they could not ride along. */
  resolve(reads?: (LinkJson | undefined)[]): void;
  reject(err: unknown): void;
}

function runShared(t: Transport, prefix: string[], group: string[][], reads: ReadBack[]): Promise<(LinkJson | undefined)[] | undefined> {
  return new Promise((resolve, reject) =>
    // A `bridge` starts by dumping every link of the namespace (iproute2's ll_init_map):
    // its lanes run one invocation at a time, so that waiting lines go together.
    submit<WriteJob>(`${t.batchKey}\nwrite\n${prefix.join(" ")}`, { t, group, reads, resolve, reject }, (jobs, again) => runJobs(prefix, jobs, again), prefix[0] === "bridge" ? 1 : undefined),
  );
}

/**
 * Several operations' groups as one `ip -batch -`, each group's lines together and
 * in order, each followed by its read-back lines (`addr show dev X`, `link show dev X`
 * when the addresses are not needed: see ReadOptions in iproute/link.ts; with -j every
 * read prints one JSON line, the changes print nothing). It stops at the first
 * failing line: groups before it are done, the group holding it fails as it would
 * have alone (its earlier lines ran), and the groups after it never ran, so they go
 * again. A failing read-back only means that group's reads are made separately.
 */
async function runJobs(prefix: string[], jobs: WriteJob[], again: (jobs: WriteJob[]) => void): Promise<void> {
  if (jobs.length === 1 && jobs[0].reads.length === 0) {
    const [job] = jobs;
    return runGroup(job.t, prefix, job.group).then(() => job.resolve(), job.reject);
  }
  const t = jobs[0].t;
  const reading = jobs.some((j) => j.reads.length > 0);
  const text = jobs.map((j) => script(prefix, j.group) + batchScript(j.reads.map((r) => readLine(r.name, r)))).join("");
  const total = jobs.reduce((n, j) => n + j.group.length + j.reads.length, 0);
  const argv = reading ? [...prefix, "-j", "-d", "-batch", "-"] : [...prefix, "-batch", "-"];
  const r = await t.run(argv, { stdin: text });
  const answers = r.stdout.split("\n").filter((l) => l.trim() !== "");
  let next = 0;
  // Each read that ran printed one line; short of that, the group's reads are made separately.
  const readsOf = (j: WriteJob) =>
    next + j.reads.length > answers.length ? undefined : j.reads.map((r) => parseJson<LinkJson[]>(answers[next++], t.label, argv).find((l) => l.ifname === r.name));
  if (r.code === 0) {
    for (const j of jobs) j.resolve(readsOf(j));
    return;
  }
  const line = failedLine(r.stderr);
  if (!line || line > total) {
    const err = new CommandError(t.label, [...argv, `<<${text.trim().split("\n").join("; ")}`], r.code, r.stderr);
    for (const j of jobs) j.reject(err);
    return;
  }
  const notRun: WriteJob[] = [];
  let offset = 0;
  for (const j of jobs) {
    const written = offset + j.group.length;
    const end = written + j.reads.length;
    if (end < line) j.resolve(readsOf(j));
    else if (offset < line && line <= written) j.reject(new CommandError(t.label, j.group[line - offset - 1], r.code, withoutLineNote(r.stderr)));
    else if (written < line && line <= end) j.resolve(undefined);
    else notRun.push(j);
    offset = end;
  }
  again(notRun);
}

function script(prefix: string[], group: string[][]): string {
  return batchScript(group.map((s) => s.slice(prefix.length)));
}

/** The 1-based line `ip -batch` stopped at, 0 when it did not say. */
function failedLine(stderr: string): number {
  return Number(/Command failed -:(\d+)/.exec(stderr)?.[1] ?? 0);
}

function withoutLineNote(stderr: string): string {
  return stderr.replace(/\n?Command failed -:\d+\s*$/, "");
}

function sameArray(a: string[] | undefined, b: string[]): boolean {
  return !!a && a.length === b.length && a.every((x, k) => x === b[k]);
}
