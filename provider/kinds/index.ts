import { LinkEngine, type ResourceRuntime } from "../engine";
import { bond } from "./bond";
import { bridge } from "./bridge";
import { iface } from "./interface";
import { ipvlan } from "./ipvlan";
import { macvlan, macvtap } from "./macvlan";
import { namespace } from "./netns";
import { route } from "./route";
import { tuntap } from "./tuntap";
import { veth } from "./veth";
import { vlan } from "./vlan";
import { vxlan } from "./vxlan";

/**
 * Resource class name → its runtime. One line per kind. Typed by `satisfies` so that
 * each runtime's `inputFields` keeps its own type: scripts/gen-sdk-types.ts reads it.
 */
export const resources = {
  Bridge: new LinkEngine(bridge),
  TapDevice: new LinkEngine(tuntap),
  VethPair: new LinkEngine(veth),
  Vxlan: new LinkEngine(vxlan),
  MacvlanLink: new LinkEngine(macvlan),
  MacvtapLink: new LinkEngine(macvtap),
  IpvlanLink: new LinkEngine(ipvlan),
  Vlan: new LinkEngine(vlan),
  Bond: new LinkEngine(bond),
  Namespace: namespace,
  Route: route,
  Interface: iface,
} satisfies Record<string, ResourceRuntime>;

export const registry: Record<string, ResourceRuntime> = resources;
