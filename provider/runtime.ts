/**
 * The stable entry point the serialized shim requires at call time
 * (`require("pulumi-netdev/runtime")`). Every stack's state refers to it forever:
 * never rename it, and keep `provider(kind)` accepting state from older versions.
 */
import { configureDefaults, type ResourceRuntime } from "./engine";
import { registry } from "./kinds";

export interface ConfigureRequest {
  config: { get(key: string): string | undefined };
}

export function provider(resource: string): Omit<ResourceRuntime, "inputFields"> & { configure(req: ConfigureRequest): Promise<void> } {
  const runtime = registry[resource];
  if (!runtime) throw new Error(`pulumi-netdev: unknown resource kind ${resource}; is the installed pulumi-netdev older than the one that wrote this state?`);
  return {
    check: (olds, news) => runtime.check(olds, news),
    diff: (id, olds, news) => runtime.diff(id, olds, news),
    create: (inputs) => runtime.create(inputs),
    read: (id, props) => runtime.read(id, props),
    update: (id, olds, news) => runtime.update(id, olds, news),
    delete: (id, props) => runtime.delete(id, props),
    configure: async (req) => configureDefaults((k) => req.config.get(k)),
  };
}

export { setTransportFactory } from "./engine";
export { closeAllConnections, sshStats } from "./transport/ssh";
