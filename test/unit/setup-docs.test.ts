// What a new user needs before the first command: the README's prerequisites, the
// Node version it states, package.json `engines` and the lock file agree with what
// CI installs and the tests run on.
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { describe, expect, it } from "vitest";

const ROOT = join(__dirname, "../..");
const readme = readFileSync(join(ROOT, "README.md"), "utf8");
const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8"));
const lock = JSON.parse(readFileSync(join(ROOT, "package-lock.json"), "utf8"));
// npm's own semver, as @pulumi/pulumi depends on it (no extra dependency for one test).
const semver = createRequire(require.resolve("@pulumi/pulumi/package.json"))("semver");

/** The README paragraph that starts with the given words. */
function paragraph(start: string): string {
  const at = readme.indexOf(start);
  expect(at, `README has a paragraph starting "${start}"`).toBeGreaterThanOrEqual(0);
  return readme.slice(at, readme.indexOf("\n\n", at)).replace(/\s+/g, " ");
}

describe("setup as the README states it", () => {
  it("the `npm test` prerequisites name every Debian package .ci/run installs (sudo included)", () => {
    const ci = readFileSync(join(ROOT, ".ci/run"), "utf8");
    const pkgs = /need_pkgs=\(([^)]*)\)/.exec(ci)![1].trim().split(/\s+/);
    expect(pkgs).toContain("sudo");
    const text = paragraph("`npm test` needs");
    for (const p of pkgs) expect(text, p).toContain(`\`${p}\``);
  });

  it("the Node version the tests run on satisfies package.json engines, and the README names both", () => {
    expect(semver.satisfies(process.version, pkg.engines.node), `${process.version} vs ${pkg.engines.node}`).toBe(true);
    const min = semver.minVersion(pkg.engines.node).version as string;
    const [major, minor] = min.split(".");
    const text = paragraph("`npm test` needs");
    expect(text).toContain(`Node ${major}.${minor} or later`);
  });

  it("every locked package accepts the oldest Node that engines allows (no EBADENGINE on npm ci)", () => {
    const min = semver.minVersion(pkg.engines.node).version as string;
    const refused = Object.entries(lock.packages as Record<string, any>)
      .filter(([name, p]) => name !== "" && !p.optional && p.engines?.node && !semver.satisfies(min, p.engines.node))
      .map(([name, p]) => `${name}@${p.version} wants node ${p.engines.node}`);
    expect(refused).toEqual([]);
  });

  it("every example's tsconfig.json is Pulumi's template's (which TypeScript 5 and 6 accept; test/host/new-user.test.ts compiles them)", () => {
    const template = readFileSync(join(ROOT, "test/fixtures/pulumi-template/tsconfig.json"), "utf8");
    const examples = readdirSync(join(ROOT, "examples")).filter((x) => existsSync(join(ROOT, "examples", x, "Pulumi.yaml")));
    expect(examples.length).toBeGreaterThanOrEqual(5);
    for (const x of examples) expect(readFileSync(join(ROOT, "examples", x, "tsconfig.json"), "utf8"), x).toBe(template);
  });

  it("says the package is not on the registry, and how to install it instead", () => {
    const install = readme.slice(readme.indexOf("\n## Install\n"));
    expect(install).toMatch(/not published on the npm registry yet/);
    expect(install).toContain("npm pack");
  });
});
