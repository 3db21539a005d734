// Full-kernel VM test host (DESIGN.md §5 "Real test hosts").
//
// This machine's kernel lacks vlan, bond, ipvlan and dummy, so kernel tests for
// those kinds run against a QEMU guest booted from the Debian cloud kernel and a
// small initramfs assembled from THIS machine's own binaries (bash, iproute2,
// sshd, kmod, ...). The guest is reachable over real SSH on a loopback port.
//
//   buildVmImage()  -> { kernel, initrd }   cached under <repo>/.cache/vm/<key>/
//   startVmHost()   -> VmHost               one QEMU process per host
//
// No step needs root (apt-get download, dpkg-deb -x, depmod -b and TCG qemu all
// work as an ordinary user), except `apt-get update` if the package lists were
// never fetched. Network: only the Debian mirror, for the kernel package.

import { spawn, execFile, type ChildProcess } from "node:child_process";
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import { promisify } from "node:util";
import { gzipSync } from "node:zlib";

const execFileAsync = promisify(execFile);

export interface VmHostOptions {
  /** Label, also the guest's hostname. Default "vm1". */
  name?: string;
  /** Loopback port forwarded to the guest's sshd. Default: a free port. */
  sshPort?: number;
  /**
   * Optional second NIC on an L2 segment shared with another VM, carried by a
   * QEMU socket netdev over 127.0.0.1:port (one side listens, the other
   * connects). It appears in the guest as "seg0".
   */
  l2Segment?: { port: number; role: "listen" | "connect"; mac?: string };
  /** Guest RAM. Default 512. */
  memoryMiB?: number;
}

export interface VmHost {
  name: string;
  connection: {
    host: "127.0.0.1";
    port: number;
    user: "root";
    privateKeyPath: string;
    /** "SHA256:..." fingerprint of the guest's host key. */
    hostKey: string;
  };
  /** Runs argv on the guest with the system OpenSSH client (not the project's transport). */
  exec(argv: string[]): Promise<{ stdout: string; stderr: string; code: number }>;
  /** Milliseconds from QEMU start to the first successful SSH command. */
  bootMs: number;
  /** Kills QEMU and removes the host's temp files. Idempotent. */
  stop(): Promise<void>;
}

// ---------------------------------------------------------------------------
// Constants

/** <repo>/.cache/vm (gitignored); the repo is the nearest directory up with a package.json. */
const CACHE_DIR = (() => {
  let dir = __dirname;
  while (!fs.existsSync(path.join(dir, "package.json")) && path.dirname(dir) !== dir) dir = path.dirname(dir);
  return path.join(dir, ".cache", "vm");
})();
/** Bump to force a rebuild when the build recipe (not just init) changes. */
const RECIPE_VERSION = "1";
const META_PKG = "linux-image-cloud-amd64";

/** MAC of the user-mode (slirp) NIC; every VM has its own slirp, so one value serves all. */
const USER_MAC = "52:54:00:12:34:56";
/** Default seg0 MACs: the two ends of a segment must differ. */
const SEG_MAC = { listen: "52:54:00:5e:00:01", connect: "52:54:00:5e:00:02" } as const;

/** Boot-to-SSH is ~12 s on an idle 2-CPU machine, 25-40 s when it is busy with other VMs. */
const SSH_READY_TIMEOUT_MS = 180_000;

/** Host binaries the guest needs (with every library ldd lists). */
const REQUIRED_BINARIES = [
  "/usr/bin/bash",
  "/usr/bin/mount",
  "/usr/bin/mkdir",
  "/usr/bin/sleep",
  "/usr/bin/cat",
  "/usr/bin/ping", // the VM-to-VM segment test pings
  "/usr/sbin/ip",
  "/usr/sbin/bridge",
  "/usr/sbin/sshd",
  "/usr/bin/kmod",
  "/usr/sbin/modprobe", // -> kmod
];
/** Handy in the guest when present on this machine; skipped if missing. */
const OPTIONAL_BINARIES = [
  "/usr/sbin/insmod", "/usr/sbin/rmmod", "/usr/sbin/lsmod",
  "/usr/sbin/tc", "/usr/bin/ss", "/usr/sbin/sysctl", "/usr/bin/ps",
  "/usr/bin/umount", "/usr/bin/ls", "/usr/bin/rm", "/usr/bin/ln", "/usr/bin/cp",
  "/usr/bin/mv", "/usr/bin/touch", "/usr/bin/chmod", "/usr/bin/uname", "/usr/bin/id",
  "/usr/bin/env", "/usr/bin/readlink", "/usr/bin/stat", "/usr/bin/grep", "/usr/bin/sed",
  "/usr/bin/head", "/usr/bin/tail", "/usr/bin/tr", "/usr/bin/wc", "/usr/bin/sort",
  "/usr/bin/seq", "/usr/bin/true", "/usr/bin/false", "/usr/bin/tee", "/usr/bin/cut",
  // Safe apply arms its host-side rollback with these (every util-linux/procps host has them).
  "/usr/bin/setsid", "/usr/bin/kill",
  "/usr/lib/openssh/sftp-server",
  // OpenSSH >= 9.8 splits sshd into helpers it execs per connection.
  "/usr/lib/openssh/sshd-session", "/usr/lib/openssh/sshd-auth",
];
/** Build-side tools (on this machine), checked by vmPrerequisites(). */
const BUILD_TOOLS = [
  "qemu-system-x86_64", "ssh", "ssh-keygen", "ldd", "depmod", "dpkg-deb", "apt-get", "apt-cache",
];

