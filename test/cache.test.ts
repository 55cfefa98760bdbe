/**
 * The scan cache (DESIGN §4.5): listings are reused only while a directory's
 * (device, inode, mtime, ctime) match, racy directories are never
 * remembered, a damaged cache file only costs speed, and the plan (and its
 * hash) is the same with and without the cache. The plan memo recalls the
 * last plan only while every directory it was made from is unchanged.
 */
import fs from 'node:fs'
import path from 'node:path'
import { describe, expect, it } from 'vitest'
import { documentKey, loadManifest, loadManifestRemembering } from '../src/manifest/load.js'
import { createPlan, type PlanResult } from '../src/plan/index.js'
import { openScanCache, RACY_NS, type ScanCache } from '../src/plan/cache.js'
import { regenerate } from '../src/ops/regenerate.js'
import { layoutFor } from '../src/store/layout.js'
import { makePrefixes, tempDir, writeManifest } from './helpers.js'

/** A clock far enough ahead that every directory just written counts as settled (not racy). */
const later = () => BigInt(Date.now()) * 1_000_000n + 10n * RACY_NS
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

async function setup(fold = true) {
  const dir = fs.realpathSync(tempDir('viewctl-cache-'))
  const prefixes = makePrefixes(path.join(dir, 'prefixes'), 3, 4)
  const file = writeManifest(dir, [`view: ${path.join(dir, 'view')}`, `fold: ${fold}`, 'packages:', ...prefixes.map((p) => `  - ${p}`), ''].join('\n'))
  const manifest = await loadManifest(file)
  const cacheFile = path.join(dir, 'scan-cache')
  return { dir, prefixes, manifest, cacheFile }
}

function planWith(manifest: Awaited<ReturnType<typeof loadManifest>>, cache: ScanCache): PlanResult {
  const plan = createPlan(manifest, { readDir: cache.readDir })
  cache.save()
  return plan
}

