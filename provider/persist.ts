// `persist` (DESIGN.md §8): writes, verifies, checks and removes the
// systemd-networkd files a kind renders (LinkKind.networkd), so that the next
// boot recreates the device. The running kernel is never touched from here: no
// `networkctl reload`, no restart; networkd reads the files at its next start.
import { createHash } from "node:crypto";
import { NetdevError } from "./errors";
import { LINK_ONLY, readLink } from "./iproute/link";
import type { Desired, LinkKind } from "./kinds/types";
import { type NetworkdFacts, type NetworkdFiles, renderUnit } from "./networkd";
import type { Transport } from "./transport/types";

export const NETWORK_DIR = "/etc/systemd/network";
/** Every file (and drop-in) we write starts with this; after 50- (distribution defaults), before 80-/99- (catch-alls). */
export const PREFIX = "60-pulumi-netdev-";
/** First line of a `.network` written only to hold other resources' drop-ins (safe to remove with its last drop-in). */
const HOLDER_MARK = "# pulumi-netdev: holds drop-ins for devices stacked on or enslaved to";

/** A file written for a resource, as recorded in its outputs (`persistedFiles`). */
export interface PersistedFile {
  path: string;
  sha256: string;
}

const sha256 = (text: string) => createHash("sha256").update(text).digest("hex");

// Variable parts are positional parameters of a constant script, never shell text.
/** Atomic write: temp file in the same directory, mode 0644, rename; then print it back for verification. */
const WRITE_SCRIPT = 'set -e; umask 022; mkdir -p -- "$2"; t="$1.pulumi-netdev-tmp"; cat > "$t"; chmod 0644 "$t"; mv -f -- "$t" "$1"; cat -- "$1"';
/** Removes the files; then, for each drop-in directory given after `--`, the directory once empty and its holder file. */
const REMOVE_SCRIPT =
  'while [ "$1" != "--" ]; do rm -f -- "$1"; shift; done; shift; ' +
  'for d; do rmdir -- "$d" 2>/dev/null || continue; f="${d%.d}"; head -n 1 -- "$f" 2>/dev/null | grep -q "^# pulumi-netdev: holds drop-ins" && rm -f -- "$f"; done; exit 0';

/** The resource the files belong to: named in their header; `name` also names its drop-ins. */
export interface Owner {
  resource: string;
  name: string;
}

function header(owner: Owner): string {
  return `Managed by pulumi-netdev: ${owner.resource} ${owner.name} (persist: true).\nEdits are reported as drift by \`pulumi refresh\` and replaced by the next \`pulumi up\`.`;
}

/**
 * A host where networkd will not run at boot cannot keep anything: refuse before any
 * change (the caller runs this first), naming the host and what is missing.
 */
export async function preflight(t: Transport): Promise<void> {
  const argv = ["systemctl", "is-enabled", "systemd-networkd.service"];
  const r = await t.run(argv, { idempotent: true });
  const state = r.stdout.trim();
  if (r.code === 0 && state === "enabled") return;
  const why = /not found|No such file/i.test(r.stderr) && !state
    ? "systemctl was not found (the host does not run systemd)"
    : `systemd-networkd.service is ${state || "not installed"} (\`systemctl is-enabled systemd-networkd.service\`: ${(r.stderr.trim() || state || `exit ${r.code}`)})`;
  throw new NetdevError(`${t.label}: persist needs systemd-networkd enabled, but ${why}; nothing was changed. Enable it (\`systemctl enable systemd-networkd\`) or set persist: false`);
}

/** The facts the renderers need from the kernel: the MACs to pin and the kinds of masters. */
async function factsFor(t: Transport, d: Desired, outs: Record<string, any>): Promise<NetworkdFacts> {
  const kindOf = async (ns: string | undefined, dev: string | undefined) => (dev ? (await readLink(t, ns, dev, LINK_ONLY))?.linkinfo?.info_kind : undefined);
  return {
    macAddress: outs.macAddress,
    masterKind: await kindOf(d.namespace, d.master),
    peerMacAddress: outs.peerMacAddress,
    peerMasterKind: await kindOf(d.peerNamespace ?? d.namespace, d.peerMaster),
  };
}

/**
 * The `.network` directory for lines that belong to another device (`others`):
 * - that device is persisted by this stack (our own file exists): its drop-in directory;
 * - networkd manages it with another file: that file's drop-in directory (networkd
 *   applies only the first .network that matches a link, so a second file would be ignored);
 * - nothing manages it: a file of ours that matches it and holds the drop-ins.
 */
async function dropInDir(t: Transport, device: string): Promise<{ dir: string; holder?: string }> {
  const own = `${NETWORK_DIR}/${PREFIX}${device}.network`;
  const test = await t.run(["test", "-f", own], { idempotent: true });
  if (test.code === 0) return { dir: `${own}.d` };
  const r = await t.run(["networkctl", "status", "--no-pager", "--no-legend", "--", device], { idempotent: true });
  const file = /^\s*Network File:\s*(\/\S+\.network)\s*$/m.exec(r.stdout)?.[1];
  if (file) return { dir: `${NETWORK_DIR}/${file.split("/").pop()}.d` };
  return { dir: `${own}.d`, holder: own };
}

