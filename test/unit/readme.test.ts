// The README documents every input of every resource: adding a field without
// documenting it fails here.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { connectionSchema } from "../../provider/connection";
import { LinkEngine } from "../../provider/engine";
import { registry } from "../../provider/kinds";
import { commonLinkFields } from "../../provider/schema";

const readme = readFileSync(join(__dirname, "../../README.md"), "utf8");

/** The README text from the heading that names the class to the next heading of that level. */
function section(cls: string): string {
  const start = readme.search(new RegExp(`^### .*\\b${cls}\\b`, "m"));
  expect(start, `README has a "### ${cls}" section`).toBeGreaterThanOrEqual(0);
  const rest = readme.slice(start + 4);
  const end = rest.search(/^##+ /m);
  return end < 0 ? rest : rest.slice(0, end);
}

describe("README", () => {
  it("documents every input every device takes", () => {
    const common = section("Inputs every device takes");
    for (const field of Object.keys(commonLinkFields)) expect(common, field).toContain(`\`${field}\``);
  });

  for (const [cls, runtime] of Object.entries(registry)) {
    it(`documents every input of ${cls}`, () => {
      const text = section(cls);
      const fields = Object.keys(runtime instanceof LinkEngine ? runtime.kind.fields : runtime.inputFields);
      for (const field of fields) expect(text, `${cls}.${field}`).toContain(`\`${field}\``);
    });
  }

  it("documents every connection field", () => {
    const start = readme.indexOf("\n## Connection\n");
    expect(start, "README has a Connection section").toBeGreaterThanOrEqual(0);
    const text = readme.slice(start, readme.indexOf("\n## ", start + 5));
    const shape = (connectionSchema as unknown as { shape: Record<string, unknown> }).shape;
    for (const field of Object.keys(shape)) expect(text, field).toContain(`\`${field}\``);
  });
});
