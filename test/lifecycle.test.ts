/**
 * Generation lifecycle end to end: gc (keep, ttl, pins, shared trees,
 * dry run, --force, auto-gc), processes using a generation (/proc scan),
 * pin/unpin and list markers, rollback to a collected generation. The real
 * bin/viewctl runs against real temp directories; generations are aged by
 * editing the `at` times in history.jsonl.
 */
import fs from 'node:fs'
import path from 'node:path'
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { describe, expect, it, onTestFinished } from 'vitest'
import { publicInstall, tempDir, viewctl, writeManifest, writeTree, type RunResult } from './helpers.js'
import { findProcessUsers } from '../src/store/guard/readers.js'

const HOUR = 3600_000
const DAY = 24 * HOUR

interface Fixture {
  dir: string
  view: string
  store: string
  manifest: string
  /** Regenerate the view from prefix version k (its bin/tool prints "vk"); returns the --json result. */
  gen(k: number): { generation: number; hash: string; json: any }
  run(args: string[]): RunResult
}

function fixture(gc = 'gc: {auto: false}'): Fixture {
  const dir = fs.realpathSync(tempDir('viewctl-life-'))
  const view = path.join(dir, 'view')
  const store = path.join(dir, '._view')
  const manifest = path.join(dir, 'env.yaml')
  const run = (args: string[]) => viewctl(args, { cwd: dir })
  return {
    dir,
    view,
    store,
    manifest,
    run,
    gen(k) {
      writeTree(path.join(dir, 'prefixes', `v${k}`), {
        'bin/tool': { content: `#!/bin/sh\necho v${k}\n`, mode: 0o755 },
        [`bin/only-v${k}`]: { content: '#!/bin/sh\n', mode: 0o755 },
        'share/man/man1/tool.1': '.TH tool',
      })
      writeManifest(dir, `view: ./view\npackages: [./prefixes/v${k}]\n${gc}\n`)
      const r = run(['regenerate', manifest, '--json'])
      expect(r.code, r.stderr).toBe(0)
      return { generation: r.json.generation, hash: r.json.hash, json: r.json }
    },
  }
}

/** Rewrite history.jsonl so that record i (0-based) has the time `at(i, record)`. */
function rewriteTimes(store: string, at: (i: number, rec: any) => number): void {
  const file = path.join(store, 'history.jsonl')
  const lines = fs.readFileSync(file, 'utf8').split('\n').filter(Boolean)
  const out = lines.map((line, i) => {
    const rec = JSON.parse(line)
    rec.at = new Date(at(i, rec)).toISOString()
    return JSON.stringify(rec)
  })
  fs.writeFileSync(file, out.join('\n') + '\n')
}

/** Make every switch `ms` older. */
function age(store: string, ms: number): void {
  rewriteTimes(store, (_i, rec) => Date.parse(rec.at) - ms)
}

function treeExists(store: string, hash: string): boolean {
  return fs.existsSync(path.join(store, hash, '.viewctl', 'meta.json'))
}

function storeNames(store: string): string[] {
  return fs.readdirSync(store).sort()
}

function waitForExit(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve()
    else child.once('exit', () => resolve())
  })
}

function spawnSleep(opts: { cwd?: string; env?: NodeJS.ProcessEnv }): ChildProcess {
  const child = spawn('sleep', ['30'], { cwd: opts.cwd, env: opts.env ?? process.env, stdio: 'ignore' })
  onTestFinished(() => {
    child.kill('SIGKILL')
  })
  return child
}

