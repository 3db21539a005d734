// Commands of concurrent operations on one host, combined (provider/batching.ts):
// reads through readLink, writes through runSteps. Every caller must get exactly
// the result or error it would have got alone, and nothing may run twice.
import { afterEach, describe, expect, it } from "vitest";
import { setTransportFactory } from "../../provider/engine";
import { CommandError, ConnectionError } from "../../provider/errors";
import { type LinkJson, readLink } from "../../provider/iproute/link";
import { provider } from "../../provider/runtime";
import { runSteps } from "../../provider/steps";
import { FakeTransport } from "../../provider/transport/fake";
import { SshTransport } from "../../provider/transport/ssh";
import type { RunOptions, RunResult } from "../../provider/transport/types";

/** A fake host that takes part in batching. */
class BatchingFake extends FakeTransport {
  readonly batchKey = "fake-host#root";
}

const dev = (ifname: string, extra: Partial<LinkJson> = {}): LinkJson => ({ ifindex: 7, ifname, flags: ["UP"], mtu: 1500, operstate: "UP", ...extra });
const json = (...links: LinkJson[]) => JSON.stringify(links);

/**
 * Answers `ip [-n ns] [-j -d] [-force] -batch -` line by line like ip does:
 * `addr show dev X` prints X's JSON line (or fails when X is absent), a change
 * fails when `fails` says so. Without -force it stops at the first failure.
 */
function host(t: FakeTransport, devices: Set<string>, fails: (line: string) => string | undefined = () => undefined) {
  t.on((argv) => argv.includes("-batch"), (argv: string[], o: RunOptions): Partial<RunResult> => {
    const force = argv.includes("-force");
    let stdout = "";
    let stderr = "";
    let code = 0;
    const lines = (o.stdin ?? "").split("\n").filter(Boolean);
    for (const [i, line] of lines.entries()) {
      const show = /^addr show dev (\S+)$/.exec(line);
      const error = show ? (devices.has(show[1]) ? undefined : `Device "${show[1]}" does not exist.`) : fails(line);
      if (error === undefined) {
        if (show) stdout += json(dev(show[1])) + "\n";
        const add = /^link add name (\S+)/.exec(line);
        if (add) devices.add(add[1]);
        continue;
      }
      stderr += `${error}\nCommand failed -:${i + 1}\n`;
      code = 1;
      if (!force) break;
    }
    return { stdout, stderr, code };
  });
  const single = (argv: string[]) => !argv.includes("-batch") && argv.join(" ").includes("-j -d addr show dev ");
  t.on(single, (argv) => {
    const name = argv[argv.length - 1];
    return devices.has(name) ? { stdout: json(dev(name)) } : { code: 1, stderr: `Device "${name}" does not exist.\n` };
  });
  return t;
}

/** A host whose every command waits until the test opens its gate; `seen` is what each invocation sent. */
function gatedHost() {
  const t = new BatchingFake();
  const gates: (() => void)[] = [];
  const seen: string[] = [];
  t.run = async (argv: string[], o: RunOptions = {}) => {
    seen.push(o.stdin ?? argv.join(" "));
    await new Promise<void>((r) => gates.push(r));
    return { stdout: "", stderr: "", code: 0 };
  };
  return { t, gates, seen };
}

describe("reads of one namespace that wait together", () => {
  it("go as one ip -j -d -force -batch -, each caller getting its own device or undefined", async () => {
    const t = host(new BatchingFake(), new Set(["a", "b"]));
    const [a, gone, b] = await Promise.all([readLink(t, "ns1", "a"), readLink(t, "ns1", "zz"), readLink(t, "ns1", "b")]);
    expect(t.calls).toEqual([{ argv: ["ip", "-n", "ns1", "-j", "-d", "-force", "-batch", "-"], stdin: "addr show dev a\naddr show dev zz\naddr show dev b\n" }]);
    expect([a?.ifname, gone, b?.ifname]).toEqual(["a", undefined, "b"]);
  });

  it("a read failing for another reason fails only its caller, naming its own command", async () => {
    const t = new BatchingFake();
    t.on((argv) => argv.includes("-batch"), { code: 1, stdout: json(dev("a")) + "\n", stderr: "Error: permission denied\nCommand failed -:2\n" });
    const [a, bad] = await Promise.allSettled([readLink(t, undefined, "a"), readLink(t, undefined, "b")]);
    expect(a).toMatchObject({ status: "fulfilled", value: { ifname: "a" } });
    expect(bad.status).toBe("rejected");
    const err = (bad as PromiseRejectedResult).reason;
    expect(err).toBeInstanceOf(CommandError);
    expect(err.argv).toEqual(["ip", "-j", "-d", "addr", "show", "dev", "b"]);
    expect(err.stderr).toBe("Error: permission denied");
  });

  it("a missing namespace answers undefined to every caller; different namespaces never share", async () => {
    const t = host(new BatchingFake(), new Set(["a"]));
    t.on(["ip", "-n", "gone"], { code: 1, stderr: 'Cannot open network namespace "gone": No such file or directory\n' });
    expect(await Promise.all([readLink(t, "gone", "a"), readLink(t, "gone", "b"), readLink(t, "ns1", "a")])).toEqual([undefined, undefined, expect.objectContaining({ ifname: "a" })]);
    expect(t.calls.map((c) => c.argv.slice(0, 3))).toEqual([["ip", "-n", "gone"], ["ip", "-n", "ns1"]]);
  });

  it("a lone read runs as it always did; without a batchKey nothing is combined", async () => {
    const t = host(new BatchingFake(), new Set(["a"]));
    await readLink(t, undefined, "a");
    const plain = host(new FakeTransport(), new Set(["a"]));
    await Promise.all([readLink(plain, undefined, "a"), readLink(plain, undefined, "a")]);
    for (const c of [...t.calls, ...plain.calls]) expect(c.argv).toEqual(["ip", "-j", "-d", "addr", "show", "dev", "a"]);
    expect(plain.calls).toHaveLength(2);
  });
});

