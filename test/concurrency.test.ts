/**
 * Concurrency (DESIGN §5, §7): readers never see a partial view while writers
 * switch it; writers queue on the kernel lock, which names its holder and is
 * freed the moment the holder dies. Real processes only.
 */
import fs from 'node:fs'
import path from 'node:path'
import { spawn } from 'node:child_process'
import { describe, expect, it, onTestFinished } from 'vitest'
import { linkTarget, makePrefixes, tempDir, viewctl, viewctlAsync, writeManifest } from './helpers.js'
import {
  assertCompleteGeneration,
  finishedWithin,
  historyRecords,
  leftovers,
  lockHolderPid,
  makeWidePrefixes,
  scratchDir,
  stagingDirs,
  storeOf,
  waitFor,
} from './view-checks.js'

/** Two manifests for one view: A = packages 0..9, B = packages 0..14 (fold: false, so bin/ differs in size). */
function twoManifests(root: string, view: string, pkgs: string[]) {
  const manifest = (name: string, list: string[]) =>
    writeManifest(root, [`view: ${view}`, 'fold: false', 'packages:', ...list.map((p) => `  - ${p}`), ''].join('\n'), name)
  return { a: manifest('a.yaml', pkgs.slice(0, 10)), b: manifest('b.yaml', pkgs) }
}

const READER = `
import fs from 'node:fs'
const [view, sizesCsv, rel, expected, stopFile, readyFile] = process.argv.slice(2)
const sizes = new Set(sizesCsv.split(',').map(Number))
const res = { reads: 0, errorCount: 0, errors: [], badCount: 0, badListings: [], seen: {}, transitions: 0 }
let last = -1
fs.writeFileSync(readyFile, String(process.pid))
for (let i = 1; ; i++) {
  try {
    const n = fs.readdirSync(view + '/bin').length
    res.seen[n] = (res.seen[n] ?? 0) + 1
    if (n !== last) { if (last !== -1) res.transitions++; last = n }
    if (!sizes.has(n)) { res.badCount++; if (res.badListings.length < 10) res.badListings.push(n) }
    const text = fs.readFileSync(view + '/' + rel, 'utf8')
    if (text !== expected) throw new Error('content differs: ' + JSON.stringify(text))
    if (!fs.existsSync(fs.realpathSync(view) + '/.viewctl/meta.json')) throw new Error('resolved to an incomplete generation')
    res.reads++
  } catch (err) {
    res.errorCount++
    if (res.errors.length < 10) res.errors.push(String(err.code ?? err.message))
  }
  if (i % 32 === 0 && fs.existsSync(stopFile)) break
}
process.stdout.write(JSON.stringify(res))
`

