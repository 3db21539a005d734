import type * as pulumi from "@pulumi/pulumi";
import type { z } from "zod";
import type { Connection } from "../provider/connection";
import type { commonLinkFields } from "../provider/schema";

/** Every field (recursively) may be a plain value, a promise or an Output. */
export type DeepInput<T> = T extends string | number | boolean | undefined | null
  ? pulumi.Input<T>
  : T extends (infer E)[]
    ? pulumi.Input<DeepInput<E>[]>
    : pulumi.Input<{ [K in keyof T]: DeepInput<T[K]> }>;

/** How to reach a host over SSH (see README "Connection"). Mark credentials as secrets. */
export type ConnectionArgs = DeepInput<Connection>;

/** The Args type of a resource, inferred from its zod fields (the one source of types). */
export type ArgsOf<F extends z.ZodRawShape> = {
  [K in keyof z.input<z.ZodObject<F>>]: DeepInput<z.input<z.ZodObject<F>>[K]>;
};

export type LinkArgs<F extends z.ZodRawShape> = ArgsOf<typeof commonLinkFields & F>;

/** Names of the outputs every link resource has besides its inputs. */
export const LINK_OUTPUTS = ["ifindex", "macAddress", "operState", "mtu", "addresses", "master", "up", "persist", "persistedFiles"] as const;

export function withOutputs(args: Record<string, unknown>, outputs: readonly string[]): Record<string, unknown> {
  const props: Record<string, unknown> = { ...args };
  for (const o of outputs) if (!(o in props)) props[o] = undefined;
  return props;
}

