/**
 * Many users (DESIGN §13), with real users: a group `vc14g` whose members
 * `vc14a` and `vc14b` share one store with root, an outsider `vc14c`, and
 * nobody. CI runs as root and makes them here; elsewhere the file is skipped
 * with the reason printed.
 */
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest'
import { linkTarget, makePrefixes, writeManifest, writeTree } from './helpers.js'
import { assertCompleteGeneration, finishedWithin, fullSnapshot, historyRecords, noStackTrace, storeOf } from './view-checks.js'
import { firstLine, lockHolderScript, makeUsers, modeOf, nodeScriptAs, sharedTempDir, usePublicInstall, viewctlAs, whyNoUsers, type TestUsers } from './users.js'

/** Every path in a store (not following symlinks), with its owner, group and mode. */
function storeEntries(store: string): Array<{ path: string; uid: number; gid: number; mode: number; kind: 'dir' | 'file' | 'link' }> {
  const out: ReturnType<typeof storeEntries> = []
  const walk = (dir: string) => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name)
      const st = fs.lstatSync(p)
      const kind = e.isSymbolicLink() ? 'link' : e.isDirectory() ? 'dir' : 'file'
      out.push({ path: path.relative(store, p), uid: st.uid, gid: st.gid, mode: st.mode & 0o7777, kind })
      if (kind === 'dir') walk(p)
    }
  }
  walk(store)
  return out
}

/**
 * The rules of a group-shared store (DESIGN §13), checked on every entry:
 * nothing world-writable, every file and directory in the store's group and
 * group-writable, directories setgid, `.lock` without any permission for
 * others, every lease readable by others.
 */
function expectSharedModes(store: string, gid: number): void {
  const wrong: string[] = []
  for (const e of storeEntries(store)) {
    if (e.kind === 'link') continue
    const show = `${e.path} ${e.mode.toString(8)} gid ${e.gid}`
    if (e.mode & 0o002) wrong.push(`${show}: world-writable`)
    if (e.gid !== gid) wrong.push(`${show}: not the store's group`)
    if ((e.mode & 0o060) !== 0o060) wrong.push(`${show}: not group read-write`)
    if (e.kind === 'dir' && !(e.mode & 0o2000)) wrong.push(`${show}: directory not setgid`)
    if (e.path === '.lock' && e.mode & 0o007) wrong.push(`${show}: others may open the lock`)
    if (e.path.endsWith('/.viewctl/lease') && !(e.mode & 0o004)) wrong.push(`${show}: lease not readable by every reader`)
  }
  expect(wrong).toEqual([])
}

const why = whyNoUsers()
if (why !== null) console.log(`test/many-users.test.ts skipped: ${why}`)

