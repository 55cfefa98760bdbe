/**
 * The commands users of Nix and Spack reach for: switch, --dry-run on
 * rollback/switch/pin/unpin, list --history, gc --generation, destroy; the
 * module tree the writers keep up to date; and the help fixes. Every refusal
 * is checked for its exit code and for a view left as it was.
 */
import fs from 'node:fs'
import path from 'node:path'
import { spawn, type ChildProcess } from 'node:child_process'
import { describe, expect, it, onTestFinished } from 'vitest'
import { snapshot, tempDir, viewctl, viewctlAsync, writeManifest, writeTree } from './helpers.js'
import { findGeneration, MIN_DIGIT_PREFIX } from '../src/ops/rollback.js'
import { layoutFor } from '../src/store/layout.js'
import type { ViewState } from '../src/store/journal/state.js'

interface Fixture {
  base: string
  view: string
  store: string
  /** Manifests for tree A (one file) and tree B (another). */
  a: string
  b: string
}

function fixture(extra = ''): Fixture {
  const base = fs.realpathSync(tempDir('viewctl-cmd-'))
  writeTree(path.join(base, 'pa'), { 'bin/a': { content: '#!/bin/sh\necho a\n', mode: 0o755 } })
  writeTree(path.join(base, 'pb'), { 'bin/b': { content: '#!/bin/sh\necho b\n', mode: 0o755 } })
  const yaml = (p: string) => `view: ./hpc\npackages: [${JSON.stringify(path.join(base, p))}]\ngc: {auto: false}\n${extra}`
  return { base, view: path.join(base, 'hpc'), store: path.join(base, '._hpc'), a: writeManifest(base, yaml('pa'), 'a.yaml'), b: writeManifest(base, yaml('pb'), 'b.yaml') }
}

function regen(manifest: string): any {
  const r = viewctl(['regenerate', manifest, '--json'])
  expect(r.code, r.stderr).toBe(0)
  return r.json
}

/** What a refusal must leave alone: the link, the trees, the journal and the pins. */
function state(f: Fixture) {
  const read = (p: string) => (fs.existsSync(p) ? fs.readFileSync(p, 'utf8') : null)
  return { ...snapshot(f.view), history: read(path.join(f.store, 'history.jsonl')), pins: read(path.join(f.store, 'pins.json')) }
}

function expectRefusal(f: Fixture, args: string[], exit: number, code: string): string {
  const before = state(f)
  const r = viewctl([...args, '--json'])
  expect(r.code, r.stderr).toBe(exit)
  expect(r.json.error.code).toBe(code)
  expect(state(f)).toEqual(before)
  return r.json.error.message
}

/** A process whose working directory is the given tree, stopped when the test ends. */
function userOf(dir: string): ChildProcess {
  const child = spawn('sleep', ['60'], { cwd: dir, stdio: 'ignore' })
  onTestFinished(() => {
    child.kill('SIGKILL')
  })
  return child
}

/** `viewctl exec` holding the lease of the current generation, stopped when the test ends. */
async function execLease(view: string): Promise<ChildProcess> {
  const child = viewctlAsync(['exec', view, '--', 'sh', '-c', 'echo started; exec sleep 60'])
  onTestFinished(() => {
    child.kill('SIGKILL')
  })
  await new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (d: Buffer) => d.toString().includes('started') && resolve())
    child.once('exit', () => reject(new Error('exec ended early')))
  })
  return child
}

