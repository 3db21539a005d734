/**
 * Safe apply (DESIGN.md §7, docs/safe-apply.md): a write that could cut the SSH
 * session is armed with a rollback that the host runs by itself, and confirmed over
 * a new SSH connection before it counts as done.
 *
 * Module API — the one thing runtimes call (the engine's create/converge/delete,
 * and any other runtime that writes to a host, e.g. `Interface`, `Route`):
 *
 *   runWrite(target, steps, write): Promise<T>
 *     target: { connection, transport, overSsh, what }
 *       connection: the resolved Connection (its `safeApply` settings apply);
 *       transport:  the pooled transport the write goes over;
 *       overSsh:    the transport is SSH (only then is there a session to protect);
 *       what:       "VethPair eth0 update" — names the operation in errors.
 *     steps: every argv line `write` will run on the host, in order (the lines the
 *       caller passes to runSteps / t.run). They decide whether the write is risky;
 *       the caller must not run other changes inside `write`.
 *     write: runs the steps exactly as without safe apply and returns its result.
 *   A write that touches nothing carrying the session calls `write()` and nothing
 *   else: no command, no connection (after one discovery per host and process,
 *   cached). A risky write is snapshotted, armed, written, confirmed over a new
 *   connection and disarmed, or rolled back by the host and reported as a
 *   SafeApplyRollbackError. A risky write whose undo the host cannot run (deleting
 *   a device the session needs, moving one to another namespace, a host without
 *   setsid) is refused before any change.
 *
 *   One batch that enslaves eth0 into br0 and moves its addresses and routes onto br0
 *   (Interface.moveAddresses) is risky and passes: the session survives, so the
 *   confirm succeeds. Pass all its lines in ONE runWrite call: split into several,
 *   the first (enslave without the address) cuts the session and is rolled back.
 */
import { randomBytes } from "node:crypto";
import { isIP } from "node:net";
import { type Connection, connectionKey } from "./connection";
import { NetdevError } from "./errors";
import { batchLine } from "./ipBatch";
import { canonicalIp } from "./schema";
import type { LinkJson } from "./iproute/link";
import type { Transport } from "./transport/types";

export interface WriteTarget {
  connection: Connection;
  transport: Transport;
  overSsh: boolean;
  what: string;
}

export const DEFAULT_ROLLBACK_AFTER_SECONDS = 60;

/** A risky write did not keep the host reachable; the host undid it. Pulumi's state is unchanged. */
export class SafeApplyRollbackError extends NetdevError {}

/** Counters for tests and the benchmark. */
export const safeApplyStats = { discoveries: 0, guardedWrites: 0, unguardedWrites: 0, rollbacks: 0 };

// ---- what carries the session ----

export interface SessionFacts {
  /** Client address from SSH_CONNECTION (the bastion's, when there is one). */
  client: string;
  /** Names `ip netns identify` gives the namespace the session's commands run in (empty on an ordinary host). */
  netnsNames: string[];
  /** Device of the route back to the client. */
  routeDev: string;
  /** Route table of that route, when not main. */
  routeTable?: string;
  /** The session's next hop: the gateway of that route, else the client itself. */
  neighbour: string;
  /** Every device the session may ride on: the route device, its master chain, everything beneath. */
  carriers: Set<string>;
  /** The ones it cannot do without (route device, masters, vlan parents, bond slaves): deleting one cannot be undone. */
  core: Set<string>;
  /** Carriers that are bonds: enslaving into one changes the session's device. */
  bonds: Set<string>;
  /** Addresses (without prefix) on carriers: adding one elsewhere moves it. */
  carrierAddresses: Set<string>;
  /** e.g. "eth0" or "eth0 → br0" (lower → upper), for messages. */
  path: string;
  links: LinkJson[];
  routes: RouteJson[];
}

export interface RouteJson {
  dst: string;
  gateway?: string;
  dev?: string;
  protocol?: string;
  scope?: string;
  prefsrc?: string;
  metric?: number;
  table?: string;
  type?: string;
  flags?: string[];
  family?: 4 | 6;
}

