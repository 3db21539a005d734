// check() helpers shared by the unit tests. check never contacts a host, so the
// connection is a documentation address that is never dialled.
import { expect } from "vitest";
import { resetDefaults, setTransportFactory } from "../../provider/engine";
import { provider } from "../../provider/runtime";
import { FakeTransport } from "../../provider/transport/fake";
import { SshTransport } from "../../provider/transport/ssh";

export const conn = { host: "192.0.2.10" };

/** Minimal valid inputs of each core kind. */
export const coreBase: Record<string, Record<string, unknown>> = {
  Bridge: { connection: conn, name: "br0" },
  TapDevice: { connection: conn, name: "tap0" },
  VethPair: { connection: conn, name: "ve0", peerName: "ve1" },
  Namespace: { connection: conn, name: "ns0" },
};

/** check() of a core kind: its minimal inputs with `extra` on top. */
export async function checkCore(kind: string, extra: Record<string, unknown>) {
  return provider(kind).check({}, { ...coreBase[kind], ...extra });
}

/**
 * check() of one kind over `base` with `extra` on top, and the two outcomes a test
 * expects: `accepted` (no failures; returns the checked inputs) and `rejected` (a
 * failure on `property`, whose reason contains `reasonPart` when given).
 */
export function kindChecks(kind: string, base: Record<string, unknown>) {
  const rt = provider(kind);
  async function check(extra: Record<string, unknown>) {
    return rt.check({}, { ...base, ...extra });
  }
  async function accepted(extra: Record<string, unknown>) {
    const r = await check(extra);
    expect(r.failures, JSON.stringify(extra)).toEqual([]);
    return r.inputs;
  }
  async function rejected(extra: Record<string, unknown>, property: string, reasonPart?: string) {
    const r = await check(extra);
    const f = r.failures.find((x) => x.property === property);
    expect(f, `${JSON.stringify(extra)} should fail on ${property}; got ${JSON.stringify(r.failures)}`).toBeDefined();
    if (reasonPart) expect(f!.reason).toContain(reasonPart);
    return f!;
  }
  return { check, accepted, rejected };
}

/** A fresh scripted transport that every runtime in this process uses until restoreTransport(). */
export function installFake(label = conn.host): FakeTransport {
  const fake = new FakeTransport(label);
  setTransportFactory(() => fake);
  return fake;
}

/**
 * What the kernel answers an `ip [-n ns] -batch -` whose first line is a `link add`
 * of a taken name (NLM_F_EXCL): nothing changes. A create tries the add first and
 * reads what is there only then.
 */
export function refuseAdds(fake: FakeTransport, prefix: string[] = ["ip"]): FakeTransport {
  return fake.on([...prefix, "-batch", "-"], { code: 1, stderr: "RTNETLINK answers: File exists\nCommand failed -:1\n" });
}

/** Back to the SSH transport and no stack-config defaults (afterEach of tests that used installFake). */
export function restoreTransport(): void {
  setTransportFactory((c) => new SshTransport(c));
  resetDefaults();
}
