/**
 * Incremental builds under crashes and concurrency (DESIGN §5, §7, §17), as
 * for cold builds: a writer killed with kill -9 at any moment of a build that
 * links from the base leaves the view on a complete generation and the base
 * exactly as it was; gc of the base running beside a build, or the base
 * removed under it by something that takes no lock, never gives a torn
 * generation; a reader running through many switches between trees that
 * share inodes sees only complete ones. Real processes only.
 */
import fs from 'node:fs'
import path from 'node:path'
import { spawn } from 'node:child_process'
import { describe, expect, it, onTestFinished } from 'vitest'
import { linkTarget, tempDir, viewctl, viewctlAsync, writeManifest } from './helpers.js'
import { assertCompleteGeneration, finishedWithin, historyRecords, leftovers, makeWidePrefixes, scratchDir, stagingDirs, waitFor } from './view-checks.js'
import { treeDir, treeFingerprint } from './share-checks.js'

/** Prefixes on /dev/shm, removed after the test. */
function prefixes(pkgs: number, files: number): { root: string; pkgs: string[] } {
  const root = scratchDir('vc20-p-')
  onTestFinished(() => fs.rmSync(root, { recursive: true, force: true }))
  return { root, pkgs: makeWidePrefixes(root, pkgs, files) }
}

/** Manifest k of a view: every package, one lib file excluded (a new hash for each k, all else unchanged). */
function manifestsFor(dir: string, view: string, root: string, pkgs: number, extra: string[] = []) {
  return (k: number) =>
    writeManifest(dir, [`view: ${view}`, 'fold: false', ...extra, `exclude: ["lib/libpkg${k % pkgs}-${Math.floor(k / pkgs)}.so"]`, 'packages:', `  - glob: ${root}/pkg*`, ''].join('\n'), `m${k}.yaml`)
}

function verifyOk(view: string): void {
  const r = viewctl(['verify', view, '--json'])
  expect(r.json?.problems ?? r.stderr, `verify ${view}`).toEqual([])
  expect(r.code).toBe(0)
}

describe('kill -9 at random moments of incremental builds', () => {
  it('the view is always a complete generation, the base is untouched, the next run works and shares; nothing is left', { timeout: 600_000 }, async () => {
    const { root } = prefixes(20, 100) // 8,000 links, fold: false
    const dir = tempDir('vc20-')
    const view = path.join(dir, 'view')
    const manifestFor = manifestsFor(dir, view, root, 20)
    const first = viewctl(['regenerate', manifestFor(0), '--json'])
    expect(first.code, first.stderr).toBe(0)

    // how long an incremental run takes here, and when its build starts
    let typicalMs = 0
    for (let k = 1; k <= 2; k++) {
      const started = performance.now()
      const r = viewctl(['regenerate', manifestFor(k), '--json'])
      expect(r.code, r.stderr).toBe(0)
      expect(r.json.shared).toBeGreaterThan(7_900)
      typicalMs += (performance.now() - started) / 2
    }

    const stats = { runs: 0, kills: 0, completed: 0, inBuild: 0, switched: 0, nextShared: 0 }
    let k = 2
    while (stats.kills < 20) {
      expect(stats.runs, 'too many runs finished before their kill').toBeLessThan(80)
      stats.runs++
      k++
      const before = linkTarget(view)!
      const baseHash = before.split('/')[1]!
      const baseBefore = treeFingerprint(treeDir(view, baseHash))
      const child = viewctlAsync(['regenerate', manifestFor(k), '--json'])
      onTestFinished(() => void child.kill('SIGKILL'))
      const done = finishedWithin(child, 120_000)
      // half of the kills at a random moment of the run, half at a random moment after its staging appeared
      let timer: NodeJS.Timeout | undefined
      if (stats.runs % 2 === 0) timer = setTimeout(() => child.kill('SIGKILL'), Math.random() * typicalMs * 1.5)
      else {
        void waitFor(() => child.exitCode !== null || stagingDirs(view).length > 0, 60_000, 1).then(() => {
          if (stagingDirs(view).length > 0) stats.inBuild++
          timer = setTimeout(() => child.kill('SIGKILL'), Math.random() * typicalMs)
        })
      }
      const r = await done
      clearTimeout(timer)
      expect(r.timedOut).toBe(false)
      if (r.signal === 'SIGKILL') stats.kills++
      else {
        expect(r.code, r.stderr).toBe(0)
        stats.completed++
        typicalMs *= 0.9 // land the next kill earlier
      }
      const gen = assertCompleteGeneration(view)
      if (linkTarget(view) !== before) {
        stats.switched++
        expect(gen.meta.manifest).toBe(manifestFor(k))
      }
      // the base is exactly as it was: names, targets, inodes and files
      expect(treeFingerprint(treeDir(view, baseHash)), `run ${k}: the base tree changed`).toEqual(baseBefore)
      expect(historyRecords(view).map((h) => h.hash)).toContain(gen.hash)

      // every third kill: the next writer takes over at once, clears what the dead one left, and shares
      if (r.signal === 'SIGKILL' && stats.kills % 3 === 0) {
        k++
        const next = viewctl(['regenerate', manifestFor(k), '--json', '--lock-timeout', '0'])
        expect(next.code, next.stderr).toBe(0)
        expect(next.json.shared).toBeGreaterThan(7_900)
        stats.nextShared++
        expect(leftovers(view)).toEqual([])
        verifyOk(view)
      }
    }
    expect(stats.inBuild, 'fewer than 5 kills were aimed at a build').toBeGreaterThanOrEqual(5)

    const final = viewctl(['regenerate', manifestFor(k + 1), '--json', '--lock-timeout', '0'])
    expect(final.code, final.stderr).toBe(0)
    expect(final.json.shared).toBeGreaterThan(7_900)
    expect(leftovers(view)).toEqual([])
    verifyOk(view)
    console.log(`kill -9 of incremental builds: ${JSON.stringify(stats)}, typical run ${Math.round(typicalMs)} ms`)
  })
})