describe('gc: keep and ttl', () => {
  it('keeps the current generation and `keep` spares, removes older ones past the ttl, and reports why', () => {
    const f = fixture()
    const g = [1, 2, 3, 4, 5].map((k) => f.gen(k))
    expect(g.map((x) => x.generation)).toEqual([1, 2, 3, 4, 5])
    age(f.store, 30 * DAY)

    const dry = f.run(['gc', f.view, '--keep', '2', '--ttl', '7d', '--dry-run', '--json'])
    expect(dry.code, dry.stderr).toBe(0)
    expect(dry.json.dryRun).toBe(true)
    expect(dry.json.policy).toEqual({ keep: 2, ttl: '7d', from: 'options' })
    expect(dry.json.removed.map((r: any) => [r.generations, r.hash])).toEqual([
      [[1], g[0]!.hash],
      [[2], g[1]!.hash],
    ])
    for (const r of dry.json.removed) expect(r.bytes).toBeGreaterThan(0)
    expect(dry.json.kept).toEqual([
      { generation: 3, hash: g[2]!.hash, reasons: ['spare (keep 2)'] },
      { generation: 4, hash: g[3]!.hash, reasons: ['spare (keep 2)'] },
      { generation: 5, hash: g[4]!.hash, reasons: ['current'] },
    ])
    // a dry run deletes nothing
    for (const x of g) expect(treeExists(f.store, x.hash)).toBe(true)

    const text = f.run(['gc', f.view, '--keep', '2', '--ttl', '7d', '--dry-run'])
    expect(text.stdout).toContain(`would remove generation 1 (${g[0]!.hash.slice(0, 12)}`)
    expect(text.stdout).toContain(`keep     5 (${g[4]!.hash.slice(0, 12)}): current`)
    expect(text.stdout).toContain('dry run: nothing was deleted')

    const real = f.run(['gc', f.view, '--keep', '2', '--ttl', '7d', '--json'])
    expect(real.code, real.stderr).toBe(0)
    expect(real.json.dryRun).toBe(false)
    expect(real.json.removed).toEqual([
      { generations: [1], hash: g[0]!.hash },
      { generations: [2], hash: g[1]!.hash },
    ])
    expect(storeNames(f.store).filter((n) => /^[0-9a-f]{16,64}$/.test(n))).toEqual([g[2]!.hash, g[3]!.hash, g[4]!.hash].sort())
    expect(storeNames(f.store).filter((n) => n.startsWith('.trash-') || n.startsWith('.staging-'))).toEqual([])

    const list = f.run(['list', f.view, '--json'])
    expect(list.json.generations.map((x: any) => [x.generation, x.onDisk, x.current, x.pinned])).toEqual([
      [1, false, false, false],
      [2, false, false, false],
      [3, true, false, false],
      [4, true, false, false],
      [5, true, true, false],
    ])
    const listText = f.run(['list', f.view])
    expect(listText.stdout.split('\n')[0]).toMatch(/^\s+1\s.*\(collected\)$/)
    expect(listText.stdout.split('\n')[4]).toMatch(/^\s+5\s.*\(current\)$/)

    const again = f.run(['gc', f.view, '--keep', '2', '--ttl', '7d', '--json'])
    expect(again.json.removed).toEqual([])
    expect(again.json.scan).toBe(null) // nothing was eligible: no lock, no /proc scan
  })

  it('measures age from when a generation stopped being current, not from its creation', () => {
    const f = fixture()
    const g1 = f.gen(1)
    const g2 = f.gen(2)
    const now = Date.now()
    // generation 1 was made 10 days ago but stayed current until generation 2 came, 30 minutes ago
    rewriteTimes(f.store, (i) => [now - 10 * DAY, now - 30 * 60_000][i]!)
    const r = f.run(['gc', f.view, '--keep', '0', '--ttl', '1h', '--json'])
    expect(r.code, r.stderr).toBe(0)
    expect(r.json.removed).toEqual([])
    expect(r.json.kept).toHaveLength(2)
    expect(r.json.kept[0].generation).toBe(1)
    expect(r.json.kept[0].reasons).toHaveLength(1)
    expect(r.json.kept[0].reasons[0]).toMatch(/^not current for 30m( \d+s)?, under the ttl 1h$/)
    expect(r.json.kept[1]).toEqual({ generation: 2, hash: g2.hash, reasons: ['current'] })

    const shorter = f.run(['gc', f.view, '--keep', '0', '--ttl', '20m', '--json'])
    expect(shorter.json.removed).toEqual([{ generations: [1], hash: g1.hash }])
  })

  it('uses the switch away from a tree: a generation rolled back to is young again', () => {
    const f = fixture()
    const g1 = f.gen(1)
    const g2 = f.gen(2)
    const g3 = f.gen(3)
    age(f.store, 2 * DAY)
    // back to 1 now (3 stops being current now), then forward to 4 (1 stops being current now)
    expect(f.run(['rollback', f.view, '--to', '1']).code).toBe(0)
    const g4 = f.gen(4)
    expect(g4.generation).toBe(4)
    const r = f.run(['gc', f.view, '--keep', '0', '--ttl', '1d', '--json'])
    expect(r.code, r.stderr).toBe(0)
    // 2 stopped being current two days ago, when 3 came
    expect(r.json.removed).toEqual([{ generations: [2], hash: g2.hash }])
    expect(r.json.kept.map((k: any) => [k.generation, k.hash])).toEqual([
      [1, g1.hash],
      [3, g3.hash],
      [4, g4.hash],
    ])
    for (const k of r.json.kept.slice(0, 2)) expect(k.reasons).toEqual([expect.stringMatching(/^not current for \d+(ms|s), under the ttl 1d$/)])
    expect(r.json.kept[2].reasons).toEqual(['current'])
  })

  it('takes keep and ttl from the settings recorded with the current generation', () => {
    const f = fixture('gc: {auto: false, keep: 1, ttl: 2d}')
    const g = [1, 2, 3, 4].map((k) => f.gen(k))
    age(f.store, 3 * DAY)
    const r = f.run(['gc', f.view, '--json'])
    expect(r.code, r.stderr).toBe(0)
    expect(r.json.policy).toEqual({ keep: 1, ttl: '2d', from: 'recorded' })
    expect(r.json.removed.map((x: any) => x.hash)).toEqual([g[0]!.hash, g[1]!.hash])
    expect(r.json.kept.map((k: any) => [k.generation, k.reasons])).toEqual([
      [3, ['spare (keep 1)']],
      [4, ['current']],
    ])
  })

  it('refuses a ttl under 5 minutes unless --force; --dry-run is never refused', () => {
    const f = fixture()
    const g1 = f.gen(1)
    f.gen(2)
    const refused = f.run(['gc', f.view, '--keep', '0', '--ttl', '4m', '--json'])
    expect(refused.code).toBe(1)
    expect(refused.json.error.code).toBe('TTL_TOO_SHORT')
    expect(refused.stderr).toContain('under 5 minutes')
    expect(treeExists(f.store, g1.hash)).toBe(true)

    const zero = f.run(['gc', f.view, '--keep', '0', '--ttl', '0'])
    expect(zero.code).toBe(1)
    expect(treeExists(f.store, g1.hash)).toBe(true)

    const dry = f.run(['gc', f.view, '--keep', '0', '--ttl', '0', '--dry-run', '--json'])
    expect(dry.code, dry.stderr).toBe(0)
    expect(dry.json.removed.map((x: any) => x.generations)).toEqual([[1]])
    expect(treeExists(f.store, g1.hash)).toBe(true)

    const forced = f.run(['gc', f.view, '--keep', '0', '--ttl', '0', '--force', '--json'])
    expect(forced.code, forced.stderr).toBe(0)
    expect(forced.json.removed).toEqual([{ generations: [1], hash: g1.hash }])
    expect(treeExists(f.store, g1.hash)).toBe(false)
    expect(fs.existsSync(path.join(f.store, g1.hash))).toBe(false)
  })

  it('rejects a bad --keep or --ttl as usage errors', () => {
    const f = fixture()
    f.gen(1)
    const keep = f.run(['gc', f.view, '--keep', '-1', '--json'])
    expect(keep.code).toBe(2)
    expect(keep.json.error.code).toBe('USAGE')
    const ttl = f.run(['gc', f.view, '--ttl', '1d12h', '--json'])
    expect(ttl.code).toBe(2)
    expect(ttl.json.error.code).toBe('USAGE')
  })
})

