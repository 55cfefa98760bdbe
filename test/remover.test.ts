/**
 * Removing a large tree on the main thread and a worker thread at once
 * (src/store/remove/remover.ts): the tree goes entirely, symlinks are never
 * followed, the worker really takes part, an error in the worker fails the
 * removal with its errno (which gc reports as a warning, leaving trash), and
 * a gc killed with -9 mid-removal leaves trash that the next writer clears.
 *
 * The worker exists only in the compiled package, so these tests import the
 * compiled remover from dist/ (built by pretest) or run the real CLI.
 */
import fs from 'node:fs'
import path from 'node:path'
import { spawnSync } from 'node:child_process'
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest'
import { ROOT, tempDir, viewctl, viewctlAsync, writeManifest, writeTree } from './helpers.js'
import { finished, makeWidePrefixes, scratchDir, storeOf } from './view-checks.js'
import { PARALLEL_MIN_ENTRIES, REMOVE_CHUNK } from '../src/store/remove/remover.js'
import { processRemover, rmProgram, startRemover } from '../src/store/remove/rm-processes.js'
import { armFaults } from '../src/fs.js'

type RemoverModule = typeof import('../src/store/remove/remover.js')
const compiled = () => import(path.join(ROOT, 'dist', 'store', 'remove', 'remover.js')) as Promise<RemoverModule>
const isRoot = process.getuid?.() === 0
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms))

/** Big trees go to /dev/shm when there is one: these tests are about threads, not about the disk. */
function scratch(prefix: string): string {
  const dir = scratchDir(prefix)
  onTestFinished(() => fs.rmSync(dir, { recursive: true, force: true }))
  return dir
}

/** `n` files (every third a symlink, some dangling) in `dir`. */
function fill(dir: string, n: number, prefix = 'f'): void {
  fs.mkdirSync(dir, { recursive: true })
  for (let i = 0; i < n; i++) {
    const p = path.join(dir, `${prefix}${i}`)
    if (i % 3 === 0) fs.symlinkSync(i % 2 ? '/nonexistent/target' : `${prefix}${i + 1}`, p)
    else fs.writeFileSync(p, '')
  }
}

/** Entries under `dir`, names taken as bytes. */
function countEntries(dir: string | Buffer): number {
  let n = 0
  for (const e of fs.readdirSync(dir, { withFileTypes: true, encoding: 'buffer' })) {
    n++
    if (e.isDirectory()) n += countEntries(Buffer.concat([Buffer.from(dir), Buffer.from('/'), e.name]))
  }
  return n
}

/**
 * Make `dir` refuse the removal of its entries: immutable for root (EPERM;
 * root ignores permissions), read-only otherwise (EACCES). Undone when the
 * test finishes. Null when this filesystem has no immutable flag.
 */
function lockEntriesIn(dir: string): string | null {
  const undo = (): void => {
    if (isRoot) spawnSync('chattr', ['-i', dir])
    else fs.chmodSync(dir, 0o755)
  }
  onTestFinished(undo)
  if (!isRoot) {
    fs.chmodSync(dir, 0o555)
    return 'EACCES'
  }
  return spawnSync('chattr', ['+i', dir]).status === 0 ? 'EPERM' : null
}

/** The error `removal` fails with, checked to be an unlink in `locked` refused with `errno` (lockEntriesIn). */
async function unlinkRefused(removal: Promise<unknown>, errno: string, locked: string): Promise<NodeJS.ErrnoException> {
  const err = await removal.then(
    () => null,
    (e: unknown) => e as NodeJS.ErrnoException,
  )
  expect(err).toBeInstanceOf(Error)
  expect(err!.code).toBe(errno)
  expect(err!.syscall).toBe('unlink')
  expect(path.dirname(err!.path!)).toBe(locked)
  return err!
}

