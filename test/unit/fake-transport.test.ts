// The fake transport is strict: a command no test scripted is an error, and the unit
// suite fails the test that sent it even when the test swallowed that error.
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { FakeTransport, takeUnscriptedCommands } from "../../provider/transport/fake";
import config from "../../vitest.config.mts";
import { repoRoot, runVitestOn } from "../support/vitest-run";

describe("FakeTransport", () => {
  it("answers scripted commands, newest responder first", async () => {
    const t = new FakeTransport().on(["ip"], { stdout: "old" }).on(["ip", "link"], { stdout: "new", code: 2 });
    expect(await t.run(["ip", "link", "show"])).toEqual({ stdout: "new", stderr: "", code: 2 });
    expect(await t.run(["ip", "addr"])).toEqual({ stdout: "old", stderr: "", code: 0 });
  });

  it("rejects an unscripted command with an error naming host, argv and stdin, and records it", async () => {
    const t = new FakeTransport("hostA").on(["ip", "link"], {});
    await expect(t.run(["ip", "addr", "del", "192.0.2.1/24", "dev", "x"])).rejects.toThrow('hostA: unscripted command sent to the fake transport: ["ip","addr","del","192.0.2.1/24","dev","x"]');
    await expect(t.run(["ip", "-batch", "-"], { stdin: "link del x\n" })).rejects.toThrow(/\["ip","-batch","-"\] with stdin "link del x\\n"/);
    expect(t.calls).toHaveLength(2);
    // Taken here, so this test's own check does not fail it.
    expect(takeUnscriptedCommands()).toHaveLength(2);
    expect(takeUnscriptedCommands()).toEqual([]);
  });

  it("the unit suite runs the check after every test", () => {
    const unit = (config as any).test.projects.find((p: any) => p.test.name === "unit");
    expect(unit.test.setupFiles).toContain("test/support/strict-fake.ts");
  });

  it("a test that swallows the error of an unscripted command still fails, naming the command", async () => {
    const fake = JSON.stringify(join(repoRoot, "provider/transport/fake.ts"));
    const run = await runVitestOn(
      {
        "swallow.test.ts": `import { it } from "vitest";
import { FakeTransport } from ${fake};
it("swallows", async () => { await new FakeTransport().run(["ip", "link", "del", "dev", "eth0"]).catch(() => undefined); });
it("scripts what it sends", async () => { await new FakeTransport().on(["ip"], {}).run(["ip", "link", "del", "dev", "eth0"]); });
`,
      },
      [join(repoRoot, "test/support/strict-fake.ts")],
    );
    expect(run.code).not.toBe(0);
    const tests = run.json.testResults[0].assertionResults;
    expect(tests.map((t: any) => [t.title, t.status])).toEqual([["swallows", "failed"], ["scripts what it sends", "passed"]]);
    expect(tests[0].failureMessages.join("\n")).toContain('unscripted command sent to the fake transport: ["ip","link","del","dev","eth0"]');
  }, 120_000);
});
