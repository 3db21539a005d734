import { submit } from "../batching";
import { CommandError, NotFoundError } from "../errors";
import { batchScript, isBatchSafe } from "../ipBatch";
import { canonicalIp } from "../schema";
import type { RunOptions, Transport } from "../transport/types";

/** One entry of `ip -j -d addr show` (link details plus addresses). */
export interface LinkJson {
  ifindex: number;
  ifname: string;
  flags: string[];
  mtu: number;
  operstate: string;
  address?: string;
  master?: string;
  link?: string;
  link_index?: number;
  link_netnsid?: number;
  linkinfo?: {
    info_kind?: string;
    info_data?: Record<string, unknown>;
    info_slave_kind?: string;
    info_slave_data?: Record<string, unknown>;
  };
  addr_info?: AddrJson[];
  [key: string]: unknown;
}

/** One address of `ip -j addr show` (`addr_info`). */
export interface AddrJson {
  family: string;
  local: string;
  prefixlen: number;
  scope?: string;
  /** Not IFA_F_PERMANENT: given a lifetime (SLAAC, DHCP, `valid_lft`). */
  dynamic?: boolean;
  mngtmpaddr?: boolean;
  temporary?: boolean;
  /** Seconds; 4294967295 = forever. */
  valid_life_time?: number;
  preferred_life_time?: number;
  [key: string]: unknown;
}

/** `ip` (or `bridge`) argv, run inside `namespace` when one is given. */
export function ipArgv(namespace: string | undefined, ...args: string[]): string[] {
  return namespace ? ["ip", "-n", namespace, ...args] : ["ip", ...args];
}

export function bridgeArgv(namespace: string | undefined, ...args: string[]): string[] {
  return namespace ? ["bridge", "-n", namespace, ...args] : ["bridge", ...args];
}

const GONE = /does not exist|Cannot find device|Cannot open network namespace|No such device/;

/** A command that only reads: safe to run again (RunOptions.idempotent). */
export const READ_ONLY: RunOptions = Object.freeze({ idempotent: true });

/** Runs argv and throws CommandError on a non-zero exit. */
export async function runChecked(t: Transport, argv: string[], opts: RunOptions = {}): Promise<string> {
  const r = await t.run(argv, opts);
  if (r.code !== 0) throw new CommandError(t.label, argv, r.code, r.stderr);
  return r.stdout;
}

/**
 * The device's details and addresses, or undefined when it (or its namespace) does
 * not exist. On a transport with a batchKey, reads of one namespace that wait at
 * the same time share one `ip` invocation (provider/batching.ts).
 */
export async function readLink(t: Transport, namespace: string | undefined, name: string): Promise<LinkJson | undefined> {
  // A name the batch parser would misread is read on its own, as an argv.
  if (t.batchKey && isBatchSafe(name) && name !== "") return readShared(t, namespace, name);
  return readOne(t, namespace, name);
}

interface ReadJob {
  t: Transport;
  name: string;
  resolve(link: LinkJson | undefined): void;
  reject(err: unknown): void;
}

function readShared(t: Transport, namespace: string | undefined, name: string): Promise<LinkJson | undefined> {
  return new Promise((resolve, reject) =>
    submit<ReadJob>(`${t.batchKey}\nread\n${namespace ?? ""}`, { t, name, resolve, reject }, (jobs) => readJobs(namespace, jobs)),
  );
}

/**
 * Several reads as one `ip -j -d -force -batch -`, one `addr show dev X` line each:
 * every line prints its own JSON array, and -force goes on past a device that
 * does not exist (reads change nothing), reporting it as "Command failed -:N".
 */
