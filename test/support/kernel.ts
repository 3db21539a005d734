import type { NetnsHost, NetnsLab } from "../hosts/netns";

/** The connection inputs for a lab host, as a user would write them. */
export function labConnection(lab: NetnsLab, h: NetnsHost) {
  return { host: h.address, user: "root", privateKey: lab.privateKey, hostKey: h.connection.hostKey };
}

/** The kernel's own view of a device, read without the project's code. */
export async function ipLink(h: { exec(argv: string[]): Promise<{ stdout: string; code: number; stderr: string }> }, dev: string, ns?: string): Promise<any | undefined> {
  const argv = ns ? ["ip", "-n", ns, "-j", "-d", "addr", "show", "dev", dev] : ["ip", "-j", "-d", "addr", "show", "dev", dev];
  const r = await h.exec(argv);
  // Only the kernel's own "no such device" means absent; an ssh failure must not pass for it.
  if (r.code !== 0 && /does not exist|Cannot find device/.test(r.stderr)) return undefined;
  if (r.code !== 0) throw new Error(`${argv.join(" ")} failed (${r.code}): ${r.stderr}`);
  return JSON.parse(r.stdout)[0];
}

export function addrsOf(link: any): string[] {
  return (link?.addr_info ?? []).filter((a: any) => a.scope !== "link").map((a: any) => `${a.local}/${a.prefixlen}`).sort();
}

import { execFile } from "node:child_process";

/**
 * Runs argv on a lab host through the system OpenSSH client: independent of the
 * project's transport, and inside sshd's own mount namespace, so namespaces the
 * provider created there (`ip netns add` over SSH) are visible.
 */
export function sshExec(lab: NetnsLab, h: NetnsHost) {
  return {
    exec(argv: string[]): Promise<{ stdout: string; stderr: string; code: number }> {
      const quoted = argv.map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(" ");
      return new Promise((resolve) =>
        execFile("ssh", ["-F", "/dev/null", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes", "-o", `UserKnownHostsFile=${lab.knownHostsPath}`,
          "-o", "GlobalKnownHostsFile=/dev/null", "-o", "IdentitiesOnly=yes", "-i", lab.privateKeyPath, `root@${h.address}`, "--", quoted],
          { encoding: "utf8", timeout: 30_000 }, (err, stdout, stderr) => resolve({ stdout, stderr, code: err ? (typeof err.code === "number" ? err.code : -1) : 0 })),
      );
    },
  };
}
