// Safe apply (DESIGN.md §7) on a network-namespace host whose sshd is reached
// through its eth0: a write that cuts the session is rolled back by the host itself,
// a correct one is confirmed and leaves nothing armed, an unrelated one costs
// nothing. Every check of the host's state is an independent `ip -j` read made with
// `ip netns exec` (not over SSH, not with the project's code).
//
// eth0 of a lab host is one end of a veth whose other end is in the machine's root
// namespace; the tests reach eth0 through VethPair with adopt, naming the root
// namespace through a /run/netns handle this file makes (and removes).
import { randomBytes } from "node:crypto";
import * as fs from "node:fs";
import { afterAll, beforeAll, expect, it } from "vitest";
import { netnsPrerequisites, startNetnsLab, type NetnsHost, type NetnsLab } from "../hosts/netns";
import { provider } from "../../provider/runtime";
import { transportFor } from "../../provider/engine";
import { forgetSessions, safeApplyStats } from "../../provider/safeApply";
import { closeAllConnections, sshStats } from "../../provider/transport/ssh";
import { hostSuite } from "../support/prereq";
import { addrsOf, ipLink, labConnection, sshExec } from "../support/kernel";
import { change, up } from "../support/kernel-steps";

const WINDOW = 5;

hostSuite("safe apply on a namespace host reached through its eth0", netnsPrerequisites().missing, () => {
  let lab: NetnsLab;
  let h: NetnsHost;
  let conn: ReturnType<typeof labConnection> & { safeApply: { rollbackAfterSeconds: number } };
  const rootRef = `sarootref-${randomBytes(4).toString("hex")}`;
  let eth0Adopt: Record<string, any>;

  /** eth0 as the kernel reports it: what must be exactly as before after a rollback. */
  const eth0View = async () => {
    const l = await ipLink(h, "eth0");
    return { master: l.master ?? null, mtu: l.mtu, up: l.flags.includes("UP"), addresses: addrsOf(l), ifindex: l.ifindex, operstate: l.operstate };
  };
  /** Every route (both families, every table) but those of the test's own bridge (its carrier flag follows its ports). */
  const routes = async () => {
    const all = [];
    for (const fam of ["-4", "-6"]) all.push(...JSON.parse((await h.exec(["ip", fam, "-j", "route", "show", "table", "all"])).stdout));
    // The kernel's own IPv6 link-local address (its local route comes and goes with DAD) is not state anyone set.
    return all.filter((r: { dev?: string; dst: string; type?: string }) => !r.dev?.startsWith("br-") && !(r.type === "local" && r.dst.startsWith("fe80:")));
  };
  /**
   * Left by safe apply for THIS host: state dirs under /run (shared with the whole
   * machine, so only those whose undo restores this host's eth0 address) and timer
   * processes in this host's namespace.
   */
  const armedLeft = () => {
    const dir = "/run/pulumi-netdev-safe-apply";
    const mine = (d: string) => {
      try {
        return fs.readFileSync(path.join(dir, d, "undo"), "utf8").includes(` ${h.address}/`);
      } catch {
        return false;
      }
    };
    return fs.existsSync(dir) ? fs.readdirSync(dir).filter(mine) : [];
  };
  const timersLeft = async () => {
    const pids = (await run(["ip", "netns", "pids", h.netns])).stdout.split("\n").filter(Boolean);
    return pids.filter((p) => {
      try {
        return fs.readFileSync(`/proc/${p}/cmdline`, "utf8").includes("rolled-back");
      } catch {
        return false;
      }
    }).join(" ");
  };

  beforeAll(async () => {
    lab = await startNetnsLab({ hosts: 1 });
    h = lab.hosts[0];
    conn = { ...labConnection(lab, h), safeApply: { rollbackAfterSeconds: WINDOW } };
    const peer = JSON.parse((await h.exec(["ip", "-j", "link", "show", "dev", "eth0"])).stdout)[0];
    const rootVeth = await rootVethOf(peer.link_index);
    fs.mkdirSync("/run/netns", { recursive: true });
    await must(["ip", "netns", "attach", rootRef, String(process.pid)]);
    eth0Adopt = { connection: conn, name: "eth0", peerName: rootVeth, peerNamespace: rootRef, adopt: true };
  });
  afterAll(async () => {
    closeAllConnections();
    await run(["ip", "netns", "delete", rootRef]);
    await lab?.destroy();
  });

  it("a write that puts eth0 into a bridge without its address is rolled back by the host, and the operation fails saying so", async () => {
    const br = await up("Bridge", { connection: conn, name: "br-sa", stp: false });
    const before = await eth0View();
    const routesBefore = await routes();
    const started = Date.now();
    const err = await provider("VethPair")
      .create((await provider("VethPair").check({}, { ...eth0Adopt, master: "br-sa" })).inputs)
      .then(() => undefined, (e: Error) => e);
    const took = (Date.now() - started) / 1000;
    expect(err, "the create must fail").toBeInstanceOf(Error);
    expect(err!.message).toMatch(/was rolled back/);
    expect(err!.message).toContain("eth0");
    expect(err!.message).toContain("master br-sa");
    expect(err!.message).toMatch(/verified exactly as before/);
    // About the window: the host waits WINDOW seconds, the provider then reaches it again.
    expect(took).toBeGreaterThan(WINDOW - 1);
    expect(took).toBeLessThan(WINDOW + 40);
    console.log(`[safe-apply] cut → rolled back → reported in ${took.toFixed(1)} s (window ${WINDOW} s): ${err!.message}`);
    // The host is reachable again, eth0 is exactly as before, nothing is left enslaved.
    expect(await eth0View()).toEqual(before);
    expect(await routes()).toEqual(routesBefore);
    expect(JSON.parse((await h.exec(["ip", "-j", "link", "show", "master", "br-sa"])).stdout)).toEqual([]);
    expect(armedLeft()).toEqual([]);
    expect(await timersLeft()).toBe("");
    // Pulumi's state is unchanged, and the provider goes on working over SSH: the bridge deletes.
    await provider("Bridge").delete(br.id, br.outs);
    expect(await ipLink(h, "br-sa")).toBeUndefined();
  }, 90_000);

  it("setting eth0 down is rolled back the same way", async () => {
    const before = await eth0View();
    const err = await provider("VethPair")
      .create((await provider("VethPair").check({}, { ...eth0Adopt, up: false })).inputs)
      .then(() => undefined, (e: Error) => e);
    expect(err?.message).toMatch(/was rolled back: `ip link set dev eth0 down`/);
    expect(await eth0View()).toEqual(before);
    expect(armedLeft()).toEqual([]);
  }, 90_000);

  it("the provider killed with SIGKILL right after a risky write: the host restores itself within the window, with nobody connected", async () => {
    await must(["ip", "netns", "exec", h.netns, "ip", "link", "add", "br-kill", "type", "bridge"]);
    await must(["ip", "netns", "exec", h.netns, "ip", "link", "set", "br-kill", "up"]);
    const before = await eth0View();
    // A provider process of its own (the compiled runtime, as the provider host loads it).
    const script = `
      const { provider } = require(${JSON.stringify(path.resolve("dist/provider/runtime.js"))});
      const rt = provider("VethPair");
      rt.check({}, JSON.parse(process.argv[1])).then((c) => rt.create(c.inputs)).then(
        () => console.log("created"), (e) => console.log("failed: " + e.message));`;
    const child = spawn(process.execPath, ["-e", script, JSON.stringify({ ...eth0Adopt, master: "br-kill" })], {
      env: { ...process.env, NETDEV_TRACE_SAFE_APPLY: "1" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let trace = "";
    child.stderr!.on("data", (d) => (trace += d));
    child.stdout!.on("data", (d) => (trace += d));
    const exited = new Promise((r) => child.once("exit", r));
    // Armed, then the write goes out: kill the provider as soon as eth0 is in the bridge.
    const deadline = Date.now() + 30_000;
    while (!/armed/.test(trace) && Date.now() < deadline) await sleep(20);
    expect(trace, "the child reached the armed write").toMatch(/armed/);
    let enslaved = false;
    while (!enslaved && Date.now() < deadline) {
      enslaved = (await eth0View()).master === "br-kill";
      if (!enslaved) await sleep(10);
    }
    child.kill("SIGKILL");
    const killedAt = Date.now();
    await exited;
    expect(enslaved, "the risky write reached the kernel before the kill").toBe(true);
    expect(trace).not.toMatch(/created|failed/);
    // Nobody is connected: the host alone puts eth0 back within the window.
    let restored = false;
    while (!restored && Date.now() - killedAt < (WINDOW + 15) * 1000) {
      await sleep(250);
      restored = JSON.stringify(await eth0View()) === JSON.stringify(before);
    }
    const tookS = (Date.now() - killedAt) / 1000;
    console.log(`[safe-apply] provider SIGKILLed; the host restored eth0 ${tookS.toFixed(1)} s later (window ${WINDOW} s)`);
    expect(restored, "eth0 is exactly as before").toBe(true);
    expect(tookS).toBeLessThan(WINDOW + 2);
    expect(JSON.parse((await h.exec(["ip", "-j", "link", "show", "master", "br-kill"])).stdout)).toEqual([]);
    // The host keeps a record of the rollback (its log), and no timer process.
    const left = armedLeft();
    expect(left).toHaveLength(1);
    const dir = `/run/pulumi-netdev-safe-apply/${left[0]}`;
    await waitFor(() => fs.existsSync(`${dir}/rolled-back`));
    expect(fs.readFileSync(`${dir}/rolled-back`, "utf8").trim()).toBe("0");
    expect(fs.existsSync(`${dir}/armed`)).toBe(false);
    expect(await timersLeft()).toBe("");
    fs.rmSync(dir, { recursive: true, force: true });
    // And the host is reachable over SSH again (the system client, a new connection).
    expect((await sshExec(lab, h).exec(["true"])).code).toBe(0);
    await must(["ip", "netns", "exec", h.netns, "ip", "link", "del", "br-kill"]);
  }, 90_000);

  it("a correct risky change is confirmed over one new connection and leaves no timer, token or process", async () => {
    const before = await eth0View();
    // The pool redials after the rollback above: count from a live pooled connection.
    await transportFor(conn).run(["true"]);
    const opened = sshStats.connectionsOpened;
    const guarded = safeApplyStats.guardedWrites;
    const commands = sshStats.commandsRun;
    const t0 = Date.now();
    const { outs } = await up("VethPair", { ...eth0Adopt, mtu: 1400 });
    console.log(`[safe-apply] guarded adopt+mtu change: ${Date.now() - t0} ms, ${sshStats.commandsRun - commands} commands, ${sshStats.connectionsOpened - opened} new connection(s)`);
    expect(outs.mtu).toBe(1400);
    expect((await eth0View()).mtu).toBe(1400);
    expect(safeApplyStats.guardedWrites - guarded).toBe(1);
    // The confirmation's own connection; the pooled one is reused.
    expect(sshStats.connectionsOpened - opened).toBe(1);
    expect(armedLeft()).toEqual([]);
    expect(await timersLeft()).toBe("");
    // Nothing fires later either.
    await new Promise((r) => setTimeout(r, (WINDOW + 1) * 1000));
    expect((await eth0View()).mtu).toBe(1400);
    // Back to 1500 (also guarded, also confirmed).
    await (await change("VethPair", outs, { ...eth0Adopt, mtu: before.mtu })).apply();
    expect(await eth0View()).toEqual(before);
    // The overhead, measured against the same change with safe apply off (and the session's facts cached).
    const measure = async (safeApply: { enabled?: boolean; rollbackAfterSeconds: number }, mtu: number, from: Record<string, any>) => {
      const c0 = sshStats.commandsRun;
      const o0 = sshStats.connectionsOpened;
      const t1 = Date.now();
      const r = await (await change("VethPair", from, { ...eth0Adopt, connection: { ...conn, safeApply }, mtu })).apply();
      return { outs: r.outs, ms: Date.now() - t1, commands: sshStats.commandsRun - c0, connections: sshStats.connectionsOpened - o0 };
    };
    await transportFor(conn).run(["true"]);
    const off = await measure({ enabled: false, rollbackAfterSeconds: WINDOW }, 1450, outs);
    const on = await measure({ rollbackAfterSeconds: WINDOW }, 1500, off.outs);
    console.log(`[safe-apply] same mtu change on eth0: unguarded ${off.ms} ms, ${off.commands} commands, ${off.connections} connections; guarded ${on.ms} ms, ${on.commands} commands, ${on.connections} connections`);
    expect(on.connections - off.connections).toBe(1);
    expect(off.connections).toBe(0);
    expect(await eth0View()).toEqual(before);
  }, 90_000);

  it("a write that touches nothing on the session's path opens no connection, runs no extra command and arms nothing", async () => {
    // First write to this host in this process already discovered the session (above).
    const opened = sshStats.connectionsOpened;
    const guarded = safeApplyStats.guardedWrites;
    const discoveries = safeApplyStats.discoveries;
    const br = await up("Bridge", { connection: conn, name: "br-calm", stp: false, mtu: 1400 });
    const commands = sshStats.commandsRun;
    await (await change("Bridge", br.outs, { connection: conn, name: "br-calm", stp: false, mtu: 1300 })).apply();
    const updateCommands = sshStats.commandsRun - commands;
    await provider("Bridge").delete(br.id, br.outs);
    expect(sshStats.connectionsOpened - opened).toBe(0);
    expect(safeApplyStats.guardedWrites - guarded).toBe(0);
    expect(safeApplyStats.discoveries - discoveries).toBeLessThanOrEqual(1);
    // An update is a read and a write with its read-back: no command of safe apply's.
    expect(updateCommands).toBe(2);
    expect(armedLeft()).toEqual([]);
    // A new provider process discovers once per host, then never again.
    forgetSessions();
    const d0 = safeApplyStats.discoveries;
    const b2 = await up("Bridge", { connection: conn, name: "br-calm2", stp: false });
    await provider("Bridge").delete(b2.id, b2.outs);
    expect(safeApplyStats.discoveries - d0).toBe(1);
  }, 90_000);
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function waitFor(ok: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!ok() && Date.now() < end) await sleep(50);
}

async function rootVethOf(ifindex: number): Promise<string> {
  const links = JSON.parse((await run(["ip", "-j", "link", "show"])).stdout) as { ifindex: number; ifname: string }[];
  const l = links.find((x) => x.ifindex === ifindex);
  if (!l) throw new Error(`no root-namespace device with ifindex ${ifindex}`);
  return l.ifname;
}

import { execFile, spawn } from "node:child_process";
import * as path from "node:path";
function run(argv: string[]): Promise<{ stdout: string; stderr: string; code: number }> {
  return new Promise((resolve) =>
    execFile(argv[0], argv.slice(1), { encoding: "utf8" }, (err, stdout, stderr) => resolve({ stdout, stderr, code: err ? (typeof err.code === "number" ? err.code : -1) : 0 })),
  );
}
async function must(argv: string[]): Promise<void> {
  const r = await run(argv);
  if (r.code !== 0) throw new Error(`${argv.join(" ")}: ${r.stderr}`);
}