async function readJobs(namespace: string | undefined, jobs: ReadJob[]): Promise<void> {
  if (jobs.length === 1) {
    const [job] = jobs;
    return readOne(job.t, namespace, job.name).then(job.resolve, job.reject);
  }
  const t = jobs[0].t;
  const names = [...new Set(jobs.map((j) => j.name))];
  const argv = ipArgv(namespace, "-j", "-d", "-force", "-batch", "-");
  const r = await t.run(argv, { stdin: batchScript(names.map((n) => ["addr", "show", "dev", n])), idempotent: true });
  const lineErrors = new Map<number, string>();
  for (const m of r.stderr.matchAll(/([\s\S]*?)Command failed -:(\d+)\n?/g)) lineErrors.set(Number(m[2]), m[1].trim());
  if (r.code !== 0 && lineErrors.size === 0) {
    // The invocation itself failed, e.g. the namespace does not exist.
    if (GONE.test(r.stderr)) return jobs.forEach((j) => j.resolve(undefined));
    const err = new CommandError(t.label, argv, r.code, r.stderr);
    return jobs.forEach((j) => j.reject(err));
  }
  const found = new Map<string, LinkJson>();
  for (const line of r.stdout.split("\n")) {
    if (line.trim() !== "") for (const l of parseJson<LinkJson[]>(line, t.label, argv)) found.set(l.ifname, l);
  }
  const shared = jobs.length > names.length;
  for (const j of jobs) {
    const link = found.get(j.name);
    if (link) {
      j.resolve(shared ? structuredClone(link) : link);
      continue;
    }
    const error = lineErrors.get(names.indexOf(j.name) + 1);
    if (error === undefined || GONE.test(error)) j.resolve(undefined);
    else j.reject(new CommandError(t.label, ipArgv(namespace, "-j", "-d", "addr", "show", "dev", j.name), r.code, error));
  }
}

async function readOne(t: Transport, namespace: string | undefined, name: string): Promise<LinkJson | undefined> {
  const argv = ipArgv(namespace, "-j", "-d", "addr", "show", "dev", name);
  const r = await t.run(argv, READ_ONLY);
  if (r.code !== 0) {
    if (GONE.test(r.stderr)) return undefined;
    throw new CommandError(t.label, argv, r.code, r.stderr);
  }
  const links = parseJson<LinkJson[]>(r.stdout, t.label, argv);
  return links.find((l) => l.ifname === name);
}

/** Every device in a namespace, with details and addresses, in one call. */
export async function readAllLinks(t: Transport, namespace: string | undefined): Promise<LinkJson[]> {
  const argv = ipArgv(namespace, "-j", "-d", "addr", "show");
  const r = await t.run(argv, READ_ONLY);
  if (r.code !== 0) {
    if (GONE.test(r.stderr)) throw new NotFoundError(`${t.label}: network namespace ${namespace} does not exist`);
    throw new CommandError(t.label, argv, r.code, r.stderr);
  }
  return parseJson<LinkJson[]>(r.stdout, t.label, argv);
}

export function parseJson<T>(text: string, host: string, argv: string[]): T {
  try {
    return JSON.parse(text || "[]") as T;
  } catch {
    throw new CommandError(host, argv, 0, `unparseable JSON output: ${text.slice(0, 200)}`);
  }
}

export function isGoneError(stderr: string): boolean {
  return GONE.test(stderr);
}

/** `valid_life_time` of an address that never expires (INFINITY_LIFE_TIME). */
const FOREVER = 4294967295;

/**
 * Addresses the kernel (or a daemon through it) keeps on the device by itself: the
 * IPv6 link-local one it generates, SLAAC and privacy addresses (`dynamic`,
 * `mngtmpaddr`, `temporary`), and anything with a finite lifetime (DHCP, SLAAC,
 * `ip addr add ... valid_lft 300`: the kernel removes it when it expires).
 */
export function isKernelManaged(a: AddrJson): boolean {
  return (
    (a.family === "inet6" && a.scope === "link") ||
    a.dynamic === true ||
    a.mngtmpaddr === true ||
    (a.family === "inet6" && a.temporary === true) ||
    (typeof a.valid_life_time === "number" && a.valid_life_time !== FOREVER)
  );
}

/**
 * The device's addresses as sorted CIDR strings: the set `addresses` manages. Addresses
 * the kernel manages (isKernelManaged) are not the stack's, so they count only when
 * `listed` names them: unlisted, they are never removed; listed (e.g. a chosen
 * fe80:: address), they verify like any other.
 */
export function linkAddresses(link: LinkJson, listed: readonly string[] = []): string[] {
  const wanted = new Set(listed);
  return (link.addr_info ?? [])
    .map((a) => ({ a, cidr: `${canonicalIp(a.local)}/${a.prefixlen}` }))
    .filter(({ a, cidr }) => !isKernelManaged(a) || wanted.has(cidr))
    .map(({ cidr }) => cidr)
    .sort();
}

export function isAdminUp(link: LinkJson): boolean {
  return link.flags.includes("UP");
}
