import { defineConfig } from "vitest/config";

// Unit tests run in parallel. Kernel and provider-host tests share machine-global
// state (network namespaces, sshd processes, VMs), so they run one file at a time,
// after the unit tests.
export default defineConfig({
  test: {
    testTimeout: 120_000,
    hookTimeout: 600_000,
    reporters: ["default", ["json", { outputFile: ".cache/test-results.json" }]],
    projects: [
      { extends: true, test: { name: "unit", include: ["test/unit/**/*.test.ts"], setupFiles: ["test/support/strict-fake.ts"], sequence: { groupOrder: 0 } } },
      {
        extends: true,
        test: {
          name: "hosts",
          include: ["test/kernel/**/*.test.ts", "test/host/**/*.test.ts"],
          pool: "forks",
          fileParallelism: false,
          sequence: { groupOrder: 1 },
        },
      },
    ],
  },
});