/**
 * One command: the session's client address (sudo resets the environment, so it is
 * read from the nearest ancestor process that has it), the namespace's name, the
 * route to the client, every link and every route. Constant text; no value is
 * ever put into it.
 */
const DISCOVER = `c=\${SSH_CONNECTION:-}
if [ -z "$c" ]; then
  p=$PPID
  while [ -n "$p" ] && [ "$p" -gt 1 ]; do
    c=$(tr '\\0' '\\n' < /proc/$p/environ 2>/dev/null | sed -n 's/^SSH_CONNECTION=//p')
    [ -n "$c" ] && break
    p=$(sed -n 's/^PPid:[[:space:]]*//p' /proc/$p/status 2>/dev/null)
  done
fi
echo "@ssh $c"
echo "@netns"
ip netns identify 2>/dev/null
set -- $c
[ -n "\${1:-}" ] || exit 0
echo "@route"
ip -j route get "$1"
echo "@links"
ip -j -d addr show
echo "@routes4"
ip -4 -j route show table all
echo "@routes6"
ip -6 -j route show table all
`;

export function parseDiscovery(out: string): SessionFacts | undefined {
  const sections = new Map<string, string>();
  let current = "";
  let ssh = "";
  for (const line of out.split("\n")) {
    if (line.startsWith("@ssh")) ssh = line.slice(4).trim();
    else if (/^@(netns|route|links|routes4|routes6)$/.test(line)) sections.set((current = line.slice(1)), "");
    else if (current) sections.set(current, sections.get(current)! + line + "\n");
  }
  const client = ssh.split(/\s+/)[0];
  if (!client || !sections.has("route")) return undefined;
  const route = (JSON.parse(sections.get("route")!.trim() || "[]") as RouteJson[])[0];
  const links = JSON.parse(sections.get("links")!.trim() || "[]") as LinkJson[];
  const routes = [
    ...(JSON.parse(sections.get("routes4")?.trim() || "[]") as RouteJson[]).map((r) => ({ ...r, family: 4 as const })),
    ...(JSON.parse(sections.get("routes6")?.trim() || "[]") as RouteJson[]).map((r) => ({ ...r, family: 6 as const })),
  ];
  if (!route?.dev) return undefined;
  return carriersOf(client, route.dev, route.table, route.gateway ?? client, (sections.get("netns") ?? "").split("\n").map((s) => s.trim()).filter(Boolean), links, routes);
}

export function carriersOf(client: string, routeDev: string, routeTable: string | undefined, neighbour: string, netnsNames: string[], links: LinkJson[], routes: RouteJson[]): SessionFacts {
  const byName = new Map(links.map((l) => [l.ifname, l]));
  const carriers = new Set<string>();
  const core = new Set<string>();
  const chain: string[] = [];
  const lowers = (name: string, isCore: boolean) => {
    const l = byName.get(name);
    if (!l) return;
    const parent = typeof l.link === "string" ? l.link : undefined;
    if (parent && byName.has(parent) && !carriers.has(parent)) add(parent, isCore);
    const kind = l.linkinfo?.info_kind;
    for (const p of links) {
      if (p.master !== name || carriers.has(p.ifname)) continue;
      // Every slave of a bond may carry its traffic; a bridge's ports are carriers
      // (their changes are guarded) but not indispensable one by one.
      add(p.ifname, isCore && kind === "bond");
    }
  };
  const add = (name: string, isCore: boolean) => {
    carriers.add(name);
    if (isCore) core.add(name);
    lowers(name, isCore);
  };
  add(routeDev, true);
  chain.push(routeDev);
  for (let m = byName.get(routeDev)?.master; m && !chain.includes(m); m = byName.get(m)?.master) {
    chain.push(m);
    add(m, true);
  }
  const bonds = new Set([...carriers].filter((n) => byName.get(n)?.linkinfo?.info_kind === "bond"));
  const carrierAddresses = new Set(links.filter((l) => carriers.has(l.ifname)).flatMap((l) => (l.addr_info ?? []).map((a) => canonicalIp(a.local))));
  return { client, netnsNames, routeDev, routeTable, neighbour, carriers, core, bonds, carrierAddresses, path: chain.join(" → "), links, routes };
}

