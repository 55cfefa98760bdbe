/**
 * Pushes to a host whose prefixes are not this host's (DESIGN §15): a
 * second sshd runs in a mount namespace of its own, where the directory
 * holding the prefixes is an empty tmpfs. Seen through ssh, that host has
 * its own prefixes at the same paths (or none), as another cluster would.
 */
import fs from 'node:fs'
import path from 'node:path'
import { spawnSync } from 'node:child_process'
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest'
import { viewctl } from './helpers.js'
import { scratchDir } from './view-checks.js'
import { buildView, dest, makeTree, push, pushUnavailable, quote, remoteViewctl, requirePush } from './push-helpers.js'
import { startSshd, type Sshd } from './rig/sshd.mjs'

const isRoot = process.getuid?.() === 0 && process.platform === 'linux'

/** Where everything lives; `${base}/p` holds the prefixes, which the other host sees as an empty tmpfs. */
let base = ''
let host: Sshd | null = null

beforeAll(async () => {
  if (!isRoot || pushUnavailable() !== null) return
  base = scratchDir('viewctl-vc16-hosts-')
  fs.mkdirSync(path.join(base, 'p'))
  // sh -c '<script>' <prefix dir> <sshd command line…>: mount over the prefixes, then become sshd
  host = await startSshd({ label: 'vc16', wrap: ['unshare', '--mount', '--propagation', 'private', '--', 'sh', '-c', 'mount -t tmpfs -o size=256m,mode=755 vc16host "$0" && exec "$@"', path.join(base, 'p')] })
}, 60_000)

afterAll(async () => {
  await host?.stop()
  if (base) fs.rmSync(base, { recursive: true, force: true })
}, 60_000)

function requireHost(ctx: Parameters<typeof requirePush>[0]): Sshd {
  requirePush(ctx)
  if (!isRoot) ctx.skip('a second host in a mount namespace needs root')
  if (host === null) throw new Error('the second host did not start')
  return host
}

/** A shell command on the other host. */
function there(h: Sshd, command: string): { code: number; stdout: string; stderr: string } {
  const r = spawnSync('ssh', [...h.sshArgs(), command], { encoding: 'utf8', timeout: 60_000 })
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr }
}

/** A fresh directory under `base` for one test. */
function testDir(name: string): string {
  const dir = path.join(base, name)
  fs.mkdirSync(dir)
  onTestFinished(() => fs.rmSync(dir, { recursive: true, force: true }))
  return dir
}

describe('a host without the prefixes', () => {
  it('refuses a symlink view listing the missing prefixes; --with-prefixes copies them, never over one that is there', (ctx) => {
    const h = requireHost(ctx)
    const dir = testDir('missing')
    const prefixes = makeTree(path.join(base, 'p', 'missing'), 3, 3)
    const view = path.join(dir, 'hpc')
    const { hash } = buildView(dir, view, prefixes)
    const remote = path.join(dir, 'remote', 'hpc')

    const refused = push(h, view, [dest(h, remote)], ['--json'])
    expect(refused.code, refused.stderr).toBe(2)
    const e = refused.json.destinations[0].error
    expect(e.code).toBe('PREFIX_MISSING')
    for (const p of prefixes) expect(e.message).toContain(p)
    expect(fs.existsSync(remote)).toBe(false)

    // one prefix is there already (that host's own build, with a file of its own): it must stay as it is
    const copy = path.join(dir, 'copy')
    fs.cpSync(prefixes[0]!, copy, { recursive: true })
    fs.writeFileSync(path.join(copy, 'BUILT-THERE'), 'x')
    expect(there(h, `mkdir -p ${quote(prefixes[0]!)} && cp -a ${quote(copy)}/. ${quote(prefixes[0]!)}/`).code).toBe(0)
    const listed = push(h, view, [dest(h, remote)], ['--json'])
    expect(listed.code).toBe(2)
    expect(listed.json.destinations[0].error.message).not.toContain(prefixes[0])

    const copied = push(h, view, [dest(h, remote)], ['--with-prefixes', '--json'])
    expect(copied.code, copied.stderr).toBe(0)
    expect(copied.json.destinations[0]).toMatchObject({ ok: true, hash, switched: true })
    expect(remoteViewctl(h, ['verify', remote]).code).toBe(0)
    expect(there(h, `test -f ${quote(prefixes[0]!)}/BUILT-THERE && test -f ${quote(prefixes[2]!)}/bin/pkg2-tool1`).code).toBe(0)
    expect(there(h, `ls -A ${quote(path.dirname(prefixes[0]!))}`).stdout.split('\n').filter((n) => n.includes('viewctl-incoming'))).toEqual([])

    // that host's pkg0 lacks a file the next generation links to: refused, listing it, and pkg0 is left as it is
    expect(there(h, `rm ${quote(prefixes[0]!)}/bin/pkg0-tool2`).code).toBe(0)
    fs.writeFileSync(path.join(prefixes[2]!, 'bin', 'pkg2-more'), 'x')
    const { manifest } = { manifest: path.join(dir, 'env.yaml') }
    expect(viewctl(['regenerate', manifest]).code).toBe(0)
    const lacking = push(h, view, [dest(h, remote)], ['--with-prefixes', '--json'])
    expect(lacking.code).toBe(2)
    const err = lacking.json.destinations[0].error
    expect(err.code).toBe('PREFIX_MISSING')
    expect(err.message).toContain(`${prefixes[0]}/bin/pkg0-tool2`)
    expect(fs.readlinkSync(remote)).toBe(`._hpc/${hash}`)
    expect(there(h, `test -e ${quote(prefixes[0]!)}/bin/pkg0-tool2`).code).toBe(1)
  }, 120_000)
})

