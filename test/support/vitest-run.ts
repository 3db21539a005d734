// Runs vitest itself on throw-away test files in a temporary directory, for tests
// about how the suite behaves (what the fake transport and the CI summary do with a
// failure) without committing a failing test.
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

export const repoRoot = resolve(__dirname, "../..");

export interface VitestRun {
  /** vitest's exit code. */
  code: number;
  output: string;
  /** What vitest's json reporter wrote (the file .ci/run summarizes). */
  json: any;
  /** Where the report was written. */
  reportPath: string;
}

/**
 * `files`: test file name → source (absolute imports of the repo work); `setupFiles`:
 * absolute paths. The directory is removed afterwards; the report's content is returned.
 */
export async function runVitestOn(files: Record<string, string>, setupFiles: string[] = []): Promise<VitestRun> {
  const dir = mkdtempSync(join(tmpdir(), "netdev-vitest-"));
  try {
    for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
    const reportPath = join(dir, "results.json");
    writeFileSync(
      join(dir, "vitest.config.mjs"),
      `export default { test: { root: ${JSON.stringify(dir)}, include: ["*.test.ts"], setupFiles: ${JSON.stringify(setupFiles)}, reporters: ["default", ["json", { outputFile: ${JSON.stringify(reportPath)} }]] } };\n`,
    );
    const { code, output } = await new Promise<{ code: number; output: string }>((done) =>
      execFile(process.execPath, [join(repoRoot, "node_modules/vitest/vitest.mjs"), "run", "--config", join(dir, "vitest.config.mjs")], { cwd: dir, env: { ...process.env, CI: "" }, timeout: 120_000 }, (err, stdout, stderr) =>
        done({ code: err ? (typeof err.code === "number" ? err.code : 1) : 0, output: stdout + stderr }),
      ),
    );
    const json = JSON.parse(readFileSync(reportPath, "utf8"));
    return { code, output, json, reportPath };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
