// runSteps: consecutive `ip` lines of one namespace go to one `ip -batch -`.
import { describe, expect, it } from "vitest";
import { CommandError } from "../../provider/errors";
import { runSteps } from "../../provider/steps";
import { FakeTransport } from "../../provider/transport/fake";

/** A host on which every `ip`, `bridge` and `sysctl` command succeeds (the tests check exactly which ran). */
const succeeding = () => new FakeTransport().on(["ip"], {}).on(["bridge"], {}).on(["sysctl"], {});
const calls = (t: FakeTransport) => t.calls.map((c) => (c.stdin === undefined ? { argv: c.argv } : c));

describe("runSteps batching", () => {
  it("consecutive lines of the host's namespace become one ip -batch with the lines on stdin", async () => {
    const t = succeeding();
    await runSteps(t, [
      ["ip", "link", "set", "dev", "a", "mtu", "1400"],
      ["ip", "addr", "add", "192.0.2.1/24", "dev", "a"],
      ["ip", "link", "set", "dev", "a", "up"],
    ]);
    expect(calls(t)).toEqual([{ argv: ["ip", "-batch", "-"], stdin: "link set dev a mtu 1400\naddr add 192.0.2.1/24 dev a\nlink set dev a up\n" }]);
  });

  it("one line runs directly", async () => {
    const t = succeeding();
    await runSteps(t, [["ip", "-n", "ns1", "link", "set", "dev", "a", "up"]]);
    expect(calls(t)).toEqual([{ argv: ["ip", "-n", "ns1", "link", "set", "dev", "a", "up"], stdin: undefined }]);
    const empty = succeeding();
    await runSteps(empty, []);
    expect(empty.calls).toEqual([]);
  });

  it("namespaces split batches; order is kept", async () => {
    const t = succeeding();
    await runSteps(t, [
      ["ip", "-n", "a", "link", "set", "dev", "x", "mtu", "1400"],
      ["ip", "-n", "a", "link", "set", "dev", "x", "up"],
      ["ip", "-n", "b", "link", "set", "dev", "y", "up"],
      ["ip", "link", "set", "dev", "z", "mtu", "9000"],
      ["ip", "link", "set", "dev", "z", "up"],
      ["ip", "-n", "a", "addr", "add", "10.0.0.1/8", "dev", "x"],
      ["ip", "-n", "a", "addr", "add", "10.0.0.2/8", "dev", "x"],
    ]);
    expect(calls(t)).toEqual([
      { argv: ["ip", "-n", "a", "-batch", "-"], stdin: "link set dev x mtu 1400\nlink set dev x up\n" },
      { argv: ["ip", "-n", "b", "link", "set", "dev", "y", "up"], stdin: undefined },
      { argv: ["ip", "-batch", "-"], stdin: "link set dev z mtu 9000\nlink set dev z up\n" },
      { argv: ["ip", "-n", "a", "-batch", "-"], stdin: "addr add 10.0.0.1/8 dev x\naddr add 10.0.0.2/8 dev x\n" },
    ]);
  });

  it("bridge lines batch with bridge, not with ip; other programs run alone", async () => {
    const t = succeeding();
    await runSteps(t, [
      ["ip", "link", "set", "dev", "vx0", "up"],
      ["bridge", "fdb", "append", "00:00:00:00:00:00", "dev", "vx0", "dst", "192.0.2.2"],
      ["bridge", "fdb", "append", "00:00:00:00:00:00", "dev", "vx0", "dst", "192.0.2.3"],
      ["sysctl", "-w", "net.ipv6.conf.vx0.disable_ipv6=1"],
      ["sysctl", "-w", "net.ipv6.conf.vx1.disable_ipv6=1"],
    ]);
    expect(calls(t)).toEqual([
      { argv: ["ip", "link", "set", "dev", "vx0", "up"], stdin: undefined },
      { argv: ["bridge", "-batch", "-"], stdin: "fdb append 00:00:00:00:00:00 dev vx0 dst 192.0.2.2\nfdb append 00:00:00:00:00:00 dev vx0 dst 192.0.2.3\n" },
      { argv: ["sysctl", "-w", "net.ipv6.conf.vx0.disable_ipv6=1"], stdin: undefined },
      { argv: ["sysctl", "-w", "net.ipv6.conf.vx1.disable_ipv6=1"], stdin: undefined },
    ]);
  });

  it("a line with a token ip -batch would re-split or misread runs alone, as an argv", async () => {
    for (const token of ["my alias", "tab\there", 'say "hi"', "it's", "back\\slash", "#comment", "new\nline"]) {
      const t = succeeding();
      const odd = ["ip", "link", "set", "dev", "a", "alias", token];
      await runSteps(t, [["ip", "link", "set", "dev", "a", "mtu", "1400"], odd, ["ip", "link", "set", "dev", "a", "up"], ["ip", "link", "set", "dev", "b", "up"]]);
      expect(calls(t), JSON.stringify(token)).toEqual([
        { argv: ["ip", "link", "set", "dev", "a", "mtu", "1400"], stdin: undefined },
        { argv: odd, stdin: undefined },
        { argv: ["ip", "-batch", "-"], stdin: "link set dev a up\nlink set dev b up\n" },
      ]);
    }
  });

  it('an empty argument (alias "", which removes an alias) is batched as ""', async () => {
    const t = succeeding();
    await runSteps(t, [["ip", "link", "set", "dev", "a", "up"], ["ip", "link", "set", "dev", "a", "alias", ""]]);
    expect(calls(t)).toEqual([{ argv: ["ip", "-batch", "-"], stdin: 'link set dev a up\nlink set dev a alias ""\n' }]);
  });
});

