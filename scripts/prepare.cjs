// `prepare`: builds dist/ with the repository's own TypeScript. npm runs it on
// `npm ci` here, on `npm pack`, and when an example's `npm install` packs this
// directory (install-links) — which only works after `npm ci` here.
const { execFileSync } = require("node:child_process");
const path = require("node:path");

const root = path.join(__dirname, "..");
let tsc;
try {
  tsc = require.resolve("typescript/bin/tsc", { paths: [root] });
} catch {
  console.error("pulumi-netdev: building dist/ needs the repository's devDependencies: run `npm ci` in " + root + " first");
  process.exit(1);
}
execFileSync(process.execPath, [tsc, "-p", path.join(root, "tsconfig.json")], { stdio: "inherit" });
