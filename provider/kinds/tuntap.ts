import { z } from "zod";
import { ipArgv, READ_ONLY } from "../iproute/link";
import type { Transport } from "../transport/types";
import { netdevUnit, networkUnit, section } from "../networkd";
import type { Desired, LinkKind } from "./types";

const account = z.union([
  z.number().int().min(0).max(4294967294),
  z.string().regex(/^[a-z_][a-z0-9_-]*\$?$/i, "must be a user/group name or a numeric id").max(32),
]);

/** `ip -d` prints the owner by name when the host can resolve it; compare by number then. */
async function numericId(t: Transport, db: "passwd" | "group", value: unknown): Promise<unknown> {
  if (typeof value !== "string" || /^\d+$/.test(value)) return typeof value === "string" ? Number(value) : value;
  const r = await t.run(["getent", db, value], READ_ONLY);
  const id = r.code === 0 ? Number(r.stdout.split(":")[2]) : NaN;
  return Number.isFinite(id) ? id : value;
}

export const tuntap = {
  resource: "TapDevice",
  infoKind: "tun",
  fields: {
    /** "tap" (Ethernet frames, for VMs) or "tun" (IP packets, for VPNs). Default "tap". Creation-only. */
    mode: z.enum(["tap", "tun"]).default("tap"),
    /** User (name or uid) allowed to attach to the device without CAP_NET_ADMIN. Creation-only. */
    owner: account.optional(),
    /** Group (name or gid) allowed to attach. Creation-only. */
    group: account.optional(),
    /** Multiple queues (IFF_MULTI_QUEUE), for multi-queue virtio-net. Default false. Creation-only. */
    multiQueue: z.boolean().default(false),
    /** virtio-net header on every frame (IFF_VNET_HDR), as QEMU's vhost expects. Default false. Creation-only. */
    vnetHdr: z.boolean().default(false),
    /** Prefix packets with the 4-byte packet-information header. Default false (IFF_NO_PI). Creation-only. */
    pi: z.boolean().default(false),
  },
  refine(v, ctx) {
    if (v.mode === "tun" && v.macAddress !== undefined)
      ctx.addIssue({ code: "custom", path: ["macAddress"], message: `a tun device carries IP packets and has no Ethernet address (got ${v.macAddress}); use mode "tap"` });
  },
  replaceOn: ["mode", "owner", "group", "multiQueue", "vnetHdr", "pi"],
  createArgv(d) {
    const add = ipArgv(d.namespace, "tuntap", "add", "dev", d.name, "mode", d.mode,
      ...(d.owner !== undefined ? ["user", String(d.owner)] : []),
      ...(d.group !== undefined ? ["group", String(d.group)] : []),
      ...(d.multiQueue ? ["multi_queue"] : []),
      ...(d.vnetHdr ? ["vnet_hdr"] : []),
      ...(d.pi ? ["pi"] : []));
    // `ip tuntap add` takes no mtu/address; set them before anything else sees the device.
    const set = [
      ...(d.mtu !== undefined ? ["mtu", String(d.mtu)] : []),
      ...(d.macAddress ? ["address", d.macAddress] : []),
    ];
    return set.length ? [add, ipArgv(d.namespace, "link", "set", "dev", d.name, ...set)] : [add];
  },
  async readFields(link, { transport, desired }) {
    const data = link.linkinfo?.info_data ?? {};
    const owner = data.user;
    const group = data.group;
    return {
      mode: data.type,
      owner: typeof desired.owner === "number" ? await numericId(transport, "passwd", owner) : owner,
      group: typeof desired.group === "number" ? await numericId(transport, "group", group) : group,
      multiQueue: data.multi_queue === true,
      vnetHdr: data.vnet_hdr === true,
      pi: data.pi === true,
    };
  },
  networkd(d, facts) {
    const own = section(d.mode === "tun" ? "Tun" : "Tap", [
      ["User", d.owner],
      ["Group", d.group],
      ["MultiQueue", d.multiQueue || undefined],
      ["VNetHeader", d.vnetHdr || undefined],
      ["PacketInfo", d.pi || undefined],
    ]);
    // A tun device has no Ethernet address to pin.
    const pinned = d.mode === "tun" ? {} : facts;
    return { units: [netdevUnit(d.name, d.mode, [own]), networkUnit(d.name, d, pinned)], others: [] };
  },
  updateArgv(d: Desired, mismatches) {
    // Every tun/tap option is fixed at TUNSETIFF time; diff replaces the device instead.
    if (mismatches.length) throw new Error(`${d.name}: ${mismatches.map((m) => m.field).join(", ")} can only be set when the device is created`);
    return [];
  },
} satisfies LinkKind;
