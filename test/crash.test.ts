/**
 * Crash-proof (DESIGN §5, §7, §10): a writer killed at any moment — by
 * kill -9, SIGINT or SIGTERM — leaves the view on a complete generation, and
 * the next writer takes the lock at once and clears what the dead one left.
 * Everything here runs the real bin/viewctl as a child process.
 */
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest'
import { linkTarget, makePrefixes, tempDir, viewctl, viewctlAsync, writeManifest } from './helpers.js'
import {
  assertCompleteGeneration,
  finishedWithin,
  fullSnapshot,
  historyRecords,
  leftovers,
  lockHolderPid,
  makeWidePrefixes,
  scratchDir,
  stagingDirs,
  storeOf,
  waitFor,
} from './view-checks.js'

describe('kill -9 at random moments during regenerate', () => {
  it('leaves the view on a complete generation (or absent) after each of 25 kills; the next regenerate cleans up', async () => {
    const root = tempDir()
    makePrefixes(path.join(root, 'p'), 60, 12) // 2,880 files; fold: false links each of them
    const view = path.join(root, 'view')
    // Every run excludes a different file, so every run has a new hash and builds a tree.
    const manifestFor = (k: number, v = view, name = `m${k}.yaml`) =>
      writeManifest(root, [`view: ${v}`, 'fold: false', `exclude: ["lib/libpkg${k % 60}-${Math.floor(k / 60) % 12}.so"]`, 'packages:', `  - glob: ${root}/p/pkg*`, ''].join('\n'), name)

    // The typical runtime of one regenerate and how long its build takes, measured on a throwaway
    // view the way the runs below start: spawned asynchronously, staging polled for.
    const calibration = path.join(root, 'calibration')
    let typicalMs = 0
    let buildMs = 0
    for (let i = 0; i < 2; i++) {
      const spawnedAt = performance.now()
      const child = viewctlAsync(['regenerate', manifestFor(i, calibration, `cal${i}.yaml`)])
      const done = finishedWithin(child, 60_000)
      const stagingSeen = waitFor(() => (child.exitCode === null && stagingDirs(calibration).length > 0 ? performance.now() : null), 60_000, 1)
      const r = await done
      expect(r.code, r.stderr).toBe(0)
      const seenAt = await stagingSeen
      typicalMs += r.ms / 2
      buildMs += (seenAt === null ? r.ms / 3 : spawnedAt + r.ms - seenAt) / 2
    }

    const calibratedMs = typicalMs
    const calibratedBuildMs = buildMs
    const stats = { runs: 0, kills: 0, completed: 0, afterStaging: 0, switchedBeforeKill: 0, stagingLeft: 0, tmpLeft: 0, tornHistory: 0 }
    let everPublished = false
    while (stats.kills < 25) {
      expect(stats.runs, 'too many runs finished before the kill; the random delays do not hit').toBeLessThan(150)
      const k = ++stats.runs
      const manifest = manifestFor(k)
      const before = linkTarget(view)
      const stagingBefore = new Set(stagingDirs(view))
      const child = viewctlAsync(['regenerate', manifest])
      const done = finishedWithin(child, 60_000)
      // Even runs: a random moment of the whole run. Odd runs: a random moment after the build
      // started (every third of them at once), so that kills land in the build and publish too.
      let timer: NodeJS.Timeout | undefined
      if (k % 2 === 0) timer = setTimeout(() => child.kill('SIGKILL'), Math.random() * typicalMs)
      else {
        stats.afterStaging++
        void waitFor(() => child.exitCode !== null || child.signalCode !== null || stagingDirs(view).length > 0, 60_000, 1).then(() => {
          timer = setTimeout(() => child.kill('SIGKILL'), k % 3 === 0 ? 0 : Math.random() * buildMs * 1.5)
        })
      }
      const r = await done
      clearTimeout(timer)
      expect(r.timedOut).toBe(false)
      // Later runs are faster than the calibration (the scan cache is warm): a run that finished
      // before its kill shrinks the delays, a killed one lets them grow back a little.
      if (r.signal === 'SIGKILL') {
        stats.kills++
        typicalMs = Math.min(typicalMs * 1.1, calibratedMs)
        buildMs = Math.min(buildMs * 1.1, calibratedBuildMs)
      } else {
        expect(r.code, `run ${k} was not killed and failed: ${r.stderr}`).toBe(0)
        stats.completed++
        typicalMs = Math.min(typicalMs, r.ms) * 0.8
        buildMs *= 0.8
      }

      if (stagingDirs(view).some((n) => !stagingBefore.has(n))) stats.stagingLeft++
      const after = linkTarget(view)
      if (after === null) {
        expect(everPublished, `run ${k}: the view vanished after a generation had been published`).toBe(false)
        expect(() => fs.lstatSync(view)).toThrow(/ENOENT/)
        continue
      }
      everPublished = true
      const gen = assertCompleteGeneration(view)
      // The view shows either what it showed before or this run's generation, nothing else.
      if (after !== before) expect(gen.meta.manifest).toBe(manifest)
      if (r.code === 0) expect(gen.meta.manifest).toBe(manifest)
      if (r.signal === 'SIGKILL' && after !== before) stats.switchedBeforeKill++
      // The journal: every line but a torn last one parses, and the current hash is recorded.
      const text = fs.readFileSync(path.join(storeOf(view), 'history.jsonl'), 'utf8')
      const lines = text.split('\n')
      const tail = lines.pop()!
      if (tail !== '') stats.tornHistory++
      const hashes = lines.map((l) => (JSON.parse(l) as { hash: string }).hash)
      expect(hashes).toContain(gen.hash)
      if (leftovers(view).some((n) => n.includes('.tmp-'))) stats.tmpLeft++
    }

    expect(stats.stagingLeft, 'fewer than 2 kills landed during a build').toBeGreaterThanOrEqual(2)

    // After the massacre: one more writer succeeds and nothing a dead writer left survives it.
    const final = viewctl(['regenerate', manifestFor(stats.runs + 1), '--json', '--lock-timeout', '0'])
    expect(final.code, final.stderr).toBe(0)
    expect(final.json.changed).toBe(true)
    expect(leftovers(view)).toEqual([])
    const gen = assertCompleteGeneration(view)
    expect(gen.hash).toBe(final.json.hash)
    const records = historyRecords(view)
    const numbers = records.filter((r) => r.action === 'regenerate').map((r) => r.generation)
    expect(new Set(numbers).size, 'generation numbers are unique').toBe(numbers.length)
    expect([...numbers].sort((a, b) => a - b), 'generation numbers increase in journal order').toEqual(numbers)
    expect(records.at(-1)!.hash).toBe(gen.hash)
    expect(records.at(-1)!.generation).toBe(final.json.generation)
    const verify = viewctl(['verify', view])
    expect(verify.code, verify.stdout + verify.stderr).toBe(0)
    console.log(`kill -9: typical run ${Math.round(typicalMs)} ms, build ${Math.round(buildMs)} ms; ${JSON.stringify(stats)}`)
  }, 180_000)
})

