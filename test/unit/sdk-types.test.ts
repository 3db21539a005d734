// The SDK's public types are plain TypeScript generated from the zod fields
// (scripts/gen-sdk-types.ts): a user's project type-checks them without zod's
// declaration files, and they cannot drift from what `check` accepts.
import * as fs from "node:fs";
import * as path from "node:path";
import * as ts from "typescript";
import { describe, expect, it } from "vitest";
import { GENERATED_PATH, generateSdkTypes, REGENERATE_COMMAND } from "../../scripts/gen-sdk-types";

const ROOT = path.join(__dirname, "../..");

describe("SDK types", () => {
  it(`${GENERATED_PATH} is what the generator writes for the current fields (else run \`${REGENERATE_COMMAND}\`)`, () => {
    const committed = fs.readFileSync(path.join(ROOT, GENERATED_PATH), "utf8");
    const fresh = generateSdkTypes(ROOT);
    expect(committed === fresh, `${GENERATED_PATH} is stale: run \`${REGENERATE_COMMAND}\` and commit it`).toBe(true);
  });

  it("each generated Args type and the zod input type of its fields are mutually assignable", () => {
    const file = path.join(__dirname, "sdk-args.typecheck.ts");
    const program = ts.createProgram([file], {
      strict: true,
      noEmit: true,
      esModuleInterop: true,
      skipLibCheck: true,
      module: ts.ModuleKind.CommonJS,
      moduleResolution: ts.ModuleResolutionKind.Node10,
      target: ts.ScriptTarget.ES2022,
      types: ["node"],
    });
    const errors = ts.getPreEmitDiagnostics(program).map((d) => ts.flattenDiagnosticMessageText(d.messageText, "\n"));
    expect(errors, `run \`${REGENERATE_COMMAND}\``).toEqual([]);
  });

  it("the published declarations of the SDK import nothing but @pulumi/pulumi (no zod, no provider internals)", () => {
    const entry = path.join(ROOT, "dist/sdk/index.d.ts");
    expect(fs.existsSync(entry), "dist/ is built (npx tsc -p tsconfig.json)").toBe(true);
    const seen = new Set<string>();
    const foreign: string[] = [];
    const visit = (file: string) => {
      if (seen.has(file)) return;
      seen.add(file);
      const text = fs.readFileSync(file, "utf8");
      for (const m of text.matchAll(/(?:from|import)\s*\(?\s*"([^"]+)"/g)) {
        const spec = m[1];
        if (spec.startsWith(".")) {
          const target = path.resolve(path.dirname(file), spec) + ".d.ts";
          if (!target.startsWith(path.join(ROOT, "dist/sdk") + path.sep)) foreign.push(`${path.relative(ROOT, file)} → ${spec}`);
          else visit(target);
        } else if (spec !== "@pulumi/pulumi") foreign.push(`${path.relative(ROOT, file)} → ${spec}`);
      }
    };
    visit(entry);
    expect(foreign).toEqual([]);
    expect(seen.size).toBeGreaterThan(10);
  });
});