describe('the base going away beside a build', () => {
  it('gc of the base started during the build waits for the lock, then removes it; the new tree stays whole', { timeout: 300_000 }, async () => {
    const { root } = prefixes(20, 100)
    const dir = tempDir('vc20-')
    const view = path.join(dir, 'view')
    const manifestFor = manifestsFor(dir, view, root, 20, ['gc: { auto: false }'])
    expect(viewctl(['regenerate', manifestFor(0)]).code).toBe(0)
    for (let round = 1; round <= 3; round++) {
      // an older tree gc may take at once, so that it does not stop at its first look (without the lock) for want of one
      expect(viewctl(['regenerate', manifestFor(2 * round - 1)]).code).toBe(0)
      const base = linkTarget(view)!.split('/')[1]!
      const build = viewctlAsync(['regenerate', manifestFor(2 * round), '--json'])
      onTestFinished(() => void build.kill('SIGKILL'))
      const built = finishedWithin(build, 120_000)
      expect(await waitFor(() => build.exitCode !== null || stagingDirs(view).length > 0, 60_000, 1)).toBeTruthy()
      const gc = viewctlAsync(['gc', view, '--keep', '0', '--ttl', '0', '--force', '--json', '--lock-timeout', '60'])
      onTestFinished(() => void gc.kill('SIGKILL'))
      const [b, g] = await Promise.all([built, finishedWithin(gc, 120_000)])
      expect(b.code, b.stderr).toBe(0)
      expect(g.code, g.stderr).toBe(0)
      const r = JSON.parse(b.stdout) as { hash: string; shared: number }
      expect(r.shared).toBeGreaterThan(7_900)
      // gc ran after the switch (it waited for the lock): the base was no longer current, and went
      expect((JSON.parse(g.stdout) as { removed: Array<{ hash: string }> }).removed.map((t) => t.hash)).toContain(base)
      expect(fs.existsSync(treeDir(view, base))).toBe(false)
      expect(assertCompleteGeneration(view).hash).toBe(r.hash)
      verifyOk(view)
      expect(fs.lstatSync(path.join(treeDir(view, r.hash), 'bin', 'pkg3-tool3')).nlink).toBe(1)
      expect(leftovers(view)).toEqual([])
    }
  })

  it('the base removed under a build by something that takes no lock: the build falls back or shares what it linked first, never a torn tree', { timeout: 300_000 }, async () => {
    const { root } = prefixes(20, 100)
    const dir = tempDir('vc20-')
    const view = path.join(dir, 'view')
    const manifestFor = manifestsFor(dir, view, root, 20)
    expect(viewctl(['regenerate', manifestFor(0)]).code).toBe(0)
    const outcomes: string[] = []
    for (let k = 1; k <= 5; k++) {
      const base = linkTarget(view)!.split('/')[1]!
      const build = viewctlAsync(['regenerate', manifestFor(k), '--json'])
      onTestFinished(() => void build.kill('SIGKILL'))
      const built = finishedWithin(build, 120_000)
      // as soon as the build has started staging (k = 1: at once), after a random pause, the base is removed by rm -rf
      if (k > 1) await waitFor(() => build.exitCode !== null || stagingDirs(view).length > 0, 60_000, 1)
      await new Promise((resolve) => setTimeout(resolve, Math.random() * 100 * (k - 1)))
      const rm = spawn('rm', ['-rf', treeDir(view, base)], { stdio: 'ignore' })
      onTestFinished(() => void rm.kill('SIGKILL'))
      const [b] = await Promise.all([built, finishedWithin(rm, 120_000)])
      if (b.code !== 0) {
        // failing cleanly is allowed: a message, the view not switched to anything partial, nothing left
        expect(b.stderr).toMatch(/^viewctl: /m)
        expect(leftovers(view)).toEqual([])
        outcomes.push(`exit ${b.code}`)
        continue
      }
      const r = JSON.parse(b.stdout) as { hash: string; shared: number; warnings: string[] }
      outcomes.push(`shared ${r.shared}${r.warnings.some((w) => /stopped at the first refused link \(ENOENT/.test(w)) ? ', then ENOENT' : ''}`)
      expect(assertCompleteGeneration(view).hash).toBe(r.hash)
      verifyOk(view)
      expect(leftovers(view)).toEqual([])
    }
    console.log(`base removed during incremental builds: ${outcomes.join('; ')}`)
  })
})

