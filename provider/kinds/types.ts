import type { z } from "zod";
import type { LinkJson } from "../iproute/link";
import type { NetworkdFacts, NetworkdFiles, PersistLimit } from "../networkd";
import type { Transport } from "../transport/types";

/** Validated inputs of a link resource (common fields plus the kind's own). */
export type Desired = Record<string, any> & { name: string; namespace?: string };

/** A field whose kernel value differs from the wanted one. */
export interface Mismatch {
  field: string;
  desired: unknown;
  actual: unknown;
}

/** Another device a kind reads to report its fields (a veth's peer). */
export interface Companion {
  namespace: string | undefined;
  name: string;
}

export interface ReadContext {
  transport: Transport;
  desired: Desired;
  /** The kind's companions as read together with the device (absent: read them yourself). */
  companions?: (Companion & { link: LinkJson | undefined })[];
}

/**
 * One device kind: everything the engine needs to know about it. Adding a kind is
 * one file exporting one of these plus one line in the registry.
 */
export interface LinkKind {
  /** SDK class name and type token suffix, e.g. "Bridge". */
  resource: string;
  /** `linkinfo.info_kind` the kernel reports for this kind. */
  infoKind: string;
  /** The kind's own inputs (zod), merged with the common link fields. */
  fields: z.ZodRawShape;
  /** Cross-field rules; report problems with ctx.addIssue({ path, message }). */
  refine?(value: Desired, ctx: z.RefinementCtx): void;
  /** Inputs that the kernel only takes at creation: changing one replaces the device. */
  replaceOn: string[];
  /** Replacements that depend on the values (e.g. macvlan mode into or out of passthru). */
  extraReplaces?(olds: Record<string, any>, news: Record<string, any>): string[];
  /** Fields that are input-only and never compared with the kernel (e.g. write-only options). */
  unverified?: string[];
  /** argv lines that create the device, with mtu/macAddress where the kind's `add` takes them. */
  createArgv(d: Desired): string[][];
  /**
   * What a device of this kind has right after its add, for fields besides the
   * common ones whose value then differs from the input (a veth's peer is down, with
   * no master or addresses): the create plans their changes into the add's batch.
   */
  freshState?(d: Desired): Record<string, unknown>;
  /** The kind's inputs as the kernel reports them, in input units. */
  readFields(link: LinkJson, ctx: ReadContext): Promise<Record<string, unknown>> | Record<string, unknown>;
  /** Devices readFields reads besides this one: the engine reads them in the same round trip and passes them in ctx.companions. */
  companions?(d: Desired): Companion[];
  /**
   * argv lines that change the kind's own fields in place, one change per line.
   * `actual` is the kernel's view of every field (readFields plus the common
   * ones), for plans that need more than the mismatched fields (a bond's slaves).
   * `masterKinds`: for each of `masters` whose field differs, the kind of that master.
   */
  updateArgv(d: Desired, mismatches: Mismatch[], link: LinkJson, actual: Record<string, unknown>, masterKinds?: Record<string, string | undefined>): string[][];
  /**
   * Masters the kind enslaves another device into, by input field (a veth's
   * `peerMaster`): when such a field differs, the engine reads that master's kind
   * for updateArgv (enslaving into a bond needs the device down).
   */
  masters?(d: Desired): (Companion & { field: string })[];
  /** Extra outputs (e.g. tapDevicePath). */
  outputs?(link: LinkJson, d: Desired): Record<string, unknown>;
  /** Does the kernel's value satisfy the wanted one? Default: deep equality. */
  satisfies?(field: string, desired: unknown, actual: unknown): boolean;
  /** Checks other devices before create or update writes anything (e.g. ipvlan siblings sharing the parent's mode); throws to refuse. */
  beforeWrite?(ctx: ReadContext): Promise<void>;
  /** Commands to run before deleting the device (e.g. releasing bond slaves). */
  beforeDeleteArgv?(d: Desired, link: LinkJson, ctx: ReadContext): string[][] | Promise<string[][]>;
  /** The systemd-networkd files that recreate the device at boot (`persist`, DESIGN.md §8). Pure. */
  networkd(d: Desired, facts: NetworkdFacts): NetworkdFiles;
  /** Inputs of this kind that the files cannot carry across a reboot: `check` errors when `persist` is set. */
  persistLimits?(d: Desired): PersistLimit[];
}