describe('gc: shared trees and untracked directories', () => {
  it('keeps a tree as long as any generation using it is kept, and counts a spare tree once', () => {
    const f = fixture()
    const a = f.gen(1) // 1: A
    const b = f.gen(2) // 2: B
    const c = f.gen(3) // 3: C
    const b2 = f.gen(2) // 4: B again (tree reused)
    const a2 = f.gen(1) // 5: A again, current
    expect([a.generation, b.generation, c.generation, b2.generation, a2.generation]).toEqual([1, 2, 3, 4, 5])
    expect(b2.hash).toBe(b.hash)
    expect(b2.json.built).toBe(false)
    expect(a2.hash).toBe(a.hash)
    age(f.store, 30 * DAY)

    const r = f.run(['gc', f.view, '--keep', '1', '--ttl', '1d', '--json'])
    expect(r.code, r.stderr).toBe(0)
    expect(r.json.removed).toEqual([{ generations: [3], hash: c.hash }])
    expect(r.json.kept).toEqual([
      { generation: 1, hash: a.hash, reasons: ['shares its tree with the current generation 5'] },
      { generation: 2, hash: b.hash, reasons: ['spare (shares its tree with spare generation 4)'] },
      { generation: 4, hash: b.hash, reasons: ['spare (keep 1)'] },
      { generation: 5, hash: a.hash, reasons: ['current'] },
    ])

    // keep 0: B's two generations go together, as one tree
    const r0 = f.run(['gc', f.view, '--keep', '0', '--ttl', '1d', '--json'])
    expect(r0.json.removed).toEqual([{ generations: [2, 4], hash: b.hash }])
    expect(treeExists(f.store, b.hash)).toBe(false)
    expect(treeExists(f.store, a.hash)).toBe(true)
  })

  it('leaves hash directories that no history record names alone, and says so', () => {
    const f = fixture()
    f.gen(1)
    f.gen(2)
    age(f.store, 30 * DAY)
    const stray = '0123456789abcdef0123456789abcdef'
    writeTree(path.join(f.store, stray), { 'bin/x': 'x', '.viewctl/meta.json': '{}' })
    const dry = f.run(['gc', f.view, '--keep', '0', '--ttl', '1d', '--dry-run', '--json'])
    expect(dry.json.untracked).toEqual([{ hash: stray, note: 'no history record names this tree; gc leaves it alone (remove it by hand if nothing uses it)' }])
    const text = f.run(['gc', f.view, '--keep', '0', '--ttl', '1d', '--dry-run'])
    expect(text.stdout).toContain(`left alone: ${stray}`)
    const real = f.run(['gc', f.view, '--keep', '0', '--ttl', '1d', '--json'])
    expect(real.json.removed.map((x: any) => x.generations)).toEqual([[1]])
    expect(fs.existsSync(path.join(f.store, stray, 'bin', 'x'))).toBe(true)
  })
})

