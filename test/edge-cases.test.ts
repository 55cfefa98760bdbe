/**
 * Edge cases of single commands, each checked end to end through the CLI:
 * paths reached through symlinks, adoption, recovery by the next writer, the
 * lock's options, a no-op without the lock, and `plan --list`.
 */
import fs from 'node:fs'
import path from 'node:path'
import { spawnSync } from 'node:child_process'
import { describe, expect, it, onTestFinished } from 'vitest'
import { snapshot, tempDir, viewctl, writeManifest, writeTree } from './helpers.js'

function storeOf(view: string): string {
  return path.join(path.dirname(view), `._${path.basename(view)}`)
}

describe('relative links', () => {
  it('resolve when the view parent is reached through a symlink (as /opt/views -> /gpfs/... on clusters)', () => {
    const dir = tempDir()
    fs.mkdirSync(path.join(dir, 'real/views'), { recursive: true })
    fs.symlinkSync('real/views', path.join(dir, 'views'))
    writeTree(path.join(dir, 'p'), { 'bin/tool': 'tool-bytes', 'share/x/y': 'y' })
    const manifest = writeManifest(dir, `view: views/hpc\nrelative: true\nfold: false\npackages: [p]\n`)
    expect(viewctl(['regenerate', manifest]).code).toBe(0)
    const view = path.join(dir, 'views/hpc')
    expect(fs.readlinkSync(path.join(view, 'bin/tool')).startsWith('../')).toBe(true)
    expect(fs.readFileSync(path.join(view, 'bin/tool'), 'utf8')).toBe('tool-bytes')
    expect(fs.readFileSync(path.join(view, 'share/x/y'), 'utf8')).toBe('y')
    const v = viewctl(['verify', manifest, '--json'])
    expect(v.code).toBe(0)
    expect(v.json.problems).toEqual([])
  })
})

describe('--lock-timeout', () => {
  it.each(['abc', '-1'])('rejects %s with exit 2 instead of waiting forever', (value) => {
    const dir = tempDir()
    writeTree(path.join(dir, 'p'), { 'bin/a': 'a' })
    const manifest = writeManifest(dir, 'view: v\npackages: [p]\n')
    expect(viewctl(['regenerate', manifest]).code).toBe(0)
    const before = snapshot(path.join(dir, 'v'))
    const started = Date.now()
    const r = viewctl(['rollback', path.join(dir, 'v'), `--lock-timeout=${value}`, '--json'])
    expect(Date.now() - started).toBeLessThan(20_000)
    expect(r.code).toBe(2)
    expect(r.json.error.code).toBe('USAGE')
    expect(r.json.error.message).toContain('--lock-timeout')
    expect(snapshot(path.join(dir, 'v'))).toEqual(before)
  })
})

describe('a current tree that went missing', () => {
  it('is rebuilt and republished, not reported up to date', () => {
    const dir = tempDir()
    writeTree(path.join(dir, 'p'), { 'bin/a': 'a' })
    const manifest = writeManifest(dir, 'view: v\npackages: [p]\n')
    const first = viewctl(['regenerate', manifest, '--json'])
    expect(first.code).toBe(0)
    fs.rmSync(path.join(storeOf(path.join(dir, 'v')), first.json.hash), { recursive: true })
    const again = viewctl(['regenerate', manifest, '--json'])
    expect(again.code).toBe(0)
    expect(again.json.changed).toBe(true)
    expect(again.json.built).toBe(true)
    expect(again.json.hash).toBe(first.json.hash)
    expect(fs.readFileSync(path.join(dir, 'v/bin/a'), 'utf8')).toBe('a')
  })
})

