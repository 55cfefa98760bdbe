/**
 * Faults (DESIGN §5, §10): injected through the fs seam (VIEWCTL_TEST_FAULTS)
 * at every step of build and publish, and real ones — hardlinks across
 * filesystems, no permission, disk full by blocks and by inodes. Each time:
 * exit 1, a sentence that says what happened, no stack trace, the view on
 * its previous generation, nothing left behind, and the next run works.
 */
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { spawnSync } from 'node:child_process'
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest'
import { BIN, ROOT, makePrefixes, publicInstall, tempDir, viewctl, writeManifest, writeTree, type RunResult } from './helpers.js'
import { mountTmpfs, requireMount } from './mounts.js'
import { assertCompleteGeneration, fullSnapshot, historyRecords, leftovers, makeWidePrefixes, noStackTrace, readPlanEntries, storeOf, viewctlRun } from './view-checks.js'

const isRoot = process.getuid?.() === 0

// ---------------------------------------------------------------------------
// Injected faults

type Phase = 'build' | 'published-tree'

interface FaultCase {
  op: string
  which: string
  /** The N-th call of `op` to fail, given the number of dirs and links the build makes. */
  nth: (dirs: number, links: number) => number
  /** 'build': the store must not change; 'published-tree': the new tree was already renamed into place. */
  phase: Phase
}

// Calls through the seam in one regenerate that builds (symlink view, fold: false; share: false, so that
// every entry is created, as in a cold build: test/share.test.ts has the builds that share):
//   mkdir: 1 staging, 2..dirs+1 the tree's directories, dirs+2 .viewctl
//   symlink: 1..links the entries, links+1 the temporary link beside the view
//   writeFile: 1 manifest.yaml, 2 plan.tsv, 3 lease, 4 meta.json
//   fsync: 1 .viewctl, 2 staging, 3 the store after staging -> <hash>, 4 the view's parent after publishing
//   rename: 1 staging -> <hash>, 2 temporary link -> view
//   appendFile: 1 history.jsonl
const CASES: FaultCase[] = [
  { op: 'mkdir', which: 'first (staging)', nth: () => 1, phase: 'build' },
  { op: 'mkdir', which: 'middle', nth: (d) => 1 + Math.ceil(d / 2), phase: 'build' },
  { op: 'mkdir', which: 'last (.viewctl)', nth: (d) => d + 2, phase: 'build' },
  { op: 'symlink', which: 'first', nth: () => 1, phase: 'build' },
  { op: 'symlink', which: 'middle', nth: (_, l) => Math.ceil(l / 2), phase: 'build' },
  { op: 'symlink', which: 'last entry', nth: (_, l) => l, phase: 'build' },
  { op: 'symlink', which: 'temporary link (publish)', nth: (_, l) => l + 1, phase: 'published-tree' },
  { op: 'writeFile', which: 'first (manifest.yaml)', nth: () => 1, phase: 'build' },
  { op: 'writeFile', which: 'middle (plan.tsv)', nth: () => 2, phase: 'build' },
  { op: 'writeFile', which: 'last (meta.json)', nth: () => 4, phase: 'build' },
  { op: 'fsync', which: 'first (.viewctl)', nth: () => 1, phase: 'build' },
  { op: 'fsync', which: 'middle (staging)', nth: () => 2, phase: 'build' },
  { op: 'fsync', which: 'store after staging -> hash', nth: () => 3, phase: 'published-tree' },
  { op: 'rename', which: '1 (staging -> hash)', nth: () => 1, phase: 'build' },
  { op: 'rename', which: '2 (tmp -> view)', nth: () => 2, phase: 'published-tree' },
  { op: 'appendFile', which: 'history.jsonl', nth: () => 1, phase: 'published-tree' },
]

const ERRNOS = [
  { errno: 'ENOSPC', code: 'DISK_FULL', text: /no space left/i },
  { errno: 'EIO', code: 'IO', text: /EIO/ },
] as const