describe('a reader during many switches between trees that share inodes', () => {
  const READER = `
import fs from 'node:fs'
const [view, stopFile, readyFile, sizesCsv] = process.argv.slice(2)
const sizes = new Set(sizesCsv.split(',').map(Number))
const res = { reads: 0, errors: [], errorCount: 0, trees: new Set(), bad: [] }
fs.writeFileSync(readyFile, String(process.pid))
for (let i = 1; ; i++) {
  try {
    // one generation per pass: resolved once, then read through its own path
    const tree = fs.realpathSync(view)
    if (!fs.existsSync(tree + '/.viewctl/meta.json')) throw new Error('resolved to an incomplete generation')
    res.trees.add(tree)
    const names = fs.readdirSync(tree + '/lib')
    if (!sizes.has(names.length) && res.bad.length < 10) res.bad.push(names.length)
    for (const name of names) {
      const st = fs.statSync(tree + '/lib/' + name) // through the link: it resolves
      if (!st.isFile()) throw new Error(name + ' is not a file')
    }
    const text = fs.readFileSync(tree + '/bin/pkg0-tool0', 'utf8')
    if (text !== 'pkg0 0\\n') throw new Error('content differs: ' + JSON.stringify(text))
    res.reads++
  } catch (err) {
    res.errorCount++
    if (res.errors.length < 10) res.errors.push(String(err.code ?? err.message))
  }
  if (i % 8 === 0 && fs.existsSync(stopFile)) break
}
process.stdout.write(JSON.stringify({ ...res, trees: res.trees.size }))
`

  it('sees only complete generations, every link resolving, through twelve incremental switches', { timeout: 300_000 }, async () => {
    const { root } = prefixes(10, 60)
    const dir = tempDir('vc20-')
    const view = path.join(dir, 'view')
    const manifestFor = manifestsFor(dir, view, root, 10, ['gc: { keep: 1, ttl: 0, auto: false }'])
    const first = viewctl(['regenerate', manifestFor(0), '--json'])
    expect(first.code, first.stderr).toBe(0)
    const script = path.join(dir, 'reader.mjs')
    fs.writeFileSync(script, READER)
    const stopFile = path.join(dir, 'stop')
    const readyFile = path.join(dir, 'ready')
    // every manifest drops one lib file: 599 names in lib/, never anything else
    const reader = spawn(process.execPath, [script, view, stopFile, readyFile, String(10 * 60 - 1)], { stdio: ['ignore', 'pipe', 'pipe'] })
    onTestFinished(() => void reader.kill('SIGKILL'))
    const readerDone = finishedWithin(reader, 300_000)
    expect(await waitFor(() => fs.existsSync(readyFile), 30_000, 5), 'the reader did not start').toBe(true)

    for (let k = 1; k <= 12; k++) {
      const r = viewctl(['regenerate', manifestFor(k), '--json'])
      expect(r.code, r.stderr).toBe(0)
      expect(r.json.shared).toBeGreaterThan(2_300)
      // older trees go, all but the one the view showed before
      if (k % 3 === 0) expect(viewctl(['gc', view, '--keep', '1', '--ttl', '0', '--force']).code).toBe(0)
      await new Promise((resolve) => setTimeout(resolve, 150))
    }
    fs.writeFileSync(stopFile, '')
    const r = await readerDone
    expect(r.code, r.stderr).toBe(0)
    const res = JSON.parse(r.stdout) as { reads: number; errors: string[]; errorCount: number; trees: number; bad: number[] }
    expect(res.bad).toEqual([])
    expect(res.errors).toEqual([])
    expect(res.errorCount).toBe(0)
    expect(res.reads).toBeGreaterThanOrEqual(20)
    expect(res.trees, 'the reader saw the switches').toBeGreaterThanOrEqual(5)
    console.log(`reader: ${res.reads} passes over ${res.trees} trees`)
  })
})
