// Credentials never sit in plain text in the state, even when the program passes them
// as plain strings (test/fixtures/hostsecrets forgets pulumi.secret()).
//
// 1. At the wire: the RegisterResource request the program sends (its protobuf
//    `object`, before anything deserialized it) carries `connection` wrapped in
//    Pulumi's secret signature, for every resource and for VxlanFabric's children.
// 2. Through the real provider host, against a namespace host (login with an
//    encrypted key, a password, sudo with a password): the state the engine would
//    write — inputs as registered, outputs re-marked secret where the input key was
//    secret or listed in additionalSecretOutputs — holds no credential in any plain
//    value; neither do the host's stderr or a refresh (Read).
// 3. Upgrading is quiet: a first-release state (plain `connection` in inputs and
//    outputs) replayed through Check and Diff with the new, secret, inputs shows no
//    change and no replacement.
import { execFileSync } from "node:child_process";
import { createRequire } from "node:module";
import { randomBytes } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { netnsPrerequisites, startNetnsLab, type NetnsLab } from "../hosts/netns";
import { assertBuilt, type ExampleRegistration, linkExampleDeps, runProgram } from "../support/examples";
import { destroyAll, providerHost, upEngine } from "../support/host-steps";
import { hostSuite } from "../support/prereq";
import type { ProviderHost } from "../support/provider-host";
import { DYNAMIC_TYPE_PREFIX as TYPE, type ResourceState } from "../support/stack";

const FIXTURE = path.resolve(__dirname, "../fixtures/hostsecrets");
const SECRET_SIG_KEY = "4dabf18193072939515e22adb298388d";
const SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270";
const missing = [...netnsPrerequisites().missing, ...["sudo", "visudo", "useradd", "ssh-keygen"].filter((t) => !commandExists(t)).map((t) => `${t} (command)`)];

function commandExists(cmd: string): boolean {
  return ["/usr/bin", "/usr/sbin", "/bin", "/sbin"].some((d) => fs.existsSync(path.join(d, cmd)));
}

/** The fixture program, Node's own require, a fresh module each run. */
function runFixture(config: Record<string, string>, engine?: NonNullable<Parameters<typeof runProgram>[2]>["engine"]) {
  const main = path.join(FIXTURE, "index.js");
  const req = createRequire(main);
  delete req.cache[main];
  return runProgram(FIXTURE, () => req("./index.js"), { config, engine });
}

/** The values of `v` outside any secret wrapper, as text (what a state file would show in the clear). */
function plainText(v: any): string {
  const strip = (x: any): any => {
    if (Array.isArray(x)) return x.map(strip);
    if (x && typeof x === "object") {
      if (x[SECRET_SIG_KEY] === SECRET_SIG) return "[secret]";
      return Object.fromEntries(Object.entries(x).map(([k, e]) => [k, strip(e)]));
    }
    return x;
  };
  return JSON.stringify(strip(v));
}