describe('--adopt', () => {
  it('keeps each adopted directory even when two have the same file names', () => {
    const dir = tempDir()
    writeTree(path.join(dir, 'p'), { 'bin/new': 'new' })
    const manifest = writeManifest(dir, 'view: v\npackages: [p]\n')
    const view = path.join(dir, 'v')
    writeTree(view, { 'etc/conf': 'version 1' })
    const one = viewctl(['regenerate', manifest, '--adopt', '--json'])
    expect(one.code).toBe(0)
    // someone replaces the view by a directory again, with the same names and new contents
    fs.unlinkSync(view)
    writeTree(view, { 'etc/conf': 'version 2 - new data' })
    const two = viewctl(['regenerate', manifest, '--adopt', '--json'])
    expect(two.code).toBe(0)
    expect(two.json.adopted.hash).not.toBe(one.json.adopted.hash)
    const back = viewctl(['rollback', view, '--to', String(two.json.adopted.generation)])
    expect(back.code).toBe(0)
    expect(fs.readFileSync(path.join(view, 'etc/conf'), 'utf8')).toBe('version 2 - new data')
    expect(viewctl(['rollback', view, '--to', String(one.json.adopted.generation)]).code).toBe(0)
    expect(fs.readFileSync(path.join(view, 'etc/conf'), 'utf8')).toBe('version 1')
  })

  // needs root to mount a tmpfs; CI runs as root, so there it always runs (and fails if it cannot mount)
  it.skipIf(process.getuid?.() !== 0 && process.env.CI !== 'true')('refuses a mount point before writing anything, and leaves its data alone', () => {
    const dir = tempDir()
    writeTree(path.join(dir, 'p'), { 'bin/new': 'new' })
    const view = path.join(dir, 'v')
    fs.mkdirSync(view)
    const mount = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', view], { encoding: 'utf8' })
    expect(mount.status, `mount failed: ${mount.stderr}`).toBe(0)
    onTestFinished(() => {
      spawnSync('umount', [view])
    })
    fs.writeFileSync(path.join(view, 'precious'), 'data')
    const manifest = writeManifest(dir, 'view: v\npackages: [p]\n')
    const r = viewctl(['regenerate', manifest, '--adopt', '--json'])
    expect(r.code).toBe(1)
    expect(r.json.error.message).toContain('mount point')
    expect(fs.readFileSync(path.join(view, 'precious'), 'utf8')).toBe('data')
    expect(fs.readdirSync(view)).toEqual(['precious'])
    // refused before the store is made, or at least before anything is built in it
    expect(fs.existsSync(storeOf(view)) ? fs.readdirSync(storeOf(view)).filter((n) => /^[0-9a-f]{16,}$/.test(n)) : []).toEqual([])
  })
})

describe('exec', () => {
  it('refuses --json (the command owns stdout) with exit 2', () => {
    const dir = tempDir()
    writeTree(path.join(dir, 'p'), { 'bin/a': 'a' })
    const manifest = writeManifest(dir, 'view: v\npackages: [p]\n')
    expect(viewctl(['regenerate', manifest]).code).toBe(0)
    const r = viewctl(['exec', path.join(dir, 'v'), '--json', '--', 'echo', 'hello'])
    expect(r.code).toBe(2)
    expect(r.stdout).not.toContain('hello')
    expect(r.json.error.code).toBe('USAGE')
  })
})

describe('status on a real directory', () => {
  it('exits 2 (not a view), like a missing path', () => {
    const dir = tempDir()
    fs.mkdirSync(path.join(dir, 'v'))
    const r = viewctl(['status', path.join(dir, 'v'), '--json'])
    expect(r.code).toBe(2)
    expect(r.json.error.code).toBe('NOT_A_VIEW')
    const missing = viewctl(['status', path.join(dir, 'nothing'), '--json'])
    expect(missing.code).toBe(2)
  })
})