describe('scan cache', () => {
  it('reuses every listing when nothing changed, with the same plan and hash', async () => {
    const { manifest, cacheFile } = await setup(false)
    const first = openScanCache(cacheFile, { now: later })
    const plan1 = planWith(manifest, first)
    expect(first.stats).toMatchObject({ loaded: 0, hits: 0, racy: 0, saved: true, rejected: 'missing' })
    const dirs = first.stats.misses
    expect(dirs).toBeGreaterThan(3)

    const second = openScanCache(cacheFile, { now: later })
    const plan2 = planWith(manifest, second)
    expect(second.stats).toMatchObject({ loaded: dirs, hits: dirs, misses: 0, saved: false, rejected: null })
    expect(plan2.hash).toBe(plan1.hash)
    expect(plan2.paths).toEqual(plan1.paths)
    expect(plan2.hash).toBe(createPlan(manifest).hash)
  })

  it('changedSinceLastScan: true with no last scan, false when nothing changed, true for a prefix added or dropped or a directory changed', async () => {
    const { prefixes, manifest, cacheFile } = await setup(false)
    const first = openScanCache(cacheFile, { now: later })
    expect(first.changedSinceLastScan(prefixes)).toBe(true)
    planWith(manifest, first)
    expect(openScanCache(cacheFile, { now: later }).changedSinceLastScan(prefixes)).toBe(false)
    expect(openScanCache(cacheFile, { now: later }).changedSinceLastScan([...prefixes, path.join(path.dirname(prefixes[0]!), 'new-pkg')])).toBe(true)
    expect(openScanCache(cacheFile, { now: later }).changedSinceLastScan(prefixes.slice(1))).toBe(true)
    await sleep(50)
    fs.writeFileSync(path.join(prefixes[2]!, 'lib', 'libnew.so'), 'new')
    expect(openScanCache(cacheFile, { now: later }).changedSinceLastScan(prefixes)).toBe(true)
  })

  it('sees a file added to a directory (its mtime and ctime change)', async () => {
    const { prefixes, manifest, cacheFile } = await setup(false)
    const before = planWith(manifest, openScanCache(cacheFile, { now: later }))
    await sleep(50) // past the timestamp tick of the first listing (what the racy rule covers in real runs)
    fs.writeFileSync(path.join(prefixes[1]!, 'bin', 'added-tool'), 'new')
    const cache = openScanCache(cacheFile, { now: later })
    const after = planWith(manifest, cache)
    expect(cache.stats.misses).toBe(1)
    expect(after.paths).toContain('bin/added-tool')
    expect(after.paths.length).toBe(before.paths.length + 1)
    expect(after.hash).not.toBe(before.hash)
    expect(after.hash).toBe(createPlan(manifest).hash)
  })

  it('sees a file removed and a directory replaced', async () => {
    const { prefixes, manifest, cacheFile } = await setup(false)
    planWith(manifest, openScanCache(cacheFile, { now: later }))
    await sleep(50)
    fs.rmSync(path.join(prefixes[0]!, 'lib', 'libpkg0-0.so'))
    fs.renameSync(path.join(prefixes[2]!, 'include', 'pkg2'), path.join(prefixes[2]!, 'include', 'old'))
    fs.mkdirSync(path.join(prefixes[2]!, 'include', 'pkg2'))
    fs.writeFileSync(path.join(prefixes[2]!, 'include', 'pkg2', 'only.h'), '')
    const after = planWith(manifest, openScanCache(cacheFile, { now: later }))
    expect(after.paths).not.toContain('lib/libpkg0-0.so')
    expect(after.paths).toContain('include/pkg2/only.h')
    expect(after.paths).not.toContain('include/pkg2/h0.h')
    expect(after.hash).toBe(createPlan(manifest).hash)
  })

  it('does not remember a directory changed within the racy window, and reads it again', async () => {
    const { manifest, cacheFile } = await setup()
    // the prefixes were written just now: with the real clock every directory is racy
    const first = openScanCache(cacheFile)
    const plan1 = planWith(manifest, first)
    expect(first.stats.racy).toBe(first.stats.misses)
    const second = openScanCache(cacheFile)
    const plan2 = planWith(manifest, second)
    expect(second.stats).toMatchObject({ loaded: 0, hits: 0 })
    expect(second.stats.misses).toBe(first.stats.misses)
    expect(plan2.hash).toBe(plan1.hash)
  })

  it('does not remember a directory whose times lie in the future', async () => {
    const { manifest, cacheFile } = await setup()
    const past = () => BigInt(Date.now() - 60_000) * 1_000_000n
    const cache = openScanCache(cacheFile, { now: past })
    planWith(manifest, cache)
    expect(cache.stats.racy).toBe(cache.stats.misses)
  })

  it.each([
    ['truncated', (text: Buffer) => text.subarray(0, Math.floor(text.length / 2))],
    ['a flipped byte in a name', (text: Buffer) => Buffer.from(text.toString('latin1').replace('pkg1-tool0', 'pkg1-tool9'), 'latin1')],
    ['a flipped byte in a directory path (the index)', (text: Buffer) => Buffer.from(text.toString('latin1').replace('/prefixes/', '/prefixeZ/'), 'latin1')],
    ['the listings cut off', (text: Buffer) => text.subarray(0, text.length - 3)],
    ['garbage', () => Buffer.from('not a cache\n\0\0\0')],
    ['empty', () => Buffer.alloc(0)],
    ['another version', (text: Buffer) => Buffer.from(text.toString('latin1').replace(/^viewctl-scan-cache \d+ /, 'viewctl-scan-cache 99 '), 'latin1')],
  ])('ignores a corrupt cache file (%s) and plans the same', async (_what, damage) => {
    const { manifest, cacheFile } = await setup(false)
    const plan1 = planWith(manifest, openScanCache(cacheFile, { now: later }))
    fs.writeFileSync(cacheFile, damage(fs.readFileSync(cacheFile)))
    const cache = openScanCache(cacheFile, { now: later })
    const plan2 = planWith(manifest, cache)
    expect(cache.stats.rejected).not.toBeNull()
    expect(cache.stats.hits).toBe(0)
    expect(plan2.hash).toBe(plan1.hash)
    // and it was rewritten whole
    expect(openScanCache(cacheFile, { now: later }).stats.rejected).toBeNull()
  })

  it('does not store a directory whose names are not valid UTF-8, and plans them the same', async () => {
    const { prefixes, manifest, cacheFile } = await setup(false)
    const odd = Buffer.concat([Buffer.from(path.join(prefixes[0]!, 'bin') + '/'), Buffer.from([0x6f, 0xff, 0x64, 0x64])])
    fs.writeFileSync(odd, 'x')
    const first = openScanCache(cacheFile, { now: later })
    const plan1 = planWith(manifest, first)
    const second = openScanCache(cacheFile, { now: later })
    const plan2 = planWith(manifest, second)
    expect(second.stats.loaded).toBe(first.stats.misses - 1)
    expect(second.stats.misses).toBe(1)
    expect(plan2.hash).toBe(plan1.hash)
    expect(plan2.paths).toContain('bin/o\udcffdd')
  })

  it('a cache that cannot be written costs nothing but speed', async () => {
    const { manifest } = await setup()
    const cache = openScanCache('/proc/viewctl-no-such-dir/scan-cache', { now: later })
    expect(() => planWith(manifest, cache)).not.toThrow()
    expect(cache.stats.saved).toBe(false)
  })

  it('regenerate keeps the cache in the store and notices a new file in a prefix', async () => {
    const { dir, prefixes, manifest } = await setup(false)
    const first = await regenerate(manifest.file, { lockTimeout: 5 })
    const cacheFile = layoutFor(path.join(dir, 'view')).scanCache
    expect(fs.existsSync(cacheFile)).toBe(true)
    await sleep(50)
    fs.writeFileSync(path.join(prefixes[0]!, 'bin', 'fresh'), 'x')
    const second = await regenerate(manifest.file, { lockTimeout: 5 })
    expect(second.changed).toBe(true)
    expect(second.entries).toBe(first.entries + 1)
    const third = await regenerate(manifest.file, { lockTimeout: 5 })
    expect(third.changed).toBe(false)
    expect(third.hash).toBe(second.hash)
    expect(fs.readdirSync(path.dirname(cacheFile)).filter((n) => n.startsWith('.scan-cache.tmp'))).toEqual([])
  })
})

