/**
 * The planner, in process, against real prefixes in temp directories. Every
 * manifest goes through the real loadManifest (YAML, schema, prefix checks),
 * so these tests see what `viewctl plan` sees.
 */
import fs from 'node:fs'
import path from 'node:path'
import { execFileSync } from 'node:child_process'
import { stringify } from 'yaml'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { ViewError } from '../src/errors.js'
import { fsPath } from '../src/fs.js'
import { loadManifest } from '../src/manifest/load.js'
import { assertNoConflicts, createPlan, CONFLICT_LIST_LIMIT, KIND_LETTERS, NO_SOURCE, unresolvedConflicts, type PlanResult } from '../src/plan/index.js'
import { parsePlanText } from '../src/plan/hash.js'
import { tempDir, writeManifest, writeTree } from './helpers.js'

/** A real (symlink-free) temp directory, so prefix paths in plans are what we wrote. */
function root(): string {
  return fs.realpathSync(tempDir('viewctl-plan-'))
}

type ManifestFields = Record<string, unknown> & { packages: unknown[] }

/** Write the manifest as YAML beside the prefixes and load it the way the CLI does. */
async function planOf(dir: string, fields: ManifestFields, name = 'env.yaml'): Promise<PlanResult> {
  const file = writeManifest(dir, stringify({ view: path.join(dir, 'views', 'v'), ...fields }), name)
  return createPlan(await loadManifest(file))
}

async function planOfText(dir: string, yaml: string, name = 'env.yaml'): Promise<PlanResult> {
  return createPlan(await loadManifest(writeManifest(dir, yaml, name)))
}

/** The plan as readable rows: `<kind letter> <source prefix basename or -> <path>`. */
function rows(plan: PlanResult): string[] {
  return plan.paths.map((p, i) => {
    const src = plan.sources[i]!
    return `${KIND_LETTERS[plan.kinds[i]!]} ${src === NO_SOURCE ? '-' : path.basename(plan.prefixes[src]!)} ${p}`
  })
}

function sourceOfPath(plan: PlanResult, rel: string): string | null {
  const i = plan.paths.indexOf(rel)
  if (i < 0) return null
  const src = plan.sources[i]!
  return src === NO_SOURCE ? '-' : plan.prefixes[src]!
}

afterEach(() => {
  vi.restoreAllMocks()
})

describe('merging prefixes', () => {
  it('merges directories from several prefixes and folds what one prefix alone provides', async () => {
    const dir = root()
    const a = writeTree(path.join(dir, 'a'), { 'bin/a': 'A', 'lib/liba.so': 'la', 'share/man/man1/a.1': '.TH a' })
    const b = writeTree(path.join(dir, 'b'), { 'bin/b': 'B', 'lib/libb.so': 'lb', 'include/b/b.h': '/* b */' })
    const plan = await planOf(dir, { packages: [a, b] })
    expect(plan.prefixes).toEqual([a, b])
    expect(rows(plan)).toEqual([
      'd - bin',
      'f a bin/a',
      'f b bin/b',
      'F b include',
      'd - lib',
      'f a lib/liba.so',
      'f b lib/libb.so',
      'F a share',
    ])
    expect(plan.conflicts).toEqual([])
    expect(plan.warnings).toEqual([])
    expect(plan.excluded).toBe(0)
  })

  it('merges nested directories two prefixes share at every depth', async () => {
    const dir = root()
    const a = writeTree(path.join(dir, 'a'), { 'share/man/man1/a.1': 'a', 'share/man/man3/a.3': 'a3' })
    const b = writeTree(path.join(dir, 'b'), { 'share/man/man1/b.1': 'b' })
    const plan = await planOf(dir, { packages: [a, b] })
    expect(rows(plan)).toEqual([
      'd - share',
      'd - share/man',
      'd - share/man/man1',
      'f a share/man/man1/a.1',
      'f b share/man/man1/b.1',
      'F a share/man/man3',
    ])
  })
})