// ---- which lines are risky ----

export interface StepRisk {
  argv: string[];
  /** Why the line is risky, e.g. "sets eth0, which carries the SSH session". */
  reason: string;
  /** Devices of the session's namespace the line names (to snapshot). */
  devices: string[];
}

export interface Classification {
  risky: StepRisk[];
  /** Devices the steps create in the session's namespace (the undo deletes them). */
  created: string[];
  /** Why the write cannot be guarded, when it cannot (refused before any change). */
  refusal?: string;
}

const ROUTE_VERBS = new Set(["add", "del", "delete", "replace", "change", "append", "prepend"]);
const ROUTE_TYPES = new Set(["unicast", "local", "broadcast", "multicast", "throw", "unreachable", "prohibit", "blackhole", "nat", "anycast"]);

export function classify(facts: SessionFacts, steps: string[][]): Classification {
  const out: Classification = { risky: [], created: [] };
  for (const argv of steps) {
    if (argv[0] !== "ip" && argv[0] !== "bridge") continue;
    let rest = argv.slice(1);
    if (rest[0] === "-n") {
      // Another namespace than the session's cannot cut it.
      if (!facts.netnsNames.includes(rest[1])) continue;
      rest = rest.slice(2);
    }
    while (rest[0]?.startsWith("-")) rest = rest.slice(1);
    const [object, verb] = rest;
    const after = (word: string) => {
      const i = rest.indexOf(word, 2);
      return i >= 0 ? rest[i + 1] : undefined;
    };
    const risky = (reason: string, ...devices: (string | undefined)[]) =>
      out.risky.push({ argv, reason, devices: devices.filter((d): d is string => d !== undefined) });
    const carrier = (d: string | undefined) => d !== undefined && facts.carriers.has(d);
    const viaSession = (d: string) => `${d}, which carries the SSH session from ${facts.client} (${facts.path})`;
    if (argv[0] === "bridge") {
      const dev = after("dev");
      if (carrier(dev)) risky(`changes the bridge port ${viaSession(dev!)}`, dev);
      continue;
    }
    if (object === "link" || object === "l") {
      if (verb === "add") {
        const name = after("name") ?? rest[2];
        // An add is exclusive (NLM_F_EXCL): on a name that exists the kernel refuses it
        // and the batch stops there, so nothing after it can touch the session. (A
        // create tries its add first and looks at the device only when it is refused.)
        if (name && facts.links.some((l) => l.ifname === name)) break;
        if (name) out.created.push(name);
        continue;
      }
      const dev = after("dev") ?? rest[2];
      if (verb === "set") {
        const master = after("master");
        if (carrier(dev)) {
          if (rest.includes("netns")) out.refusal ??= `\`${argv.join(" ")}\` moves ${viaSession(dev!)} to another namespace, which the host's rollback could not undo`;
          risky(`sets ${viaSession(dev!)}`, dev, master);
        } else if (master && facts.bonds.has(master)) risky(`enslaves ${dev} into the bond ${viaSession(master)}`, dev, master);
        continue;
      }
      if (verb === "del" || verb === "delete") {
        if (dev && facts.core.has(dev)) out.refusal ??= `\`${argv.join(" ")}\` deletes ${viaSession(dev)}; the host's rollback cannot re-create a deleted device, so move the session off it first`;
        else if (carrier(dev)) risky(`deletes ${viaSession(dev!)}`, dev);
      }
      continue;
    }
    if (object === "tuntap") {
      if (verb === "add") out.created.push(after("dev") ?? after("name") ?? rest[2]);
      continue;
    }
    if (object === "addr" || object === "address" || object === "a") {
      const dev = after("dev");
      const local = rest.slice(2).find((w) => /^[0-9a-fA-F:.]+\/\d+$/.test(w) || isIP(w) !== 0);
      if (carrier(dev)) risky(`changes the addresses of ${viaSession(dev!)}`, dev);
      else if ((verb === "add" || verb === "replace") && local) {
        const ip = canonicalIp(local.split("/")[0]);
        if (facts.carrierAddresses.has(ip)) risky(`moves ${ip}, an address of the session's path (${facts.path}), onto ${dev}`, dev);
        else if (local.includes("/") && containsAddress(local, facts.client)) risky(`adds ${local} on ${dev}, whose prefix route covers the session's client ${facts.client}`, dev);
      }
      continue;
    }
    if (object === "route" || object === "r" || object === "ro") {
      if (!ROUTE_VERBS.has(verb)) continue;
      const dev = after("dev");
      let i = 2;
      while (ROUTE_TYPES.has(rest[i]) || rest[i] === "to") i++;
      const dst = rest[i];
      const table = after("table");
      const sameTable = table === undefined || table === "main" || table === "254" || table === facts.routeTable;
      if (carrier(dev)) risky(`changes a route over ${viaSession(dev!)}`, dev);
      else if (sameTable && dst && containsAddress(dst, facts.client)) risky(`changes the route ${dst}, which covers the session's client ${facts.client}`, dev);
    }
  }
  return out;
}

