/**
 * Links named from inside the store (src/store/build/workdir.ts): the CLI's builds
 * make the store the working directory while they link. These tests run in
 * a forked process (vitest's `forks` pool), where the working directory can
 * be changed, and check that it always comes back, that the trees are the
 * same either way, and that no error names a place by its relative spelling.
 */
import fs from 'node:fs'
import path from 'node:path'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { absolutePaths, enterStore, stagingSpelling } from '../src/store/build/workdir.js'
import { regenerate } from '../src/ops/regenerate.js'
import { isViewError } from '../src/errors.js'
import { makePrefixes, tempDir, writeManifest } from './helpers.js'
import { mountTmpfs, requireMount } from './mounts.js'
import { treeOf } from './view-checks.js'

const home = process.cwd()
afterEach(() => {
  vi.restoreAllMocks()
  process.chdir(home)
})

describe('enterStore', () => {
  it('makes the store the working directory until left, then puts the old one back (once)', () => {
    const store = fs.realpathSync(tempDir())
    const leave = enterStore(store)
    expect(leave).not.toBeNull()
    expect(process.cwd()).toBe(store)
    leave!()
    expect(process.cwd()).toBe(home)
    process.chdir(store)
    leave!() // a second call does nothing
    expect(process.cwd()).toBe(store)
  })

  it('changes nothing when the working directory was deleted or the store cannot be entered', () => {
    const gone = tempDir()
    process.chdir(gone)
    fs.rmdirSync(gone)
    expect(enterStore(fs.realpathSync(tempDir()))).toBeNull()
    process.chdir(home)
    expect(enterStore(path.join(tempDir(), 'missing'))).toBeNull()
    expect(process.cwd()).toBe(home)
  })
})

describe('absolutePaths', () => {
  it('gives a relative place its absolute path back in path, dest and message, and leaves link targets alone', () => {
    const staging = '/views/._env/.staging-walk-1-ab'
    const at = stagingSpelling(staging, true)
    expect(at).toBe('.staging-walk-1-ab')
    const err = Object.assign(new Error(`ENOSPC: no space left on device, symlink '../../p/bin/x' -> '${at}/bin/x'`), { code: 'ENOSPC', path: '../../p/bin/x', dest: `${at}/bin/x` })
    absolutePaths(err, at, staging)
    expect(err.path).toBe('../../p/bin/x')
    expect(err.dest).toBe(`${staging}/bin/x`)
    expect(err.message).toBe(`ENOSPC: no space left on device, symlink '../../p/bin/x' -> '${staging}/bin/x'`)
  })

  it('changes nothing when places are spelled absolute', () => {
    const staging = '/views/._env/.staging-walk-1-ab'
    const err = Object.assign(new Error('x'), { path: 'a', dest: `${staging}/b` })
    expect(absolutePaths(err, stagingSpelling(staging, false), staging)).toBe(err)
    expect(err).toMatchObject({ path: 'a', dest: `${staging}/b`, message: 'x' })
  })
})

describe('regenerate with workInStore', () => {
  it('builds the same tree as without, and the working directory is back afterwards', async () => {
    const root = fs.realpathSync(tempDir())
    const prefixes = makePrefixes(path.join(root, 'p'), 3, 50)
    const packages = prefixes.map((p) => `  - ${p}`).join('\n')
    const chdir = vi.spyOn(process, 'chdir')
    const inStore = await regenerate(writeManifest(root, `view: ${root}/a\nfold: false\npackages:\n${packages}\n`, 'a.yaml'), { workInStore: true })
    expect(chdir.mock.calls.map((c) => c[0])).toEqual([`${root}/._a`, home])
    expect(process.cwd()).toBe(home)
    const plain = await regenerate(writeManifest(root, `view: ${root}/b\nfold: false\npackages:\n${packages}\n`, 'b.yaml'))
    expect(inStore.built && plain.built).toBe(true)
    expect(inStore.hash).toBe(plain.hash)
    const tree = treeOf(`${root}/a`, 'inode')
    expect(Object.keys(tree).length).toBeGreaterThan(150)
    expect(tree).toEqual(treeOf(`${root}/b`, 'inode'))
    expect(Object.values(tree).filter((t) => t !== 'dir').every((t) => t.startsWith(`-> ${root}/p/`))).toBe(true)
  })

  it('out of inodes while linking: DISK_FULL naming the absolute place, the working directory back, nothing written where it was', async (ctx) => {
    requireMount(ctx)
    const mnt = mountTmpfs('size=16m,nr_inodes=200')
    const root = fs.realpathSync(tempDir())
    const prefixes = makePrefixes(path.join(root, 'p'), 20, 10) // 800 files
    const cwd = fs.realpathSync(tempDir())
    process.chdir(cwd)
    const chdir = vi.spyOn(process, 'chdir')
    const file = writeManifest(root, `view: ${mnt}/v\nfold: false\npackages:\n${prefixes.map((p) => `  - ${p}`).join('\n')}\n`)
    const err = await regenerate(file, { workInStore: true }).catch((e: unknown) => e)
    expect(chdir.mock.calls.map((c) => c[0])).toEqual([`${mnt}/._v`, cwd]) // into the store while linking, then back
    expect(process.cwd()).toBe(cwd)
    expect(fs.readdirSync(cwd)).toEqual([])
    if (!isViewError(err)) throw err
    expect(err.code).toBe('DISK_FULL')
    expect(err.message).toContain(` -> ${mnt}/._v/.staging-`)
    expect(err.message.match(/.?\.staging-/g)!.every((m) => m.startsWith('/')), err.message).toBe(true) // never the relative spelling
  })
})
