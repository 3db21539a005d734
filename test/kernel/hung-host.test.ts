// A host that stops answering must not hang `pulumi up`: commandTimeoutMs bounds one
// command, SSH keepalives (keepaliveIntervalMs) find a peer that went silent, the
// operation fails with an error naming host and command, the dead connection leaves
// the pool and the next operation dials a new one. Also: openFreshTransport gives a
// new, unpooled connection through the same bastion chain.
// Real sshd on namespace hosts; sshd frozen with SIGSTOP, the host's link set down.
import * as fs from "node:fs";
import { afterAll, beforeAll, expect, it } from "vitest";
import type { Connection } from "../../provider/connection";
import { ConnectionError } from "../../provider/errors";
import { closeAllConnections, CommandTimeoutError, openFreshTransport, SshTransport, sshStats } from "../../provider/transport/ssh";
import { netnsPrerequisites, startNetnsLab, type NetnsHost, type NetnsLab } from "../hosts/netns";
import { failure } from "../support/errors";
import { hostSuite } from "../support/prereq";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Pids of every process below `pid` (the sshd session processes serving our connection are children of the listener). */
function descendants(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const entry of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      children.set(ppid, [...(children.get(ppid) ?? []), Number(entry)]);
    } catch {
      // gone meanwhile
    }
  }
  const out: number[] = [];
  const walk = (p: number) => {
    for (const c of children.get(p) ?? []) {
      out.push(c);
      walk(c);
    }
  };
  walk(pid);
  return out;
}

function comm(pid: number): string {
  try {
    return fs.readFileSync(`/proc/${pid}/comm`, "utf8").trim();
  } catch {
    return "";
  }
}

