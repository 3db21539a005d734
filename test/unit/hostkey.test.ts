// Host-key trust: fingerprints as OpenSSH prints them, known_hosts matching (plain,
// [host]:port, hashed, markers), and refusal messages that say how to pin.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { checkKnownHosts, fingerprint, verifyHostKey } from "../../provider/transport/hostkey";

let dir: string;
interface Key { line: string; type: string; b64: string; blob: Buffer; keygenFp: string }
const keys: Record<string, Key> = {};

function keygen(name: string, type: string): Key {
  const path = join(dir, name);
  execFileSync("ssh-keygen", ["-q", "-t", type, "-N", "", "-C", name, "-f", path]);
  const line = readFileSync(`${path}.pub`, "utf8").trim();
  const [keyType, b64] = line.split(" ");
  const keygenFp = execFileSync("ssh-keygen", ["-l", "-E", "sha256", "-f", `${path}.pub`]).toString().split(" ")[1];
  return { line, type: keyType, b64, blob: Buffer.from(b64, "base64"), keygenFp };
}

/** A known_hosts file hashed by ssh-keygen itself. */
function hashed(text: string): string {
  const path = join(dir, `kh-${Math.random().toString(36).slice(2)}`);
  writeFileSync(path, text);
  execFileSync("ssh-keygen", ["-H", "-f", path], { stdio: "pipe" });
  return readFileSync(path, "utf8");
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "netdev-hostkey-"));
  keys.host = keygen("host", "ed25519");
  keys.other = keygen("other", "ed25519");
  keys.ecdsa = keygen("ecdsa", "ecdsa");
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const entry = (hosts: string, k: Key) => `${hosts} ${k.type} ${k.b64}`;

describe("fingerprint", () => {
  it("equals what ssh-keygen -lf prints", () => {
    for (const k of Object.values(keys)) {
      expect(k.keygenFp).toMatch(/^SHA256:[A-Za-z0-9+/]{43}$/);
      expect(fingerprint(k.blob)).toBe(k.keygenFp);
    }
    expect(fingerprint(keys.host.blob)).not.toBe(fingerprint(keys.other.blob));
  });
});

describe("checkKnownHosts", () => {
  it("plain host names and addresses, in comma lists, with wildcards", () => {
    expect(checkKnownHosts(entry("host.example", keys.host), "host.example", 22, keys.host.blob)).toBe("match");
    expect(checkKnownHosts(entry("192.0.2.1,host.example", keys.host), "192.0.2.1", 22, keys.host.blob)).toBe("match");
    expect(checkKnownHosts(entry("*.example", keys.host), "a.example", 22, keys.host.blob)).toBe("match");
    expect(checkKnownHosts(entry("192.0.2.?", keys.host), "192.0.2.7", 22, keys.host.blob)).toBe("match");
    expect(checkKnownHosts(entry("192.0.2.?", keys.host), "192.0.2.17", 22, keys.host.blob)).toBe("unknown");
    expect(checkKnownHosts(entry("host.example", keys.host), "host-example", 22, keys.host.blob)).toBe("unknown");
    expect(checkKnownHosts(entry("hostXexample", keys.host), "host.example", 22, keys.host.blob)).toBe("unknown");
    expect(checkKnownHosts(entry("!bad.example,*.example", keys.host), "bad.example", 22, keys.host.blob)).toBe("unknown");
  });

  it("[host]:port entries match only that port; plain entries only port 22", () => {
    const text = entry("[192.0.2.1]:2222", keys.host);
    expect(checkKnownHosts(text, "192.0.2.1", 2222, keys.host.blob)).toBe("match");
    expect(checkKnownHosts(text, "192.0.2.1", 22, keys.host.blob)).toBe("unknown");
    expect(checkKnownHosts(text, "192.0.2.1", 2223, keys.host.blob)).toBe("unknown");
    expect(checkKnownHosts(entry("[127.0.0.1]:40022,[localhost]:40022", keys.host), "localhost", 40022, keys.host.blob)).toBe("match");
    expect(checkKnownHosts(entry("192.0.2.1", keys.host), "192.0.2.1", 2222, keys.host.blob)).toBe("unknown");
    // The brackets are literal, not a character class.
    expect(checkKnownHosts(entry("[192.0.2.1]:2222", keys.host), "1", 2222, keys.host.blob)).toBe("unknown");
    expect(checkKnownHosts(entry("[2001:db8::1]:2222", keys.host), "2001:db8::1", 2222, keys.host.blob)).toBe("match");
  });

  it("hashed entries written by ssh-keygen -H", () => {
    const text = hashed([entry("host.example", keys.host), entry("[192.0.2.1]:2222", keys.host), entry("198.51.100.1", keys.other)].join("\n") + "\n");
    expect(text).toMatch(/^\|1\|/);
    expect(text).not.toContain("host.example");
    expect(checkKnownHosts(text, "host.example", 22, keys.host.blob)).toBe("match");
    expect(checkKnownHosts(text, "192.0.2.1", 2222, keys.host.blob)).toBe("match");
    expect(checkKnownHosts(text, "192.0.2.1", 22, keys.host.blob)).toBe("unknown");
    expect(checkKnownHosts(text, "other.example", 22, keys.host.blob)).toBe("unknown");
    expect(checkKnownHosts(text, "198.51.100.1", 22, keys.host.blob)).toBe("mismatch");
  });

  it("another key of the same type listed for the host is a mismatch; another type only is unknown", () => {
    expect(checkKnownHosts(entry("host.example", keys.other), "host.example", 22, keys.host.blob)).toBe("mismatch");
    expect(checkKnownHosts(entry("host.example", keys.ecdsa), "host.example", 22, keys.host.blob)).toBe("unknown");
    const both = [entry("host.example", keys.other), entry("host.example", keys.host)].join("\n");
    expect(checkKnownHosts(both, "host.example", 22, keys.host.blob)).toBe("match");
  });

  it("@revoked wins wherever it is; @cert-authority lines, comments and blanks are not host keys", () => {
    const revoked = `@revoked host.example ${keys.host.type} ${keys.host.b64}`;
    expect(checkKnownHosts(revoked, "host.example", 22, keys.host.blob)).toBe("revoked");
    expect(checkKnownHosts([revoked, entry("host.example", keys.host)].join("\n"), "host.example", 22, keys.host.blob)).toBe("revoked");
    expect(checkKnownHosts([entry("host.example", keys.host), revoked].join("\n"), "host.example", 22, keys.host.blob)).toBe("revoked");
    expect(checkKnownHosts(`@revoked * ${keys.other.type} ${keys.other.b64}\n${entry("host.example", keys.host)}`, "host.example", 22, keys.host.blob)).toBe("match");
    expect(checkKnownHosts(`@cert-authority host.example ${keys.host.type} ${keys.host.b64}`, "host.example", 22, keys.host.blob)).toBe("unknown");
    expect(checkKnownHosts(`# host.example ${keys.host.type} ${keys.host.b64}\n\n   \n`, "host.example", 22, keys.host.blob)).toBe("unknown");
    expect(checkKnownHosts("", "host.example", 22, keys.host.blob)).toBe("unknown");
  });
});