describe('a hardlink view on a host with its own copies of the prefixes', () => {
  it('is rebuilt there from those copies: the same plan, another hash (other inodes); a plan that differs there is refused', (ctx) => {
    const h = requireHost(ctx)
    const dir = testDir('hardlink')
    const prefixRoot = path.join(base, 'p', 'hl')
    const prefixes = makeTree(prefixRoot, 3, 4)
    // the other host installs the same prefixes at the same paths: a copy it takes from a directory both hosts see
    const copy = path.join(dir, 'copy')
    fs.cpSync(prefixRoot, copy, { recursive: true })
    expect(there(h, `mkdir -p ${quote(prefixRoot)} && cp -a ${quote(copy)}/. ${quote(prefixRoot)}/`).code).toBe(0)
    const view = path.join(base, 'p', 'hl-src', 'hpc') // a hardlink view lives on its prefixes' filesystem
    fs.mkdirSync(path.dirname(view), { recursive: true })
    onTestFinished(() => fs.rmSync(path.dirname(view), { recursive: true, force: true }))
    const { manifest, hash } = buildView(dir, view, prefixes, ['link: hardlink'])
    const remote = path.join(base, 'p', 'hl-views', 'hpc') // there: on its tmpfs, beside its copies of the prefixes

    const r = push(h, view, [dest(h, remote)], ['--json'])
    expect(r.code, r.stderr).toBe(0)
    const d = r.json.destinations[0]
    expect(d).toMatchObject({ ok: true, action: 'rebuilt', generation: 1, switched: true })
    expect(d.hash).not.toBe(hash)
    const status = remoteViewctl(h, ['status', remote, '--json'])
    expect(status.code, status.stderr).toBe(0)
    expect((status.json as { hash: string }).hash).toBe(d.hash)
    expect(remoteViewctl(h, ['verify', remote]).code).toBe(0)
    const planThere = there(h, `cat ${quote(remote)}/.viewctl/plan.tsv`)
    expect(planThere.stdout).toBe(fs.readFileSync(path.join(fs.realpathSync(view), '.viewctl', 'plan.tsv'), 'utf8'))
    // its files are that host's copies, not this host's
    const ino = there(h, `stat -c %i ${quote(remote)}/bin/pkg0-tool0 ${quote(prefixes[0]!)}/bin/pkg0-tool0`).stdout.trim().split('\n')
    expect(ino[0]).toBe(ino[1])
    expect(Number(ino[0])).not.toBe(fs.statSync(path.join(prefixes[0]!, 'bin', 'pkg0-tool0')).ino)

    // a new file here that the other host's prefix lacks: the plans differ, nothing is switched there
    fs.writeFileSync(path.join(prefixes[1]!, 'bin', 'only-here'), 'x')
    expect(viewctl(['regenerate', manifest]).code).toBe(0)
    const mismatch = push(h, view, [dest(h, remote)], ['--json'])
    expect(mismatch.code).toBe(1)
    expect(mismatch.json.destinations[0].error.code).toBe('PLAN_MISMATCH')
    expect(mismatch.json.destinations[0].error.message).toMatch(/only-here/)
    expect((remoteViewctl(h, ['status', remote, '--json']).json as { hash: string }).hash).toBe(d.hash)
  }, 120_000)
})