hostSuite("a host that stops answering", netnsPrerequisites().missing, () => {
  let lab: NetnsLab;
  let frozen: number[] = [];

  beforeAll(async () => {
    lab = await startNetnsLab({ hosts: 2 });
  });

  afterAll(async () => {
    for (const pid of frozen) {
      try {
        process.kill(pid, "SIGCONT");
      } catch {
        // gone
      }
    }
    closeAllConnections();
    await lab?.destroy();
  });

  const conn = (h: NetnsHost, extra: Partial<Connection> = {}): Connection => ({
    host: h.address,
    hostKey: h.connection.hostKey,
    privateKey: lab.privateKey,
    commandTimeoutMs: 3000,
    keepaliveIntervalMs: 1000,
    ...extra,
  });

  /** Runs argv and measures how long it took to fail. */
  async function timedFailure(t: SshTransport, argv: string[], started?: Promise<unknown>) {
    const t0 = performance.now();
    const e = await failure(started ?? t.run(argv));
    return { e, ms: performance.now() - t0 };
  }

  it("a command that outlives commandTimeoutMs fails in time; its shell is discarded, the connection stays", async () => {
    const h = lab.hosts[0];
    const t = new SshTransport(conn(h));
    expect((await t.run(["echo", "ok"])).stdout).toBe("ok\n");
    const opened = sshStats.connectionsOpened;
    const { e, ms } = await timedFailure(t, ["sleep", "30"]);
    console.log(`[hung-host] sleep 30 with commandTimeoutMs 3000 failed after ${ms.toFixed(0)} ms`);
    expect(e).toBeInstanceOf(CommandTimeoutError);
    expect(e.message).toBe(`${h.address}: \`sleep 30\` did not finish within 3000 ms (commandTimeoutMs); it may have run, so it is not retried`);
    expect(ms).toBeGreaterThanOrEqual(2900);
    expect(ms).toBeLessThan(15_000);
    // The next command does not wait behind the sleep (its shell was discarded), on the same connection.
    const t1 = performance.now();
    expect((await t.run(["echo", "after"])).stdout).toBe("after\n");
    expect(performance.now() - t1).toBeLessThan(10_000);
    expect(sshStats.connectionsOpened).toBe(opened);
  });

  it("sshd frozen (SIGSTOP) mid-command: the operation fails in time naming host and command; after SIGCONT the next one redials", async () => {
    const h = lab.hosts[0];
    const t = new SshTransport(conn(h, { commandTimeoutMs: 20_000 }));
    expect((await t.run(["echo", "ok"])).stdout).toBe("ok\n");
    const opened = sshStats.connectionsOpened;
    const running = t.run(["sh", "-c", "sleep 2; echo done"]);
    await sleep(300);
    frozen = descendants(h.sshdPid).filter((p) => comm(p) === "sshd");
    expect(frozen.length).toBeGreaterThan(0);
    for (const pid of frozen) process.kill(pid, "SIGSTOP");
    const { e, ms } = await timedFailure(t, [], running);
    console.log(`[hung-host] sshd frozen: failed after ${ms.toFixed(0)} ms: ${e.message}`);
    expect(e).toBeInstanceOf(ConnectionError);
    expect(e.message).toMatch(
      new RegExp(`^${h.address.replace(/\./g, "\\.")}: \`sh -c sleep 2; echo done\`: the SSH connection closed before the command finished: the host stopped answering: no reply to 3 keepalives sent 1000 ms apart \\(keepaliveIntervalMs\\)$`),
    );
    // Keepalives every 1 s, 3 missed: about 3–4 s; generous for a loaded machine, and well under commandTimeoutMs.
    expect(ms).toBeLessThan(15_000);
    for (const pid of frozen) process.kill(pid, "SIGCONT");
    frozen = [];
    expect((await t.run(["echo", "back"])).stdout).toBe("back\n");
    expect(sshStats.connectionsOpened).toBe(opened + 1);
  });

  it("frozen with a command timeout shorter than the keepalives: commandTimeoutMs fires and drops the silent connection", async () => {
    const h = lab.hosts[0];
    const t = new SshTransport(conn(h, { commandTimeoutMs: 2000, keepaliveIntervalMs: 900 }));
    expect((await t.run(["echo", "ok"])).stdout).toBe("ok\n");
    const opened = sshStats.connectionsOpened;
    frozen = descendants(h.sshdPid).filter((p) => comm(p) === "sshd");
    for (const pid of frozen) process.kill(pid, "SIGSTOP");
    const { e, ms } = await timedFailure(t, ["ip", "link", "show", "lo"]);
    expect(e).toBeInstanceOf(CommandTimeoutError);
    expect(e.message).toBe(
      `${h.address}: \`ip link show lo\` did not finish within 2000 ms (commandTimeoutMs); the host stopped answering keepalives, so the connection was dropped; it may have run, so it is not retried`,
    );
    expect(ms).toBeLessThan(15_000);
    for (const pid of frozen) process.kill(pid, "SIGCONT");
    frozen = [];
    // Even if the old session came back to life, it left the pool: a new connection is made.
    expect((await t.run(["echo", "back"])).stdout).toBe("back\n");
    expect(sshStats.connectionsOpened).toBe(opened + 1);
  });

  it("the host's link goes down mid-command: the operation fails in time; after link up the next one redials", async () => {
    const h = lab.hosts[1];
    const t = new SshTransport(conn(h, { commandTimeoutMs: 20_000 }));
    expect((await t.run(["echo", "ok"])).stdout).toBe("ok\n");
    const opened = sshStats.connectionsOpened;
    const running = t.run(["sh", "-c", "sleep 2; echo done"]);
    await sleep(300);
    expect((await h.exec(["ip", "link", "set", "eth0", "down"])).code).toBe(0);
    try {
      const { e, ms } = await timedFailure(t, [], running);
      console.log(`[hung-host] link down: failed after ${ms.toFixed(0)} ms: ${e.message}`);
      expect(e).toBeInstanceOf(ConnectionError);
      expect(e.message).toMatch(new RegExp(`^${h.address.replace(/\./g, "\\.")}: \`sh -c sleep 2; echo done\`: the SSH connection closed before the command finished: the host stopped answering`));
      expect(ms).toBeLessThan(15_000);
    } finally {
      expect((await h.exec(["ip", "link", "set", "eth0", "up"])).code).toBe(0);
    }
    expect((await t.run(["echo", "back"])).stdout).toBe("back\n");
    expect(sshStats.connectionsOpened).toBe(opened + 1);
  });

  it("openFreshTransport: a new connection to the target of its own, through the pooled bastion chain, closed by its owner", async () => {
    const [target, jump] = lab.hosts;
    const c = conn(target, { bastion: conn(jump) });
    const pooled = new SshTransport(c);
    const whoAmI = async (t: { run: SshTransport["run"] }) => (await t.run(["sh", "-c", "echo $SSH_CONNECTION"])).stdout.trim().split(" ");
    const viaPool = await whoAmI(pooled);
    expect(viaPool[0]).toBe(jump.address); // came through the bastion
    const opened = sshStats.connectionsOpened;
    const fresh = openFreshTransport(c);
    expect(fresh.batchKey).toBeUndefined();
    const viaFresh = await whoAmI(fresh);
    // One new connection (the target's); the bastion's pooled one carried it.
    expect(sshStats.connectionsOpened).toBe(opened + 1);
    expect(viaFresh[0]).toBe(jump.address);
    expect(viaFresh[1]).not.toBe(viaPool[1]); // another TCP connection from the bastion
    // The pool is untouched by it.
    expect(await whoAmI(pooled)).toEqual(viaPool);
    expect(sshStats.connectionsOpened).toBe(opened + 1);
    fresh.close();
    // An unreachable host fails on the first command, naming it.
    const e = await failure(openFreshTransport({ ...conn(target), port: 1, connectTimeoutMs: 2000 }).run(["true"]));
    expect(e).toBeInstanceOf(ConnectionError);
    expect(e.message).toMatch(new RegExp(`^${target.address.replace(/\./g, "\\.")}:1: cannot connect`));
  });
});
