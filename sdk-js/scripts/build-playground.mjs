#!/usr/bin/env node
// Builds the playground into the three files the server embeds:
//   index.html, playground.js (one ESM bundle, no code splitting, no CDN),
//   playground.css; plus a README.md that says the folder is build output.
// Usage: node scripts/build-playground.mjs [OUTDIR]   (default ../server/assets/playground)
import { build } from "esbuild";
import { copyFileSync, mkdirSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const outdir = resolve(process.argv[2] ?? join(root, "..", "server", "assets", "playground"));
mkdirSync(outdir, { recursive: true });

await build({
  absWorkingDir: root,
  entryPoints: [join(root, "playground", "main.ts")],
  outfile: join(outdir, "playground.js"),
  bundle: true,
  format: "esm",
  platform: "browser",
  target: ["es2022", "chrome110", "firefox115", "safari16"],
  minify: true,
  sourcemap: false,
  splitting: false,
  legalComments: "none",
  charset: "utf8",
  conditions: ["browser"],
  // The examples' sources (examples/guests), shown beside each example.
  loader: { ".c": "text", ".rs": "text", ".wat": "text" },
  tsconfig: join(root, "playground", "tsconfig.json"),
  banner: {
    js: "// WasmWiz playground (built from sdk-js/playground by `npm run build:playground`; do not edit).",
  },
  logLevel: "warning",
});

await build({
  absWorkingDir: root,
  entryPoints: [join(root, "playground", "styles.css")],
  outfile: join(outdir, "playground.css"),
  bundle: true,
  minify: false,
  charset: "utf8",
  banner: {
    css: "/* WasmWiz playground (built from sdk-js/playground by `npm run build:playground`; do not edit). */",
  },
  logLevel: "warning",
});

copyFileSync(join(root, "playground", "index.html"), join(outdir, "index.html"));
writeFileSync(
  join(outdir, "README.md"),
  "Generated: the build output of `sdk-js/playground` (`npm run build:playground` in sdk-js/); do not edit. " +
    "Checked in so that `cargo build` needs no Node; `npm run check:drift` fails when it is stale.\n",
);
console.log(`playground built into ${outdir}`);
