import * as pulumi from "@pulumi/pulumi";
import { type ArgsByResource, OUTPUT_NAMES } from "./args.generated";
import { withOutputs } from "./types";

/**
 * The provider module the Pulumi dynamic provider host loads from each resource's
 * `__provider` state field (it evaluates the text and calls `handler()`).
 *
 * Pulumi's closure serializer would produce the same thing with ~2 KiB of wrappers
 * per resource; writing the module text directly keeps it under 100 bytes, captures
 * nothing, and can never break on what the serializer cannot handle. The runtime is
 * required by its stable subpath at call time, resolved from the program directory.
 * This text is in every stack's state forever: never change the subpath.
 */
export function providerModule(kind: string): string {
  return `exports.handler=function(){return require("pulumi-netdev/runtime").provider(${JSON.stringify(kind)})};`;
}

/** Type token the engine routes to the dynamic provider host: `pulumi-nodejs:dynamic/netdev:<Class>`. */
export function typeToken(kind: string): string {
  return `pulumi-nodejs:dynamic/netdev:${kind}`;
}

/**
 * Base of every netdev resource: a dynamic-provider resource with a hand-written
 * provider module. Registers the resource's outputs (OUTPUT_NAMES, derived from its
 * input fields and its class's declared outputs by scripts/gen-sdk-types.ts).
 */
export abstract class NetdevResource extends pulumi.CustomResource {
  protected constructor(kind: keyof ArgsByResource, name: string, args: object, opts: pulumi.CustomResourceOptions | undefined) {
    const props = withOutputs(args, OUTPUT_NAMES[kind]);
    super(typeToken(kind), name, { ...props, ...secretConnection(props.connection), __provider: providerModule(kind) }, {
      ...opts,
      // Covers the outputs only: the engine stores the inputs as registered (see secretConnection).
      additionalSecretOutputs: [...(opts?.additionalSecretOutputs ?? []), "connection"],
    });
  }
}

/**
 * The connection carries credentials (privateKey, password, passphrase, sudo.password):
 * registered as a secret whatever the program marked, or the engine would store a
 * plain password in the state's inputs. A connection left entirely to stack config
 * (absent) stays absent.
 */
function secretConnection(connection: unknown): { connection?: pulumi.Output<unknown> } {
  return connection === undefined ? {} : { connection: pulumi.secret(connection) };
}
