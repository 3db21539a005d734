// A scripted host with systemd-networkd for unit tests of `persist`: `systemctl
// is-enabled`, `networkctl status` (which .network a link uses), the atomic write
// and remove scripts of provider/persist.ts and `sha256sum`, over files kept in a map.
import { createHash } from "node:crypto";
import type { FakeTransport } from "../../provider/transport/fake";

const sha = (s: string) => createHash("sha256").update(s).digest("hex");

export interface NetworkdHostOptions {
  /** systemd-networkd.service's state when not "enabled". */
  enabled?: string;
  /** link → the .network networkd uses for it (`networkctl status`). */
  networkFile?: Record<string, string>;
}

/** Files live in the returned map (path → text). */
export function scriptNetworkdHost(fake: FakeTransport, opts: NetworkdHostOptions = {}): Map<string, string> {
  const disk = new Map<string, string>();
  fake.on(["systemctl", "is-enabled"], () => (opts.enabled === undefined ? { stdout: "enabled\n" } : { code: 1, stdout: `${opts.enabled}\n` }));
  fake.on(["test", "-f"], (argv) => ({ code: disk.has(argv[2]) ? 0 : 1 }));
  fake.on(["networkctl", "status"], (argv) => {
    const f = opts.networkFile?.[argv[argv.length - 1]];
    return { stdout: f ? `● 2: x\n     Network File: ${f}\n` : `● 3: x\n     Network File: n/a\n` };
  });
  fake.on(["sh", "-c"], (argv, o) => {
    if (argv[2].includes("mv -f")) {
      disk.set(argv[4], o.stdin ?? "");
      return { stdout: o.stdin };
    }
    const paths = argv.slice(4, argv.indexOf("--", 4));
    for (const p of paths) disk.delete(p);
    // A drop-in directory left empty goes, and with it a holder file of ours.
    for (const dir of argv.slice(argv.indexOf("--", 4) + 1)) {
      if ([...disk.keys()].some((k) => k.startsWith(`${dir}/`))) continue;
      const holder = dir.slice(0, -".d".length);
      if (disk.get(holder)?.startsWith("# pulumi-netdev: holds drop-ins")) disk.delete(holder);
    }
    return {};
  });
  fake.on(["sha256sum", "--"], (argv) => {
    const have = argv.slice(2).filter((p) => disk.has(p));
    const missing = argv.slice(2).filter((p) => !disk.has(p));
    return { code: missing.length ? 1 : 0, stdout: have.map((p) => `${sha(disk.get(p)!)}  ${p}\n`).join(""), stderr: missing.map((p) => `sha256sum: ${p}: No such file or directory\n`).join("") };
  });
  return disk;
}