/** Does the destination ("default", a CIDR or an address) cover `ip`? */
export function containsAddress(dst: string, ip: string): boolean {
  const fam = isIP(ip);
  if (dst === "default" || dst === "all" || dst === "any") return true;
  const [net, lenText] = dst.split("/");
  if (isIP(net) !== fam) return false;
  const bits = fam === 4 ? 32 : 128;
  const len = lenText === undefined ? bits : Number(lenText);
  const a = toBigInt(net, fam);
  const b = toBigInt(ip, fam);
  const shift = BigInt(bits - len);
  return a >> shift === b >> shift;
}

function toBigInt(ip: string, fam: number): bigint {
  if (fam === 4) return ip.split(".").reduce((n, o) => (n << 8n) + BigInt(Number(o)), 0n);
  const full = canonicalIp(ip);
  const [head, tail = ""] = full.includes("::") ? full.split("::") : [full, undefined as unknown as string];
  const h = head ? head.split(":") : [];
  const t = full.includes("::") && tail ? tail.split(":") : [];
  const groups = full.includes("::") ? [...h, ...Array(8 - h.length - t.length).fill("0"), ...t] : h;
  return groups.reduce((n, g) => (n << 16n) + BigInt(parseInt(g || "0", 16)), 0n);
}

// ---- the undo batch ----

/** One undo line, through the one batch builder (every word checked). */
function line(...words: (string | number)[]): string {
  return batchLine(words.map(String));
}

/**
 * `ip -force -batch` lines that put `devices` back as `facts` saw them (master, mtu,
 * global addresses, up, routes through them) and delete `created`. Ports and slaves
 * go before their masters; -force goes on past lines that are already true.
 */