describe('naming a generation by number or by hash prefix', () => {
  // generation 1's hash starts with digits only, as one hash in 200 does for its first ten characters
  const hashes = ['3528740304' + '3e4b6d8ac21f8cd6ce15dc', '7f' + '0'.repeat(30)]
  const state = (): ViewState => {
    const view = path.join(tempDir('viewctl-cmd-'), 'hpc')
    const records = hashes.map((hash, k) => ({ generation: k + 1, hash, action: 'regenerate', at: '2026-12-07T00:00:00.000Z' })) as unknown as ViewState['records']
    return { layout: layoutFor(view), kind: 'managed', target: null, hash: hashes[1]!, records, corrupt: [], current: null }
  }

  it('digits are a generation number first, and a hash prefix of MIN_DIGIT_PREFIX digits or more when no generation has that number', () => {
    const s = state()
    expect(findGeneration(s, '1').hash).toBe(hashes[0])
    expect(findGeneration(s, '2').hash).toBe(hashes[1])
    expect(findGeneration(s, hashes[0]!.slice(0, 10)).generation).toBe(1)
    expect(findGeneration(s, hashes[0]!.slice(0, MIN_DIGIT_PREFIX)).generation).toBe(1)
    // fewer digits name a generation number only
    expect(() => findGeneration(s, hashes[0]!.slice(0, MIN_DIGIT_PREFIX - 1))).toThrow(/has no generation 352874$/)
    expect(() => findGeneration(s, '9999999')).toThrow(/has no generation 9999999, and none whose hash starts with 9999999/)
  })
})

describe('switch and --dry-run', () => {
  it('switch goes to any generation on disk, later or earlier, and records a switch', () => {
    const f = fixture()
    const g1 = regen(f.a)
    const g2 = regen(f.b)
    const back = viewctl(['switch', f.view, '1', '--json'])
    expect(back.code, back.stderr).toBe(0)
    expect(back.json).toMatchObject({ from: 2, to: 1, hash: g1.hash, changed: true, dryRun: false })
    expect(fs.readlinkSync(f.view)).toBe(`._hpc/${g1.hash}`)
    const forward = viewctl(['switch', f.view, g2.hash.slice(0, 10), '--json'])
    expect(forward.json).toMatchObject({ from: 1, to: 2, hash: g2.hash })
    expect(fs.readlinkSync(f.view)).toBe(`._hpc/${g2.hash}`)
    const actions = viewctl(['list', f.view, '--history', '--json']).json.history.map((e: any) => [e.action, e.generation, e.from])
    expect(actions).toEqual([
      ['regenerate', 1, null],
      ['regenerate', 2, null],
      ['switch', 1, 2],
      ['switch', 2, 1],
    ])
  })

  it('--dry-run on rollback, switch, pin and unpin says what would change and changes nothing', () => {
    const f = fixture()
    const g1 = regen(f.a)
    regen(f.b)
    expect(viewctl(['pin', f.view, '1']).code).toBe(0)
    const before = state(f)
    const rb = viewctl(['rollback', f.view, '--dry-run', '--json'])
    expect(rb.code, rb.stderr).toBe(0)
    expect(rb.json).toMatchObject({ from: 2, to: 1, hash: g1.hash, changed: false, dryRun: true })
    expect(viewctl(['rollback', f.view, '--dry-run']).stdout).toContain('would switch')
    expect(viewctl(['switch', f.view, '1', '--dry-run', '--json']).json).toMatchObject({ to: 1, dryRun: true })
    const pin = viewctl(['pin', f.view, '2', '--dry-run', '--json'])
    expect(pin.json).toMatchObject({ generation: 2, pinned: true, changed: true, dryRun: true, pins: [1, 2] })
    expect(viewctl(['unpin', f.view, '1', '--dry-run', '--json']).json).toMatchObject({ generation: 1, changed: true, dryRun: true, pins: [] })
    expect(state(f)).toEqual(before)
  })

  it('refusals: an unknown generation (2), a collected one (1), no earlier one (1); the view unchanged', () => {
    const f = fixture()
    regen(f.a)
    regen(f.b)
    expectRefusal(f, ['switch', f.view, '9'], 2, 'GENERATION_NOT_FOUND')
    expectRefusal(f, ['switch', f.view, '9', '--dry-run'], 2, 'GENERATION_NOT_FOUND')
    expect(viewctl(['gc', f.view, '--generation', '1']).code).toBe(0)
    expectRefusal(f, ['switch', f.view, '1'], 1, 'GENERATION_COLLECTED')
    expectRefusal(f, ['rollback', f.view], 1, 'NO_ROLLBACK_TARGET')
    expectRefusal(f, ['rollback', f.view, '--dry-run'], 1, 'NO_ROLLBACK_TARGET')
    // the tree the view already shows: nothing to do, nothing recorded
    const before = state(f)
    const same = viewctl(['switch', f.view, '2', '--json'])
    expect(same.code).toBe(0)
    expect(same.json.changed).toBe(false)
    expect(state(f)).toEqual(before)
  })
})