describe('identical content is not a conflict', () => {
  it('the same inode (a hardlink) in two prefixes', async () => {
    const dir = root()
    const a = writeTree(path.join(dir, 'a'), { 'bin/x': 'shared' })
    const b = writeTree(path.join(dir, 'b'), { 'bin/y': 'y' })
    fs.linkSync(path.join(a, 'bin/x'), path.join(b, 'bin/x'))
    const plan = await planOf(dir, { packages: [a, b] })
    expect(plan.conflicts).toEqual([])
    expect(rows(plan)).toEqual(['d - bin', 'f a bin/x', 'f b bin/y'])
  })

  it('symlinks with the same target in two prefixes', async () => {
    const dir = root()
    const a = writeTree(path.join(dir, 'a'), { 'lib/libz.so': { symlink: 'libz.so.1' }, 'lib/liba': 'a' })
    const b = writeTree(path.join(dir, 'b'), { 'lib/libz.so': { symlink: 'libz.so.1' }, 'lib/libb': 'b' })
    const plan = await planOf(dir, { packages: [a, b] })
    expect(plan.conflicts).toEqual([])
    expect(rows(plan)).toEqual(['d - lib', 'f a lib/liba', 'f b lib/libb', 'l a lib/libz.so'])
  })

  it('symlinks with different targets are a conflict', async () => {
    const dir = root()
    const a = writeTree(path.join(dir, 'a'), { 'lib/libz.so': { symlink: 'libz.so.1' } })
    const b = writeTree(path.join(dir, 'b'), { 'lib/libz.so': { symlink: 'libz.so.2' } })
    const plan = await planOf(dir, { packages: [a, b] })
    expect(plan.conflicts.map((c) => [c.path, c.resolution, c.sources.map((s) => s.kind)])).toEqual([['lib/libz.so', 'error', ['symlink', 'symlink']]])
  })

  it('regular files with equal mode and bytes; the first in manifest order is kept', async () => {
    const dir = root()
    const a = writeTree(path.join(dir, 'a'), { 'bin/x': { content: 'same bytes\n', mode: 0o755 } })
    const b = writeTree(path.join(dir, 'b'), { 'bin/x': { content: 'same bytes\n', mode: 0o755 } })
    const ab = await planOf(dir, { packages: [a, b] }, 'ab.yaml')
    expect(ab.conflicts).toEqual([])
    expect(sourceOfPath(ab, 'bin/x')).toBe(a)
    const ba = await planOf(dir, { packages: [b, a] }, 'ba.yaml')
    expect(ba.conflicts).toEqual([])
    expect(sourceOfPath(ba, 'bin/x')).toBe(b)
  })

  it('equal bytes with a different mode IS a conflict', async () => {
    const dir = root()
    const a = writeTree(path.join(dir, 'a'), { 'bin/x': { content: 'same bytes\n', mode: 0o755 } })
    const b = writeTree(path.join(dir, 'b'), { 'bin/x': { content: 'same bytes\n', mode: 0o644 } })
    const plan = await planOf(dir, { packages: [a, b] })
    expect(plan.conflicts).toHaveLength(1)
    expect(plan.conflicts[0]!.path).toBe('bin/x')
    expect(plan.conflicts[0]!.resolution).toBe('error')
    expect(plan.paths).not.toContain('bin/x')
  })

  it('files of different sizes are never read; files of equal size are', async () => {
    const dir = root()
    const a = writeTree(path.join(dir, 'a'), { 'bin/big': 'x'.repeat(100), 'bin/eq': 'aaaa' })
    const b = writeTree(path.join(dir, 'b'), { 'bin/big': 'x'.repeat(101), 'bin/eq': 'aaab' })
    const manifest = await loadManifest(writeManifest(dir, stringify({ view: path.join(dir, 'v'), packages: [a, b] })))
    const opened: string[] = []
    const real = fs.openSync
    vi.spyOn(fs, 'openSync').mockImplementation(((p: fs.PathLike, ...rest: unknown[]) => {
      opened.push(String(p))
      return (real as (...args: unknown[]) => number)(p, ...rest)
    }) as typeof fs.openSync)
    const plan = createPlan(manifest)
    expect(plan.conflicts.map((c) => c.path)).toEqual(['bin/big', 'bin/eq'])
    expect(opened.filter((p) => p.endsWith('/bin/big'))).toEqual([])
    // the seam works: the equal-size pair was compared byte by byte
    expect(opened.filter((p) => p.endsWith('/bin/eq')).sort()).toEqual([path.join(a, 'bin/eq'), path.join(b, 'bin/eq')])
  })
})

