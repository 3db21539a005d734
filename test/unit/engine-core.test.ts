// The engine's create/read/update/delete over a scripted transport: what it sends,
// what it refuses to touch, and how it cleans up after a half-made device.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { resetDefaults, setTransportFactory } from "../../provider/engine";
import { CommandError, NetdevError, VerificationError } from "../../provider/errors";
import type { LinkJson } from "../../provider/iproute/link";
import { provider } from "../../provider/runtime";
import { FakeTransport } from "../../provider/transport/fake";
import { SshTransport } from "../../provider/transport/ssh";
import { refuseAdds } from "../support/unit";

function raw(name: string): string {
  return readFileSync(join(__dirname, "../fixtures/iproute", `${name}.json`), "utf8");
}
function fixture(name: string): LinkJson {
  return JSON.parse(raw(name))[0];
}
const show = (ns: string | undefined, dev: string) => (ns ? ["ip", "-n", ns, "-j", "-d", "addr", "show", "dev", dev] : ["ip", "-j", "-d", "addr", "show", "dev", dev]);
const isShow = (argv: string[]) => argv.includes("show") && argv.includes("-j");
const isRead = (argv: string[]) => isShow(argv) || argv[0] === "getent" || (argv.includes("netns") && argv.includes("list"));
const gone = (dev: string) => ({ code: 1, stderr: `Device "${dev}" does not exist.\n` });

const conn = { host: "192.0.2.10", privateKey: "SECRET-KEY-TEXT" };
let fake: FakeTransport;
let transportsMade = 0;

beforeEach(() => {
  fake = new FakeTransport("192.0.2.10");
  transportsMade = 0;
  setTransportFactory(() => {
    transportsMade++;
    return fake;
  });
});
afterEach(() => {
  vi.useRealTimers();
  setTransportFactory((c) => new SshTransport(c));
  resetDefaults();
});

async function checked(kind: string, inputs: Record<string, unknown>) {
  const r = await provider(kind).check({}, { connection: conn, ...inputs });
  expect(r.failures).toEqual([]);
  return r.inputs;
}

/**
 * A tiny kernel: answers `show` for one device from `state` (undefined = absent) and
 * applies the few writes these tests send, so that read-back sees them.
 */
function kernel(ns: string | undefined, dev: string, initial: LinkJson | undefined, opts: { failBatch?: (script: string, n: number) => string | undefined } = {}) {
  const box = { state: initial ? structuredClone(initial) : undefined, batches: 0 };
  const apply = (args: string[]) => {
    const i = args.indexOf("add");
    // As `ip link add` makes it: down, no master, no addresses.
    if (args[0] === "link" && args[1] === "add") box.state = { ...structuredClone(fixture("bridge-timers")), ifname: dev, ifindex: 42, flags: ["BROADCAST", "MULTICAST"], addr_info: [] };
    else if (args[0] === "tuntap" && i === 1) box.state = { ...structuredClone(fixture("tap-numeric-owner")), ifname: dev, ifindex: 43 };
    else if (box.state && args[0] === "link" && args[1] === "set") {
      const k = args.indexOf("mtu");
      if (k > 0) box.state.mtu = Number(args[k + 1]);
      const f = args.indexOf("forward_delay");
      if (f > 0) box.state.linkinfo!.info_data!.forward_delay = Number(args[f + 1]);
      if (args.includes("down")) box.state.flags = box.state.flags.filter((x) => x !== "UP");
      if (args.includes("up") && !box.state.flags.includes("UP")) box.state.flags = [...box.state.flags, "UP"];
    } else if (box.state && args[0] === "addr") {
      const [ip, len] = args[2].split("/");
      const rest = (box.state.addr_info ?? []).filter((a) => `${a.local}/${a.prefixlen}` !== args[2]);
      box.state.addr_info = args[1] === "add" ? [...rest, { family: ip.includes(":") ? "inet6" : "inet", local: ip, prefixlen: Number(len), scope: "global" }] : rest;
    }
  };
  const prefix = ns ? ["ip", "-n", ns] : ["ip"];
  fake.on(prefix, (argv, o) => {
    const args = argv.slice(prefix.length);
    if (args[0] === "-batch") {
      // NLM_F_EXCL: the add of a taken name is refused and nothing runs.
      if (box.state && (o.stdin ?? "").startsWith("link add ")) return { code: 1, stderr: "RTNETLINK answers: File exists\nCommand failed -:1\n" };
      box.batches++;
      const bad = opts.failBatch?.(o.stdin ?? "", box.batches);
      const lines = (o.stdin ?? "").trim().split("\n");
      const upTo = bad ? Number(/-:(\d+)/.exec(bad)![1]) - 1 : lines.length;
      for (const line of lines.slice(0, upTo)) apply(line.split(" "));
      return bad ? { code: 1, stderr: bad } : {};
    }
    if (isShow(argv)) return box.state ? { stdout: JSON.stringify([box.state]) } : gone(dev);
    apply(args);
    return {};
  });
  return box;
}