/** Modules init loads (in one modprobe call: every process start is slow under TCG). */
const INIT_MODULES = [
  "virtio_pci", "virtio_net", "bridge", "8021q", "bonding", "ipvlan", "macvlan", "macvtap",
  "vxlan", "tun", "veth", "dummy",
];
// bonding and dummy create bond0 / dummy0 on load by default; ask for none so
// every device name in the guest is one init or a test chose. (Also applies when
// the kernel auto-loads them for `ip link add ... type bond|dummy`.)
const MODPROBE_CONF = "options bonding max_bonds=0\noptions dummy numdummies=0\n";
/** Subtrees of lib/modules/<ver>/kernel copied into the guest (plus their dependencies). */
const MODULE_DIRS = ["drivers/net/", "drivers/virtio/", "net/", "lib/", "crypto/"];
/** Large subtrees of the above that network-device tests never need. */
const MODULE_SKIP = [
  "drivers/net/ethernet/", "drivers/net/wwan/", "drivers/net/hyperv/", "net/ceph/",
  "net/sunrpc/", "net/rds/", "net/tipc/", "net/smc/", "net/dccp/", "net/vmw_vsock/",
];

// bash, not busybox: busybox's shell runs its own `ip` applet before PATH.
// Full paths everywhere so nothing depends on PATH lookup during early boot.
const INIT_SCRIPT = `#!/bin/bash
# PID 1 of the pulumi-netdev test VM, generated by test/hosts/vm.ts.
export PATH=/usr/sbin:/usr/bin
/usr/bin/mount -t proc proc /proc
/usr/bin/mount -t sysfs sysfs /sys
/usr/bin/mount -t devtmpfs devtmpfs /dev
/usr/bin/mkdir -p /dev/pts /dev/shm
/usr/bin/mount -t devpts devpts /dev/pts
/usr/bin/mount -t tmpfs tmpfs /run
/usr/bin/mount -t tmpfs tmpfs /tmp
# Keep the serial console (= the host's log file) to warnings and worse.
echo "4 4 1 7" > /proc/sys/kernel/printk

# startVmHost passes its parameters on the kernel command line.
for arg in $(</proc/cmdline); do
  case $arg in
    netdev_name=*) name=\${arg#*=} ;;
    netdev_usermac=*) usermac=\${arg#*=} ;;
    netdev_segmac=*) segmac=\${arg#*=} ;;
  esac
done
echo "\${name:-netdev-vm}" > /proc/sys/kernel/hostname

# Options for bonding and dummy are in /etc/modprobe.d/netdev-vm.conf.
/usr/sbin/modprobe -a ${INIT_MODULES.join(" ")} || echo "netdev-vm: modprobe failed"

# NICs are identified by the MACs startVmHost gave them, not by probe order.
nic_with_mac() {
  local d
  for d in /sys/class/net/*; do
    [[ -f $d/address ]] || continue # e.g. bonding_masters
    if [[ $(<$d/address) == "$1" ]]; then echo "\${d##*/}"; return 0; fi
  done
  return 1
}
for i in {1..50}; do nic_with_mac "$usermac" >/dev/null && break; /usr/bin/sleep 0.1; done

/usr/sbin/ip link set lo up
if [[ -n $segmac ]]; then
  # Renamed first so that eth0 is free for the user-mode NIC below.
  seg=$(nic_with_mac "$segmac") && /usr/sbin/ip link set dev "$seg" name seg0 && /usr/sbin/ip link set seg0 up \\
    || echo "netdev-vm: no NIC with MAC $segmac"
fi
user=$(nic_with_mac "$usermac")
if [[ -n $user && $user != eth0 ]]; then /usr/sbin/ip link set dev "$user" name eth0; fi
# QEMU user-mode networking: guest 10.0.2.15, gateway 10.0.2.2 (internal to QEMU).
/usr/sbin/ip addr add 10.0.2.15/24 dev eth0
/usr/sbin/ip link set eth0 up
/usr/sbin/ip route add default via 10.0.2.2

# Parents for tests: bond slaves, vlan / ipvlan lower devices.
for d in dummy0 dummy1; do
  /usr/sbin/ip link add $d type dummy && /usr/sbin/ip link set $d up
done

/usr/bin/mkdir -p -m 0755 /run/sshd
/usr/sbin/sshd -D -e &
echo "NETDEV-VM-READY uptime=$(</proc/uptime)"

# PID 1 must never exit (the kernel would panic) and must reap orphans; bash's
# wait reaps any child, including ones re-parented to it.
while true; do /usr/bin/sleep 3600 & wait $!; done
`;

