// Every example project under examples/ type-checks against the BUILT package and runs
// as a Pulumi program: under mocks, with each registration validated by the real
// provider host's Check (which never contacts a host). Needs `npx tsc -p tsconfig.json`
// first. The device work itself is exercised by test/host/core-kinds-host.test.ts.
import * as fs from "node:fs";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { assertBuilt, compileExample, exampleDir, type Engine, listExamples, projectName, runExample, stackConfig, stageExample } from "../support/examples";
import { type ProviderHost, startProviderHost } from "../support/provider-host";

/** What each example must register (class → count), and a few stack outputs it must export. */
const EXPECTED: Record<string, { resources: Record<string, number>; exports: string[]; config?: Record<string, string> }> = {
  "kvm-bridge-tap": {
    resources: { Bridge: 1, TapDevice: 3 },
    exports: ["bridgeIfindex", "tapNames"],
    config: { "kvm-bridge-tap:guests": JSON.stringify(["web", "db", "ci"]) },
  },
  "kvm-host-bridge": {
    resources: { Bridge: 1, Interface: 1, TapDevice: 2 },
    exports: ["bridgeIfindex", "movedAddresses", "tapNames"],
    config: { "kvm-host-bridge:uplink": "enp1s0" },
  },
  "container-veth-netns": {
    resources: { Bridge: 1, Namespace: 2, VethPair: 2 },
    exports: ["bridgeIfindex", "containerNetworks"],
    config: { "container-veth-netns:namespacePrefix": "demo-" },
  },
  "macvtap-vm": {
    resources: { MacvtapLink: 1 },
    exports: ["tapDevicePath"],
    config: { "macvtap-vm:parent": "enp1s0" },
  },
  "vlan-on-bond": {
    resources: { Bond: 1, Vlan: 2 },
    exports: ["bondIfindex", "vlanInterfaces"],
    config: { "vlan-on-bond:nics": JSON.stringify(["ens3", "ens4"]) },
  },
  "vxlan-fabric": {
    resources: { Bridge: 3, Vxlan: 3, Namespace: 3, VethPair: 3 },
    exports: ["fabricHosts", "endpoints", "mtu"],
    config: {
      "vxlan-fabric:hosts": JSON.stringify(
        [1, 2, 3].map((i) => ({ name: `node${i}`, host: `203.0.113.1${i}`, hostKey: "SHA256:" + "A".repeat(43), endpoint: `192.0.2.${i}/24` })),
      ),
    },
  },
};

/** Examples whose resources each name their own host (several hosts), so the connection is per resource. */
const MULTI_HOST = new Set(["vxlan-fabric"]);

/** Connection keys the provider reads from stack config (provider/connection.ts). */
const NETDEV_KEYS = ["host", "port", "user", "privateKey", "privateKeyPath", "passphrase", "password", "agent", "hostKey", "knownHostsPath", "insecureSkipHostKeyCheck", "sudo", "connectTimeoutMs", "bastion"];

const TYPE_PREFIX = "pulumi-nodejs:dynamic/netdev:";
const examples = listExamples();
const compiled = new Map<string, { ok: boolean; output: string; ms: number }>();
const staged = new Map<string, string>();

beforeAll(async () => {
  assertBuilt();
  // Built and run in staged copies: nothing is ever written into examples/.
  for (const x of examples) staged.set(x, stageExample(x));
  const t0 = Date.now();
  const results = await Promise.all(examples.map((x) => compileExample(staged.get(x)!)));
  examples.forEach((x, i) => compiled.set(x, results[i]));
  console.log(`type-checked ${examples.length} examples in ${Date.now() - t0} ms: ${examples.map((x) => `${x} ${compiled.get(x)!.ms} ms`).join(", ")}`);
});

