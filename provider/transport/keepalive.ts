import type { Duplex } from "node:stream";
import type { Client } from "ssh2";

/** Keepalives a peer may leave unanswered before the connection counts as dead (OpenSSH's ServerAliveCountMax). */
export const KEEPALIVE_COUNT_MAX = 3;

/**
 * Sends an SSH keepalive (`keepalive@openssh.com`, which every OpenSSH server
 * answers) every `intervalMs`, and calls `dead` once KEEPALIVE_COUNT_MAX intervals
 * in a row went by without a byte from the peer: its sshd is frozen, or the path
 * to it is gone without a FIN or RST. `intervalMs` 0: no keepalives, only the
 * silence is measured.
 *
 * Not ssh2's own keepaliveInterval: its timer is not unref'd, so an idle pooled
 * connection would keep the provider host process alive. Ours is unref'd.
 */
export function watchPeer(client: Client, sock: Duplex, intervalMs: number, dead: (reason: string) => void): PeerWatch {
  let lastHeard = Date.now();
  let heard = true;
  let missed = 0;
  const onData = () => {
    heard = true;
    lastHeard = Date.now();
  };
  sock.on("data", onData);
  const silentForMs = () => Date.now() - lastHeard;
  if (intervalMs <= 0) return { stop: () => sock.off("data", onData), silentForMs, keepaliveUnanswered: () => false };
  const timer = setInterval(() => {
    missed = heard ? 0 : missed + 1;
    heard = false;
    if (missed >= KEEPALIVE_COUNT_MAX) {
      stop();
      dead(`the host stopped answering: no reply to ${KEEPALIVE_COUNT_MAX} keepalives sent ${intervalMs} ms apart (keepaliveIntervalMs)`);
      return;
    }
    // ssh2 has no public ping; its Protocol.ping sends the global request. No other
    // global request with a reply is ever outstanding on our connections, so the
    // answer (REQUEST_SUCCESS/FAILURE) finds no callback and only counts as "heard".
    (client as unknown as { _protocol?: { ping?: () => void } })._protocol?.ping?.();
  }, intervalMs);
  timer.unref();
  function stop() {
    clearInterval(timer);
    sock.off("data", onData);
  }
  // A keepalive goes out every interval and is answered within a round trip: silence
  // of two intervals means one went unanswered (a slow round trip is not enough).
  return { stop, silentForMs, keepaliveUnanswered: () => silentForMs() > 2 * intervalMs };
}

export interface PeerWatch {
  stop(): void;
  /** Milliseconds since the last byte from the peer. */
  silentForMs(): number;
  /** A keepalive is overdue: nothing heard for two intervals (always false with keepalives off). */
  keepaliveUnanswered(): boolean;
}