describe("writes of one namespace that wait together", () => {
  const op = (name: string) => [
    ["ip", "link", "add", "name", name, "type", "bridge"],
    ["ip", "link", "set", "dev", name, "up"],
  ];

  it("go as one ip -batch -, each operation's lines together and in order", async () => {
    const t = host(new BatchingFake(), new Set());
    await Promise.all([runSteps(t, op("x1")), runSteps(t, op("x2")), runSteps(t, op("x3"))]);
    expect(t.calls).toEqual([
      { argv: ["ip", "-batch", "-"], stdin: "link add name x1 type bridge\nlink set dev x1 up\nlink add name x2 type bridge\nlink set dev x2 up\nlink add name x3 type bridge\nlink set dev x3 up\n" },
    ]);
  });

  it("a failing line fails its own operation only; the operations after it run again, the ones before are done", async () => {
    const devices = new Set<string>();
    const t = host(new BatchingFake(), devices, (line) => (line === "link set dev x2 up" ? "RTNETLINK answers: Invalid argument" : undefined));
    const results = await Promise.allSettled([runSteps(t, op("x1")), runSteps(t, op("x2")), runSteps(t, op("x3"))]);
    expect(results.map((r) => r.status)).toEqual(["fulfilled", "rejected", "fulfilled"]);
    const err = (results[1] as PromiseRejectedResult).reason;
    expect(err).toBeInstanceOf(CommandError);
    expect(err.argv).toEqual(["ip", "link", "set", "dev", "x2", "up"]);
    expect(err.stderr).toBe("RTNETLINK answers: Invalid argument");
    // x3 never ran in the first invocation, so it went again (alone: 2 lines as a batch); x1 ran once.
    expect(t.calls.map((c) => c.stdin)).toEqual([
      "link add name x1 type bridge\nlink set dev x1 up\nlink add name x2 type bridge\nlink set dev x2 up\nlink add name x3 type bridge\nlink set dev x3 up\n",
      "link add name x3 type bridge\nlink set dev x3 up\n",
    ]);
    expect([...devices].sort()).toEqual(["x1", "x2", "x3"]);
  });

  it("a lone single line runs as its own argv, exactly as without batching", async () => {
    const t = host(new BatchingFake(), new Set());
    t.on(["ip", "link", "del"], { code: 1, stderr: 'Cannot find device "x9"\n' });
    const err = await runSteps(t, [["ip", "link", "del", "dev", "x9"]]).catch((e) => e);
    expect(t.calls).toEqual([{ argv: ["ip", "link", "del", "dev", "x9"], stdin: undefined }]);
    expect(err).toMatchObject({ argv: ["ip", "link", "del", "dev", "x9"], stderr: 'Cannot find device "x9"\n' });
  });

  it("at most two invocations per host and namespace run at once; what arrives meanwhile goes together", async () => {
    const { t, gates, seen } = gatedHost();
    const line = (n: number) => [["ip", "link", "set", "dev", `d${n}`, "up"]];
    const first = [runSteps(t, line(1)), runSteps(t, line(2))]; // one tick: together
    await Promise.resolve();
    const second = runSteps(t, line(3)); // a new invocation (one in flight)
    await new Promise((r) => setTimeout(r, 0));
    const waiting = [runSteps(t, line(4)), runSteps(t, line(5)), runSteps(t, line(6))]; // two in flight: wait
    await new Promise((r) => setTimeout(r, 0));
    expect(seen).toEqual(["link set dev d1 up\nlink set dev d2 up\n", "ip link set dev d3 up"]);
    gates.shift()!();
    await Promise.all(first);
    await new Promise((r) => setTimeout(r, 0));
    expect(seen[2]).toBe("link set dev d4 up\nlink set dev d5 up\nlink set dev d6 up\n");
    while (gates.length) gates.shift()!();
    await Promise.all([second, ...waiting]);
  });
});