describe('pin and unpin', () => {
  it('protects a pinned generation, shows it in list, and keeps pins out of history.jsonl', () => {
    const f = fixture()
    const g = [1, 2, 3, 4].map((k) => f.gen(k))
    age(f.store, 30 * DAY)
    const history = fs.readFileSync(path.join(f.store, 'history.jsonl'), 'utf8')

    const p = f.run(['pin', f.view, '2', '--json'])
    expect(p.code, p.stderr).toBe(0)
    expect(p.json).toEqual({ view: f.view, generation: 2, hash: g[1]!.hash, pinned: true, changed: true, dryRun: false, pins: [2] })
    expect(fs.readFileSync(path.join(f.store, 'history.jsonl'), 'utf8')).toBe(history)
    const pins = JSON.parse(fs.readFileSync(path.join(f.store, 'pins.json'), 'utf8'))
    expect(pins.pins.map((x: any) => [x.generation, x.hash])).toEqual([[2, g[1]!.hash]])
    expect(storeNames(f.store).filter((n) => n.startsWith('.pins.tmp-'))).toEqual([])

    const again = f.run(['pin', f.view, '2'])
    expect(again.code).toBe(0)
    expect(again.stdout).toContain('was already pinned')

    const list = f.run(['list', f.view, '--json'])
    expect(list.json.generations.map((x: any) => x.pinned)).toEqual([false, true, false, false])
    const listText = f.run(['list', f.view]).stdout.split('\n')
    expect(listText[1]).toMatch(/^\s+2\s.*\(pinned\)$/)
    expect(listText[0]).not.toContain('(pinned)')

    // pinned 2 does not count as a spare: keep 1 keeps 3, and 1 goes
    const r = f.run(['gc', f.view, '--keep', '1', '--ttl', '1d', '--json'])
    expect(r.code, r.stderr).toBe(0)
    expect(r.json.removed).toEqual([{ generations: [1], hash: g[0]!.hash }])
    expect(r.json.kept).toEqual([
      { generation: 2, hash: g[1]!.hash, reasons: ['pinned'] },
      { generation: 3, hash: g[2]!.hash, reasons: ['spare (keep 1)'] },
      { generation: 4, hash: g[3]!.hash, reasons: ['current'] },
    ])

    const u = f.run(['unpin', f.view, '2', '--json'])
    expect(u.code, u.stderr).toBe(0)
    expect(u.json).toMatchObject({ generation: 2, pinned: false, changed: true, pins: [] })
    const r2 = f.run(['gc', f.view, '--keep', '1', '--ttl', '1d', '--json'])
    expect(r2.json.removed).toEqual([{ generations: [2], hash: g[1]!.hash }])
    expect(fs.readFileSync(path.join(f.store, 'history.jsonl'), 'utf8')).toBe(history)
  })

  it('refuses to pin a collected or unknown generation', () => {
    const f = fixture()
    f.gen(1)
    f.gen(2)
    expect(f.run(['gc', f.view, '--keep', '0', '--ttl', '0', '--force']).code).toBe(0)
    const collected = f.run(['pin', f.view, '1', '--json'])
    expect(collected.code).toBe(1)
    expect(collected.json.error.code).toBe('GENERATION_COLLECTED')
    expect(collected.stderr).toContain('garbage-collected')
    const unknown = f.run(['pin', f.view, '9', '--json'])
    expect(unknown.code).toBe(2)
    expect(unknown.json.error.code).toBe('GENERATION_NOT_FOUND')
    expect(fs.existsSync(path.join(f.store, 'pins.json'))).toBe(false)
  })

  it('pins by hash prefix too', () => {
    const f = fixture()
    const g1 = f.gen(1)
    f.gen(2)
    const prefix = g1.hash.slice(0, 10)
    const p = f.run(['pin', f.view, /^\d+$/.test(prefix) ? g1.hash : prefix, '--json'])
    expect(p.code, p.stderr).toBe(0)
    expect(p.json.generation).toBe(1)
  })
})

