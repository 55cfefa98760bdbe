/**
 * The streamed build (src/store/build/stream.ts): links are made while the
 * prefixes are still walked. Each claim is checked against the plain build
 * (VIEWCTL_JOBS=1: no link worker, so plan first and build after)
 * through the real CLI, since only the compiled package ships the worker.
 */
import fs from 'node:fs'
import path from 'node:path'
import { describe, expect, it, onTestFinished } from 'vitest'
import { mergedWalk, type WalkPackage } from '../src/plan/merge.js'
import { makeFilter, rootIncludeState } from '../src/plan/filters.js'
import { readDirListing } from '../src/plan/scan.js'
import { Kind } from '../src/plan/types.js'
import { tempDir, viewctl, viewctlAsync, writeManifest, writeTree, type FileSpec } from './helpers.js'
import { finished, fullSnapshot, leftovers, noStackTrace, storeOf, treeOf } from './view-checks.js'
import { mountTmpfs, requireMount } from './mounts.js'

const PLAIN = { VIEWCTL_JOBS: '1' }

/** `n` files in `dir` of a prefix tree spec. */
function many(dir: string, n: number, tag: string): Record<string, FileSpec> {
  const files: Record<string, FileSpec> = {}
  for (let i = 0; i < n; i++) files[`${dir}/${tag}-${i}`] = `${tag} ${i}`
  return files
}

/**
 * Prefixes with every shape the walk treats differently: big shared
 * directories (so that chunks go out while walking), a single-owner
 * directory, a directory only filters empty, a folded directory the walk
 * must descend into first (a filter applies inside), an empty directory,
 * names with spaces and newlines, a shipped symlink, identical copies.
 */
function shapes(root: string): string[] {
  const a = writeTree(path.join(root, 'a'), {
    ...many('bin', 1500, 'a'),
    ...many('lib', 1200, 'liba'),
    'include/a/a.h': 'a',
    'include/a/deep/x.h': 'x',
    'share/doc/a/README': 'a',
    'share/doc/a/notes.tmp': 'tmp',
    'share/only-tmp/x.tmp': 'tmp',
    'share/empty': { dir: true },
    'etc/name with spaces': 'spaces',
    'etc/new\nline': 'newline',
    'lib/libz.so': { symlink: 'liba-1' },
    'same/file': 'identical',
  })
  const b = writeTree(path.join(root, 'b'), {
    ...many('bin', 1500, 'b'),
    ...many('lib', 300, 'libb'),
    'include/b/b.h': 'b',
    'share/doc/b/README': 'b',
    'etc/b.conf': 'b',
    'same/file': 'identical',
  })
  return [a, b]
}

function manifestFor(root: string, prefixes: string[], view: string, extra: string[], name: string): string {
  return writeManifest(root, [`view: ${view}`, ...extra, 'exclude: ["**/*.tmp"]', 'packages:', ...prefixes.map((p) => `  - ${JSON.stringify(p)}`), ''].join('\n'), name)
}

