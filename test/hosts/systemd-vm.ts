// Reboot-test host (DESIGN.md §8): a Debian userland with systemd and
// systemd-networkd on a disk image, booted by the same Debian cloud kernel as the
// full-kernel VM (test/hosts/vm.ts) under QEMU TCG, so that a test can write
// networkd files, reboot the guest and see what comes back.
//
//   buildSystemdImage()  -> disk image, cached under <repo>/.cache/systemd-vm/<key>/
//   startSystemdVm()     -> SystemdVm  (one QEMU per host, on a private qcow2 overlay)
//
// The image is built from Debian packages with mmdebstrap (needs root and the
// Debian mirror), plus the kernel package's module tree. The cloud kernel has NVMe
// and ext4 built in (virtio-blk is a module), so the disk is an NVMe device and no
// initramfs is needed. Every run boots a fresh qcow2 overlay of the cached image:
// a run never sees another run's files, and reboots within a run keep its own.

import { type ChildProcess, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { buildVmImage, cachedKernelPackage, freePort, publishImage, readImageMeta, run, shellQuote, watchdog } from "./vm";

export interface SystemdVm {
  name: string;
  connection: { host: "127.0.0.1"; port: number; user: "root"; privateKeyPath: string; hostKey: string };
  /** Runs argv on the guest with the system OpenSSH client (not the project's transport). */
  exec(argv: string[]): Promise<{ stdout: string; stderr: string; code: number }>;
  /** `systemctl reboot`, then waits for SSH on the new boot. Resolves with the time it took. */
  reboot(): Promise<{ ms: number }>;
  /** Milliseconds from QEMU start to the first successful SSH command. */
  bootMs: number;
  /** Kills QEMU and removes the overlay and temp files. Idempotent. */
  stop(): Promise<void>;
}

const REPO = (() => {
  let dir = __dirname;
  while (!fs.existsSync(path.join(dir, "package.json")) && path.dirname(dir) !== dir) dir = path.dirname(dir);
  return dir;
})();
const CACHE_DIR = path.join(REPO, ".cache", "systemd-vm");

/** Bump when the build changes in a way the hashed texts below do not show. */
const RECIPE_VERSION = "2";
const SUITE = "bookworm";
/** minbase + what the tests and networkd need; nothing else (every package costs boot time under TCG). */
const PACKAGES = ["systemd", "systemd-sysv", "udev", "dbus", "openssh-server", "iproute2", "kmod", "procps"];
const USER_MAC = "52:54:00:12:34:56";
/** Slow or useless in a throwaway test guest; systemd-networkd-wait-online would hold boot for 2 minutes. */
const MASKED_UNITS = [
  "systemd-networkd-wait-online.service", "apt-daily.timer", "apt-daily-upgrade.timer", "e2scrub_all.timer",
  "e2scrub_reap.service", "fstrim.timer", "getty@tty1.service", "systemd-timesyncd.service", "man-db.timer",
];
/** Dummy devices networkd creates at every boot: parents and bond slaves for the tests. */
const DUMMIES = ["dummy0", "dummy1", "dummy2", "dummy3"];
/** Boot under TCG is 20–45 s on an idle 2-core machine, a reboot 60–90 s; measured up to 245 s on one loaded by other VMs. */
const SSH_READY_TIMEOUT_MS = 600_000;

/** Files the build writes into the image (path → text). Hashed into the cache key. */
function imageFiles(): Record<string, string> {
  const files: Record<string, string> = {
    "etc/hostname": "netdev-systemd\n",
    "etc/hosts": "127.0.0.1 localhost netdev-systemd\n",
    "etc/fstab": "/dev/nvme0n1 / ext4 rw,errors=remount-ro 0 1\n",
    // The SSH NIC: static, as QEMU's user-mode network hands out (no DHCP wait).
    "etc/systemd/network/10-netdev-uplink.network":
      `[Match]\nMACAddress=${USER_MAC}\n\n[Network]\nAddress=10.0.2.15/24\nGateway=10.0.2.2\nLinkLocalAddressing=no\nIPv6AcceptRA=no\n`,
    "etc/ssh/sshd_config.d/netdev.conf":
      "HostKey /etc/ssh/ssh_host_ed25519_key\nPermitRootLogin prohibit-password\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nUseDNS no\nMaxStartups 100\nMaxSessions 64\n",
    // bonding and dummy would otherwise create bond0 / dummy0 themselves when loaded.
    "etc/modprobe.d/netdev-vm.conf": "options bonding max_bonds=0\noptions dummy numdummies=0\n",
    "etc/systemd/journald.conf.d/netdev.conf": "[Journal]\nStorage=volatile\n",
    // A unit slow to stop (TCG makes every one slow) must not hold a reboot for the default 90 s.
    "etc/systemd/system.conf.d/netdev.conf": "[Manager]\nDefaultTimeoutStopSec=15s\n",
  };
  for (const d of DUMMIES) files[`etc/systemd/network/10-netdev-${d}.netdev`] = `[NetDev]\nName=${d}\nKind=dummy\n`;
  return files;
}

interface ImageMeta {
  key: string;
  kernelVersion: string;
  hostKeyFingerprint: string;
  hostKeyLine: string;
  buildMs: number;
}

export function systemdVmPrerequisites(): string[] {
  const tools = ["mmdebstrap", "mke2fs", "qemu-img", "qemu-system-x86_64", "ssh", "ssh-keygen", "apt-get", "dpkg-deb", "depmod"];
  const dirs = (process.env.PATH ?? "").split(":").concat(["/usr/sbin", "/sbin"]);
  const missing = tools.filter((c) => !dirs.some((d) => d && fs.existsSync(path.join(d, c))));
  if (process.getuid?.() !== 0) missing.push("root (mmdebstrap builds the image as root)");
  return missing;
}

let building: Promise<{ disk: string; privateKeyPath: string; meta: ImageMeta }> | undefined;

export function buildSystemdImage() {
  building ??= build().catch((e) => {
    building = undefined;
    throw e;
  });
  return building;
}

function readMeta(dir: string): ImageMeta | undefined {
  return readImageMeta<ImageMeta>(dir);
}

async function build() {
  const started = Date.now();
  const { kernel } = await buildVmImage(); // the same vmlinuz the full-kernel VM boots
  const { pkg, version } = await cachedKernelPackage();
  const kernelVersion = pkg.replace(/^linux-image-/, "");
  const hash = createHash("sha256")
    .update(JSON.stringify([RECIPE_VERSION, SUITE, PACKAGES, MASKED_UNITS, imageFiles(), kernelVersion, version]))
    .digest("hex")
    .slice(0, 12);
  const key = `${kernelVersion}_${hash}`;
  const finalDir = path.join(CACHE_DIR, key);
  const result = () => ({ disk: path.join(finalDir, "disk.raw"), kernel, privateKeyPath: path.join(finalDir, "id_ed25519"), meta: readMeta(finalDir)! });
  if (readMeta(finalDir)?.key === key) return result();

  fs.mkdirSync(CACHE_DIR, { recursive: true });
  const work = fs.mkdtempSync(path.join(CACHE_DIR, "build-"));
  try {
    const root = path.join(work, "root");
    const out = path.join(work, "out");
    fs.mkdirSync(out);
    // Host keys made here, so the fingerprint is known (pinned by the tests).
    const hostKey = path.join(work, "ssh_host_ed25519_key");
    await run("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "netdev-systemd-host", "-f", hostKey]);
    const clientKey = path.join(out, "id_ed25519");
    await run("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "netdev-systemd-test", "-f", clientKey]);
    fs.chmodSync(clientKey, 0o600);
    const fingerprint = (await run("ssh-keygen", ["-l", "-E", "sha256", "-f", `${hostKey}.pub`])).split(/\s+/)[1];
    const hostKeyLine = fs.readFileSync(`${hostKey}.pub`, "utf8").trim().split(/\s+/).slice(0, 2).join(" ");

    await run("mmdebstrap", [
      "--variant=minbase", "--mode=root", "--format=directory", "--quiet",
      `--include=${PACKAGES.join(",")}`,
      "--dpkgopt=path-exclude=/usr/share/man/*", "--dpkgopt=path-exclude=/usr/share/doc/*",
      "--dpkgopt=path-exclude=/usr/share/locale/*", "--dpkgopt=path-exclude=/usr/share/info/*",
      "--customize-hook=chroot \"$1\" systemctl enable systemd-networkd.service ssh.service",
      `--customize-hook=chroot "$1" systemctl mask ${MASKED_UNITS.join(" ")}`,
      // Host keys the package generated: ours replaces them (copied in below).
      "--customize-hook=rm -f \"$1\"/etc/ssh/ssh_host_*",
      SUITE, root,
    ]);

    // The kernel's modules (virtio_net, bridge, bonding, 8021q, ...), loaded by udev and networkd at boot.
    await run("apt-get", ["download", `${pkg}=${version}`], work);
    const deb = fs.readdirSync(work).find((f) => f.endsWith(".deb"));
    if (!deb) throw new Error(`apt-get download ${pkg} produced no .deb`);
    // Unpacked aside: tar would replace the image's /lib -> usr/lib symlink with a directory.
    const pkgRoot = path.join(work, "pkg");
    await run("dpkg-deb", ["-x", path.join(work, deb), pkgRoot]);
    fs.cpSync(path.join(pkgRoot, "lib/modules"), path.join(root, "usr/lib/modules"), { recursive: true });
    await run("depmod", ["-b", root, kernelVersion]);

    for (const [rel, text] of Object.entries(imageFiles())) {
      fs.mkdirSync(path.dirname(path.join(root, rel)), { recursive: true });
      fs.writeFileSync(path.join(root, rel), text, { mode: 0o644 });
    }
    fs.copyFileSync(hostKey, path.join(root, "etc/ssh/ssh_host_ed25519_key"));
    fs.chmodSync(path.join(root, "etc/ssh/ssh_host_ed25519_key"), 0o600);
    fs.copyFileSync(`${hostKey}.pub`, path.join(root, "etc/ssh/ssh_host_ed25519_key.pub"));
    fs.mkdirSync(path.join(root, "root/.ssh"), { recursive: true, mode: 0o700 });
    fs.copyFileSync(`${clientKey}.pub`, path.join(root, "root/.ssh/authorized_keys"));
    fs.chmodSync(path.join(root, "root/.ssh/authorized_keys"), 0o600);
    // Each boot of an overlay gets its own machine-id (and so its own networkd MACs) on first boot.
    fs.writeFileSync(path.join(root, "etc/machine-id"), "");

    await run("mke2fs", ["-q", "-t", "ext4", "-L", "netdev-root", "-d", root, path.join(out, "disk.raw"), "1200M"]);
    const meta: ImageMeta = { key, kernelVersion, hostKeyFingerprint: fingerprint, hostKeyLine, buildMs: Date.now() - started };
    fs.writeFileSync(path.join(out, "meta.json"), JSON.stringify(meta, null, 2) + "\n");
    publishImage(out, CACHE_DIR, key);
    return result();
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const running = new Set<ChildProcess>();
process.on("exit", () => {
  for (const c of running) c.kill("SIGKILL");
});

export async function startSystemdVm(opts: { name?: string; memoryMiB?: number } = {}): Promise<SystemdVm> {
  const img = await buildSystemdImage();
  const { kernel } = await buildVmImage();
  const name = opts.name ?? "systemd1";
  const port = await freePort();
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), `netdev-systemd-${name}-`));
  const consoleLog = path.join(tmp, "console.log");
  const knownHosts = path.join(tmp, "known_hosts");
  const controlPath = path.join(tmp, "ssh-mux");
  const privateKeyPath = path.join(tmp, "id_ed25519");
  fs.copyFileSync(img.privateKeyPath, privateKeyPath);
  fs.chmodSync(privateKeyPath, 0o600);
  fs.writeFileSync(knownHosts, `[127.0.0.1]:${port} ${img.meta.hostKeyLine}\n`);
  const overlay = path.join(tmp, "disk.qcow2");
  await run("qemu-img", ["create", "-q", "-f", "qcow2", "-b", img.disk, "-F", "raw", overlay]);

  const append = [
    "root=/dev/nvme0n1", "rw", "rootfstype=ext4", "console=ttyS0", "quiet", "net.ifnames=0",
    "cryptomgr.notests", "tsc=reliable", "systemd.show_status=false",
  ];
  const args = [
    "-accel", "tcg", "-m", String(opts.memoryMiB ?? 512),
    "-nodefaults", "-display", "none", "-monitor", "none",
    "-serial", `file:${consoleLog}`,
    "-kernel", kernel, "-append", append.join(" "),
    "-drive", `file=${overlay},if=none,id=root,format=qcow2,cache=unsafe`,
    "-device", "nvme,drive=root,serial=netdevroot",
    "-netdev", `user,id=n0,hostfwd=tcp:127.0.0.1:${port}-:22`,
    "-device", `virtio-net-pci,netdev=n0,mac=${USER_MAC},romfile=`,
  ];

  let qemuStderr = "";
  let exited = false;
  const child = spawn("qemu-system-x86_64", args, { stdio: ["ignore", "ignore", "pipe"] });
  child.stderr!.on("data", (d) => (qemuStderr += String(d)));
  child.on("exit", (code, signal) => {
    exited = true;
    qemuStderr += signal ? ` [killed by ${signal}]` : ` [exit ${code}]`;
    running.delete(child);
  });
  child.on("error", (e) => {
    exited = true;
    qemuStderr += String(e);
  });
  running.add(child);
  watchdog(child);

  const sshArgs = (connectTimeout: number) => [
    "-F", "/dev/null", "-o", "StrictHostKeyChecking=yes", "-o", `UserKnownHostsFile=${knownHosts}`,
    "-o", "GlobalKnownHostsFile=/dev/null", "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes",
    "-o", `ConnectTimeout=${connectTimeout}`, "-o", "LogLevel=ERROR",
    "-o", "ControlMaster=auto", "-o", `ControlPath=${controlPath}`, "-o", "ControlPersist=yes",
    "-o", "ServerAliveInterval=5", "-o", "ServerAliveCountMax=3",
    "-i", privateKeyPath, "-p", String(port), "root@127.0.0.1",
  ];
  const ssh = (argv: string[], connectTimeout = 30, killAfterMs?: number) =>
    new Promise<{ stdout: string; stderr: string; code: number }>((resolve) => {
      const c = spawn("ssh", [...sshArgs(connectTimeout), "--", ...argv.map(shellQuote)], { stdio: ["ignore", "pipe", "pipe"] });
      const timer = killAfterMs ? setTimeout(() => c.kill("SIGKILL"), killAfterMs) : undefined;
      let stdout = "";
      let stderr = "";
      c.stdout.on("data", (d) => (stdout += String(d)));
      c.stderr.on("data", (d) => (stderr += String(d)));
      c.on("error", (e) => resolve({ stdout, stderr: stderr + String(e), code: 255 }));
      c.on("close", (code) => {
        if (timer) clearTimeout(timer);
        resolve({ stdout, stderr, code: code ?? 255 });
      });
    });
  const closeMaster = () =>
    new Promise((r) => spawn("ssh", ["-F", "/dev/null", "-o", `ControlPath=${controlPath}`, "-O", "exit", "x"], { stdio: "ignore" }).on("close", r).on("error", r));

  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    await closeMaster();
    if (!exited) {
      const gone = new Promise((r) => child.once("exit", r));
      child.kill("SIGTERM");
      await Promise.race([gone, sleep(3000)]);
      if (!exited) child.kill("SIGKILL");
    }
    fs.rmSync(tmp, { recursive: true, force: true });
  };

  const tail = () => {
    try {
      return fs.readFileSync(consoleLog, "utf8").split("\n").slice(-40).join("\n");
    } catch {
      return "(no console log)";
    }
  };
  /** Waits until SSH answers with a boot id other than `notBootId`; returns that boot id. */
  const waitForSsh = async (notBootId?: string): Promise<string> => {
    const deadline = Date.now() + SSH_READY_TIMEOUT_MS;
    let last = "";
    for (;;) {
      if (exited) throw new Error(`qemu exited: ${qemuStderr.trim()}`);
      if (Date.now() > deadline) throw new Error(`no SSH within ${SSH_READY_TIMEOUT_MS / 1000}s (last ssh error: ${last.trim()})`);
      const r = await ssh(["cat", "/proc/sys/kernel/random/boot_id"], 5, 30_000);
      const id = r.stdout.trim();
      if (r.code === 0 && id && id !== notBootId) return id;
      last = r.code === 0 ? "still the old boot" : r.stderr;
      await sleep(500);
    }
  };

  const started = Date.now();
  let bootId: string;
  try {
    bootId = await waitForSsh();
  } catch (e) {
    const log = tail();
    await stop();
    throw new Error(`systemd VM ${name} did not come up: ${(e as Error).message}\n--- console (tail) ---\n${log}`);
  }
  const bootMs = Date.now() - started;

  return {
    name,
    connection: { host: "127.0.0.1", port, user: "root", privateKeyPath, hostKey: img.meta.hostKeyFingerprint },
    exec: (argv) => ssh(argv),
    bootMs,
    async reboot() {
      const t0 = Date.now();
      // The session may die before it reports back; the new boot id is the proof.
      await ssh(["systemctl", "reboot"], 10, 20_000);
      await closeMaster();
      try {
        bootId = await waitForSsh(bootId);
      } catch (e) {
        throw new Error(`systemd VM ${name} did not come back after reboot: ${(e as Error).message}\n--- console (tail) ---\n${tail()}`);
      }
      return { ms: Date.now() - t0 };
    },
    stop,
  };
}
