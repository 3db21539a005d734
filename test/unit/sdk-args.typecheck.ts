// Compiled (not run) by test/unit/sdk-types.test.ts: each generated SDK Args type
// (sdk/args.generated.ts) must be mutually assignable with the zod input type of the
// resource's fields, every level wrapped in pulumi.Input. A field added, removed or
// retyped in provider/ without `npm run gen:sdk` is a compile error here.
import type * as pulumi from "@pulumi/pulumi";
import type { z } from "zod";
import type { resources } from "../../provider/kinds";
import type { ArgsByResource } from "../../sdk/args.generated";

type Primitive = string | number | boolean | null;
type Deep<T> = T extends Primitive ? T : T extends (infer E)[] ? pulumi.Input<Deep<E>>[] : { [K in keyof T]: pulumi.Input<Deep<Exclude<T[K], undefined>>> };
/** A runtime typed `ResourceRuntime & { inputFields: typeof fields }` also carries ZodRawShape's index signature. */
type Known<S> = { [K in keyof S as string extends K ? never : K]: S[K] };
type ZodArgs<S> = Known<S> extends z.ZodRawShape ? Deep<z.input<z.ZodObject<Known<S>>>> : never;

type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
type AllTrue<T extends Record<string, true>> = T;

type Resources = typeof resources;
export type ArgsAgree = AllTrue<{ [R in keyof Resources]: Same<ArgsByResource[R], ZodArgs<Resources[R]["inputFields"]>> }>;
export type SameResources = AllTrue<{ resources: Same<keyof ArgsByResource, keyof Resources> }>;
