// Repository layout: the root is the Pulumi project of the demo stack, and the
// published package holds no test or fake transport.
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, expect, it } from "vitest";
import { DEMO_EXAMPLE, exampleDir, projectName, REPO_ROOT } from "../support/examples";

/** Top-level `key: value` pairs of a YAML file, comments dropped (enough for a Pulumi.yaml). */
function topLevel(file: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of fs.readFileSync(file, "utf8").split("\n")) {
    const m = /^([A-Za-z][A-Za-z0-9]*):\s*(.*?)\s*$/.exec(line.replace(/\s+#.*$/, ""));
    if (m) out[m[1]] = m[2];
  }
  return out;
}

describe("root Pulumi.yaml", () => {
  const root = path.join(REPO_ROOT, "Pulumi.yaml");
  const demo = exampleDir(DEMO_EXAMPLE);

  it("is the demo's project: same name, nodejs, main and stack config in the demo's program directory", () => {
    const y = topLevel(root);
    expect(y.name).toBe(projectName(demo));
    expect(y.runtime).toBe(""); // a mapping follows
    expect(fs.readFileSync(root, "utf8")).toMatch(/^runtime:\n {2}name: nodejs\n/m);
    expect(path.resolve(REPO_ROOT, y.main)).toBe(demo);
    expect(path.resolve(REPO_ROOT, y.stackConfigDir)).toBe(demo);
    expect(fs.existsSync(path.join(demo, "Pulumi.dev.yaml"))).toBe(true);
  });

  it("main's program is the file npm run demo compiles and runs", () => {
    const pkg = JSON.parse(fs.readFileSync(path.join(exampleDir(DEMO_EXAMPLE), "package.json"), "utf8"));
    const program = path.join(exampleDir(DEMO_EXAMPLE), pkg.main);
    expect(fs.existsSync(program)).toBe(true);
    const tsconfig = JSON.parse(fs.readFileSync(path.join(exampleDir(DEMO_EXAMPLE), "tsconfig.json"), "utf8"));
    expect(tsconfig.files.map((f: string) => path.join(exampleDir(DEMO_EXAMPLE), f))).toContain(program);
    // scripts/demo.ts deploys exampleDir(DEMO_EXAMPLE) and reads the project name from its Pulumi.yaml.
    expect(fs.readFileSync(path.join(REPO_ROOT, "scripts/demo.ts"), "utf8")).toMatch(/const EXAMPLE = exampleDir\(DEMO_EXAMPLE\);/);
  });
});

describe("published package", () => {
  it("ships the provider and SDK but no fake or local (test-only) transport", () => {
    if (!fs.existsSync(path.join(REPO_ROOT, "dist/provider/runtime.js"))) throw new Error("dist/ is missing: run `npx tsc -p tsconfig.json` first");
    const npm = process.platform === "win32" ? "npm.cmd" : "npm";
    const out = execFileSync(npm, ["pack", "--dry-run", "--json", "--ignore-scripts"], { cwd: REPO_ROOT, encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] });
    const files: string[] = JSON.parse(out)[0].files.map((f: { path: string }) => f.path);
    // dist/ holds them (tests load them from there), the package must not.
    expect(fs.existsSync(path.join(REPO_ROOT, "dist/provider/transport/fake.js"))).toBe(true);
    expect(files.filter((f) => /transport\/(fake|local)\./.test(f))).toEqual([]);
    for (const f of ["dist/provider/runtime.js", "dist/provider/transport/ssh.js", "dist/provider/transport/sudo.js", "dist/sdk/index.js", "dist/sdk/index.d.ts", "package.json", "README.md"]) {
      expect(files).toContain(f);
    }
    expect(files.filter((f) => !/^dist\/(provider|sdk)\//.test(f)).sort()).toEqual(["LICENSE", "README.md", "package.json"].filter((f) => fs.existsSync(path.join(REPO_ROOT, f))).sort());
  });
});