describe("verifyHostKey", () => {
  const label = "192.0.2.1";

  it("a pinned fingerprint (with or without padding) is trusted; any other key is refused naming both", () => {
    const fp = keys.host.keygenFp;
    expect(verifyHostKey(label, "192.0.2.1", 22, keys.host.blob, { hostKey: fp })).toBeUndefined();
    expect(verifyHostKey(label, "192.0.2.1", 22, keys.host.blob, { hostKey: fp + "=" })).toBeUndefined();
    const msg = verifyHostKey(label, "192.0.2.1", 22, keys.other.blob, { hostKey: fp })!;
    expect(msg).toContain(keys.other.keygenFp);
    expect(msg).toContain(fp);
    expect(msg).toContain("connection.hostKey");
    expect(msg).toMatch(/Refusing to connect/);
  });

  it("a pin is not overridden by known_hosts", () => {
    const kh = join(dir, "kh-pin");
    writeFileSync(kh, entry("192.0.2.1", keys.other) + "\n");
    expect(verifyHostKey(label, "192.0.2.1", 22, keys.other.blob, { hostKey: keys.host.keygenFp, knownHostsPath: kh })).toContain("does not match the pinned connection.hostKey");
  });

  it("known_hosts: match trusted; unknown, mismatch and revoked refused with the fingerprint", () => {
    const kh = join(dir, "kh-verify");
    writeFileSync(kh, [entry("192.0.2.1", keys.host), entry("[192.0.2.2]:2222", keys.other), `@revoked 192.0.2.3 ${keys.host.type} ${keys.host.b64}`].join("\n") + "\n");
    expect(verifyHostKey(label, "192.0.2.1", 22, keys.host.blob, { knownHostsPath: kh })).toBeUndefined();
    expect(verifyHostKey(label, "192.0.2.2", 2222, keys.other.blob, { knownHostsPath: kh })).toBeUndefined();

    const unknown = verifyHostKey(label, "192.0.2.9", 22, keys.host.blob, { knownHostsPath: kh })!;
    expect(unknown).toContain(`unknown host key ${keys.host.keygenFp}`);
    expect(unknown).toContain(`connection.hostKey to "${keys.host.keygenFp}"`);
    expect(unknown).toContain(kh);
    expect(unknown).toContain("ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub");

    const mismatch = verifyHostKey(label, "192.0.2.2", 2222, keys.host.blob, { knownHostsPath: kh })!;
    expect(mismatch).toContain(keys.host.keygenFp);
    expect(mismatch).toContain("differs from the key listed");
    expect(mismatch).toContain("connection.hostKey");

    const revoked = verifyHostKey(label, "192.0.2.3", 22, keys.host.blob, { knownHostsPath: kh })!;
    expect(revoked).toContain(keys.host.keygenFp);
    expect(revoked).toContain("@revoked");
    expect(revoked).not.toContain("To trust it");
  });

  it("a missing known_hosts file means nothing is known", () => {
    const msg = verifyHostKey(label, "192.0.2.1", 22, keys.ecdsa.blob, { knownHostsPath: join(dir, "does-not-exist") })!;
    expect(msg).toContain(keys.ecdsa.keygenFp);
    expect(msg).toContain("connection.hostKey");
    expect(keys.ecdsa.type).toBe("ecdsa-sha2-nistp256");
    expect(msg).toContain("ssh-keygen -lf /etc/ssh/ssh_host_ecdsa_key.pub");
  });

  it("insecureSkipHostKeyCheck trusts anything", () => {
    expect(verifyHostKey(label, "192.0.2.1", 22, keys.other.blob, { insecureSkipHostKeyCheck: true, hostKey: keys.host.keygenFp })).toBeUndefined();
  });
});