describe('recovery by the next writer', () => {
  it('repairs a torn journal line and clears staging, trash and a dangling tmp symlink left by a dead writer', () => {
    const dir = tempDir()
    writeTree(path.join(dir, 'p'), { 'bin/a': 'a' })
    writeTree(path.join(dir, 'q'), { 'bin/b': 'b' })
    const one = writeManifest(dir, 'view: v\npackages: [p]\n', 'one.yaml')
    const two = writeManifest(dir, 'view: v\npackages: [p, q]\n', 'two.yaml')
    expect(viewctl(['regenerate', one]).code).toBe(0)
    const store = storeOf(path.join(dir, 'v'))
    // what a writer killed at the worst moments leaves behind
    fs.appendFileSync(path.join(store, 'history.jsonl'), '{"generation":2,"hash":"abc')
    fs.mkdirSync(path.join(store, '.staging-0123456789abcdef0123456789abcdef-99999-deadbeef/bin'), { recursive: true })
    fs.mkdirSync(path.join(store, '.trash-0123456789abcdef0123456789abcdef-99999-deadbeef/lib'), { recursive: true })
    fs.symlinkSync('._v/0000000000000000000000000000dead', path.join(dir, '.v.tmp-99999-deadbeef'))

    const r = viewctl(['regenerate', two, '--json'])
    expect(r.code).toBe(0)
    expect(r.json.generation).toBe(2)
    expect(fs.readdirSync(store).filter((n) => n.startsWith('.staging-') || n.startsWith('.trash-'))).toEqual([])
    expect(fs.readdirSync(dir).filter((n) => n.includes('.tmp-'))).toEqual([])
    const lines = fs.readFileSync(path.join(store, 'history.jsonl'), 'utf8').split('\n')
    expect(lines.pop()).toBe('')
    expect(lines.map((l) => JSON.parse(l).generation)).toEqual([1, 2])
    expect(fs.readFileSync(path.join(dir, 'v/bin/b'), 'utf8')).toBe('b')
  })
})

/** Two prefixes and two manifests of one view `v`: one.yaml links p, two.yaml p and q. */
function twoManifests(): { dir: string; one: string; two: string } {
  const dir = tempDir()
  writeTree(path.join(dir, 'p'), { 'bin/a': 'a' })
  writeTree(path.join(dir, 'q'), { 'bin/b': 'b' })
  return { dir, one: writeManifest(dir, 'view: v\npackages: [p]\n', 'one.yaml'), two: writeManifest(dir, 'view: v\npackages: [p, q]\n', 'two.yaml') }
}

/** This test process takes view v's writer lock, as another writer would; released by the function returned, or when the test ends. */
async function holdWriterLock(dir: string): Promise<() => void> {
  const { default: fsx } = await import('fs-native-extensions')
  const fd = fs.openSync(path.join(storeOf(path.join(dir, 'v')), '.lock'), 'r+')
  let open = true
  const release = () => {
    if (open) fs.closeSync(fd)
    open = false
  }
  onTestFinished(release)
  expect(fsx.tryLock(fd)).toBe(true)
  return release
}

describe('--no-lock', () => {
  it('is the explicit way past a held lock: without it exit 4, with it the switch happens', async () => {
    const { dir, one, two } = twoManifests()
    expect(viewctl(['regenerate', one]).code).toBe(0)
    await holdWriterLock(dir)

    const refused = viewctl(['regenerate', two, '--lock-timeout', '0', '--json'])
    expect(refused.code).toBe(4)
    expect(refused.json.error.code).toBe('LOCK_TIMEOUT')
    expect(fs.existsSync(path.join(dir, 'v/bin/b'))).toBe(false)

    const forced = viewctl(['regenerate', two, '--no-lock', '--json'])
    expect(forced.code).toBe(0)
    expect(forced.json.generation).toBe(2)
    expect(fs.readFileSync(path.join(dir, 'v/bin/b'), 'utf8')).toBe('b')
  })
})