describe('plan memo', () => {
  /** A store holding the cache file, and the generation trees whose plan text the memo reads back. */
  async function memoSetup(extra: string[] = [], files?: (dir: string) => string[]) {
    const dir = fs.realpathSync(tempDir('viewctl-memo-'))
    const prefixes = files ? files(dir) : makePrefixes(path.join(dir, 'prefixes'), 3, 4)
    const manifestFor = async (more: string[]) =>
      loadManifest(writeManifest(dir, [`view: ${path.join(dir, 'view')}`, ...extra, ...more, 'packages:', ...prefixes.map((p) => `  - ${p}`), ''].join('\n'), `m${more.length}.yaml`))
    const store = path.join(dir, 'store')
    fs.mkdirSync(store)
    const cacheFile = path.join(store, '.scan-cache')
    /** Plan through the cache (as regenerate does), save it, and keep the plan text where a build would. */
    const plan = (manifest: Awaited<ReturnType<typeof loadManifest>>, now: () => bigint = later) => {
      const cache = openScanCache(cacheFile, { now })
      const p = createPlan(manifest, { readDir: cache.readDir, memo: cache })
      cache.save()
      const meta = path.join(store, p.hash, '.viewctl')
      fs.mkdirSync(meta, { recursive: true })
      fs.writeFileSync(path.join(meta, 'plan.tsv'), p.chunks.join(''))
      return { plan: p, stats: cache.stats }
    }
    return { dir, prefixes, store, manifest: await manifestFor([]), manifestFor, plan }
  }

  const same = (a: PlanResult, b: PlanResult) => {
    expect(b.hash).toBe(a.hash)
    expect(b.paths).toEqual(a.paths)
    expect(b.kinds).toEqual(a.kinds)
    expect(b.sources).toEqual(a.sources)
    expect(b.prefixes).toEqual(a.prefixes)
    expect(b.excluded).toBe(a.excluded)
    expect(b.warnings).toEqual(a.warnings)
    expect(b.chunks.join('')).toBe(a.chunks.join(''))
  }

  it.each([['folded', []], ['per-file', ['fold: false']], ['with filters', ['exclude: ["share/man/**"]', 'fold: false']]])('recalls an unchanged plan (%s) without reading a directory', async (_what, extra) => {
    const { manifest, plan } = await memoSetup(extra as string[])
    const first = plan(manifest)
    expect(first.stats.memo).toBe('none')
    const second = plan(manifest)
    expect(second.stats).toMatchObject({ memo: 'recalled', misses: 0, saved: false })
    same(first.plan, second.plan)
    same(createPlan(manifest), second.plan)
  })

  it('a recall reads only the index: with the listings damaged, the plan is still recalled; a walk reads every directory', async () => {
    const { prefixes, manifest, plan, store } = await memoSetup(['fold: false'])
    const first = plan(manifest)
    const cacheFile = path.join(store, '.scan-cache')
    const text = fs.readFileSync(cacheFile, 'latin1')
    expect(text).toContain('pkg1-tool0')
    fs.writeFileSync(cacheFile, text.replace('pkg1-tool0', 'pkg1-tool9'), 'latin1')
    const recalled = plan(manifest)
    expect(recalled.stats).toMatchObject({ memo: 'recalled', misses: 0, rejected: null, saved: false })
    same(first.plan, recalled.plan)

    await sleep(50)
    fs.writeFileSync(path.join(prefixes[0]!, 'bin', 'late'), '') // a walk now, which would use the listings
    const walked = plan(manifest)
    expect(walked.stats).toMatchObject({ memo: 'stale', hits: 0, rejected: 'listings do not match their digest', saved: true })
    expect(walked.plan.paths).toContain('bin/late')
    expect(walked.plan.paths).toContain('bin/pkg1-tool0')
    same(createPlan(manifest), walked.plan)
    expect(plan(manifest).stats).toMatchObject({ memo: 'recalled', rejected: null })
  })

  it('notices a new file: the memo is stale, the plan made afresh', async () => {
    const { prefixes, manifest, plan } = await memoSetup()
    const first = plan(manifest)
    await sleep(50)
    fs.writeFileSync(path.join(prefixes[2]!, 'bin', 'late'), '')
    const second = plan(manifest)
    expect(second.stats.memo).toBe('stale')
    expect(second.plan.paths).toContain('bin/late')
    expect(second.plan.hash).not.toBe(first.plan.hash)
    same(createPlan(manifest), second.plan)
    expect(plan(manifest).stats.memo).toBe('recalled')
  })

  it('is keyed by the manifest: other filters or options are planned afresh', async () => {
    const { manifest, manifestFor, plan } = await memoSetup()
    plan(manifest)
    const other = await manifestFor(['exclude: ["lib/**"]'])
    const second = plan(other)
    expect(second.stats.memo).toBe('none')
    same(createPlan(other), second.plan)
  })

  it('plans afresh when the generation holding the plan text is gone or its text is not what was hashed', async () => {
    const { store, manifest, plan } = await memoSetup()
    const first = plan(manifest)
    const text = path.join(store, first.plan.hash, '.viewctl', 'plan.tsv')
    fs.writeFileSync(text, fs.readFileSync(text, 'utf8').replace('bin/pkg0-tool0', 'bin/pkg0-tool9'))
    const tampered = plan(manifest) // writes the right text back (as a rebuild would)
    expect(tampered.stats.memo).toBe('recalled') // the memo was consulted, its text refused: it no longer hashes to the remembered hash
    same(first.plan, tampered.plan)
    fs.rmSync(path.join(store, first.plan.hash), { recursive: true })
    const cache = openScanCache(path.join(store, '.scan-cache'), { now: later })
    same(first.plan, createPlan(manifest, { readDir: cache.readDir, memo: cache }))
    expect(cache.stats.memo).toBe('stale')
    // the walk that followed was served by the listings, each counted once
    expect(cache.stats).toMatchObject({ hits: cache.stats.loaded, misses: 0 })
  })

  it('does not remember a plan that compared file contents, nor one made from racy directories', async () => {
    const { manifest, plan } = await memoSetup([], (dir) => {
      const a = path.join(dir, 'a')
      const b = path.join(dir, 'b')
      for (const p of [a, b]) {
        fs.mkdirSync(path.join(p, 'share'), { recursive: true })
        fs.writeFileSync(path.join(p, 'share', 'LICENSE'), 'same text')
      }
      return [a, b]
    })
    plan(manifest)
    expect(plan(manifest).stats.memo).toBe('none')

    const racy = await memoSetup()
    const now = () => BigInt(Date.now()) * 1_000_000n
    racy.plan(racy.manifest, now)
    expect(racy.plan(racy.manifest, now).stats.memo).toBe('none')
  })
})

