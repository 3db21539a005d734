import { defineConfig } from "vitest/config";

// Groups run one after the other, in groupOrder (README "Tests" lists them in this
// order; test/unit/suite-order.test.ts checks the two agree). Unit tests run in
// parallel. Kernel and provider-host tests share machine-global state (network
// namespaces, sshd processes, VMs), so they run one file at a time. `final` runs
// after everything else: it checks what the other tests left behind.
const serial = { pool: "forks", fileParallelism: false } as const;

export default defineConfig({
  test: {
    testTimeout: 120_000,
    hookTimeout: 600_000,
    reporters: ["default", ["json", { outputFile: ".cache/test-results.json" }]],
    projects: [
      { extends: true, test: { name: "unit", include: ["test/unit/**/*.test.ts"], setupFiles: ["test/support/strict-fake.ts"], sequence: { groupOrder: 0 } } },
      { extends: true, test: { name: "kernel", include: ["test/kernel/**/*.test.ts"], ...serial, sequence: { groupOrder: 1 } } },
      { extends: true, test: { name: "host", include: ["test/host/**/*.test.ts"], ...serial, sequence: { groupOrder: 2 } } },
      { extends: true, test: { name: "final", include: ["test/final/**/*.test.ts"], ...serial, sequence: { groupOrder: 3 } } },
    ],
  },
});