describe('rollback to a collected generation', () => {
  it('exits 1 saying it was collected, and leaves the view alone', () => {
    const f = fixture()
    f.gen(1)
    const g2 = f.gen(2)
    expect(f.run(['gc', f.view, '--keep', '0', '--ttl', '0', '--force']).code).toBe(0)
    const r = f.run(['rollback', f.view, '--to', '1', '--json'])
    expect(r.code).toBe(1)
    expect(r.json.error.code).toBe('GENERATION_COLLECTED')
    expect(r.stderr).toContain('collected')
    expect(fs.readlinkSync(f.view)).toBe(`._view/${g2.hash}`)
    const plain = f.run(['rollback', f.view])
    expect(plain.code).toBe(1)
    expect(plain.stderr).toContain('no earlier generation on disk')
  })
})

describe('auto-gc after regenerate', () => {
  it('collects with the manifest settings once the lock is released, and reports it in --json', () => {
    const f = fixture('gc: {auto: true, keep: 0, ttl: 5m}')
    const g1 = f.gen(1)
    expect(g1.json.gc.removed).toEqual([])
    const g2 = f.gen(2)
    // 1 stopped being current just now: too young
    expect(g2.json.gc.removed).toEqual([])
    expect(treeExists(f.store, g1.hash)).toBe(true)
    age(f.store, HOUR)
    const g3 = f.gen(3)
    // 1 and 2 are an hour old now... but 2 stopped being current only when 3 came, just now
    expect(g3.json.gc.removed).toEqual([{ generations: [1], hash: g1.hash }])
    expect(g3.json.warnings).toEqual([])
    expect(treeExists(f.store, g1.hash)).toBe(false)
    expect(treeExists(f.store, g2.hash)).toBe(true)
  })

  it('does not run when gc.auto is false, or when nothing changed', () => {
    const f = fixture('gc: {auto: false, keep: 0, ttl: 5m}')
    const g1 = f.gen(1)
    f.gen(2)
    age(f.store, HOUR)
    const g3 = f.gen(3)
    expect(g3.json.gc).toBeUndefined()
    expect(treeExists(f.store, g1.hash)).toBe(true)
  })

  it('turns a gc failure into a warning: the regenerate still succeeds', () => {
    const f = fixture('gc: {auto: true, keep: 0, ttl: 1m}')
    f.gen(1)
    const g2 = f.gen(2)
    expect(g2.generation).toBe(2)
    expect(g2.json.gc).toBeUndefined()
    expect(g2.json.warnings).toHaveLength(1)
    expect(g2.json.warnings[0]).toMatch(/^automatic gc did not run: gc ttl 1m .* is under 5 minutes/)
    expect(fs.readlinkSync(f.view)).toBe(`._view/${g2.hash}`)
  })
})