describe('list --history', () => {
  it('shows every switch, oldest first, rollbacks included, with the current one marked', () => {
    const f = fixture()
    regen(f.a)
    regen(f.b)
    expect(viewctl(['rollback', f.view]).code).toBe(0)
    const h = viewctl(['list', f.view, '--history', '--json'])
    expect(h.code, h.stderr).toBe(0)
    expect(h.json.current).toBe(1)
    expect(h.json.history.map((e: any) => [e.action, e.generation, e.current])).toEqual([
      ['regenerate', 1, false],
      ['regenerate', 2, false],
      ['rollback', 1, true],
    ])
    const text = viewctl(['list', f.view, '--history']).stdout.trim().split('\n')
    expect(text).toHaveLength(3)
    expect(text[2]).toMatch(/rollback\s+1 .*\(from 2\)\s+\(current\)$/)
  })
})

describe('gc --generation', () => {
  it('removes the one generation named, whatever keep and ttl say', () => {
    const f = fixture()
    const g1 = regen(f.a)
    regen(f.b)
    const dry = viewctl(['gc', f.view, '--generation', '1', '--dry-run', '--json'])
    expect(dry.json.removed.map((t: any) => t.hash)).toEqual([g1.hash])
    expect(fs.existsSync(path.join(f.store, g1.hash))).toBe(true)
    const r = viewctl(['gc', f.view, '--generation', '1', '--json'])
    expect(r.code, r.stderr).toBe(0)
    expect(r.json.removed).toEqual([{ generations: [1], hash: g1.hash }])
    expect(fs.existsSync(path.join(f.store, g1.hash))).toBe(false)
  })

  it('refuses the current generation, a pinned one, one a process uses and one an exec holds (exit 1), an unknown one (exit 2)', async () => {
    const f = fixture()
    const g1 = regen(f.a)
    regen(f.b)
    expect(expectRefusal(f, ['gc', f.view, '--generation', '2'], 1, 'GENERATION_CURRENT')).toContain('is the current generation')
    expectRefusal(f, ['gc', f.view, '--generation', '7'], 2, 'GENERATION_NOT_FOUND')
    expect(viewctl(['pin', f.view, '1']).code).toBe(0)
    expectRefusal(f, ['gc', f.view, '--generation', '1'], 1, 'GENERATION_PINNED')
    expect(viewctl(['unpin', f.view, '1']).code).toBe(0)
    const user = userOf(path.join(f.store, g1.hash))
    await new Promise((r) => setTimeout(r, 100))
    expect(expectRefusal(f, ['gc', f.view, '--generation', '1'], 1, 'GENERATION_IN_USE')).toContain(`pid ${user.pid}`)
    expectRefusal(f, ['gc', f.view, '--generation', '1', '--dry-run'], 1, 'GENERATION_IN_USE')
    user.kill('SIGKILL')
    await new Promise((r) => user.once('exit', r))
    // an exec lease on generation 1 (made current for the exec, then left)
    expect(viewctl(['switch', f.view, '1']).code).toBe(0)
    await execLease(f.view)
    expect(viewctl(['switch', f.view, '2']).code).toBe(0)
    // the exec's command is seen both ways on this host: by its lease and by the /proc scan
    expectRefusal(f, ['gc', f.view, '--generation', '1'], 1, 'GENERATION_IN_USE')
  })

  it('a tree that another generation on disk still has stays', () => {
    const f = fixture()
    const g1 = regen(f.a)
    regen(f.b)
    regen(f.a) // generation 3 shares generation 1's tree
    regen(f.b) // generation 4 is current
    const r = viewctl(['gc', f.view, '--generation', '1', '--json'])
    expect(r.code, r.stderr).toBe(0)
    expect(r.json.removed).toEqual([])
    expect(r.json.kept.find((k: any) => k.generation === 1).reasons.join()).toContain('shares its tree with generation 3')
    expect(fs.existsSync(path.join(f.store, g1.hash))).toBe(true)
    // and one that shares the current tree is the current one's
    expect(expectRefusal(f, ['gc', f.view, '--generation', '2'], 1, 'GENERATION_CURRENT')).toContain('shares its tree with the current generation 4')
  })
})