describe.skipIf(why !== null)('many users', () => {
  usePublicInstall()
  let users: TestUsers
  beforeAll(() => {
    users = makeUsers('vc14g', ['vc14a', 'vc14b'], ['vc14c'])
  })
  afterAll(() => users?.remove())
  const as = (name: string) => ({ user: users.user(name) })

  describe('a prefix the user may not read', () => {
    it('a directory inside it: exit 1 (PREFIX_UNREADABLE) naming the prefix and the permission, not the view\'s parent', () => {
      const root = sharedTempDir()
      const [open, closed] = makePrefixes(path.join(root, 'p'), 2, 2)
      fs.chmodSync(path.join(closed!, 'lib'), 0o700) // root's, as a prefix installed with umask 077
      const views = path.join(root, 'views')
      fs.mkdirSync(views)
      fs.chownSync(views, users.user('vc14a').uid, users.group.gid)
      const view = path.join(views, 'v')
      const a = writeManifest(root, `view: ${view}\npackages:\n  - ${open}\n`, 'a.yaml')
      const b = writeManifest(root, `view: ${view}\npackages:\n  - ${open}\n  - ${closed}\n`, 'b.yaml')
      expect(viewctlAs(as('vc14a'), ['regenerate', a]).code).toBe(0)
      const before = fullSnapshot(view)
      const r = viewctlAs(as('vc14a'), ['regenerate', b, '--json'])
      expect(r.code, r.stderr).toBe(1)
      expect(r.json?.error?.code).toBe('PREFIX_UNREADABLE')
      expect(r.stderr).toContain(`cannot read the directory ${path.join(closed!, 'lib')} (inside the prefix ${closed})`)
      expect(r.stderr).toMatch(/permission denied/)
      expect(r.stderr).toMatch(/hint: .*read and search permission/)
      expect(r.stderr).not.toMatch(/view's parent/)
      noStackTrace(r.stderr)
      expect(fullSnapshot(view)).toEqual(before)
    })

    it('the prefix itself cannot be reached: exit 1 (PREFIX_UNREADABLE) at its line in the manifest', () => {
      const root = sharedTempDir()
      const [open] = makePrefixes(path.join(root, 'p'), 1, 2)
      const hidden = writeTree(path.join(root, 'private', 'pkg'), { 'bin/x': 'x\n' })
      fs.chmodSync(path.join(root, 'private'), 0o700)
      const view = path.join(root, 'views', 'v')
      fs.mkdirSync(path.dirname(view))
      fs.chownSync(path.dirname(view), users.user('vc14a').uid, users.group.gid)
      const m = writeManifest(root, `view: ${view}\npackages:\n  - ${open}\n  - ${hidden}\n`)
      const r = viewctlAs(as('vc14a'), ['regenerate', m, '--json'])
      expect(r.code, r.stderr).toBe(1)
      expect(r.json?.error?.code).toBe('PREFIX_UNREADABLE')
      expect(r.stderr).toContain(`${m}:4:5: packages[1]: ${hidden} cannot be reached: permission denied`)
      expect(fs.existsSync(view)).toBe(false)
    })
  })
  /** A directory for views that the group shares: setgid, group-writable, root's; prefixes and manifests any user can read. */
  function groupSetup() {
    const root = sharedTempDir()
    const pkgs = makePrefixes(path.join(root, 'p'), 3, 2)
    const views = path.join(root, 'views')
    fs.mkdirSync(views)
    fs.chownSync(views, 0, users.group.gid)
    fs.chmodSync(views, 0o2775)
    const view = path.join(views, 'v')
    const manifest = (name: string, n: number) => writeManifest(root, `view: ${view}\ngc: {auto: false}\npackages:\n${pkgs.slice(0, n).map((p) => `  - ${p}\n`).join('')}`, name)
    return { root, pkgs, views, view, store: storeOf(view), manifest }
  }

  describe('a store the group shares', () => {
    it('two members (umask 022 and 077) and root regenerate, roll back and gc one store; every file follows the store\'s sharing', () => {
      const { view, store, manifest } = groupSetup()
      const one = manifest('one.yaml', 1)
      const two = manifest('two.yaml', 2)
      const three = manifest('three.yaml', 3)
      const a = { user: users.user('vc14a'), umask: 0o022 }
      const b = { user: users.user('vc14b'), umask: 0o077 }
      const root = { user: null, umask: 0o022 }

      const r1 = viewctlAs(a, ['regenerate', one, '--json'])
      expect(r1.code, r1.stderr).toBe(0)
      expect(modeOf(store)).toEqual({ uid: users.user('vc14a').uid, gid: users.group.gid, mode: 0o2775 })
      expectSharedModes(store, users.group.gid)

      const r2 = viewctlAs(b, ['regenerate', two, '--json'])
      expect(r2.code, r2.stderr).toBe(0)
      expect(r2.stderr).toBe('')
      expectSharedModes(store, users.group.gid)

      // root on a store vc14a owns acts as vc14a and the store's group: the record and the new tree are vc14a's
      const r3 = viewctlAs(root, ['regenerate', three, '--json'])
      expect(r3.code, r3.stderr).toBe(0)
      expect(historyRecords(view).at(-1)).toMatchObject({ generation: 3, user: 'vc14a' })
      expect(modeOf(path.join(store, r3.json.hash))).toMatchObject({ uid: users.user('vc14a').uid, gid: users.group.gid })
      expectSharedModes(store, users.group.gid)

      const back = viewctlAs(b, ['rollback', view, '--json'])
      expect(back.code, back.stderr).toBe(0)
      expect(back.json).toMatchObject({ from: 3, to: 2 })
      expect(viewctlAs(a, ['rollback', view, '--to', '3']).code).toBe(0)

      // vc14b collects the trees vc14a and root made: every lease can be checked, every tree removed
      const gc = viewctlAs(b, ['gc', view, '--keep', '0', '--ttl', '0', '--force', '--json'])
      expect(gc.code, gc.stderr).toBe(0)
      expect(gc.json.warnings).toEqual([])
      expect(gc.json.removed.map((t: { hash: string }) => t.hash).sort()).toEqual([r1.json.hash, r2.json.hash].sort())
      expect(fs.readdirSync(store).filter((n) => n.startsWith('.trash-'))).toEqual([])
      assertCompleteGeneration(view)
      expectSharedModes(store, users.group.gid)

      // an outsider reads the view, but writes nothing: exit 1, naming what it may not write
      const outsider = { user: users.user('vc14c') }
      const st = viewctlAs(outsider, ['status', view, '--json'])
      expect(st.code, st.stderr).toBe(0)
      expect(st.json.health).toBe('ok')
      const before = fullSnapshot(view)
      const denied = viewctlAs(outsider, ['rollback', view, '--json'])
      expect(denied.code, denied.stdout).toBe(1)
      expect(denied.json.error.code).toBe('PERMISSION')
      expect(denied.json.error.message).toMatch(/permission denied at .*\._v/)
      expect(fullSnapshot(view)).toEqual(before)
    })

    it('a store made by an earlier version (0644 files): status names what it cannot fix (exit 5), a member\'s writer says whose file blocks it, the owner\'s next writer fixes them', () => {
      const { view, store, manifest } = groupSetup()
      const a = { user: users.user('vc14a') }
      const b = { user: users.user('vc14b') }
      expect(viewctlAs(a, ['regenerate', manifest('one.yaml', 1)]).code).toBe(0)
      const hash = linkTarget(view)!.split('/')[1]!
      // what earlier versions left: files 0644 whatever the store, a lock others may open
      for (const f of ['.lock', 'history.jsonl', `${hash}/.viewctl/lease`]) fs.chmodSync(path.join(store, f), 0o644)
      const lock = path.join(store, '.lock')

      const status = viewctlAs(b, ['status', view, '--json'])
      expect(status.code, status.stderr).toBe(5)
      expect(status.json.health).toBe('degraded')
      const problems = status.json.problems.join('\n')
      expect(problems).toContain(`${path.join(store, 'history.jsonl')} has mode 0644 where the store's sharing asks for 0664; only its owner vc14a (or root) can change that`)
      expect(problems).toContain(`${path.join(store, '.lock')} has mode 0644 where the store's sharing asks for 0660`)
      expect(problems).toContain(`${path.join(store, hash, '.viewctl', 'lease')} has mode 0644`)

      const before = fullSnapshot(view)
      const blocked = viewctlAs(b, ['regenerate', manifest('two.yaml', 2), '--json'])
      expect(blocked.code, blocked.stdout).toBe(1)
      expect(blocked.json.error.code).toBe('PERMISSION')
      // the first file it must write: the lock, which it may not open for writing
      expect(blocked.json.error.message).toContain(`permission denied at ${lock} (owner vc14a, mode 0644) while opening the lock file`)
      expect(blocked.json.error.hint).toMatch(/next writer run by the file's owner/)
      expect(fullSnapshot(view)).toEqual(before)
      // with the lock fixed by hand but not the journal: the append is refused, naming the journal and its owner
      fs.chmodSync(lock, 0o660)
      const journal = viewctlAs(b, ['regenerate', manifest('two.yaml', 2), '--json'])
      expect(journal.code, journal.stdout).toBe(1)
      expect(journal.json.error.message).toContain(`permission denied at ${path.join(store, 'history.jsonl')} (owner vc14a, mode 0644)`)
      expect(journal.stderr).toMatch(/warning: .*history\.jsonl has mode 0644 where the store's sharing asks for 0664; only its owner vc14a/)
      expect({ ...fullSnapshot(view), store: undefined }).toEqual({ ...before, store: undefined })
      expect(linkTarget(view)).toBe(before.target)
      fs.chmodSync(lock, 0o644)

      // the owner's next writer (any writer: verify --repair is one) brings the files to the store's modes
      const fixed = viewctlAs(a, ['verify', view, '--repair'])
      expect(fixed.code, fixed.stderr).toBe(0)
      expect(viewctlAs(b, ['status', view]).code).toBe(0)
      expect(modeOf(path.join(store, '.lock')).mode).toBe(0o660)
      expect(viewctlAs(b, ['regenerate', manifest('two.yaml', 2)]).code).toBe(0)
      expectSharedModes(store, users.group.gid)
    })
  })

  describe('the writer lock', () => {
    it('nobody cannot hold it against root\'s rollback; on a lock file of an earlier version (0644) it could, until root\'s next writer fixed the mode', async () => {
      const root = sharedTempDir()
      const pkgs = makePrefixes(path.join(root, 'p'), 2, 2)
      const view = path.join(root, 'v')
      for (const n of [1, 2]) expect(viewctlAs({ user: null }, ['regenerate', writeManifest(root, `view: ${view}\ngc: {auto: false}\npackages:\n${pkgs.slice(0, n).map((p) => `  - ${p}\n`).join('')}`, `m${n}.yaml`)]).code).toBe(0)
      const lock = path.join(storeOf(view), '.lock')
      const nobody = { user: { name: 'nobody', uid: 65534, gid: 65534 } }
      expect(modeOf(lock).mode & 0o007).toBe(0)

      const denied = nodeScriptAs(nobody, lockHolderScript(lock, { shared: true }))
      onTestFinished(() => void denied.kill('SIGKILL'))
      expect(await firstLine(denied)).toBe('open EACCES')
      const r = viewctlAs({ user: null }, ['rollback', view, '--lock-timeout', '2', '--json'])
      expect(r.code, r.stderr).toBe(0)
      denied.kill('SIGKILL')

      // what earlier versions made: a lock file anyone may read, so anyone may hold a shared lock on it
      fs.chmodSync(lock, 0o644)
      const holder = nodeScriptAs(nobody, lockHolderScript(lock, { shared: true }))
      onTestFinished(() => void holder.kill('SIGKILL'))
      expect(await firstLine(holder)).toBe('held')
      const blocked = viewctlAs({ user: null }, ['rollback', view, '--to', '2', '--lock-timeout', '1', '--json'])
      expect(blocked.code, blocked.stdout).toBe(4)
      expect(blocked.json.error.message).toMatch(/held by a process that is not viewctl, or by another user/)
      holder.kill('SIGKILL')
      await finishedWithin(holder, 10_000)
      // root's next writer takes the lock and closes the file to others
      const fixed = viewctlAs({ user: null }, ['rollback', view, '--to', '2', '--lock-timeout', '2', '--json'])
      expect(fixed.code, fixed.stdout).toBe(0)
      expect(fixed.json).toMatchObject({ from: 1, to: 2 })
      expect(modeOf(lock).mode & 0o007).toBe(0)
      const late = nodeScriptAs(nobody, lockHolderScript(lock, { shared: true }))
      onTestFinished(() => void late.kill('SIGKILL'))
      expect(await firstLine(late)).toBe('open EACCES')
    })

    it('a waiter names a holder that wrote its record (another member\'s viewctl), and says when the holder wrote none', async () => {
      const { view, store, manifest } = groupSetup()
      const a = { user: users.user('vc14a') }
      expect(viewctlAs(a, ['regenerate', manifest('one.yaml', 1)]).code).toBe(0)
      const lock = path.join(store, '.lock')
      // vc14b holds the lock and writes a holder record the way viewctl does
      const script = `${lockHolderScript(lock, { shared: false })}
fs.writeSync(fd, JSON.stringify({ host: require('os').hostname(), pid: process.pid, started: new Date().toISOString(), command: 'viewctl gc ${view}' }) + '\\n', 0)
`
      const holder = nodeScriptAs({ user: users.user('vc14b') }, script)
      onTestFinished(() => void holder.kill('SIGKILL'))
      expect(await firstLine(holder)).toBe('held')
      const r = viewctlAs(a, ['rollback', view, '--lock-timeout', '0', '--json'])
      expect(r.code, r.stdout).toBe(4)
      expect(r.json.error.message).toContain(`another viewctl holds the lock on ${lock}: pid ${holder.pid} on ${os.hostname()}, running \`viewctl gc ${view}\``)
      holder.kill('SIGKILL')
      await finishedWithin(holder, 10_000)

      const silent = nodeScriptAs({ user: users.user('vc14b') }, lockHolderScript(lock, { shared: false })) // its predecessor's record names a pid that is gone
      onTestFinished(() => void silent.kill('SIGKILL'))
      expect(await firstLine(silent)).toBe('held')
      const s = viewctlAs(a, ['rollback', view, '--lock-timeout', '0', '--json'])
      expect(s.code).toBe(4)
      expect(s.json.error.message).toContain(`the lock on ${lock} is held by a process that is not viewctl, or by another user`)
    })
  })

  describe('root on a store another user owns', () => {
    it('acts as that owner and the store\'s group (after reading a manifest only root may read); a store root owns stays root\'s, with a warning when others may write it', () => {
      const { root, view, store, views, manifest } = groupSetup()
      const a = { user: users.user('vc14a') }
      expect(viewctlAs(a, ['regenerate', manifest('one.yaml', 1)]).code).toBe(0)
      const secret = path.join(root, 'root-only')
      fs.mkdirSync(secret, { mode: 0o700 })
      const m = writeManifest(secret, fs.readFileSync(manifest('two.yaml', 2), 'utf8'), 'two.yaml')
      fs.chmodSync(m, 0o600)
      const r = viewctlAs({ user: null }, ['regenerate', m, '--json'])
      expect(r.code, r.stderr).toBe(0)
      expect(historyRecords(view).at(-1)).toMatchObject({ user: 'vc14a', manifest: m })
      for (const e of storeEntries(store)) expect(e.uid, e.path).toBe(users.user('vc14a').uid)
      for (const cmd of [['rollback', view], ['pin', view, '1'], ['unpin', view, '1'], ['gc', view, '--keep', '0', '--ttl', '0', '--force'], ['verify', view, '--repair']]) {
        const w = viewctlAs({ user: null }, cmd)
        expect(w.code, `${cmd.join(' ')}: ${w.stderr}`).toBe(0)
      }
      expect(historyRecords(view).at(-1)).toMatchObject({ action: 'rollback', user: 'vc14a' })
      for (const e of storeEntries(store)) expect(e.uid, e.path).toBe(users.user('vc14a').uid)

      // a view root makes in the shared directory: root's store, the group may write it: a warning
      const w = path.join(views, 'w')
      const mw = writeManifest(root, `view: ${w}\npackages:\n  - ${path.join(root, 'p', 'pkg0')}\n`, 'w.yaml')
      const rw = viewctlAs({ user: null }, ['regenerate', mw])
      expect(rw.code, rw.stderr).toBe(0)
      expect(modeOf(storeOf(w))).toMatchObject({ uid: 0, gid: users.group.gid, mode: 0o2775 })
      expect(rw.stderr).toMatch(/warning: the store .*\._w belongs to root but its group may write it: .*service account/)
    })
  })
})