const writes = () => fake.calls.filter((c) => !isRead(c.argv));

describe("create refuses to touch what it does not own", () => {
  it("an existing device of the same kind without adopt: error, and the device is as it was (the one write is an add the kernel refuses)", async () => {
    const k = kernel(undefined, "br-ut", fixture("bridge-timers"));
    const inputs = await checked("Bridge", { name: "br-ut", mtu: 9000, stp: false });
    await expect(provider("Bridge").create(inputs)).rejects.toThrow(/bridge br-ut already exists; it was left untouched\. Set adopt: true/);
    expect(k.state).toEqual(fixture("bridge-timers"));
    expect(k.batches).toBe(0);
    expect(writes().map((c) => c.stdin?.split("\n")[0])).toEqual(["link add name br-ut type bridge stp_state 0"]);
  });

  it("the same in a namespace names the namespace", async () => {
    fake.on(show("ut-rec-a", "tap-ut"), { stdout: raw("tap-user-group") });
    const inputs = await checked("TapDevice", { name: "tap-ut", namespace: "ut-rec-a" });
    await expect(provider("TapDevice").create(inputs)).rejects.toThrow(/tap-ut in namespace ut-rec-a already exists/);
    expect(writes()).toEqual([]);
  });

  it("an existing device of another kind, even with adopt: error, and nothing but a refused add written", async () => {
    refuseAdds(fake);
    fake.on(show(undefined, "br-ut"), { stdout: raw("tap-user-group").replace('"tap-ut"', '"br-ut"') });
    for (const adopt of [true, false]) {
      const inputs = await checked("Bridge", { name: "br-ut", adopt });
      await expect(provider("Bridge").create(inputs)).rejects.toThrow(/already exists and is a tun, not a bridge; it was left untouched/);
    }
    const plain = { ...fixture("veth-same-ns-b"), linkinfo: undefined, ifname: "ve0" };
    fake.on(show(undefined, "ve0"), { stdout: JSON.stringify([plain]) });
    const v = await checked("VethPair", { name: "ve0", peerName: "ve1", adopt: true });
    await expect(provider("VethPair").create(v)).rejects.toThrow(/is a \(plain device\), not a veth/);
    expect(writes().map((c) => c.stdin?.split("\n")[0])).toEqual([
      "link add name br-ut type bridge",
      "link add name br-ut type bridge",
      "link add name ve0 type veth peer name ve1",
    ]);
  });

  it("adopt of the same kind converges it, and a failure then never deletes the adopted device", async () => {
    const k = kernel(undefined, "br-ut", fixture("bridge-timers"), { failBatch: () => "RTNETLINK answers: Invalid argument\nCommand failed -:2\n" });
    const inputs = await checked("Bridge", { name: "br-ut", adopt: true, mtu: 9000, addresses: ["192.0.2.1/24"] });
    await expect(provider("Bridge").create(inputs)).rejects.toBeInstanceOf(CommandError);
    expect(k.batches).toBe(1);
    expect(fake.calls.some((c) => c.argv.includes("del") && c.argv.includes("link"))).toBe(false);
    expect(k.state).toBeDefined();
  });

  it("adopt of the same kind with nothing to change changes nothing and returns the kernel's view", async () => {
    const k = kernel(undefined, "br-ut", fixture("bridge-timers"));
    const inputs = await checked("Bridge", { name: "br-ut", adopt: true, stp: true, forwardDelay: 4, addresses: ["2001:db8::1/64", "192.0.2.1/24"] });
    const { id, outs } = await provider("Bridge").create(inputs);
    expect(id).toBe("192.0.2.10:22//br-ut");
    expect(k.batches).toBe(0);
    expect(writes().length).toBe(1); // the add, refused
    expect(k.state).toEqual(fixture("bridge-timers"));
    expect(outs).toMatchObject({ name: "br-ut", mtu: 1400, ageingTime: 120, ifindex: 2, adopt: true });
  });
});