describe('destroy', () => {
  it('without --yes says what would go and removes nothing (exit 2); with it removes the link, the store and the module files', () => {
    const f = fixture(`modules: {dir: ./modulefiles}\n`)
    regen(f.a)
    regen(f.b)
    const files = path.join(f.base, 'modulefiles', 'hpc')
    expect(fs.readdirSync(files).sort()).toEqual(['.modulerc', 'current.lua'])
    fs.writeFileSync(path.join(files, 'README'), 'the admin keeps notes here\n')
    const message = expectRefusal(f, ['destroy', f.view], 2, 'NOT_CONFIRMED')
    expect(message).toContain(`the view link ${f.view}`)
    expect(message).toContain('2 generation trees')
    const r = viewctl(['destroy', f.view, '--yes', '--json'])
    expect(r.code, r.stderr).toBe(0)
    expect(r.json).toMatchObject({ linkRemoved: true, trees: expect.any(Array) })
    expect(fs.existsSync(f.view)).toBe(false)
    expect(fs.existsSync(f.store)).toBe(false)
    expect(fs.readdirSync(f.base).filter((n) => n.startsWith('.hpc.'))).toEqual([])
    // what viewctl did not write stays
    expect(fs.readdirSync(files)).toEqual(['README'])
    expectRefusal(f, ['destroy', f.view, '--yes'], 2, 'NOT_A_VIEW')
  })

  it('refuses while a process or an exec uses any generation (exit 1), and a path that is no view (exit 2)', async () => {
    const f = fixture()
    const g1 = regen(f.a)
    regen(f.b)
    const user = userOf(path.join(f.store, g1.hash))
    await new Promise((r) => setTimeout(r, 100))
    expectRefusal(f, ['destroy', f.view, '--yes'], 1, 'GENERATION_IN_USE')
    user.kill('SIGKILL')
    await new Promise((r) => user.once('exit', r))
    await execLease(f.view)
    expectRefusal(f, ['destroy', f.view, '--yes'], 1, 'GENERATION_IN_USE')
    const plain = path.join(f.base, 'plain')
    fs.mkdirSync(plain)
    const r = viewctl(['destroy', plain, '--yes', '--json'])
    expect(r.code).toBe(2)
    expect(r.json.error.code).toBe('NOT_A_VIEW')
    expect(fs.existsSync(plain)).toBe(true)
  })

  it('finishes a destroy that died after the link went: the store is removed by the next one', () => {
    const f = fixture()
    regen(f.a)
    fs.unlinkSync(f.view) // as a destroy killed right after its first step leaves it
    const r = viewctl(['destroy', f.view, '--yes', '--json'])
    expect(r.code, r.stderr).toBe(0)
    expect(r.json.linkRemoved).toBe(false)
    expect(fs.existsSync(f.store)).toBe(false)
  })
})