export function undoBatch(facts: SessionFacts, devices: string[], created: string[]): string {
  const byName = new Map(facts.links.map((l) => [l.ifname, l]));
  const depth = (n: string): number => {
    let d = 0;
    for (let m = byName.get(n)?.master; m && d < 16; m = byName.get(m)?.master) d++;
    return d;
  };
  const snap = devices.filter((d) => byName.has(d)).sort((a, b) => depth(b) - depth(a));
  const lines: string[] = [];
  for (const c of created) if (!byName.has(c)) lines.push(line("link", "del", "dev", c));
  for (const d of snap) if (!byName.get(d)!.master) lines.push(line("link", "set", "dev", d, "nomaster"));
  for (const d of snap) {
    const m = byName.get(d)!.master;
    if (!m) continue;
    if (byName.get(m)?.linkinfo?.info_kind === "bond") lines.push(line("link", "set", "dev", d, "down"));
    lines.push(line("link", "set", "dev", d, "master", m));
  }
  for (const d of snap) {
    const l = byName.get(d)!;
    lines.push(line("link", "set", "dev", d, "mtu", l.mtu));
    lines.push(line("addr", "flush", "dev", d, "scope", "global"));
    for (const a of l.addr_info ?? []) {
      if ((a.scope ?? "global") !== "global") continue;
      const brd = (a as { broadcast?: string }).broadcast;
      lines.push(line("addr", "add", `${a.local}/${a.prefixlen}`, ...(brd ? ["broadcast", brd] : []), "dev", d));
    }
    lines.push(line("link", "set", "dev", d, l.flags.includes("UP") ? "up" : "down"));
  }
  for (const r of facts.routes) {
    if (!r.dev || !snap.includes(r.dev) || r.protocol === "kernel" || r.table === "local" || (r.type && r.type !== "unicast")) continue;
    if (r.family === 6 && r.dst.startsWith("fe80:")) continue;
    const dst = r.dst === "default" ? (r.family === 6 ? "::/0" : "0.0.0.0/0") : r.dst;
    lines.push(
      line(
        "route", "replace", dst,
        ...(r.gateway ? ["via", r.gateway] : []),
        "dev", r.dev,
        ...(r.table && r.table !== "main" ? ["table", r.table] : []),
        ...(r.protocol ? ["proto", r.protocol] : []),
        ...(r.scope ? ["scope", r.scope] : []),
        ...(r.prefsrc ? ["src", r.prefsrc] : []),
        ...(r.metric !== undefined ? ["metric", r.metric] : []),
        ...(r.flags?.includes("onlink") ? ["onlink"] : []),
      ),
    );
  }
  return lines.join("\n") + "\n";
}

// ---- the host side: arm, disarm, inspect (constant scripts, values as positional arguments) ----

const STATE_DIR = "/run/pulumi-netdev-safe-apply";
/** What the host needs to run a rollback on its own. */
const NEEDED = "setsid sleep ip cat mkdir mv rm kill";

/**
 * $1 state dir, $2 seconds; the undo batch on stdin. The timer is its own session
 * (setsid: no terminal, no SSH channel, no provider): it survives both.
 */
const ARM = `missing=
for c in ${NEEDED}; do command -v "$c" >/dev/null 2>&1 || missing="$missing $c"; done
if [ -n "$missing" ]; then echo "missing:$missing"; exit 3; fi
umask 077
mkdir -p ${STATE_DIR} && mkdir "$1" || exit 4
cat > "$1/undo" || exit 4
: > "$1/armed"
setsid sh -c 'sleep "$2"; mv "$1/armed" "$1/firing" 2>/dev/null || exit 0; ip -force -batch "$1/undo" > "$1/log" 2>&1; echo $? > "$1/rolled-back"' sh "$1" "$2" </dev/null >/dev/null 2>&1 &
echo $! > "$1/pid"
echo "armed $!"
`;

/**
 * $1 state dir. Taking the token away first is the commit: a timer that already
 * took it (renamed it to firing) is rolling back, and then this says so. Otherwise
 * the timer's session is killed and waited for (zombies count as gone), and the
 * dir removed.
 */
const DISARM = `[ -d "$1" ] || { echo "gone"; exit 6; }
rm "$1/armed" 2>/dev/null || { echo "fired"; exit 4; }
pid=$(cat "$1/pid")
kill -TERM "-$pid" 2>/dev/null
alive() {
  for s in /proc/[0-9]*/stat; do
    read -r l < "$s" 2>/dev/null || continue
    r=\${l##*) }
    set -- $r
    [ "$3" = "$pid" ] && [ "$1" != Z ] && return 0
  done
  return 1
}
i=0
while alive; do i=$((i+1)); [ $i -gt 50 ] && { echo "still running $pid"; exit 5; }; sleep 0.1; done
rm -rf "$1"
echo "disarmed $pid"
`;

