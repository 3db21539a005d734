// Setup file of the unit suite: a command sent to a FakeTransport that no responder
// answers fails the test that sent it, even when the test caught the error.
import { afterEach } from "vitest";
import { takeUnscriptedCommands } from "../../provider/transport/fake";

afterEach(() => {
  const sent = takeUnscriptedCommands();
  if (sent.length > 0) throw new Error(`the test sent ${sent.length} unscripted command(s) to the fake transport:\n${sent.join("\n")}`);
});