describe('the module tree the manifest names', () => {
  it('is written by regenerate, follows rollback and gc, and a change of modules: alone is recorded', () => {
    const f = fixture(`modules: {dir: ./modulefiles, generations: true, format: tcl}\n`)
    const files = path.join(f.base, 'modulefiles', 'hpc')
    const g1 = regen(f.a)
    expect(fs.readdirSync(files).sort()).toEqual(['.modulerc', '1', 'current'])
    regen(f.b)
    expect(fs.readdirSync(files).sort()).toEqual(['.modulerc', '1', '2', 'current'])
    const showed = () => /view\\? showed\\? generation\\? (\d+)/.exec(fs.readFileSync(path.join(files, 'current'), 'utf8'))?.[1]
    expect(showed()).toBe('2')
    expect(viewctl(['rollback', f.view]).code).toBe(0)
    expect(showed()).toBe('1')
    expect(viewctl(['switch', f.view, '2']).code).toBe(0)
    expect(viewctl(['gc', f.view, '--generation', '1']).code).toBe(0)
    expect(fs.readdirSync(files).sort()).toEqual(['.modulerc', '2', 'current'])
    // modules: changed, the tree did not: a new generation that shares the tree records it
    fs.writeFileSync(f.b, fs.readFileSync(f.b, 'utf8').replace('format: tcl', 'format: lua'))
    const r = regen(f.b)
    expect(r).toMatchObject({ changed: true, built: false, generation: 3 })
    expect(fs.readdirSync(files).sort()).toEqual(['.modulerc', '2.lua', '3.lua', 'current.lua'])
    expect(regen(f.b)).toMatchObject({ changed: false, generation: 3 })
    expect(g1.hash).not.toBe(r.hash)
  })

  it('modules: is checked like the rest of the manifest: a bad name or an unknown key is exit 2, before any write', () => {
    for (const [bad, says] of [
      ['modules: {dir: ./m, name: "a b"}', 'modules.name'],
      ['modules: {dir: ./m, format: csh}', 'modules.format'],
      ['modules: {dir: ./m, generation: true}', 'generation: unknown key'],
      ['modules: {name: x}', 'dir'],
    ]) {
      const f = fixture(`${bad}\n`)
      const r = viewctl(['regenerate', f.a, '--json'])
      expect(r.code, bad).toBe(2)
      expect(r.json.error.code).toBe('MANIFEST_INVALID')
      expect(r.json.error.message).toContain(says)
      expect(fs.existsSync(f.view)).toBe(false)
      expect(fs.existsSync(path.join(f.base, 'm'))).toBe(false)
    }
  })

  it('a tree that cannot be written is a warning: the switch stands', () => {
    const f = fixture(`modules: {dir: ./modulefiles}\n`)
    fs.mkdirSync(path.join(f.base, 'modulefiles'))
    fs.writeFileSync(path.join(f.base, 'modulefiles', 'hpc'), 'a file where the module directory goes\n')
    const r = viewctl(['regenerate', f.a, '--json'])
    expect(r.code, r.stderr).toBe(0)
    expect(r.json.warnings.join('\n')).toContain('the module tree')
    expect(fs.readlinkSync(f.view)).toBe(`._hpc/${r.json.hash}`)
  })
})

describe('help', () => {
  it('names viewctl where it meant $0, shows exec -- <command>, and lists a command\'s own options before the global ones', () => {
    const activate = viewctl(['activate', '--help'])
    expect(activate.code).toBe(0)
    expect(activate.stdout).not.toContain('$0')
    expect(activate.stdout).toContain('fish: `viewctl activate …')
    const own = activate.stdout.indexOf('--shell')
    const global = activate.stdout.indexOf('--json')
    expect(own).toBeGreaterThan(0)
    expect(own).toBeLessThan(global)
    expect(activate.stdout).toContain('Global options:')
    const exec = viewctl(['exec', '--help'])
    expect(exec.stdout.split('\n')[0]).toBe('viewctl exec <target> -- <command> [argument …]')
  })
})
