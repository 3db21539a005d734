// A new user's first contact, as the README tells it: Pulumi's `typescript` template
// project (test/fixtures/pulumi-template: tsconfig.json, package.json, Pulumi.yaml
// and index.ts of pulumi/templates typescript/ at 65db26bfbdb2, unchanged), the
// package installed with the README's own install line from an `npm pack` of this
// checkout, the README's quick-start program (read from the README, so the README
// cannot drift), and one program using every resource class and every output the
// package declares — type-checked with `tsc --noEmit` under TypeScript 5.x and 6.x.
import { execFile } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { REPO_ROOT } from "../support/examples";

const TEMPLATE = path.join(REPO_ROOT, "test/fixtures/pulumi-template");
/** TypeScript versions a user may have: the 5.x the template asks for, and 6.x. */
const TYPESCRIPTS = { "typescript-5": "5.9.3", "typescript-6": "6.0.3" };

function run(cmd: string, args: string[], cwd: string, timeout = 480_000): Promise<{ code: number; out: string }> {
  return new Promise((resolve) =>
    execFile(cmd, args, { cwd, encoding: "utf8", timeout, maxBuffer: 64 << 20, env: { ...process.env, npm_config_update_notifier: "false" } }, (err, stdout, stderr) =>
      resolve({ code: err ? ((err as any).code ?? 1) : 0, out: `${stdout}${stderr}`.trim() }),
    ),
  );
}

const readme = fs.readFileSync(path.join(REPO_ROOT, "README.md"), "utf8");

/** The quick start: its shell block (from `pulumi new`) and the TypeScript program after it. */
function quickStart(): { shell: string; program: string } {
  const at = readme.indexOf("\n## Quick start");
  expect(at, "README has a Quick start section").toBeGreaterThanOrEqual(0);
  const section = readme.slice(at, readme.indexOf("\n## ", at + 5));
  const blocks = [...section.matchAll(/```(\w+)\n([\s\S]*?)```/g)].map((m) => ({ lang: m[1], text: m[2] }));
  const shell = blocks.find((b) => b.lang === "sh" && b.text.includes("pulumi new typescript"));
  const program = blocks.find((b) => b.lang === "ts");
  expect(shell, "a sh block with `pulumi new typescript`").toBeDefined();
  expect(program, "a ts block").toBeDefined();
  return { shell: shell!.text, program: program!.text };
}

/** The quick start's package install command, comment removed. */
function installLine(shell: string): string {
  const lines = shell.split("\n").filter((l) => /^npm install\b/.test(l));
  expect(lines.length, "one `npm install` line in the quick start").toBe(1);
  return lines[0].replace(/\s+#.*$/, "").trim();
}

/**
 * A program that constructs every resource class the package exports (with its Args
 * type) and reads every output its declarations list: from the INSTALLED package's
 * .d.ts, so a class or output added later is covered without editing this test.
 */
function everyResourceProgram(pkgDir: string): { text: string; classes: string[]; outputs: number } {
  const sdk = path.join(pkgDir, "dist/sdk");
  const index = fs.readFileSync(path.join(sdk, "index.d.ts"), "utf8");
  const members = (file: string): string[] =>
    [...fs.readFileSync(path.join(sdk, file), "utf8").matchAll(/^\s+readonly (\w+)(?:\?)?:/gm)].map((m) => m[1]);
  const linkMembers = members("link.d.ts");
  const lines = [
    'import * as pulumi from "@pulumi/pulumi";',
    'import * as netdev from "pulumi-netdev";',
    "",
    "// Literal inputs of the nested types, as a user writes them.",
    "const connection: netdev.ConnectionArgs = {",
    '  host: "192.0.2.10", port: 22, user: "root", privateKey: pulumi.secret("key"), hostKey: "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",',
    '  sudo: { password: pulumi.secret("pw") }, bastion: { host: "192.0.2.11", bastion: { host: pulumi.output("192.0.2.12") } },',
    "};",
    'const br = new netdev.Bridge("br", { connection, name: "br0", stp: false, addresses: ["192.0.2.1/24"] });',
    'new netdev.TapDevice("tap", { connection, name: "tap0", mode: "tap", master: br.name });',
    "const all: unknown[] = [];",
  ];
  const classes: string[] = [];
  let outputs = 0;
  for (const m of index.matchAll(/export \{ (\w+), type (\w+Args)[^}]*\} from "\.\/(\w+)"/g)) {
    const [, cls, args, file] = m;
    const declared = members(`${file}.d.ts`);
    const text = fs.readFileSync(path.join(sdk, `${file}.d.ts`), "utf8");
    const own = new RegExp(`class ${cls} extends LinkResource`).test(text) ? [...new Set([...linkMembers, ...declared])] : declared;
    classes.push(cls);
    outputs += own.length;
    const v = `the${cls}`; // not the lower-cased class name: `interface` is a reserved word
    lines.push(`declare const ${v}Args: netdev.${args};`);
    lines.push(`const ${v} = new netdev.${cls}("${v}", ${v}Args);`);
    lines.push(`all.push(${own.map((o) => `${v}.${o}`).join(", ")});`);
  }
  lines.push("export const outputs = all.length;", "");
  return { text: lines.join("\n"), classes, outputs };
}