describe('faults injected through the fs seam (VIEWCTL_TEST_FAULTS)', () => {
  // One view per errno, so that the ENOSPC and the EIO run of a case go side by side.
  let root = ''
  let dirs = 0
  let links = 0
  const variants = new Map<string, number>()
  const viewFor = (errno: string) => path.join(root, `view-${errno}`)
  // Each run excludes a different file: a new hash every time, so every run builds.
  const nextManifest = (errno: string) => {
    const k = (variants.get(errno) ?? 0) + 1
    variants.set(errno, k)
    const lines = [`view: ${viewFor(errno)}`, 'fold: false', 'share: false', `exclude: ["lib/libpkg${k % 3}-${Math.floor(k / 3)}.so"]`, 'packages:', `  - glob: ${root}/p/pkg*`, '']
    return writeManifest(root, lines.join('\n'), `${errno}-${k}.yaml`)
  }

  beforeAll(async () => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'viewctl-faults-'))
    makePrefixes(path.join(root, 'p'), 3, 14) // 168 files, 42 distinct exclusions
    const first = await Promise.all(ERRNOS.map((e) => viewctlRun(['regenerate', nextManifest(e.errno), '--json'])))
    for (const r of first) expect(r.code, r.stderr).toBe(0)
    const { entries } = readPlanEntries(path.join(storeOf(viewFor('EIO')), first[1]!.json.hash, '.viewctl', 'plan.tsv'))
    dirs = entries.filter((e) => e.kind === 'd').length
    links = entries.length - dirs
    expect(dirs).toBeGreaterThanOrEqual(5)
    expect(links).toBe(167)
  })
  afterAll(() => fs.rmSync(root, { recursive: true, force: true }))

  async function injectAndRecover(c: FaultCase, e: (typeof ERRNOS)[number]): Promise<void> {
    const view = viewFor(e.errno)
    const nth = c.nth(dirs, links)
    const manifest = nextManifest(e.errno)
    const before = fullSnapshot(view)
    assertCompleteGeneration(view)

    const spec = `${c.op}:${nth}:${e.errno}`
    const r = await viewctlRun(['regenerate', manifest, '--json'], { env: { VIEWCTL_TEST_FAULTS: spec } })
    expect(r.code, `${spec} → ${r.stdout}${r.stderr}`).toBe(1)
    expect(r.json?.error?.code, spec).toBe(e.code)
    expect(r.stderr, spec).toMatch(e.text)
    expect(r.stderr).toMatch(/^viewctl: /)
    noStackTrace(r.stderr)
    expect(leftovers(view), `${spec}: staging, trash or temporary link left`).toEqual([])
    const after = fullSnapshot(view)
    expect(after.target, `${spec}: the view switched`).toBe(before.target)
    expect(after.history, `${spec}: history.jsonl changed (a record for a switch that did not happen?)`).toBe(before.history)
    expect(after.parent, spec).toEqual(before.parent)
    let kept: string | null = null
    if (c.phase === 'build') {
      expect(after.store, `${spec}: a generation tree appeared although the build failed`).toEqual(before.store)
    } else {
      // The tree was complete and renamed into place before the fault: it stays, unpublished, for reuse.
      const extra = after.store.filter((n) => !before.store.includes(n))
      expect(extra, spec).toHaveLength(1)
      expect(after.store).toEqual([...before.store, extra[0]!].sort())
      expect(fs.existsSync(path.join(storeOf(view), extra[0]!, '.viewctl', 'meta.json'))).toBe(true)
      kept = extra[0]!
    }
    assertCompleteGeneration(view)

    const ok = await viewctlRun(['regenerate', manifest, '--json'])
    expect(ok.code, `after ${spec}: ${ok.stderr}`).toBe(0)
    expect(ok.json.changed).toBe(true)
    if (kept) {
      expect(ok.json.hash).toBe(kept)
      expect(ok.json.built).toBe(false)
    } else {
      expect(ok.json.built).toBe(true)
    }
    expect(assertCompleteGeneration(view).hash).toBe(ok.json.hash)
    expect(historyRecords(view).at(-1)).toMatchObject({ hash: ok.json.hash, generation: ok.json.generation, action: 'regenerate' })
    expect(leftovers(view)).toEqual([])
  }

  it.each(CASES)('$op $which fails (ENOSPC, EIO): exit 1, view and journal unchanged, nothing left, next run works', async (c) => {
    await Promise.all(ERRNOS.map((e) => injectAndRecover(c, e)))
  })

  it('a failed fsync of the parent after the publish rename is only a warning: exit 0, switched, recorded', async () => {
    await Promise.all(
      ERRNOS.map(async (e) => {
        const view = viewFor(e.errno)
        const before = fullSnapshot(view)
        const r = await viewctlRun(['regenerate', nextManifest(e.errno), '--json'], { env: { VIEWCTL_TEST_FAULTS: `fsync:4:${e.errno}` } })
        expect(r.code, r.stderr).toBe(0)
        expect(r.json.changed).toBe(true)
        expect(r.stderr).toMatch(/^viewctl: warning: /m)
        expect(r.stderr).toMatch(e.text)
        expect(r.stderr).toContain(path.dirname(view))
        noStackTrace(r.stderr)
        expect(r.json.warnings.some((w: string) => e.text.test(w))).toBe(true)
        expect(fullSnapshot(view).target).not.toBe(before.target)
        expect(assertCompleteGeneration(view).hash).toBe(r.json.hash)
        expect(historyRecords(view).at(-1)).toMatchObject({ hash: r.json.hash, generation: r.json.generation })
        expect(leftovers(view)).toEqual([])
      }),
    )
  })
})

