import type { RunOptions, RunResult, Transport } from "./types";

type Responder = (argv: string[], opts: RunOptions) => RunResult | undefined;

/**
 * Commands no responder answered, across every FakeTransport of this process. A
 * unit test may catch the error an unscripted command throws; the unit suite's
 * afterEach (test/support/strict-fake.ts) still fails the test that sent it.
 */
const unscripted: string[] = [];

/** The unscripted commands sent since the last call, forgetting them. */
export function takeUnscriptedCommands(): string[] {
  return unscripted.splice(0);
}

/**
 * Scripted transport for unit tests: records every argv and answers from responders.
 * A command no responder matches is an error (never a silent success): the test
 * must script exactly what it sends.
 */
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
    const what = `${this.label}: unscripted command sent to the fake transport: ${JSON.stringify(argv)}${opts.stdin !== undefined ? ` with stdin ${JSON.stringify(opts.stdin)}` : ""}`;
    unscripted.push(what);
    throw new Error(what);
  }
}
