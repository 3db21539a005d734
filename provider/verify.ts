import { VerificationError } from "./errors";
import type { Mismatch } from "./kinds/types";

/** Read-backs after a write: the kernel may apply some changes a moment later (e.g. a port's state). */
export const VERIFY_ATTEMPTS = 5;
export const VERIFY_DELAY_MS = 150;

/**
 * Reads until `compare` finds nothing that differs (bounded, with a growing pause),
 * else throws a VerificationError naming the first field, desired and actual value.
 * `first`: a read made right after the write, used as the first attempt.
 */
export async function readUntilConverged<S>(
  host: string,
  what: string,
  read: () => Promise<S>,
  compare: (state: S) => Mismatch[],
  first?: S,
): Promise<S> {
  let last: Mismatch | undefined;
  for (let attempt = 0; attempt < VERIFY_ATTEMPTS; attempt++) {
    if (attempt > 0) await new Promise((r) => setTimeout(r, VERIFY_DELAY_MS * attempt));
    const state = attempt === 0 && first !== undefined ? first : await read();
    const bad = compare(state);
    if (bad.length === 0) return state;
    last = bad[0];
  }
  throw new VerificationError(host, what, last!.field, last!.desired, last!.actual);
}