const SSHD_CONFIG = `# sshd for the pulumi-netdev test VM (root by key only).
Port 22
HostKey /etc/ssh/ssh_host_ed25519_key
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
AuthorizedKeysFile /root/.ssh/authorized_keys
UsePAM no
StrictModes no
MaxStartups 100
MaxSessions 64
UseDNS no
PrintMotd no
PrintLastLog no
PidFile /run/sshd.pid
Subsystem sftp /usr/lib/openssh/sftp-server
`;

// ---------------------------------------------------------------------------
// Prerequisites

function onPath(cmd: string): boolean {
  if (cmd.startsWith("/")) return fs.existsSync(cmd);
  const dirs = (process.env.PATH ?? "").split(":").concat(["/usr/sbin", "/sbin"]);
  return dirs.some((d) => d && fs.existsSync(path.join(d, cmd)));
}

export function vmPrerequisites(): { ok: boolean; missing: string[] } {
  const missing = [...BUILD_TOOLS, ...REQUIRED_BINARIES].filter((c) => !onPath(c));
  return { ok: missing.length === 0, missing };
}

// ---------------------------------------------------------------------------
// Image build

interface ImageMeta {
  key: string;
  kernelVersion: string;
  hostKeyFingerprint: string;
  hostKeyLine: string; // "ssh-ed25519 AAAA..."
}
interface BuiltImage {
  kernel: string;
  initrd: string;
  privateKeyPath: string;
  meta: ImageMeta;
}

export async function run(cmd: string, args: string[], cwd?: string): Promise<string> {
  try {
    const { stdout } = await execFileAsync(cmd, args, { cwd, maxBuffer: 64 << 20 });
    return stdout;
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    throw new Error(`${cmd} ${args.join(" ")} failed: ${err.stderr?.trim() || err.message}`);
  }
}

/**
 * resolveKernelPackage(), remembered until the apt package lists change: apt-cache
 * takes 1-4 s here (no pkgcache.bin, so it re-parses every list on each call).
 */
export async function cachedKernelPackage(): Promise<{ pkg: string; version: string }> {
  const file = path.join(CACHE_DIR, "kernel-package.json");
  const lists = () => fs.statSync("/var/lib/apt/lists", { throwIfNoEntry: false })?.mtimeMs ?? 0;
  try {
    const saved = JSON.parse(fs.readFileSync(file, "utf8"));
    if (saved.lists === lists() && saved.pkg && saved.version) return saved;
  } catch {
    // not resolved yet
  }
  const resolved = await resolveKernelPackage();
  fs.mkdirSync(CACHE_DIR, { recursive: true });
  fs.writeFileSync(file, JSON.stringify({ ...resolved, lists: lists() }) + "\n");
  return resolved;
}

/** Name and version of the linux-image-*-cloud-amd64 package the metapackage depends on. */
async function resolveKernelPackage(): Promise<{ pkg: string; version: string }> {
  // One apt-cache call (they take a second or two each): the metapackage pins
  // its dependency exactly, "Depends: linux-image-6.1.0-56-cloud-amd64 (= 6.1.192-2)".
  const show = async () => {
    const out = await run("apt-cache", ["show", "--no-all-versions", META_PKG]).catch(() => "");
    return /^Depends:.*?(linux-image-\S+-cloud-amd64)(?: \(= (\S+)\))?/m.exec(out);
  };
  let m = await show();
  if (!m) {
    // Package lists never fetched on this machine: fetch them once.
    await run("apt-get", ["update"]);
    m = await show();
  }
  if (!m) throw new Error(`cannot resolve the kernel package ${META_PKG} depends on`);
  const pkg = m[1];
  let version = m[2];
  if (!version) {
    const out = await run("apt-cache", ["show", "--no-all-versions", pkg]);
    version = /^Version:\s*(\S+)/m.exec(out)?.[1] ?? "";
  }
  if (!version) throw new Error(`apt-cache show ${pkg}: no Version`);
  return { pkg, version };
}

function readMeta(dir: string): ImageMeta | undefined {
  return readImageMeta<ImageMeta>(dir);
}

