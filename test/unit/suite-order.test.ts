// The README says in which order `npm test` runs the suites; vitest decides it by
// the projects' sequence.groupOrder. The two must agree.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";

const ROOT = join(__dirname, "../..");

describe("suite order", () => {
  it("the README's order of test folders is vitest's groupOrder, one group per folder", async () => {
    const config = (await import("../../vitest.config.mts")).default as any;
    const projects: { include: string[]; groupOrder: number }[] = config.test.projects.map((p: any) => ({ include: p.test.include, groupOrder: p.test.sequence.groupOrder }));
    const folderOf = (glob: string) => /^test\/([^/]+)\//.exec(glob)![1];
    const groupOf = new Map<string, number>();
    for (const p of projects) for (const g of p.include) groupOf.set(folderOf(g), p.groupOrder);

    const readme = readFileSync(join(ROOT, "README.md"), "utf8");
    const tests = readme.slice(readme.indexOf("\n## Tests\n"));
    expect(tests).toMatch(/runs these groups one after the other, in this\s+order/);
    const listed = [...tests.matchAll(/^- `test\/([a-z]+)`/gm)].map((m) => m[1]);
    expect(listed.sort()).toEqual([...groupOf.keys()].sort()); // every folder listed, nothing else
    const readmeOrder = [...tests.matchAll(/^- `test\/([a-z]+)`/gm)].map((m) => m[1]);
    const orders = readmeOrder.map((f) => groupOf.get(f)!);
    // Strictly increasing: each listed folder runs after the previous one has finished.
    for (let i = 1; i < orders.length; i++) expect(orders[i], `${readmeOrder[i]} runs after ${readmeOrder[i - 1]}`).toBeGreaterThan(orders[i - 1]);
  });
});
