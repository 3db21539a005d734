import { randomBytes } from "node:crypto";
import type { Client, ClientChannel } from "ssh2";
import type { RunResult } from "./types";

/**
 * A long-lived `sh` on one SSH session channel that runs commands one at a time.
 *
 * Why: an SSH exec is a new session each time: sshd forks, the login shell
 * starts and reads its rc files (Debian's bash reads ~/.bashrc for SSH commands).
 * That costs tens of milliseconds per command on a plain host and half a second
 * on one whose rc file runs pyenv, conda or nvm — more than the `ip` command
 * itself by orders of magnitude. A worker shell pays it once; each command then
 * costs one fork of it and the command's own exec.
 *
 * Each command runs in a subshell of the worker, `(<command>)`, with its own
 * stdin, stdout, stderr and exit status, as an exec channel would run it under a
 * POSIX login shell. Framing: stdin is a here-document with a random delimiter (or
 * /dev/null); once the command has exited the worker prints "\n<marker> <status>\n"
 * on stdout and "\n<marker>\n" on stderr. Markers are unique per command and
 * start with a random part per shell, so no output can imitate them.
 */
export class RemoteShell {
  private readonly out = new Incoming();
  private readonly err = new Incoming();
  private pending?: { marker: string; resolve: (r: RunResult) => void; reject: (e: Error) => void };
  private closed = false;
  private readonly id = `ND${randomBytes(12).toString("hex")}x`;
  private seq = 0;

  private constructor(
    private readonly channel: ClientChannel,
    private readonly lost: () => Error,
  ) {
    channel.on("data", (d: Buffer) => {
      this.out.append(d);
      this.settle();
    });
    channel.stderr.on("data", (d: Buffer) => {
      this.err.append(d);
      this.settle();
    });
    channel.on("error", () => undefined); // the close that follows reports it
    channel.on("close", () => {
      this.closed = true;
      const p = this.pending;
      this.pending = undefined;
      p?.reject(this.lost());
    });
  }

  /**
   * Opens a session running `sh` and waits until it answers, dropping whatever
   * the login shell's rc files printed. Rejects with `notStarted` set when the
   * session never opened or ended before answering: no command ran, so the
   * caller may retry.
   */
  static open(client: Client, lost: () => Error): Promise<RemoteShell> {
    return new Promise((resolve, reject) => {
      const notStarted = (err: Error) => reject(Object.assign(err, { notStarted: true }));
      try {
        client.exec("exec sh", (err, channel) => {
          if (err) return notStarted(err);
          // Listeners go on right here, not after an await, so no event is missed.
          const shell = new RemoteShell(channel, lost);
          shell.send(undefined, undefined).then(() => resolve(shell), notStarted);
        });
      } catch (err) {
        notStarted(err as Error);
      }
    });
  }

  get usable(): boolean {
    return !this.closed && !this.pending;
  }

  /**
   * Gives up on this shell (a command on it timed out): it is never used again,
   * its channel is closed (sshd then hangs up its processes) and a pending command
   * is left to the caller, who already reported it.
   */
  discard(): void {
    this.closed = true;
    this.pending = undefined;
    try {
      this.channel.close();
    } catch {
      // the connection is already gone
    }
  }

  /** Runs one command string; rejects (without retrying) if the session ends before it finished. */
  run(command: string, stdin: string | undefined): Promise<RunResult> {
    if (!this.usable) return Promise.reject(this.lost());
    return this.send(command, stdin);
  }

  private send(command: string | undefined, stdin: string | undefined): Promise<RunResult> {
    const marker = `${this.id}${this.seq++}`;
    let script = "";
    if (command !== undefined) {
      // A subshell, not `sh -c`: the command cannot touch the worker's state (even
      // `exit` or `cd`), and it costs one fork and the command's own exec instead of
      // an exec of sh as well (sh execs the last command of a subshell in place).
      script += `(${command})`;
      // A here-document is text: it always ends with a newline.
      script += stdin === undefined ? " </dev/null\n" : ` <<'${marker}'\n${stdin}${stdin === "" || stdin.endsWith("\n") ? "" : "\n"}${marker}\n`;
    }
    script += `printf '\\n${marker} %d\\n' "$?"; printf '\\n${marker}\\n' >&2\n`;
    return new Promise((resolve, reject) => {
      this.pending = { marker, resolve, reject };
      this.channel.write(script);
    });
  }

  private settle(): void {
    const p = this.pending;
    if (!p) return;
    const status = this.out.find(`\n${p.marker} `);
    if (status < 0) return;
    const eol = this.out.bytes().indexOf("\n", status + p.marker.length + 2);
    const errEnd = this.err.find(`\n${p.marker}\n`);
    if (eol < 0 || errEnd < 0) return;
    const result: RunResult = {
      stdout: this.out.bytes().subarray(0, status).toString("utf8"),
      stderr: this.err.bytes().subarray(0, errEnd).toString("utf8"),
      code: Number(this.out.bytes().subarray(status + p.marker.length + 2, eol).toString("ascii")),
    };
    this.out.drop(eol + 1);
    this.err.drop(errEnd + p.marker.length + 2);
    this.pending = undefined;
    p.resolve(result);
  }
}

/**
 * One stream's bytes as they arrive, until a command's answer is complete. An answer
 * can be megabytes (`ip -j -d addr show` of 2,000 devices is 2.3 MB) arriving in
 * 32 KiB SSH packets: joining the whole buffer with each packet and searching it from
 * the start again copied and scanned O(size²) bytes (measured: 0.57 s for 2.3 MB,
 * 6.7 s for 10 MB). The buffer grows by doubling and a search resumes where the last
 * one stopped, so an answer costs time linear in its size.
 */
class Incoming {
  private buf = Buffer.alloc(0);
  private length = 0;
  /** No match of `needle` starts before this offset. */
  private searched = 0;
  private needle = "";

  append(d: Buffer): void {
    if (this.length + d.length > this.buf.length) {
      const grown = Buffer.allocUnsafe(Math.max(2 * this.buf.length, this.length + d.length, 4096));
      this.buf.copy(grown, 0, 0, this.length);
      this.buf = grown;
    }
    d.copy(this.buf, this.length);
    this.length += d.length;
  }

  bytes(): Buffer {
    return this.buf.subarray(0, this.length);
  }

  /** Offset of `needle` (ASCII), or -1; searches only bytes not searched for it before. */
  find(needle: string): number {
    if (needle !== this.needle) {
      this.needle = needle;
      this.searched = 0;
    }
    const at = this.bytes().indexOf(needle, this.searched);
    this.searched = at >= 0 ? at : Math.max(0, this.length - needle.length + 1);
    return at;
  }

  /** Forgets the first `n` bytes (a command's answer, once taken). */
  drop(n: number): void {
    const rest = this.length - n;
    if (this.buf.length > 1 << 20 && rest < 4096) {
      // Do not keep a buffer an outsized answer grew to.
      this.buf = Buffer.from(this.buf.subarray(n, this.length));
    } else this.buf.copy(this.buf, 0, n, this.length);
    this.length = rest;
    this.needle = "";
    this.searched = 0;
  }
}