/** The files to write: path → text. `dirs`: drop-in directories of `others`, resolved on the host. */
function plan(owner: Owner, files: NetworkdFiles, dirs: { dir: string; holder?: string }[]): Map<string, string> {
  const out = new Map<string, string>();
  for (const u of files.units) out.set(`${NETWORK_DIR}/${PREFIX}${u.device}.${u.type}`, renderUnit(header(owner), u));
  files.others.forEach((o, i) => {
    const sections = [...(o.entries.length ? [{ name: "Network", entries: o.entries }] : []), ...(o.sections ?? [])];
    out.set(`${dirs[i].dir}/${PREFIX}${owner.name}.conf`, renderUnit(header(owner), { sections }));
  });
  return out;
}

async function writeOne(t: Transport, path: string, text: string): Promise<void> {
  const dir = path.slice(0, path.lastIndexOf("/"));
  const argv = ["sh", "-c", WRITE_SCRIPT, "sh", path, dir];
  const r = await t.run(argv, { stdin: text });
  if (r.code !== 0) throw new NetdevError(`${t.label}: writing ${path} failed: ${r.stderr.trim() || `exit ${r.code}`}`);
  if (r.stdout !== text) throw new NetdevError(`${t.label}: ${path} does not read back as written (${r.stdout.length} bytes instead of ${text.length})`);
}

/**
 * Writes (or rewrites) every file of the resource and verifies each by reading it
 * back. `previous`: the files recorded before; those no longer planned are removed.
 */
export async function writeLinkFiles(t: Transport, kind: LinkKind, d: Desired, outs: Record<string, any>, previous: PersistedFile[] = []): Promise<PersistedFile[]> {
  return writeFiles(t, { resource: kind.resource, name: d.name }, kind.networkd(d, await factsFor(t, d, outs)), previous);
}

/** Writes the rendered files of `owner` (see writeLinkFiles). */
export async function writeFiles(t: Transport, owner: Owner, files: NetworkdFiles, previous: PersistedFile[] = []): Promise<PersistedFile[]> {
  const dirs = [];
  for (const o of files.others) dirs.push(await dropInDir(t, o.device));
  const planned = plan(owner, files, dirs);
  // Holder files first: a drop-in directory without its .network is read by nobody.
  for (const dir of dirs) {
    if (!dir.holder) continue;
    const device = dir.holder.slice(`${NETWORK_DIR}/${PREFIX}`.length, -".network".length);
    await writeOne(t, dir.holder, `${HOLDER_MARK} ${device}.\n# Created by pulumi-netdev; removed with its last drop-in.\n\n[Match]\nName=${device}\n\n[Network]\nConfigureWithoutCarrier=yes\n`);
  }
  for (const [path, text] of planned) await writeOne(t, path, text);
  const stale = previous.map((f) => f.path).filter((p) => !planned.has(p));
  if (stale.length) await removePaths(t, stale);
  return [...planned].map(([path, text]) => ({ path, sha256: sha256(text) }));
}

/** True when every recorded file is on the host with the content we wrote. */
export async function filesIntact(t: Transport, files: PersistedFile[]): Promise<boolean> {
  if (files.length === 0) return false;
  // Missing files are absent from stdout (sha256sum exits 1 and names them on stderr).
  const r = await t.run(["sha256sum", "--", ...files.map((f) => f.path)], { idempotent: true });
  const found = new Map<string, string>();
  for (const line of r.stdout.split("\n")) {
    const m = /^([0-9a-f]{64}) [ *](.+)$/.exec(line);
    if (m) found.set(m[2], m[1]);
  }
  if (r.code !== 0 && found.size === 0 && !/No such file/.test(r.stderr))
    throw new NetdevError(`${t.label}: reading the persisted files failed: ${r.stderr.trim() || `exit ${r.code}`}`);
  return files.every((f) => found.get(f.path) === f.sha256);
}

async function removePaths(t: Transport, paths: string[]): Promise<void> {
  const dirs = [...new Set(paths.filter((p) => p.endsWith(".conf")).map((p) => p.slice(0, p.lastIndexOf("/"))))];
  const argv = ["sh", "-c", REMOVE_SCRIPT, "sh", ...paths, "--", ...dirs];
  const r = await t.run(argv);
  if (r.code !== 0) throw new NetdevError(`${t.label}: removing ${paths.join(", ")} failed: ${r.stderr.trim() || `exit ${r.code}`}`);
}

/** Removes the resource's files (the running device is the engine's business). */
export async function removeFiles(t: Transport, files: PersistedFile[] | undefined): Promise<void> {
  if (files?.length) await removePaths(t, files.map((f) => f.path));
}