describe('removing a tree with a worker thread (compiled package)', () => {
  it('removes everything, never follows a symlink, and the worker takes its share', { timeout: 60_000 }, async () => {
    const { startTreeRemover } = await compiled()
    const dir = scratch('viewctl-remover-')
    const outside = writeTree(path.join(dir, 'outside'), { 'keep/me': 'precious', 'file': 'also precious' })
    const tree = path.join(dir, 'tree')
    fill(path.join(tree, 'bin'), 6000)
    fill(path.join(tree, 'lib'), 7000)
    fill(path.join(tree, 'share/man/man1'), 3000)
    fill(path.join(tree, 'include/a/b/c'), REMOVE_CHUNK + 1)
    writeTree(tree, { 'empty': { dir: true }, 'to-dir': { symlink: outside }, 'lib/to-file': { symlink: path.join(outside, 'file') } })
    // a directory with a name that is not UTF-8, holding one more: removed byte for byte on the main thread
    const odd = Buffer.concat([Buffer.from(`${tree}/share/odd-`), Buffer.from([0xff])])
    fs.mkdirSync(odd)
    fs.writeFileSync(Buffer.concat([odd, Buffer.from('/f-'), Buffer.from([0xc3, 0x28])]), 'x')
    const entries = countEntries(tree)
    expect(entries).toBeGreaterThan(PARALLEL_MIN_ENTRIES)

    const remover = startTreeRemover(entries)
    try {
      await sleep(300) // gc boots the worker while it takes the lock and scans /proc
      const stats = await remover.remove(tree)
      expect(fs.existsSync(tree)).toBe(false)
      expect(stats.chunks).toBeGreaterThanOrEqual(Math.floor(entries / REMOVE_CHUNK))
      expect(stats.workerChunks).toBeGreaterThan(0)
      expect(stats.workerChunks).toBeLessThan(stats.chunks)

      // the same remover takes the next tree, and one that is gone or a single link
      fill(path.join(dir, 'second', 'x'), 3000)
      expect((await remover.remove(path.join(dir, 'second'))).chunks).toBeGreaterThan(0)
      expect(fs.existsSync(path.join(dir, 'second'))).toBe(false)
      await remover.remove(path.join(dir, 'second'))
      fs.symlinkSync(outside, path.join(dir, 'link'))
      await remover.remove(path.join(dir, 'link'))
    } finally {
      await remover.close()
    }
    expect(fs.readdirSync(dir)).toEqual(['outside'])
    expect(fs.readFileSync(path.join(outside, 'keep', 'me'), 'utf8')).toBe('precious')
    expect(fs.readFileSync(path.join(outside, 'file'), 'utf8')).toBe('also precious')
  })

  it('stays on the main thread for a small tree, with VIEWCTL_JOBS=1, and from sources', async () => {
    const { startTreeRemover } = await compiled()
    const dir = tempDir('viewctl-remover-')
    const run = async (remover: ReturnType<RemoverModule['startTreeRemover']>) => {
      fill(path.join(dir, 'tree', 'bin'), 100)
      try {
        const stats = await remover.remove(path.join(dir, 'tree'))
        expect(fs.existsSync(path.join(dir, 'tree'))).toBe(false)
        return stats
      } finally {
        await remover.close()
      }
    }
    expect(await run(startTreeRemover(PARALLEL_MIN_ENTRIES - 1))).toEqual({ chunks: 0, workerChunks: 0 })
    const saved = process.env.VIEWCTL_JOBS
    process.env.VIEWCTL_JOBS = '1'
    try {
      expect(await run(startTreeRemover(10 * PARALLEL_MIN_ENTRIES))).toEqual({ chunks: 0, workerChunks: 0 })
    } finally {
      if (saved === undefined) delete process.env.VIEWCTL_JOBS
      else process.env.VIEWCTL_JOBS = saved
    }
    const fromSources = await import('../src/store/remove/remover.js')
    expect(await run(fromSources.startTreeRemover(10 * PARALLEL_MIN_ENTRIES))).toEqual({ chunks: 0, workerChunks: 0 })
  })

  it('fails on an error in the worker with its errno and path, and stops; a second try finishes', { timeout: 60_000 }, async (ctx) => {
    const { startTreeRemover } = await compiled()
    const dir = scratch('viewctl-remover-')
    const tree = path.join(dir, 'tree')
    // The root's own files are listed first and the main thread takes them from the front; the
    // directory listed last is the newest work, which the worker takes while the main thread is
    // still far from it (24,000 unlinks away).
    fill(tree, 24_000)
    const locked = path.join(tree, 'locked')
    fill(locked, 4 * REMOVE_CHUNK)
    const errno = lockEntriesIn(locked)
    if (errno === null) ctx.skip() // no immutable flag on this filesystem (tmpfs has one since Linux 6.0)

    const remover = startTreeRemover(countEntries(tree))
    try {
      await sleep(300)
      const err = await unlinkRefused(remover.remove(tree), errno!, locked)
      expect(err.stack).toContain('rm-worker') // it came from the worker, errno and all
      // every thread stopped at the first error: most of the root's files are still there
      expect(fs.readdirSync(tree).length).toBeGreaterThan(4 * REMOVE_CHUNK)
      if (isRoot) spawnSync('chattr', ['-i', locked])
      else fs.chmodSync(locked, 0o755)
      await remover.remove(tree)
      expect(fs.existsSync(tree)).toBe(false)
    } finally {
      await remover.close()
    }
  })
})

