import { defineConfig } from "vitest/config";

// Kernel and provider-host tests share machine-global state (network namespaces,
// sshd processes, VMs), so test files run one at a time.
export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    pool: "forks",
    fileParallelism: false,
    testTimeout: 120_000,
    hookTimeout: 600_000,
    reporters: ["default", ["json", { outputFile: ".cache/test-results.json" }]],
  },
});
