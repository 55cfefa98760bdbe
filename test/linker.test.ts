/**
 * Linking over several threads (src/store/build/linker.ts): the schedule covers
 * every link once, in chunks that keep threads in different directories; a
 * large view built with a worker thread is the same view, entry for entry, as
 * one built on the main thread alone; and an error in a worker fails the
 * build like an error on the main thread.
 *
 * The worker exists only in the compiled package, so the worker tests run the
 * real CLI, or import the compiled linker from dist/ (built by pretest).
 */
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { spawnSync } from 'node:child_process'
import { describe, expect, it, onTestFinished } from 'vitest'
import { CHUNK, PARALLEL_MIN_LINKS, scheduleLinks } from '../src/store/build/linker.js'
import { extraThreads, jobs, LOCAL_JOBS_CAP, REMOTE_JOBS } from '../src/store/workers.js'
import { BIN, ROOT, makePrefixes, tempDir, viewctl, writeManifest, writeTree } from './helpers.js'

describe('scheduleLinks', () => {
  const plan = (dirs: Record<string, number>) => {
    const paths: string[] = []
    for (const [dir, n] of Object.entries(dirs)) for (let i = 0; i < n; i++) paths.push(`${dir}/f${i}`)
    return paths
  }

  it('takes every link exactly once, in chunks of at most CHUNK', () => {
    const paths = plan({ bin: 3000, lib: 5000, 'share/man/man1': 2500, 'include/a': 10, 'include/b': 7 })
    const links = paths.map((_, i) => i)
    const { order, bounds } = scheduleLinks(paths, links)
    expect([...order].sort((a, b) => a - b)).toEqual(links)
    for (let c = 0; c + 1 < bounds.length; c++) expect(bounds[c + 1]! - bounds[c]!).toBeLessThanOrEqual(CHUNK)
    expect(bounds[bounds.length - 1]).toBe(paths.length)
  })

  it('interleaves the chunks of big directories, so that neighbours in the queue are in different directories', () => {
    const paths = plan({ bin: 4 * CHUNK, lib: 4 * CHUNK })
    const { order, bounds } = scheduleLinks(paths, paths.map((_, i) => i))
    const dirOf = (c: number) => paths[order[bounds[c]!]!]!.split('/')[0]
    for (let c = 0; c + 2 < bounds.length; c++) expect(dirOf(c)).not.toBe(dirOf(c + 1))
  })

  it('packs small directories together', () => {
    const dirs: Record<string, number> = {}
    for (let d = 0; d < 500; d++) dirs[`include/p${d}`] = 3
    const paths = plan(dirs)
    const { bounds } = scheduleLinks(paths, paths.map((_, i) => i))
    expect(bounds.length - 1).toBe(2) // 1500 links of 500 directories: two chunks, not 500
  })
})