describe('a reader during many switches', () => {
  it('sees only complete generations: never a partial listing, never ENOENT', async () => {
    const root = tempDir()
    const pkgs = makePrefixes(path.join(root, 'p'), 15, 8)
    const view = path.join(root, 'view')
    const { a, b } = twoManifests(root, view, pkgs)
    const first = viewctl(['regenerate', a, '--json'])
    expect(first.code, first.stderr).toBe(0)
    const sizeA = 10 * 8
    const sizeB = 15 * 8

    const script = path.join(root, 'reader.mjs')
    fs.writeFileSync(script, READER)
    const stopFile = path.join(root, 'stop')
    const readyFile = path.join(root, 'ready')
    const reader = spawn(process.execPath, [script, view, `${sizeA},${sizeB}`, 'bin/pkg0-tool0', '#!/bin/sh\necho pkg0 0\n', stopFile, readyFile], { stdio: ['ignore', 'pipe', 'pipe'] })
    onTestFinished(() => void reader.kill('SIGKILL'))
    const readerDone = finishedWithin(reader, 120_000)
    expect(await waitFor(() => fs.existsSync(readyFile), 30_000, 5), 'the reader did not start').toBe(true)

    // Each step flips the view: regenerate the other manifest, or roll back to the other tree.
    const hashOf: Record<string, string> = { a: first.json.hash }
    let expected = 'a'
    const steps = ['b', 'a', 'rollback', 'a', 'b', 'rollback', 'b', 'rollback', 'b', 'a', 'b', 'rollback']
    for (const step of steps) {
      const r = step === 'rollback' ? viewctl(['rollback', view, '--json']) : viewctl(['regenerate', step === 'a' ? a : b, '--json'])
      expect(r.code, `${step}: ${r.stderr}`).toBe(0)
      expected = expected === 'a' ? 'b' : 'a'
      if (step !== 'rollback') {
        expect(step).toBe(expected)
        hashOf[step] ??= r.json.hash
      }
      expect(linkTarget(view), `after ${step}`).toBe(`._view/${hashOf[expected]}`)
    }

    fs.writeFileSync(stopFile, '')
    const r = await readerDone
    expect(r.timedOut).toBe(false)
    expect(r.code, r.stderr).toBe(0)
    const res = JSON.parse(r.stdout) as { reads: number; errorCount: number; errors: string[]; badCount: number; badListings: number[]; seen: Record<string, number>; transitions: number }
    expect(res.errors).toEqual([])
    expect(res.errorCount).toBe(0)
    expect(res.badListings).toEqual([])
    expect(res.badCount).toBe(0)
    expect(Object.keys(res.seen).map(Number).sort((x, y) => x - y)).toEqual([sizeA, sizeB])
    expect(res.reads).toBeGreaterThanOrEqual(300)
    // The reader ran through the switches, not just before or after them.
    expect(res.transitions).toBeGreaterThanOrEqual(6)
    console.log(`reader: ${res.reads} reads, ${res.transitions} transitions seen, listings ${JSON.stringify(res.seen)}`)
  }, 120_000)
})

describe('six writers at once', () => {
  it('all exit 0 after waiting on the lock; the journal is consistent and the view complete', async () => {
    const root = tempDir()
    const pkgs = makePrefixes(path.join(root, 'p'), 15, 8)
    const view = path.join(root, 'view')
    const { a, b } = twoManifests(root, view, pkgs)
    const manifests = [a, b, a, b, a, b]
    const children = manifests.map((m) => viewctlAsync(['regenerate', m, '--json']))
    onTestFinished(() => children.forEach((c) => c.kill('SIGKILL')))
    const results = await Promise.all(children.map((c) => finishedWithin(c, 90_000)))

    for (const [i, r] of results.entries()) expect({ i, code: r.code, signal: r.signal }, r.stderr).toEqual({ i, code: 0, signal: null })
    const outs = results.map((r) => JSON.parse(r.stdout) as { hash: string; changed: boolean; generation: number })
    const hashA = outs[0]!.hash
    const hashB = outs[1]!.hash
    expect(hashA).not.toBe(hashB)
    outs.forEach((o, i) => expect(o.hash).toBe(manifests[i] === a ? hashA : hashB))

    const records = historyRecords(view) // strict: every line parses
    const regens = records.filter((r) => r.action === 'regenerate')
    expect(regens.length).toBe(records.length)
    // Each record created a new generation: numbered 1, 2, 3 … without gaps or repeats.
    expect(regens.map((r) => r.generation)).toEqual(regens.map((_, i) => i + 1))
    // A regenerate to the hash already current is "up to date" and records nothing.
    for (let i = 1; i < regens.length; i++) expect(regens[i]!.hash).not.toBe(regens[i - 1]!.hash)
    // What the writers reported agrees with the journal.
    const changed = outs.filter((o) => o.changed)
    expect(changed.map((o) => o.generation).sort((x, y) => x - y)).toEqual(regens.map((r) => r.generation))
    for (const o of changed) expect(regens.find((r) => r.generation === o.generation)!.hash).toBe(o.hash)
    expect(outs.filter((o) => !o.changed).every((o) => typeof o.generation === 'number')).toBe(true)

    const gen = assertCompleteGeneration(view)
    expect(gen.hash).toBe(regens.at(-1)!.hash)
    expect(leftovers(view)).toEqual([])
    const verify = viewctl(['verify', view])
    expect(verify.code, verify.stdout + verify.stderr).toBe(0)
  }, 120_000)
})