describe('conflicts', () => {
  it('under `error` are listed with both sources and stop with code CONFLICT naming both', async () => {
    const dir = root()
    const a = writeTree(path.join(dir, 'a'), { 'bin/x': 'from a', 'bin/ok-a': 'a' })
    const b = writeTree(path.join(dir, 'b'), { 'bin/x': 'from b!', 'bin/ok-b': 'b' })
    const file = writeManifest(dir, stringify({ view: path.join(dir, 'v'), packages: [a, b] }))
    const plan = createPlan(await loadManifest(file))
    expect(plan.conflicts).toEqual([
      {
        path: 'bin/x',
        sources: [
          { prefix: a, path: path.join(a, 'bin/x'), kind: 'file', priority: 0 },
          { prefix: b, path: path.join(b, 'bin/x'), kind: 'file', priority: 0 },
        ],
        resolution: 'error',
        winner: null,
      },
    ])
    expect(unresolvedConflicts(plan)).toHaveLength(1)
    expect(rows(plan)).toEqual(['d - bin', 'f a bin/ok-a', 'f b bin/ok-b'])

    let caught: unknown
    try {
      assertNoConflicts(plan, file)
    } catch (err) {
      caught = err
    }
    expect(caught).toBeInstanceOf(ViewError)
    const e = caught as ViewError
    expect(e.code).toBe('CONFLICT')
    expect(e.message).toContain(file)
    expect(e.message).toContain('1 conflict:')
    expect(e.message).toContain(`bin/x: ${path.join(a, 'bin/x')} (file) vs ${path.join(b, 'bin/x')} (file)`)
    expect(e.hint).toMatch(/priority/)
  })

  it('the message lists at most 20 conflicts, then "… and N more"', async () => {
    const dir = root()
    const files: Record<string, string> = {}
    for (let i = 0; i < 25; i++) files[`bin/t${String(i).padStart(2, '0')}`] = 'a'
    const a = writeTree(path.join(dir, 'a'), files)
    const b = writeTree(path.join(dir, 'b'), Object.fromEntries(Object.keys(files).map((k) => [k, 'bb'])))
    const plan = await planOf(dir, { packages: [a, b] })
    expect(plan.conflicts).toHaveLength(25)
    expect(() => assertNoConflicts(plan, 'env.yaml')).toThrow(ViewError)
    let message = ''
    try {
      assertNoConflicts(plan, 'env.yaml')
    } catch (err) {
      message = (err as ViewError).message
    }
    const lines = message.split('\n')
    expect(lines[0]).toBe('env.yaml: 25 conflicts: several prefixes provide different files at one path')
    expect(lines.filter((l) => l.startsWith('  bin/t'))).toHaveLength(CONFLICT_LIST_LIMIT)
    expect(CONFLICT_LIST_LIMIT).toBe(20)
    expect(lines[1]).toContain(`${path.join(a, 'bin/t00')} (file) vs ${path.join(b, 'bin/t00')} (file)`)
    expect(lines[20]).toContain('bin/t19:')
    expect(lines[21]).toBe('  … and 5 more')
    expect(lines).toHaveLength(22)
  })

  it('`priority` beats the policy, under error and under first', async () => {
    const dir = root()
    const a = writeTree(path.join(dir, 'a'), { 'bin/x': 'from a' })
    const b = writeTree(path.join(dir, 'b'), { 'bin/x': 'from b!' })
    for (const policy of ['error', 'first']) {
      const plan = await planOf(dir, { conflicts: policy, packages: [a, { path: b, priority: 10 }] }, `${policy}.yaml`)
      expect(unresolvedConflicts(plan)).toEqual([])
      expect(plan.conflicts).toHaveLength(1)
      expect(plan.conflicts[0]!.resolution).toBe('priority')
      expect(plan.conflicts[0]!.winner).toBe(path.join(b, 'bin/x'))
      expect(plan.conflicts[0]!.sources.map((s) => s.priority)).toEqual([0, 10])
      expect(sourceOfPath(plan, 'bin/x')).toBe(b)
      expect(() => assertNoConflicts(plan, 'env.yaml')).not.toThrow()
    }
  })

  it('`first` keeps the earlier package, `last` the later one', async () => {
    const dir = root()
    const a = writeTree(path.join(dir, 'a'), { 'bin/x': 'from a' })
    const b = writeTree(path.join(dir, 'b'), { 'bin/x': 'from b!' })
    const first = await planOf(dir, { conflicts: 'first', packages: [a, b] }, 'first.yaml')
    expect(first.conflicts.map((c) => [c.resolution, c.winner])).toEqual([['first', path.join(a, 'bin/x')]])
    expect(sourceOfPath(first, 'bin/x')).toBe(a)
    const last = await planOf(dir, { conflicts: 'last', packages: [a, b] }, 'last.yaml')
    expect(last.conflicts.map((c) => [c.resolution, c.winner])).toEqual([['last', path.join(b, 'bin/x')]])
    expect(sourceOfPath(last, 'bin/x')).toBe(b)
    // the hash follows the winner
    expect(first.hash).not.toBe(last.hash)
  })

  it('an identical copy in a higher-priority package lends its priority to that content', async () => {
    const dir = root()
    const a = writeTree(path.join(dir, 'a'), { 'bin/x': 'same' })
    const b = writeTree(path.join(dir, 'b'), { 'bin/x': 'same' })
    const c = writeTree(path.join(dir, 'c'), { 'bin/x': 'other!' })
    const plan = await planOf(dir, { packages: [a, { path: b, priority: 10 }, { path: c, priority: 5 }] })
    expect(unresolvedConflicts(plan)).toEqual([])
    // b (priority 10) ships the same bytes as a; c (priority 5) must not win
    expect(sourceOfPath(plan, 'bin/x')).not.toBe(c)
    expect(fs.readFileSync(path.join(sourceOfPath(plan, 'bin/x')!, 'bin/x'), 'utf8')).toBe('same')
  })

  it('under `last`, a later identical copy makes its content the last one', async () => {
    const dir = root()
    const a = writeTree(path.join(dir, 'a'), { 'bin/x': 'same' })
    const c = writeTree(path.join(dir, 'c'), { 'bin/x': 'other!' })
    const b = writeTree(path.join(dir, 'b'), { 'bin/x': 'same' })
    const plan = await planOf(dir, { conflicts: 'last', packages: [a, c, b] })
    expect(fs.readFileSync(path.join(sourceOfPath(plan, 'bin/x')!, 'bin/x'), 'utf8')).toBe('same')
  })

  it('under `last`, directories from a later package beat an earlier file even when an earlier package also has the directory', async () => {
    const dir = root()
    const a = writeTree(path.join(dir, 'a'), { 'share/foo/a': 'a' })
    const b = writeTree(path.join(dir, 'b'), { 'share/foo': 'a file' })
    const c = writeTree(path.join(dir, 'c'), { 'share/foo/c': 'c' })
    const plan = await planOf(dir, { conflicts: 'last', packages: [a, b, c] })
    expect(plan.conflicts.map((x) => [x.path, x.resolution, x.sources.map((s) => `${path.basename(s.prefix)}:${s.kind}`)])).toEqual([
      ['share/foo', 'last', ['a:dir', 'b:file', 'c:dir']],
    ])
    expect(rows(plan)).toEqual(['d - share', 'd - share/foo', 'f a share/foo/a', 'f c share/foo/c'])
  })

  it('a file against a directory is a conflict; a policy settles it either way', async () => {
    const dir = root()
    const a = writeTree(path.join(dir, 'a'), { 'share/foo': 'a file', 'share/a': 'a' })
    const b = writeTree(path.join(dir, 'b'), { 'share/foo/inner': 'in a dir', 'share/b': 'b' })
    const err = await planOf(dir, { packages: [a, b] }, 'error.yaml')
    expect(err.conflicts).toEqual([
      {
        path: 'share/foo',
        sources: [
          { prefix: a, path: path.join(a, 'share/foo'), kind: 'file', priority: 0 },
          { prefix: b, path: path.join(b, 'share/foo'), kind: 'dir', priority: 0 },
        ],
        resolution: 'error',
        winner: null,
      },
    ])
    const last = await planOf(dir, { conflicts: 'last', packages: [a, b] }, 'last.yaml')
    expect(rows(last)).toEqual(['d - share', 'f a share/a', 'f b share/b', 'F b share/foo'])
    const first = await planOf(dir, { conflicts: 'first', packages: [a, b] }, 'first.yaml')
    expect(rows(first)).toEqual(['d - share', 'f a share/a', 'f b share/b', 'f a share/foo'])
  })
})

