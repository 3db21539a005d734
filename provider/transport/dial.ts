import { connect as netConnect, type Socket } from "node:net";
import type { Duplex } from "node:stream";
import { Client, type ConnectConfig } from "ssh2";
import { type Connection, connectionLabel } from "../connection";
import { ConnectionError } from "../errors";
import { type Credentials, describeMethod } from "./auth";
import { verifyHostKey } from "./hostkey";

export const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;

/** A ConnectionError that may be retried (the server refused or reset: sshd restarting). */
export type DialError = ConnectionError & { retryable?: boolean };

/** Makes errors naming the host, with secrets masked (PooledConnection.error). */
export type ErrorFactory = (message: string, retryable?: boolean) => DialError;

/** A TCP connection to host:port within `timeoutMs`. */
export function openSocket(host: string, port: number, timeoutMs: number, error: ErrorFactory): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = netConnect({ host, port });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(error(`cannot connect to ${host}:${port} within ${timeoutMs} ms (connectTimeoutMs)`));
    }, timeoutMs);
    socket.once("connect", () => {
      clearTimeout(timer);
      socket.setNoDelay(true);
      resolve(socket);
    });
    socket.once("error", (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(error(`cannot connect to ${host}:${port}: ${err.code ?? err.message}`, err.code === "ECONNREFUSED" || err.code === "ECONNRESET"));
    });
  });
}

/**
 * The SSH handshake over `sock` with `creds` (auth.ts) (a TCP socket, or a stream forwarded by a bastion):
 * host key verified, then authentication, all before `deadline`. `onClose` runs when
 * the client closes, whenever that is. Rejections are ConnectionErrors naming the host.
 */
export function handshake(c: Connection, creds: Credentials, sock: Duplex, deadline: number, error: ErrorFactory, onClose: (client: Client) => void): Promise<Client> {
  const label = connectionLabel(c);
  const port = c.port ?? 22;
  const timeout = c.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
  const opts: ConnectConfig = { username: c.user ?? "root", ...creds, sock, readyTimeout: Math.max(1, deadline - Date.now()) };
  let refusal: string | undefined;
  let agentFailure: string | undefined;
  opts.hostVerifier = (key: Buffer) => {
    refusal = verifyHostKey(label, c.host, port, key, c);
    return refusal === undefined;
  };
  const client = new Client();
  return new Promise<Client>((resolve, reject) => {
    let settled = false;
    const fail = (e: ConnectionError) => {
      if (settled) return;
      settled = true;
      sock.destroy();
      reject(e);
    };
    client.on("ready", () => {
      settled = true;
      resolve(client);
    });
    // ssh2 may emit several errors for one attempt (an agent failure, then the
    // auth failure), and any error without a listener would crash the process.
    client.on("error", (err: Error & { level?: string }) => {
      if (settled) return;
      if (err.level === "agent") {
        agentFailure = err.message;
        return; // ssh2 goes on with the next method
      }
      if (refusal) return fail(new ConnectionError(refusal));
      if (err.level === "client-authentication") {
        const agentNote = agentFailure ? `; the agent failed: ${agentFailure}` : "";
        return fail(error(`authentication as ${opts.username} failed (tried ${creds.authHandler.map(describeMethod).join(", ")})${agentNote}`));
      }
      if (err.level === "client-timeout") return fail(error(`SSH handshake did not finish within ${timeout} ms (connectTimeoutMs)`));
      fail(error(`SSH connection failed: ${err.message}`, true));
    });
    client.on("close", () => {
      onClose(client);
      // sshd restarting or dropping an excess unauthenticated connection closes without an SSH error.
      fail(error("the connection closed during the SSH handshake", true));
    });
    client.connect(opts);
  });
}