/** A cached image's meta.json (written last, so a directory without it is a broken build). */
export function readImageMeta<T>(dir: string): T | undefined {
  try {
    return JSON.parse(fs.readFileSync(path.join(dir, "meta.json"), "utf8")) as T;
  } catch {
    return undefined;
  }
}

/**
 * Moves a finished build (`out`, meta.json written) to `<cacheDir>/<key>`, or keeps the
 * identical image another process finished first; then drops images of older kernels /
 * recipes (and crashed builds) so the cache stays about one image big, sparing recent
 * ones another process may still use, and the entries named in `keep`.
 */
export function publishImage(out: string, cacheDir: string, key: string, keep: string[] = []): void {
  const finalDir = path.join(cacheDir, key);
  try {
    // A leftover without meta.json is a broken image: replace it.
    if (!readImageMeta(finalDir)) fs.rmSync(finalDir, { recursive: true, force: true });
    fs.renameSync(out, finalDir);
  } catch (e) {
    // Another process finished the same build first; use theirs.
    if (readImageMeta<{ key: string }>(finalDir)?.key !== key) throw e;
  }
  for (const d of fs.readdirSync(cacheDir)) {
    const p = path.join(cacheDir, d);
    if (d === key || keep.includes(d)) continue;
    if (Date.now() - fs.statSync(p).mtimeMs > 3600_000) fs.rmSync(p, { recursive: true, force: true });
  }
}

let building: Promise<BuiltImage> | undefined;

export async function buildVmImage(): Promise<{ kernel: string; initrd: string }> {
  const img = await getImage();
  return { kernel: img.kernel, initrd: img.initrd };
}

function getImage(): Promise<BuiltImage> {
  building ??= buildImage().catch((e) => {
    building = undefined; // let a later call retry
    throw e;
  });
  return building;
}

