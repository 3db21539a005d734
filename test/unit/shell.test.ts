// The worker shell's framing (provider/transport/shell.ts) over a scripted SSH
// channel: what it writes to the remote `sh`, and how it cuts the streams back
// into one result per command however the bytes arrive.
import { EventEmitter } from "node:events";
import type { Client } from "ssh2";
import { describe, expect, it } from "vitest";
import { RemoteShell } from "../../provider/transport/shell";

/** A session channel whose far end is played by `answer(script, channel)`. */
class FakeChannel extends EventEmitter {
  readonly stderr = new EventEmitter();
  readonly scripts: string[] = [];
  constructor(private readonly answer: (script: string, ch: FakeChannel) => void) {
    super();
  }
  write(script: string): boolean {
    this.scripts.push(script);
    queueMicrotask(() => this.answer(script, this));
    return true;
  }
  out(s: string | Buffer) {
    this.emit("data", Buffer.isBuffer(s) ? s : Buffer.from(s));
  }
  err(s: string | Buffer) {
    this.stderr.emit("data", Buffer.isBuffer(s) ? s : Buffer.from(s));
  }
}

function client(ch: FakeChannel, opened: string[] = []): Client {
  return {
    exec(command: string, cb: (err: Error | undefined, channel: FakeChannel) => void) {
      opened.push(command);
      cb(undefined, ch);
    },
  } as unknown as Client;
}

const markerOf = (script: string) => /printf '\\n(\S+) %d\\n'/.exec(script)![1];
const lost = () => new Error("lost");

/** A far end that answers every script as a POSIX sh would, with output given per command. */
function shellLike(results: Array<{ stdout?: string; stderr?: string; code?: number }>, chunk = 0) {
  let n = -1; // the first script is the handshake
  return (script: string, ch: FakeChannel) => {
    const m = markerOf(script);
    const r = n < 0 ? { stdout: "rc file says hi\n", stderr: "rc warning" } : results[n];
    n++;
    const out = Buffer.from(`${r.stdout ?? ""}\n${m} ${r.code ?? 0}\n`);
    const err = Buffer.from(`${r.stderr ?? ""}\n${m}\n`);
    // Interleave stderr and stdout, cut into `chunk`-byte pieces (0: whole).
    const size = chunk || Math.max(out.length, err.length);
    for (let i = 0; i < Math.max(out.length, err.length); i += size) {
      if (i < err.length) ch.err(err.subarray(i, i + size));
      if (i < out.length) ch.out(out.subarray(i, i + size));
    }
  };
}

describe("RemoteShell", () => {
  it("starts `exec sh`, waits for its answer, and drops what rc files printed", async () => {
    const opened: string[] = [];
    const ch = new FakeChannel(shellLike([{ stdout: "first\n" }]));
    const shell = await RemoteShell.open(client(ch, opened), lost);
    expect(opened).toEqual(["exec sh"]);
    expect(await shell.run("echo first", undefined)).toEqual({ stdout: "first\n", stderr: "", code: 0 });
  });

  it("runs each command in a subshell, (<command>), with /dev/null or a here-document as stdin", async () => {
    const ch = new FakeChannel(shellLike([{}, {}, {}]));
    const shell = await RemoteShell.open(client(ch), lost);
    await shell.run("ip link show lo", undefined);
    await shell.run("ip -batch -", "link set dev a up\nlink set dev b up\n");
    await shell.run("cat", "no final newline");
    const [, plain, batch, text] = ch.scripts;
    expect(plain.split("\n")[0]).toBe("(ip link show lo) </dev/null");
    const m = markerOf(batch);
    expect(batch.startsWith(`(ip -batch -) <<'${m}'\nlink set dev a up\nlink set dev b up\n${m}\n`)).toBe(true);
    const m2 = markerOf(text);
    expect(text.startsWith(`(cat) <<'${m2}'\nno final newline\n${m2}\n`)).toBe(true);
    // Every command gets its own marker.
    expect(new Set(ch.scripts.map(markerOf)).size).toBe(ch.scripts.length);
  });

  it("returns stdout, stderr and status exactly, however the bytes are cut (even inside a UTF-8 character)", async () => {
    const results = [
      { stdout: "no newline at the end", stderr: "warning: x\n", code: 3 },
      { stdout: "naïve → ✓\n".repeat(50), stderr: "", code: 0 },
      { stdout: "", stderr: "", code: 255 },
      { stdout: "\n\n", stderr: "\n", code: 1 },
    ];
    for (const chunk of [1, 2, 7, 0]) {
      const ch = new FakeChannel(shellLike(results, chunk));
      const shell = await RemoteShell.open(client(ch), lost);
      for (const r of results) expect(await shell.run("x", undefined), `chunk ${chunk}`).toEqual(r);
    }
  });

  it("a session that ends during a command rejects it (never retried) and is no longer usable", async () => {
    let calls = 0;
    const ch = new FakeChannel((script, c) => {
      if (calls++ === 0) return shellLike([])(script, c);
      c.out("partial output");
      c.emit("close");
    });
    const shell = await RemoteShell.open(client(ch), lost);
    expect(shell.usable).toBe(true);
    await expect(shell.run("sleep 5", undefined)).rejects.toThrow("lost");
    expect(shell.usable).toBe(false);
    await expect(shell.run("true", undefined)).rejects.toThrow("lost");
  });

  it("a session that ends before answering, or cannot open, fails open() with notStarted", async () => {
    const closing = new FakeChannel((_s, c) => c.emit("close"));
    const e1 = await RemoteShell.open(client(closing), lost).catch((e) => e);
    expect(e1).toMatchObject({ message: "lost", notStarted: true });
    const refusing = { exec: (_c: string, cb: (err: Error) => void) => cb(new Error("open failed")) } as unknown as Client;
    const e2 = await RemoteShell.open(refusing, lost).catch((e) => e);
    expect(e2).toMatchObject({ message: "open failed", notStarted: true });
  });
});
