import { describe, it } from "vitest";

/**
 * Declares a suite that needs real hosts. Missing prerequisites fail loudly in CI
 * (a skipped kernel suite would look green while testing nothing) and skip with a
 * message naming what is missing elsewhere.
 */
export function hostSuite(name: string, missing: string[], body: () => void): void {
  if (missing.length > 0 && process.env.CI) {
    describe(name, () => {
      it("has its prerequisites in CI", () => {
        throw new Error(`${name} cannot run in CI; missing: ${missing.join(", ")}`);
      });
    });
    return;
  }
  if (missing.length > 0) console.warn(`[${name}] skipped; missing: ${missing.join(", ")}`);
  describe.skipIf(missing.length > 0)(name, body);
}
