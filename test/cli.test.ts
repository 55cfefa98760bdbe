/**
 * End to end: the real bin/viewctl (dist/, built by `npm test`'s pretest) run
 * as a child process against real prefixes and views in temp directories.
 */
import fs from 'node:fs'
import path from 'node:path'
import os from 'node:os'
import { spawn } from 'node:child_process'
import { stringify } from 'yaml'
import { afterAll, describe, expect, it } from 'vitest'
import { BIN, ROOT, snapshot, writeManifest, writeTree, type RunResult } from './helpers.js'

const STACK_LINE = /^\s+at .+/m

// The tests run concurrently (each spends most of its time waiting for child
// processes), so temp directories are cleaned here rather than by helpers'
// tempDir, whose onTestFinished cannot tell concurrent tests apart.
const made: string[] = []
afterAll(() => {
  for (const dir of made) fs.rmSync(dir, { recursive: true, force: true })
})

function tempDir(): string {
  const dir = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'viewctl-cli-')))
  made.push(dir)
  return dir
}

/** Run the real CLI (bin/viewctl) and collect its output; --json output is parsed. */
function viewctl(args: string[]): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d))
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d))
    child.on('error', reject)
    child.on('close', (code, signal) => {
      let json: any
      if (args.includes('--json')) {
        try {
          json = JSON.parse(stdout)
        } catch {
          json = undefined
        }
      }
      resolve({ code: code ?? (signal ? 128 : -1), stdout, stderr, json })
    })
  })
}

/** A hash prefix of at least 8 characters that cannot be read as a number (it has a letter other than e). */
function hashPrefix(hash: string): string {
  for (let n = 8; n <= hash.length; n++) if (/[a-df]/.test(hash.slice(0, n))) return hash.slice(0, n)
  return hash
}

interface Fixture {
  dir: string
  parent: string
  view: string
  store: string
  a: string
  b: string
  c: string
  /** Write a manifest for the fixture's view; `packages` and other fields as in YAML. */
  manifest(fields: Record<string, unknown>, name?: string): string
}

function fixture(): Fixture {
  const dir = tempDir()
  const a = writeTree(path.join(dir, 'prefixes', 'a'), {
    'bin/a': { content: 'A tool\n', mode: 0o755 },
    'lib/liba.so.1': { content: 'liba', mode: 0o640 },
    'lib/liba.so': { symlink: 'liba.so.1' },
    'include/a/a.h': '/* a */\n',
    'share/man/man1/a.1': '.TH a\n',
  })
  const b = writeTree(path.join(dir, 'prefixes', 'b'), {
    'bin/b': { content: 'B tool\n', mode: 0o755 },
    'lib/libb.so': 'libb',
  })
  const c = writeTree(path.join(dir, 'prefixes', 'c'), {
    'bin/c': { content: 'C tool\n', mode: 0o755 },
    'share/man/man1/c.1': '.TH c\n',
  })
  const parent = path.join(dir, 'views')
  fs.mkdirSync(parent)
  fs.writeFileSync(path.join(parent, 'README'), 'views live here\n')
  const view = path.join(parent, 'hpc')
  return {
    dir,
    parent,
    view,
    store: path.join(parent, '._hpc'),
    a,
    b,
    c,
    manifest: (fields, name = 'env.yaml') => writeManifest(dir, stringify({ view, ...fields }), name),
  }
}

/** Run and require success; returns the parsed --json output. */
async function ok(args: string[]): Promise<any> {
  const r = await viewctl([...args, '--json'])
  expect(r.code, `viewctl ${args.join(' ')} failed:\n${r.stderr}`).toBe(0)
  expect(r.json, `not one JSON object on stdout:\n${r.stdout}`).toBeDefined()
  return r.json
}

function regenerate(manifest: string): Promise<any> {
  return ok(['regenerate', manifest])
}

function historyText(f: Fixture): string {
  return fs.readFileSync(path.join(f.store, 'history.jsonl'), 'utf8')
}

/** Everything that shows what a view is: its link, its trees, its journal, the store's entries. */
function fullState(f: Fixture) {
  return {
    ...snapshot(f.view),
    parent: fs.readdirSync(f.parent).sort(),
    storeEntries: fs.existsSync(f.store) ? fs.readdirSync(f.store).filter((n) => n !== '.lock').sort() : null,
    history: fs.existsSync(path.join(f.store, 'history.jsonl')) ? historyText(f) : null,
  }
}

