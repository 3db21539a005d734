export { Bridge, type BridgeArgs } from "./bridge";
export { Namespace, type NamespaceArgs } from "./namespace";
export { TapDevice, type TapDeviceArgs } from "./tapDevice";
export { VethPair, type VethPairArgs } from "./vethPair";
export type { ConnectionArgs } from "./types";