describe('streamed build', () => {
  const variants: Array<[string, string[], 'inode' | 'content']> = [
    ['per-file symlinks', ['fold: false'], 'inode'],
    ['folded symlinks', [], 'inode'],
    ['relative symlinks', ['relative: true'], 'inode'],
    ['hardlinks', ['link: hardlink'], 'inode'],
    ['copies', ['link: copy'], 'content'],
  ]
  for (const [name, extra, files] of variants) {
    it(`makes the same tree as the plain build: ${name}`, () => {
      const root = tempDir()
      const prefixes = shapes(root)
      const streamedView = path.join(root, 'streamed')
      const plainView = path.join(root, 'plain')
      const streamed = viewctl(['regenerate', manifestFor(root, prefixes, streamedView, extra, 's.yaml'), '--json'])
      expect(streamed.code, streamed.stderr).toBe(0)
      const plain = viewctl(['regenerate', manifestFor(root, prefixes, plainView, extra, 'p.yaml'), '--json'], { env: PLAIN })
      expect(plain.code, plain.stderr).toBe(0)

      expect(streamed.json.streamed).toBe(true)
      expect(plain.json.streamed).toBe(false)
      expect(streamed.json.hash).toBe(plain.json.hash)
      expect(streamed.json.entries).toBe(plain.json.entries)
      const tree = treeOf(streamedView, files)
      expect(tree).toEqual(treeOf(plainView, files))
      // the shapes are there: dropped by filters, kept empty, folded or not
      expect(tree['share/only-tmp']).toBeUndefined()
      expect(tree['share/empty']).toMatch(extra.includes('fold: false') || extra.some((e) => e.startsWith('link:')) ? /^dir$/ : /^-> /)
      expect(tree['etc/new\nline']).toBeDefined()
      const verify = viewctl(['verify', streamedView])
      expect(verify.code, verify.stdout + verify.stderr).toBe(0)
      expect(leftovers(streamedView)).toEqual([])
    })
  }

  it('a conflict found after linking began: exit 3 listing it, the view unchanged, staging removed', () => {
    const root = tempDir()
    // the walk meets aaa/ (3,000 links, which go out to the worker) long before zzz/x
    const a = writeTree(path.join(root, 'a'), { ...many('aaa', 3000, 'a'), 'zzz/x': 'from a' })
    const b = writeTree(path.join(root, 'b'), { 'zzz/x': 'from b' })
    const view = path.join(root, 'v')
    const first = viewctl(['regenerate', writeManifest(root, `view: ${view}\npackages: [${a}]\n`, 'one.yaml')])
    expect(first.code, first.stderr).toBe(0)
    const before = fullSnapshot(view)

    const r = viewctl(['regenerate', writeManifest(root, `view: ${view}\nfold: false\npackages: [${a}, ${b}]\n`, 'two.yaml'), '--json'])
    expect(r.code, r.stderr).toBe(3)
    expect(r.json.error.code).toBe('CONFLICT')
    expect(r.stderr).toContain('zzz/x')
    expect(r.stderr).toContain('the view was not changed')
    noStackTrace(r.stderr)
    expect(fullSnapshot(view)).toEqual(before)
    expect(leftovers(view)).toEqual([])

    // the same walk with the conflict settled does link while walking: the refusal above came after links were out
    const settled = viewctl(['regenerate', writeManifest(root, `view: ${view}\nfold: false\nconflicts: first\npackages: [${a}, ${b}]\n`, 'three.yaml'), '--json'])
    expect(settled.code, settled.stderr).toBe(0)
    expect(settled.json.streamed).toBe(true)
    expect(fs.readFileSync(path.join(view, 'zzz/x'), 'utf8')).toBe('from a')
  })

  it('the scan cache lost, nothing changed: the walk finds the plan the view shows and writes nothing', () => {
    const root = tempDir()
    const prefixes = shapes(root)
    const view = path.join(root, 'v')
    const manifest = manifestFor(root, prefixes, view, ['fold: false'], 'env.yaml')
    const first = viewctl(['regenerate', manifest, '--json'])
    expect(first.code, first.stderr).toBe(0)
    expect(first.json.streamed).toBe(true)
    const store = storeOf(view)
    const before = fullSnapshot(view)
    const treeBefore = fs.readdirSync(store).sort()

    fs.rmSync(path.join(store, '.scan-cache'))
    const again = viewctl(['regenerate', manifest, '--json'])
    expect(again.code, again.stderr).toBe(0)
    expect(again.json).toMatchObject({ changed: false, built: false, streamed: false, hash: first.json.hash })
    expect(fullSnapshot(view)).toEqual(before)
    expect(fs.readdirSync(store).filter((n) => n !== '.scan-cache').sort()).toEqual(treeBefore.filter((n) => n !== '.scan-cache'))

    // a prefix gains a file: the walk parts from the view's plan and links while walking again
    writeTree(prefixes[0]!, { 'bin/zz-new': 'new' })
    fs.rmSync(path.join(store, '.scan-cache'))
    const changed = viewctl(['regenerate', manifest, '--json'])
    expect(changed.code, changed.stderr).toBe(0)
    expect(changed.json).toMatchObject({ changed: true, built: true, streamed: true, generation: 2 })
    expect(fs.readFileSync(path.join(view, 'bin/zz-new'), 'utf8')).toBe('new')
    expect(viewctl(['verify', view]).code).toBe(0)
  })

  it('nothing changed since the last scan (a hardlink view, whose plan the cache does not remember): a plain no-op, nothing streamed', async () => {
    const root = tempDir()
    const prefixes = shapes(root)
    const view = path.join(root, 'v')
    const manifest = manifestFor(root, prefixes, view, ['link: hardlink'], 'env.yaml')
    const first = viewctl(['regenerate', manifest, '--json'])
    expect(first.code, first.stderr).toBe(0)
    expect(first.json.streamed).toBe(true)
    // the scan cache keeps no directory changed within the last 2 s (its racy window)
    await new Promise((resolve) => setTimeout(resolve, 2100))
    expect(viewctl(['regenerate', manifest]).code).toBe(0)
    const again = viewctl(['regenerate', manifest, '--json'])
    expect(again.code, again.stderr).toBe(0)
    expect(again.json).toMatchObject({ changed: false, built: false, streamed: false, hash: first.json.hash })
  })

  it('a tree with the new hash is on disk already (after a rollback): reused, what was linked is removed', () => {
    const root = tempDir()
    const prefixes = shapes(root)
    const view = path.join(root, 'v')
    const one = manifestFor(root, prefixes.slice(0, 1), view, ['fold: false'], 'one.yaml')
    const two = manifestFor(root, prefixes, view, ['fold: false'], 'two.yaml')
    expect(viewctl(['regenerate', one]).code).toBe(0)
    const second = viewctl(['regenerate', two, '--json'])
    expect(second.code, second.stderr).toBe(0)
    expect(viewctl(['rollback', view]).code).toBe(0)
    fs.rmSync(path.join(storeOf(view), '.scan-cache'))

    const again = viewctl(['regenerate', two, '--json'])
    expect(again.code, again.stderr).toBe(0)
    expect(again.json).toMatchObject({ changed: true, built: false, hash: second.json.hash, generation: 3 })
    expect(leftovers(view)).toEqual([])
    expect(viewctl(['verify', view]).code).toBe(0)
  })

  it('a directory that cannot be made while walking (out of inodes): exit 1, "no space", the view unchanged, staging removed', (ctx) => {
    requireMount(ctx)
    const root = tempDir()
    // the first file sits 80 directories deep: making its parents, during the walk, runs out of the tmpfs's 64 inodes
    let deep = 'lib'
    for (let i = 0; i < 80; i++) deep += `/d${i}`
    const a = writeTree(path.join(root, 'a'), { [`${deep}/f`]: 'f', 'zz/x': 'x' })
    const b = writeTree(path.join(root, 'b'), { 'zz/y': 'y' })
    const base = mountTmpfs('size=4m,nr_inodes=64')
    const view = path.join(base, 'v')
    const first = viewctl(['regenerate', writeManifest(root, `view: ${view}\npackages: [${b}]\n`, 'one.yaml')])
    expect(first.code, first.stderr).toBe(0)
    const before = fullSnapshot(view)

    const r = viewctl(['regenerate', writeManifest(root, `view: ${view}\nfold: false\npackages: [${a}, ${b}]\n`, 'two.yaml'), '--json'])
    expect(r.code, r.stderr).toBe(1)
    expect(r.json.error.code).toBe('DISK_FULL')
    expect(r.stderr).toContain('no space left')
    expect(r.stderr).toContain('.staging-walk-') // the mkdir that failed was the streamed build's, during the walk
    noStackTrace(r.stderr)
    expect(fullSnapshot(view)).toEqual(before)
    expect(leftovers(view)).toEqual([])
  })

  it('kill -9 while linking during the walk: the view stays on its generation; the next writer clears .staging-walk-* and builds', async () => {
    const root = tempDir()
    const a = writeTree(path.join(root, 'a'), { ...many('bin', 15000, 'a'), ...many('lib', 15000, 'liba') })
    const b = writeTree(path.join(root, 'b'), { 'bin/b': 'b' })
    const view = path.join(root, 'v')
    expect(viewctl(['regenerate', writeManifest(root, `view: ${view}\npackages: [${b}]\n`, 'one.yaml')]).code).toBe(0)
    const before = fullSnapshot(view)
    const two = writeManifest(root, `view: ${view}\nfold: false\npackages: [${a}, ${b}]\n`, 'two.yaml')

    const child = viewctlAsync(['regenerate', two])
    const exited = finished(child)
    const store = storeOf(view)
    let staging: string | undefined
    const deadline = Date.now() + 30_000
    while (staging === undefined && child.exitCode === null && Date.now() < deadline) {
      staging = fs.readdirSync(store).find((n) => n.startsWith('.staging-walk-'))
      if (staging === undefined) await new Promise((resolve) => setTimeout(resolve, 2))
    }
    expect(staging, 'the streamed build was over before its staging directory was seen').toBeDefined()
    child.kill('SIGKILL')
    expect((await exited).signal).toBe('SIGKILL')
    expect(fullSnapshot(view)).toEqual(before)
    expect(leftovers(view)).toContain(staging)

    const next = viewctl(['regenerate', two, '--json'])
    expect(next.code, next.stderr).toBe(0)
    expect(next.json.cleared).toContain(path.join(store, staging!))
    expect(next.json).toMatchObject({ changed: true, built: true, generation: 2 })
    expect(leftovers(view)).toEqual([])
    expect(viewctl(['verify', view]).code).toBe(0)
  })

  it('with the lock busy it plans first and waits for the lock afterwards, as a plain build', async () => {
    const root = tempDir()
    const prefixes = shapes(root)
    const view = path.join(root, 'v')
    expect(viewctl(['regenerate', manifestFor(root, prefixes.slice(0, 1), view, [], 'one.yaml')]).code).toBe(0)
    const { default: fsx } = await import('fs-native-extensions')
    const fd = fs.openSync(path.join(storeOf(view), '.lock'), 'r+')
    let closed = false
    const release = () => {
      if (!closed) fs.closeSync(fd)
      closed = true
    }
    onTestFinished(release)
    expect(fsx.tryLock(fd)).toBe(true)

    const child = viewctlAsync(['regenerate', manifestFor(root, prefixes, view, [], 'two.yaml'), '--lock-timeout', '20', '--json'])
    await new Promise((resolve) => setTimeout(resolve, 1500))
    expect(leftovers(view)).toEqual([]) // nothing staged while another writer holds the lock
    release()
    const exit = await finished(child)
    expect(exit.code, exit.stderr).toBe(0)
    const json = JSON.parse(exit.stdout)
    expect(json).toMatchObject({ changed: true, built: true, streamed: false, generation: 2 })
  })
})