describe("create", () => {
  it("creates, converges the common fields in one batch, verifies, and returns outputs without undefined", async () => {
    const k = kernel("ns1", "br9", undefined);
    const inputs = await checked("Bridge", { name: "br9", namespace: "ns1", forwardDelay: 4, mtu: 1300, addresses: ["198.51.100.1/24"] });
    const { id, outs } = await provider("Bridge").create(inputs);
    expect(id).toBe("192.0.2.10:22/ns1/br9");
    // One write and its read-back, then the marker cleared: no read before the add
    // (it is exclusive), nothing left for converge to fix.
    expect(fake.calls.map((c) => c.argv)).toEqual([
      ["ip", "-n", "ns1", "-batch", "-"],
      show("ns1", "br9"),
      ["ip", "-n", "ns1", "link", "set", "dev", "br9", "alias", ""],
    ]);
    // The add carries the in-progress marker and every change a new device needs in the same batch.
    expect(fake.calls[0].stdin).toMatch(
      /^link add name br9 type bridge forward_delay 400\nlink set dev br9 alias pulumi-netdev:creating:[0-9a-f]{20}\nlink set dev br9 mtu 1300\naddr add 198\.51\.100\.1\/24 dev br9\nlink set dev br9 up\n$/,
    );
    expect(k.state?.mtu).toBe(1300);
    expect(k.state?.flags).toContain("UP");
    expect(outs).toMatchObject({ name: "br9", namespace: "ns1", mtu: 1300, forwardDelay: 4, addresses: ["198.51.100.1/24"], ifindex: 42 });
    expect(Object.values(outs)).not.toContain(undefined);
    expect(JSON.stringify(fake.calls)).not.toContain("SECRET-KEY-TEXT");
  });

  it("a later step failing removes the half-made device (ip link del) and reports the failing line", async () => {
    kernel("ut-rec-a", "br-ut", undefined, { failBatch: (s) => (s.includes("addr add") ? 'RTNETLINK answers: Cannot assign requested address\nCommand failed -:3\n' : undefined) });
    const inputs = await checked("Bridge", { name: "br-ut", namespace: "ut-rec-a", addresses: ["192.0.2.9/24"] });
    const err = await provider("Bridge").create(inputs).catch((e) => e);
    expect(err).toBeInstanceOf(CommandError);
    expect(err.argv).toEqual(["ip", "-n", "ut-rec-a", "addr", "add", "192.0.2.9/24", "dev", "br-ut"]);
    expect(fake.calls.at(-1)!.argv).toEqual(["ip", "-n", "ut-rec-a", "link", "del", "dev", "br-ut"]);
  });

  it("a failure inside the create lines after the add (tuntap: mtu too big for a tap) removes the device", async () => {
    kernel(undefined, "tap9", undefined, { failBatch: () => "Error: mtu greater than device maximum.\nCommand failed -:3\n" });
    const inputs = await checked("TapDevice", { name: "tap9", mtu: 65535 });
    const err = await provider("TapDevice").create(inputs).catch((e) => e);
    expect(err).toBeInstanceOf(CommandError);
    expect(err.argv).toEqual(["ip", "link", "set", "dev", "tap9", "mtu", "65535"]);
    expect(err.message).toContain("mtu greater than device maximum");
    expect(fake.calls.at(-1)!.argv).toEqual(["ip", "link", "del", "dev", "tap9"]);
  });

  it("the add itself failing deletes nothing (the name may belong to someone else)", async () => {
    kernel(undefined, "ve0", undefined, { failBatch: () => "RTNETLINK answers: File exists\nCommand failed -:1\n" });
    const inputs = await checked("VethPair", { name: "ve0", peerName: "ve1" });
    const err = await provider("VethPair").create(inputs).catch((e) => e);
    expect(err).toBeInstanceOf(CommandError);
    expect(err.argv).toEqual(["ip", "link", "add", "name", "ve0", "type", "veth", "peer", "name", "ve1"]);
    expect(fake.calls.some((c) => c.argv.includes("del"))).toBe(false);
    kernel(undefined, "br0", undefined, { failBatch: () => "RTNETLINK answers: File exists\nCommand failed -:1\n" });
    const b = await checked("Bridge", { name: "br0", mtu: 1400 });
    await expect(provider("Bridge").create(b)).rejects.toBeInstanceOf(CommandError);
    expect(fake.calls.some((c) => c.argv.includes("del"))).toBe(false);
  });

  it("the kernel not taking a value: VerificationError naming field, wanted and actual; device removed", async () => {
    // Read-back keeps reporting forward_delay 400 whatever is written.
    fake.on(show(undefined, "br7"), { stdout: JSON.stringify([{ ...fixture("bridge-timers"), ifname: "br7" }]) });
    fake.on(["ip", "-batch", "-"], {}); // the add (and its marker): taken, but the read-back never changes
    fake.on(["ip", "link", "del", "dev", "br7"], {});
    const inputs = await checked("Bridge", { name: "br7", stp: true, forwardDelay: 5 });
    // The read-back retries wait between attempts; skip the waiting.
    vi.useFakeTimers({ toFake: ["setTimeout"] });
    const pending = provider("Bridge").create(inputs).catch((e) => e);
    await vi.runAllTimersAsync();
    const err = await pending;
    vi.useRealTimers();
    expect(err).toBeInstanceOf(VerificationError);
    expect(err).toMatchObject({ field: "forwardDelay", desired: 5, actual: 4, device: "br7", host: "192.0.2.10" });
    expect(err.message).toBe("192.0.2.10: br7: forwardDelay is 4 in the kernel after the change, wanted 5");
    // The add's read-back, then the fix's read-back and four more attempts.
    expect(fake.calls.filter((c) => c.argv.join(" ") === show(undefined, "br7").join(" ")).length).toBe(1 + 5);
    expect(fake.calls.at(-1)!.argv).toEqual(["ip", "link", "del", "dev", "br7"]);
  });

  it("no host anywhere: a clear error before any command, without credentials", async () => {
    const err = await provider("Bridge").create({ connection: { privateKey: "SECRET-KEY-TEXT" }, name: "br0", up: true, adopt: false }).catch((e) => e);
    expect(err).toBeInstanceOf(NetdevError);
    expect(err.message).toMatch(/connection\.host.*netdev:host/);
    expect(err.message).not.toContain("SECRET-KEY-TEXT");
    expect(transportsMade).toBe(0);
    expect(fake.calls).toEqual([]);
  });
});

