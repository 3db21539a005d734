// Proves the provider-host harness with a self-contained dynamic provider
// (test/fixtures/hostsmoke), independent of the project's own code.
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { captureRegistrations, ProviderHost, Registration, startProviderHost, UNKNOWN } from "../support/provider-host";

const programDir = path.resolve(__dirname, "../fixtures/hostsmoke");
// Node's own require: the fixture must not go through vitest's transform (its provider is serialized).
const fixture = createRequire(path.join(programDir, "index.js"))("./index.js");

describe("provider host smoke test", () => {
  let tmp: string;
  let file: string;
  let reg: Registration;
  let host: ProviderHost;

  beforeAll(async () => {
    tmp = mkdtempSync(path.join(os.tmpdir(), "hostsmoke-"));
    file = path.join(tmp, "counter.txt");
    const regs = await captureRegistrations(programDir, () => fixture.main(), {
      project: "hostsmoke",
      stack: "dev",
      config: { "hostsmoke:path": file },
    });
    expect(regs).toHaveLength(1);
    reg = regs[0];
    host = await startProviderHost({ cwd: programDir, env: { PULUMI_NODEJS_PROJECT: "hostsmoke" } });
  });

  afterAll(async () => {
    await host?.stop();
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  it("captures the registration with its serialized provider", () => {
    expect(reg.type).toBe("pulumi-nodejs:dynamic:Resource");
    expect(reg.name).toBe("counter");
    expect(reg.urn).toBe("urn:pulumi:dev::hostsmoke::pulumi-nodejs:dynamic:Resource::counter");
    expect(reg.inputs.path).toBe(file); // config was visible to the program
    expect(reg.inputs.count).toBe(1);
    expect(reg.inputs.token).toBe("s3cret"); // secrets arrive as plain values
    expect(reg.secretKeys).toEqual(["token"]);
    expect(typeof reg.inputs.__provider).toBe("string");
    console.log(`serialized __provider: ${reg.inputs.__provider.length} bytes`);
  });

  it("replays configure → check → create → diff → update → read → delete", async () => {
    const { urn, inputs } = reg;
    await host.configure({ "hostsmoke:greeting": "hello", "other:key": "x" });

    const checked = await host.check(urn, {}, inputs);
    expect(checked.failures).toEqual([]);
    expect(checked.inputs.__provider).toBe(inputs.__provider);

    const created = await host.create(urn, checked.inputs);
    expect(created.id).toBe(file);
    expect(readFileSync(file, "utf8")).toBe("1");
    expect(created.outs).toMatchObject({ path: file, count: 1, greeting: "hello", unqualified: "hello" });
    expect(created.outs.__provider).toBe(inputs.__provider);

    const news = { ...inputs, count: 2 };
    expect(await host.diff(urn, created.id, created.outs, created.outs)).toMatchObject({ changes: "none" });
    const diff = await host.diff(urn, created.id, created.outs, news);
    expect(diff).toEqual({ changes: "some", replaces: [], deleteBeforeReplace: true });
    // Preview: unknown inputs reach diff as the UNKNOWN sentinel.
    const previewDiff = await host.diff(urn, created.id, created.outs, { ...inputs, path: UNKNOWN });
    expect(previewDiff.replaces).toEqual(["path"]);

    const updated = await host.update(urn, created.id, created.outs, news);
    expect(updated.outs).toMatchObject({ count: 2, greeting: "hello" });
    expect(readFileSync(file, "utf8")).toBe("2");

    const read = await host.read(urn, created.id, updated.outs, news);
    expect(read.id).toBe(file);
    expect(read.props.count).toBe(2);

    await host.delete(urn, created.id, read.props);
    expect(existsSync(file)).toBe(false);

    console.log(`provider host peak RSS: ${host.peakRssKiB()} KiB`);
  });

  it("rejects with the provider's error message", async () => {
    const bad = { ...reg.inputs, count: -1 };
    await expect(host.create(reg.urn, bad)).rejects.toThrow(/^count must not be negative, got -1$/);
    const failures = (await host.check(reg.urn, {}, { ...reg.inputs, path: 42 })).failures;
    expect(failures).toEqual([{ property: "path", reason: "path must be a string" }]);
  });

  it("captureRegistrations rejects when the provider captures something unserializable", async () => {
    const bad = createRequire(path.join(programDir, "unserializable.js"))("./unserializable.js");
    await expect(captureRegistrations(programDir, () => bad.main())).rejects.toThrow(/error serializing property "__provider"/);
  });
});