describe('in use on this host (/proc)', () => {
  it('keeps a generation a process has its working directory in, and collects it once the process is gone', async () => {
    const f = fixture()
    const g1 = f.gen(1)
    f.gen(2)
    age(f.store, DAY)
    const canonical = fs.realpathSync(path.join(f.store, g1.hash))
    const sleeper = spawnSleep({ cwd: canonical })
    await new Promise((r) => setTimeout(r, 100))

    const r = f.run(['gc', f.view, '--keep', '0', '--ttl', '1h', '--json'])
    expect(r.code, r.stderr).toBe(0)
    expect(r.json.removed).toEqual([])
    expect(r.json.kept[0]).toEqual({ generation: 1, hash: g1.hash, reasons: [`in use on this host: pid ${sleeper.pid} (sleep) has its working directory there`] })
    expect(r.json.scan.scanned).toBeGreaterThan(1)
    expect(treeExists(f.store, g1.hash)).toBe(true)

    sleeper.kill('SIGKILL')
    await waitForExit(sleeper)
    const after = f.run(['gc', f.view, '--keep', '0', '--ttl', '1h', '--json'])
    expect(after.json.removed).toEqual([{ generations: [1], hash: g1.hash }])
    expect(treeExists(f.store, g1.hash)).toBe(false)
  })

  it('sees a generation named in a process environment, and an open file inside it', async () => {
    const f = fixture()
    const g1 = f.gen(1)
    const g2 = f.gen(2)
    const store = fs.realpathSync(f.store)
    const byEnv = spawnSleep({ env: { ...process.env, MY_TOOLS: `/x:${store}/${g1.hash}/bin:/y` } })
    const byFd = spawn('sh', ['-c', `exec 7<"${store}/${g2.hash}/.viewctl/meta.json"; exec sleep 30`], { stdio: 'ignore' })
    onTestFinished(() => {
      byFd.kill('SIGKILL')
    })
    await new Promise((r) => setTimeout(r, 150))
    const scan = findProcessUsers([store], [g1.hash, g2.hash, 'f'.repeat(32)])
    expect(scan.available).toBe(true)
    expect(scan.uses.get(g1.hash)).toEqual([{ pid: byEnv.pid, command: 'sleep', how: 'environ' }])
    expect(scan.uses.get(g2.hash)).toEqual([{ pid: byFd.pid, command: 'sleep', how: 'fd' }])
    expect(scan.uses.has('f'.repeat(32))).toBe(false)
    // a hash that is only a prefix of the one named does not match
    expect(findProcessUsers([store], [g1.hash.slice(0, 20)]).uses.size).toBe(0)
  })
})