describe('removing a tree with rm processes (store/remove/rm-processes.ts)', () => {
  const rm = rmProgram()

  it('runs one rm per top-level directory, removes everything, never follows a symlink', { timeout: 60_000 }, async () => {
    expect(rm, 'no rm at /bin/rm or /usr/bin/rm').not.toBeNull()
    const dir = scratch('viewctl-rmproc-')
    const outside = writeTree(path.join(dir, 'outside'), { 'keep/me': 'precious', 'file': 'also precious', 'sub/deep': 'precious too' })
    const tree = path.join(dir, 'tree')
    fill(path.join(tree, 'bin'), 3000)
    fill(path.join(tree, 'lib'), 2000)
    fill(path.join(tree, 'share/man/man1'), 1000)
    fill(tree, 10, 'top')
    // links to directories, at the top (rm is never given one) and below (rm removes the link only)
    writeTree(tree, { 'to-dir': { symlink: outside }, 'lib/to-dir': { symlink: path.join(outside, 'sub') }, 'empty': { dir: true } })
    const stats = await processRemover(rm!).remove(tree)
    expect(stats.processes).toBe(4) // bin, empty, lib, share
    expect(fs.existsSync(tree)).toBe(false)
    expect(fs.readFileSync(path.join(outside, 'keep/me'), 'utf8')).toBe('precious')
    expect(fs.readFileSync(path.join(outside, 'sub/deep'), 'utf8')).toBe('precious too')
    expect(fs.readFileSync(path.join(outside, 'file'), 'utf8')).toBe('also precious')
    // gone already is fine, as for rmTree
    expect((await processRemover(rm!).remove(tree)).processes).toBe(0)
  })

  it('a tree that is a symlink to a directory is unlinked, and what it points to is left alone', { timeout: 60_000 }, async () => {
    const dir = scratch('viewctl-rmproc-')
    const elsewhere = path.join(dir, 'moved-generation')
    fill(path.join(elsewhere, 'bin'), 100)
    fill(path.join(elsewhere, 'lib'), 100)
    const tree = path.join(dir, '.trash-abc')
    fs.symlinkSync(elsewhere, tree)
    const stats = await processRemover(rm!).remove(tree)
    expect(stats.processes).toBe(0)
    expect(fs.existsSync(tree)).toBe(false)
    expect(fs.readdirSync(path.join(elsewhere, 'bin'))).toHaveLength(100)
    expect(fs.readdirSync(path.join(elsewhere, 'lib'))).toHaveLength(100)
  })

  it('what rm cannot remove fails the removal with its errno and path (from rmTree); the rest is gone; a second try finishes', { timeout: 60_000 }, async (ctx) => {
    const dir = scratch('viewctl-rmproc-')
    const tree = path.join(dir, 'tree')
    fill(path.join(tree, 'a'), 2000)
    fill(path.join(tree, 'b'), 2000)
    const locked = path.join(tree, 'c', 'locked')
    fill(locked, 50)
    const errno = lockEntriesIn(locked)
    if (errno === null) ctx.skip() // no immutable flag on this filesystem (tmpfs has one since Linux 6.0)
    await unlinkRefused(processRemover(rm!).remove(tree), errno!, locked)
    expect(fs.readdirSync(tree)).toEqual(['c']) // the rm processes removed the rest
    expect(fs.readdirSync(locked)).toHaveLength(50)
    if (isRoot) spawnSync('chattr', ['-i', locked])
    else fs.chmodSync(locked, 0o755)
    await processRemover(rm!).remove(tree)
    expect(fs.existsSync(tree)).toBe(false)
  })

  it('processRemover runs at most the rm processes it is given, each directory in exactly one', async () => {
    const rm = rmProgram()
    if (rm === null) throw new Error('no rm at /bin/rm or /usr/bin/rm')
    const tree = path.join(scratch('viewctl-rmproc-'), 'tree')
    for (const d of ['a', 'b', 'c', 'd', 'e']) fill(path.join(tree, d), 20)
    const stats = await processRemover(rm, 2).remove(tree)
    expect(stats.processes).toBe(2)
    expect(fs.existsSync(tree)).toBe(false)
    const wide = path.join(scratch('viewctl-rmproc-'), 'tree')
    for (const d of ['a', 'b', 'c']) fill(path.join(wide, d), 5)
    expect((await processRemover(rm, 16).remove(wide)).processes).toBe(3)
    expect(fs.existsSync(wide)).toBe(false)
  })

  it('startRemover uses rm processes for a big tree; not for a small one, with VIEWCTL_RM_PROCESSES=0, or while faults are armed', async () => {
    const used = async (entries: number, where: { remote?: boolean } = {}) => {
      const tree = path.join(scratch('viewctl-rmproc-'), 'tree')
      fill(path.join(tree, 'd'), 3)
      const remover = startRemover(entries, where)
      try {
        const stats = await remover.remove(tree)
        expect(fs.existsSync(tree)).toBe(false)
        return 'processes' in stats ? 'processes' : 'threads or main thread'
      } finally {
        await remover.close()
      }
    }
    expect(await used(PARALLEL_MIN_ENTRIES)).toBe('processes')
    expect(await used(PARALLEL_MIN_ENTRIES - 1)).toBe('threads or main thread')
    // on a remote filesystem, at any size: rm unlinks relative to an open directory, one round trip a name
    expect(await used(3, { remote: true })).toBe('processes')
    process.env.VIEWCTL_RM_PROCESSES = '0'
    try {
      expect(await used(PARALLEL_MIN_ENTRIES)).toBe('threads or main thread')
      expect(await used(3, { remote: true })).toBe('threads or main thread')
    } finally {
      delete process.env.VIEWCTL_RM_PROCESSES
    }
    armFaults('mkdir:1000000')
    try {
      expect(await used(PARALLEL_MIN_ENTRIES)).toBe('threads or main thread')
    } finally {
      armFaults('')
    }
  })
})