describe('link and copyFile faults in hardlink and copy views', () => {
  const [enospc, eio] = ERRNOS
  // Each mode: the first call failing with ENOSPC and a middle one with EIO, side by side.
  it.each([
    { link: 'hardlink', op: 'link' },
    { link: 'copy', op: 'copyFile' },
  ])('$link view: the first $op failing with ENOSPC, a middle one with EIO: exit 1, view unchanged, nothing left', async (m) => {
    const root = tempDir()
    makePrefixes(path.join(root, 'p'), 2, 5) // 40 files
    const runs = [
      { nth: 1, ...enospc },
      { nth: 20, ...eio },
    ]
    await Promise.all(
      runs.map(async (c) => {
        const view = path.join(root, `view-${c.errno}`)
        const manifest = (exclude: string, name: string) =>
          writeManifest(root, [`view: ${view}`, `link: ${m.link}`, 'share: false', `exclude: ["${exclude}"]`, 'packages:', `  - glob: ${root}/p/pkg*`, ''].join('\n'), `${c.errno}-${name}`)
        const good = await viewctlRun(['regenerate', manifest('lib/libpkg0-0.so', 'a.yaml')])
        expect(good.code, good.stderr).toBe(0)
        const before = fullSnapshot(view)
        const b = manifest('lib/libpkg0-1.so', 'b.yaml')
        const spec = `${m.op}:${c.nth}:${c.errno}`
        const r = await viewctlRun(['regenerate', b, '--json'], { env: { VIEWCTL_TEST_FAULTS: spec } })
        expect(r.code, `${spec}: ${r.stderr}`).toBe(1)
        expect(r.json?.error?.code, spec).toBe(c.code)
        expect(r.stderr, spec).toMatch(c.text)
        noStackTrace(r.stderr)
        expect(leftovers(view), spec).toEqual([])
        expect(fullSnapshot(view), spec).toEqual(before)
        const ok = await viewctlRun(['regenerate', b])
        expect(ok.code, ok.stderr).toBe(0)
        assertCompleteGeneration(view)
      }),
    )
  })
})

// ---------------------------------------------------------------------------
// Real faults

function mountPointOf(p: string): string {
  let cur = fs.realpathSync(p)
  const dev = fs.statSync(cur).dev
  for (;;) {
    const parent = path.dirname(cur)
    if (parent === cur || fs.statSync(parent).dev !== dev) return cur
    cur = parent
  }
}

function mentions(text: string, p: string): boolean {
  const esc = p.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
  return new RegExp(`(^|[\\s(\`'"])${esc}($|[\\s)\`'",:;])`).test(text)
}

describe('hardlinks across filesystems', () => {
  it('from a tmpfs prefix into a view on the disk: exit 1 naming both filesystems and suggesting link: symlink; view unchanged', (ctx) => {
    const root = tempDir()
    let prefixBase: string
    if (fs.existsSync('/dev/shm') && fs.statSync('/dev/shm').dev !== fs.statSync(root).dev) {
      prefixBase = fs.mkdtempSync('/dev/shm/viewctl-xdev-')
      onTestFinished(() => fs.rmSync(prefixBase, { recursive: true, force: true }))
    } else {
      requireMount(ctx)
      prefixBase = mountTmpfs('size=8m')
    }
    expect(fs.statSync(prefixBase).dev).not.toBe(fs.statSync(root).dev)
    const prefixes = makePrefixes(prefixBase, 2, 3)
    const view = path.join(root, 'view')
    const manifest = (link: string) => writeManifest(root, [`view: ${view}`, `link: ${link}`, 'packages:', ...prefixes.map((p) => `  - ${p}`), ''].join('\n'), `${link}.yaml`)
    const good = viewctl(['regenerate', manifest('symlink')])
    expect(good.code, good.stderr).toBe(0)
    const before = fullSnapshot(view)

    const r = viewctl(['regenerate', manifest('hardlink'), '--json'])
    expect(r.code, r.stderr).toBe(1)
    expect(r.json.error.code).toBe('XDEV_HARDLINK')
    const msg = r.stderr
    const prefixFs = mountPointOf(prefixBase)
    const viewFs = mountPointOf(root)
    expect(prefixFs).not.toBe(viewFs)
    expect(mentions(msg, prefixFs), `the message should name the prefix's filesystem ${prefixFs}:\n${msg}`).toBe(true)
    expect(mentions(msg, viewFs), `the message should name the view's filesystem ${viewFs}:\n${msg}`).toBe(true)
    expect(msg).toContain('link: symlink')
    noStackTrace(msg)
    expect(fullSnapshot(view)).toEqual(before)
    expect(leftovers(view)).toEqual([])
  })
})

