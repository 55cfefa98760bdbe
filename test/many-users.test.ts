/**
 * Many users (DESIGN §13), with real users: a group `vc14g` whose members
 * `vc14a` and `vc14b` share one store with root, an outsider `vc14c`, and
 * nobody. CI runs as root and makes them here; elsewhere the file is skipped
 * with the reason printed.
 */
import fs from 'node:fs'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { makePrefixes, writeManifest, writeTree } from './helpers.js'
import { fullSnapshot, noStackTrace } from './view-checks.js'
import { makeUsers, sharedTempDir, usePublicInstall, viewctlAs, whyNoUsers, type TestUsers } from './users.js'

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
})
