import { submit } from "../batching";
import { CommandError, NotFoundError } from "../errors";
import { batchScript, failedBatchLines, isBatchSafe } from "../ipBatch";
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
 * What a read needs. `addresses: false` says the caller does not look at the
 * device's addresses, so the reader may leave `addr_info` out when that is
 * cheaper — inside `ip -batch` it is far cheaper: batch mode opens its netlink
 * socket without strict checking (iproute2's batch() never calls
 * rtnl_set_strict_dump), so the kernel ignores the device filter of a dump request
 * and every `addr show dev X` line dumps every link and every address of the
 * namespace for `ip` to filter: the cost of one read grows with the number of
 * devices (measured: 510 KB of netlink per line among 2,000 devices), and creating
 * N devices costs O(N²). A `link show dev X` line is one RTM_GETLINK for that
 * device, whatever the namespace holds. (A standalone `ip addr show dev X` is
 * strict, so it stays cheap and keeps its addresses.)
 */
export interface ReadOptions {
  addresses?: boolean;
}

/** Options of a read that does not need the device's addresses (see ReadOptions). */
export const LINK_ONLY: ReadOptions = Object.freeze({ addresses: false });

/** The batch line (words after `ip [-n ns]`) that reads `name`. */
export function readLine(name: string, opts: ReadOptions = {}): string[] {
  return [opts.addresses === false ? "link" : "addr", "show", "dev", name];
}

/**
 * The device's details and addresses, or undefined when it (or its namespace) does
 * not exist. On a transport with a batchKey, reads of one namespace that wait at
 * the same time share one `ip` invocation (provider/batching.ts); with
 * `addresses: false` such a read may come back without `addr_info`.
 */
export async function readLink(t: Transport, namespace: string | undefined, name: string, opts: ReadOptions = {}): Promise<LinkJson | undefined> {
  // A name the batch parser would misread is read on its own, as an argv.
  if (t.batchKey && isBatchSafe(name) && name !== "") return readShared(t, namespace, name, opts.addresses !== false);
  return readOne(t, namespace, name);
}

interface ReadJob {
  t: Transport;
  name: string;
  /** false: a `link show` line will do. */
  addresses: boolean;
  resolve(link: LinkJson | undefined): void;
  reject(err: unknown): void;
}

function readShared(t: Transport, namespace: string | undefined, name: string, addresses: boolean): Promise<LinkJson | undefined> {
  return new Promise((resolve, reject) =>
    submit<ReadJob>(`${t.batchKey}\nread\n${namespace ?? ""}`, { t, name, addresses, resolve, reject }, (jobs) => readJobs(namespace, jobs)),
  );
}

/**
 * Several reads as one `ip -j -d -force -batch -`, one `addr show dev X` line each
 * (`link show dev X` for a device no job wants the addresses of): every line
 * prints its own JSON array, and -force goes on past a device that does not exist
 * (reads change nothing), reporting it as "Command failed -:N".
 */
async function readJobs(namespace: string | undefined, jobs: ReadJob[]): Promise<void> {
  // Alone, a standalone read (strict, so cheap whatever the namespace holds) costs no more.
  if (jobs.length === 1) {
    const [job] = jobs;
    return readOne(job.t, namespace, job.name).then(job.resolve, job.reject);
  }
  const t = jobs[0].t;
  const names = [...new Set(jobs.map((j) => j.name))];
  const withAddresses = new Set(jobs.filter((j) => j.addresses).map((j) => j.name));
  const lines = names.map((n) => readLine(n, { addresses: withAddresses.has(n) }));
  const argv = ipArgv(namespace, "-j", "-d", "-force", "-batch", "-");
  const r = await t.run(argv, { stdin: batchScript(lines), idempotent: true });
  const lineErrors = failedBatchLines(r.stderr);
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
    const k = names.indexOf(j.name);
    const error = lineErrors.get(k + 1);
    if (error === undefined || GONE.test(error)) j.resolve(undefined);
    else j.reject(new CommandError(t.label, ipArgv(namespace, "-j", "-d", ...lines[k]), r.code, error));
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