describe('gc of a large generation (real CLI)', () => {
  let prefixRoot = ''
  let prefixes: string[] = []
  beforeAll(() => {
    prefixRoot = scratchDir('viewctl-remover-prefixes-')
    // 3 packages x 4 directories x 1,100 files: 13,200 links, above the threshold for a worker
    prefixes = makeWidePrefixes(prefixRoot, 3, 1100)
  })
  afterAll(() => fs.rmSync(prefixRoot, { recursive: true, force: true }))

  /** A view whose generation 1 is the large tree and generation 2 (current) a small one. */
  function twoGenerations(): { dir: string; view: string; store: string; big: string } {
    const dir = scratch('viewctl-remover-gc-')
    const view = path.join(dir, 'view')
    const pkgs = (list: string[]) => ['packages:', ...list.map((p) => `  - ${p}`)].join('\n')
    const big = writeManifest(dir, `view: ${view}\nfold: false\ngc: {auto: false}\n${pkgs(prefixes)}\n`, 'big.yaml')
    const small = writeManifest(dir, `view: ${view}\ngc: {auto: false}\n${pkgs(prefixes.slice(0, 1))}\n`, 'small.yaml')
    const r1 = viewctl(['regenerate', big, '--json'])
    expect(r1.code, r1.stderr).toBe(0)
    expect(r1.json.entries).toBeGreaterThan(PARALLEL_MIN_ENTRIES)
    const r2 = viewctl(['regenerate', small, '--json'])
    expect(r2.code, r2.stderr).toBe(0)
    return { dir, view, store: storeOf(view), big: r1.json.hash }
  }

  it('removes the tree and nothing else, and the process exits', { timeout: 120_000 }, () => {
    const g = twoGenerations()
    const r = viewctl(['gc', g.view, '--keep', '0', '--ttl', '0', '--force', '--json'])
    expect(r.code, r.stderr).toBe(0)
    expect(r.json.removed).toEqual([{ generations: [1], hash: g.big }])
    expect(r.json.warnings).toEqual([])
    expect(fs.readdirSync(g.store).filter((n) => n === g.big || n.startsWith('.trash-'))).toEqual([])
    const v = viewctl(['verify', g.view, '--json'])
    expect(v.code, v.stdout + v.stderr).toBe(0)
  })

  it('an unlink the filesystem refuses becomes a warning; the trash stays for the next writer', { timeout: 120_000 }, async (ctx) => {
    const g = twoGenerations()
    // bin/ is listed last, so its chunks are the newest: the worker's first pick once the listing is done
    const bin = path.join(g.store, g.big, 'bin')
    onTestFinished(() => {
      // wherever bin/ went (into trash), let the scratch directory be removed
      for (const n of fs.readdirSync(g.store).filter((n) => n.startsWith('.trash-'))) {
        if (isRoot) spawnSync('chattr', ['-i', path.join(g.store, n, 'bin')])
        else fs.chmodSync(path.join(g.store, n, 'bin'), 0o755)
      }
    })
    const errno = lockEntriesIn(bin)
    if (errno === null) ctx.skip()
    const r = viewctl(['gc', g.view, '--keep', '0', '--ttl', '0', '--force', '--json'])
    expect(r.code, r.stderr).toBe(0)
    expect(r.json.removed).toEqual([{ generations: [1], hash: g.big }])
    expect(r.json.warnings).toEqual([expect.stringMatching(/^permission denied at \/.*\/bin\/[^/]+ while removing \/.*\/\.trash-[^/]+; the tree is out of the view's reach and the next writer removes it$/)])
    expect(r.stderr).toMatch(/warning: permission denied/)
    const trash = fs.readdirSync(g.store).filter((n) => n.startsWith('.trash-'))
    expect(trash).toHaveLength(1)
    expect(fs.existsSync(path.join(g.store, g.big))).toBe(false)

    const stuck = path.join(g.store, trash[0]!, 'bin')
    if (isRoot) spawnSync('chattr', ['-i', stuck])
    else fs.chmodSync(stuck, 0o755)
    const pin = viewctl(['pin', g.view, '2'])
    expect(pin.code, pin.stderr).toBe(0)
    expect(fs.readdirSync(g.store).filter((n) => n.startsWith('.trash-'))).toEqual([])
  })

  it('killed with -9 mid-removal: only trash is left, which the next writer removes', { timeout: 120_000 }, async () => {
    const g = twoGenerations()
    const child = viewctlAsync(['gc', g.view, '--keep', '0', '--ttl', '0', '--force'])
    const exit = finished(child)
    // the moment the tree is renamed to trash, the removal starts: kill it then
    let trash: string | undefined
    const deadline = Date.now() + 60_000
    for (let i = 1; trash === undefined && child.exitCode === null && Date.now() < deadline; i++) {
      trash = fs.readdirSync(g.store).find((n) => n.startsWith('.trash-'))
      if (i % 100 === 0) await new Promise((r) => setImmediate(r)) // let an early exit be seen
    }
    child.kill('SIGKILL')
    const r = await exit
    expect(trash, `gc finished before it could be killed: ${r.stdout}${r.stderr}`).toBeDefined()
    expect(r.signal).toBe('SIGKILL')
    expect(fs.existsSync(path.join(g.store, g.big))).toBe(false)
    expect(fs.existsSync(path.join(g.store, trash!))).toBe(true)
    expect(viewctl(['list', g.view, '--json']).json.generations[0].onDisk).toBe(false)

    const pin = viewctl(['pin', g.view, '2'])
    expect(pin.code, pin.stderr).toBe(0)
    expect(fs.readdirSync(g.store).filter((n) => n.startsWith('.trash-') || n === g.big)).toEqual([])
    const v = viewctl(['verify', g.view, '--json'])
    expect(v.code, v.stdout + v.stderr).toBe(0)
  })
})
