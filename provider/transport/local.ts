import { execFile } from "node:child_process";
import type { RunOptions, RunResult, Transport } from "./types";

/** Runs argv on this machine with execFile: no shell is involved. */
export class LocalTransport implements Transport {
  readonly label = "localhost";

  run(argv: string[], opts: RunOptions = {}): Promise<RunResult> {
    return new Promise((resolve, reject) => {
      const child = execFile(argv[0], argv.slice(1), { maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
        if (err && typeof (err as NodeJS.ErrnoException).code === "string") return reject(err);
        resolve({ stdout, stderr, code: err ? ((err as { code?: number }).code ?? 1) : 0 });
      });
      // A program that exits without reading its input closes the pipe first (EPIPE):
      // its exit code and output already say what happened.
      child.stdin?.on("error", () => undefined);
      child.stdin?.end(opts.stdin ?? "");
    });
  }
}
