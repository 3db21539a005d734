import type { RunOptions, RunResult, Transport } from "./types";

type Responder = (argv: string[], opts: RunOptions) => RunResult | undefined;

/** Scripted transport for unit tests: records every argv and answers from responders. */
export class FakeTransport implements Transport {
  readonly calls: { argv: string[]; stdin?: string }[] = [];
  private responders: Responder[] = [];

  constructor(readonly label = "fake-host") {}

  /** Answer commands that start with `prefix` (first match wins, newest first). */
  on(prefix: string[] | ((argv: string[]) => boolean), result: Partial<RunResult> | ((argv: string[], opts: RunOptions) => Partial<RunResult>)): this {
    const matches = typeof prefix === "function" ? prefix : (argv: string[]) => prefix.every((p, i) => argv[i] === p);
    this.responders.unshift((argv, opts) => {
      if (!matches(argv)) return undefined;
      const r = typeof result === "function" ? result(argv, opts) : result;
      return { stdout: r.stdout ?? "", stderr: r.stderr ?? "", code: r.code ?? 0 };
    });
    return this;
  }

  async run(argv: string[], opts: RunOptions = {}): Promise<RunResult> {
    this.calls.push({ argv: [...argv], stdin: opts.stdin });
    for (const r of this.responders) {
      const out = r(argv, opts);
      if (out) return out;
    }
    return { stdout: "", stderr: "", code: 0 };
  }
}