describe("example projects", () => {
  it("are exactly the expected ones, each a complete Pulumi project", () => {
    expect(examples).toEqual(Object.keys(EXPECTED).sort());
    for (const x of examples) {
      const dir = exampleDir(x);
      expect(projectName(dir)).toBe(x);
      expect(fs.readFileSync(path.join(dir, "Pulumi.yaml"), "utf8")).toMatch(/^runtime: nodejs$/m);
      expect(fs.readFileSync(path.join(dir, "Pulumi.yaml"), "utf8")).toMatch(/^description: \S/m);
      const pkg = JSON.parse(fs.readFileSync(path.join(dir, "package.json"), "utf8"));
      // Installed by name, as users do; the provider host resolves pulumi-netdev/runtime from here.
      expect(pkg.dependencies).toMatchObject({ "pulumi-netdev": "file:../..", "@pulumi/pulumi": expect.any(String) });
      expect(fs.readFileSync(path.join(dir, "index.ts"), "utf8")).toContain('import * as netdev from "pulumi-netdev";');
      expect(JSON.parse(fs.readFileSync(path.join(dir, "tsconfig.json"), "utf8")).compilerOptions.outDir).toBe("bin");
      // `npm install` must copy pulumi-netdev, not link the repo (whose own @pulumi/pulumi would load twice).
      expect(fs.readFileSync(path.join(dir, ".npmrc"), "utf8")).toMatch(/^install-links=true$/m);
    }
  });

  it("show the connection as stack config with placeholder values only", () => {
    for (const x of examples) {
      const cfg = stackConfig(exampleDir(x));
      const netdevKeys = Object.keys(cfg).filter((k) => k.startsWith("netdev:"));
      for (const k of netdevKeys) expect(NETDEV_KEYS, `${x}: ${k}`).toContain(k.slice("netdev:".length));
      // A copied example must never point at somebody's real machine: RFC 5737 documentation range.
      const documentationHost = /^(192\.0\.2|198\.51\.100|203\.0\.113)\.\d+$/;
      if (MULTI_HOST.has(x)) {
        const raw = fs.readFileSync(path.join(exampleDir(x), "Pulumi.dev.yaml"), "utf8");
        const hosts = [...raw.matchAll(/^\s+host: (\S+)$/gm)].map((m) => m[1]);
        expect(hosts.length, x).toBeGreaterThan(1);
        for (const h of hosts) expect(h, x).toMatch(documentationHost);
        continue;
      }
      expect(netdevKeys, x).toEqual(expect.arrayContaining(["netdev:host", "netdev:user", "netdev:hostKey"]));
      expect(cfg["netdev:host"], x).toMatch(documentationHost);
      for (const k of Object.keys(cfg).filter((k) => !k.startsWith("netdev:"))) expect(k.startsWith(`${x}:`), `${x}: ${k}`).toBe(true);
    }
  });

  it("type-check against the built SDK (tsc)", () => {
    const failed = examples.filter((x) => !compiled.get(x)!.ok);
    const report = failed.map((x) => `${x}:\n${compiled.get(x)!.output}`).join("\n\n");
    expect(failed, `examples that do not type-check (missing kinds in the SDK?):\n${report}`).toEqual([]);
  });

  for (const x of Object.keys(EXPECTED)) {
    describe(x, () => {
      let host: ProviderHost | undefined;
      afterAll(async () => {
        await host?.stop();
      });

      it("runs under mocks; the provider host's Check accepts every resource", async () => {
        const c = compiled.get(x);
        if (!c?.ok) throw new Error(`${x} could not be type-checked, so it was not run:\n${c?.output ?? "missing"}`);
        const dir = staged.get(x)!;
        const expected = EXPECTED[x];
        host = await startProviderHost({ cwd: dir, env: { PULUMI_NODEJS_PROJECT: x } });
        // The stack's own connection config (placeholders: Check never contacts the host).
        const netdevConfig = Object.fromEntries(Object.entries(stackConfig(dir)).filter(([k, v]) => k.startsWith("netdev:") && v !== undefined)) as Record<string, string>;
        await host.configure(netdevConfig);

        const checks: { name: string; failures: unknown[] }[] = [];
        const engine: Engine = async (reg) => {
          if (!reg.type.startsWith(TYPE_PREFIX)) return { id: "", state: {} }; // a component: nothing to check
          const checked = await host!.check(reg.urn, {}, reg.inputs);
          checks.push({ name: reg.name, failures: checked.failures });
          return { id: `${reg.name}-id`, state: checked.inputs };
        };
        const t0 = Date.now();
        const run = await runExample(dir, { config: expected.config, engine });
        console.log(`${x}: ran under mocks with ${run.registrations.length} Check calls in ${Date.now() - t0} ms`);

        expect(checks.filter((c) => c.failures.length > 0)).toEqual([]);
        const counts: Record<string, number> = {};
        // Components (VxlanFabric) group resources; only custom resources reach the provider.
        const custom = run.registrations.filter((r) => r.custom);
        for (const r of custom) {
          expect(r.type.startsWith(TYPE_PREFIX), r.type).toBe(true);
          const cls = r.type.slice(TYPE_PREFIX.length);
          counts[cls] = (counts[cls] ?? 0) + 1;
          expect(r.custom).toBe(true);
          // The hand-written shim: requires the runtime by its stable subpath, for this class.
          expect(r.inputs.__provider).toBe(`exports.handler=function(){return require("pulumi-netdev/runtime").provider(${JSON.stringify(cls)})};`);
          // Single-host examples rely on stack config for the connection…
          if (!MULTI_HOST.has(x)) expect(r.inputs.connection).toBeUndefined();
          else expect(Object.keys(r.inputs.connection).sort()).toEqual(["host", "hostKey"]);
          // …and the SDK keeps any connection a secret in state.
          expect(r.additionalSecretOutputs).toContain("connection");
        }
        expect(counts).toEqual(expected.resources);
        expect(run.exportNames).toEqual(expect.arrayContaining(expected.exports));
        expectWiring(x, run);
      });
    });
  }
});