hostSuite("credentials are secret in state", missing, () => {
  let lab: NetnsLab;
  let config: Record<string, string>;
  let credentials: string[];
  const hosts: ProviderHost[] = [];
  const password = `pw-${randomBytes(9).toString("base64url")}`;
  const passphrase = `pp-${randomBytes(9).toString("base64url")}`;
  let encryptedKey = "";

  beforeAll(async () => {
    assertBuilt();
    linkExampleDeps(FIXTURE);
    lab = await startNetnsLab({ hosts: 1, users: [{ suffix: "sec", password, sudo: "ALL=(root) ALL" }] });
    const keyFile = path.join(path.dirname(lab.privateKeyPath), "encrypted-key");
    fs.copyFileSync(lab.privateKeyPath, keyFile);
    execFileSync("ssh-keygen", ["-q", "-p", "-f", keyFile, "-P", "", "-N", passphrase]);
    encryptedKey = fs.readFileSync(keyFile, "utf8");
    const h = lab.hosts[0];
    const connection = { host: h.address, user: lab.users[0].name, privateKey: encryptedKey, passphrase, password, sudo: { password }, hostKey: h.connection.hostKey };
    config = { "hostsecrets:connection": JSON.stringify(connection), "hostsecrets:underlay": h.address };
    // The whole key, and each of its lines long enough to mean something on its own.
    credentials = [password, passphrase, encryptedKey, ...encryptedKey.split("\n").filter((l) => l.length >= 16 && !l.startsWith("-----"))];
  });

  afterAll(async () => {
    for (const host of hosts) await host.stop();
    await lab?.destroy();
  });

  const netdevRegs = (regs: ExampleRegistration[]) => regs.filter((r) => r.custom);

  it("the RegisterResource request carries connection as a secret, for every resource and VxlanFabric's children", async () => {
    const run = await runFixture(config);
    const regs = netdevRegs(run.registrations);
    expect(regs.map((r) => r.name).sort()).toEqual(["bridge", "fabric-" + lab.hosts[0].address + "-br", "fabric-" + lab.hosts[0].address + "-vx"].sort());
    for (const r of regs) {
      expect(r.wire.connection?.[SECRET_SIG_KEY], r.name).toBe(SECRET_SIG);
      expect(r.wire.connection.value.sudo.password, r.name).toBe(password);
      expect(r.secretKeys, r.name).toContain("connection");
      expect(r.additionalSecretOutputs, r.name).toContain("connection");
      const plain = plainText(r.wire);
      for (const c of credentials) expect(plain, r.name).not.toContain(c);
    }
  });

  it("no credential in any plain input or output through the provider host; upgrading from a plain-connection state is quiet", { timeout: 300_000 }, async () => {
    const host = await providerHost(FIXTURE, {}, hosts);
    const created: ResourceState[] = [];
    const up = upEngine(host, created);
    // Component resources (VxlanFabric) have no provider: the engine only records them.
    const run = await runFixture(config, (reg) => (reg.type.startsWith(TYPE) ? up(reg) : Promise.resolve({ id: "", state: {} })));
    const regs = netdevRegs(run.registrations);
    expect(created.map((c) => c.name).sort()).toEqual(regs.map((r) => r.name).sort());
    const refreshed: Record<string, any>[] = [];
    try {
      for (const c of created) {
        const reg = regs.find((r) => r.name === c.name)!;
        // What the engine writes: an input is secret when it was registered secret; an
        // output when its input was, or when additionalSecretOutputs names it.
        const secretOuts = new Set([...reg.secretKeys, ...reg.additionalSecretOutputs]);
        const plainInputs = Object.fromEntries(Object.entries(c.inputs).filter(([k]) => !reg.secretKeys.includes(k)));
        const plainOutputs = Object.fromEntries(Object.entries(c.outs).filter(([k]) => !secretOuts.has(k)));
        expect(Object.keys(plainInputs), c.name).not.toContain("connection");
        for (const cred of credentials) {
          expect(JSON.stringify(plainInputs), c.name).not.toContain(cred);
          expect(JSON.stringify(plainOutputs), c.name).not.toContain(cred);
          expect(c.id, c.name).not.toContain(cred);
        }
        const read = await host.read(c.urn, c.id, c.outs, c.inputs);
        refreshed.push(read.props);
        const plainRead = Object.fromEntries(Object.entries(read.props).filter(([k]) => !secretOuts.has(k)));
        for (const cred of credentials) expect(JSON.stringify(plainRead), c.name).not.toContain(cred);

        // A first-release state: the same values, connection plain in inputs and outputs
        // (what the provider host got and returned then, and still does: it never sees
        // secret markers). The new program's inputs are secret-wrapped at registration.
        const newInputs = (await host.check(c.urn, c.inputs, reg.inputs)).inputs;
        expect(newInputs.connection, c.name).toEqual(c.inputs.connection);
        expect(await host.diff(c.urn, c.id, c.outs, newInputs), c.name).toEqual({ changes: "none", replaces: [], deleteBeforeReplace: true });
      }
      expect(refreshed.length).toBe(created.length);
      for (const cred of credentials) expect(host.stderr()).not.toContain(cred);
    } finally {
      await destroyAll(host, created);
    }
  });
});