async function buildImage(): Promise<BuiltImage> {
  const { pkg, version } = await cachedKernelPackage();
  const kernelVersion = pkg.replace(/^linux-image-/, "");
  const recipeHash = createHash("sha256")
    .update(RECIPE_VERSION)
    .update(INIT_SCRIPT)
    .update(SSHD_CONFIG)
    .update(MODPROBE_CONF)
    .update(JSON.stringify([REQUIRED_BINARIES, OPTIONAL_BINARIES, MODULE_DIRS, MODULE_SKIP]))
    .digest("hex")
    .slice(0, 12);
  const key = `${kernelVersion}_${version.replace(/[^A-Za-z0-9.+-]/g, "_")}_${recipeHash}`;
  const finalDir = path.join(CACHE_DIR, key);
  const result = (): BuiltImage => ({
    kernel: path.join(finalDir, "vmlinuz"),
    initrd: path.join(finalDir, "initrd.img"),
    privateKeyPath: path.join(finalDir, "id_ed25519"),
    meta: readMeta(finalDir)!,
  });
  if (readMeta(finalDir)?.key === key) return result();

  // Build in a private directory and rename it into place at the end, so a
  // crashed or concurrent build never leaves a half-written image behind.
  fs.mkdirSync(CACHE_DIR, { recursive: true });
  const work = fs.mkdtempSync(path.join(CACHE_DIR, "build-"));
  try {
    const out = path.join(work, "out");
    fs.mkdirSync(out);

    await run("apt-get", ["download", `${pkg}=${version}`], work);
    const deb = fs.readdirSync(work).find((f) => f.endsWith(".deb"));
    if (!deb) throw new Error(`apt-get download ${pkg} produced no .deb`);
    const pkgRoot = path.join(work, "pkg");
    await run("dpkg-deb", ["-x", path.join(work, deb), pkgRoot]);
    fs.copyFileSync(path.join(pkgRoot, "boot", `vmlinuz-${kernelVersion}`), path.join(out, "vmlinuz"));

    // Keys: the guest's host key and the test client's key, both fresh per build.
    const hostKey = path.join(work, "ssh_host_ed25519_key");
    await run("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "netdev-vm-host", "-f", hostKey]);
    const clientKey = path.join(out, "id_ed25519");
    await run("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "netdev-vm-test", "-f", clientKey]);
    fs.chmodSync(clientKey, 0o600);
    const fingerprint = (await run("ssh-keygen", ["-l", "-E", "sha256", "-f", `${hostKey}.pub`])).split(/\s+/)[1];
    const hostKeyLine = fs.readFileSync(`${hostKey}.pub`, "utf8").trim().split(/\s+/).slice(0, 2).join(" ");

    const root = path.join(work, "root");
    await assembleRoot(root, pkgRoot, kernelVersion, {
      hostKey,
      authorizedKeys: fs.readFileSync(`${clientKey}.pub`, "utf8"),
    });
    fs.writeFileSync(path.join(out, "initrd.img"), gzipSync(packCpio(root), { level: 6 }));

    const meta: ImageMeta = { key, kernelVersion, hostKeyFingerprint: fingerprint, hostKeyLine };
    fs.writeFileSync(path.join(out, "meta.json"), JSON.stringify(meta, null, 2) + "\n");

    publishImage(out, CACHE_DIR, key, ["kernel-package.json"]);
    return result();
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}

/** Copies a host path into root, recreating every symlink on the way (merged /usr, lib aliases). */
function copyHostPath(root: string, hostPath: string): void {
  const parts = hostPath.split("/").filter(Boolean);
  let cur = "";
  for (let i = 0; i < parts.length; i++) {
    cur += "/" + parts[i];
    const dest = path.join(root, cur);
    const st = fs.lstatSync(cur);
    if (st.isSymbolicLink()) {
      const target = fs.readlinkSync(cur);
      if (!fs.existsSync(dest) && !isSymlink(dest)) fs.symlinkSync(target, dest);
      return copyHostPath(root, path.resolve(path.dirname(cur), target, ...parts.slice(i + 1)));
    }
    if (st.isDirectory()) {
      fs.mkdirSync(dest, { recursive: true });
    } else if (!fs.existsSync(dest)) {
      fs.copyFileSync(cur, dest);
      fs.chmodSync(dest, st.mode & 0o7777);
    }
  }
}

function isSymlink(p: string): boolean {
  try {
    return fs.lstatSync(p).isSymbolicLink();
  } catch {
    return false;
  }
}

/** The binary plus every shared library (and the ELF interpreter) ldd reports. */
async function copyBinaryWithLibs(root: string, bin: string): Promise<void> {
  copyHostPath(root, bin);
  const ldd = await run("ldd", [bin]).catch(() => ""); // "not a dynamic executable" -> nothing to add
  for (const m of ldd.matchAll(/(\/\S+) \(0x[0-9a-f]+\)/g)) copyHostPath(root, m[1]);
}

async function assembleRoot(
  root: string,
  pkgRoot: string,
  kver: string,
  keys: { hostKey: string; authorizedKeys: string },
): Promise<void> {
  for (const d of ["dev", "proc", "sys", "run", "tmp", "root/.ssh", "etc/ssh", "var/empty"]) {
    fs.mkdirSync(path.join(root, d), { recursive: true });
  }
  fs.chmodSync(path.join(root, "tmp"), 0o1777);
  // Same merged-/usr layout as this machine (bin -> usr/bin, lib -> usr/lib, ...),
  // so paths like /bin/bash in /etc/passwd and /lib/modules resolve in the guest.
  for (const d of ["/bin", "/sbin", "/lib", "/lib64"]) if (fs.existsSync(d)) copyHostPath(root, d);
  fs.chmodSync(path.join(root, "root"), 0o700);

  for (const bin of REQUIRED_BINARIES) await copyBinaryWithLibs(root, bin);
  for (const bin of OPTIONAL_BINARIES) if (fs.existsSync(bin)) await copyBinaryWithLibs(root, bin);
  // sshd resolves users through NSS; glibc >= 2.34 has "files" built in, older needs the module.
  for (const f of fs.readdirSync("/lib/x86_64-linux-gnu")) {
    if (f.startsWith("libnss_files")) copyHostPath(root, path.join("/lib/x86_64-linux-gnu", f));
  }
  if (!fs.existsSync(path.join(root, "usr/bin/sh"))) fs.symlinkSync("bash", path.join(root, "usr/bin/sh"));

  const etc = (rel: string, text: string, mode = 0o644) => {
    fs.writeFileSync(path.join(root, "etc", rel), text);
    fs.chmodSync(path.join(root, "etc", rel), mode);
  };
  etc("passwd", [
    "root:x:0:0:root:/root:/bin/bash",
    "sshd:x:100:65534::/run/sshd:/usr/sbin/nologin",
    "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin",
  ].join("\n") + "\n");
  etc("group", "root:x:0:\nnogroup:x:65534:\n");
  // "*" = no password but not locked ("!"), which sshd would refuse even for keys.
  etc("shadow", "root:*:19000:0:99999:7:::\nsshd:*:19000:0:99999:7:::\nnobody:*:19000:0:99999:7:::\n", 0o600);
  etc("nsswitch.conf", "passwd: files\ngroup: files\nshadow: files\nhosts: files\n");
  etc("hosts", "127.0.0.1 localhost\n");
  etc("ssh/sshd_config", SSHD_CONFIG);
  fs.mkdirSync(path.join(root, "etc/modprobe.d"));
  etc("modprobe.d/netdev-vm.conf", MODPROBE_CONF);
  // sshd refuses host keys readable by others.
  fs.copyFileSync(keys.hostKey, path.join(root, "etc/ssh/ssh_host_ed25519_key"));
  fs.chmodSync(path.join(root, "etc/ssh/ssh_host_ed25519_key"), 0o600);
  fs.copyFileSync(`${keys.hostKey}.pub`, path.join(root, "etc/ssh/ssh_host_ed25519_key.pub"));
  fs.writeFileSync(path.join(root, "root/.ssh/authorized_keys"), keys.authorizedKeys, { mode: 0o600 });
  fs.writeFileSync(path.join(root, "init"), INIT_SCRIPT, { mode: 0o755 });

  await copyModules(root, pkgRoot, kver);
}

/** Copies the network-relevant part of the kernel's module tree plus everything it depends on. */
async function copyModules(root: string, pkgRoot: string, kver: string): Promise<void> {
  const src = path.join(pkgRoot, "lib/modules", kver);
  const dest = path.join(root, "lib/modules", kver);
  fs.mkdirSync(dest, { recursive: true });

  // Let depmod work out the package's dependency graph: modules.dep lists hard
  // dependencies ("kernel/a.ko: kernel/b.ko ..."), modules.softdep the soft ones
  // ("softdep a pre: b post: c", by module name) that modprobe also loads.
  await run("depmod", ["-b", pkgRoot, kver]);
  const needs = new Map<string, string[]>(); // rel path -> rel paths it needs
  const byName = new Map<string, string>(); // module name -> rel path
  const modName = (rel: string) => path.basename(rel).replace(/\.ko(\..*)?$/, "").replace(/-/g, "_");
  for (const line of fs.readFileSync(path.join(src, "modules.dep"), "utf8").split("\n")) {
    const [mod, deps] = line.split(":");
    if (!mod || deps === undefined) continue;
    needs.set(mod, deps.split(/\s+/).filter(Boolean));
    byName.set(modName(mod), mod);
  }
  for (const line of fs.readFileSync(path.join(src, "modules.softdep"), "utf8").split("\n")) {
    const [kw, mod, ...rest] = line.trim().split(/\s+/);
    const rel = kw === "softdep" ? byName.get(mod.replace(/-/g, "_")) : undefined;
    if (!rel) continue;
    for (const w of rest) {
      const dep = byName.get(w.replace(/-/g, "_"));
      if (dep) needs.get(rel)!.push(dep);
    }
  }

  const wanted = new Set<string>();
  const want = (rel: string) => {
    if (wanted.has(rel)) return;
    wanted.add(rel);
    for (const d of needs.get(rel) ?? []) want(d);
  };
  for (const rel of needs.keys()) {
    const k = rel.slice("kernel/".length);
    if (MODULE_DIRS.some((p) => k.startsWith(p)) && !MODULE_SKIP.some((p) => k.startsWith(p))) want(rel);
  }
  for (const rel of wanted) {
    fs.mkdirSync(path.dirname(path.join(dest, rel)), { recursive: true });
    fs.copyFileSync(path.join(src, rel), path.join(dest, rel));
  }
  // depmod needs these to know which modules are built in (modprobe of those is a no-op).
  for (const f of ["modules.order", "modules.builtin", "modules.builtin.modinfo"]) {
    if (fs.existsSync(path.join(src, f))) fs.copyFileSync(path.join(src, f), path.join(dest, f));
  }
  await run("depmod", ["-b", root, kver]);
}

/** A "newc" cpio archive of dir (the format the kernel unpacks as initramfs), owned by root. */
function packCpio(dir: string): Buffer {
  const chunks: Buffer[] = [];
  let ino = 1;
  const pad4 = (n: number) => Buffer.alloc((4 - (n % 4)) % 4);
  const entry = (name: string, mode: number, data: Buffer, rdev: [number, number] = [0, 0]) => {
    const fields = [ino++, mode, 0, 0, 1, 0, data.length, 0, 0, rdev[0], rdev[1], Buffer.byteLength(name) + 1, 0];
    const header = "070701" + fields.map((f) => f.toString(16).padStart(8, "0")).join("");
    const head = Buffer.from(header + name + "\0", "latin1");
    chunks.push(head, pad4(head.length), data, pad4(data.length));
  };
  (function walk(rel: string) {
    for (const name of fs.readdirSync(path.join(dir, rel)).sort()) {
      const r = rel ? `${rel}/${name}` : name;
      const full = path.join(dir, r);
      const st = fs.lstatSync(full);
      const perm = st.mode & 0o7777;
      if (st.isSymbolicLink()) entry(r, 0o120777, Buffer.from(fs.readlinkSync(full)));
      else if (st.isDirectory()) {
        entry(r, 0o040000 | perm, Buffer.alloc(0));
        walk(r);
      } else entry(r, 0o100000 | perm, fs.readFileSync(full));
    }
  })("");
  // The kernel opens /dev/console for init's stdio before init can mount devtmpfs.
  entry("dev/console", 0o020600, Buffer.alloc(0), [5, 1]);
  entry("TRAILER!!!", 0, Buffer.alloc(0));
  return Buffer.concat(chunks);
}

// ---------------------------------------------------------------------------
// Running VMs

const running = new Set<ChildProcess>();
let exitHookInstalled = false;

/** Kill every QEMU we started if the test process exits without stop(). */
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on("exit", () => {
    for (const child of running) child.kill("SIGKILL");
  });
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

/** POSIX single-quoting: SSH sends one command string that the remote shell splits. */
export function shellQuote(arg: string): string {
  return `'${arg.replace(/'/g, `'\\''`)}'`;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function tail(file: string, lines = 40): string {
  try {
    return fs.readFileSync(file, "utf8").split("\n").slice(-lines).join("\n");
  } catch {
    return "(no console log)";
  }
}

export async function startVmHost(opts: VmHostOptions = {}): Promise<VmHost> {
  const img = await getImage();
  const name = opts.name ?? "vm1";
  const port = opts.sshPort ?? (await freePort());
  const seg = opts.l2Segment;
  const segMac = seg ? (seg.mac ?? SEG_MAC[seg.role]).toLowerCase() : undefined;

  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), `netdev-vm-${name}-`));
  const consoleLog = path.join(tmp, "console.log");
  const knownHosts = path.join(tmp, "known_hosts");
  const controlPath = path.join(tmp, "ssh-mux");
  // A private copy of the client key: a running VM must not depend on the cache,
  // which a rebuild (new kernel or recipe) may clean up.
  const privateKeyPath = path.join(tmp, "id_ed25519");
  fs.copyFileSync(img.privateKeyPath, privateKeyPath);
  fs.chmodSync(privateKeyPath, 0o600);
  fs.writeFileSync(knownHosts, `[127.0.0.1]:${port} ${img.meta.hostKeyLine}\n`);

  const append = [
    "console=ttyS0", "quiet", "panic=-1",
    // Under TCG every boot-time self-test is slow: skip the crypto API self-tests
    // and the TSC calibration/watchdog (the emulated TSC is derived from the host
    // clock). Together about 1-2 s of boot.
    "cryptomgr.notests", "tsc=reliable",
    `netdev_name=${name}`, `netdev_usermac=${USER_MAC}`,
  ];
  if (segMac) append.push(`netdev_segmac=${segMac}`);
  const args = [
    "-accel", "tcg", // /dev/kvm exists on the CI machines but KVM hangs there
    "-m", String(opts.memoryMiB ?? 512),
    "-nodefaults", "-display", "none", "-no-reboot", // panic=-1 + -no-reboot: a dead init ends QEMU
    "-monitor", "none",
    "-serial", `file:${consoleLog}`,
    "-kernel", img.kernel, "-initrd", img.initrd,
    "-append", append.join(" "),
    "-netdev", `user,id=n0,hostfwd=tcp:127.0.0.1:${port}-:22`,
    // romfile= : no iPXE option ROM, we boot the kernel directly.
    "-device", `virtio-net-pci,netdev=n0,mac=${USER_MAC},romfile=`,
  ];
  if (seg) {
    args.push(
      "-netdev", `socket,id=seg,${seg.role}=127.0.0.1:${seg.port}`,
      "-device", `virtio-net-pci,netdev=seg,mac=${segMac},romfile=`,
    );
  }

  installExitHook();
  let qemu: ChildProcess | undefined;
  let qemuStderr = "";
  let exited = false;
  const startQemu = () => {
    const child = spawn("qemu-system-x86_64", args, { stdio: ["ignore", "ignore", "pipe"] });
    child.stderr!.on("data", (d) => (qemuStderr += String(d)));
    child.on("exit", (code, signal) => {
      exited = true;
      // Status 0 means the guest rebooted: with panic=-1 and -no-reboot, a kernel panic.
      qemuStderr += signal ? ` [killed by ${signal}]` : code === 0 ? " [guest panicked or rebooted]" : ` [exit ${code}]`;
      running.delete(child);
    });
    child.on("error", (e) => {
      exited = true;
      qemuStderr += String(e);
    });
    running.add(child);
    watchdog(child);
    qemu = child;
  };

  const sshArgs = (connectTimeout: number) => [
    "-F", "/dev/null", // ignore the user's ssh config
    "-o", "StrictHostKeyChecking=yes",
    "-o", `UserKnownHostsFile=${knownHosts}`,
    "-o", "GlobalKnownHostsFile=/dev/null",
    "-o", "BatchMode=yes",
    "-o", "IdentitiesOnly=yes",
    "-o", `ConnectTimeout=${connectTimeout}`,
    "-o", "LogLevel=ERROR",
    // Connection sharing: the first exec leaves a master connection behind and
    // later ones only open a channel on it (~0.15 s instead of ~1 s per command
    // under TCG, where sshd's per-connection re-exec and key exchange are slow).
    // If the master is gone, ssh just connects directly and becomes the new one.
    "-o", "ControlMaster=auto",
    "-o", `ControlPath=${controlPath}`,
    "-o", "ControlPersist=yes",
    "-i", privateKeyPath,
    "-p", String(port),
    "root@127.0.0.1",
  ];
  const ssh = (argv: string[], connectTimeout = 30, killAfterMs?: number) =>
    new Promise<{ stdout: string; stderr: string; code: number }>((resolve) => {
      const child = spawn("ssh", [...sshArgs(connectTimeout), "--", ...argv.map(shellQuote)], {
        stdio: ["ignore", "pipe", "pipe"],
      });
      if (killAfterMs) {
        const timer = setTimeout(() => child.kill("SIGKILL"), killAfterMs);
        child.on("exit", () => clearTimeout(timer));
      }
      let stdout = "";
      let stderr = "";
      child.stdout.on("data", (d) => (stdout += String(d)));
      child.stderr.on("data", (d) => (stderr += String(d)));
      child.on("error", (e) => resolve({ stdout, stderr: stderr + String(e), code: 255 }));
      child.on("close", (code) => resolve({ stdout, stderr, code: code ?? 255 }));
    });

  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    // Ends the shared master connection; it would also exit once QEMU is gone.
    await new Promise((r) =>
      spawn("ssh", ["-F", "/dev/null", "-o", `ControlPath=${controlPath}`, "-O", "exit", "x"], { stdio: "ignore" })
        .on("close", r)
        .on("error", r),
    );
    const child = qemu;
    if (child && !exited) {
      const gone = new Promise((r) => child.once("exit", r));
      child.kill("SIGTERM");
      await Promise.race([gone, sleep(3000)]);
      if (!exited) {
        child.kill("SIGKILL");
        await Promise.race([gone, sleep(3000)]);
      }
    }
    fs.rmSync(tmp, { recursive: true, force: true });
  };

  const deadline = Date.now() + SSH_READY_TIMEOUT_MS;
  let started = 0;
  try {
    // QEMU 7.2's socket netdev tries `connect` once, and if nobody listens yet
    // it keeps running with a NIC that never carries a frame. So wait for the
    // peer's listening socket first. (The probe connection is harmless: the
    // listening QEMU sees it end and goes back to accepting.)
    if (seg?.role === "connect") await waitForListener(seg.port, deadline);
    started = Date.now();
    startQemu();
    // Then wait for the first successful SSH command.
    let last = "";
    for (;;) {
      if (exited) throw new Error(`qemu exited: ${qemuStderr.trim()}`);
      if (Date.now() > deadline) {
        throw new Error(`no SSH within ${SSH_READY_TIMEOUT_MS / 1000}s (last ssh error: ${last.trim()})`);
      }
      // ConnectTimeout bounds connect + banner; the kill bounds a guest stuck later on.
      const r = await ssh(["true"], 5, 30_000);
      if (r.code === 0) break;
      last = r.stderr;
      await sleep(250);
    }
  } catch (e) {
    const log = tail(consoleLog);
    await stop();
    throw new Error(`VM ${name} did not come up: ${(e as Error).message}\n--- console (tail) ---\n${log}`);
  }
  const bootMs = Date.now() - started;

  return {
    name,
    connection: {
      host: "127.0.0.1",
      port,
      user: "root",
      privateKeyPath,
      hostKey: img.meta.hostKeyFingerprint,
    },
    exec: (argv) => ssh(argv),
    bootMs,
    stop,
  };
}

/** Resolves once something accepts TCP connections on 127.0.0.1:port. */
async function waitForListener(port: number, deadline: number): Promise<void> {
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const sock = net.connect(port, "127.0.0.1");
      sock.once("connect", () => {
        sock.destroy();
        resolve(true);
      });
      sock.once("error", () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`nothing listens on the L2 segment port ${port}`);
    await sleep(200);
  }
}

/**
 * Kills QEMU if this test process dies without running its 'exit' handlers
 * (SIGKILL, SIGTERM from a test runner). A detached shell polls both PIDs.
 */
export function watchdog(child: ChildProcess): void {
  if (!child.pid) return;
  const script =
    `while kill -0 ${process.pid} 2>/dev/null && kill -0 ${child.pid} 2>/dev/null; do sleep 1; done; ` +
    `kill -9 ${child.pid} 2>/dev/null`;
  spawn("bash", ["-c", script], { detached: true, stdio: "ignore" }).unref();
}
