// Connection settings: stack-config decoding, precedence, pool keys and labels.
import { afterEach, describe, expect, it } from "vitest";
import { connectionDefaultsFromConfig, connectionKey, connectionLabel, mergeConnection } from "../../provider/connection";
import { poolKey } from "../../provider/transport/pool";
import { configureDefaults, resetDefaults, resolveConnection } from "../../provider/engine";
import { NetdevError } from "../../provider/errors";

const config = (entries: Record<string, string>) => (k: string) => entries[k];

describe("connectionDefaultsFromConfig", () => {
  it("decodes numbers, booleans and JSON objects; keeps strings as given", () => {
    const get = config({
      "netdev:host": "192.0.2.10",
      "netdev:port": "2222",
      "netdev:user": "admin",
      "netdev:privateKey": "-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n-----END OPENSSH PRIVATE KEY-----\n",
      "netdev:privateKeyPath": "/home/u/.ssh/id_ed25519",
      "netdev:passphrase": "true",
      "netdev:password": "{not-json",
      "netdev:agent": "false",
      "netdev:hostKey": "SHA256:" + "A".repeat(43),
      "netdev:knownHostsPath": "/tmp/kh",
      "netdev:insecureSkipHostKeyCheck": "true",
      "netdev:sudo": '{"password":"pw"}',
      "netdev:connectTimeoutMs": "5000",
      "netdev:commandTimeoutMs": "30000",
      "netdev:keepaliveIntervalMs": "0",
      "netdev:bastion": '{"host":"198.51.100.1","port":2200,"user":"jump"}',
    });
    expect(connectionDefaultsFromConfig(get)).toEqual({
      host: "192.0.2.10",
      port: 2222,
      user: "admin",
      privateKey: "-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n-----END OPENSSH PRIVATE KEY-----\n",
      privateKeyPath: "/home/u/.ssh/id_ed25519",
      passphrase: "true", // a secret is never reinterpreted
      password: "{not-json",
      agent: false,
      hostKey: "SHA256:" + "A".repeat(43),
      knownHostsPath: "/tmp/kh",
      insecureSkipHostKeyCheck: true,
      sudo: { password: "pw" },
      connectTimeoutMs: 5000,
      commandTimeoutMs: 30000,
      keepaliveIntervalMs: 0,
      bastion: { host: "198.51.100.1", port: 2200, user: "jump" },
    });
  });

  it("only netdev: keys it knows; absent keys stay absent", () => {
    expect(connectionDefaultsFromConfig(config({ host: "x", "netdev:colour": "blue", "other:host": "y" }))).toEqual({});
    expect(connectionDefaultsFromConfig(config({ "netdev:host": "h" }))).toEqual({ host: "h" });
  });

  it("values it cannot decode are kept, so check reports them", () => {
    expect(connectionDefaultsFromConfig(config({
      "netdev:port": "22x", "netdev:sudo": "true", "netdev:agent": "/run/agent.sock", "netdev:insecureSkipHostKeyCheck": "yes", "netdev:bastion": "{broken",
    }))).toEqual({ port: "22x", sudo: true, agent: "/run/agent.sock", insecureSkipHostKeyCheck: "yes", bastion: "{broken" });
  });
});

describe("commandTimeoutMs and keepaliveIntervalMs", () => {
  afterEach(() => resetDefaults());
  it("are accepted in range, from the resource or from stack config, and refused with the field named", () => {
    expect(resolveConnection({ host: "h", commandTimeoutMs: 3000, keepaliveIntervalMs: 1000 })).toMatchObject({ commandTimeoutMs: 3000, keepaliveIntervalMs: 1000 });
    configureDefaults(config({ "netdev:commandTimeoutMs": "120000", "netdev:keepaliveIntervalMs": "0" }));
    expect(resolveConnection({ host: "h" })).toMatchObject({ commandTimeoutMs: 120000, keepaliveIntervalMs: 0 });
    expect(() => resolveConnection({ host: "h", commandTimeoutMs: 10 })).toThrow(/connection\.commandTimeoutMs/);
    expect(() => resolveConnection({ host: "h", keepaliveIntervalMs: -1 })).toThrow(/connection\.keepaliveIntervalMs/);
  });
});

describe("mergeConnection", () => {
  it("the resource's fields win; its undefined fields do not erase defaults", () => {
    const defaults = { host: "192.0.2.10", port: 2222, user: "root", privateKey: "K", sudo: true as const };
    expect(mergeConnection(defaults, { host: "192.0.2.11", port: undefined, user: "admin", sudo: false })).toEqual({
      host: "192.0.2.11", port: 2222, user: "admin", privateKey: "K", sudo: false,
    });
    expect(mergeConnection(defaults, undefined)).toEqual(defaults);
    expect(mergeConnection(defaults, undefined)).not.toBe(defaults);
    expect(mergeConnection({}, { host: "h" })).toEqual({ host: "h" });
    expect(defaults).toEqual({ host: "192.0.2.10", port: 2222, user: "root", privateKey: "K", sudo: true });
  });

  it("a resource's bastion replaces the default one as a whole", () => {
    expect(mergeConnection({ host: "t", bastion: { host: "j1", user: "a" } }, { bastion: { host: "j2" } })).toEqual({ host: "t", bastion: { host: "j2" } });
  });
});

