/**
 * viewctl push (DESIGN §15, docs/replication.md) against a private sshd on
 * loopback: the remote end is this machine reached through ssh, running
 * this checkout's viewctl, writing into another directory.
 */
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { spawn } from 'node:child_process'
import { describe, expect, it, onTestFinished } from 'vitest'
import { ROOT, publicInstall, tempDir, viewctl, writeManifest } from './helpers.js'
import { historyRecords, storeOf, treeOf, waitFor } from './view-checks.js'
import { buildView, dest, lockIsFree, makeTree, push, remoteOptions, requirePush, useSshd } from './push-helpers.js'
import { push as pushFrom } from '../src/ops/replicate/push.js'

const sshd = useSshd()

/** Every name in the store that a finished push must not leave: staging, trash, the session file. */
function pushLeftovers(view: string): string[] {
  try {
    return fs.readdirSync(storeOf(view)).filter((n) => n.startsWith('.staging-') || n.startsWith('.trash-') || n.startsWith('.push-'))
  } catch {
    return []
  }
}

/** Entries of `after`'s tree that are also in `before`'s, the same (link target, or mode and bytes), and how many of those share the inode. */
function sharedInodes(before: string, after: string): { same: number; shared: number } {
  const a = treeOf(before, 'content')
  const b = treeOf(after, 'content')
  let same = 0
  let shared = 0
  for (const [rel, what] of Object.entries(b)) {
    if (what === 'dir' || a[rel] !== what) continue
    same++
    const ia = fs.lstatSync(path.join(fs.realpathSync(before), rel)).ino
    const ib = fs.lstatSync(path.join(fs.realpathSync(after), rel)).ino
    if (ia === ib) shared++
  }
  return { same, shared }
}

/**
 * A view pushed once, then a new generation of it built here (one file added
 * to a prefix): its hash is `next`. `unchangedThere` checks that the other
 * host still shows the first generation, its journal as it was, with no
 * other tree, no leftovers and its lock free.
 */
function pushedThenChanged(): { view: string; remote: string; next: string; unchangedThere: () => void } {
  const root = tempDir()
  const prefixes = makeTree(path.join(root, 'p'), 3, 3)
  const view = path.join(root, 'hpc')
  const { manifest, hash } = buildView(root, view, prefixes)
  const remote = path.join(root, 'r', 'hpc')
  expect(push(sshd(), view, [dest(sshd(), remote)]).code).toBe(0)
  const journal = fs.readFileSync(path.join(storeOf(remote), 'history.jsonl'), 'utf8')
  fs.writeFileSync(path.join(prefixes[0]!, 'bin', 'pkg0-new'), 'x')
  const regen = viewctl(['regenerate', manifest, '--json'])
  expect(regen.code, regen.stderr).toBe(0)
  const unchangedThere = () => {
    expect(fs.readlinkSync(remote)).toBe(`._hpc/${hash}`)
    expect(fs.readFileSync(path.join(storeOf(remote), 'history.jsonl'), 'utf8')).toBe(journal)
    expect(fs.readdirSync(storeOf(remote)).filter((n) => /^[0-9a-f]{32}$/.test(n))).toEqual([hash])
    expect(pushLeftovers(remote)).toEqual([])
    expect(lockIsFree(remote)).toBe(true)
  }
  return { view, remote, next: regen.json.hash, unchangedThere }
}

