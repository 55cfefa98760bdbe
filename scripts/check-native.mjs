#!/usr/bin/env node
/**
 * Check the link addon of the platform this node runs on, against the
 * compiled package (npm run build): that it loads from prebuilds/, that it
 * makes the same tree as Node's own calls (symlinks, relative symlinks,
 * hardlinks) with the same error for a name already there, that entries
 * shared from a base tree are linked only while they point where the plan
 * says (the same tree and counts both ways), and that a
 * regenerate through the library builds a view with it. Prints `ok <platform>-<arch>` and exits
 * 0, or says what is wrong and exits 1.
 *
 * Made for a binary built for another machine (scripts/build-native.mjs
 * --arch arm64) and run under qemu-user:
 *
 *   qemu-aarch64 -L /usr/aarch64-linux-gnu /path/to/arm64/node scripts/check-native.mjs
 *
 * test/native.test.ts runs it so when qemu-aarch64 is installed.
 */
import assert from 'node:assert/strict'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const { linkEntries, SHARE_DIFFERED, SHARE_LINKED, SHARE_SLOTS } = await import(path.join(root, 'dist', 'store', 'build', 'link-entry.js'))
const { linksAddon, prebuiltAddon, useLinksAddon } = await import(path.join(root, 'dist', 'store', 'build', 'native.js'))

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'viewctl-check-native-'))
try {
  const file = prebuiltAddon()
  assert.equal(file, path.join(root, 'prebuilds', `${process.platform}-${process.arch}`, 'viewctl-links.node'), 'the prebuilt addon is found')
  const addon = linksAddon()
  assert.ok(addon !== null, `${file} loads`)

  // two prefixes of a few files, and a plan of them
  const prefixes = ['p0', 'p1'].map((p) => path.join(work, p))
  const paths = []
  const sources = []
  for (const [p, prefix] of prefixes.entries()) {
    for (const d of ['bin', 'lib']) {
      fs.mkdirSync(path.join(prefix, d), { recursive: true })
      for (let i = 0; i < 20; i++) {
        fs.writeFileSync(path.join(prefix, d, `f${p}-${i}`), '')
        paths.push(`${d}/f${p}-${i}`)
        sources.push(p)
      }
    }
  }
  const snapshot = (dir) =>
    Object.fromEntries(
      paths.map((rel) => {
        const st = fs.lstatSync(path.join(dir, rel))
        return [rel, st.isSymbolicLink() ? fs.readlinkSync(path.join(dir, rel)) : st.ino]
      }),
    )
  const link = (name, mode, relative, viaAddon, share) => {
    const staging = path.join(work, name)
    for (const d of ['bin', 'lib']) fs.mkdirSync(path.join(staging, d), { recursive: true })
    useLinksAddon(viaAddon ? addon : null)
    const ctx = { staging, at: staging, mode, relative, prefixes, prefixFromRoot: prefixes.map((p) => path.relative(staging, p)), paths, kinds: paths.map(() => 1), sources, share }
    try {
      linkEntries(ctx, null, 0, paths.length)
      return { staging, error: null }
    } catch (error) {
      return { staging, error }
    }
  }
  for (const [mode, relative] of [['symlink', false], ['symlink', true], ['hardlink', false]]) {
    const a = link(`${mode}-${relative}-addon`, mode, relative, true)
    const b = link(`${mode}-${relative}-node`, mode, relative, false)
    assert.equal(a.error, null)
    assert.equal(b.error, null)
    assert.deepEqual(snapshot(a.staging), snapshot(b.staging), `${mode}${relative ? ' relative' : ''}: the same tree`)
  }
  // EEXIST: the same error either way
  const again = (viaAddon) => {
    const first = link(`again-${viaAddon}`, 'symlink', false, viaAddon)
    useLinksAddon(viaAddon ? addon : null)
    const ctx = { staging: first.staging, at: first.staging, mode: 'symlink', relative: false, prefixes, prefixFromRoot: [], paths, kinds: paths.map(() => 1), sources }
    try {
      linkEntries(ctx, null, 0, paths.length)
    } catch (error) {
      return { code: error.code, errno: error.errno, syscall: error.syscall, message: error.message.split(first.staging).join('<staging>') }
    }
    return null
  }
  const eexist = again(true)
  assert.equal(eexist?.code, 'EEXIST')
  assert.deepEqual(eexist, again(false), 'EEXIST: the same error')

  // sharing from a base tree one of whose links was re-pointed by hand and another replaced by a file: those are made anew
  const base = link('base', 'symlink', false, true)
  fs.rmSync(path.join(base.staging, 'bin', 'f0-3'))
  fs.symlinkSync('/etc/passwd', path.join(base.staging, 'bin', 'f0-3'))
  fs.rmSync(path.join(base.staging, 'lib', 'f1-4'))
  fs.writeFileSync(path.join(base.staging, 'lib', 'f1-4'), 'planted')
  const shared = (viaAddon) => {
    const state = new Int32Array(new SharedArrayBuffer(SHARE_SLOTS * 4))
    const made = link(`shared-${viaAddon}`, 'symlink', false, viaAddon, { from: base.staging, flags: paths.map(() => 1), state })
    assert.equal(made.error, null)
    const inodes = paths.filter((rel) => fs.lstatSync(path.join(made.staging, rel)).ino === fs.lstatSync(path.join(base.staging, rel)).ino).length
    return { tree: snapshot(made.staging), linked: state[SHARE_LINKED], differed: state[SHARE_DIFFERED], inodes }
  }
  const viaAddon = shared(true)
  assert.equal(viaAddon.tree['bin/f0-3'], path.join(prefixes[0], 'bin', 'f0-3'), 'the re-pointed link is made anew')
  assert.equal(viaAddon.tree['lib/f1-4'], path.join(prefixes[1], 'lib', 'f1-4'), 'the planted file is replaced by the planned link')
  assert.deepEqual(viaAddon, { ...viaAddon, linked: paths.length - 2, differed: 2, inodes: paths.length - 2 })
  assert.deepEqual(viaAddon, shared(false), 'sharing: the same tree and counts')
  useLinksAddon(undefined)

  // a whole regenerate through the library, with this node (a child process could not be started under qemu-user)
  const { regenerate } = await import(path.join(root, 'dist', 'index.js'))
  const view = path.join(work, 'view')
  const manifest = path.join(work, 'env.yaml')
  fs.writeFileSync(manifest, [`view: ${view}`, 'fold: false', 'packages:', ...prefixes.map((p) => `  - ${p}`), ''].join('\n'))
  const result = await regenerate(manifest)
  assert.equal(result.built, true)
  assert.equal(fs.readlinkSync(path.join(view, 'lib', 'f1-7')), path.join(prefixes[1], 'lib', 'f1-7'))
  process.stdout.write(`ok ${process.platform}-${process.arch}\n`)
} catch (err) {
  process.stderr.write(`check-native: ${err.stack ?? err}\n`)
  process.exitCode = 1
} finally {
  fs.rmSync(work, { recursive: true, force: true })
}