describe('no write permission on the view parent', () => {
  const install = publicInstall()
  /**
   * As root, run viewctl as nobody (setpriv); otherwise make the parent read-only.
   * nobody needs to read node, viewctl and the test tree: viewctl runs from a
   * world-readable copy (publicInstall: the checkout may be in a 0700 directory),
   * and the test tree is opened up with chmod 755 (mkdtemp makes it 0700).
   */
  function unprivileged(args: string[], cwd: string): RunResult {
    const bin = isRoot ? install().bin : BIN
    const argv = isRoot ? ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, bin, ...args] : [bin, ...args]
    const r = spawnSync(isRoot ? 'setpriv' : process.execPath, argv, { cwd, encoding: 'utf8', env: { ...process.env, HOME: '/nonexistent' }, timeout: 60_000 })
    let json: any
    try {
      json = args.includes('--json') ? JSON.parse(r.stdout) : undefined
    } catch {
      json = undefined
    }
    return { code: r.status ?? -1, stdout: r.stdout ?? '', stderr: (r.stderr ?? '') + (r.error ? String(r.error) : ''), json }
  }

  function setup() {
    const root = tempDir()
    fs.chmodSync(root, 0o755)
    const prefixes = makePrefixes(path.join(root, 'p'), 3, 2)
    const parent = path.join(root, 'views')
    fs.mkdirSync(parent)
    // whatever the umask: nobody must read the prefixes and manifests, but not write the parent
    expect(spawnSync('chmod', ['-R', 'u=rwX,go=rX', root]).status).toBe(0)
    if (isRoot) {
      const probe = unprivileged(['--version'], root)
      expect(probe.code, `nobody (uid 65534) cannot run ${install().bin} with ${process.execPath}: ${probe.stderr}`).toBe(0)
    }
    return { root, prefixes, parent }
  }

  function readOnlyParent(parent: string) {
    if (isRoot) return
    fs.chmodSync(parent, 0o555)
    onTestFinished(() => fs.chmodSync(parent, 0o755))
  }

  it('an existing view: exit 1, "permission denied" naming the path, no stack trace, view unchanged', () => {
    const { root, prefixes, parent } = setup()
    const view = path.join(parent, 'view')
    const a = writeManifest(root, `view: ${view}\npackages:\n  - ${prefixes[0]}\n`, 'a.yaml')
    const b = writeManifest(root, `view: ${view}\npackages:\n${prefixes.map((p) => `  - ${p}\n`).join('')}`, 'b.yaml')
    expect(viewctl(['regenerate', a]).code).toBe(0)
    readOnlyParent(parent)
    const before = fullSnapshot(view)
    const r = unprivileged(['regenerate', b, '--json'], root)
    expect(r.code, r.stdout + r.stderr).toBe(1)
    expect(r.json?.error?.code).toBe('PERMISSION')
    expect(r.stderr).toMatch(/permission denied/i)
    expect(r.stderr).toContain(storeOf(view))
    noStackTrace(r.stderr)
    expect(fullSnapshot(view)).toEqual(before)
    expect(leftovers(view)).toEqual([])
  })

  it('a new view: exit 1, "permission denied" naming the path, nothing created', () => {
    const { root, prefixes, parent } = setup()
    const view = path.join(parent, 'fresh')
    const m = writeManifest(root, `view: ${view}\npackages:\n  - ${prefixes[0]}\n`, 'fresh.yaml')
    readOnlyParent(parent)
    const r = unprivileged(['regenerate', m], root)
    expect(r.code, r.stdout + r.stderr).toBe(1)
    expect(r.stderr).toMatch(/permission denied/i)
    expect(r.stderr).toContain(parent)
    noStackTrace(r.stderr)
    expect(fs.readdirSync(parent)).toEqual([])
  })
})

/** A build that ran out of space: exit 1 checked by the caller; DISK_FULL, a plain message, the view as it was, nothing left. */
function expectDiskFullAndUnchanged(r: RunResult, view: string, before: ReturnType<typeof fullSnapshot>): void {
  expect(r.json?.error?.code).toBe('DISK_FULL')
  expect(r.stderr).toMatch(/no space/i)
  // links are named from inside the store (src/store/build/workdir.ts), but a message names a place by its absolute path
  expect(r.stderr.match(/.?\.staging-/g)?.every((m) => m.startsWith('/')) ?? true, r.stderr).toBe(true)
  noStackTrace(r.stderr)
  expect(fullSnapshot(view)).toEqual(before)
  expect(leftovers(view)).toEqual([])
}