describe('include and exclude', () => {
  const tree = {
    'bin/tool': 'tool',
    'lib/libx.so': 'so',
    'lib/libx.la': 'la',
    'lib/sub/liby.la': 'la',
    'lib/sub/liby.so': 'so',
    'share/doc/x/README': 'doc',
    'share/man/man1/tool.1': 'man',
    '.spack/spec.json': '{}',
  }

  it('a global exclude that names a directory drops the subtree, with or without /**', async () => {
    const dir = root()
    const a = writeTree(path.join(dir, 'a'), tree)
    for (const pattern of ['share/doc', 'share/doc/**', './share/doc/']) {
      const plan = await planOf(dir, { fold: false, exclude: [pattern, '.spack'], packages: [a] }, 'e.yaml')
      expect(rows(plan).filter((r) => r.includes('share') || r.includes('spack'))).toEqual(['d - share', 'd - share/man', 'd - share/man/man1', 'f a share/man/man1/tool.1'])
      expect(plan.excluded).toBe(2)
    }
  })

  it('`**/*.la` drops files at any depth', async () => {
    const dir = root()
    const a = writeTree(path.join(dir, 'a'), tree)
    const plan = await planOf(dir, { fold: false, exclude: ['**/*.la'], packages: [a] })
    expect(rows(plan).filter((r) => r.includes('lib'))).toEqual(['d - lib', 'f a lib/libx.so', 'd - lib/sub', 'f a lib/sub/liby.so'])
    expect(plan.excluded).toBe(2)
  })

  it('a global include `bin/**` keeps only bin', async () => {
    const dir = root()
    const a = writeTree(path.join(dir, 'a'), tree)
    const b = writeTree(path.join(dir, 'b'), { 'bin/other': 'o', 'lib/libb.so': 'b' })
    const plan = await planOf(dir, { fold: false, include: ['bin/**'], packages: [a, b] })
    expect(rows(plan)).toEqual(['d - bin', 'f b bin/other', 'f a bin/tool'])
  })

  it('per-package include and exclude apply to that package only', async () => {
    const dir = root()
    const a = writeTree(path.join(dir, 'a'), tree)
    const b = writeTree(path.join(dir, 'b'), { 'bin/b': 'b', 'share/doc/b/README': 'b doc', 'lib/libb.so': 'b' })
    const plan = await planOf(dir, {
      fold: false,
      exclude: ['.spack/**'],
      packages: [
        { path: a, exclude: ['share/doc/**', '**/*.la'] },
        { path: b, include: ['bin/**', 'share/**'] },
      ],
    })
    expect(rows(plan)).toEqual([
      'd - bin',
      'f b bin/b',
      'f a bin/tool',
      'd - lib',
      'f a lib/libx.so',
      'd - lib/sub',
      'f a lib/sub/liby.so',
      'd - share',
      'd - share/doc',
      'd - share/doc/b',
      'f b share/doc/b/README',
      'd - share/man',
      'd - share/man/man1',
      'f a share/man/man1/tool.1',
    ])
  })

  it('a directory the filters empty does not appear in the view', async () => {
    const dir = root()
    const a = writeTree(path.join(dir, 'a'), { 'bin/tool': 't', 'lib/x.la': 'la', 'lib/deep/y.la': 'la' })
    for (const fold of [true, false]) {
      const plan = await planOf(dir, { fold, exclude: ['**/*.la'], packages: [a] }, `f${fold}.yaml`)
      expect(rows(plan)).toEqual([fold ? 'F a bin' : 'd - bin', ...(fold ? [] : ['f a bin/tool'])])
    }
  })
})