describe('in use on this host, seen by another user (/proc)', () => {
  const isRoot = process.getuid?.() === 0
  const install = publicInstall() // nobody imports the scan from a world-readable copy: the checkout may be in a 0700 directory
  it.runIf(isRoot)("counts the processes it may not inspect, finds its user's own, and cannot see the others'", async () => {
    const dir = tempDir('viewctl-life-')
    fs.chmodSync(dir, 0o755)
    const hash = 'cd'.repeat(16)
    const tree = path.join(dir, hash)
    fs.mkdirSync(path.join(tree, 'bin'), { recursive: true, mode: 0o755 })
    const nobody = { uid: 65534, gid: 65534 }
    const own = spawn('sleep', ['30'], { cwd: tree, stdio: 'ignore', ...nobody })
    spawnSleep({ cwd: tree }) // root's: not for nobody to inspect, so not found
    onTestFinished(() => {
      own.kill('SIGKILL')
    })
    await new Promise((r) => setTimeout(r, 150))
    const script = `const { findProcessUsers } = await import(${JSON.stringify(path.join(install().dist, 'store', 'guard', 'readers.js'))})
const s = findProcessUsers([${JSON.stringify(dir)}], [${JSON.stringify(hash)}])
console.log(JSON.stringify({ scanned: s.scanned, unreadable: s.unreadable, uses: s.uses.get(${JSON.stringify(hash)}) ?? [] }))`
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { cwd: dir, encoding: 'utf8', ...nobody })
    expect(r.status, r.stderr).toBe(0)
    const scan = JSON.parse(r.stdout)
    expect(scan.uses).toEqual([{ pid: own.pid, command: 'sleep', how: 'cwd' }])
    expect(scan.unreadable).toBeGreaterThan(0) // at least the root sleeper and this test's runner
    expect(scan.unreadable).toBeLessThan(scan.scanned)
  })
})

describe('gc: faults (through the fs seam)', () => {
  it('a tree that cannot be renamed to trash stays, with its reason; the others still go', () => {
    const f = fixture()
    const g = [1, 2, 3].map((k) => f.gen(k))
    age(f.store, DAY)
    const r = viewctl(['gc', f.view, '--keep', '0', '--ttl', '1h', '--json'], { cwd: f.dir, env: { VIEWCTL_TEST_FAULTS: 'rename:1:EACCES' } })
    expect(r.code, r.stderr).toBe(0)
    expect(r.json.removed).toEqual([{ generations: [2], hash: g[1]!.hash }])
    expect(r.json.kept[0].generation).toBe(1)
    expect(r.json.kept[0].reasons).toEqual([expect.stringMatching(/^could not be retired: permission denied at .*\.trash-/)])
    expect(r.json.warnings).toHaveLength(1)
    expect(r.stderr).toContain(`warning: generation tree ${g[0]!.hash} stays: permission denied`)
    expect(treeExists(f.store, g[0]!.hash)).toBe(true)
    expect(treeExists(f.store, g[1]!.hash)).toBe(false)
  })

  it('a failed removal leaves only trash, out of reach, which the next writer clears', () => {
    const f = fixture()
    const g1 = f.gen(1)
    f.gen(2)
    age(f.store, DAY)
    const r = viewctl(['gc', f.view, '--keep', '0', '--ttl', '1h', '--json'], { cwd: f.dir, env: { VIEWCTL_TEST_FAULTS: 'rm:1:EIO' } })
    expect(r.code, r.stderr).toBe(0)
    expect(r.json.removed).toEqual([{ generations: [1], hash: g1.hash }])
    expect(r.json.warnings).toEqual([expect.stringMatching(/the next writer removes it$/)])
    expect(fs.existsSync(path.join(f.store, g1.hash))).toBe(false)
    const trash = storeNames(f.store).filter((n) => n.startsWith('.trash-'))
    expect(trash).toHaveLength(1)
    expect(trash[0]).toMatch(new RegExp(`^\\.trash-${g1.hash}-\\d+-[0-9a-f]{8}$`))
    expect(f.run(['list', f.view, '--json']).json.generations[0].onDisk).toBe(false)
    // any writer clears it: here a pin
    expect(f.run(['pin', f.view, '2']).code).toBe(0)
    expect(storeNames(f.store).filter((n) => n.startsWith('.trash-'))).toEqual([])
  })
})
