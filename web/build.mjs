// Bundles the dashboard into ../src/tradeflux/query/static/ (built by ./dev, not committed; served by `tradeflux query`).
//
//   npm --prefix web ci && npm --prefix web run build
//
// Writes index.html, assets/app.js, assets/app.css (minified, no CDN, licences kept at the
// end of app.js) and build-info.json, which records a SHA-256 over the sources and the
// lockfile: tests/unit/test_query_assets.py fails when the built bundle is older than
// its sources.
import { build } from "esbuild";
import { createHash } from "node:crypto";
import { copyFileSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";

const web = dirname(fileURLToPath(import.meta.url));
const out = join(web, "..", "src", "tradeflux", "query", "static");

/** The files whose content decides the bundle, relative to web/, sorted. */
export function sourceFiles() {
  const files = ["index.html", "package.json", "package-lock.json", "tsconfig.json", "build.mjs", "favicon.svg"];
  const walk = (dir) => {
    for (const name of readdirSync(join(web, dir)).sort()) {
      const rel = join(dir, name);
      if (statSync(join(web, rel)).isDirectory()) walk(rel);
      else files.push(rel);
    }
  };
  walk("src");
  return files.sort();
}

/** SHA-256 over each source's path and bytes (the same recipe as the Python check). */
export function sourceHash() {
  const hash = createHash("sha256");
  for (const rel of sourceFiles()) {
    hash.update(rel.split("\\").join("/") + "\n");
    hash.update(readFileSync(join(web, rel)));
    hash.update("\n");
  }
  return hash.digest("hex");
}

rmSync(join(out, "assets"), { recursive: true, force: true });
mkdirSync(join(out, "assets"), { recursive: true });
const result = await build({
  entryPoints: { app: join(web, "src", "main.ts") },
  bundle: true,
  minify: true,
  sourcemap: false,
  format: "esm",
  target: ["chrome110", "firefox115", "safari16"],
  outdir: join(out, "assets"),
  legalComments: "eof",
  metafile: true,
  logLevel: "warning",
});
copyFileSync(join(web, "index.html"), join(out, "index.html"));
copyFileSync(join(web, "favicon.svg"), join(out, "favicon.svg"));
const lock = JSON.parse(readFileSync(join(web, "package-lock.json"), "utf8"));
const info = {
  sources_sha256: sourceHash(),
  files: sourceFiles(),
  packages: Object.fromEntries(
    Object.entries(lock.packages)
      .filter(([path, meta]) => path.startsWith("node_modules/") && !meta.dev)
      .map(([path, meta]) => [path.slice("node_modules/".length), meta.version]),
  ),
};
writeFileSync(join(out, "build-info.json"), JSON.stringify(info, null, 2) + "\n");
for (const [file, meta] of Object.entries(result.metafile.outputs)) {
  console.log(`${relative(process.cwd(), file)}  ${(meta.bytes / 1024).toFixed(1)} KiB`);
}