describe('folding', () => {
  it('a directory two prefixes provide is not folded; their single-owner subdirectories are', async () => {
    const dir = root()
    const a = writeTree(path.join(dir, 'a'), { 'include/a/a.h': 'a' })
    const b = writeTree(path.join(dir, 'b'), { 'include/b/b.h': 'b' })
    const plan = await planOf(dir, { packages: [a, b] })
    expect(rows(plan)).toEqual(['d - include', 'F a include/a', 'F b include/b'])
  })

  it('a single-owner directory with an excluded file inside is not folded, its other files are linked', async () => {
    const dir = root()
    const a = writeTree(path.join(dir, 'a'), { 'lib/liba.so': 'so', 'lib/liba.la': 'la', 'include/a.h': 'h', 'share/doc/README': 'd', 'share/man/a.1': 'm' })
    const b = writeTree(path.join(dir, 'b'), { 'bin/b': 'b' })
    const plan = await planOf(dir, { exclude: ['**/*.la', 'share/doc'], packages: [a, b] })
    expect(rows(plan)).toEqual([
      'F b bin',
      'F a include', // nothing below it was excluded: still folded
      'd - lib',
      'f a lib/liba.so',
      'd - share',
      'F a share/man',
    ])
  })

  it('`fold: false` gives a real directory and one link per file', async () => {
    const dir = root()
    const a = writeTree(path.join(dir, 'a'), { 'include/a/a.h': 'a', 'include/a/sub/b.h': 'b' })
    const plan = await planOf(dir, { fold: false, packages: [a] })
    expect(rows(plan)).toEqual(['d - include', 'd - include/a', 'f a include/a/a.h', 'd - include/a/sub', 'f a include/a/sub/b.h'])
  })

  it('never folds for hardlink or copy views', async () => {
    const dir = root()
    const a = writeTree(path.join(dir, 'a'), { 'include/a/a.h': 'a' })
    for (const link of ['hardlink', 'copy']) {
      const plan = await planOf(dir, { link, fold: true, packages: [a] }, `${link}.yaml`)
      expect(rows(plan)).toEqual(['d - include', 'd - include/a', 'f a include/a/a.h'])
      expect(plan.options.link).toBe(link)
    }
  })
})