describe("resolveConnection (stack defaults + resource)", () => {
  afterEach(() => resetDefaults());

  it("merges and validates", () => {
    configureDefaults(config({ "netdev:host": "192.0.2.10", "netdev:port": "2222", "netdev:privateKey": "K" }));
    expect(resolveConnection({ user: "admin" })).toEqual({ host: "192.0.2.10", port: 2222, user: "admin", privateKey: "K" });
    expect(resolveConnection(undefined)).toEqual({ host: "192.0.2.10", port: 2222, privateKey: "K" });
    expect(resolveConnection({ host: "192.0.2.11", port: 22 })).toMatchObject({ host: "192.0.2.11", port: 22 });
  });

  it("names the bad field and the config key, never a secret", () => {
    expect(() => resolveConnection({ privateKey: "SECRET-123" })).toThrow(NetdevError);
    expect(() => resolveConnection({ privateKey: "SECRET-123" })).toThrow(/connection\.host: .*netdev:host/);
    configureDefaults(config({ "netdev:host": "h", "netdev:port": "22x" }));
    expect(() => resolveConnection({})).toThrow(/connection\.port: .*netdev:port in stack config/);
    resetDefaults();
    configureDefaults(config({ "netdev:host": "h", "netdev:sudo": '{"password":"SECRET-456","x":1}' }));
    const err = (() => {
      try {
        resolveConnection({ password: 789 as unknown as string });
      } catch (e) {
        return e as Error;
      }
    })();
    expect(err).toBeInstanceOf(NetdevError);
    expect(err!.message).not.toMatch(/SECRET-456|789/);
    resetDefaults();
    expect(() => resolveConnection({ host: "h", bastion: { user: "jump" } as never })).toThrow(/connection\.bastion\.host/);
  });
});

describe("connectionKey", () => {
  it("key: user@host:port with defaults, and the whole bastion chain; never credentials", () => {
    expect(connectionKey({ host: "192.0.2.10" })).toBe("root@192.0.2.10:22");
    const chained = { host: "10.0.0.5", user: "admin", port: 2222, bastion: { host: "192.0.2.2", user: "ops", port: 2200, bastion: { host: "192.0.2.1" } } };
    expect(connectionKey(chained)).toBe("root@192.0.2.1:22>ops@192.0.2.2:2200>admin@10.0.0.5:2222");
    expect(connectionKey({ host: "h", password: "SECRET-P", sudo: { password: "SECRET-S" }, bastion: { host: "j", password: "SECRET-B" } })).toBe("root@j:22>root@h:22");
  });
});

describe("poolKey and connectionLabel", () => {
  const strip = (key: string) => key.replace(/#[0-9a-f]{16}/g, "");
  it("pool key: user@host:port with defaults, and the whole bastion chain", () => {
    expect(strip(poolKey({ host: "192.0.2.10" }))).toBe("root@192.0.2.10:22");
    expect(strip(poolKey({ host: "192.0.2.10", user: "admin", port: 2222 }))).toBe("admin@192.0.2.10:2222");
    const chained = { host: "10.0.0.5", user: "admin", port: 2222, bastion: { host: "192.0.2.2", user: "ops", port: 2200, bastion: { host: "192.0.2.1" } } };
    expect(strip(poolKey(chained))).toBe("root@192.0.2.1:22>ops@192.0.2.2:2200>admin@10.0.0.5:2222");
    expect(strip(poolKey({ ...chained, bastion: { host: "192.0.2.3" } }))).toBe("root@192.0.2.3:22>admin@10.0.0.5:2222");
    expect(strip(poolKey({ ...chained, bastion: undefined }))).toBe("admin@10.0.0.5:2222");
  });

  it("pool key never contains credentials, but differs when they do (a wrong password never rides an authenticated connection)", () => {
    const c = { host: "h", privateKey: "SECRET-K", password: "SECRET-P", passphrase: "SECRET-Q", sudo: { password: "SECRET-S" }, bastion: { host: "j", password: "SECRET-B" } };
    expect(poolKey(c)).not.toMatch(/SECRET/);
    expect(poolKey({ ...c, password: "other" })).not.toBe(poolKey(c));
    expect(poolKey({ ...c, bastion: { host: "j", password: "other" } })).not.toBe(poolKey(c));
    // Timeouts, keepalives and sudo are not part of the connection's identity.
    expect(poolKey({ ...c, commandTimeoutMs: 5000, keepaliveIntervalMs: 0, sudo: true })).toBe(poolKey(c));
  });

  it("label: host, with the port only when it is not 22", () => {
    expect(connectionLabel({ host: "192.0.2.10" })).toBe("192.0.2.10");
    expect(connectionLabel({ host: "192.0.2.10", port: 22 })).toBe("192.0.2.10");
    expect(connectionLabel({ host: "192.0.2.10", port: 2222 })).toBe("192.0.2.10:2222");
  });
});