describe("bridge lines, whose command starts by dumping every link", () => {
  it("one invocation at a time per host and namespace: what arrives meanwhile goes together", async () => {
    const { t, gates, seen } = gatedHost();
    const fdb = (n: number) => [["bridge", "fdb", "append", "00:00:00:00:00:00", "dst", `198.19.0.${n}`, "dev", "vx0"]];
    const first = runSteps(t, fdb(1));
    await new Promise((r) => setTimeout(r, 0));
    const waiting = [runSteps(t, fdb(2)), runSteps(t, fdb(3))]; // one in flight: wait
    await new Promise((r) => setTimeout(r, 0));
    expect(seen).toEqual(["bridge fdb append 00:00:00:00:00:00 dst 198.19.0.1 dev vx0"]);
    gates.shift()!();
    await first;
    await new Promise((r) => setTimeout(r, 0));
    expect(seen[1]).toBe("fdb append 00:00:00:00:00:00 dst 198.19.0.2 dev vx0\nfdb append 00:00:00:00:00:00 dst 198.19.0.3 dev vx0\n");
    while (gates.length) gates.shift()!();
    await Promise.all(waiting);
  });
});

describe("runSteps with read-back", () => {
  it("reads the devices of the last group's namespace in the same ip -j -d -batch -, others separately", async () => {
    const t = host(new BatchingFake(), new Set(["peer"]));
    const reads = await runSteps(
      t,
      [["ip", "link", "add", "name", "v0", "type", "veth", "peer", "name", "v0p"], ["ip", "link", "set", "dev", "v0", "up"]],
      [{ namespace: undefined, name: "v0" }, { namespace: "ns2", name: "peer" }],
    );
    expect(reads.map((l) => l?.ifname)).toEqual(["v0", "peer"]);
    expect(t.calls).toEqual([
      { argv: ["ip", "-j", "-d", "-batch", "-"], stdin: "link add name v0 type veth peer name v0p\nlink set dev v0 up\naddr show dev v0\n" },
      { argv: ["ip", "-n", "ns2", "-j", "-d", "addr", "show", "dev", "peer"], stdin: undefined },
    ]);
  });

  it("merged with other operations: each gets its own reads; a failing read-back only makes that one read again", async () => {
    const devices = new Set<string>();
    const t = host(new BatchingFake(), devices, (line) => (line === "addr show dev zz" ? "never" : undefined));
    const w = (n: string, read: string) => runSteps(t, [["ip", "link", "add", "name", n, "type", "bridge"]], [{ namespace: undefined, name: read }]);
    const [a, b, c] = await Promise.all([w("a", "a"), w("b", "zz"), w("c", "c")]);
    expect([a[0]?.ifname, b[0], c[0]?.ifname]).toEqual(["a", undefined, "c"]);
    const calls = t.calls.map((x) => [x.argv.join(" "), x.stdin]);
    expect(calls[0]).toEqual(["ip -j -d -batch -", "link add name a type bridge\naddr show dev a\nlink add name b type bridge\naddr show dev zz\nlink add name c type bridge\naddr show dev c\n"]);
    // b's write is done and its read is made on its own; c never ran, so it goes again.
    expect(calls.slice(1)).toEqual(
      expect.arrayContaining([
        ["ip -j -d addr show dev zz", undefined],
        ["ip -j -d -batch -", "link add name c type bridge\naddr show dev c\n"],
      ]),
    );
    expect(t.calls).toHaveLength(3);
    expect([...devices].sort()).toEqual(["a", "b", "c"]);
  });

  it("without a batchKey: the steps, then one read per device (what the engine always did)", async () => {
    const t = host(new FakeTransport(), new Set(["v0"])).on(["ip", "link", "set", "dev", "v0", "up"], {});
    await runSteps(t, [["ip", "link", "set", "dev", "v0", "up"]], [{ namespace: undefined, name: "v0" }]);
    expect(t.calls.map((c) => c.argv)).toEqual([["ip", "link", "set", "dev", "v0", "up"], ["ip", "-j", "-d", "addr", "show", "dev", "v0"]]);
  });
});

describe("a connection lost during a batch that carries changes and their read-back", () => {
  afterEach(() => setTransportFactory((c) => new SshTransport(c)));

  it("is not run again (it is not a read, even with -j), while a lost read is", async () => {
    const t = host(new BatchingFake(), new Set()).on(["ip", "link", "del", "dev", "br5"], {});
    let lost = 0;
    const run = t.run.bind(t);
    t.run = async (argv, o) => {
      if (argv.includes("-batch") && !argv.includes("-force")) {
        lost++;
        await run(argv, o); // the changes were made, the answer never came
        throw new ConnectionError("fake-host: the SSH connection closed before the command finished");
      }
      return run(argv, o);
    };
    setTransportFactory(() => t);
    const rt = provider("Bridge");
    const inputs = (await rt.check({}, { connection: { host: "192.0.2.10", privateKey: "k" }, name: "br5", mtu: 1400 })).inputs;
    await expect(rt.create(inputs)).rejects.toBeInstanceOf(ConnectionError);
    expect(lost).toBe(1);
    expect(t.calls.filter((c) => c.stdin?.includes("link add name br5")).length).toBe(1);
  });
});