describe('a writer stopped while it holds the lock', () => {
  it('makes the next writer time out naming it (exit 4, LOCK_TIMEOUT); once it is killed the lock is free at once', async () => {
    const root = tempDir()
    const prefixRoot = scratchDir('viewctl-stop-prefixes-')
    onTestFinished(() => fs.rmSync(prefixRoot, { recursive: true, force: true }))
    const pkgs = makeWidePrefixes(prefixRoot, 40, 50) // 8,000 files
    const view = path.join(root, 'view')
    const { a, b } = twoManifests(root, view, pkgs)
    const first = viewctl(['regenerate', a, '--json'])
    expect(first.code, first.stderr).toBe(0)
    const targetA = `._view/${first.json.hash}`

    // Start a writer, catch it while it holds the lock (its pid in the lock file, its staging
    // dir being filled, the view not yet switched), and stop it there.
    let holder: ReturnType<typeof viewctlAsync> | null = null
    let holderDone: ReturnType<typeof finishedWithin> | null = null
    let staging: string | null = null
    for (let attempt = 0; attempt < 3 && !holder; attempt++) {
      const child = viewctlAsync(['regenerate', b])
      onTestFinished(() => void child.kill('SIGKILL'))
      const done = finishedWithin(child, 90_000)
      const seen = await waitFor(() => lockHolderPid(view) === child.pid && stagingDirs(view)[0], 30_000, 1)
      child.kill('SIGSTOP')
      await new Promise((r) => setTimeout(r, 50))
      if (seen && child.exitCode === null && child.signalCode === null && linkTarget(view) === targetA && fs.existsSync(path.join(storeOf(view), seen))) {
        holder = child
        holderDone = done
        staging = seen
      } else {
        child.kill('SIGKILL')
        await done
      }
    }
    expect(holder, 'could not stop a writer while it held the lock in 3 attempts').not.toBeNull()
    const pid = holder!.pid!

    const t0 = performance.now()
    const waited = viewctl(['regenerate', b, '--lock-timeout', '1'])
    const waitedMs = performance.now() - t0
    expect(waited.code, waited.stderr).toBe(4)
    expect(waited.stderr).toContain(`pid ${pid}`)
    expect(waited.stderr).toContain(path.join(storeOf(view), '.lock'))
    expect(waited.stderr).not.toMatch(/^\s+at /m)
    expect(waitedMs).toBeGreaterThanOrEqual(1000)
    expect(waitedMs).toBeLessThan(20_000)

    const json = viewctl(['rollback', view, '--lock-timeout', '0', '--json'])
    expect(json.code, json.stderr).toBe(4)
    expect(json.json.error.code).toBe('LOCK_TIMEOUT')
    expect(json.json.error.message).toContain(`pid ${pid}`)
    expect(json.json.error.holder.pid).toBe(pid)
    expect(linkTarget(view)).toBe(targetA)

    holder!.kill('SIGKILL')
    const dead = await holderDone!
    expect(dead.signal).toBe('SIGKILL')
    // No waiting at all: --lock-timeout 0 tries once.
    const next = viewctl(['regenerate', b, '--lock-timeout', '0', '--json'])
    expect(next.code, next.stderr).toBe(0)
    expect(next.json.changed).toBe(true)
    expect(next.json.cleared).toContain(path.join(storeOf(view), staging!))
    expect(leftovers(view)).toEqual([])
    expect(assertCompleteGeneration(view).hash).toBe(next.json.hash)
  }, 120_000)
})