/** $1 state dir: what the timer did. */
const INSPECT = `if [ -e "$1/rolled-back" ]; then echo "rolled-back $(cat "$1/rolled-back")"; cat "$1/log"; rm -rf "$1"; elif [ -e "$1/armed" ]; then echo armed; elif [ -e "$1/firing" ]; then echo firing; else echo gone; fi`;

const sh = (script: string, ...args: string[]) => ["sh", "-c", script, "sh", ...args];

// ---- provider-wide state ----

let openFresh: ((c: Connection) => Transport & { close(): void }) | undefined;
let dropPooled: ((c: Connection) => void) | undefined;

/** The engine gives the SSH transport's "new connection" and "drop pooled connection" functions. */
export function setSshFunctions(fresh: (c: Connection) => Transport & { close(): void }, drop: (c: Connection) => void): void {
  openFresh = fresh;
  dropPooled = drop;
}

const facts = new Map<string, Promise<SessionFacts | undefined>>();
const hostLocks = new Map<string, Promise<void>>();

/** Forget what was discovered (tests; after a risky write). */
export function forgetSessions(): void {
  facts.clear();
}

async function discover(t: Transport): Promise<SessionFacts | undefined> {
  safeApplyStats.discoveries++;
  // As the login user: sudo's env_reset would drop SSH_CONNECTION, and the reads need no privilege.
  const r = await t.run(sh(DISCOVER), { idempotent: true, unprivileged: true });
  if (r.code !== 0) throw new NetdevError(`${t.label}: safe apply could not find what carries the SSH session: ${r.stderr.trim() || `exit ${r.code}`}`);
  return parseDiscovery(r.stdout);
}

function sessionFacts(key: string, t: Transport): Promise<SessionFacts | undefined> {
  let f = facts.get(key);
  if (!f) {
    f = discover(t);
    facts.set(key, f);
    f.catch(() => facts.delete(key));
  }
  return f;
}