describe('push of a symlink view', () => {
  it('makes the current generation there from its plan, which verifies there, with a journal record that says where it came from', (ctx) => {
    requirePush(ctx)
    const root = tempDir()
    const prefixes = makeTree(path.join(root, 'p'), 6, 5)
    const view = path.join(root, 'src', 'hpc')
    fs.mkdirSync(path.dirname(view))
    const { hash } = buildView(root, view, prefixes, ['env:', '  PATH: [bin]'])
    const remote = path.join(root, 'remote', 'hpc')

    const r = push(sshd(), view, [dest(sshd(), remote)], ['--json'])
    expect(r.code, r.stderr).toBe(0)
    const d = r.json.destinations[0]
    expect(d).toMatchObject({ ok: true, exitCode: 0, action: 'pushed', generation: 1, hash, switched: true, mode: 'plan', resumed: false, linked: 0 })
    expect(d.created).toBeGreaterThan(0)
    expect(fs.readlinkSync(remote)).toBe(`._hpc/${hash}`)
    // the generation files there are the sender's, byte for byte
    for (const name of ['plan.tsv', 'meta.json', 'manifest.yaml']) {
      expect(fs.readFileSync(path.join(storeOf(remote), hash, '.viewctl', name)), name).toEqual(fs.readFileSync(path.join(storeOf(view), hash, '.viewctl', name)))
    }
    expect(treeOf(remote, 'inode')).toEqual(Object.fromEntries(Object.entries(treeOf(view, 'inode')).map(([k, v]) => [k, v.startsWith('->') || v === 'dir' ? v : expect.any(String)])))
    const v = viewctl(['verify', remote, '--json'])
    expect(v.code, v.stdout).toBe(0)
    expect(pushLeftovers(remote)).toEqual([])
    const [record] = historyRecords(remote)
    expect(record).toMatchObject({ generation: 1, hash, action: 'push', env: { PATH: ['bin'] }, origin: { host: os.hostname(), view, generation: 1, hash } })
    expect(record!.published).toBeUndefined()

    // without --json: a line for the destination, then one for the push
    const other = path.join(root, 'other', 'hpc')
    const text = push(sshd(), view, [dest(sshd(), other)])
    expect(text.code, text.stderr).toBe(0)
    expect(text.stdout).toMatch(new RegExp(`^ok +${dest(sshd(), other).replace(/[.]/g, '\\.')}: generation 1, switched; made from its plan, 0 entries shared, ${d.created} new in \\d+\\.\\d s\npushed generation 1 \\(${hash.slice(0, 12)}\\) of ${view} to 1 destination\n$`))
  }, 120_000)

  it('a second push of the same generation is a no-op: nothing recorded, nothing sent', (ctx) => {
    requirePush(ctx)
    const root = tempDir()
    const view = path.join(root, 'hpc')
    buildView(root, view, makeTree(path.join(root, 'p'), 3, 3))
    const remote = path.join(root, 'r', 'hpc')
    expect(push(sshd(), view, [dest(sshd(), remote)]).code).toBe(0)
    const journal = fs.readFileSync(path.join(storeOf(remote), 'history.jsonl'), 'utf8')
    const trees = fs.readdirSync(storeOf(remote)).sort()

    const r = push(sshd(), view, [dest(sshd(), remote)], ['--json'])
    expect(r.code, r.stderr).toBe(0)
    expect(r.json.destinations[0]).toMatchObject({ ok: true, action: 'noop', generation: 1, switched: false })
    expect(fs.readFileSync(path.join(storeOf(remote), 'history.jsonl'), 'utf8')).toBe(journal)
    expect(fs.readdirSync(storeOf(remote)).sort()).toEqual(trees)
    const text = push(sshd(), view, [dest(sshd(), remote)])
    expect(text.stdout).toMatch(/up to date/)
  }, 120_000)

  it('an incremental push after one prefix changed makes only what changed and shares the unchanged entries with the previous tree there', (ctx) => {
    requirePush(ctx)
    const root = tempDir()
    const prefixes = makeTree(path.join(root, 'p'), 10, 20)
    const view = path.join(root, 'hpc')
    const { manifest } = buildView(root, view, prefixes, ['fold: false'])
    const remote = path.join(root, 'r', 'hpc')
    expect(push(sshd(), view, [dest(sshd(), remote)]).code).toBe(0)
    const before = fs.realpathSync(remote)

    // one prefix changes: a tool added, one removed
    fs.writeFileSync(path.join(prefixes[3]!, 'bin', 'pkg3-new'), 'new\n')
    fs.rmSync(path.join(prefixes[3]!, 'bin', 'pkg3-tool0'))
    const regen = viewctl(['regenerate', manifest, '--json'])
    expect(regen.code, regen.stderr).toBe(0)

    const r = push(sshd(), view, [dest(sshd(), remote)], ['--json'])
    expect(r.code, r.stderr).toBe(0)
    const d = r.json.destinations[0]
    expect(d).toMatchObject({ ok: true, action: 'pushed', generation: 2, hash: regen.json.hash, mode: 'plan', created: 1 })
    expect(d.linked).toBeGreaterThan(700)
    expect(fs.readlinkSync(remote)).toBe(`._hpc/${regen.json.hash}`)
    expect(viewctl(['verify', remote]).code).toBe(0)
    const { same, shared } = sharedInodes(before, remote)
    expect(same).toBeGreaterThan(700)
    expect(shared / same).toBeGreaterThanOrEqual(0.9)
    expect(fs.existsSync(path.join(remote, 'bin', 'pkg3-tool0'))).toBe(false)
    expect(fs.readlinkSync(path.join(remote, 'bin', 'pkg3-new'))).toBe(path.join(prefixes[3]!, 'bin', 'pkg3-new'))
    expect(pushLeftovers(remote)).toEqual([])
  }, 120_000)

  it("the manifest's share: holds there too; a generation with other options (folded) still shares the links that did not change", (ctx) => {
    requirePush(ctx)
    const root = tempDir()
    const prefixes = makeTree(path.join(root, 'p'), 6, 20)
    const view = path.join(root, 'hpc')
    buildView(root, view, prefixes, ['fold: false', 'share: false'])
    const remote = path.join(root, 'r', 'hpc')
    expect(push(sshd(), view, [dest(sshd(), remote)]).code).toBe(0)
    const first = fs.realpathSync(remote)
    // share: false: the next generation there is made anew, as regenerate makes it here (this manifest is one line of JSON)
    fs.writeFileSync(path.join(prefixes[0]!, 'bin', 'pkg0-new'), 'new\n')
    const json = writeManifest(root, JSON.stringify({ view, fold: false, share: false, packages: prefixes }), 'json.yaml')
    expect(viewctl(['regenerate', json]).code).toBe(0)
    const unshared = push(sshd(), view, [dest(sshd(), remote)], ['--json'])
    expect(unshared.code, unshared.stderr).toBe(0)
    expect(unshared.json.destinations[0]).toMatchObject({ mode: 'plan', linked: 0 })
    const apart = sharedInodes(first, remote)
    expect(apart.same).toBeGreaterThan(300)
    expect(apart.shared).toBe(0)
    const second = fs.realpathSync(remote)
    // folded: include/<pkg> becomes one link per package, bin/, lib/ and share/ keep their links, shared with the tree there
    const { hash } = buildView(root, view, prefixes, ['fold: true'])
    const r = push(sshd(), view, [dest(sshd(), remote)], ['--json'])
    expect(r.code, r.stderr).toBe(0)
    expect(r.json.destinations[0]).toMatchObject({ mode: 'plan', hash })
    expect(viewctl(['verify', remote]).code).toBe(0)
    const { same, shared } = sharedInodes(second, remote)
    expect(same).toBeGreaterThan(300)
    expect(shared / same).toBeGreaterThanOrEqual(0.9)
  }, 120_000)

  it('a tree there changed by hand is not carried into the next generation: the entry that differs from its plan is made anew, and said', (ctx) => {
    requirePush(ctx)
    const root = tempDir()
    const prefixes = makeTree(path.join(root, 'p'), 3, 3)
    const view = path.join(root, 'hpc')
    const { manifest, hash } = buildView(root, view, prefixes, ['fold: false'])
    const remote = path.join(root, 'r', 'hpc')
    expect(push(sshd(), view, [dest(sshd(), remote)]).code).toBe(0)
    // someone re-points one link of the tree there; the next push links unchanged entries from that tree
    const damaged = path.join(storeOf(remote), hash, 'bin', 'pkg1-tool1')
    const planned = fs.readlinkSync(damaged)
    fs.rmSync(damaged)
    fs.symlinkSync('/etc/passwd', damaged)
    fs.writeFileSync(path.join(prefixes[0]!, 'bin', 'pkg0-new'), 'x')
    const regen = viewctl(['regenerate', manifest, '--json'])
    expect(regen.code).toBe(0)

    const r = push(sshd(), view, [dest(sshd(), remote)], ['--json'])
    expect(r.code, r.stdout).toBe(0)
    const d = r.json.destinations[0]
    expect(d).toMatchObject({ ok: true, mode: 'plan', hash: regen.json.hash, created: 2 })
    expect(d.warnings.join('\n')).toMatch(/1 entry of generation 1's tree .* did not match its plan .* verify --repair/)
    expect(fs.readlinkSync(path.join(remote, 'bin', 'pkg1-tool1'))).toBe(planned)
    expect(viewctl(['verify', remote]).code).toBe(0)
    expect(pushLeftovers(remote)).toEqual([])
    // the tree changed by hand stays as it is, for verify there to report
    expect(fs.readlinkSync(damaged)).toBe('/etc/passwd')
  }, 120_000)

  it('generation files that do not describe the generation (its plan edited on the sending host) are refused there: TRANSFER_FAILED, nothing built, recorded or switched', (ctx) => {
    requirePush(ctx)
    const { view, remote, next, unchangedThere } = pushedThenChanged()
    // one entry of the new generation's plan renamed by hand here: the plan no longer hashes to the generation's name
    const plan = path.join(storeOf(view), next, '.viewctl', 'plan.tsv')
    const text = fs.readFileSync(plan, 'utf8')
    expect(text).toContain('pkg0-new')
    fs.writeFileSync(plan, text.replace('pkg0-new', 'pkg0-evil'))

    const r = push(sshd(), view, [dest(sshd(), remote)], ['--json'])
    expect(r.code, r.stdout).toBe(1)
    const e = r.json.destinations[0].error
    expect(e.code).toBe('TRANSFER_FAILED')
    expect(e.message).toMatch(new RegExp(`the generation files sent for ${next} do not describe it .*plan\\.tsv: meta, does not hash to ${next}`))
    expect(e.hint).toMatch(/viewctl verify/)
    unchangedThere()
  }, 120_000)

  it('interrupted before the commit (SIGINT, SIGTERM): the receiver there is told to abort; nothing is built, recorded or switched there', async (ctx) => {
    requirePush(ctx)
    const { view, remote, unchangedThere } = pushedThenChanged()
    // the library's push, as the command line runs it, with the signal the CLI aborts on SIGINT
    const [, ssh, , remoteViewctl] = remoteOptions(sshd())
    const r = await pushFrom(view, [dest(sshd(), remote)], { ssh, remoteViewctl, signal: AbortSignal.abort('SIGINT') })
    expect(r.ok).toBe(false)
    expect(r.destinations[0]!.error).toMatchObject({ code: 'INTERRUPTED', message: expect.stringMatching(/was not changed/) })
    unchangedThere()
  }, 120_000)

  it('--no-switch copies and records without publishing; a later push (or a rollback there) switches to it', (ctx) => {
    requirePush(ctx)
    const root = tempDir()
    const prefixes = makeTree(path.join(root, 'p'), 3, 3)
    const view = path.join(root, 'hpc')
    const { manifest, hash: first } = buildView(root, view, prefixes)
    const remote = path.join(root, 'r', 'hpc')
    expect(push(sshd(), view, [dest(sshd(), remote)]).code).toBe(0)
    fs.writeFileSync(path.join(prefixes[0]!, 'bin', 'extra'), 'x')
    const second = viewctl(['regenerate', manifest, '--json']).json.hash as string

    const r = push(sshd(), view, [dest(sshd(), remote)], ['--no-switch', '--json'])
    expect(r.code, r.stderr).toBe(0)
    expect(r.json.destinations[0]).toMatchObject({ ok: true, generation: 2, switched: false })
    expect(fs.readlinkSync(remote)).toBe(`._hpc/${first}`)
    expect(fs.existsSync(path.join(storeOf(remote), second, '.viewctl', 'meta.json'))).toBe(true)
    expect(historyRecords(remote).at(-1)).toMatchObject({ generation: 2, hash: second, action: 'push', published: false })
    const list = viewctl(['list', remote, '--json'])
    expect(list.json.generations.map((g: { generation: number; current: boolean }) => [g.generation, g.current])).toEqual([
      [1, true],
      [2, false],
    ])
    // the tree is there, not shown: a push without --no-switch only records and switches
    const now = push(sshd(), view, [dest(sshd(), remote)], ['--json'])
    expect(now.code, now.stderr).toBe(0)
    expect(now.json.destinations[0]).toMatchObject({ action: 'recorded', generation: 3, hash: second, switched: true })
    expect(fs.readlinkSync(remote)).toBe(`._hpc/${second}`)
    // shown: pushing it again is a no-op; there, a rollback goes back, and --to 2 would have switched as well
    expect(push(sshd(), view, [dest(sshd(), remote)], ['--json']).json.destinations[0].action).toBe('noop')
    expect(viewctl(['rollback', remote, '--to', '1']).code).toBe(0)
    expect(viewctl(['rollback', remote, '--to', '2']).code).toBe(0)
    expect(fs.readlinkSync(remote)).toBe(`._hpc/${second}`)
  }, 120_000)

  it('records a settings change when only the recorded env: differs', (ctx) => {
    requirePush(ctx)
    const root = tempDir()
    const prefixes = makeTree(path.join(root, 'p'), 2, 2)
    const view = path.join(root, 'hpc')
    const { hash } = buildView(root, view, prefixes, ['env:', '  PATH: [bin]'])
    const remote = path.join(root, 'r', 'hpc')
    expect(push(sshd(), view, [dest(sshd(), remote)]).code).toBe(0)
    buildView(root, view, prefixes, ['env:', '  PATH: [bin, sbin]'])
    const r = push(sshd(), view, [dest(sshd(), remote)], ['--json'])
    expect(r.code, r.stderr).toBe(0)
    expect(r.json.destinations[0]).toMatchObject({ ok: true, generation: 2, hash, switched: true, settingsChanged: true })
    expect(historyRecords(remote).map((h) => [h.generation, h.hash, (h.env as Record<string, string[]>).PATH])).toEqual([
      [1, hash, ['bin']],
      [2, hash, ['bin', 'sbin']],
    ])
    const act = viewctl(['activate', remote, '--shell', 'sh'])
    expect(act.stdout).toContain(`${remote}/sbin`)
  }, 120_000)

  it('keeps the module tree of the receiving host current: a pushed generation carries its modules: setting', (ctx) => {
    requirePush(ctx)
    const root = tempDir()
    const prefixes = makeTree(path.join(root, 'p'), 2, 2)
    const view = path.join(root, 'hpc')
    // one machine plays both hosts, so both views name the same module directory: the receiver's write is seen by its path
    const moduleDir = path.join(root, 'modulefiles')
    buildView(root, view, prefixes, ['modules:', `  dir: ${moduleDir}`])
    const current = path.join(moduleDir, 'hpc', 'current.lua')
    expect(fs.readFileSync(current, 'utf8')).toContain(`[[${view}/bin]]`) // the control: the sending host wrote it for its own view
    const remote = path.join(root, 'r', 'hpc')
    const r = push(sshd(), view, [dest(sshd(), remote)], ['--json'])
    expect(r.code, r.stderr).toBe(0)
    expect(historyRecords(remote)[0]).toMatchObject({ action: 'push', modules: { dir: moduleDir } })
    const text = fs.readFileSync(current, 'utf8')
    expect(text).toContain(`[[${remote}/bin]]`)
    expect(text).not.toContain(`[[${view}/bin]]`)
  }, 120_000)

  it('pushes file names with spaces, newlines and bytes that are not UTF-8, cold and incrementally', (ctx) => {
    requirePush(ctx)
    const root = tempDir()
    const prefix = path.join(root, 'p', 'odd')
    fs.mkdirSync(path.join(prefix, 'bin'), { recursive: true })
    fs.mkdirSync(path.join(prefix, 'share', 'a dir\nwith newline'), { recursive: true })
    fs.writeFileSync(path.join(prefix, 'bin', 'with space'), 'x')
    fs.writeFileSync(path.join(prefix, 'bin', 'new\nline'), 'x')
    fs.writeFileSync(path.join(prefix, 'share', 'a dir\nwith newline', 'tab\there'), 'x')
    const latin1 = Buffer.concat([Buffer.from(path.join(prefix, 'bin') + '/'), Buffer.from([0x63, 0x61, 0x66, 0xe9])]) // "café" in Latin-1
    fs.writeFileSync(latin1, 'x')
    const view = path.join(root, 'odd view')
    const { manifest } = buildView(root, view, [prefix, ...makeTree(path.join(root, 'q'), 1, 2)], ['fold: false'])
    const remote = path.join(root, 'r e', 'odd view')

    const r = push(sshd(), view, [dest(sshd(), remote)], ['--json'])
    expect(r.code, r.stderr).toBe(0)
    const names = fs.readdirSync(Buffer.from(path.join(remote, 'bin')), { encoding: 'buffer' }).map((b) => b.toString('hex'))
    expect(names).toContain(Buffer.from([0x63, 0x61, 0x66, 0xe9]).toString('hex'))
    expect(fs.readlinkSync(path.join(remote, 'bin', 'new\nline'))).toBe(path.join(prefix, 'bin', 'new\nline'))
    expect(viewctl(['verify', remote]).code).toBe(0)

    // incrementally: one more odd name
    const latin2 = Buffer.concat([Buffer.from(path.join(prefix, 'bin') + '/'), Buffer.from([0x6e, 0xe4, 0x20, 0x0a])])
    fs.writeFileSync(latin2, 'y')
    expect(viewctl(['regenerate', manifest]).code).toBe(0)
    const again = push(sshd(), view, [dest(sshd(), remote)], ['--json'])
    expect(again.code, again.stderr).toBe(0)
    expect(again.json.destinations[0]).toMatchObject({ mode: 'plan', created: 1 })
    expect(fs.readlinkSync(Buffer.concat([Buffer.from(path.join(remote, 'bin') + '/'), Buffer.from([0x6e, 0xe4, 0x20, 0x0a])]), { encoding: 'buffer' }).equals(latin2)).toBe(true)
    expect(viewctl(['verify', remote]).code).toBe(0)

    // a copy view of the same names travels by rsync, and is checked against its plan there
    const copyView = path.join(root, 'odd copy')
    buildView(root, copyView, [prefix], ['link: copy'], 'copy.yaml')
    const copyRemote = path.join(root, 'r e', 'odd copy')
    const copied = push(sshd(), copyView, [dest(sshd(), copyRemote)], ['--json'])
    expect(copied.code, copied.stdout + copied.stderr).toBe(0)
    expect(copied.json.destinations[0]).toMatchObject({ mode: 'full' })
    const hexNames = (dir: string) => fs.readdirSync(Buffer.from(dir), { encoding: 'buffer' }).map((n) => n.toString('hex')).sort()
    expect(hexNames(path.join(copyRemote, 'bin'))).toEqual(hexNames(path.join(copyView, 'bin')))
    expect(hexNames(path.join(copyRemote, 'bin'))).toContain(Buffer.from([0x6e, 0xe4, 0x20, 0x0a]).toString('hex'))
    expect(fs.readFileSync(Buffer.concat([Buffer.from(path.join(copyRemote, 'bin') + '/'), Buffer.from([0x63, 0x61, 0x66, 0xe9])]), 'utf8')).toBe('x')
    expect(viewctl(['verify', copyRemote]).code).toBe(0)
  }, 120_000)
})

describe('push of copy and hardlink views', () => {
  it('a copy view travels whole and self-contained; an incremental push shares the unchanged files there (--link-dest) and leaves the older tree untouched', (ctx) => {
    requirePush(ctx)
    const root = tempDir()
    const prefixes = makeTree(path.join(root, 'p'), 4, 10)
    const view = path.join(root, 'hpc')
    const { manifest } = buildView(root, view, prefixes, ['link: copy'])
    const remote = path.join(root, 'r', 'hpc')
    expect(push(sshd(), view, [dest(sshd(), remote)]).code).toBe(0)
    expect(treeOf(remote, 'content')).toEqual(treeOf(view, 'content'))
    expect(viewctl(['verify', remote]).code).toBe(0)
    const before = fs.realpathSync(remote)

    fs.writeFileSync(path.join(prefixes[1]!, 'bin', 'pkg1-tool2'), 'changed\n')
    expect(viewctl(['regenerate', manifest]).code).toBe(0)
    const r = push(sshd(), view, [dest(sshd(), remote)], ['--json'])
    expect(r.code, r.stderr).toBe(0)
    expect(r.json.destinations[0]).toMatchObject({ mode: 'full', generation: 2 })
    expect(fs.readFileSync(path.join(remote, 'bin', 'pkg1-tool2'), 'utf8')).toBe('changed\n')
    expect(treeOf(remote, 'content')).toEqual(treeOf(view, 'content'))
    // the generations here share their unchanged copies (DESIGN §17), so rsync finds them unchanged and links them there too
    const { same, shared } = sharedInodes(before, remote)
    expect(same).toBeGreaterThan(100)
    expect(shared / same).toBeGreaterThanOrEqual(0.9)
    // rsync wrote a new file beside the old one, never through it (no --inplace): the older generation there is intact
    expect(fs.readFileSync(path.join(before, 'bin', 'pkg1-tool2'), 'utf8')).toBe('pkg1 2\n')
  }, 120_000)

  it('a hardlink view travels as its manifest and is rebuilt there from the same prefixes', (ctx) => {
    requirePush(ctx)
    const root = tempDir()
    const prefixes = makeTree(path.join(root, 'p'), 3, 4)
    const view = path.join(root, 'hpc')
    const { hash } = buildView(root, view, prefixes.map((p) => path.relative(root, p)), ['link: hardlink'])
    const remote = path.join(root, 'r', 'hpc')
    const r = push(sshd(), view, [dest(sshd(), remote)], ['--json'])
    expect(r.code, r.stderr).toBe(0)
    const d = r.json.destinations[0]
    expect(d).toMatchObject({ ok: true, action: 'rebuilt', generation: 1, switched: true })
    // the hash covers the source directories' inodes: here both ends see the same ones (push-hosts.test.ts has another host's)
    expect(d.hash).toBe(hash)
    expect(viewctl(['verify', remote]).code).toBe(0)
    const plan = (v: string) => fs.readFileSync(path.join(fs.realpathSync(v), '.viewctl', 'plan.tsv'), 'utf8')
    expect(plan(remote)).toBe(plan(view))
    expect(fs.statSync(path.join(remote, 'bin', 'pkg0-tool0')).ino).toBe(fs.statSync(path.join(prefixes[0]!, 'bin', 'pkg0-tool0')).ino)
    expect(historyRecords(remote)[0]).toMatchObject({ action: 'push', hash: d.hash, origin: { hash } })
    // its manifest names the view there, and the relative package paths as they resolved on the sending host
    const copied = fs.readFileSync(path.join(fs.realpathSync(remote), '.viewctl', 'manifest.yaml'), 'utf8')
    expect(copied).toContain(`view: ${JSON.stringify(remote)}`)
    expect(copied).toContain(`- ${JSON.stringify(prefixes[1])}`)
    // again: nothing to do
    expect(push(sshd(), view, [dest(sshd(), remote)], ['--json']).json.destinations[0].action).toBe('noop')
  }, 120_000)
})

describe('what a push refuses', () => {
  it('a destination that is not [user@]host:/abs/path: exit 2 before anything is sent', (ctx) => {
    requirePush(ctx)
    const root = tempDir()
    const view = path.join(root, 'hpc')
    buildView(root, view, makeTree(path.join(root, 'p'), 1, 1))
    for (const bad of ['localonly', 'host:relative/path', 'rsync://host/x', 'host::module/x', ':/x']) {
      const r = push(sshd(), view, [dest(sshd(), path.join(root, 'ok')), bad], ['--json'])
      expect(r.code, bad).toBe(2)
      expect(r.json.error.code).toBe('BAD_DESTINATION')
      expect(fs.existsSync(path.join(root, 'ok'))).toBe(false)
    }
  }, 60_000)

  it('a prefix missing on the remote host: refused before the swap, with the missing prefixes listed; the view there is unchanged', (ctx) => {
    requirePush(ctx)
    const root = tempDir()
    const prefixes = makeTree(path.join(root, 'p'), 3, 2)
    const view = path.join(root, 'hpc')
    const { manifest } = buildView(root, view, prefixes)
    const remote = path.join(root, 'r', 'hpc')
    expect(push(sshd(), view, [dest(sshd(), remote)]).code).toBe(0)
    const before = fs.readlinkSync(remote)
    const journal = fs.readFileSync(path.join(storeOf(remote), 'history.jsonl'), 'utf8')
    // a new prefix, built into a generation here, then gone (this host and the "remote" share one filesystem)
    const extra = makeTree(path.join(root, 'gone'), 1, 2)[0]!
    fs.writeFileSync(manifest, fs.readFileSync(manifest, 'utf8') + `  - ${JSON.stringify(extra)}\n`)
    expect(viewctl(['regenerate', manifest]).code).toBe(0)
    fs.rmSync(extra, { recursive: true })

    const r = push(sshd(), view, [dest(sshd(), remote)], ['--json'])
    expect(r.code).toBe(2)
    const d = r.json.destinations[0]
    expect(d.error.code).toBe('PREFIX_MISSING')
    expect(d.error.message).toContain(extra)
    expect(d.error.hint).toMatch(/--with-prefixes/)
    expect(fs.readlinkSync(remote)).toBe(before)
    expect(fs.readFileSync(path.join(storeOf(remote), 'history.jsonl'), 'utf8')).toBe(journal)
    expect(pushLeftovers(remote)).toEqual([])
  }, 120_000)

  it('the remote writer lock held: exit 4 naming the holder, the remote view unchanged', async (ctx) => {
    requirePush(ctx)
    const root = tempDir()
    const view = path.join(root, 'hpc')
    const { manifest } = buildView(root, view, makeTree(path.join(root, 'p'), 2, 2))
    const remote = path.join(root, 'r', 'hpc')
    expect(push(sshd(), view, [dest(sshd(), remote)]).code).toBe(0)
    fs.writeFileSync(path.join(root, 'p', 'pkg0', 'bin', 'more'), 'x')
    expect(viewctl(['regenerate', manifest]).code).toBe(0)
    const before = fs.readlinkSync(remote)
    const holder = await holdLock(path.join(storeOf(remote), '.lock'))

    const started = Date.now()
    const r = push(sshd(), view, [dest(sshd(), remote)], ['--lock-timeout', '1', '--json'])
    expect(r.code, r.stderr).toBe(4)
    expect(Date.now() - started).toBeGreaterThanOrEqual(1000)
    const d = r.json.destinations[0]
    expect(d).toMatchObject({ ok: false, exitCode: 4, error: { code: 'LOCK_TIMEOUT' } })
    expect(d.error.message).toContain(`pid ${holder.pid}`)
    expect(fs.readlinkSync(remote)).toBe(before)
    expect(pushLeftovers(remote)).toEqual([])
    holder.kill('SIGKILL')
    const after = push(sshd(), view, [dest(sshd(), remote)])
    expect(after.code, after.stderr).toBe(0)
  }, 120_000)

  it('a remote viewctl with another push protocol: refused (exit 2), nothing written there', (ctx) => {
    requirePush(ctx)
    const root = tempDir()
    const view = path.join(root, 'hpc')
    buildView(root, view, makeTree(path.join(root, 'p'), 1, 2))
    const other = otherProtocol()
    const remote = path.join(root, 'r', 'hpc')
    const r = viewctl(['push', view, dest(sshd(), remote), ...remoteOptions(sshd(), other), '--json'])
    expect(r.code, r.stderr).toBe(2)
    const d = r.json.destinations[0]
    expect(d.error.code).toBe('PROTOCOL_MISMATCH')
    expect(d.error.message).toMatch(/protocol 99/)
    expect(fs.existsSync(storeOf(remote))).toBe(false)
    // a remote command that is no viewctl at all
    const none = viewctl(['push', view, dest(sshd(), remote), ...remoteOptions(sshd(), '/nonexistent/viewctl'), '--json'])
    expect(none.code).toBe(2)
    expect(none.json.destinations[0].error.message).toMatch(/not found/)
  }, 120_000)
})

describe('several destinations', () => {
  it('run in parallel, each reported; the exit code is that of the first failed destination in the order given', async (ctx) => {
    requirePush(ctx)
    const root = tempDir()
    const view = path.join(root, 'hpc')
    const { hash } = buildView(root, view, makeTree(path.join(root, 'p'), 2, 3))
    const views = ['a', 'b', 'c', 'd'].map((n) => path.join(root, 'r', n, 'hpc'))
    fs.mkdirSync(views[3]!, { recursive: true }) // a real directory: not a view (exit 1)
    fs.writeFileSync(path.join(views[3]!, 'file'), 'x')
    fs.mkdirSync(storeOf(views[1]!), { recursive: true })
    const holder = await holdLock(path.join(storeOf(views[1]!), '.lock')) // locked (exit 4)

    const r = push(sshd(), view, views.map((v) => dest(sshd(), v)), ['--parallel', '3', '--lock-timeout', '0', '--json'])
    expect(r.code).toBe(4)
    expect(r.json.ok).toBe(false)
    expect(r.json.destinations.map((d: { ok: boolean; exitCode: number }) => [d.ok, d.exitCode])).toEqual([
      [true, 0],
      [false, 4],
      [true, 0],
      [false, 1],
    ])
    expect(fs.readlinkSync(views[0]!)).toBe(`._hpc/${hash}`)
    expect(fs.readlinkSync(views[2]!)).toBe(`._hpc/${hash}`)
    // in the other order, the real directory comes first
    const r2 = push(sshd(), view, [views[3]!, views[1]!].map((v) => dest(sshd(), v)), ['--lock-timeout', '0'])
    expect(r2.code).toBe(1)
    expect(r2.stderr).toMatch(/real directory/)
    holder.kill('SIGKILL')
    const r3 = push(sshd(), view, views.slice(0, 3).map((v) => dest(sshd(), v)), ['--json'])
    expect(r3.code, r3.stderr).toBe(0)
    expect(r3.json.destinations.map((d: { action: string }) => d.action)).toEqual(['noop', 'pushed', 'noop'])
  }, 120_000)
})

/** A process that holds `lockFile`'s writer lock (an OFD lock, as viewctl takes it) until killed. */
async function holdLock(lockFile: string): Promise<ReturnType<typeof spawn>> {
  const script = `
    const fs = require('fs')
    const { tryLock } = require(${JSON.stringify(path.join(ROOT, 'node_modules', 'fs-native-extensions'))})
    const fd = fs.openSync(process.argv[1], fs.constants.O_RDWR | fs.constants.O_CREAT, 0o600)
    if (!tryLock(fd)) { console.log('busy'); process.exit(1) }
    fs.ftruncateSync(fd, 0)
    fs.writeSync(fd, JSON.stringify({ host: require('os').hostname(), pid: process.pid, started: new Date().toISOString(), command: 'a test holding the lock' }) + '\\n')
    console.log('locked')
    setInterval(() => {}, 1000)
  `
  const child = spawn(process.execPath, ['-e', script, lockFile], { stdio: ['ignore', 'pipe', 'inherit'] })
  onTestFinished(() => void child.kill('SIGKILL'))
  let out = ''
  child.stdout!.on('data', (d) => (out += d))
  expect(await waitFor(() => out.includes('locked') || out.includes('busy'), 10_000, 10)).toBeTruthy()
  expect(out).toContain('locked')
  return child
}

const install = publicInstall()

/** A copy of this viewctl whose push protocol is 99: another version that cannot take part. */
function otherProtocol(): string {
  const copy = install()
  const bundle = path.join(copy.dist, 'bundle')
  let patched = 0
  for (const name of fs.readdirSync(bundle)) {
    const file = path.join(bundle, name)
    const text = fs.readFileSync(file, 'utf8')
    if (!/var PROTOCOL = \d+;/.test(text)) continue
    fs.writeFileSync(file, text.replace(/var PROTOCOL = \d+;/, 'var PROTOCOL = 99;'))
    patched++
  }
  expect(patched, 'the bundle defines PROTOCOL once').toBe(1)
  return `${process.execPath} ${copy.bin}`
}
