// Reads that do not need a device's addresses (ReadOptions in provider/iproute/link.ts).
// Inside `ip -batch` an `addr show dev X` line makes the kernel dump every link and
// address of the namespace (batch mode is not strict), so its cost grows with the
// devices there; a `link show dev X` line reads one device. Reads that skip addresses
// go as `link show` lines. A create reads each device once, with addresses, to verify
// the add and the changes made with it.
import { afterEach, describe, expect, it } from "vitest";
import { setTransportFactory } from "../../provider/engine";
import { LINK_ONLY, type LinkJson, readLink } from "../../provider/iproute/link";
import { provider } from "../../provider/runtime";
import { runSteps } from "../../provider/steps";
import { FakeTransport } from "../../provider/transport/fake";
import { SshTransport } from "../../provider/transport/ssh";
import type { RunOptions, RunResult } from "../../provider/transport/types";

class BatchingFake extends FakeTransport {
  readonly batchKey = "fake-host#root";
}

interface Dev {
  ifindex: number;
  ifname: string;
  up: boolean;
  link?: string;
  master?: string;
  ifalias?: string;
  addrs: string[];
}

/** A tiny host: the `ip` lines a VethPair create sends, answered as iproute2 would. */
function simulatedHost(t: FakeTransport) {
  const devs = new Map<string, Dev>();
  let next = 10;
  const json = (d: Dev, withAddresses: boolean): LinkJson => ({
    ifindex: d.ifindex,
    ifname: d.ifname,
    flags: d.up ? ["BROADCAST", "MULTICAST", "UP"] : ["BROADCAST", "MULTICAST"],
    mtu: 1500,
    operstate: d.up ? "UP" : "DOWN",
    address: "02:00:00:00:00:01",
    ...(d.link ? { link: d.link } : {}),
    ...(d.master ? { master: d.master } : {}),
    ...(d.ifalias ? { ifalias: d.ifalias } : {}),
    linkinfo: { info_kind: "veth" },
    ...(withAddresses ? { addr_info: d.addrs.map((a) => ({ family: "inet", local: a.split("/")[0], prefixlen: Number(a.split("/")[1]), scope: "global" })) } : {}),
  });
  /** One batch line (or argv words after `ip [-j -d]`); stdout text or an error. */
  const line = (w: string[]): { out?: string; error?: string } => {
    const [obj, verb] = w;
    if (verb === "show") {
      const d = devs.get(w[3]);
      return d ? { out: JSON.stringify([json(d, obj === "addr")]) + "\n" } : { error: `Device "${w[3]}" does not exist.` };
    }
    if (obj === "link" && verb === "add") {
      const [a, b] = [w[3], w[w.indexOf("peer") + 2]];
      if (devs.has(a)) return { error: "RTNETLINK answers: File exists" };
      devs.set(a, { ifindex: next++, ifname: a, up: false, link: b, addrs: [] });
      devs.set(b, { ifindex: next++, ifname: b, up: false, link: a, addrs: [] });
      return {};
    }
    const d = devs.get(w.includes("dev") ? w[w.indexOf("dev") + 1] : "");
    if (!d) return { error: "Cannot find device" };
    if (obj === "addr" && verb === "add") d.addrs.push(w[2]);
    else if (obj === "link" && verb === "set") {
      const what = w[4];
      if (what === "up" || what === "down") d.up = what === "up";
      else if (what === "master") d.master = w[5];
      else if (what === "alias") d.ifalias = w[5] || undefined;
      else return { error: `unexpected ${w.join(" ")}` };
    } else return { error: `unexpected ${w.join(" ")}` };
    return {};
  };
  t.on(() => true, (argv: string[], o: RunOptions): Partial<RunResult> => {
    const words = (argv[1] === "-n" ? [argv[0], ...argv.slice(3)] : argv).filter((a) => a !== "-j" && a !== "-d" && a !== "-force");
    if (words[1] !== "-batch") {
      const r = line(words.slice(1));
      return r.error ? { code: 1, stderr: r.error + "\n" } : { stdout: r.out ?? "" };
    }
    // -force goes on past a failing line; without it the batch stops there.
    let stdout = "";
    let stderr = "";
    for (const [i, text] of (o.stdin ?? "").split("\n").filter(Boolean).entries()) {
      const r = line(text.split(" ").map((x) => (x === '""' ? "" : x)));
      stdout += r.out ?? "";
      if (!r.error) continue;
      stderr += `${r.error}\nCommand failed -:${i + 1}\n`;
      if (!argv.includes("-force")) break;
    }
    return { stdout, stderr, code: stderr ? 1 : 0 };
  });
  return devs;
}