async function withHostLock<T>(key: string, fn: () => Promise<T>): Promise<T> {
  const before = hostLocks.get(key) ?? Promise.resolve();
  let release!: () => void;
  const mine = new Promise<void>((r) => (release = r));
  const tail = before.then(() => mine);
  hostLocks.set(key, tail);
  await before;
  try {
    return await fn();
  } finally {
    release();
    if (hostLocks.get(key) === tail) hostLocks.delete(key);
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const trace = process.env.NETDEV_TRACE_SAFE_APPLY ? (...a: unknown[]) => console.error(`[safeApply ${new Date().toISOString().slice(11, 23)}]`, ...a) : () => {};

// ---- the one entry point ----

export async function runWrite<T>(target: WriteTarget, steps: string[][], write: () => Promise<T>): Promise<T> {
  const { connection: c, transport: t } = target;
  if (!target.overSsh || c.safeApply?.enabled === false || steps.length === 0 || !openFresh) {
    safeApplyStats.unguardedWrites++;
    return write();
  }
  const key = connectionKey(c);
  const known = await sessionFacts(key, t);
  if (!known || classify(known, steps).risky.length === 0) {
    safeApplyStats.unguardedWrites++;
    return write();
  }
  return withHostLock(key, async () => {
    safeApplyStats.guardedWrites++;
    try {
      return await guarded(target, steps, write);
    } finally {
      facts.delete(key);
    }
  });
}

async function guarded<T>(target: WriteTarget, steps: string[][], write: () => Promise<T>): Promise<T> {
  const { connection: c, transport: t } = target;
  const seconds = c.safeApply?.rollbackAfterSeconds ?? DEFAULT_ROLLBACK_AFTER_SECONDS;
  // Fresh facts: the cached ones decided "risky"; the snapshot must be of now.
  const now = await discover(t);
  if (!now) return write();
  const plan = classify(now, steps);
  trace("snapshot");
  if (plan.refusal) throw new NetdevError(`${t.label}: ${target.what} refused before any change: ${plan.refusal}`);
  if (plan.risky.length === 0) return write();
  const devices = [...new Set([...now.carriers, ...plan.risky.flatMap((r) => r.devices)])];
  const undo = undoBatch(now, devices, plan.created);
  const change = plan.risky.map((r) => `\`${r.argv.join(" ")}\` (${r.reason})`).join("; ");

  const dir = `${STATE_DIR}/${Date.now()}-${randomBytes(6).toString("hex")}`;
  const armed = await t.run(sh(ARM, dir, String(seconds)), { stdin: undo }).catch((err: Error) => {
    if (!(err instanceof NetdevError && /sudo refused to run sh/.test(err.message))) throw err;
    throw new NetdevError(`${t.label}: ${target.what} refused before any change: it is risky (${change}) and safe apply cannot arm a rollback on this host: ${err.message.replace(/^[^:]*: /, "")} (allow sh, setsid, sleep and ip through sudo, or set connection.safeApply.enabled = false)`);
  });
  if (armed.code === 3) {
    const missing = armed.stdout.replace(/^missing:\s*/, "").trim();
    throw new NetdevError(`${t.label}: ${target.what} refused before any change: it is risky (${change}) and safe apply cannot arm a rollback on this host: missing ${missing} (install it, e.g. util-linux for setsid, or set connection.safeApply.enabled = false)`);
  }
  if (armed.code !== 0 || !/^armed \d+/m.test(armed.stdout))
    throw new NetdevError(`${t.label}: ${target.what} refused before any change: arming the rollback in ${dir} failed (exit ${armed.code}): ${(armed.stderr || armed.stdout).trim()}`);
  const armedAt = Date.now();
  trace("armed");
  const fireAt = armedAt + seconds * 1000;
  const confirmBudget = Math.min(seconds * 500, 15_000);

  // The write's answer comes over the pooled connection, i.e. over the path the
  // write may have cut: wait for it only until the confirm must start.
  let outcome: { ok: true; value: T } | { ok: false; error: unknown } | undefined;
  const writing = write().then(
    (value) => (outcome = { ok: true, value }),
    (error) => (outcome = { ok: false, error }),
  );
  await Promise.race([writing, sleep(Math.max(0, fireAt - confirmBudget - Date.now()))]);
  trace("write answered", !!outcome);
  let why: string;
  if (!outcome) why = `its answer did not come back within ${Math.round((Date.now() - armedAt) / 100) / 10} s`;
  else {
    const confirmed = await confirm(c, dir, fireAt, now.neighbour);
    if (confirmed.ok) {
      if (!outcome.ok) throw outcome.error;
      return outcome.value;
    }
    why = confirmed.why;
  }
  // Cut off: let the host roll back, then reach it again and check.
  const answered = outcome;
  dropPooled?.(c);
  const report = await awaitRollback(c, dir, fireAt, devices, now);
  safeApplyStats.rollbacks++;
  const writeNote = answered && !answered.ok ? `; the write itself reported: ${(answered.error as Error).message}` : "";
  throw new SafeApplyRollbackError(
    `${t.label}: ${target.what} was rolled back: ${change}. After the write, ${why}, so the host ran its rollback ${seconds} s (connection.safeApply.rollbackAfterSeconds) after arming it; ${report}. The change was not applied and Pulumi's state is unchanged${writeNote}`,
  );
}

/**
 * Reaches the host over a new connection before the timer fires and takes the token away.
 * A cut path can still carry packets for a while on neighbour (ARP/NDP) entries cached
 * before the write (measured: eth0 enslaved into a bridge without its address answers
 * until its entry for the next hop is re-resolved, then never again). So the host first
 * forgets the session's next hop, and only an answer that needed it resolved anew counts.
 */
async function confirm(c: Connection, dir: string, fireAt: number, neighbour: string): Promise<{ ok: true } | { ok: false; why: string }> {
  const margin = 300;
  const left = fireAt - margin - Date.now();
  if (left < 100) return { ok: false, why: "no time was left to confirm over a new SSH connection" };
  const fresh = openFresh!({ ...c, connectTimeoutMs: Math.min(c.connectTimeoutMs ?? 10_000, Math.max(100, left)) });
  try {
    trace("confirm: connecting");
    // Commands on the new connection must answer before the timer fires, too.
    const inTime = <R>(p: Promise<R>, what: string) =>
      Promise.race([p, sleep(Math.max(0, fireAt - margin - Date.now())).then(() => Promise.reject(new Error(`${what} did not answer before the rollback was due`)))]);
    const flushed = await inTime(fresh.run(["ip", "neigh", "flush", "to", neighbour]), `\`ip neigh flush to ${neighbour}\` (the host re-resolving the session's next hop)`);
    trace("confirm: flushed");
    if (flushed.code !== 0) throw new Error(`\`ip neigh flush to ${neighbour}\` failed: ${flushed.stderr.trim()}`);
    const r = await inTime(fresh.run(sh(DISARM, dir)), "disarming");
    if (r.code === 0 && /^disarmed/m.test(r.stdout)) return { ok: true };
    if (/^fired/m.test(r.stdout)) return { ok: false, why: "the confirmation over a new SSH connection came too late (the rollback had started)" };
    throw new NetdevError(`${fresh.label}: disarming the rollback in ${dir} failed (exit ${r.code}): ${(r.stdout + r.stderr).trim()}`);
  } catch (err) {
    if (err instanceof NetdevError && /disarming the rollback/.test(err.message)) throw err;
    return { ok: false, why: `a new SSH connection could not confirm it (${(err as Error).message})` };
  } finally {
    fresh.close();
  }
}

/** Waits for the host's rollback, then reads the devices over a new connection and compares them with the snapshot. */
async function awaitRollback(c: Connection, dir: string, fireAt: number, devices: string[], before: SessionFacts): Promise<string> {
  const deadline = fireAt + 60_000;
  let last = "";
  await sleep(Math.max(0, fireAt + 500 - Date.now()));
  while (Date.now() < deadline) {
    const fresh = openFresh!({ ...c, connectTimeoutMs: Math.min(c.connectTimeoutMs ?? 10_000, 5_000) });
    try {
      const r = await fresh.run(sh(INSPECT, dir));
      const state = r.stdout.split("\n")[0];
      trace("rollback state", state);
      if (state.startsWith("rolled-back")) {
        const code = state.split(" ")[1];
        const after = await discover(fresh);
        const diffs = after ? compare(before, after, devices) : ["the session could not be found again"];
        const at = `the rollback ran (ip -batch exit ${code}) and the host was reached again over a new SSH connection`;
        return diffs.length === 0
          ? `${at}; ${devices.filter((d) => before.links.some((l) => l.ifname === d)).join(", ")} are verified exactly as before (master, mtu, up, addresses)`
          : `${at}, but these differ from before: ${diffs.join("; ")}`;
      }
      last = state === "gone" ? "the rollback state on the host is gone" : `the rollback is ${state}`;
      if (state === "gone") break;
    } catch (err) {
      last = `the host is not reachable: ${(err as Error).message}`;
      trace(last);
    } finally {
      fresh.close();
    }
    await sleep(1000);
  }
  return `whether the host restored itself is unknown: ${last}`;
}

function compare(before: SessionFacts, after: SessionFacts, devices: string[]): string[] {
  const view = (l: LinkJson | undefined) =>
    l && {
      master: l.master ?? null,
      mtu: l.mtu,
      up: l.flags.includes("UP"),
      addresses: (l.addr_info ?? []).filter((a) => (a.scope ?? "global") === "global").map((a) => `${a.local}/${a.prefixlen}`).sort(),
    };
  const out: string[] = [];
  for (const d of devices) {
    const a = view(before.links.find((l) => l.ifname === d));
    if (!a) continue;
    const b = view(after.links.find((l) => l.ifname === d));
    if (!b) out.push(`${d} is missing`);
    else if (JSON.stringify(a) !== JSON.stringify(b)) out.push(`${d} is ${JSON.stringify(b)}, was ${JSON.stringify(a)}`);
  }
  return out;
}
