import { LinkEngine, type ResourceRuntime } from "../engine";
import { bridge } from "./bridge";
import { namespace } from "./netns";
import { tuntap } from "./tuntap";
import { veth } from "./veth";

/** Resource class name → its runtime. One line per kind. */
export const registry: Record<string, ResourceRuntime> = {
  Bridge: new LinkEngine(bridge),
  TapDevice: new LinkEngine(tuntap),
  VethPair: new LinkEngine(veth),
  Namespace: namespace,
};
