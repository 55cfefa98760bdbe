/**
 * A hostile member of the group (DESIGN §13): `vc14h` may write a store that
 * root owns (a group-writable, setgid store: the case that stays risky for
 * root) and replaces its files with symlinks to files only root may write.
 * Root's writers (regenerate, rollback, gc, pin, adopt) must never write
 * through them: every victim file stays byte for byte what it was. Run as
 * root with real users (CI); skipped elsewhere with the reason printed.
 */
import fs from 'node:fs'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { linkTarget, makePrefixes, writeManifest } from './helpers.js'
import { noStackTrace, storeOf } from './view-checks.js'
import { makeUsers, runCommandAs, sharedTempDir, usePublicInstall, viewctlAs, whyNoUsers, type TestUsers } from './users.js'

const why = whyNoUsers()
if (why !== null) console.log(`test/hostile.test.ts skipped: ${why}`)

describe.skipIf(why !== null)('a hostile member plants symlinks in a store root owns', () => {
  usePublicInstall()
  let users: TestUsers
  beforeAll(() => {
    users = makeUsers('vc14x', ['vc14h'])
  })
  afterAll(() => users?.remove())

  const root = { user: null }

  function setup() {
    const base = sharedTempDir()
    const pkgs = makePrefixes(path.join(base, 'p'), 3, 2)
    const views = path.join(base, 'views')
    fs.mkdirSync(views)
    fs.chownSync(views, 0, users.group.gid)
    fs.chmodSync(views, 0o2775)
    const view = path.join(views, 'v')
    const manifest = (n: number) => writeManifest(base, `view: ${view}\ngc: {auto: false}\npackages:\n${pkgs.slice(0, n).map((p) => `  - ${p}\n`).join('')}`, `m${n}.yaml`)
    for (const n of [1, 2]) {
      const r = viewctlAs(root, ['regenerate', manifest(n)])
      expect(r.code, r.stderr).toBe(0)
    }
    // group-writable all through, as an admin sharing the store would make it (whatever viewctl's own modes)
    expect(runCommandAs({ user: null }, ['chmod', '-R', 'g+w', storeOf(view)]).code).toBe(0)
    // files only root may read or write, each ending without a newline (a journal repair would cut such a line)
    const secret = path.join(base, 'secret')
    fs.mkdirSync(secret, { mode: 0o700 })
    const victims = ['lock', 'history', 'cache', 'pins', 'meta', 'manifest', 'plan', 'lease', 'tree-lease'].map((name) => {
      const file = path.join(secret, name)
      fs.writeFileSync(file, `root's precious ${name}: do not touch`, { mode: 0o600 })
      return file
    })
    const seen = () => victims.map((v) => ({ v, text: fs.readFileSync(v, 'utf8'), mode: fs.statSync(v).mode & 0o7777, size: fs.statSync(v).size }))
    return { base, views, view, store: storeOf(view), manifest, secret, victim: (name: string) => path.join(secret, name), seen }
  }

  /** Run a shell script as the hostile member, in `dir`. */
  function asMember(dir: string, script: string): void {
    const r = runCommandAs({ user: users.user('vc14h') }, ['sh', '-c', `set -e; cd '${dir}'; ${script}`])
    expect(r.code, r.stderr).toBe(0)
  }

  it('a planted .lock or history.jsonl: every writer of root refuses it (exit 1, UNSAFE_PATH naming it); the victims are untouched', () => {
    const { store, view, manifest, victim, seen } = setup()
    const before = seen()
    const target = linkTarget(view)
    const writers = [['regenerate', manifest(3)], ['rollback', view], ['gc', view, '--keep', '0', '--ttl', '0', '--force'], ['pin', view, '1'], ['verify', view, '--repair']]

    asMember(store, `rm -f .lock; ln -s '${victim('lock')}' .lock`)
    for (const w of writers) {
      const r = viewctlAs(root, [...w, '--json'])
      expect(r.code, `${w[0]} with a planted .lock: ${r.stdout}`).toBe(1)
      expect(r.json.error.code).toBe('UNSAFE_PATH')
      expect(r.json.error.message).toContain(`${path.join(store, '.lock')} is a symlink, which viewctl does not follow`)
      noStackTrace(r.stderr)
    }
    expect(seen()).toEqual(before)
    fs.unlinkSync(path.join(store, '.lock'))

    asMember(store, `mv history.jsonl history.real; ln -s '${victim('history')}' history.jsonl`)
    for (const w of writers) {
      const r = viewctlAs(root, [...w, '--json'])
      expect(r.code, `${w[0]} with a planted history.jsonl: ${r.stdout}`).toBe(1)
      expect(r.json.error.code).toBe('UNSAFE_PATH')
      expect(r.json.error.message).toContain('history.jsonl is a symlink')
    }
    expect(seen()).toEqual(before)
    expect(linkTarget(view)).toBe(target)
  })

  it("the scan cache's temporary file, pins.json, a generation's lease: root's writers succeed and write through none of them", () => {
    const { store, view, manifest, victim, seen } = setup()
    const before = seen()
    // the fixed temporary name earlier versions wrote the scan cache under, and pins.json
    asMember(store, `ln -s '${victim('cache')}' .scan-cache.tmp; rm -f pins.json; ln -s '${victim('pins')}' pins.json`)
    const r = viewctlAs(root, ['regenerate', manifest(3), '--json'])
    expect(r.code, r.stderr).toBe(0)
    const pin = viewctlAs(root, ['pin', view, '1', '--json'])
    expect(pin.code, pin.stderr).toBe(0)
    expect(fs.lstatSync(path.join(store, 'pins.json')).isFile()).toBe(true)
    expect(viewctlAs(root, ['unpin', view, '1']).code).toBe(0)
    // the lease of an old generation, which gc opens for writing to lock it
    const old = fs.readdirSync(store).filter((n) => /^[0-9a-f]{32}$/.test(n) && n !== r.json.hash)[0]!
    asMember(path.join(store, old, '.viewctl'), `rm -f lease; ln -s '${victim('tree-lease')}' lease`)
    const back = viewctlAs(root, ['rollback', view, '--json'])
    expect(back.code, back.stderr).toBe(0)
    const gc = viewctlAs(root, ['gc', view, '--keep', '0', '--ttl', '0', '--force', '--json'])
    expect(gc.code, gc.stderr).toBe(0)
    expect(seen()).toEqual(before)
  })

  it('an adopted directory whose .viewctl files are symlinks, or whose .viewctl is one: refused, the victims untouched', () => {
    const { base, views, secret, victim, seen } = setup()
    const before = seen()
    const w = path.join(views, 'w')
    const plant = (file: string, name: string) => `ln -s '${victim(name)}' w/.viewctl/${file}`
    asMember(views, ['mkdir -p w/bin w/.viewctl', 'echo tool > w/bin/tool', plant('manifest.yaml', 'manifest'), plant('plan.tsv', 'plan'), plant('lease', 'lease')].join('; '))
    const m = writeManifest(base, `view: ${w}\npackages:\n  - ${path.join(base, 'p', 'pkg0')}\n`, 'w.yaml')
    const r = viewctlAs(root, ['regenerate', m, '--adopt', '--json'])
    expect(r.code, r.stdout).toBe(1)
    expect(r.json.error.code).toBe('UNSAFE_PATH')
    expect(r.json.error.message).toMatch(/\.viewctl\/manifest\.yaml is a symlink, which viewctl does not follow/)
    expect(fs.lstatSync(w).isDirectory()).toBe(true)
    expect(seen()).toEqual(before)

    // with a meta.json too, the directory passes for a generation tree: refused before anything is written
    asMember(views, plant('meta.json', 'meta'))
    const asTree = viewctlAs(root, ['regenerate', m, '--adopt', '--json'])
    expect(asTree.code, asTree.stdout).toBe(2)
    expect(asTree.json.error.code).toBe('STORE_COLLISION')
    expect(seen()).toEqual(before)

    asMember(views, `rm -rf w/.viewctl; ln -s '${secret}' w/.viewctl`)
    const r2 = viewctlAs(root, ['regenerate', m, '--adopt', '--json'])
    expect(r2.code, r2.stdout).toBe(1)
    expect(r2.json.error.message).toMatch(/\.viewctl is not a directory/)
    expect(fs.readdirSync(secret).sort()).toEqual(['cache', 'history', 'lease', 'lock', 'manifest', 'meta', 'pins', 'plan', 'tree-lease'])
    expect(seen()).toEqual(before)
  })

  it('a generation or a store replaced by a symlink: refused, the view and the directory it points to untouched', () => {
    const { base, views, store, view, secret, seen } = setup()
    const before = seen()
    const target = linkTarget(view)
    // generation 1's tree swapped for a link to a tree of the member's making, meta.json and all
    const first = fs.readdirSync(store).filter((n) => /^[0-9a-f]{32}$/.test(n) && `._v/${n}` !== target)[0]!
    asMember(store, `cp -r ${first} ../fake; mv ${first} ../moved; ln -s ../fake ${first}`)
    const r = viewctlAs(root, ['rollback', view, '--to', '1', '--json'])
    expect(r.code, r.stdout).toBe(1)
    expect(r.json.error.code).toBe('TREE_DAMAGED')
    expect(r.json.error.message).toContain(`${path.join(store, first)} is a symlink`)
    expect(linkTarget(view)).toBe(target)

    // a new view whose store path the member made a symlink to a directory of root's
    asMember(views, `ln -s '${secret}' ._u`)
    const u = writeManifest(base, `view: ${path.join(views, 'u')}\npackages:\n  - ${path.join(base, 'p', 'pkg0')}\n`, 'u.yaml')
    const ru = viewctlAs(root, ['regenerate', u, '--json'])
    expect(ru.code, ru.stdout).toBe(1)
    expect(ru.json.error.message).toMatch(/store .*\._u .* is a symlink/)
    expect(fs.readdirSync(secret).sort()).toEqual(['cache', 'history', 'lease', 'lock', 'manifest', 'meta', 'pins', 'plan', 'tree-lease'])
    expect(fs.existsSync(path.join(views, 'u'))).toBe(false)
    expect(seen()).toEqual(before)
  })
})