describe("the manifest's document (a no-op without a parse)", () => {
  /** A cache that has served a plan from the file and has nothing new to save. */
  const usedCache = (manifest: Awaited<ReturnType<typeof loadManifest>>, cacheFile: string) => {
    const cache = openScanCache(cacheFile, { now: later })
    createPlan(manifest, { readDir: cache.readDir })
    return cache
  }

  it('is kept under its key across a save, recalled as a fresh copy, and only under exactly that key', async () => {
    const { manifest, cacheFile } = await setup()
    planWith(manifest, openScanCache(cacheFile, { now: later }))
    const document = { view: '/v', packages: ['/a', { glob: '/b*', priority: -2 }], gc: { keep: 3, auto: false }, env: { PATH: ['bin'] } }
    const first = usedCache(manifest, cacheFile)
    expect(first.recallDocument('k1')).toBeUndefined()
    expect(first.dirty).toBe(false)
    first.rememberDocument('k1', document)
    expect(first.dirty).toBe(false) // nothing new about the prefixes: a no-op is still a no-op
    first.save()
    expect(first.stats.saved).toBe(true) // but a save has something to write
    const second = openScanCache(cacheFile, { now: later })
    expect(second.recallDocument('k2')).toBeUndefined()
    const recalled = second.recallDocument('k1')
    expect(recalled).toEqual(document)
    expect(recalled).not.toBe(second.recallDocument('k1'))
    const third = usedCache(manifest, cacheFile)
    third.rememberDocument('k1', document)
    third.save()
    expect(third.stats.saved).toBe(false) // the same: nothing to write
  })

  it.each([
    ['Infinity', { gc: { ttl: Infinity } }],
    ['-0', { priority: -0 }],
    ['undefined', { include: undefined }],
  ])('is not kept when it would not read back the same (%s)', async (_what, document) => {
    const { manifest, cacheFile } = await setup()
    planWith(manifest, openScanCache(cacheFile, { now: later }))
    const cache = usedCache(manifest, cacheFile)
    cache.rememberDocument('k', document)
    cache.rememberDocument('with\0nul', { view: '/v' })
    cache.save()
    expect(cache.stats.saved).toBe(false) // nothing was kept, so nothing to write
    const control = usedCache(manifest, cacheFile)
    control.rememberDocument('k', { view: '/v' })
    control.save()
    expect(control.stats.saved).toBe(true)
  })

  it('survives listings that are damaged (the index is checked on its own)', async () => {
    const { manifest, cacheFile } = await setup(false)
    const cache = openScanCache(cacheFile, { now: later })
    cache.rememberDocument('k', { view: '/v' })
    planWith(manifest, cache)
    const text = fs.readFileSync(cacheFile, 'latin1')
    fs.writeFileSync(cacheFile, text.replace('pkg1-tool0', 'pkg1-tool9'), 'latin1')
    expect(openScanCache(cacheFile, { now: later }).recallDocument('k')).toEqual({ view: '/v' })
  })

  it('regenerate keeps the document of the manifest it built from, and the next run that saves keeps an edited one', async () => {
    const { dir, prefixes, manifest } = await setup(false)
    const cacheFile = layoutFor(path.join(dir, 'view')).scanCache
    await regenerate(manifest.file, { lockTimeout: 5 })
    let kept: unknown
    await loadManifestRemembering(manifest.file, { recall: () => undefined, remember: (_key, document) => (kept = document) })
    expect(kept).toMatchObject({ view: path.join(dir, 'view'), fold: false })
    expect(openScanCache(cacheFile).recallDocument(documentKey(manifest.text))).toEqual(kept)

    const edited = `# edited at 2 a.m.\n${manifest.text}`
    fs.writeFileSync(manifest.file, edited)
    fs.writeFileSync(path.join(prefixes[0]!, 'bin', 'fresh'), 'x') // and a prefix changed: this run builds, and saves the cache
    const second = await regenerate(manifest.file, { lockTimeout: 5 })
    expect(second).toMatchObject({ changed: true, built: true })
    expect(openScanCache(cacheFile).recallDocument(documentKey(edited))).toEqual(kept)
    expect(openScanCache(cacheFile).recallDocument(documentKey(manifest.text))).toBeUndefined()
  })

  it('regenerate works the same when the view cannot be guessed from the text (flow style)', async () => {
    const { dir, prefixes } = await setup(false)
    const file = writeManifest(dir, `{view: ${path.join(dir, 'flow-view')}, fold: false, packages: [${prefixes.join(', ')}]}\n`, 'flow.yaml')
    const first = await regenerate(file, { lockTimeout: 5 })
    const second = await regenerate(file, { lockTimeout: 5 })
    expect(first.changed).toBe(true)
    expect(second).toMatchObject({ changed: false, hash: first.hash, generation: first.generation })
    // nothing would find a document for it, so none is kept
    const text = fs.readFileSync(file, 'utf8')
    expect(openScanCache(layoutFor(path.join(dir, 'flow-view')).scanCache).recallDocument(documentKey(text))).toBeUndefined()
  })
})