/** Per example: config was read, and resources that name another one depend on it. */
function expectWiring(x: string, run: Awaited<ReturnType<typeof runExample>>) {
  const of = (cls: string) => run.registrations.filter((r) => r.type === TYPE_PREFIX + cls);
  const dependsOn = (r: { dependencies: string[] }, on: { urn: string }) => expect(r.dependencies).toContain(on.urn);
  switch (x) {
    case "kvm-bridge-tap": {
      const [br] = of("Bridge");
      expect(of("TapDevice").map((t) => t.inputs.name).sort()).toEqual(["tap-ci", "tap-db", "tap-web"]);
      for (const t of of("TapDevice")) {
        expect(t.inputs).toMatchObject({ mode: "tap", vnetHdr: true, multiQueue: true, master: br.inputs.name });
        dependsOn(t, br);
      }
      expect(run.outputs.tapNames).toEqual(["tap-web", "tap-db", "tap-ci"]);
      break;
    }
    case "container-veth-netns": {
      const [br] = of("Bridge");
      const nss = of("Namespace");
      expect(nss.map((n) => n.inputs.name).sort()).toEqual(["demo-ct1", "demo-ct2"]);
      for (const v of of("VethPair")) {
        const ns = nss.find((n) => n.inputs.name === v.inputs.peerNamespace)!;
        expect(ns, v.name).toBeDefined();
        expect(v.inputs).toMatchObject({ peerName: "eth0", master: br.inputs.name });
        expect(v.inputs.peerAddresses).toHaveLength(1);
        dependsOn(v, br);
        dependsOn(v, ns);
      }
      expect(run.outputs.containerNetworks.map((c: any) => c.namespace)).toEqual(["demo-ct1", "demo-ct2"]);
      break;
    }
    case "macvtap-vm": {
      const [m] = of("MacvtapLink");
      expect(m.inputs).toMatchObject({ parent: "enp1s0", mode: "bridge" });
      break;
    }
    case "kvm-host-bridge": {
      const [br] = of("Bridge");
      const [nic] = of("Interface");
      expect(br.inputs).toMatchObject({ name: "br0", vlanFiltering: true, vlans: [{ vid: 1, pvid: true, untagged: true }] });
      expect(nic.inputs).toMatchObject({ name: "enp1s0", master: "br0", moveAddresses: true, bridgePort: { vlans: [{ vid: 1, pvid: true, untagged: true }, { vid: 10 }, { vid: 20 }] } });
      dependsOn(nic, br);
      for (const t of of("TapDevice")) {
        expect(t.inputs.master).toBe("br0");
        dependsOn(t, br);
      }
      expect(of("TapDevice").map((t) => t.inputs.bridgePort.vlans)).toEqual([[{ vid: 10, pvid: true, untagged: true }], [{ vid: 20, pvid: true, untagged: true }]]);
      break;
    }
    case "vlan-on-bond": {
      const [bond] = of("Bond");
      expect(bond.inputs).toMatchObject({ mode: "active-backup", slaves: ["ens3", "ens4"], primary: "ens3" });
      for (const v of of("Vlan")) {
        expect(v.inputs.parent).toBe(bond.inputs.name);
        expect(v.inputs.name).toBe(`${bond.inputs.name}.${v.inputs.vlanId}`);
        dependsOn(v, bond);
      }
      expect(of("Vlan").map((v) => v.inputs.vlanId).sort()).toEqual([10, 20]);
      break;
    }
    case "vxlan-fabric": {
      const bridges = of("Bridge");
      const vxlans = of("Vxlan");
      const addresses = ["203.0.113.11", "203.0.113.12", "203.0.113.13"];
      for (const vx of vxlans) {
        const host = vx.inputs.connection.host;
        const br = bridges.find((b) => b.inputs.connection.host === host)!;
        expect(vx.inputs).toMatchObject({ vni: 42, local: host, learning: false, dstPort: 4789, master: br.inputs.name, mtu: 1450 });
        // Head-end replication to every other host, never to itself.
        expect(vx.inputs.remotes).toEqual(addresses.filter((a) => a !== host));
        dependsOn(vx, br);
      }
      for (const v of of("VethPair")) {
        const br = bridges.find((b) => b.inputs.connection.host === v.inputs.connection.host)!;
        expect(v.inputs).toMatchObject({ peerName: "eth0", master: br.inputs.name, peerMtu: 1450 });
        dependsOn(v, br);
      }
      break;
    }
  }
}