describe("runSteps failures", () => {
  it("a batch failure names the failing line's full argv and stops", async () => {
    const t = new FakeTransport("hostA").on(["ip", "-n", "ns1", "-batch"], { code: 1, stderr: 'Cannot find device "nope"\nCommand failed -:2\n' });
    const steps = [
      ["ip", "-n", "ns1", "link", "set", "dev", "a", "mtu", "1400"],
      ["ip", "-n", "ns1", "link", "set", "dev", "nope", "up"],
      ["ip", "-n", "ns1", "link", "set", "dev", "a", "up"],
      ["ip", "link", "set", "dev", "later", "up"],
    ];
    const err = await runSteps(t, steps).catch((e) => e);
    expect(err).toBeInstanceOf(CommandError);
    expect(err.argv).toEqual(["ip", "-n", "ns1", "link", "set", "dev", "nope", "up"]);
    expect(err.code).toBe(1);
    expect(err.stderr).toBe('Cannot find device "nope"');
    expect(err.message).toBe('hostA: `ip -n ns1 link set dev nope up` failed (exit 1): Cannot find device "nope"');
    expect(t.calls).toHaveLength(1);
  });

  it("a batch failure without a line number names the whole batch", async () => {
    const t = new FakeTransport().on(["ip", "-batch"], { code: 255, stderr: "ip: out of memory\n" });
    const err = await runSteps(t, [["ip", "link", "set", "dev", "a", "up"], ["ip", "link", "set", "dev", "b", "up"]]).catch((e) => e);
    expect(err).toBeInstanceOf(CommandError);
    expect(err.argv).toEqual(["ip", "-batch", "-", "<<link set dev a up; link set dev b up"]);
    expect(err.stderr).toBe("ip: out of memory\n");
  });

  it("a single line's failure is a CommandError with its argv, and later lines do not run", async () => {
    const t = new FakeTransport().on(["ip", "-n", "b"], { code: 2, stderr: "RTNETLINK answers: File exists\n" });
    const err = await runSteps(t, [["ip", "-n", "b", "link", "add", "name", "x", "type", "bridge"], ["ip", "link", "set", "dev", "y", "up"]]).catch((e) => e);
    expect(err).toBeInstanceOf(CommandError);
    expect(err).toMatchObject({ argv: ["ip", "-n", "b", "link", "add", "name", "x", "type", "bridge"], code: 2, host: "fake-host" });
    expect(t.calls).toHaveLength(1);
  });
});