/** Every read line the batches carried, and every standalone read. */
function reads(t: FakeTransport): string[] {
  return t.calls.flatMap((c) =>
    c.argv.includes("-batch") ? (c.stdin ?? "").split("\n").filter((l) => / show dev /.test(l)) : c.argv.includes("show") ? [c.argv.slice(c.argv.indexOf("show") - 1).join(" ")] : [],
  );
}

describe("reads that skip addresses", () => {
  afterEach(() => setTransportFactory((c) => new SshTransport(c)));

  it("waiting together, go as `link show dev X` lines; a device any caller wants addresses of is read with them, once", async () => {
    const t = new BatchingFake();
    simulatedHost(t).set("a", { ifindex: 3, ifname: "a", up: true, addrs: ["192.0.2.1/24"] }).set("b", { ifindex: 4, ifname: "b", up: true, addrs: [] });
    const [a, b, gone, aFull] = await Promise.all([readLink(t, "ns1", "a", LINK_ONLY), readLink(t, "ns1", "b", LINK_ONLY), readLink(t, "ns1", "zz", LINK_ONLY), readLink(t, "ns1", "a")]);
    expect(t.calls).toEqual([{ argv: ["ip", "-n", "ns1", "-j", "-d", "-force", "-batch", "-"], stdin: "addr show dev a\nlink show dev b\nlink show dev zz\n" }]);
    expect([a?.ifname, b?.ifname, gone, aFull?.addr_info?.[0]?.local]).toEqual(["a", "b", undefined, "192.0.2.1"]);
    expect(b?.addr_info).toBeUndefined();
  });

  it("ride along with the write batch before them as `link show dev X` lines", async () => {
    const t = new BatchingFake();
    simulatedHost(t).set("a", { ifindex: 3, ifname: "a", up: false, addrs: [] });
    const [[a], [other]] = await Promise.all([
      runSteps(t, [["ip", "link", "set", "dev", "a", "up"]], [{ namespace: undefined, name: "a", addresses: false }]),
      runSteps(t, [["ip", "addr", "add", "192.0.2.9/24", "dev", "a"]], [{ namespace: undefined, name: "a" }]),
    ]);
    expect(t.calls).toEqual([{ argv: ["ip", "-j", "-d", "-batch", "-"], stdin: "link set dev a up\nlink show dev a\naddr add 192.0.2.9/24 dev a\naddr show dev a\n" }]);
    expect([a?.flags.includes("UP"), a?.addr_info, other?.addr_info?.map((x) => x.local)]).toEqual([true, undefined, ["192.0.2.9"]]);
  });

  it("a VethPair create is one write with its read-back and one write clearing the marker, and ends as asked", async () => {
    const t = new BatchingFake();
    const devs = simulatedHost(t);
    setTransportFactory(() => t);
    const runtime = provider("VethPair");
    const n = 4;
    const outs = await Promise.all(
      Array.from({ length: n }, async (_, i) => {
        const { inputs, failures } = await runtime.check({}, { connection: { host: "192.0.2.10", privateKey: "unused" }, name: `v${i}`, peerName: `v${i}p`, master: "br0", addresses: [`198.18.0.${i + 1}/24`] });
        expect(failures).toEqual([]);
        return (await runtime.create(inputs)).outs;
      }),
    );
    for (let i = 0; i < n; i++) {
      expect(outs[i]).toMatchObject({ addresses: [`198.18.0.${i + 1}/24`], master: "br0", up: true, peerUp: true, peerAddresses: [] });
      expect(devs.get(`v${i}`)).toMatchObject({ up: true, master: "br0", addrs: [`198.18.0.${i + 1}/24`], ifalias: undefined });
      expect(devs.get(`v${i}p`)?.up).toBe(true);
    }
    // Per pair: no read before the add (it is exclusive), no read of the master's kind
    // (a new device is down, so enslaving it needs none), and one read of each end,
    // with addresses, to verify the add and its changes.
    expect(reads(t).sort()).toEqual(Array.from({ length: n }, (_, i) => [`addr show dev v${i}`, `addr show dev v${i}p`]).flat().sort());
    // The concurrent creates share their invocations: one for the adds, one for the markers.
    expect(t.calls.length).toBe(2);
    expect(t.calls[0].stdin).toMatch(/^link add name v0 type veth peer name v0p\nlink set dev v0 alias \S+\nlink set dev v0p up\nlink set dev v0 master br0\naddr add 198\.18\.0\.1\/24 dev v0\nlink set dev v0 up\naddr show dev v0\naddr show dev v0p\nlink add name v1 /);
    expect(t.calls[1].stdin).toBe(Array.from({ length: n }, (_, i) => `link set dev v${i} alias ""\n`).join(""));
  });
});
