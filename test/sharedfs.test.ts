/**
 * One view on a shared filesystem, written and read through several clients
 * (DESIGN §14): the rig's sshfs mounts of one export (test/rig/), where
 * fcntl locks stay on each mount and the stale mount answers from its caches
 * for 20 s. Real processes only: writers stopped with SIGSTOP inside their
 * locked section, gc racing switches, exec jobs, readers on every mount.
 */
import fs from 'node:fs'
import path from 'node:path'
import { spawn, type ChildProcess } from 'node:child_process'
import { describe, expect, it, onTestFinished } from 'vitest'
import { linkTarget, viewctl, viewctlAsync, writeManifest } from './helpers.js'
import { finished, finishedWithin, makeWidePrefixes, sleep, storeOf, viewctlRun, waitFor } from './view-checks.js'
import { requireSharedFs, useSharedFs } from './rig/vitest.js'
import type { MountName, SharedFs } from './rig/sharedfs.mjs'
import { HEARTBEAT_MS } from '../src/store/guard/xlock.js'

const rig = useSharedFs({ mounts: ['uncached', 'stale'] })

const SLOW = { timeout: 240_000 }

interface SharedView {
  /** The directory in the export holding the view, server side. */
  dir: string
  /** The view path, server side. */
  view: string
  store: string
  /** The view path as a mount shows it. */
  viewOn(m: MountName): string
  /** A manifest naming the view as mount `m` shows it, with the first `n` prefixes. */
  manifest(m: MountName, n: number): string
}

/** A view in the export with `pkgs` prefixes of `filesPer` files per directory, server side (the writers reach them by their server paths). */
function sharedView(r: SharedFs, pkgs = 6, filesPer = 20): SharedView {
  const dir = fs.mkdtempSync(path.join(r.export, 'view-'))
  const prefixes = makeWidePrefixes(path.join(dir, 'prefixes'), pkgs, filesPer)
  const view = path.join(dir, 'view')
  return {
    dir,
    view,
    store: storeOf(view),
    viewOn: (m) => r.at(m, view),
    manifest: (m, n) => writeManifest(dir, [`view: ${r.at(m, view)}`, 'fold: false', 'gc: {auto: false}', 'packages:', ...prefixes.slice(0, n).map((p) => `  - ${p}`), ''].join('\n'), `${m}-${n}.yaml`),
  }
}

/** A child process stopped by the test is continued and killed when the test ends, whatever happened. */
function cleanupChild(child: ChildProcess): void {
  onTestFinished(() => {
    try {
      child.kill('SIGCONT')
      child.kill('SIGKILL')
    } catch {
      // gone
    }
  })
}

/** Make every record of the past look older than gc's two-minute rule: the fences and the view symlink, by their own timestamps (server side). */
function ageSwitches(v: SharedView, seconds = 600): void {
  const then = new Date(Date.now() - seconds * 1000)
  for (const name of fs.readdirSync(v.store)) if (name.startsWith('switch.')) fs.utimesSync(path.join(v.store, name), then, then)
  fs.lutimesSync(v.view, then, then)
}

