// Safe apply on a host that cannot run a rollback: this namespace host's sshd gives
// its sessions a PATH without setsid (every other program is there). A risky write
// fails before any change, naming what is missing; a harmless one runs as usual.
import { randomBytes } from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { netnsPrerequisites, startNetnsLab, type NetnsHost, type NetnsLab } from "../hosts/netns";
import { provider } from "../../provider/runtime";
import { closeAllConnections } from "../../provider/transport/ssh";
import { hostSuite } from "../support/prereq";
import { addrsOf, ipLink, labConnection } from "../support/kernel";

hostSuite("safe apply on a host without setsid", netnsPrerequisites().missing, () => {
  let lab: NetnsLab;
  let h: NetnsHost;
  const bin = path.join(os.tmpdir(), `sa-nosetsid-${randomBytes(4).toString("hex")}`);

  beforeAll(async () => {
    fs.mkdirSync(bin);
    for (const dir of ["/usr/sbin", "/usr/bin"])
      for (const f of fs.readdirSync(dir)) if (f !== "setsid" && !fs.existsSync(path.join(bin, f))) fs.symlinkSync(path.join(dir, f), path.join(bin, f));
    lab = await startNetnsLab({
      hosts: 1,
      sshdConfig: [`SetEnv SHLVL=1 PATH=${bin}`],
      // Least privilege: this user may run only ip as root.
      users: [{ suffix: "iponly", password: randomBytes(9).toString("hex"), sudo: "ALL=(root) NOPASSWD: /usr/sbin/ip, /usr/bin/ip, /bin/ip" }],
    });
    h = lab.hosts[0];
  });
  afterAll(async () => {
    closeAllConnections();
    await lab?.destroy();
    fs.rmSync(bin, { recursive: true, force: true });
  });

  it("a risky write fails before any change, naming setsid; nothing is armed", async () => {
    const conn = { ...labConnection(lab, h), safeApply: { rollbackAfterSeconds: 5 } };
    const before = await ipLink(h, "eth0");
    const rt = provider("Bridge");
    const br = await rt.create((await rt.check({}, { connection: conn, name: "br-x" })).inputs);
    // Enslaving a device with eth0's own address moves it: risky.
    const err = await rt
      .update(br.id, br.outs, (await rt.check(br.outs, { connection: conn, name: "br-x", addresses: [addrsOf(before)[0]] })).inputs)
      .then(() => undefined, (e: Error) => e);
    expect(err?.message).toMatch(/refused before any change/);
    expect(err?.message).toMatch(/missing setsid/);
    expect(err?.message).toContain(`moves ${addrsOf(before)[0].split("/")[0]}`);
    expect(addrsOf(await ipLink(h, "br-x"))).toEqual([]);
    const after = await ipLink(h, "eth0");
    expect(addrsOf(after)).toEqual(addrsOf(before));
    expect(after.master).toBeUndefined();
    const dir = "/run/pulumi-netdev-safe-apply";
    expect(fs.existsSync(dir) ? fs.readdirSync(dir).filter((d) => fs.existsSync(path.join(dir, d, "armed"))) : []).toEqual([]);
    // Not risky: runs as usual on the same host.
    await rt.delete(br.id, br.outs);
    expect(await ipLink(h, "br-x")).toBeUndefined();
  }, 60_000);

  it("a user whose sudo allows only ip: harmless writes run, a risky one is refused before any change, naming sudo", async () => {
    const conn = { host: h.address, user: lab.users[0].name, privateKey: lab.privateKey, hostKey: h.connection.hostKey, sudo: true, safeApply: { rollbackAfterSeconds: 5 } };
    const before = await ipLink(h, "eth0");
    const rt = provider("Bridge");
    const br = await rt.create((await rt.check({}, { connection: conn, name: "br-ip" })).inputs);
    expect(await ipLink(h, "br-ip")).toBeDefined();
    const err = await rt
      .update(br.id, br.outs, (await rt.check(br.outs, { connection: conn, name: "br-ip", addresses: [addrsOf(before)[0]] })).inputs)
      .then(() => undefined, (e: Error) => e);
    expect(err?.message).toMatch(/refused before any change: it is risky/);
    expect(err?.message).toMatch(/sudo/);
    expect(addrsOf(await ipLink(h, "br-ip"))).toEqual([]);
    expect(addrsOf(await ipLink(h, "eth0"))).toEqual(addrsOf(before));
    await rt.delete(br.id, br.outs);
    expect(await ipLink(h, "br-ip")).toBeUndefined();
  }, 60_000);
});