describe('disk full on a small tmpfs', () => {
  it('out of blocks (a copy view of big files): exit 1, "no space", view unchanged, staging removed', (ctx) => {
    requireMount(ctx)
    const mnt = mountTmpfs('size=2m,nr_inodes=1000')
    const root = tempDir()
    const small = writeTree(path.join(root, 'small'), { 'bin/tool': 'small tool\n' })
    const bigFiles: Record<string, string> = {}
    for (let i = 0; i < 6; i++) bigFiles[`lib/big${i}.so`] = 'x'.repeat(1 << 20)
    const big = writeTree(path.join(root, 'big'), bigFiles)
    const view = path.join(mnt, 'view')
    const good = viewctl(['regenerate', writeManifest(root, `view: ${view}\nlink: copy\npackages:\n  - ${small}\n`, 'small.yaml')])
    expect(good.code, good.stderr).toBe(0)
    const before = fullSnapshot(view)

    const r = viewctl(['regenerate', writeManifest(root, `view: ${view}\nlink: copy\npackages:\n  - ${small}\n  - ${big}\n`, 'big.yaml'), '--json'])
    expect(r.code, r.stderr).toBe(1)
    expectDiskFullAndUnchanged(r, view, before)
    expect(fs.readFileSync(path.join(view, 'bin', 'tool'), 'utf8')).toBe('small tool\n')
  })

  it('out of inodes (a symlink view of many entries): exit 1, "no space", view unchanged, staging removed', (ctx) => {
    requireMount(ctx)
    const mnt = mountTmpfs('size=16m,nr_inodes=200')
    const root = tempDir()
    const prefixes = makeWidePrefixes(path.join(root, 'p'), 20, 10) // 800 files
    const view = path.join(mnt, 'view')
    const good = viewctl(['regenerate', writeManifest(root, `view: ${view}\nfold: false\npackages:\n  - ${prefixes[0]}\n`, 'small.yaml')])
    expect(good.code, good.stderr).toBe(0)
    const before = fullSnapshot(view)
    const inodesBefore = fs.statfsSync(mnt).ffree

    const r = viewctl(['regenerate', writeManifest(root, `view: ${view}\nfold: false\npackages:\n  - glob: ${root}/p/pkg*\n`, 'big.yaml'), '--json'])
    expect(r.code, r.stderr).toBe(1)
    expectDiskFullAndUnchanged(r, view, before)
    expect(fs.statfsSync(mnt).ffree, 'inodes of the failed build were not all freed').toBe(inodesBefore)
  })
  // Plans of 12,000+ links are linked by the main thread and a worker thread (src/store/build/linker.ts);
  // injected faults turn that off, so only a real ENOSPC reaches a worker.
  it('out of inodes while linking on worker threads (12,800 links): exit 1, "no space", view unchanged, staging removed', async (ctx) => {
    requireMount(ctx)
    expect(fs.existsSync(path.join(ROOT, 'dist', 'store', 'build', 'link-worker.js')), 'dist/store/build/link-worker.js is missing: this test would not reach a worker thread').toBe(true)
    const mnt = mountTmpfs('size=64m,nr_inodes=3000')
    const root = mountTmpfs('size=64m') // prefixes on a tmpfs too: 12,800 files are made in a blink
    const prefixes = makeWidePrefixes(path.join(root, 'p'), 40, 80) // 12,800 files
    const view = path.join(mnt, 'view')
    const good = await viewctlRun(['regenerate', writeManifest(root, `view: ${view}\nfold: false\npackages:\n  - ${prefixes[0]}\n`, 'small.yaml')])
    expect(good.code, good.stderr).toBe(0)
    const before = fullSnapshot(view)
    const inodesBefore = fs.statfsSync(mnt).ffree

    const big = writeManifest(root, `view: ${view}\nfold: false\npackages:\n  - glob: ${root}/p/pkg*\n`, 'big.yaml')
    const r = await viewctlRun(['regenerate', big, '--json'], { env: { VIEWCTL_JOBS: '2' } })
    expect(r.code, r.stderr).toBe(1)
    expectDiskFullAndUnchanged(r, view, before)
    expect(fs.statfsSync(mnt).ffree, 'inodes of the failed build were not all freed').toBe(inodesBefore)
  })
})