describe('a writer lock that holds across clients', () => {
  it('a writer through one mount neither runs nor clears anything while another mount\'s writer is stopped inside its locked section', SLOW, async (ctx) => {
    requireSharedFs(ctx)
    const r = rig()
    const v = sharedView(r, 12, 60)
    expect(viewctl(['regenerate', v.manifest('uncached', 4), '--json']).code).toBe(0)
    expect(viewctl(['regenerate', v.manifest('uncached', 6), '--json']).code).toBe(0)
    const history = () => fs.readFileSync(path.join(v.store, 'history.jsonl'), 'utf8')
    const before = history()

    // A: a big regenerate through the uncached mount, stopped once it holds the cross-client lock and has staging
    const a = viewctlAsync(['regenerate', v.manifest('uncached', 12), '--json'])
    cleanupChild(a)
    const aDone = finished(a)
    const staging = await waitFor(() => fs.readdirSync(v.store).find((n) => n.startsWith('.staging-')), 60_000, 5)
    expect(staging, 'A should hold the lock and have begun its build').toBeTruthy()
    a.kill('SIGSTOP')

    // B: a rollback through the stale mount (another client: its fcntl locks do not see A's) is refused after its timeout
    const b = await viewctlRun(['rollback', v.viewOn('stale'), '--lock-timeout', '3', '--json'])
    expect(b.code, b.stderr).toBe(4)
    expect(b.json.error.code).toBe('LOCK_TIMEOUT')
    expect(b.json.error.message).toContain(`pid ${a.pid} on `)
    expect(history()).toBe(before)
    expect(fs.existsSync(path.join(v.store, staging as string)), "B must not clear A's staging").toBe(true)

    // a B that waits runs after A, never beside it
    const waiting = viewctlAsync(['rollback', v.viewOn('stale'), '--lock-timeout', '120', '--json'])
    cleanupChild(waiting)
    const waited = finishedWithin(waiting, 180_000)
    await sleep(3000)
    expect(history(), 'the waiting writer ran while A held the lock').toBe(before)
    a.kill('SIGCONT')
    const aExit = await aDone
    expect(aExit.code, aExit.stderr).toBe(0)
    const bExit = await waited
    expect(bExit.code, bExit.stderr).toBe(0)
    const records = history().trim().split('\n').map((l) => JSON.parse(l))
    expect(records.map((x) => x.action)).toEqual(['regenerate', 'regenerate', 'regenerate', 'rollback'])
    expect(records[3].from).toBe(3) // B decided on what A had done
  })

  it('a holder on this host that died is replaced at once; --break-lock removes another host\'s; a silent one is broken after its heartbeat stops', SLOW, async (ctx) => {
    requireSharedFs(ctx)
    const r = rig()
    const v = sharedView(r, 2, 5)
    expect(viewctl(['regenerate', v.manifest('uncached', 1), '--json']).code).toBe(0)
    const xlock = path.join(v.store, '.xlock')
    const plant = (fields: Record<string, unknown>) => {
      const text = JSON.stringify({ host: 'vc15-elsewhere', boot: 'b', pid: 4242, start: '1', command: 'viewctl regenerate x', started: new Date().toISOString(), token: 'planted', beat: 0, ...fields })
      fs.writeFileSync(xlock, text.padEnd(511, ' ') + '\n')
    }
    // this host, a pid that no longer runs
    const dead = spawn('true')
    await finished(dead)
    plant({ host: (await import('node:os')).hostname(), pid: dead.pid })
    const t0 = performance.now()
    const same = viewctl(['rollback', v.viewOn('uncached'), '--lock-timeout', '10', '--json'])
    expect(same.code, same.stderr).toBe(1) // no earlier generation: but it got past the lock at once
    expect(same.json.error.code).toBe('NO_ROLLBACK_TARGET')
    expect(performance.now() - t0).toBeLessThan(8000)

    // another host: waited for, named, and removed by --break-lock
    plant({})
    const waited = viewctl(['regenerate', v.manifest('uncached', 2), '--lock-timeout', '2', '--json'])
    expect(waited.code).toBe(4)
    expect(waited.json.error.message).toContain('pid 4242 on vc15-elsewhere')
    const broken = viewctl(['regenerate', v.manifest('uncached', 2), '--lock-timeout', '2', '--break-lock', '--json'])
    expect(broken.code, broken.stderr).toBe(0)

    // another host whose heartbeat never moves: judged dead after 20 s on the waiter's clock
    plant({})
    const t1 = performance.now()
    const patient = viewctl(['rollback', v.viewOn('uncached'), '--lock-timeout', '60', '--json'])
    expect(patient.code, patient.stderr).toBe(0)
    expect(performance.now() - t1).toBeGreaterThanOrEqual(19_000)
    expect(fs.existsSync(xlock)).toBe(false)
  })

  it('the holder\'s heartbeat goes on while its main thread is busy', SLOW, async (ctx) => {
    requireSharedFs(ctx)
    const r = rig()
    const v = sharedView(r, 2, 5)
    expect(viewctl(['regenerate', v.manifest('uncached', 1), '--json']).code).toBe(0)
    // a dead writer's staging of 12,000 files: the next writer clears it under the lock, synchronously, one round trip per name
    // (about 0.7 ms each through the mount, so several 2 s heartbeats fall inside the clearing even on a busy machine)
    const leftover = path.join(v.store, '.staging-deadbeefdeadbeef-1-00000000')
    fs.mkdirSync(path.join(leftover, 'bin'), { recursive: true })
    for (let i = 0; i < 12_000; i++) fs.writeFileSync(path.join(leftover, 'bin', `f${i}`), '')
    const pin = viewctlAsync(['pin', v.viewOn('uncached'), '1', '--json'])
    cleanupChild(pin)
    const done = finished(pin)
    const xlock = path.join(v.store, '.xlock')
    const beats: number[] = []
    const seen: number[] = []
    expect(await waitFor(() => fs.existsSync(xlock), 30_000, 5)).toBeTruthy()
    while (fs.existsSync(leftover)) {
      try {
        beats.push(JSON.parse(fs.readFileSync(xlock, 'utf8')).beat)
        seen.push(performance.now())
      } catch {
        // released
      }
      await sleep(250)
    }
    const exit = await done
    expect(exit.code, exit.stderr).toBe(0)
    // the beats read span more than two heartbeat intervals, so a live heartbeat must have moved at least twice
    expect(seen.at(-1)! - seen[0], 'the clearing should take several heartbeats').toBeGreaterThanOrEqual(2.25 * HEARTBEAT_MS)
    expect(Math.max(...beats) - Math.min(...beats), `beats seen: ${beats.join(' ')}`).toBeGreaterThanOrEqual(2)
  })
})

