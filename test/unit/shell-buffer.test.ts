// The worker shell (provider/transport/shell.ts) collects a command's answer as SSH
// packets arrive. Answers can be megabytes (a namespace dump of 2,000 devices is
// 2.3 MB in 32 KiB packets): each packet must cost time for its own bytes only, not
// a copy and a search of everything received so far (that was O(size²): 0.57 s for
// 2.3 MB, 6.7 s for 10 MB). And however the packets cut the answer, even through the
// end marker, the result is exact.
import { EventEmitter } from "node:events";
import type { Client } from "ssh2";
import { afterEach, describe, expect, it, vi } from "vitest";
import { RemoteShell } from "../../provider/transport/shell";

class FakeChannel extends EventEmitter {
  readonly stderr = new EventEmitter();
  constructor(private readonly answer: (script: string, ch: FakeChannel) => void) {
    super();
  }
  write(script: string): boolean {
    queueMicrotask(() => this.answer(script, this));
    return true;
  }
}

const client = (ch: FakeChannel) => ({ exec: (_c: string, cb: (e: undefined, ch: FakeChannel) => void) => cb(undefined, ch) }) as unknown as Client;
const markerOf = (script: string) => /printf '\\n(\S+) %d\\n'/.exec(script)![1];

/** Answers every command with `stdout`/`stderr`, cut into `chunk`-byte packets. */
function answering(stdout: Buffer, stderr: string, chunk: number) {
  let first = true;
  return (script: string, ch: FakeChannel) => {
    const m = markerOf(script);
    const out = first ? Buffer.from(`\n${m} 0\n`) : Buffer.concat([stdout, Buffer.from(`\n${m} 3\n`)]);
    const err = Buffer.from(`${first ? "" : stderr}\n${m}\n`);
    first = false;
    for (let i = 0; i < Math.max(out.length, err.length); i += chunk) {
      if (i < out.length) ch.emit("data", out.subarray(i, i + chunk));
      if (i < err.length) ch.stderr.emit("data", err.subarray(i, i + chunk));
    }
  };
}

describe("RemoteShell answers", () => {
  afterEach(() => vi.restoreAllMocks());

  it("a 4 MB answer in 1 KiB packets comes back exact, without joining the buffer per packet", async () => {
    const big = Buffer.from(JSON.stringify(Array.from({ length: 40_000 }, (_, i) => ({ ifname: `dev${i}`, mtu: 1500, flags: ["UP"] }))).padEnd(4 * 2 ** 20, " "));
    const shell = await RemoteShell.open(client(new FakeChannel(answering(big, "warning: dump was interrupted", 1024))), () => new Error("lost"));
    const concat = vi.spyOn(Buffer, "concat");
    const r = await shell.run("ip -j -d addr show", undefined);
    expect(r.code).toBe(3);
    expect(r.stderr).toBe("warning: dump was interrupted");
    expect(r.stdout.length).toBe(big.length);
    expect(r.stdout === big.toString("utf8")).toBe(true);
    // The old buffering joined everything received so far with every packet: 4,096 joins here.
    expect(concat.mock.calls.length - 1).toBeLessThan(16);
  });

  it("packets of every size, cutting through the markers anywhere, give the same result", async () => {
    const text = Buffer.from('[{"ifname":"a"}]\n[{"ifname":"ü"}]');
    for (let chunk = 1; chunk <= 48; chunk++) {
      const shell = await RemoteShell.open(client(new FakeChannel(answering(text, "Command failed -:2", chunk))), () => new Error("lost"));
      expect(await shell.run("ip -j -batch -", "x\n")).toEqual({ stdout: text.toString("utf8"), stderr: "Command failed -:2", code: 3 });
      expect(await shell.run("again", undefined)).toEqual({ stdout: text.toString("utf8"), stderr: "Command failed -:2", code: 3 });
    }
  });
});
