/**
 * The benchmark (bench/run.mjs) runs end to end at a tiny size: it makes its
 * prefixes, runs every case through the real bin/viewctl, prints its table
 * and cleans up. Nothing here is timed: timings are for `npm run bench`.
 */
import fs from 'node:fs'
import path from 'node:path'
import { spawnSync } from 'node:child_process'
import { describe, expect, it } from 'vitest'
import { ROOT, tempDir } from './helpers.js'
import { mountTmpfs, requireMount } from './mounts.js'
import { isMounted } from './rig/sharedfs.mjs'
import { requireSharedFs } from './rig/vitest.js'
import { requirePush } from './push-helpers.js'

const BENCH = path.join(ROOT, 'bench', 'run.mjs')
const hasCc = spawnSync('sh', ['-c', 'command -v cc'], { stdio: 'ignore' }).status === 0

function runBench(args: string[]) {
  const dir = tempDir('viewctl-bench-test-')
  const r = spawnSync(process.execPath, [BENCH, '--prefixes', '3', '--files', '20', '--runs', '1', '--dir', dir, ...args], { encoding: 'utf8', timeout: 170_000 })
  return { ...r, dir }
}

// Every case spawns real processes (the bench at its smallest is still ~30 of them): allow for a busy machine.
const SLOW = { timeout: 180_000 }