describe.concurrent('viewctl end to end', () => {
  describe('regenerate', () => {
    it('publishes view -> ._hpc/<hash> as a relative link, and the files show through it', async () => {
      const f = fixture()
      const m = f.manifest({ packages: [f.a, f.b] })
      const r = await viewctl(['regenerate', m, '--json'])
      expect(r.code).toBe(0)
      const j = r.json
      for (const key of ['view', 'store', 'hash', 'generation', 'changed', 'entries', 'prefixes', 'elapsedMs']) expect(j).toHaveProperty(key)
      expect(j.view).toBe(f.view)
      expect(j.store).toBe(f.store)
      expect(j.hash).toMatch(/^[0-9a-f]{32}$/)
      expect(j.generation).toBe(1)
      expect(j.changed).toBe(true)
      expect(j.prefixes).toBe(2)
      // d bin, f bin/a, f bin/b, F include, d lib, f lib/liba.so, f lib/liba.so.1, f lib/libb.so, F share
      expect(j.entries).toBe(9)
      expect(typeof j.elapsedMs).toBe('number')
      expect(j.elapsedMs).toBeGreaterThan(0)

      expect(fs.readlinkSync(f.view)).toBe(`._hpc/${j.hash}`)
      expect(fs.realpathSync(f.view)).toBe(path.join(f.store, j.hash))
      expect(fs.readFileSync(path.join(f.view, 'bin/a'), 'utf8')).toBe('A tool\n')
      expect(fs.readFileSync(path.join(f.view, 'bin/b'), 'utf8')).toBe('B tool\n')
      expect(fs.readFileSync(path.join(f.view, 'include/a/a.h'), 'utf8')).toBe('/* a */\n')
      expect(fs.readlinkSync(path.join(f.view, 'bin/a'))).toBe(path.join(f.a, 'bin/a'))
      expect(fs.readlinkSync(path.join(f.view, 'include'))).toBe(path.join(f.a, 'include'))
      expect(fs.readFileSync(path.join(f.view, '.viewctl/manifest.yaml'), 'utf8')).toBe(fs.readFileSync(m, 'utf8'))
      expect(JSON.parse(fs.readFileSync(path.join(f.view, '.viewctl/meta.json'), 'utf8')).hash).toBe(j.hash)
    })

    it('with nothing changed prints "up to date", exits 0 and records no generation', async () => {
      const f = fixture()
      const m = f.manifest({ packages: [f.a, f.b] })
      const first = await regenerate(m)
      const before = fullState(f)
      const r = await viewctl(['regenerate', m])
      expect(r.code).toBe(0)
      expect(r.stdout).toMatch(new RegExp(`^up to date: ${f.view} is generation 1 \\(hash ${first.hash.slice(0, 12)}, 9 entries from 2 prefixes\\)\n$`))
      expect(fullState(f)).toEqual(before)
      const again = await regenerate(m)
      expect(again).toMatchObject({ hash: first.hash, generation: 1, changed: false })
      expect((await ok(['list', f.view])).generations).toHaveLength(1)
      expect(fullState(f)).toEqual(before)
    })

    it('`plan` prints the hash that regenerate then builds, and writes nothing', async () => {
      const f = fixture()
      const m = f.manifest({ packages: [f.a, f.b] })
      const parentBefore = fs.readdirSync(f.parent).sort()
      const dirBefore = fs.readdirSync(f.dir).sort()

      const planned = await ok(['plan', m])
      expect(planned.hash).toMatch(/^[0-9a-f]{32}$/)
      expect(planned.entries).toBe(9)
      expect(planned.unresolved).toBe(0)
      const text = await viewctl(['plan', m])
      expect(text.code).toBe(0)
      expect(text.stdout).toContain(`hash:      ${planned.hash}\n`)
      expect(text.stdout).toContain('nothing was written')
      const dry = await ok(['regenerate', m, '--dry-run'])
      expect(dry).toMatchObject({ hash: planned.hash, dryRun: true, changed: true })

      expect(fs.readdirSync(f.parent).sort()).toEqual(parentBefore)
      expect(fs.readdirSync(f.dir).sort()).toEqual(dirBefore)
      expect(fs.existsSync(f.store)).toBe(false)
      expect(fs.existsSync(f.view)).toBe(false)

      expect((await regenerate(m)).hash).toBe(planned.hash)
      // and plan against a built view still writes nothing and agrees
      const built = fullState(f)
      expect((await ok(['plan', m])).hash).toBe(planned.hash)
      expect(fullState(f)).toEqual(built)
    })

    it('back to an earlier manifest reuses its tree under a new generation number', async () => {
      const f = fixture()
      const m1 = f.manifest({ packages: [f.a] }, 'one.yaml')
      const m2 = f.manifest({ packages: [f.a, f.b] }, 'two.yaml')
      const g1 = await regenerate(m1)
      const g2 = await regenerate(m2)
      expect(g2.hash).not.toBe(g1.hash)
      const treeIno = fs.statSync(path.join(f.store, g1.hash)).ino
      const g3 = await regenerate(m1)
      expect(g3).toMatchObject({ generation: 3, hash: g1.hash, changed: true, built: false })
      expect(fs.statSync(path.join(f.store, g1.hash)).ino).toBe(treeIno)
      expect(snapshot(f.view)).toEqual({ target: `._hpc/${g1.hash}`, store: [g1.hash, g2.hash].sort() })
      const list = await ok(['list', f.view])
      expect(list.current).toBe(3)
      expect(list.generations.map((g: any) => [g.generation, g.hash, g.current])).toEqual([
        [1, g1.hash, false],
        [2, g2.hash, false],
        [3, g1.hash, true],
      ])
    })

    it('a conflict exits 3 naming both sources and leaves the view as it was', async () => {
      const f = fixture()
      const other = writeTree(path.join(f.dir, 'prefixes', 'other'), { 'bin/a': 'another a\n' })
      const g1 = await regenerate(f.manifest({ packages: [f.a] }, 'one.yaml'))
      const before = fullState(f)
      const m = f.manifest({ packages: [f.a, other] }, 'conflict.yaml')
      const r = await viewctl(['regenerate', m])
      expect(r.code).toBe(3)
      expect(r.stdout).toBe('')
      expect(r.stderr).toContain(`bin/a: ${path.join(f.a, 'bin/a')} (file) vs ${path.join(other, 'bin/a')} (file)`)
      expect(r.stderr).not.toMatch(STACK_LINE)
      expect(fullState(f)).toEqual(before)
      expect(fs.readlinkSync(f.view)).toBe(`._hpc/${g1.hash}`)

      const j = await viewctl(['regenerate', m, '--json'])
      expect(j.code).toBe(3)
      expect(j.json.error.code).toBe('CONFLICT')
      expect(j.json.error.conflicts.map((c: any) => [c.path, c.sources.map((s: any) => s.path)])).toEqual([['bin/a', [path.join(f.a, 'bin/a'), path.join(other, 'bin/a')]]])
      expect(fullState(f)).toEqual(before)

      expect((await viewctl(['plan', m])).code).toBe(3)
    })

    it('a conflict settled by priority builds, and the higher priority shows through the view', async () => {
      const f = fixture()
      const other = writeTree(path.join(f.dir, 'prefixes', 'other'), { 'bin/a': 'another a\n' })
      const r = await regenerate(f.manifest({ packages: [f.a, { path: other, priority: 5 }] }))
      expect(r.generation).toBe(1)
      expect(fs.readFileSync(path.join(f.view, 'bin/a'), 'utf8')).toBe('another a\n')
      expect(fs.readlinkSync(path.join(f.view, 'bin/a'))).toBe(path.join(other, 'bin/a'))
      const r2 = await regenerate(f.manifest({ packages: [{ path: f.a, priority: 6 }, { path: other, priority: 5 }] }))
      expect(r2.generation).toBe(2)
      expect(fs.readFileSync(path.join(f.view, 'bin/a'), 'utf8')).toBe('A tool\n')
    })

    it('a missing prefix exits 2 naming the path, and the view does not change', async () => {
      const f = fixture()
      await regenerate(f.manifest({ packages: [f.a] }))
      const before = fullState(f)
      const missing = path.join(f.dir, 'prefixes', 'not-installed')
      const m = f.manifest({ packages: [f.a, missing] }, 'missing.yaml')
      const r = await viewctl(['regenerate', m])
      expect(r.code).toBe(2)
      expect(r.stdout).toBe('')
      expect(r.stderr).toContain(`${missing} does not exist`)
      expect(r.stderr).toContain('missing.yaml')
      expect(fullState(f)).toEqual(before)
    })
  })

  describe('link modes', () => {
    it('a hardlink view shares inodes with the prefix files', async () => {
      const f = fixture()
      const r = await regenerate(f.manifest({ link: 'hardlink', packages: [f.a, f.b] }))
      expect(fs.readlinkSync(f.view)).toBe(`._hpc/${r.hash}`)
      for (const [rel, prefix] of [['bin/a', f.a], ['bin/b', f.b], ['include/a/a.h', f.a], ['lib/liba.so.1', f.a]] as const) {
        const inView = fs.lstatSync(path.join(f.view, rel))
        expect(inView.isFile(), rel).toBe(true)
        expect(inView.ino, rel).toBe(fs.statSync(path.join(prefix, rel)).ino)
      }
      // never folded: include/ is a real directory
      expect(fs.lstatSync(path.join(f.view, 'include')).isDirectory()).toBe(true)
      expect(fs.readFileSync(path.join(f.view, 'bin/a'), 'utf8')).toBe('A tool\n')
      expect((await viewctl(['verify', f.view])).code).toBe(0)
    })

    it('a copy view copies bytes and modes, and copies symlinks as symlinks', async () => {
      const f = fixture()
      await regenerate(f.manifest({ link: 'copy', packages: [f.a, f.b] }))
      for (const [rel, prefix, mode] of [['bin/a', f.a, 0o755], ['lib/liba.so.1', f.a, 0o640], ['bin/b', f.b, 0o755]] as const) {
        const inView = fs.lstatSync(path.join(f.view, rel))
        const src = fs.statSync(path.join(prefix, rel))
        expect(inView.isFile(), rel).toBe(true)
        expect(inView.ino, rel).not.toBe(src.ino)
        expect(inView.mode & 0o7777, rel).toBe(mode)
        expect(fs.readFileSync(path.join(f.view, rel))).toEqual(fs.readFileSync(path.join(prefix, rel)))
      }
      expect(fs.readlinkSync(path.join(f.view, 'lib/liba.so'))).toBe('liba.so.1')
      expect(fs.readFileSync(path.join(f.view, 'lib/liba.so'), 'utf8')).toBe('liba')
      expect((await viewctl(['verify', f.view])).code).toBe(0)
    })

    it('a copy view keeps the exact bytes of a symlink target that is not UTF-8', async () => {
      const f = fixture()
      const odd = writeTree(path.join(f.dir, 'prefixes', 'odd'), { 'lib/real': 'r' })
      const target = Buffer.concat([Buffer.from('lib'), Buffer.from([0xe9]), Buffer.from('.so')]) // latin-1 "libé.so"
      fs.symlinkSync(target, path.join(odd, 'lib/link'))
      await regenerate(f.manifest({ link: 'copy', packages: [odd] }))
      expect(fs.readlinkSync(path.join(f.view, 'lib/link'), 'buffer')).toEqual(target)
    })

    it('`relative: true` makes relative links that resolve to the prefixes', async () => {
      const f = fixture()
      const r = await regenerate(f.manifest({ relative: true, packages: [f.a, f.b] }))
      const tree = path.join(f.store, r.hash)
      for (const [rel, prefix] of [['bin/a', f.a], ['bin/b', f.b], ['include', f.a], ['lib/liba.so', f.a], ['share', f.a]] as const) {
        const link = path.join(tree, rel)
        const target = fs.readlinkSync(link)
        expect(path.isAbsolute(target), `${rel} -> ${target}`).toBe(false)
        expect(path.resolve(path.dirname(link), target), rel).toBe(path.join(prefix, rel))
      }
      expect(fs.readFileSync(path.join(f.view, 'bin/a'), 'utf8')).toBe('A tool\n')
      expect(fs.readFileSync(path.join(f.view, 'include/a/a.h'), 'utf8')).toBe('/* a */\n')
      expect((await viewctl(['verify', f.view])).code).toBe(0)
    })
  })

  describe('rollback', () => {
    async function threeGenerations(f: Fixture) {
      const g1 = await regenerate(f.manifest({ packages: [f.a] }, 'one.yaml'))
      const g2 = await regenerate(f.manifest({ packages: [f.a, f.b] }, 'two.yaml'))
      const g3 = await regenerate(f.manifest({ packages: [f.a, f.b, f.c] }, 'three.yaml'))
      expect(new Set([g1.hash, g2.hash, g3.hash]).size).toBe(3)
      expect([g1.generation, g2.generation, g3.generation]).toEqual([1, 2, 3])
      return [g1.hash as string, g2.hash as string, g3.hash as string] as const
    }

    it('walks back one generation at a time, then exits 1 changing nothing', async () => {
      const f = fixture()
      const [h1, h2] = await threeGenerations(f)
      const r1 = await ok(['rollback', f.view])
      expect(r1).toMatchObject({ view: f.view, from: 3, to: 2, hash: h2 })
      expect(fs.readlinkSync(f.view)).toBe(`._hpc/${h2}`)
      expect(fs.existsSync(path.join(f.view, 'bin/b'))).toBe(true)
      expect(fs.existsSync(path.join(f.view, 'bin/c'))).toBe(false)

      const r2 = await viewctl(['rollback', f.view])
      expect(r2.code).toBe(0)
      expect(r2.stdout).toBe(`${f.view} is now generation 1 (hash ${h1.slice(0, 12)}), rolled back from generation 2\n`)
      expect(fs.readlinkSync(f.view)).toBe(`._hpc/${h1}`)
      expect(fs.existsSync(path.join(f.view, 'bin/b'))).toBe(false)

      const before = fullState(f)
      const r3 = await viewctl(['rollback', f.view])
      expect(r3.code).toBe(1)
      expect(r3.stderr).toContain('no earlier generation')
      expect(r3.stdout).toBe('')
      expect(fullState(f)).toEqual(before)

      const list = await ok(['list', f.view])
      expect(list.current).toBe(1)
      expect(list.generations.map((g: any) => g.generation)).toEqual([1, 2, 3])
      expect(await ok(['status', f.view])).toMatchObject({ generation: 1, hash: h1 })
    })

    it('`--to N` and `--to <hash prefix>` switch to that generation; an unknown one is an error', async () => {
      const f = fixture()
      const [h1, h2, h3] = await threeGenerations(f)
      expect(await ok(['rollback', f.view, '--to', '1'])).toMatchObject({ from: 3, to: 1, hash: h1 })
      expect(fs.readlinkSync(f.view)).toBe(`._hpc/${h1}`)
      expect(await ok(['rollback', f.view, '--to', hashPrefix(h3)])).toMatchObject({ from: 1, to: 3, hash: h3 })
      expect(fs.readlinkSync(f.view)).toBe(`._hpc/${h3}`)
      expect(await ok(['rollback', f.dir + '/three.yaml', '--to', hashPrefix(h2)])).toMatchObject({ to: 2, hash: h2 })
      expect(fs.readlinkSync(f.view)).toBe(`._hpc/${h2}`)

      const before = fullState(f)
      const bad = await viewctl(['rollback', f.view, '--to', '9', '--json'])
      expect(bad.code).toBe(2)
      expect(bad.json.error.code).toBe('GENERATION_NOT_FOUND')
      expect(bad.json.error.message).toContain('no generation 9')
      expect(fullState(f)).toEqual(before)
      // rollbacks create no generation
      expect((await ok(['list', f.view])).generations).toHaveLength(3)
    })
  })

  describe('list and status', () => {
    it('--json shapes, the same given the manifest or the view path', async () => {
      const f = fixture()
      const m1 = f.manifest({ packages: [f.a] }, 'one.yaml')
      const m2 = f.manifest({ packages: [f.a, f.b] }, 'two.yaml')
      const h1 = (await regenerate(m1)).hash
      const h2 = (await regenerate(m2)).hash

      const list = await ok(['list', f.view])
      expect(Object.keys(list).sort()).toEqual(['current', 'generations', 'view'])
      expect(list.view).toBe(f.view)
      expect(list.current).toBe(2)
      expect(list.generations).toHaveLength(2)
      for (const g of list.generations) {
        for (const key of ['generation', 'hash', 'created', 'current', 'onDisk']) expect(g).toHaveProperty(key)
        expect(Number.isNaN(Date.parse(g.created))).toBe(false)
      }
      expect(list.generations.map((g: any) => [g.generation, g.hash, g.current, g.onDisk])).toEqual([
        [1, h1, false, true],
        [2, h2, true, true],
      ])
      expect(await ok(['list', m1])).toEqual(list)
      expect(await ok(['list', m2])).toEqual(list)

      const status = await ok(['status', f.view])
      expect(status).toMatchObject({ view: f.view, generation: 2, hash: h2, target: `._hpc/${h2}` })
      const viaManifest = await ok(['status', m1])
      expect({ ...viaManifest, ageMs: 0 }).toEqual({ ...status, ageMs: 0 })

      const text = await viewctl(['status', f.view])
      expect(text.code).toBe(0)
      expect(text.stdout).toContain(`generation:  2 (hash ${h2})`)
      expect(text.stdout).toContain(`view:        ${f.view} -> ._hpc/${h2}`)
      const listText = await viewctl(['list', m2])
      expect(listText.code).toBe(0)
      const lines = listText.stdout.trimEnd().split('\n')
      expect(lines).toHaveLength(2)
      expect(lines[0]).toContain(h1.slice(0, 12))
      expect(lines[0]).not.toContain('(current)')
      expect(lines[1]).toContain(h2.slice(0, 12))
      expect(lines[1]).toMatch(/\(current\)$/)
    })

    it('on a path that is not a view, exits 2', async () => {
      const f = fixture()
      const r = await viewctl(['status', f.view, '--json'])
      expect(r.code).toBe(2)
      expect(r.json.error.code).toBe('NOT_A_VIEW')
      expect(r.json.error.message).toContain(f.view)
    })
  })

  describe('diff', () => {
    async function twoGenerations(f: Fixture) {
      const h1 = (await regenerate(f.manifest({ fold: false, packages: [f.a] }, 'one.yaml'))).hash as string
      const h2 = (await regenerate(f.manifest({ fold: false, packages: [f.a, f.b] }, 'two.yaml'))).hash as string
      return [h1, h2] as const
    }

    it('defaults to previous vs current, in text and --json', async () => {
      const f = fixture()
      const [h1, h2] = await twoGenerations(f)
      const j = await ok(['diff', f.view])
      expect(j).toEqual({
        view: f.view,
        from: { generation: 1, hash: h1 },
        to: { generation: 2, hash: h2 },
        prefixesAdded: [f.b],
        prefixesRemoved: [],
        added: [
          { path: 'bin/b', after: `f ${f.b}` },
          { path: 'lib/libb.so', after: `f ${f.b}` },
        ],
        removed: [],
        changed: [],
      })
      const t = await viewctl(['diff', f.view])
      expect(t.code).toBe(0)
      expect(t.stdout).toBe(
        [`generation 1 (${h1.slice(0, 12)}) -> generation 2 (${h2.slice(0, 12)})`, `+ prefix ${f.b}`, '+ bin/b', '+ lib/libb.so', '2 added, 0 removed, 0 changed', ''].join('\n'),
      )
    })

    it('compares two named generations, by number or hash prefix, and reports changed sources', async () => {
      const f = fixture()
      const [h1, h2] = await twoGenerations(f)
      const other = writeTree(path.join(f.dir, 'prefixes', 'other'), { 'bin/a': 'another a\n' })
      const h3 = (await regenerate(f.manifest({ fold: false, packages: [f.a, f.b, { path: other, priority: 1 }] }, 'three.yaml'))).hash as string

      const back = await ok(['diff', f.view, '2', '1'])
      expect(back).toMatchObject({ from: { generation: 2, hash: h2 }, to: { generation: 1, hash: h1 }, prefixesAdded: [], prefixesRemoved: [f.b], added: [], changed: [] })
      expect(back.removed).toEqual([
        { path: 'bin/b', before: `f ${f.b}` },
        { path: 'lib/libb.so', before: `f ${f.b}` },
      ])

      const changed = await ok(['diff', path.join(f.dir, 'one.yaml'), hashPrefix(h2), '3'])
      expect(changed).toMatchObject({ from: { generation: 2 }, to: { generation: 3, hash: h3 }, prefixesAdded: [other], added: [], removed: [] })
      expect(changed.changed).toEqual([{ path: 'bin/a', before: `f ${f.a}`, after: `f ${other}` }])
      const t = await viewctl(['diff', f.view, '2', '3'])
      expect(t.code).toBe(0)
      expect(t.stdout).toContain(`~ bin/a  (f ${f.a} -> f ${other})\n`)
      expect(t.stdout).toContain('0 added, 0 removed, 1 changed\n')

      const same = await viewctl(['diff', f.view, '1', '1'])
      expect(same.code).toBe(0)
      expect(same.stdout).toBe(`generation 1 (${h1.slice(0, 12)}) -> generation 1 (${h1.slice(0, 12)})\nno differences\n`)
    })

    it('takes a hash prefix that looks like a number in exponent form as a hash prefix', async () => {
      const f = fixture()
      const hashes = await twoGenerations(f)
      // "1e0" is a hash prefix to the user, not the number 1
      const spec = ['1e0', '2e0'].find((s) => !hashes.some((h) => h.startsWith(s)))!
      const r = await viewctl(['diff', f.view, spec, '2', '--json'])
      expect(r.code).toBe(2)
      expect(r.json?.error?.message).toContain(`no generation whose hash starts with ${spec}`)
    })

    it('with only one generation, exits 2 saying there is nothing to compare', async () => {
      const f = fixture()
      await regenerate(f.manifest({ packages: [f.a] }))
      const r = await viewctl(['diff', f.view, '--json'])
      expect(r.code).toBe(2)
      expect(r.json.error.code).toBe('GENERATION_NOT_FOUND')
      expect(r.json.error.message).toContain('no earlier generation on disk to compare generation 1 with')
    })
  })

  describe('verify', () => {
    it('passes on a fresh view and names what was deleted, added or re-pointed in the tree (exit 5)', async () => {
      const f = fixture()
      const r = await regenerate(f.manifest({ packages: [f.a, f.b] }))
      const tree = path.join(f.store, r.hash)

      const good = await viewctl(['verify', f.view])
      expect(good.code).toBe(0)
      expect(good.stdout).toBe(`ok: ${f.view} generation 1 (${r.hash.slice(0, 12)}) matches its plan (9 entries)\n`)
      expect(await ok(['verify', f.view])).toEqual({ view: f.view, generation: 1, hash: r.hash, checked: 9, ok: true, problems: [] })

      fs.unlinkSync(path.join(tree, 'bin/a'))
      const missing = await viewctl(['verify', f.view])
      expect(missing.code).toBe(5)
      expect(missing.stdout).toContain('missing      bin/a: planned but not in the tree')
      expect(missing.stderr).toContain('verify found 1 problem')
      const mj = await viewctl(['verify', f.view, '--json'])
      expect(mj.code).toBe(5)
      expect(mj.json.ok).toBe(false)
      expect(mj.json.problems.map((p: any) => [p.path, p.problem])).toEqual([['bin/a', 'missing']])
      fs.symlinkSync(path.join(f.a, 'bin/a'), path.join(tree, 'bin/a'))
      expect((await viewctl(['verify', f.view])).code).toBe(0)

      fs.writeFileSync(path.join(tree, 'lib/extra.so'), 'not planned')
      const extra = await viewctl(['verify', f.view, '--json'])
      expect(extra.code).toBe(5)
      expect(extra.json.problems.map((p: any) => [p.path, p.problem])).toEqual([['lib/extra.so', 'extra']])
      fs.unlinkSync(path.join(tree, 'lib/extra.so'))

      fs.unlinkSync(path.join(tree, 'bin/b'))
      fs.symlinkSync(path.join(f.a, 'bin/a'), path.join(tree, 'bin/b'))
      const wrong = await viewctl(['verify', f.view, '--json'])
      expect(wrong.code).toBe(5)
      expect(wrong.json.problems).toEqual([{ path: 'bin/b', problem: 'wrong-target', detail: `points to ${path.join(f.a, 'bin/a')}, planned ${path.join(f.b, 'bin/b')}` }])
    })

    it('passes on a view whose names hold spaces, newlines, leading dashes and non-UTF-8 bytes', async () => {
      const f = fixture()
      const odd = writeTree(path.join(f.dir, 'prefixes', 'odd'), { 'bin/with space': 's', 'bin/new\nline': 'n', 'bin/-rf': 'd', 'bin/tab\tname': 't' })
      const raw = Buffer.concat([Buffer.from(path.join(odd, 'bin') + '/bad'), Buffer.from([0xff, 0xc3]), Buffer.from('.sh')])
      fs.writeFileSync(raw, 'raw bytes')
      const r = await regenerate(f.manifest({ fold: false, packages: [f.b, odd] }))
      expect(r.entries).toBe(9) // bin, 6 files in bin, lib, lib/libb.so
      const viewBin = Buffer.from(path.join(f.view, 'bin') + '/')
      expect(fs.readFileSync(Buffer.concat([viewBin, Buffer.from('bad'), Buffer.from([0xff, 0xc3]), Buffer.from('.sh')]), 'utf8')).toBe('raw bytes')
      expect(fs.readFileSync(path.join(f.view, 'bin/new\nline'), 'utf8')).toBe('n')
      expect(fs.readFileSync(path.join(f.view, 'bin/-rf'), 'utf8')).toBe('d')
      const v = await viewctl(['verify', f.view, '--json'])
      expect(v.json?.problems).toEqual([])
      expect(v.code).toBe(0)
    })

    it('reports a link whose prefix file disappeared as dangling', async () => {
      const f = fixture()
      await regenerate(f.manifest({ packages: [f.a, f.b] }))
      fs.unlinkSync(path.join(f.b, 'bin/b'))
      const r = await viewctl(['verify', f.view, '--json'])
      expect(r.code).toBe(5)
      expect(r.json.problems.map((p: any) => [p.path, p.problem])).toEqual([['bin/b', 'dangling']])
    })
  })

  describe('output and errors', () => {
    it('--quiet prints nothing on success', async () => {
      const f = fixture()
      const m1 = f.manifest({ packages: [f.a] }, 'one.yaml')
      const m2 = f.manifest({ packages: [f.a, f.b] }, 'two.yaml')
      for (const args of [['regenerate', m1], ['regenerate', m2], ['regenerate', m2], ['status', f.view], ['list', f.view], ['diff', f.view], ['verify', f.view], ['plan', m2], ['rollback', f.view]]) {
        const r = await viewctl([...args, '--quiet'])
        expect([args[0], r.code, r.stdout, r.stderr]).toEqual([args[0], 0, '', ''])
      }
      expect((await ok(['status', f.view])).generation).toBe(1)
    })

    it('errors print no stack trace without --debug, and one with it', async () => {
      const f = fixture()
      const m = f.manifest({ packages: [path.join(f.dir, 'nope')] })
      const plain = await viewctl(['regenerate', m])
      expect(plain.code).toBe(2)
      expect(plain.stderr).toContain(`${path.join(f.dir, 'nope')} does not exist`)
      expect(plain.stderr).toMatch(/^hint: /m)
      expect(plain.stderr).not.toMatch(STACK_LINE)
      const debug = await viewctl(['regenerate', m, '--debug'])
      expect(debug.code).toBe(2)
      expect(debug.stderr).toContain(`${path.join(f.dir, 'nope')} does not exist`)
      expect(debug.stderr).toMatch(STACK_LINE)
    })

    it('--json failures print {"error":{code,message,hint}} on stdout', async () => {
      const f = fixture()
      const missing = path.join(f.dir, 'nope')
      const m = f.manifest({ packages: [missing] })
      const r = await viewctl(['regenerate', m, '--json'])
      expect(r.code).toBe(2)
      expect(Object.keys(r.json)).toEqual(['error'])
      expect(r.json.error.code).toBe('PREFIX_INVALID')
      expect(r.json.error.message).toContain(missing)
      expect(typeof r.json.error.hint).toBe('string')
      expect(r.json.error.hint.length).toBeGreaterThan(0)
      expect(r.stderr).toContain(missing)

      const usage = await viewctl(['frobnicate', '--json'])
      expect(usage.code).toBe(2)
      expect(usage.json.error.code).toBe('USAGE')
      expect(typeof usage.json.error.hint).toBe('string')
    })

    it('--help for each command shows an example', async () => {
      const top = await viewctl(['--help'])
      expect(top.code).toBe(0)
      const listed = [...top.stdout.matchAll(/^\s+viewctl (\w+)/gm)].map((m) => m[1]!)
      const commands = [...new Set(listed)]
      expect(commands).toEqual(expect.arrayContaining(['regenerate', 'plan', 'status', 'list', 'rollback', 'diff', 'verify']))
      const results = await Promise.all(commands.map((cmd) => viewctl([cmd, '--help'])))
      commands.forEach((cmd, i) => {
        expect(results[i]!.code, cmd).toBe(0)
        expect(results[i]!.stdout, cmd).toMatch(new RegExp(`Examples:\\n\\s+\\S*.*\\bviewctl ${cmd} \\S`))
      })
    })

    it('--version prints the package.json version', async () => {
      const version = (JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string }).version
      const r = await viewctl(['--version'])
      expect(r.code).toBe(0)
      expect(r.stdout).toBe(`${version}\n`)
    })

    it('an unknown command or no command exits 2', async () => {
      const unknown: RunResult = await viewctl(['frobnicate', '/tmp/x'])
      expect(unknown.code).toBe(2)
      expect(unknown.stderr).toContain('frobnicate')
      expect(unknown.stderr).not.toMatch(STACK_LINE)
      expect((await viewctl([])).code).toBe(2)
    })
  })
})