describe('what a prefix holds', () => {
  it('symlinks are linked as they stand: not followed, a symlinked directory is not descended', async () => {
    const dir = root()
    const a = writeTree(path.join(dir, 'a'), {
      'lib/libz.so.1': 'z',
      'lib/libz.so': { symlink: 'libz.so.1' },
      'lib/dangling': { symlink: 'does-not-exist' },
      'real/file': 'f',
      'alias': { symlink: 'real' },
    })
    const plan = await planOf(dir, { fold: false, packages: [a] })
    expect(rows(plan)).toEqual(['l a alias', 'd - lib', 'l a lib/dangling', 'l a lib/libz.so', 'f a lib/libz.so.1', 'd - real', 'f a real/file'])
  })

  it('fifos are skipped with a warning where the walk meets them', async () => {
    const dir = root()
    const a = writeTree(path.join(dir, 'a'), { 'bin/tool': 't', 'include/a.h': 'h', 'lib/liba.so': 'so' })
    const b = writeTree(path.join(dir, 'b'), { 'bin/other': 'o' })
    execFileSync('mkfifo', [path.join(a, 'bin/pipe'), path.join(a, 'lib/fifo')])
    // bin has two owners, so it is walked and the fifo met
    const merged = await planOf(dir, { packages: [a, b] }, 'merged.yaml')
    // lib/ has one owner and no filter reaches into it, so it is folded without being read:
    // its fifo shows through the folded link, unwarned (the price of folding without a walk)
    expect(rows(merged)).toEqual(['d - bin', 'f b bin/other', 'f a bin/tool', 'F a include', 'F a lib'])
    expect(merged.warnings).toEqual([`skipped ${path.join(a, 'bin/pipe')}: sockets, fifos and device files are not linked`])

    const perFile = await planOf(dir, { fold: false, packages: [a, b] }, 'perfile.yaml')
    expect(rows(perFile)).toEqual(['d - bin', 'f b bin/other', 'f a bin/tool', 'd - include', 'f a include/a.h', 'd - lib', 'f a lib/liba.so'])
    expect(perFile.warnings).toHaveLength(2)
    expect(perFile.warnings[0]).toBe(`skipped ${path.join(a, 'bin/pipe')}: sockets, fifos and device files are not linked`)
    expect(perFile.warnings[1]).toContain(path.join(a, 'lib/fifo'))
  })

  it('`.viewctl` at a prefix root is skipped with a warning; deeper it is an ordinary name', async () => {
    const dir = root()
    const a = writeTree(path.join(dir, 'a'), { '.viewctl/meta.json': '{}', 'bin/tool': 't', 'share/.viewctl': 'deep' })
    const plan = await planOf(dir, { fold: false, packages: [a] })
    expect(rows(plan)).toEqual(['d - bin', 'f a bin/tool', 'd - share', 'f a share/.viewctl'])
    expect(plan.warnings).toHaveLength(1)
    expect(plan.warnings[0]).toContain(path.join(a, '.viewctl'))
  })

  it('names with spaces, newlines, tabs, quotes, leading dashes and non-UTF-8 bytes survive and round-trip', async () => {
    const dir = root()
    const a = writeTree(path.join(dir, 'a'), {
      'bin/with space': '1',
      'bin/new\nline': '2',
      'bin/-leading-dash': '3',
      'bin/--': '4',
      'bin/tab\there': '5',
      'bin/"quoted"': '6',
      'bin/back\\slash': '7',
      'bin/ünïcødé': '8',
    })
    const rawName = Buffer.concat([Buffer.from(path.join(a, 'bin') + '/bad'), Buffer.from([0xff, 0xfe]), Buffer.from('name')])
    fs.writeFileSync(rawName, '9')
    const plan = await planOf(dir, { fold: false, packages: [a] })
    const bad = 'bad\udcff\udcfename'
    expect(plan.paths).toEqual(
      ['bin', ...['"quoted"', '--', '-leading-dash', 'back\\slash', bad, 'new\nline', 'tab\there', 'with space', 'ünïcødé'].map((n) => `bin/${n}`)],
    )
    // the escaped name maps back to the exact bytes on disk
    const i = plan.paths.indexOf(`bin/${bad}`)
    expect(fsPath(`${plan.prefixes[plan.sources[i]!]}/${plan.paths[i]}`)).toEqual(rawName)
    expect(fs.readFileSync(fsPath(`${a}/bin/${bad}`), 'utf8')).toBe('9')

    const text = plan.chunks.join('')
    expect(text.split('\n').filter(Boolean)).toHaveLength(1 + 1 + plan.paths.length) // header, prefix, entries: no name broke a line
    expect(parsePlanText(text)).toEqual({ prefixes: plan.prefixes, paths: plan.paths, kinds: plan.kinds, sources: plan.sources })
  })

  it('each directory lists its names in UTF-16 code unit order, a name before the longer names it begins, whatever prefix provides them', async () => {
    // The walk unions listings by sorting "name NUL slot" keys (merge.ts): these names are where such a key could sort wrong.
    const names = ['a', 'a-b', 'a.b', 'ab', 'a b', 'A', 'é', '😀', 'ｚ', 'a\u0001', 'z', '10', '9', 'lib', 'lib.so', 'lib.so.1']
    const dir = root()
    const trees: Record<string, string>[] = [{}, {}, {}]
    names.forEach((n, i) => {
      trees[i % 3]![`share/${n}`] = n
      trees[(i + 1) % 3]![`share/d/${n}`] = n // a directory all three provide, merged
    })
    trees[1]!['share/a/x'] = 'x' // a directory named `a` in the second prefix, against the file `a` in the first: `first` keeps the file
    for (const t of trees) t['share/same'] = 'same' // identical in all three: one link, from the first
    const pkgs = trees.map((t, i) => writeTree(path.join(dir, `p${i}`), t))
    const plan = await planOf(dir, { fold: false, conflicts: 'first', packages: pkgs })

    const order = (xs: string[]) => [...xs].sort((x, y) => (x < y ? -1 : x > y ? 1 : 0))
    const inShare = order([...names.filter((n) => n !== 'a'), 'a', 'd', 'same'])
    const expected = ['share']
    for (const n of inShare) {
      expected.push(`share/${n}`)
      if (n === 'd') expected.push(...order(names).map((m) => `share/d/${m}`))
    }
    expect(plan.paths).toEqual(expected)
    expect(order(['😀', 'ｚ'])).toEqual(['😀', 'ｚ']) // code units: U+D83D before U+FF5A, though U+1F600 is the larger code point
    expect(sourceOfPath(plan, 'share/same')).toBe(pkgs[0])
    expect(sourceOfPath(plan, 'share/a')).toBe(pkgs[0])
    expect(plan.conflicts.map((c) => c.path)).toEqual(['share/a'])
  })

  it('a directory one prefix alone provides is in code unit order too, where that differs from the byte order it is listed in', async () => {
    // UTF-8 puts U+FF5A (EF BD 9A) before U+1F600 (F0 9F 98 80); UTF-16 code units put U+1F600 (D83D DE00) first
    const dir = root()
    const a = writeTree(path.join(dir, 'a'), { 'share/ｚ': 'z', 'share/😀': 's', 'share/a': 'a', 'share/sub/x': 'x' })
    const plan = await planOf(dir, { fold: false, packages: [a] })
    expect(plan.paths).toEqual(['share', 'share/a', 'share/sub', 'share/sub/x', 'share/😀', 'share/ｚ'])
  })

  it('a plan of several text chunks round-trips, and a path that needs quoting is quoted in whichever chunk it falls', async () => {
    const dir = root()
    const files: Record<string, string> = {}
    for (let i = 0; i < 5000; i++) files[`lib/f${String(i).padStart(5, '0')}`] = ''
    files['lib/f04500\tx'] = '' // in the third chunk of 2,048 entries
    const a = writeTree(path.join(dir, 'a'), files)
    const plan = await planOf(dir, { fold: false, packages: [a] })
    expect(plan.chunks.length).toBeGreaterThan(3) // the header and prefix table, then three of entries
    const text = plan.chunks.join('')
    expect(plan.chunks.slice(3).join('')).toContain('f\t0\t"lib/f04500\\tx"\n')
    expect(parsePlanText(text)).toEqual({ prefixes: [a], paths: plan.paths, kinds: plan.kinds, sources: plan.sources })
    expect(plan.paths).toHaveLength(5002)
  })

  it('the plan text round-trips through parsePlanText for a folded multi-prefix plan', async () => {
    const dir = root()
    const a = writeTree(path.join(dir, 'a'), { 'bin/a': 'a', 'lib/l': { symlink: 'x' }, 'include/a/a.h': 'h' })
    const b = writeTree(path.join(dir, 'b'), { 'bin/b': 'b' })
    const plan = await planOf(dir, { packages: [a, b] })
    expect(parsePlanText(plan.chunks.join(''))).toEqual({ prefixes: [a, b], paths: plan.paths, kinds: plan.kinds, sources: plan.sources })
  })
})

