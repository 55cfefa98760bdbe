#!/usr/bin/env node
/**
 * Build the link addon (native/links.c) into prebuilds/<platform>-<arch>/viewctl-links.node,
 * the binary the package ships and src/store/build/native.ts loads. The binary is committed: a
 * build, an install and CI need no compiler. Run this after changing native/links.c, on the
 * platform whose binary it makes.
 *
 *   node scripts/build-native.mjs [--cc CC] [--arch ARCH] [--include DIR]
 *
 * `--cc aarch64-linux-gnu-gcc --arch arm64` cross-compiles; the headers are Node's own
 * (N-API, version 8: any Node from 16 on loads it), found beside this node or in
 * /usr/include/node unless `--include` says where.
 */
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const args = process.argv.slice(2)
const option = (name, fallback) => {
  const i = args.indexOf(name)
  return i === -1 ? fallback : args[i + 1]
}
const cc = option('--cc', process.env.CC ?? 'cc')
const arch = option('--arch', process.arch)
const include = option('--include', [path.resolve(path.dirname(process.execPath), '..', 'include', 'node'), '/usr/include/node'].find((d) => fs.existsSync(path.join(d, 'node_api.h'))))
if (include === undefined) {
  process.stderr.write('build-native: no node_api.h found (beside this node or in /usr/include/node); give --include DIR\n')
  process.exit(2)
}
const outDir = path.join(root, 'prebuilds', `${process.platform}-${arch}`)
fs.mkdirSync(outDir, { recursive: true })
const out = path.join(outDir, 'viewctl-links.node')
const argv = ['-O2', '-Wall', '-Wextra', '-Werror', '-std=c11', '-fPIC', '-shared', '-fvisibility=hidden', '-s', `-I${include}`, '-o', out, path.join(root, 'native', 'links.c')]
const r = spawnSync(cc, argv, { stdio: 'inherit' })
if (r.status !== 0) {
  process.stderr.write(`build-native: ${cc} ${argv.join(' ')} failed\n`)
  process.exit(1)
}
process.stdout.write(`${path.relative(root, out)} (${fs.statSync(out).size} bytes)\n`)
