export type { ConnectionArgs } from "./args.generated";

/** Props for registration: the args, plus every output name not among them (as undefined, so the SDK resolves it). */
export function withOutputs(args: object, outputs: readonly string[]): Record<string, unknown> {
  const props: Record<string, unknown> = { ...args };
  for (const o of outputs) if (!(o in props)) props[o] = undefined;
  return props;
}