describe('the hash', () => {
  function prefixes(dir: string): [string, string] {
    return [
      writeTree(path.join(dir, 'a'), { 'bin/a': 'a', 'lib/liba.so': 'la', 'include/a/a.h': 'h' }),
      writeTree(path.join(dir, 'b'), { 'bin/b': 'b', 'lib/libb.so': 'lb' }),
    ]
  }

  it('is 32 lowercase hex characters and the same for the same inputs', async () => {
    const dir = root()
    const [a, b] = prefixes(dir)
    const one = await planOf(dir, { packages: [a, b] }, 'one.yaml')
    const two = await planOf(dir, { packages: [a, b] }, 'two.yaml')
    expect(one.hash).toMatch(/^[0-9a-f]{32}$/)
    expect(two.hash).toBe(one.hash)
    const manifest = await loadManifest(path.join(dir, 'one.yaml'))
    expect(createPlan(manifest).hash).toBe(one.hash)
  })

  it('does not change with YAML key order, defaults spelled out, env or gc settings', async () => {
    const dir = root()
    const [a, b] = prefixes(dir)
    const view = path.join(dir, 'views', 'v')
    const plain = await planOfText(dir, `view: ${view}\npackages:\n  - ${a}\n  - ${b}\n`, 'plain.yaml')
    const shuffled = await planOfText(
      dir,
      [
        'gc:',
        '  ttl: 30d',
        '  keep: 9',
        '  auto: false',
        'env:',
        '  PATH: [bin, sbin]',
        '  MY_VAR: [share/x]',
        'packages:',
        `  - path: ${a}`,
        `  - ${b}`,
        'conflicts: error',
        'relative: false',
        'fold: true',
        'link: symlink',
        `view: ${view}`,
        '',
      ].join('\n'),
      'shuffled.yaml',
    )
    expect(shuffled.hash).toBe(plain.hash)
  })

  it('does not change with package order when there are no conflicts', async () => {
    const dir = root()
    const [a, b] = prefixes(dir)
    const ab = await planOf(dir, { packages: [a, b] }, 'ab.yaml')
    const ba = await planOf(dir, { packages: [b, a] }, 'ba.yaml')
    expect(ba.conflicts).toEqual([])
    expect(ba.hash).toBe(ab.hash)
  })

  it('changes with the link mode, fold, relative, and a file added', async () => {
    const dir = root()
    const [a, b] = prefixes(dir)
    const base = await planOf(dir, { packages: [a, b] }, 'base.yaml')
    const hashes = [base.hash]
    for (const [name, extra] of [
      ['hardlink', { link: 'hardlink' }],
      ['copy', { link: 'copy' }],
      ['nofold', { fold: false }],
      ['relative', { relative: true }],
    ] as const) {
      hashes.push((await planOf(dir, { ...extra, packages: [a, b] }, `${name}.yaml`)).hash)
    }
    expect(new Set(hashes).size).toBe(5)
    fs.writeFileSync(path.join(b, 'bin/new'), 'new')
    const added = await planOf(dir, { packages: [a, b] }, 'base.yaml')
    expect(added.hash).not.toBe(base.hash)
    expect(hashes).not.toContain(added.hash)
  })

  it('for a hardlink view, changes when a source file is replaced by rename', async () => {
    const dir = root()
    const [a, b] = prefixes(dir)
    const before = await planOf(dir, { link: 'hardlink', packages: [a, b] })
    expect((await planOf(dir, { link: 'hardlink', packages: [a, b] })).hash).toBe(before.hash)
    fs.writeFileSync(path.join(a, 'bin/.a.new'), 'a2')
    fs.renameSync(path.join(a, 'bin/.a.new'), path.join(a, 'bin/a'))
    const after = await planOf(dir, { link: 'hardlink', packages: [a, b] })
    expect(rows(after)).toEqual(rows(before))
    expect(after.hash).not.toBe(before.hash)
  })

  it('for a copy view, changes when a source file is rewritten in place', async () => {
    const dir = root()
    const [a, b] = prefixes(dir)
    const before = await planOf(dir, { link: 'copy', packages: [a, b] })
    const file = path.join(a, 'bin/a')
    const st = fs.statSync(file)
    fs.writeFileSync(file, 'A') // same size, new bytes
    fs.utimesSync(file, st.atime, new Date(st.mtimeMs + 5000))
    const after = await planOf(dir, { link: 'copy', packages: [a, b] })
    expect(after.hash).not.toBe(before.hash)
  })
})