describe('linking with a worker thread (compiled package)', () => {
  it('builds the same view as the main thread alone, and it verifies', { timeout: 180_000 }, () => {
    const dir = tempDir('viewctl-linker-')
    const perPrefix = Math.ceil(PARALLEL_MIN_LINKS / 3 / 4) + 50
    const prefixes = makePrefixes(path.join(dir, 'p'), 3, perPrefix) // 4 files each: above the parallel threshold
    const hashes: string[] = []
    for (const threads of ['1', '2', '3']) {
      const view = path.join(dir, `view-${threads}`)
      const manifest = writeManifest(dir, [`view: ${view}`, 'fold: false', 'packages:', ...prefixes.map((p) => `  - ${p}`), ''].join('\n'), `m${threads}.yaml`)
      const r = viewctl(['regenerate', manifest, '--json'], { env: { VIEWCTL_JOBS: threads } })
      expect(r.code, r.stderr).toBe(0)
      expect(r.json.entries).toBeGreaterThan(PARALLEL_MIN_LINKS)
      hashes.push(r.json.hash)
      const v = viewctl(['verify', view, '--json'])
      expect(v.code, v.stdout + v.stderr).toBe(0)
      expect(fs.readlinkSync(path.join(view, 'bin', 'pkg1-tool7'))).toBe(path.join(prefixes[1]!, 'bin', 'pkg1-tool7'))
    }
    expect(new Set(hashes).size).toBe(1)
  })

  it('fails the whole build on an error in any thread, with the errno for translateOsError', { timeout: 60_000 }, async () => {
    const { linkAll } = (await import(path.join(ROOT, 'dist', 'store', 'build', 'linker.js'))) as typeof import('../src/store/build/linker.js')
    const staging = tempDir('viewctl-linker-staging-')
    const n = PARALLEL_MIN_LINKS + 4000
    // "b/" is never made: every link there fails with ENOENT, whichever thread takes it
    const paths = Array.from({ length: n }, (_, i) => (i < n / 2 ? `a/f${i}` : `b/f${i}`))
    fs.mkdirSync(path.join(staging, 'a'))
    const text = ['# viewctl plan 1\n', 'P\t0\t/nonexistent/prefix\n', ...paths.map((p) => `f\t0\t${p}\n`)]
    const ctx = { staging, at: staging, mode: 'symlink' as const, relative: false, prefixes: ['/nonexistent/prefix'], prefixFromRoot: ['../x'], paths, kinds: paths.map(() => 1), sources: paths.map(() => 0) }
    const err = await linkAll(ctx, paths.map((_, i) => i), { planText: text, checkpoint: () => {} }).then(
      () => null,
      (e: unknown) => e as NodeJS.ErrnoException,
    )
    expect(err).not.toBeNull()
    expect(err!.code).toBe('ENOENT')
    expect(err!.syscall).toBe('symlink')
  })
  it('hands the queue to workers started ahead of the plan; an error in one fails the build the same way', { timeout: 60_000 }, async (testCtx) => {
    // VIEWCTL_JOBS is capped at the CPUs: one CPU allows no worker at all
    if (os.availableParallelism() < 2) testCtx.skip(`one CPU available to this process: no link worker to hand a queue to`)
    const { linkAll, startLinkHelpers } = (await import(path.join(ROOT, 'dist', 'store', 'build', 'linker.js'))) as typeof import('../src/store/build/linker.js')
    const threads = process.env.VIEWCTL_JOBS
    process.env.VIEWCTL_JOBS = '2' // one worker
    onTestFinished(() => {
      if (threads === undefined) delete process.env.VIEWCTL_JOBS
      else process.env.VIEWCTL_JOBS = threads
    })
    const n = PARALLEL_MIN_LINKS + 4000
    // sendAhead: the plan text goes first (parsed while the main thread prepares), the queue after
    const run = async (paths: string[], staging: string, sendAhead: boolean) => {
      const helpers = startLinkHelpers()
      expect(helpers?.helpers.length).toBe(1)
      await new Promise((resolve) => setTimeout(resolve, 200)) // booted and waiting, as while a plan is made
      const text = ['# viewctl plan 1\n', 'P\t0\t/nonexistent/prefix\n', ...paths.map((p) => `f\t0\t${p}\n`)]
      if (sendAhead) helpers!.sendPlan(text, paths.length)
      const ctx = { staging, at: staging, mode: 'symlink' as const, relative: false, prefixes: ['/nonexistent/prefix'], prefixFromRoot: ['../x'], paths, kinds: paths.map(() => 1), sources: paths.map(() => 0) }
      let worked = 0
      try {
        await linkAll(ctx, paths.map((_, i) => i), { planText: text, helpers, checkpoint: (done) => (worked = done) })
        // the helper got the queue and reported (one that never got it would still be waiting)
        return { err: null, worked, report: await helpers!.helpers[0]!.ended }
      } catch (e) {
        return { err: e as NodeJS.ErrnoException, worked, report: null }
      } finally {
        helpers!.release()
      }
    }

    const good = tempDir('viewctl-linker-staging-')
    fs.mkdirSync(path.join(good, 'a'))
    fs.mkdirSync(path.join(good, 'b'))
    const paths = Array.from({ length: n }, (_, i) => (i % 2 ? `a/f${i}` : `b/f${i}`))
    const ok = await run(paths, good, true)
    expect(ok.err).toBeNull()
    expect(ok.worked).toBe(n)
    expect(ok.report).toEqual({ ok: true })
    expect(fs.readdirSync(path.join(good, 'a')).length + fs.readdirSync(path.join(good, 'b')).length).toBe(n)
    expect(fs.readlinkSync(path.join(good, 'a/f1'))).toBe('/nonexistent/prefix/a/f1')

    const bad = tempDir('viewctl-linker-staging-')
    fs.mkdirSync(path.join(bad, 'a')) // "b/" is never made
    const failed = await run(paths, bad, false)
    expect(failed.err?.code).toBe('ENOENT')
    expect(failed.err?.syscall).toBe('symlink')

    // and with the plan sent ahead, the same error
    const bad2 = tempDir('viewctl-linker-staging-')
    fs.mkdirSync(path.join(bad2, 'a'))
    expect((await run(paths, bad2, true)).err?.code).toBe('ENOENT')
  })
})

