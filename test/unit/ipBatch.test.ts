// The one ip -batch builder (provider/ipBatch.ts): every word of every batch line,
// writes and reads alike, is checked, and a hostile word never reaches a script.
import { describe, expect, it } from "vitest";
import { readLink } from "../../provider/iproute/link";
import { batchLine, batchScript, isBatchSafe, UnsafeBatchWordError } from "../../provider/ipBatch";
import { runSteps } from "../../provider/steps";
import { FakeTransport } from "../../provider/transport/fake";

/** Words iproute2's batch parser (makeargs/getcmdline) would split, join, cut or comment out. */
const HOSTILE = [
  "a b",
  "tab\there",
  "x\nlink del dev eth0",
  "cr\rx",
  '"quoted"',
  "it's",
  "back\\",
  "a#b",
  "#",
  "nul\0x",
  "bell\x07",
  "del\x7f",
  "nbsp\u00a0x",
];

class BatchingFake extends FakeTransport {
  readonly batchKey = "fake-host#root";
}

describe("batchLine / batchScript", () => {
  it("joins safe words and writes the empty word as \"\"", () => {
    expect(batchLine(["link", "set", "dev", "br0", "alias", ""])).toBe('link set dev br0 alias ""');
    expect(batchScript([["link", "set", "dev", "a", "up"], ["addr", "show", "dev", "a"]])).toBe("link set dev a up\naddr show dev a\n");
    expect(batchScript([])).toBe("");
  });

  it.each(HOSTILE)("refuses the word %j with an error that names it", (word) => {
    expect(isBatchSafe(word)).toBe(false);
    const err = (() => {
      try {
        batchLine(["link", "set", "dev", word, "up"]);
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(UnsafeBatchWordError);
    expect((err as Error).message).toContain(JSON.stringify(word));
    expect(() => batchScript([["link", "set", "dev", "ok", "up"], ["addr", "show", "dev", word]])).toThrow(UnsafeBatchWordError);
  });

  it("refuses an empty line (ip skips it, so the failing line numbers would shift)", () => {
    expect(() => batchLine([])).toThrow(/empty ip -batch line/);
  });

  it("accepts what device names, addresses and MACs look like", () => {
    for (const w of ["eth0.100", "br-lan", "veth_a@x", "fe80::1/64", "192.0.2.1/24", "00:11:22:33:44:55", "dev:weird", "ü"]) {
      expect(isBatchSafe(w), w).toBe(true);
    }
  });
});

describe("read-back lines go through the builder too", () => {
  it("a device name the batch parser would misread is read on its own, as an argv, not appended to the write batch", async () => {
    const hostile = "x\nlink del dev eth0";
    const t = new BatchingFake()
      .on(["ip", "-j", "-d", "-batch", "-"], { stdout: "" })
      .on(["ip", "-batch", "-"], { stdout: "" })
      .on(["ip", "-j", "-d", "addr", "show", "dev"], { code: 1, stderr: `Device "${hostile}" does not exist.\n` });
    const got = await runSteps(t, [["ip", "link", "set", "dev", "a", "up"], ["ip", "link", "set", "dev", "b", "up"]], [{ namespace: undefined, name: hostile }]);
    expect(got).toEqual([undefined]);
    for (const c of t.calls) expect(c.stdin ?? "", JSON.stringify(c)).not.toContain("link del");
    expect(t.calls.map((c) => c.argv)).toEqual([
      ["ip", "-batch", "-"],
      ["ip", "-j", "-d", "addr", "show", "dev", hostile],
    ]);
  });

  it("shared reads of safe names are one script built by the builder", async () => {
    const t = new BatchingFake().on(["ip", "-n", "ns1", "-j", "-d", "-force", "-batch", "-"], {
      stdout: '[{"ifindex":1,"ifname":"a","flags":[],"mtu":1500,"operstate":"UP"}]\n[{"ifindex":2,"ifname":"b","flags":[],"mtu":1500,"operstate":"UP"}]\n',
    });
    const [a, b] = await Promise.all([readLink(t, "ns1", "a"), readLink(t, "ns1", "b")]);
    expect([a?.ifindex, b?.ifindex]).toEqual([1, 2]);
    expect(t.calls).toEqual([{ argv: ["ip", "-n", "ns1", "-j", "-d", "-force", "-batch", "-"], stdin: "addr show dev a\naddr show dev b\n" }]);
  });
});