describe('fresh reads and the fencing counter', () => {
  it('a writer on the stale mount waits for its caches to catch up with a switch made through another mount, then decides on fresh data', SLOW, async (ctx) => {
    requireSharedFs(ctx)
    const r = rig()
    const v = sharedView(r, 3, 10)
    for (const n of [1, 2, 3]) expect(viewctl(['regenerate', v.manifest('uncached', n), '--json']).code).toBe(0)
    // the stale client reads the view and its journal now, and caches them
    expect(viewctl(['list', v.viewOn('stale'), '--json']).json.current).toBe(3)
    expect(viewctl(['rollback', v.viewOn('uncached'), '--json']).json.to).toBe(2)
    const t0 = performance.now()
    const back = viewctl(['rollback', v.viewOn('stale'), '--json'])
    expect(back.code, back.stderr).toBe(0)
    // from generation 2 (fresh), not 3 (cached): to 1
    expect(back.json).toMatchObject({ from: 2, to: 1 })
    expect(back.json.warnings.join('\n')).toMatch(/waited [\d.]+ s for this client's view/)
    expect(performance.now() - t0).toBeLessThan(60_000)
    expect(fs.readdirSync(v.store).filter((n) => n.startsWith('switch.')).sort()).toEqual(['switch.1', 'switch.2', 'switch.3', 'switch.4', 'switch.5'])
  })

  it('a switch decided on reads that went stale fails at its fence and changes nothing', SLOW, async (ctx) => {
    requireSharedFs(ctx)
    const r = rig()
    const v = sharedView(r, 12, 60)
    for (const n of [1, 2]) expect(viewctl(['regenerate', v.manifest('uncached', n), '--json']).code).toBe(0)
    const history = () => fs.readFileSync(path.join(v.store, 'history.jsonl'), 'utf8')
    // A holds the lock and builds; stopped there
    const a = viewctlAsync(['regenerate', v.manifest('uncached', 12), '--json'])
    cleanupChild(a)
    const aDone = finished(a)
    expect(await waitFor(() => fs.readdirSync(v.store).some((n) => n.startsWith('.staging-')), 60_000, 5)).toBeTruthy()
    a.kill('SIGSTOP')
    // meanwhile an admin switches through the other mount without any lock
    const b = viewctl(['rollback', v.viewOn('stale'), '--no-lock', '--json'])
    expect(b.code, b.stderr).toBe(0)
    const after = history()
    const target = linkTarget(v.view)
    a.kill('SIGCONT')
    const aExit = await aDone
    expect(aExit.code, aExit.stderr).toBe(1)
    const error = JSON.parse(aExit.stdout).error
    expect(error.code).toBe('STALE_READS')
    expect(error.message).toContain('switch.3')
    expect(history()).toBe(after)
    expect(linkTarget(v.view)).toBe(target)
  })
})

describe('gc never deletes what another client shows or uses', () => {
  it('gc through the stale mount while the uncached mount switches generations: the live tree always survives', { timeout: 480_000 }, async (ctx) => {
    requireSharedFs(ctx)
    const r = rig()
    const v = sharedView(r, 5, 10)
    for (const n of [1, 2, 3, 4, 5]) expect(viewctl(['regenerate', v.manifest('uncached', n), '--json']).code).toBe(0)
    expect(viewctl(['regenerate', v.manifest('uncached', 4), '--json']).code).toBe(0)
    const five = viewctl(['list', v.view, '--json']).json.generations.find((g: { generation: number }) => g.generation === 5).hash
    ageSwitches(v)
    // the stale client caches the view as it is now
    expect(viewctl(['status', v.viewOn('stale'), '--json']).json.hash).not.toBe(five)

    const watcher = liveTreeWatcher(v.view, path.join(v.dir, 'stop-watch'))
    const gcOutcomes: Array<{ code: number; removed: string[]; stderr: string }> = []
    let stop = false
    const gcLoop = (async () => {
      while (!stop) {
        const g = await viewctlRun(['gc', v.viewOn('stale'), '--keep', '0', '--ttl', '0', '--force', '--lock-timeout', '60', '--json'])
        gcOutcomes.push({ code: g.code, removed: g.json?.removed?.map((x: { hash: string }) => x.hash) ?? [], stderr: g.stderr })
      }
    })()
    // switches through the other mount among trees gc may collect: a collected one is built again. Each gc through
    // the stale mount waits, holding the lock, until its caches show the last switch (up to 20 s): a few switches do.
    for (let i = 0; i < 4; i++) {
      const s = await viewctlRun(['regenerate', v.manifest('uncached', [3, 2, 1][i % 3]!), '--lock-timeout', '60', '--json'])
      expect(s.code, s.stderr).toBe(0)
    }
    stop = true
    await gcLoop
    fs.writeFileSync(path.join(v.dir, 'stop-watch'), '')
    const seen = await watcher
    expect(seen.missing, `the view resolved to a missing tree: ${seen.examples.join('; ')}`).toBe(0)
    expect(seen.reads).toBeGreaterThan(10)
    expect(gcOutcomes.length).toBeGreaterThanOrEqual(2)
    for (const g of gcOutcomes) expect(g.code, g.stderr).toBe(0)
    expect(fs.existsSync(path.join(fs.realpathSync(v.view), '.viewctl', 'meta.json'))).toBe(true)
    // generation 5's tree stopped being current ten minutes ago by its fence, and was never current again: gc took it
    expect(gcOutcomes.flatMap((g) => g.removed)).toContain(five)
  })

  it('exec on one mount, gc on the other: the job\'s tree survives while it runs, also when its viewctl is killed, and goes after', SLOW, async (ctx) => {
    requireSharedFs(ctx)
    const r = rig()
    const v = sharedView(r, 2, 5)
    for (const n of [1, 2]) expect(viewctl(['regenerate', v.manifest('uncached', n), '--json']).code).toBe(0)
    const jobTree = fs.realpathSync(v.view)
    const stopFile = path.join(v.dir, 'stop-job')
    // a job that lives until told to stop, through the uncached mount
    const job = viewctlAsync(['exec', v.viewOn('uncached'), '--', 'sh', '-c', `while [ ! -e "$1" ]; do sleep 0.2; done`, 'job', stopFile])
    cleanupChild(job)
    onTestFinished(() => fs.writeFileSync(stopFile, '')) // the job outlives its viewctl: told to end, whatever happened
    const leases = path.join(v.store, 'leases', path.basename(jobTree))
    expect(await waitFor(() => fs.existsSync(leases) && fs.readdirSync(leases).length > 0, 30_000, 20), 'the job should hold a lease file').toBeTruthy()
    const leaseName = fs.readdirSync(leases)[0]!
    // the view moves on through the other mount; the switch is old enough for gc's two-minute rule
    expect(viewctl(['rollback', v.viewOn('stale'), '--json']).code).toBe(0)
    ageSwitches(v)
    job.kill('SIGKILL') // viewctl exec dies; the job (its child) and the watcher go on
    await sleep(500)
    const kept = viewctl(['gc', v.viewOn('stale'), '--keep', '0', '--ttl', '0', '--force', '--json'])
    expect(kept.code, kept.stderr).toBe(0)
    expect(kept.json.removed).toEqual([])
    const reasons = kept.json.kept.find((k: { hash: string }) => k.hash === path.basename(jobTree)).reasons.join('; ')
    expect(reasons).toContain('exec lease file')
    expect(reasons).toContain(`pid ${leaseName.split('.').slice(-2)[0]} on `)
    expect(fs.existsSync(path.join(jobTree, '.viewctl', 'meta.json'))).toBe(true)

    fs.writeFileSync(stopFile, '')
    expect(await waitFor(() => !fs.existsSync(path.join(leases, leaseName)), 30_000, 50), 'the watcher should remove the lease file once the job ends').toBeTruthy()
    // the stale mount may list the removed lease file for as long as its cache lives (20 s): gc keeps the tree that long, then takes it
    let gone = viewctl(['gc', v.viewOn('stale'), '--keep', '0', '--ttl', '0', '--force', '--json'])
    for (const t0 = performance.now(); gone.json?.removed?.length === 0 && performance.now() - t0 < 60_000; ) {
      await sleep(2000)
      gone = viewctl(['gc', v.viewOn('stale'), '--keep', '0', '--ttl', '0', '--force', '--json'])
    }
    expect(gone.code, gone.stderr).toBe(0)
    expect(gone.json.removed.map((x: { hash: string }) => x.hash), JSON.stringify(gone.json.kept)).toEqual([path.basename(jobTree)])
    expect(fs.existsSync(leases)).toBe(false)
  })
})

describe('readers on every client during switches', () => {
  it('a reader on each mount and on the server side through 20 switches and gcs: no missing view, no mixed tree', SLOW, async (ctx) => {
    requireSharedFs(ctx)
    const r = rig()
    const v = sharedView(r, 6, 8)
    const small = v.manifest('uncached', 3)
    const large = v.manifest('uncached', 6)
    expect(viewctl(['regenerate', small, '--json']).code).toBe(0)
    const stopFile = path.join(v.dir, 'stop-readers')
    const readers = [v.view, v.viewOn('uncached'), v.viewOn('stale')].map((view) => consistentReader(view, stopFile))
    await Promise.all(readers.map((x) => x.ready))
    for (let i = 0; i < 20; i++) {
      const s = await viewctlRun(['regenerate', i % 2 === 0 ? large : small, '--json'])
      expect(s.code, s.stderr).toBe(0)
      // and a gc that would take every other tree at once, were it not for the clients that may still resolve to it
      const g = await viewctlRun(['gc', v.viewOn('uncached'), '--keep', '0', '--ttl', '0', '--force', '--json'])
      expect(g.code, g.stderr).toBe(0)
      expect(g.json.removed).toEqual([])
    }
    fs.writeFileSync(stopFile, '')
    for (const [i, x] of readers.entries()) {
      const res = await x.result
      expect(res.errors, `reader ${i}: ${res.examples.join('; ')}`).toBe(0)
      expect(res.mixed, `reader ${i}: ${res.examples.join('; ')}`).toBe(0)
      expect(res.reads, `reader ${i}`).toBeGreaterThan(5)
    }
  })
})

/** Resolves the view on the server side in a loop; counts reads where the tree it points at has no meta.json. */
function liveTreeWatcher(view: string, stopFile: string): Promise<{ reads: number; missing: number; examples: string[] }> {
  const script = `
    const fs = require('node:fs')
    const [view, stop] = process.argv.slice(1)
    const res = { reads: 0, missing: 0, examples: [] }
    while (!fs.existsSync(stop)) {
      const target = fs.readlinkSync(view)
      if (!fs.existsSync(require('node:path').join(require('node:path').dirname(view), target, '.viewctl', 'meta.json'))) {
        res.missing++
        if (res.examples.length < 5) res.examples.push(target)
      }
      res.reads++
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20)
    }
    process.stdout.write(JSON.stringify(res))
  `
  const child = spawn(process.execPath, ['-e', script, view, stopFile], { stdio: ['ignore', 'pipe', 'pipe'] })
  cleanupChild(child)
  return finishedWithin(child, 450_000).then((x) => (x.stdout ? JSON.parse(x.stdout) : { reads: 0, missing: -1, examples: [`the watcher ended without a report: ${x.stderr}`] }))
}

/**
 * A reader through `view`: lists bin/ and reads the plan of the tree it
 * resolved, both through the view path, and checks that the listing has as
 * many entries as that tree's plan says bin/ holds (no mix of two trees).
 */
function consistentReader(view: string, stopFile: string) {
  const ready = `${stopFile}.${path.basename(path.dirname(path.dirname(view)))}-${Math.random().toString(16).slice(2)}`
  const script = `
    const fs = require('node:fs')
    const [view, stop, ready] = process.argv.slice(1)
    const res = { reads: 0, errors: 0, mixed: 0, examples: [] }
    fs.writeFileSync(ready, '')
    while (!fs.existsSync(stop)) {
      try {
        const root = fs.realpathSync(view) // resolved once, as a reader that holds a tree does
        const plan = fs.readFileSync(root + '/.viewctl/plan.tsv', 'utf8')
        const planned = plan.split('\\n').filter((l) => /^[^P#][^\\t]*\\t[^\\t]*\\tbin\\/[^/]+$/.test(l)).length
        const listed = fs.readdirSync(root + '/bin').length
        if (planned !== listed) { res.mixed++; if (res.examples.length < 5) res.examples.push('plan ' + planned + ' listed ' + listed) }
        res.reads++
      } catch (err) {
        res.errors++
        if (res.examples.length < 5) res.examples.push(String(err.code || err.message))
      }
    }
    process.stdout.write(JSON.stringify(res))
  `
  const child = spawn(process.execPath, ['-e', script, view, stopFile, ready], { stdio: ['ignore', 'pipe', 'pipe'] })
  cleanupChild(child)
  return {
    ready: waitFor(() => fs.existsSync(ready), 30_000, 10),
    result: finishedWithin(child, 220_000).then((x) => (x.stdout ? JSON.parse(x.stdout) : { reads: 0, errors: -1, mixed: 0, examples: [`the reader ended without a report: ${x.stderr}`] }) as { reads: number; errors: number; mixed: number; examples: string[] }),
  }
}