describe('the one knob, VIEWCTL_JOBS (--jobs): threads capped at the CPUs locally', () => {
  it('allows at most one thread per CPU this process may run on, the main thread included', () => {
    const cpus = os.availableParallelism()
    const saved = process.env.VIEWCTL_JOBS
    onTestFinished(() => {
      if (saved === undefined) delete process.env.VIEWCTL_JOBS
      else process.env.VIEWCTL_JOBS = saved
    })
    process.env.VIEWCTL_JOBS = String(cpus + 7)
    expect(extraThreads(), `VIEWCTL_JOBS=${cpus + 7}`).toBe(cpus - 1)
    expect(jobs(true)).toBe(cpus + 7) // on a remote filesystem it is operations in flight, not threads
    process.env.VIEWCTL_JOBS = '1'
    expect(extraThreads()).toBe(0)
    process.env.VIEWCTL_JOBS = '0' // not a number of jobs: the default
    expect(jobs(true)).toBe(REMOTE_JOBS)
    delete process.env.VIEWCTL_JOBS
    expect(extraThreads()).toBe(Math.min(cpus, LOCAL_JOBS_CAP) - 1) // the default: the CPUs
    expect(jobs(false)).toBe(Math.min(cpus, LOCAL_JOBS_CAP))
    expect(jobs(true)).toBe(16)
  })

  it('a build pinned to one CPU (taskset) starts no link worker, however many threads VIEWCTL_JOBS asks for', { timeout: 180_000 }, (testCtx) => {
    if (spawnSync('taskset', ['-c', '0', 'true']).status !== 0) testCtx.skip('taskset (util-linux) is not installed: cannot pin a process to one CPU')
    const dir = tempDir('viewctl-link-cap-')
    // two prefixes sharing big directories: a link worker gets chunks while the walk goes on (streamed)
    const files = (tag: string) => Object.fromEntries(Array.from({ length: 1500 }, (_, i) => [`bin/${tag}-${i}`, tag]))
    const a = writeTree(path.join(dir, 'a'), files('a'))
    const b = writeTree(path.join(dir, 'b'), files('b'))
    const build = (name: string, pinned: boolean) => {
      const manifest = writeManifest(dir, `view: ${dir}/${name}\npackages: [${a}, ${b}]\n`, `${name}.yaml`)
      const cmd = [process.execPath, BIN, 'regenerate', manifest, '--json']
      const r = spawnSync(pinned ? 'taskset' : cmd[0]!, pinned ? ['-c', '0', ...cmd] : cmd.slice(1), { encoding: 'utf8', env: { ...process.env, VIEWCTL_JOBS: '8' }, timeout: 60_000 })
      expect(r.status, r.stderr).toBe(0)
      return JSON.parse(r.stdout) as { streamed: boolean; entries: number }
    }
    expect(build('pinned', true).streamed).toBe(false) // one CPU: the main thread alone, plan first and build after
    // the control: with a second CPU the same build does hand links to a worker, so the check above can fail
    if (os.availableParallelism() >= 2) expect(build('free', false).streamed).toBe(true)
  })
})
