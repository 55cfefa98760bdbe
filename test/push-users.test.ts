/**
 * Owners on the receiving host (DESIGN §13, §15): root pushing into a store
 * that another user owns acts as that owner there, the receiving session
 * and rsync alike, so that nothing in the store belongs to root, and never
 * to the sender's uids.
 */
import fs from 'node:fs'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { publicInstall, viewctl } from './helpers.js'
import { historyRecords, storeOf } from './view-checks.js'
import { buildView, dest, makeTree, quote, remoteOptions, requirePush, useSshd } from './push-helpers.js'
import { makeUsers, sharedTempDir, whyNoUsers, type TestUsers } from './users.js'

const sshd = useSshd()
const install = publicInstall()
const noUsers = whyNoUsers()
let users: TestUsers | null = null

beforeAll(() => {
  if (noUsers === null) users = makeUsers('vc16g', ['vc16a'])
})
afterAll(() => users?.remove())

/** uid of everything under `dir`, by path (symlinks themselves, not followed). */
function owners(dir: string): Map<number, string[]> {
  const byUid = new Map<number, string[]>()
  const visit = (p: string) => {
    const st = fs.lstatSync(p)
    byUid.set(st.uid, [...(byUid.get(st.uid) ?? []), p])
    if (st.isDirectory()) for (const n of fs.readdirSync(p)) visit(path.join(p, n))
  }
  visit(dir)
  return byUid
}

describe('root pushing into a store another user owns', () => {
  it('acts as that owner there: the store, the generation and every entry belong to that user', (ctx) => {
    requirePush(ctx)
    if (noUsers !== null) ctx.skip(noUsers)
    const owner = users!.user('vc16a')
    const root = sharedTempDir('vc16-')
    const prefixes = makeTree(path.join(root, 'p'), 3, 5)
    const view = path.join(root, 'hpc')
    const { hash } = buildView(root, view, prefixes, ['fold: false'])
    const parent = path.join(root, 'r')
    fs.mkdirSync(parent)
    fs.chownSync(parent, owner.uid, owner.gid)
    const remote = path.join(parent, 'hpc')
    // the owner runs viewctl from a copy it can read (the checkout may sit in a directory only root can enter)
    const remoteViewctl = `${quote(process.execPath)} ${quote(install().bin)}`

    const r = viewctl(['push', view, dest(sshd(), remote), ...remoteOptions(sshd(), remoteViewctl), '--json'])
    expect(r.code, r.stdout + r.stderr).toBe(0)
    expect(fs.readlinkSync(remote)).toBe(`._hpc/${hash}`)
    const byUid = owners(parent)
    expect([...byUid.keys()], `owned by others than vc16a: ${JSON.stringify(Object.fromEntries([...byUid].filter(([u]) => u !== owner.uid).map(([u, ps]) => [u, ps.slice(0, 5)])))}`).toEqual([owner.uid])
    expect(fs.statSync(path.join(storeOf(remote), hash, 'bin')).gid).toBe(owner.gid)
    expect(historyRecords(remote)[0]).toMatchObject({ action: 'push', user: 'vc16a' })

    // an incremental push too (the entries linked from the tree there, and those made anew)
    fs.writeFileSync(path.join(prefixes[1]!, 'bin', 'pkg1-new'), 'x')
    const { hash: second } = buildView(root, view, prefixes, ['fold: false'])
    const again = viewctl(['push', view, dest(sshd(), remote), ...remoteOptions(sshd(), remoteViewctl), '--json'])
    expect(again.code, again.stdout + again.stderr).toBe(0)
    expect(again.json.destinations[0]).toMatchObject({ mode: 'plan', hash: second, created: 1 })
    expect([...owners(parent).keys()]).toEqual([owner.uid])
    // a copy view, whose files rsync writes there through the guard, as that owner
    const copyView = path.join(root, 'copy')
    buildView(root, copyView, prefixes, ['link: copy'], 'copy.yaml')
    const copied = viewctl(['push', copyView, dest(sshd(), path.join(parent, 'copy')), ...remoteOptions(sshd(), remoteViewctl), '--json'])
    expect(copied.code, copied.stdout + copied.stderr).toBe(0)
    expect(copied.json.destinations[0]).toMatchObject({ mode: 'full' })
    expect([...owners(parent).keys()]).toEqual([owner.uid])
  }, 120_000)
})