describe('the manifest document found through a guessed view', () => {
  it('is used only when it names the view whose store it came from', async () => {
    const dir = fs.realpathSync(tempDir('viewctl-guess-'))
    const [p] = makePrefixes(path.join(dir, 'prefixes'), 1, 2)
    // a view spelled over two lines: the plain `view:` line reads "a", the value is "a -b"
    const text = `view: ${dir}/a\n  -b\npackages: [${p}]\n`
    const file = writeManifest(dir, text)
    const elsewhere = path.join(dir, 'elsewhere')
    // the store of the guessed view holds a document for this very text that names another view
    const planted = layoutFor(path.join(dir, 'a'))
    fs.mkdirSync(planted.store, { recursive: true })
    const cache = openScanCache(planted.scanCache)
    cache.rememberDocument(documentKey(text), { view: elsewhere, packages: [p] })
    cache.save()
    expect(openScanCache(planted.scanCache).recallDocument(documentKey(text))).toMatchObject({ view: elsewhere })

    const result = await regenerate(file, { lockTimeout: 5 })
    expect(result.view).toBe(`${dir}/a -b`)
    expect(fs.existsSync(elsewhere)).toBe(false)
    expect(fs.readlinkSync(`${dir}/a -b`)).toMatch(/^\._a -b\//)
  })

  it('is parsed instead when it is not a manifest', async () => {
    const dir = fs.realpathSync(tempDir('viewctl-guess-'))
    const [p] = makePrefixes(path.join(dir, 'prefixes'), 1, 2)
    const text = `view: ${dir}/v\npackages: [${p}]\n`
    const file = writeManifest(dir, text)
    const planted = layoutFor(path.join(dir, 'v'))
    fs.mkdirSync(planted.store, { recursive: true })
    const cache = openScanCache(planted.scanCache)
    cache.rememberDocument(documentKey(text), { view: `${dir}/v`, packages: p })
    cache.save()
    const result = await regenerate(file, { lockTimeout: 5 })
    expect(result).toMatchObject({ changed: true, view: `${dir}/v`, prefixes: 1 })
  })
})
