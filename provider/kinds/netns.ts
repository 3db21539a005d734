import { z } from "zod";
import { connectionInputSchema } from "../connection";
import { checkInputs, diffInputs, makeId, resolveConnection, type ResourceRuntime, stripUndefined, transportFor } from "../engine";
import { CommandError, NetdevError } from "../errors";
import { ipArgv, parseJson, READ_ONLY, runChecked } from "../iproute/link";
import { netnsName } from "../schema";
import type { Transport } from "../transport/types";

export const namespaceFields = {
  /** How to reach the host. Defaults come from stack config. */
  connection: connectionInputSchema.optional(),
  /** Namespace name (a file under /run/netns). Changing it replaces the namespace. */
  name: netnsName,
  /** Take over an existing namespace of this name instead of failing. Default false. */
  adopt: z.boolean().default(false),
  /** Not supported: systemd-networkd does not create network namespaces, so a Namespace cannot survive a reboot. Only false is accepted. */
  persist: z.boolean().optional(),
};
const schema = z.strictObject(namespaceFields).superRefine((v, ctx) => {
  if (v.persist === true)
    ctx.addIssue({ code: "custom", path: ["persist"], message: "cannot be set on a Namespace: systemd-networkd does not create network namespaces, so nothing can recreate it at boot (iproute2's /run/netns is gone after a reboot)" });
});

async function exists(t: Transport, name: string): Promise<boolean> {
  const argv = ["ip", "-j", "netns", "list"];
  const list = parseJson<{ name: string }[]>(await runChecked(t, argv, READ_ONLY), t.label, argv) ?? [];
  return list.some((n) => n.name === name);
}

/** `ip netns add/del`: a namespace the stack owns, for veth peers and other devices. */
export const namespace = {
  inputFields: namespaceFields,

  check: (_olds, news) => checkInputs(schema, news),

  diff: async (_id, olds, news) => diffInputs(olds, news, ["name"]),

  async create(inputs) {
    const connection = resolveConnection(inputs.connection);
    const t = transportFor(inputs.connection);
    if (await exists(t, inputs.name)) {
      if (!inputs.adopt) throw new NetdevError(`${t.label}: network namespace ${inputs.name} already exists; it was left untouched. Set adopt: true to take it over`);
    } else {
      await runChecked(t, ["ip", "netns", "add", inputs.name]);
    }
    return { id: makeId(connection, inputs.name, ""), outs: stripUndefined({ ...inputs }) };
  },

  async read(id, props) {
    const t = transportFor(props.connection);
    return (await exists(t, props.name)) ? { id, props } : { id: "", props: {} };
  },

  async update(_id, _olds, news) {
    return { outs: stripUndefined({ ...news }) };
  },

  async delete(_id, props) {
    const t = transportFor(props.connection);
    if (!(await exists(t, props.name))) return;
    // `ip netns del` would silently destroy whatever is still inside (veth ends, taps...).
    const argv = ipArgv(props.name, "-j", "link", "show");
    const links = parseJson<{ ifname: string }[]>(await runChecked(t, argv, READ_ONLY), t.label, argv);
    const inside = links.map((l) => l.ifname).filter((n) => n !== "lo");
    if (inside.length > 0)
      throw new NetdevError(`${t.label}: network namespace ${props.name} still holds ${inside.join(", ")}; refusing to delete it (delete or move those devices first)`);
    const del = ["ip", "netns", "del", props.name];
    const r = await t.run(del);
    if (r.code !== 0 && !/No such file/.test(r.stderr)) throw new CommandError(t.label, del, r.code, r.stderr);
  },
} satisfies ResourceRuntime;
