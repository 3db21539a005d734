// Which commands are run again when the pooled connection they went out on turns
// out to be dead: exactly those their caller marked idempotent (the read helpers),
// whatever their argv looks like.
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { transportFor } from "../../provider/engine";
import { ConnectionError } from "../../provider/errors";
import { readFdb } from "../../provider/iproute/fdb";
import { readLink } from "../../provider/iproute/link";
import { readSlaves } from "../../provider/kinds/bond";
import { FakeTransport } from "../../provider/transport/fake";
import { installFake, restoreTransport } from "../support/unit";

const conn = { host: "192.0.2.10", privateKey: "k" };
let fake: FakeTransport;

/** Answers `prefix` with `answer`, but the first time the connection is found dead. */
function deadOnce(prefix: string[], answer: { stdout?: string; code?: number }) {
  let first = true;
  fake.on(prefix, () => {
    if (first) {
      first = false;
      throw new ConnectionError("192.0.2.10: the SSH connection closed before the command finished");
    }
    return answer;
  });
}
const sent = (prefix: string[]) => fake.calls.filter((c) => prefix.every((p, i) => c.argv[i] === p)).length;

beforeEach(() => {
  fake = installFake();
});
afterEach(restoreTransport);

describe("a command lost on a dead connection", () => {
  it("is run again when it is a read helper's (bond slaves from /proc, which has no -j)", async () => {
    deadOnce(["cat", "/proc/net/bonding/bond0"], { stdout: "Slave Interface: eth1\nSlave Interface: eth0\n" });
    expect(await readSlaves(transportFor(conn), undefined, "bond0")).toEqual(["eth1", "eth0"]);
    expect(sent(["cat"])).toBe(2);
  });

  it("is run again for the device and fdb reads", async () => {
    deadOnce(["ip", "-j", "-d", "addr", "show", "dev", "br0"], { stdout: JSON.stringify([{ ifname: "br0", ifindex: 3, flags: [], mtu: 1500, operstate: "UP" }]) });
    expect((await readLink(transportFor(conn), undefined, "br0"))?.ifindex).toBe(3);
    deadOnce(["bridge", "-j", "fdb", "show", "dev", "vx0"], { stdout: "[]" });
    expect(await readFdb(transportFor(conn), undefined, "vx0")).toEqual([]);
    expect(fake.calls).toHaveLength(4);
  });

  it("is never run again when its caller did not mark it idempotent, even if it looks like a read", async () => {
    deadOnce(["ip", "-j", "link", "show"], { stdout: "[]" });
    await expect(transportFor(conn).run(["ip", "-j", "link", "show"])).rejects.toBeInstanceOf(ConnectionError);
    expect(fake.calls).toHaveLength(1);
  });

  it("marked idempotent but failing for another reason is not run again", async () => {
    fake.on(["getent"], () => {
      throw new ConnectionError("192.0.2.10: authentication as root failed");
    });
    await expect(transportFor(conn).run(["getent", "passwd", "x"], { idempotent: true })).rejects.toThrow(/authentication/);
    expect(fake.calls).toHaveLength(1);
  });
});