describe('a no-op regenerate', () => {
  it('needs no lock when the scan cache recalls the plan the view already shows; anything changed still waits for the lock', async () => {
    const { dir, one, two } = twoManifests()
    const first = viewctl(['regenerate', one, '--json'])
    expect(first.code).toBe(0)
    // the scan cache does not remember a directory changed within the last 2 s (the racy window, plan/cache.ts)
    await new Promise((resolve) => setTimeout(resolve, 2100))
    expect(viewctl(['regenerate', one]).code).toBe(0) // remembers the listings and the plan, under the lock
    await holdWriterLock(dir)

    const noop = viewctl(['regenerate', one, '--lock-timeout', '0', '--json'])
    expect(noop.code).toBe(0)
    expect(noop.json).toMatchObject({ changed: false, generation: 1, hash: first.json.hash, entries: first.json.entries, prefixes: 1 })
    // another manifest: a new plan, so the lock is needed
    const other = viewctl(['regenerate', two, '--lock-timeout', '0', '--json'])
    expect(other.code).toBe(4)
    expect(other.json.error.code).toBe('LOCK_TIMEOUT')
    // the same manifest, but the prefix gained a directory: the cache sees its root changed
    writeTree(path.join(dir, 'p'), { 'share/c': 'c' })
    const changed = viewctl(['regenerate', one, '--lock-timeout', '0', '--json'])
    expect(changed.code).toBe(4)
    expect(fs.existsSync(path.join(dir, 'v/share'))).toBe(false)
  })

  it('needs no lock either when only the manifest\'s comments changed, and writes nothing, leftovers included', async () => {
    const { dir, one } = twoManifests()
    const first = viewctl(['regenerate', one, '--json'])
    expect(first.code).toBe(0)
    await new Promise((resolve) => setTimeout(resolve, 2100)) // past the racy window, as above
    expect(viewctl(['regenerate', one]).code).toBe(0)
    const release = await holdWriterLock(dir)
    fs.appendFileSync(one, '# checked at 2 a.m.\n')
    const cacheFile = path.join(storeOf(path.join(dir, 'v')), '.scan-cache')
    const cacheBefore = fs.readFileSync(cacheFile)

    const edited = viewctl(['regenerate', one, '--lock-timeout', '0', '--json'])
    expect(edited.code, edited.stderr).toBe(0)
    expect(edited.json).toMatchObject({ changed: false, generation: 1, hash: first.json.hash })

    // with the lock free too: a dead writer's leftovers stay for the next run that writes, the cache is not rewritten
    release()
    const leftover = path.join(storeOf(path.join(dir, 'v')), `.trash-${'0'.repeat(32)}-1-00000000`)
    fs.mkdirSync(leftover)
    const again = viewctl(['regenerate', one, '--lock-timeout', '0', '--json'])
    expect(again.code, again.stderr).toBe(0)
    expect(again.json).toMatchObject({ changed: false, cleared: [] })
    expect(fs.existsSync(leftover)).toBe(true)
    expect(fs.readFileSync(cacheFile)).toEqual(cacheBefore)
    expect(snapshot(path.join(dir, 'v')).store).toHaveLength(1)
  })
})

describe('plan --list', () => {
  it('prints every entry with its kind and source, and writes nothing', () => {
    const dir = tempDir()
    writeTree(path.join(dir, 'p'), { 'bin/a': 'a', 'include/p/p.h': 'h' })
    writeTree(path.join(dir, 'q'), { 'bin/b': 'b' })
    const manifest = writeManifest(dir, 'view: v\npackages: [p, q]\n')
    const before = fs.readdirSync(dir).sort()
    const r = viewctl(['plan', manifest, '--list'])
    expect(r.code).toBe(0)
    const p = path.join(dir, 'p')
    const q = path.join(dir, 'q')
    expect(r.stdout).toContain(`d bin\n`)
    expect(r.stdout).toContain(`f bin/a  <- ${p}\n`)
    expect(r.stdout).toContain(`f bin/b  <- ${q}\n`)
    expect(r.stdout).toContain(`F include  <- ${p}\n`)
    const json = viewctl(['plan', manifest, '--list', '--json']).json
    expect(json.plan).toEqual([
      { path: 'bin', kind: 'dir', source: null },
      { path: 'bin/a', kind: 'file', source: `${p}/bin/a` },
      { path: 'bin/b', kind: 'file', source: `${q}/bin/b` },
      { path: 'include', kind: 'folded', source: `${p}/include` },
    ])
    expect(fs.readdirSync(dir).sort()).toEqual(before)
  })
})
