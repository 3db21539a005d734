// The full-kernel VM test host itself (test/hosts/vm.ts): boots, answers SSH,
// has the device kinds this machine's kernel lacks, and two VMs can share an
// L2 segment. All addresses used here live inside the guests.
import * as net from "node:net";
import { describe, it, expect, beforeAll, afterAll } from "vitest";
import { startVmHost, vmPrerequisites, type VmHost } from "../hosts/vm";

const prereq = vmPrerequisites();
const missing = prereq.missing.join(", ");
if (!prereq.ok && !process.env.CI) {
  console.warn(`[vm-host.test] skipping VM tests, missing: ${missing}`);
}

describe("VM host prerequisites", () => {
  // In CI a missing tool must fail the run, not silently skip the VM tests.
  it.runIf(!!process.env.CI)("are all installed in CI", () => {
    if (!prereq.ok) throw new Error(`VM test host prerequisites missing in CI: ${missing}`);
  });
});

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

async function ok(vm: VmHost, argv: string[]): Promise<string> {
  const r = await vm.exec(argv);
  expect(r, `${argv.join(" ")} on ${vm.name}: ${r.stderr}`).toMatchObject({ code: 0 });
  return r.stdout;
}

describe.skipIf(!prereq.ok)("VM test host", () => {
  // One pair of VMs serves every test: "a" for the single-host checks, both for
  // the shared segment. Booting under TCG is the slow part.
  let a: VmHost | undefined;
  let b: VmHost | undefined;

  beforeAll(async () => {
    const port = await freePort();
    // Started together: the connecting side retries until the listener is up.
    const [ra, rb] = await Promise.allSettled([
      startVmHost({ name: "vmt-a", l2Segment: { port, role: "listen" } }),
      startVmHost({ name: "vmt-b", l2Segment: { port, role: "connect" } }),
    ]);
    if (ra.status === "fulfilled") a = ra.value;
    if (rb.status === "fulfilled") b = rb.value;
    for (const r of [ra, rb]) if (r.status === "rejected") throw r.reason;
    console.log(`[vm-host.test] boot-to-SSH: ${a!.name} ${a!.bootMs} ms, ${b!.name} ${b!.bootMs} ms`);
  }, 600_000);

  afterAll(async () => {
    await Promise.all([a?.stop(), b?.stop()]);
  });

  it("exposes connection details", () => {
    expect(a!.connection).toMatchObject({ host: "127.0.0.1", user: "root" });
    expect(a!.connection.hostKey).toMatch(/^SHA256:[A-Za-z0-9+/]{43}$/);
    expect(a!.connection.port).not.toBe(b!.connection.port);
  });

  it("runs ip -j link show over exec", async () => {
    const links = JSON.parse(await ok(a!, ["ip", "-j", "link", "show"])) as { ifname: string; operstate: string }[];
    const names = links.map((l) => l.ifname);
    expect(names).toEqual(expect.arrayContaining(["lo", "eth0", "seg0", "dummy0", "dummy1"]));
  });

  it("quotes each argv element", async () => {
    const r = await a!.exec(["bash", "-c", 'printf "%s|" "$@"', "argv0", "it's", "a b", "$HOME", ";true"]);
    expect(r).toMatchObject({ code: 0, stdout: "it's|a b|$HOME|;true|" });
    expect((await a!.exec(["false"])).code).toBe(1);
  });

  it("creates vlan, bond, ipvlan and dummy devices", async () => {
    await ok(a!, ["ip", "link", "add", "v10", "link", "dummy0", "type", "vlan", "id", "10"]);
    await ok(a!, ["ip", "link", "add", "b0", "type", "bond", "mode", "active-backup"]);
    await ok(a!, ["ip", "link", "add", "iv0", "link", "dummy1", "type", "ipvlan", "mode", "l2"]);
    await ok(a!, ["ip", "link", "add", "d9", "type", "dummy"]);
    const links = JSON.parse(await ok(a!, ["ip", "-j", "-d", "link", "show"])) as {
      ifname: string;
      linkinfo?: { info_kind?: string };
    }[];
    const kind = (n: string) => links.find((l) => l.ifname === n)?.linkinfo?.info_kind;
    expect([kind("v10"), kind("b0"), kind("iv0"), kind("d9")]).toEqual(["vlan", "bond", "ipvlan", "dummy"]);
    for (const dev of ["v10", "b0", "iv0", "d9"]) await ok(a!, ["ip", "link", "del", dev]);
  });

  it("lets two VMs on a shared L2 segment ping each other", async () => {
    await ok(a!, ["ip", "addr", "add", "192.0.2.1/24", "dev", "seg0"]);
    await ok(b!, ["ip", "addr", "add", "192.0.2.2/24", "dev", "seg0"]);
    await ok(a!, ["ping", "-c", "3", "-i", "0.2", "-W", "5", "192.0.2.2"]);
    await ok(b!, ["ping", "-c", "3", "-i", "0.2", "-W", "5", "192.0.2.1"]);
  });
});