describe("read, update, delete", () => {
  const outs = { connection: conn, name: "br-ut", namespace: "ut-rec-a", up: true, adopt: false, mtu: 1400 };

  it("read of a gone device (or its namespace) gives id ''", async () => {
    fake.on(show("ut-rec-a", "br-ut"), gone("br-ut"));
    expect(await provider("Bridge").read("id1", outs)).toEqual({ id: "", props: {} });
    fake.on(show("ut-rec-a", "br-ut"), { code: 255, stderr: 'Cannot open network namespace "ut-rec-a": No such file or directory\n' });
    expect(await provider("Bridge").read("id1", outs)).toEqual({ id: "", props: {} });
    expect(writes()).toEqual([]);
  });

  it("read of a device that is now another kind gives id ''", async () => {
    fake.on(show("ut-rec-a", "br-ut"), { stdout: raw("tap-user-group").replace('"tap-ut"', '"br-ut"') });
    expect(await provider("Bridge").read("id1", outs)).toEqual({ id: "", props: {} });
  });

  it("read reports the kernel's values (drift) under the same id", async () => {
    fake.on(show("ut-rec-a", "br-ut"), { stdout: raw("bridge-timers") });
    const r = await provider("Bridge").read("id1", { ...outs, mtu: 9000, stp: false });
    expect(r.id).toBe("id1");
    expect(r.props).toMatchObject({ mtu: 1400, stp: true, forwardDelay: 4, connection: conn, namespace: "ut-rec-a" });
  });

  it("update applies only the mismatches, then verifies", async () => {
    const k = kernel(undefined, "br-ut", fixture("bridge-timers"));
    const news = await checked("Bridge", { name: "br-ut", stp: true, forwardDelay: 6, mtu: 1400 });
    const r = await provider("Bridge").update("id1", {}, news);
    expect(writes().map((c) => c.argv)).toEqual([["ip", "link", "set", "dev", "br-ut", "type", "bridge", "forward_delay", "600"]]);
    expect(k.state!.linkinfo!.info_data!.forward_delay).toBe(600);
    expect(r.outs).toMatchObject({ forwardDelay: 6, mtu: 1400 });
  });

  it("update of a device deleted outside Pulumi says so", async () => {
    fake.on(show(undefined, "br-ut"), gone("br-ut"));
    const news = await checked("Bridge", { name: "br-ut" });
    await expect(provider("Bridge").update("id1", {}, news)).rejects.toThrow(/br-ut no longer exists.*pulumi refresh/);
    expect(writes()).toEqual([]);
  });

  it("update of a tap's creation-only field is refused (diff replaces it instead)", async () => {
    fake.on(show(undefined, "tap-ut"), { stdout: raw("tap-user-group") });
    const news = await checked("TapDevice", { name: "tap-ut", vnetHdr: false, multiQueue: true });
    await expect(provider("TapDevice").update("id1", {}, news)).rejects.toThrow(/vnetHdr can only be set when the device is created/);
    expect(writes()).toEqual([]);
  });

  it("delete of a gone device (or namespace) succeeds with only the read", async () => {
    for (const stderr of ['Device "br-ut" does not exist.\n', 'Cannot open network namespace "ut-rec-a": No such file or directory\n']) {
      fake.calls.length = 0;
      fake.on(show("ut-rec-a", "br-ut"), { code: 1, stderr });
      await expect(provider("Bridge").delete("id1", outs)).resolves.toBeUndefined();
      expect(fake.calls.map((c) => c.argv)).toEqual([show("ut-rec-a", "br-ut")]);
    }
  });

  it("delete reads, then deletes the device it manages; one gone meanwhile is fine", async () => {
    fake.on(show("ut-rec-a", "br-ut"), { stdout: raw("bridge-timers") });
    fake.on(["ip", "-n", "ut-rec-a", "link", "del"], { code: 1, stderr: 'Cannot find device "br-ut"\n' });
    await expect(provider("Bridge").delete("id1", { ...outs, ifindex: 2 })).resolves.toBeUndefined();
    expect(fake.calls.map((c) => c.argv)).toEqual([show("ut-rec-a", "br-ut"), ["ip", "-n", "ut-rec-a", "link", "del", "dev", "br-ut"]]);
  });

  it("delete failing for another reason throws CommandError", async () => {
    fake.on(show(undefined, "tap0"), { stdout: raw("tap-user-group").replace('"tap-ut"', '"tap0"') });
    fake.on(["ip", "link", "del"], { code: 2, stderr: "RTNETLINK answers: Operation not permitted\n" });
    const err = await provider("TapDevice").delete("id1", { connection: conn, name: "tap0" }).catch((e) => e);
    expect(err).toBeInstanceOf(CommandError);
    expect(err).toMatchObject({ argv: ["ip", "link", "del", "dev", "tap0"], code: 2, host: "192.0.2.10" });
    expect(err.message).not.toContain("SECRET-KEY-TEXT");
  });
});

