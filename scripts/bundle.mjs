/**
 * The command line as a few files: esbuild bundles what tsc compiled
 * (dist/cli/main.js and the worker entry points) into dist/bundle/, which
 * bin/viewctl runs. Loading ~30 modules of viewctl and yaml's ~70 CommonJS
 * files one by one cost 25-30 ms of every command (docs/benchmarks.md); the
 * commands stay lazily loaded chunks. dist/ itself stays the library.
 *
 * Left out of the bundle, loaded from node_modules when needed: yargs (help
 * and usage errors only; it finds its locale files next to itself), and
 * what src/ loads with createRequire (the lock addon, picomatch, object-hash,
 * ajv's runtime helpers).
 */
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { build } from 'esbuild'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const dist = path.join(root, 'dist')
const out = path.join(dist, 'bundle')
// The workers are found by name next to the code that starts them (new URL('./x-worker.js', import.meta.url)),
// so every file lands flat in dist/bundle/.
const entryPoints = ['cli/main.js', 'store/link-worker.js', 'store/rm-worker.js'].map((f) => path.join(dist, f)).filter((f) => fs.existsSync(f))

fs.rmSync(out, { recursive: true, force: true })
await build({
  entryPoints,
  outdir: out,
  entryNames: '[name]',
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  external: ['yargs'],
  // yaml is CommonJS: its require() of Node's built-ins needs a real require in an ES module
  banner: { js: "import { createRequire as __viewctlCreateRequire } from 'node:module'; const require = __viewctlCreateRequire(import.meta.url);" },
  logLevel: 'warning',
})
