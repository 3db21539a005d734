// The local transport runs argv with execFile: values reach the program literally,
// never through a shell.
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect, it } from "vitest";
import { LocalTransport } from "../../provider/transport/local";

it("passes argv and stdin literally and reports the exit code", async () => {
  const dir = mkdtempSync(join(tmpdir(), "netdev-local-"));
  const marker = join(dir, "marker");
  try {
    const t = new LocalTransport();
    const hostile = [`$(touch ${marker})`, `; touch ${marker}`, "a b", "'\"", "\n"];
    const r = await t.run(["printf", "%s\\0", ...hostile]);
    expect(r.code).toBe(0);
    expect(r.stdout.split("\0").slice(0, -1)).toEqual(hostile);
    expect(existsSync(marker)).toBe(false);
    expect((await t.run(["cat"], { stdin: "in\n" })).stdout).toBe("in\n");
    expect((await t.run(["sh", "-c", "exit 3"])).code).toBe(3);
    await expect(t.run(["/nonexistent/program"])).rejects.toThrow(/ENOENT/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