describe("delete and update touch only the device the stack manages", () => {
  const state = { connection: conn, name: "br-ut", namespace: "ut-rec-a", up: true, adopt: false, mtu: 1400, ifindex: 2 };
  const tap = raw("tap-user-group").replace('"tap-ut"', '"br-ut"');
  const marked = JSON.stringify([{ ...fixture("bridge-timers"), ifalias: "pulumi-netdev:creating:0123456789abcdef0123" }]);
  const recreated = JSON.stringify([{ ...fixture("bridge-timers"), ifindex: 77 }]);

  it("a device of another kind under the name: delete and update refuse, naming device, kind and what the stack expected; only reads sent", async () => {
    fake.on(show("ut-rec-a", "br-ut"), { stdout: tap });
    await expect(provider("Bridge").delete("id1", state)).rejects.toThrow(
      "192.0.2.10: refusing to delete br-ut in namespace ut-rec-a: the device there is a tun, but the stack manages a bridge of that name (deleted and replaced outside Pulumi?). It was left untouched",
    );
    const news = await checked("Bridge", { name: "br-ut", namespace: "ut-rec-a", mtu: 1300 });
    await expect(provider("Bridge").update("id1", state, news)).rejects.toThrow(/refusing to update br-ut in namespace ut-rec-a: the device there is a tun, but the stack manages a bridge/);
    expect(writes()).toEqual([]);
  });

  it("a device left by another, interrupted create: refused, and read reports the resource gone", async () => {
    fake.on(show("ut-rec-a", "br-ut"), { stdout: marked });
    await expect(provider("Bridge").delete("id1", state)).rejects.toThrow(/refusing to delete br-ut .* left by another, interrupted create \(ifalias pulumi-netdev:creating:0123456789abcdef0123\)/);
    expect(await provider("Bridge").read("id1", state)).toEqual({ id: "", props: {} });
    expect(writes()).toEqual([]);
  });

  it("the same kind with another ifindex than the state's: refused until a refresh records it", async () => {
    fake.on(show("ut-rec-a", "br-ut"), { stdout: recreated });
    await expect(provider("Bridge").delete("id1", state)).rejects.toThrow(/refusing to delete br-ut in namespace ut-rec-a: the device there is a bridge with ifindex 77, but the one the stack manages has ifindex 2 .*pulumi refresh/);
    expect(writes()).toEqual([]);
    const refreshed = await provider("Bridge").read("id1", state);
    expect(refreshed.props.ifindex).toBe(77);
    fake.on(["ip", "-n", "ut-rec-a", "link", "del", "dev", "br-ut"], {});
    await provider("Bridge").delete("id1", refreshed.props);
    expect(writes().map((c) => c.argv)).toEqual([["ip", "-n", "ut-rec-a", "link", "del", "dev", "br-ut"]]);
  });
});