describe('bench/run.mjs', () => {
  it('completes at a tiny size and prints its table', SLOW, () => {
    const r = runBench([])
    expect(r.stderr).not.toMatch(/failed/)
    expect(r.status).toBe(0)
    for (const row of ['cp -rs', 'cp -al', 'viewctl per-file', 'viewctl folded', 'viewctl hardlink', 'viewctl no-op', 'viewctl rollback', 'viewctl --version', 'rm -rf']) {
      expect(r.stdout).toContain(row)
    }
    expect(r.stdout).toMatch(/per-file cold \/ cp -rs\s+\S+\s+≤ 1\s+(PASS|FAIL)/)
    expect(r.stdout).toMatch(/no-op \/ cp -rs/)
    // CPU against cp's, with the targets of §11
    expect(r.stdout).toMatch(/per-file CPU \/ cp -rs CPU\s+\S+\s+≤ 1\.4\s+(PASS|FAIL|n\/a)/)
    expect(r.stdout).toMatch(/folded CPU \/ cp -rs CPU\s+\S+\s+≤ 1\.1\s+(PASS|FAIL|n\/a)/)
    expect(r.stdout).toMatch(/hardlink CPU \/ cp -al CPU\s+\S+\s+≤ 1\.4\s+(PASS|FAIL|n\/a)/)
    expect(r.stdout).toContain('cpu/cp')
    // the floor: compiled and run where there is a C compiler, a note where there is none
    if (hasCc) expect(r.stdout).toMatch(/^C symlinkat \(floor\)\s+\d/m)
    else expect(r.stdout).toContain('no C compiler (cc): the floor (bench/floor.c) is not measured')
    expect(r.stdout).toContain('merged all 60 files into one farm (checked)')
    // its work directory is gone
    expect(fs.readdirSync(r.dir)).toEqual([])
  })

  it('prints one JSON object with --json', SLOW, () => {
    const r = runBench(['--json'])
    expect(r.status).toBe(0)
    const out = JSON.parse(r.stdout)
    expect(out.config).toMatchObject({ prefixes: 3, files: 20, totalFiles: 60, runs: 1 })
    const names = out.results.map((x: { name: string }) => x.name)
    expect(names).toContain('viewctl no-op')
    const perFile = out.results.find((x: { name: string }) => x.name === 'viewctl per-file')
    expect(perFile.samples).toBe(1)
    expect(perFile.medianMs).toBeGreaterThan(0)
    expect(out.targets.map((t: { name: string }) => t.name)).toContain('folded cold / cp -rs')
    expect(out.targets.filter((t: { name: string }) => t.name.includes('CPU')).map((t: { name: string; max: number }) => [t.name, t.max])).toEqual([
      ['per-file CPU / cp -rs CPU', 1.4],
      ['folded CPU / cp -rs CPU', 1.1],
      ['hardlink CPU / cp -al CPU', 1.4],
    ])
    expect(out.config.busy).toBe(false)
    const row = (name: string) => out.results.find((x: { name: string }) => x.name === name)
    // CPU over the CPU of the cp that does the same job (none when that cp took less than time's 10 ms resolution)
    const vsCp = (name: string, cp: string) => (row(cp).cpuMs ? row(name).cpuMs / row(cp).cpuMs : null)
    if (out.tools.time) {
      expect(row('viewctl per-file').cpuVsCp).toBe(vsCp('viewctl per-file', 'cp -rs'))
      expect(row('viewctl hardlink').cpuVsCp).toBe(vsCp('viewctl hardlink', 'cp -al'))
    }
    expect(row('viewctl rollback').cpuVsCp).toBeNull()
    if (hasCc) expect(row('C symlinkat (floor)').samples).toBe(1)
  })

  it('--busy keeps one core busy for the whole run, judges the cold builds by the busy targets, and stops the spinner', SLOW, () => {
    const r = runBench(['--busy', '--json'])
    expect(r.status, r.stderr).toBe(0)
    const out = JSON.parse(r.stdout)
    expect(out.config.busy.pid).toBeGreaterThan(0)
    const targets = Object.fromEntries(out.targets.map((t: { name: string; max: number }) => [t.name, t.max]))
    expect(targets).toMatchObject({
      'per-file cold / cp -rs (one core busy)': 1.2,
      'folded cold / cp -rs (one core busy)': 1.0,
      'hardlink cold / cp -al (one core busy)': 1.2,
      'per-file CPU / cp -rs CPU': 1.4,
    })
    expect(targets['per-file cold / cp -rs']).toBeUndefined()
    // the spinner was stopped by its pid: gone, or dead and waiting to be reaped
    let state = 'gone'
    try {
      state = fs.readFileSync(`/proc/${out.config.busy.pid}/stat`, 'utf8').replace(/^.*\) /s, '')[0]!
    } catch {
      // no such process
    }
    expect(['gone', 'Z', 'X']).toContain(state)
    expect(fs.readdirSync(r.dir)).toEqual([])
  })

  it('--long-targets names the prefixes as Spack does; the incremental case shares, and ten generations are measured with df and du', SLOW, () => {
    const r = runBench(['--long-targets', '--json'])
    expect(r.status, r.stderr).toBe(0)
    const out = JSON.parse(r.stdout)
    expect(out.config.longTargets).toBe(true)
    expect(out.config.target).toBeGreaterThan(110) // .../opt/spack/<arch>/<compiler>/p0-1.0.0-<32 characters>/lib/libp0-0.so
    const incremental = out.results.find((x: { name: string }) => x.name === 'viewctl incremental')
    expect(incremental.samples).toBe(1)
    // one prefix of three replaced: the other two thirds of the links shared
    expect(out.incremental.sharedFraction).toBeGreaterThan(0.5)
    expect(out.incremental.own.inodes).toBeLessThan(out.incremental.cold.inodes)
    expect(out.incremental.ten.generations).toHaveLength(10)
    for (const g of out.incremental.ten.generations) expect(g.shared).toBeGreaterThan(0)
    expect(out.incremental.ten.after.du.inodes).toBeGreaterThan(out.incremental.ten.before.du.inodes)
    expect(out.targets.map((t: { name: string }) => t.name)).toEqual(expect.arrayContaining(['incremental / per-file cold', 'incremental blocks / cold', 'incremental inodes / cold']))
    expect(fs.readdirSync(r.dir)).toEqual([])
  })

  it('refuses, before making anything, a run whose filesystem has too few free inodes, and says what to mount', (ctx) => {
    requireMount(ctx)
    const mnt = mountTmpfs('size=64m,nr_inodes=2000')
    // 3,000 files need about 13,600 inodes at the run's peak (about 4 a file): far more than 2,000
    const r = spawnSync(process.execPath, [BENCH, '--prefixes', '3', '--files', '1000', '--runs', '1', '--dir', mnt], { encoding: 'utf8', timeout: 60_000 })
    expect(r.status, r.stderr).toBe(2)
    expect(r.stderr).toMatch(new RegExp(`${mnt} \\(tmpfs\\) has 1,99\\d free inodes, and the run needs about 28,948 at its peak`))
    expect(r.stderr).toContain('mount -t tmpfs -o size=4g,nr_inodes=0 tmpfs /mnt/x')
    expect(r.stderr).toContain('node bench/run.mjs --prefixes 3 --files 1000 --runs 1 --dir /mnt/x')
    expect(r.stdout).toBe('')
    expect(fs.readdirSync(mnt)).toEqual([])
  })

  it('refuses a run whose filesystem has too little free space', (ctx) => {
    requireMount(ctx)
    const mnt = mountTmpfs('size=1m')
    const r = spawnSync(process.execPath, [BENCH, '--prefixes', '100', '--files', '1000', '--dir', mnt], { encoding: 'utf8', timeout: 60_000 })
    expect(r.status, r.stderr).toBe(2)
    expect(r.stderr).toMatch(/has 1 MiB free, and the run needs about 50 MiB at its peak/)
    expect(r.stderr).not.toContain('free inodes')
    expect(fs.readdirSync(mnt)).toEqual([])
  })

  it('refuses an unknown option with exit 2', () => {
    const r = spawnSync(process.execPath, [BENCH, '--frobnicate'], { encoding: 'utf8' })
    expect(r.status).toBe(2)
    expect(r.stderr).toContain('unknown option --frobnicate')
  })

  it('--push times rsync -a, a cold push, an incremental one and a no-op through a private sshd, and prints the ratios', SLOW, (ctx) => {
    requirePush(ctx)
    const dir = tempDir('viewctl-bench-test-')
    const r = spawnSync(process.execPath, [BENCH, '--push', '--prefixes', '3', '--files', '20', '--runs', '1', '--dir', dir, '--json'], { encoding: 'utf8', timeout: 170_000 })
    expect(r.stderr).not.toMatch(/failed/)
    expect(r.status).toBe(0)
    const out = JSON.parse(r.stdout)
    expect(Object.keys(out.times)).toEqual(['rsync -a', 'push, cold', 'push, incremental', 'push, no-op'])
    for (const samples of Object.values(out.times) as number[][]) expect(samples).toHaveLength(1)
    // one prefix of three replaced: its 14 files outside include/ and its folded include/ link are made anew there; the rest is linked from the tree there
    expect(out.view.incremental).toMatchObject({ created: 15 })
    expect(out.view.incremental.linked).toBeGreaterThan(15)
    expect(out.floor).toMatchObject({ name: 'no-op push / cold push', value: expect.any(Number) })
    expect(out.targets.map((t: { name: string }) => t.name)).toEqual(['cold push / rsync -a', 'incremental push / cold push'])
    expect(fs.readdirSync(dir)).toEqual([])
  })

  it('--sharedfs runs every case through the rig\'s mounts, prints its table and leaves no mount behind', SLOW, (ctx) => {
    requireSharedFs(ctx)
    const r = spawnSync(process.execPath, [BENCH, '--sharedfs', '--prefixes', '2', '--files', '10', '--runs', '1', '--json'], { encoding: 'utf8', timeout: 170_000 })
    expect(r.stderr).not.toMatch(/failed/)
    expect(r.status).toBe(0)
    const out = JSON.parse(r.stdout)
    expect(out.config).toMatchObject({ prefixes: 2, files: 10, totalFiles: 20, runs: 1 })
    for (const row of out.results) expect(row.samples, row.name).toBe(1)
    expect(out.targets.map((t: { name: string }) => t.name)).toEqual(['per-file / cp -rs (delayed)', 'folded / per-file (delayed)', 'gc / rm -rf (uncached)', 'gc / rm -rf (delayed)'])
    expect(out.network.measuredMeanHoldMs).toBeGreaterThanOrEqual(0.95)
    expect(out.config.mounts.delayed).toContain('dir_cache=no')
    const mountinfo = fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').map((l) => l.split(' ')[4] ?? '')
    expect(mountinfo.filter((p) => p.includes('viewctl-bench-sharedfs-') && isMounted(p))).toEqual([])
  })
})
