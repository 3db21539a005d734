// Runs after every other suite (vitest groupOrder, see vitest.config.mts): the
// tests and the demo build examples in temporary copies, so examples/ must be as
// cloned, and a user's `npm install` + `tsc --noEmit` in an example must work.
import { execFile } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, expect, it } from "vitest";
import { REPO_ROOT } from "../support/examples";

const EXAMPLE = path.join(REPO_ROOT, "examples/kvm-bridge-tap");

function run(cmd: string, args: string[], cwd: string, timeout = 480_000): Promise<{ code: number; out: string }> {
  return new Promise((resolve) =>
    execFile(cmd, args, { cwd, encoding: "utf8", timeout, maxBuffer: 64 << 20 }, (err, stdout, stderr) =>
      resolve({ code: err ? ((err as any).code ?? 1) : 0, out: `${stdout}${stderr}`.trim() }),
    ),
  );
}

/** Every symlink under a directory (test helpers used to leave them in examples/<name>/node_modules). */
function symlinksUnder(dir: string): string[] {
  const found: string[] = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isSymbolicLink()) found.push(path.relative(REPO_ROOT, p));
    else if (e.isDirectory()) found.push(...symlinksUnder(p));
  }
  return found;
}

describe("examples/ after the whole suite", () => {
  it("holds nothing the tests or the demo made (no node_modules links, no build output, no changes)", async () => {
    expect(symlinksUnder(path.join(REPO_ROOT, "examples"))).toEqual([]);
    const status = await run("git", ["status", "--porcelain", "--ignored", "--", "examples/"], REPO_ROOT);
    expect(status.code, status.out).toBe(0);
    // Outside CI a developer may have installed an example by hand; in CI (a clean clone) nothing may be there.
    const lines = status.out.split("\n").filter(Boolean);
    const leftovers = process.env.CI ? lines : lines.filter((l) => !l.startsWith("!! ") || /\/bin\/$/.test(l));
    expect(leftovers).toEqual([]);
  });

  it("npm install and tsc --noEmit in an example work, with a single @pulumi/pulumi", async () => {
    const had = new Set(fs.readdirSync(EXAMPLE));
    try {
      const install = await run("npm", ["install", "--no-audit", "--no-fund"], EXAMPLE);
      expect(install.code, install.out).toBe(0);
      const tsc = await run(process.execPath, [path.join(EXAMPLE, "node_modules/typescript/bin/tsc"), "--noEmit", "-p", "tsconfig.json"], EXAMPLE, 240_000);
      expect(tsc.code, tsc.out).toBe(0);
      // install-links: pulumi-netdev is a copy whose @pulumi/pulumi is the project's own.
      const netdev = path.join(EXAMPLE, "node_modules/pulumi-netdev");
      expect(fs.lstatSync(netdev).isSymbolicLink()).toBe(false);
      const fromNetdev = require.resolve("@pulumi/pulumi", { paths: [fs.realpathSync(netdev)] });
      expect(fromNetdev).toBe(require.resolve("@pulumi/pulumi", { paths: [EXAMPLE] }));
    } finally {
      for (const entry of ["node_modules", "package-lock.json", "bin"]) if (!had.has(entry)) fs.rmSync(path.join(EXAMPLE, entry), { recursive: true, force: true });
    }
  });
});