describe("Namespace over the fake", () => {
  const list = (names: string[]) => ({ stdout: JSON.stringify(names.map((name) => ({ name }))) });

  it("create: refuses an existing one without adopt; adopts with it; adds otherwise", async () => {
    fake.on(["ip", "-j", "netns", "list"], list(["c1"]));
    const c1 = await checked("Namespace", { name: "c1" });
    await expect(provider("Namespace").create(c1)).rejects.toThrow(/network namespace c1 already exists/);
    expect(writes()).toEqual([]);
    const adopted = await provider("Namespace").create({ ...c1, adopt: true });
    expect(adopted.id).toBe("192.0.2.10:22/c1/");
    expect(writes()).toEqual([]);
    const c2 = await checked("Namespace", { name: "c2" });
    fake.on(["ip", "netns", "add", "c2"], {});
    await provider("Namespace").create(c2);
    expect(writes().map((c) => c.argv)).toEqual([["ip", "netns", "add", "c2"]]);
  });

  it("an empty `ip -j netns list` output (no namespaces at all) means none", async () => {
    fake.on(["ip", "-j", "netns", "list"], { stdout: "" });
    expect(await provider("Namespace").read("x", { connection: conn, name: "c1" })).toEqual({ id: "", props: {} });
  });

  it("delete refuses while devices are inside; succeeds when empty or gone", async () => {
    fake.on(["ip", "-j", "netns", "list"], list(["c1"]));
    fake.on(["ip", "-n", "c1", "-j", "link", "show"], { stdout: JSON.stringify([{ ifname: "lo" }, { ifname: "eth0" }]) });
    await expect(provider("Namespace").delete("x", { connection: conn, name: "c1" })).rejects.toThrow(/still holds eth0; refusing/);
    expect(writes()).toEqual([]);
    fake.on(["ip", "-n", "c1", "-j", "link", "show"], { stdout: JSON.stringify([{ ifname: "lo" }]) });
    fake.on(["ip", "netns", "del", "c1"], {});
    await provider("Namespace").delete("x", { connection: conn, name: "c1" });
    expect(writes().map((c) => c.argv)).toEqual([["ip", "netns", "del", "c1"]]);
    fake.calls.length = 0;
    fake.on(["ip", "-j", "netns", "list"], list([]));
    await provider("Namespace").delete("x", { connection: conn, name: "c1" });
    expect(writes()).toEqual([]);
  });
});
