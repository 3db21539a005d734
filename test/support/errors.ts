/** The error a promise rejects with; fails the test if it resolves instead. */
export async function failure(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (e) {
    return e as Error;
  }
  throw new Error("expected the call to fail, but it succeeded");
}

/** Everything an error exposes (message, stack, its own properties), for scanning it for secrets. */
export function errorText(e: Error): string {
  return [String(e), e.stack ?? "", JSON.stringify(Object.entries(e))].join("\n");
}
