// Secrets of a connection are masked in every message, whatever their length.
import { describe, expect, it } from "vitest";
import { redact } from "../../provider/transport/redact";

describe("redact", () => {
  it("masks passwords, passphrases and sudo passwords of any length, on the bastion chain too", () => {
    const c = { host: "h", password: "pw", passphrase: "q", sudo: { password: "s3c" }, bastion: { host: "j", password: "b4" } };
    expect(redact('sudo: Command "s3c" is unknown; login pw failed; key q; jump b4', c)).toBe('sudo: Command "***" is unknown; login *** failed; key ***; jump ***');
  });

  it("masks a private key whole and line by line, longest first", () => {
    const key = "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAAB3Nza\nC1yc2EAAA\n-----END OPENSSH PRIVATE KEY-----\n";
    const c = { host: "h", privateKey: key, password: "AAAAB3Nza-longer" };
    expect(redact(`bad key ${key} line C1yc2EAAA and AAAAB3Nza-longer`, c)).toBe("bad key *** line *** and ***");
  });

  it("leaves a message without secrets alone", () => {
    expect(redact("10.0.0.1: `ip link show` failed", { host: "10.0.0.1", password: "" })).toBe("10.0.0.1: `ip link show` failed");
  });
});