describe('a big view (20,000 entries): kill -9 and signals while the lock is held', () => {
  let root = ''
  let prefixRoot = ''
  beforeAll(() => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'viewctl-crash-big-'))
    prefixRoot = scratchDir('viewctl-crash-prefixes-')
    makeWidePrefixes(prefixRoot, 100, 50)
  })
  afterAll(() => {
    fs.rmSync(root, { recursive: true, force: true })
    fs.rmSync(prefixRoot, { recursive: true, force: true })
  })

  /** A view in its own directory with a small manifest A (10 packages) and the big B (all 100), A published. */
  function viewWithSmallGeneration(name: string) {
    const dir = path.join(root, name)
    fs.mkdirSync(dir)
    const view = path.join(dir, 'view')
    const small = writeManifest(dir, `view: ${view}\nfold: false\npackages:\n  - glob: ${prefixRoot}/pkg[0-9]\n`, 'small.yaml')
    const big = writeManifest(dir, `view: ${view}\nfold: false\npackages:\n  - glob: ${prefixRoot}/pkg*\n`, 'big.yaml')
    const r = viewctl(['regenerate', small, '--json'])
    expect(r.code, r.stderr).toBe(0)
    return { dir, view, small, big, smallHash: r.json.hash as string }
  }

  it('kill -9 of the writer holding the lock: the next writer gets the lock at once and clears its staging', async () => {
    const { view, big, smallHash } = viewWithSmallGeneration('lock-kill')
    const store = storeOf(view)
    let killedStaging: string | null = null
    for (let attempt = 0; attempt < 3 && !killedStaging; attempt++) {
      const child = viewctlAsync(['regenerate', big])
      onTestFinished(() => void child.kill('SIGKILL'))
      const done = finishedWithin(child, 60_000)
      const staging = await waitFor(() => lockHolderPid(view) === child.pid && stagingDirs(view)[0], 30_000)
      child.kill('SIGKILL')
      const r = await done
      // It died while building: holding the lock, before publishing. Otherwise the race was lost; retry.
      if (staging && r.signal === 'SIGKILL' && linkTarget(view) === `._view/${smallHash}` && fs.existsSync(path.join(store, staging))) killedStaging = staging
    }
    expect(killedStaging, 'could not kill the writer while it held the lock in 3 attempts').not.toBeNull()

    const next = viewctl(['regenerate', big, '--json', '--lock-timeout', '0'])
    expect(next.code, next.stderr).toBe(0)
    expect(next.json.changed).toBe(true)
    expect(next.json.cleared).toContain(path.join(store, killedStaging!))
    expect(leftovers(view)).toEqual([])
    expect(assertCompleteGeneration(view).hash).toBe(next.json.hash)
  }, 120_000)

  it.each([
    ['SIGINT', 130],
    ['SIGTERM', 143],
  ] as const)('%s during a long build removes the staging dir, leaves the view as it was, exits %i', async (signal, status) => {
    const { view, big } = viewWithSmallGeneration(`signal-${signal}`)
    const before = fullSnapshot(view)
    const child = viewctlAsync(['regenerate', big])
    onTestFinished(() => void child.kill('SIGKILL'))
    const done = finishedWithin(child, 60_000)
    const staging = await waitFor(() => stagingDirs(view)[0], 30_000)
    expect(staging, 'the build never created its staging dir').toBeTruthy()
    child.kill(signal)
    const r = await done
    expect(r.timedOut, 'the writer did not stop within 60 s of the signal').toBe(false)
    const how = r.signal === signal ? `killed by ${signal}` : `exit status ${r.code}`
    expect(r.code === status || r.signal === signal, `${signal}: expected exit ${status} or death by ${signal}, got ${how}; stderr: ${r.stderr}`).toBe(true)
    expect(stagingDirs(view), `${signal} (${how}): the staging dir is left behind`).toEqual([])
    expect(leftovers(view)).toEqual([])
    expect(fullSnapshot(view), `${signal} (${how}): the view changed`).toEqual(before)
    expect(r.stderr).not.toMatch(/^\s+at /m)
    console.log(`${signal}: ${how}`)
  }, 120_000)
})
