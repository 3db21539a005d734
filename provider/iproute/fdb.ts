import { submit } from "../batching";
import { CommandError } from "../errors";
import { batchScript, failedBatchLines, isBatchSafe } from "../ipBatch";
import { canonicalIp } from "../schema";
import type { Transport } from "../transport/types";
import { bridgeArgv, isGoneError, parseJson, READ_ONLY } from "./link";

/** One entry of `bridge -j fdb show`. */
export interface FdbJson {
  mac: string;
  /** Remote VTEP (vxlan entries only). */
  dst?: string;
  /** Underlay device the entry sends through (`via`). */
  viaIf?: string;
  vni?: number;
  port?: number;
  /** "self" for the device's own table (vxlan), empty with `master` for the bridge's. */
  flags?: string[];
  master?: string;
  state?: string;
  [key: string]: unknown;
}

/**
 * The all-zero MAC: a vxlan device sends broadcast, unknown-unicast and multicast
 * frames to every `dst` of this entry (head-end replication); the kernel also keeps
 * the device's own `remote`/`group` here.
 */
export const FLOOD_MAC = "00:00:00:00:00:00";

/**
 * The device's forwarding entries (`bridge [-n ns] -j fdb show dev X`), or undefined
 * when it is gone. Reads of one namespace waiting at the same moment share one
 * `bridge -batch` (provider/batching.ts): every `bridge` process starts by dumping
 * every link of the namespace to map names (iproute2's ll_init_map), which costs
 * 20 ms among 2,000 devices, while a `fdb show dev X` line costs a tenth of a
 * millisecond.
 */
export async function readFdb(t: Transport, namespace: string | undefined, dev: string): Promise<FdbJson[] | undefined> {
  if (!t.batchKey || dev === "" || !isBatchSafe(dev)) return readOne(t, namespace, dev);
  return new Promise((resolve, reject) =>
    // One at a time: the start of a `bridge` costs far more than its lines.
    submit<FdbJob>(`${t.batchKey}\nfdb\n${namespace ?? ""}`, { t, dev, resolve, reject }, (jobs) => readJobs(namespace, jobs), 1),
  );
}

interface FdbJob {
  t: Transport;
  dev: string;
  resolve(entries: FdbJson[] | undefined): void;
  reject(err: unknown): void;
}

/**
 * One `bridge -j -force -batch -` with a `fdb show dev X` line per device: each line
 * that runs prints one JSON array (`[]` for an empty table); one that fails prints
 * nothing and is named in stderr as "Command failed -:N".
 */
async function readJobs(namespace: string | undefined, jobs: FdbJob[]): Promise<void> {
  if (jobs.length === 1) {
    const [job] = jobs;
    return readOne(job.t, namespace, job.dev).then(job.resolve, job.reject);
  }
  const t = jobs[0].t;
  const devs = [...new Set(jobs.map((j) => j.dev))];
  const argv = bridgeArgv(namespace, "-j", "-force", "-batch", "-");
  const r = await t.run(argv, { stdin: batchScript(devs.map((d) => ["fdb", "show", "dev", d])), idempotent: true });
  const failed = failedBatchLines(r.stderr);
  if (r.code !== 0 && failed.size === 0) {
    // The invocation itself failed, e.g. the namespace does not exist.
    if (isGoneError(r.stderr)) return jobs.forEach((j) => j.resolve(undefined));
    const err = new CommandError(t.label, argv, r.code, r.stderr);
    return jobs.forEach((j) => j.reject(err));
  }
  const answers = r.stdout.split("\n").filter((l) => l.trim() !== "");
  const byDev = new Map<string, FdbJson[] | Error | undefined>();
  let next = 0;
  devs.forEach((dev, k) => {
    const error = failed.get(k + 1);
    if (error !== undefined) byDev.set(dev, isGoneError(error) ? undefined : new CommandError(t.label, bridgeArgv(namespace, "-j", "fdb", "show", "dev", dev), r.code, error));
    else byDev.set(dev, next < answers.length ? parseJson<FdbJson[]>(answers[next++], t.label, argv) : new CommandError(t.label, argv, r.code, `no answer for fdb show dev ${dev}: ${r.stderr}`));
  });
  for (const j of jobs) {
    const got = byDev.get(j.dev);
    if (got instanceof Error) j.reject(got);
    else j.resolve(got && structuredClone(got));
  }
}

async function readOne(t: Transport, namespace: string | undefined, dev: string): Promise<FdbJson[] | undefined> {
  const argv = bridgeArgv(namespace, "-j", "fdb", "show", "dev", dev);
  const r = await t.run(argv, READ_ONLY);
  if (r.code !== 0) {
    if (isGoneError(r.stderr)) return undefined;
    throw new CommandError(t.label, argv, r.code, r.stderr);
  }
  return parseJson<FdbJson[]>(r.stdout, t.label, argv);
}

/**
 * Destinations of the device's own all-zero entries, canonical, de-duplicated and
 * sorted. `exclude` drops addresses (the device's default remote, which the kernel
 * stores as one of these entries).
 */
export function floodDestinations(entries: FdbJson[], exclude: (string | undefined)[] = []): string[] {
  const skip = new Set(exclude.filter((a): a is string => !!a).map(canonicalIp));
  const dsts = entries
    .filter((e) => e.mac === FLOOD_MAC && typeof e.dst === "string" && !e.master)
    .map((e) => canonicalIp(e.dst!))
    .filter((d) => !skip.has(d));
  return [...new Set(dsts)].sort();
}

/** Adds one destination to the all-zero entry, keeping the others (NLM_F_APPEND). */
export function floodAppendArgv(namespace: string | undefined, dev: string, dst: string): string[] {
  return bridgeArgv(namespace, "fdb", "append", FLOOD_MAC, "dst", dst, "dev", dev);
}

/** Removes exactly one destination from the all-zero entry; the others stay. */
export function floodDelArgv(namespace: string | undefined, dev: string, dst: string): string[] {
  return bridgeArgv(namespace, "fdb", "del", FLOOD_MAC, "dst", dst, "dev", dev);
}
