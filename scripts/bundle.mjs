/**
 * The command line as a few files: esbuild bundles what tsc compiled
 * (dist/cli/main.js and the worker entry points) into dist/bundle/, which
 * bin/viewctl runs. Loading ~30 modules of viewctl and yaml's ~70 CommonJS
 * files one by one cost 25-30 ms of every command (docs/benchmarks.md); the
 * commands stay lazily loaded chunks. dist/ itself stays the library.
 *
 * yaml is bundled from its ES module build (see `alias` below).
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
// The workers are found by name next to the code that starts them (src/store/workers.ts, workerFile),
// so every file lands flat in dist/bundle/.
// complete.js: what a completion script asks at a TAB, loaded by bin/viewctl without the command line
const entryPoints = [path.join(dist, 'cli', 'main.js'), path.join(dist, 'cli', 'complete.js')]
const workers = ['store/build/link-worker.js', 'store/remove/rm-worker.js'].map((f) => path.join(dist, f))
// a worker that is not built would leave its threads' work to the main thread without a word: say so
for (const f of workers) if (!fs.existsSync(f)) throw new Error(`${f} is missing: the bundle's workers are built from it (run tsc first)`)

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
  // yaml's ES module build (its "browser" one: the same code, without the CommonJS wrappers), so that
  // esbuild can leave out what viewctl never calls: 64 KB less in the chunk that holds the
  // parser, about 5 ms less to compile (docs/benchmarks.md). Its one difference on Node: a warning goes to
  // console.warn rather than process.emitWarning, both on stderr.
  alias: { yaml: path.join(root, 'node_modules', 'yaml', 'browser', 'index.js') },
  // yaml is CommonJS: its require() of Node's built-ins needs a real require in an ES module
  banner: { js: "import { createRequire as __viewctlCreateRequire } from 'node:module'; const require = __viewctlCreateRequire(import.meta.url);" },
  logLevel: 'warning',
})

// Each worker is one CommonJS file of its own (rm-worker.cjs, link-worker.cjs, found by store/workers.ts):
// a worker thread boots a fresh isolate, and one that starts as an ES module first boots Node's module
// loader and then loads its chunks one by one. As one CommonJS file, the removal worker is up 25-30 ms
// sooner (docs/benchmarks.md), time in which the main thread would otherwise work alone.
for (const worker of workers) {
  await build({
    entryPoints: [worker],
    outfile: path.join(out, `${path.basename(worker, '.js')}.cjs`),
    bundle: true,
    format: 'cjs',
    platform: 'node',
    target: 'node20',
    // what src/ derives from import.meta.url (createRequire, files next to the module) works the same from here
    define: { 'import.meta.url': '__viewctlModuleUrl' },
    banner: { js: "'use strict'; const __viewctlModuleUrl = require('node:url').pathToFileURL(__filename).href;" },
    logLevel: 'warning',
  })
}