describe('the walk tells settled entries (merge.ts onRelease)', () => {
  function walkOf(prefixes: string[], opts: { fold: boolean; exclude?: string[] }) {
    const packages: WalkPackage[] = prefixes.map((p, order) => ({
      order,
      table: order,
      path: p,
      priority: 0,
      filter: makeFilter(null, opts.exclude ?? [], null, []),
      rootInclude: rootIncludeState(null, null),
    }))
    const told: Array<{ from: number; to: number; entries: Array<[string, number, number]> }> = []
    const result = mergedWalk(packages, {
      fold: opts.fold,
      conflicts: 'first',
      readDir: readDirListing,
      onRelease: (out, from, to) => {
        const entries: Array<[string, number, number]> = []
        for (let i = from; i < to; i++) {
          entries.push([out.paths[i]!, out.kinds[i]!, out.sources[i]!])
          // the stream makes parents and checks names from these, never taking the path apart (stream.ts, place)
          const parent = out.dirs![out.parentIds![i]!]!
          expect(parent === '' ? out.names![i] : `${parent}/${out.names![i]}`).toBe(out.paths[i])
        }
        told.push({ from, to, entries })
      },
    })
    return { result, told }
  }

  it('every entry is told, and nothing but a directory is ever taken back', () => {
    const root = tempDir()
    const a = writeTree(path.join(root, 'a'), {
      'bin/x': 'x',
      'share/doc/a/README': 'r',
      'share/doc/a/junk.tmp': 'j',
      'share/only/x.tmp': 'j',
      'share/only/deeper/y.tmp': 'j',
      'include/a/a.h': 'a',
      'lib/deep/one/two/f': 'f',
    })
    const b = writeTree(path.join(root, 'b'), { 'bin/y': 'y', 'share/doc/b/README': 'r', 'lib/deep/one/g': 'g' })
    for (const fold of [true, false]) {
      for (const exclude of [[], ['**/*.tmp'], ['share/doc/**']]) {
        const { result, told } = walkOf([a, b], { fold, exclude })
        // the final plan, position by position, is what was told last at each index
        const last: Array<[string, number, number] | undefined> = []
        for (const t of told) t.entries.forEach((e, k) => (last[t.from + k] = e))
        expect(last.length, `fold ${fold}, exclude ${exclude}`).toBeGreaterThanOrEqual(result.paths.length)
        result.paths.forEach((p, i) => expect(last[i]).toEqual([p, result.kinds[i], result.sources[i]]))
        // told past the end: directories that filters emptied last
        for (const e of last.slice(result.paths.length)) expect(e![1]).toBe(Kind.Dir)
        // an entry told and later replaced was a directory (dropped when filters emptied it)
        for (const t of told) {
          t.entries.forEach((e, k) => {
            const i = t.from + k
            if (result.paths[i] !== e[0] || result.kinds[i] !== e[1]) expect(e[1], `${e[0]} was taken back`).toBe(Kind.Dir)
          })
        }
      }
    }
  })

  it('a big directory is told in parts, before its last name is placed', () => {
    const root = tempDir()
    const a = writeTree(path.join(root, 'a'), many('bin', 3000, 'a'))
    const b = writeTree(path.join(root, 'b'), many('bin', 10, 'b'))
    const { result, told } = walkOf([a, b], { fold: true })
    expect(result.paths.length).toBe(3011)
    // parts of about a thousand, in order, covering everything once
    expect(told.length).toBeGreaterThanOrEqual(3)
    told.forEach((t, k) => expect(t.from).toBe(k === 0 ? 0 : told[k - 1]!.to))
    expect(told.at(-1)!.to).toBe(3011)
  })

  it('a directory folded after descending is held until it is settled', () => {
    const root = tempDir()
    // one owner for share/doc, but an exclude reaches inside it: the walk descends, then folds (nothing matched)
    const a = writeTree(path.join(root, 'a'), { 'share/doc/README': 'r', 'share/doc/sub/x': 'x', 'bin/a': 'a' })
    const b = writeTree(path.join(root, 'b'), { 'bin/b': 'b', 'share/man/b.1': 'b' })
    const { result, told } = walkOf([a, b], { fold: true, exclude: ['share/doc/**/*.tmp'] })
    const doc = result.paths.indexOf('share/doc')
    expect(result.kinds[doc]).toBe(Kind.Folded)
    // nothing below share/doc was ever told
    for (const t of told) for (const [p] of t.entries) expect(p.startsWith('share/doc/')).toBe(false)
  })
})