describe("a new user's project (Pulumi template + npm pack + README quick start)", () => {
  let work = "";
  let project = "";
  const tsc: Record<string, string> = {};

  beforeAll(async () => {
    work = fs.mkdtempSync(path.join(os.tmpdir(), "netdev-new-user-"));
    // The tarball where the README's Install section puts it: ../pulumi-netdev/ beside the project.
    const clone = path.join(work, "pulumi-netdev");
    fs.mkdirSync(clone);
    const pack = await run("npm", ["pack", "--pack-destination", clone], REPO_ROOT);
    expect(pack.code, pack.out).toBe(0);

    // `pulumi new typescript -y`: the template's files with the project name filled in.
    project = path.join(work, "netlab");
    fs.mkdirSync(project);
    for (const f of ["tsconfig.json", "Pulumi.yaml", "index.ts"]) fs.copyFileSync(path.join(TEMPLATE, f), path.join(project, f));
    const pkg = JSON.parse(fs.readFileSync(path.join(TEMPLATE, "package.json"), "utf8").replace("${PROJECT}", "netlab"));
    // The TypeScript versions under test, side by side (npm aliases), besides the template's own.
    for (const [alias, version] of Object.entries(TYPESCRIPTS)) pkg.devDependencies[alias] = `npm:typescript@${version}`;
    fs.writeFileSync(path.join(project, "package.json"), JSON.stringify(pkg, null, 2));
    fs.writeFileSync(path.join(project, "Pulumi.yaml"), fs.readFileSync(path.join(TEMPLATE, "Pulumi.yaml"), "utf8").replace("${PROJECT}", "netlab").replace("${DESCRIPTION}", "new user test"));

    // The README's install line, run as written (it also installs the template's dependencies).
    const line = installLine(quickStart().shell);
    const install = await run("sh", ["-c", `${line} --no-audit --no-fund`], project);
    expect(install.code, `${line}\n${install.out}`).toBe(0);
    for (const alias of Object.keys(TYPESCRIPTS)) tsc[alias] = path.join(project, "node_modules", alias, "bin/tsc");
  }, 900_000);

  afterAll(() => {
    if (work) fs.rmSync(work, { recursive: true, force: true });
  });

  it("installed one copy of @pulumi/pulumi, the project's, and the tarball's version is what the README names", () => {
    const netdev = path.join(project, "node_modules/pulumi-netdev");
    expect(fs.lstatSync(netdev).isSymbolicLink()).toBe(false);
    expect(require.resolve("@pulumi/pulumi", { paths: [netdev] })).toBe(require.resolve("@pulumi/pulumi", { paths: [project] }));
    const version = JSON.parse(fs.readFileSync(path.join(netdev, "package.json"), "utf8")).version;
    expect(installLine(quickStart().shell)).toContain(`pulumi-netdev-${version}.tgz`);
  });

  it("the installed package's declarations mention no zod", () => {
    const dts = (dir: string): string[] =>
      fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? dts(path.join(dir, e.name)) : e.name.endsWith(".d.ts") ? [path.join(dir, e.name)] : []));
    const sdk = path.join(project, "node_modules/pulumi-netdev/dist/sdk");
    expect(dts(sdk).filter((f) => /from "zod"|import\("zod"\)/.test(fs.readFileSync(f, "utf8")))).toEqual([]);
  });

  for (const alias of Object.keys(TYPESCRIPTS)) {
    it(`the README quick start type-checks with the template's tsconfig.json under ${alias} (${TYPESCRIPTS[alias as keyof typeof TYPESCRIPTS]})`, async () => {
      fs.writeFileSync(path.join(project, "index.ts"), quickStart().program);
      const r = await run(process.execPath, [tsc[alias], "--noEmit", "-p", "tsconfig.json"], project);
      expect(r.code, r.out).toBe(0);
      const v = await run(process.execPath, [tsc[alias], "--version"], project);
      expect(v.out).toContain(`Version ${TYPESCRIPTS[alias as keyof typeof TYPESCRIPTS]}`);
    });

    // TypeScript 6 refuses esModuleInterop: false itself (TS5107); under 5.x it is the
    // configuration in which zod's declarations fail (63 errors before the SDK's
    // declarations stopped importing zod).
    if (alias === "typescript-5") {
      it(`the quick start type-checks under ${alias} also with esModuleInterop off (nodenext turns it on)`, async () => {
        fs.writeFileSync(path.join(project, "index.ts"), quickStart().program);
        const template = JSON.parse(fs.readFileSync(path.join(TEMPLATE, "tsconfig.json"), "utf8"));
        template.compilerOptions.esModuleInterop = false;
        fs.writeFileSync(path.join(project, "tsconfig.no-interop.json"), JSON.stringify(template));
        const r = await run(process.execPath, [tsc[alias], "--noEmit", "-p", "tsconfig.no-interop.json"], project);
        expect(r.code, r.out).toBe(0);
      });
    }

    it(`every example program type-checks with the examples' tsconfig.json (the template's) under ${alias}`, async () => {
      const examples = fs.readdirSync(path.join(REPO_ROOT, "examples")).filter((x) => fs.existsSync(path.join(REPO_ROOT, "examples", x, "Pulumi.yaml")));
      expect(examples.length).toBeGreaterThanOrEqual(5);
      const files: string[] = [];
      for (const x of examples) {
        // test/unit/setup-docs.test.ts checks each example's tsconfig.json is the template's, so one program checks them all.
        fs.copyFileSync(path.join(REPO_ROOT, "examples", x, "index.ts"), path.join(project, `example-${x}.ts`));
        files.push(`example-${x}.ts`);
      }
      fs.writeFileSync(path.join(project, "tsconfig.examples.json"), JSON.stringify({ extends: "./tsconfig.json", files }));
      const r = await run(process.execPath, [tsc[alias], "--noEmit", "-p", "tsconfig.examples.json"], project);
      expect(r.code, r.out).toBe(0);
    });

    it(`a program using every resource class and output type-checks under ${alias}`, async () => {
      const program = everyResourceProgram(path.join(project, "node_modules/pulumi-netdev"));
      expect(program.classes).toEqual(expect.arrayContaining(["Bridge", "TapDevice", "VethPair", "MacvlanLink", "MacvtapLink", "IpvlanLink", "Vlan", "Vxlan", "Bond", "Namespace", "VxlanFabric"]));
      expect(program.outputs).toBeGreaterThan(50);
      fs.writeFileSync(path.join(project, "every-resource.ts"), program.text);
      fs.writeFileSync(path.join(project, "tsconfig.every.json"), JSON.stringify({ extends: "./tsconfig.json", files: ["every-resource.ts"] }));
      const r = await run(process.execPath, [tsc[alias], "--noEmit", "-p", "tsconfig.every.json"], project);
      expect(r.code, `${r.out}\n--- every-resource.ts ---\n${program.text}`).toBe(0);
    });
  }
});
