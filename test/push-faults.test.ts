/**
 * A push against real faults (DESIGN §15): gc on the sending host while the
 * generation is being sent, a receiving filesystem that fills up (a small
 * tmpfs), and a network cut inside a network namespace made for the test,
 * followed by a push that resumes.
 */
import fs from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import { spawnSync } from 'node:child_process'
import { describe, expect, it, onTestFinished } from 'vitest'
import { BIN, tempDir, viewctl, viewctlAsync } from './helpers.js'
import { finishedWithin, historyText, scratchDir, storeOf, waitFor } from './view-checks.js'
import { buildView, dest, lockIsFree, makeTree, push, remoteOptions, requirePush, useSshd } from './push-helpers.js'
import { atCleanup } from './rig/cleanup.mjs'
import type { Sshd } from './rig/sshd.mjs'
import { startSshd } from './rig/sshd.mjs'

const sshd = useSshd()

const isRoot = process.getuid?.() === 0 && process.platform === 'linux'

function stagings(view: string): string[] {
  try {
    return fs.readdirSync(storeOf(view)).filter((n) => n.startsWith('.staging-') || n.startsWith('.push-'))
  } catch {
    return []
  }
}

function run(cmd: string, args: string[]): void {
  const r = spawnSync(cmd, args, { encoding: 'utf8' })
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr || r.error?.message}`)
}

describe('gc on the sending host during a push', () => {
  it('keeps the generation being pushed (its lease), even with --keep 0 --ttl 0s --force; once the push is done it may go', async (ctx) => {
    requirePush(ctx)
    const root = tempDir()
    const big = scratchDir('viewctl-vc16-gc-')
    onTestFinished(() => fs.rmSync(big, { recursive: true, force: true }))
    const prefixes = makeTree(path.join(big, 'p'), 10, 400)
    const view = path.join(root, 'hpc')
    // a copy view: rsync sends its files, long enough to run gc in the middle (a symlink view's plan is sent in a moment)
    const first = buildView(root, view, prefixes, ['link: copy']).hash
    const second = buildView(root, view, prefixes.slice(0, 2), ['link: copy']).hash
    const remote = path.join(root, 'r', 'hpc')

    const child = viewctlAsync(['push', view, dest(sshd(), remote), '--generation', '1', ...remoteOptions(sshd()), '--json'])
    onTestFinished(() => void child.kill('SIGKILL'))
    const done = finishedWithin(child, 300_000)
    // rsync is filling the staging directory there: the push is under way
    expect(await waitFor(() => stagings(remote).some((n) => n.startsWith('.staging-push-') && fs.existsSync(path.join(storeOf(remote), n, 'bin'))), 120_000, 20), 'the push did not start copying').toBe(true)
    // gc here: the /proc scan finds the push using the tree (its lease file open, rsync inside it)
    const gc = viewctl(['gc', view, '--keep', '0', '--ttl', '0s', '--force', '--json'])
    expect(gc.code, gc.stderr).toBe(0)
    expect(gc.json.removed).toEqual([])
    expect(gc.json.kept.find((k: { generation: number }) => k.generation === 1)).toMatchObject({ hash: first, reasons: [expect.stringMatching(/in use on this host/)] })
    // gc as on another host sharing the store (its own /proc, in a PID namespace): only the lease protects the tree there
    if (isRoot) {
      const elsewhere = spawnSync('unshare', ['--pid', '--fork', '--mount-proc', process.execPath, BIN, 'gc', view, '--keep', '0', '--ttl', '0s', '--force', '--json'], { encoding: 'utf8' })
      expect(elsewhere.status, elsewhere.stderr).toBe(0)
      const other = JSON.parse(elsewhere.stdout)
      expect(other.removed).toEqual([])
      expect(other.kept.find((k: { generation: number }) => k.generation === 1)).toEqual({ generation: 1, hash: first, reasons: [expect.stringMatching(/held by a lease/)] })
    } else console.log('gc in a PID namespace (another host\'s view of /proc) needs root: only the same-host gc was tried')
    expect(fs.existsSync(path.join(storeOf(view), first, '.viewctl', 'meta.json'))).toBe(true)

    const r = await done
    expect(r.code, r.stderr).toBe(0)
    expect(fs.readlinkSync(remote)).toBe(`._hpc/${first}`)
    expect(viewctl(['verify', remote]).code).toBe(0)
    // the lease was what kept it
    const after = viewctl(['gc', view, '--keep', '0', '--ttl', '0s', '--force', '--json'])
    expect(after.json.removed.map((t: { hash: string }) => t.hash)).toEqual([first])
    expect(fs.readlinkSync(view)).toBe(`._hpc/${second}`)
  }, 300_000)
})

describe('a receiving filesystem that fills up', () => {
  it.for(['symlink', 'copy'])('fails with DISK_FULL (exit 1) for a %s view; the view there is unchanged and the staging directory removed', { timeout: 300_000 }, (link, ctx) => {
    requirePush(ctx)
    if (!isRoot) ctx.skip('mounting a small tmpfs needs root')
    const root = tempDir()
    const mnt = path.join(root, 'small')
    fs.mkdirSync(mnt)
    // 3,000 inodes: the first generation (about 800 entries) fits, the second (about 8,000) does not
    run('mount', ['-t', 'tmpfs', '-o', 'size=8m,nr_inodes=3000,mode=755', 'vc16full', mnt])
    const unmount = atCleanup(() => spawnSync('umount', ['-l', mnt]))
    onTestFinished(unmount)
    const prefixes = makeTree(path.join(root, 'p'), 10, 200)
    const view = path.join(root, 'hpc')
    buildView(root, view, prefixes.slice(0, 1), ['fold: false', `link: ${link}`])
    const remote = path.join(mnt, 'hpc')
    expect(push(sshd(), view, [dest(sshd(), remote)]).code).toBe(0)
    const before = fs.readlinkSync(remote)
    const journal = historyText(remote)
    buildView(root, view, prefixes, ['fold: false', `link: ${link}`])

    const r = push(sshd(), view, [dest(sshd(), remote)], ['--json'])
    expect(r.code, r.stderr).toBe(1)
    const d = r.json.destinations[0]
    expect(d.error.code, JSON.stringify(d.error)).toBe('DISK_FULL')
    // a symlink view's tree is made there from its plan, a copy view's is sent by rsync
    expect(d.error.message).toMatch(link === 'copy' ? /rsync/ : /building generation/)
    expect(d.error.message).toContain(dest(sshd(), remote))
    expect(fs.readlinkSync(remote)).toBe(before)
    expect(historyText(remote)).toBe(journal)
    expect(stagings(remote)).toEqual([])
    expect(viewctl(['verify', remote]).code).toBe(0)
  })
})

/** A network namespace with a veth pair to this one: `down()` cuts it, as a pulled cable would. */
function networkNamespace(): { ns: string; address: string; down(): void; up(): void } {
  const id = process.pid % 10000
  const ns = `vc16n${id}`
  const here = `vc16h${id}`
  const there = `vc16p${id}`
  const net = `10.216.${(id % 250) + 1}`
  spawnSync('ip', ['netns', 'del', ns])
  run('ip', ['netns', 'add', ns])
  const remove = atCleanup(() => {
    spawnSync('ip', ['netns', 'del', ns])
    spawnSync('ip', ['link', 'del', here])
  })
  onTestFinished(remove)
  run('ip', ['link', 'add', here, 'type', 'veth', 'peer', 'name', there])
  run('ip', ['link', 'set', there, 'netns', ns])
  run('ip', ['addr', 'add', `${net}.1/30`, 'dev', here])
  run('ip', ['link', 'set', here, 'up'])
  run('ip', ['netns', 'exec', ns, 'ip', 'addr', 'add', `${net}.2/30`, 'dev', there])
  run('ip', ['netns', 'exec', ns, 'ip', 'link', 'set', there, 'up'])
  run('ip', ['netns', 'exec', ns, 'ip', 'link', 'set', 'lo', 'up'])
  return {
    ns,
    address: `${net}.2`,
    down: () => run('ip', ['netns', 'exec', ns, 'ip', 'link', 'set', there, 'down']),
    up: () => {
      run('ip', ['netns', 'exec', ns, 'ip', 'link', 'set', there, 'up'])
      // the address was unreachable while the cable was out: forget that, on both ends
      spawnSync('ip', ['neigh', 'flush', 'dev', here])
      spawnSync('ip', ['netns', 'exec', ns, 'ip', 'neigh', 'flush', 'dev', there])
    },
  }
}

describe('a network cut', () => {
  it('ends the push with a clear error, the view there unchanged; once the network is back, the next push resumes', async (ctx) => {
    requirePush(ctx)
    if (!isRoot) ctx.skip('network namespaces need root')
    if (spawnSync('ip', ['-V']).status !== 0) throw new Error('iproute2 (ip) is missing: .ci/run installs it')
    const netns = networkNamespace()
    const host: Sshd = await startSshd({ label: 'vc16', wrap: ['ip', 'netns', 'exec', netns.ns], address: netns.address })
    onTestFinished(() => host.stop())
    const root = tempDir()
    const big = scratchDir('viewctl-vc16-cut-')
    onTestFinished(() => fs.rmSync(big, { recursive: true, force: true }))
    const prefixes = makeTree(path.join(big, 'p'), 10, 500)
    const view = path.join(root, 'hpc')
    // a copy view: rsync sends its files, and an interrupted transfer resumes (a symlink view's plan is sent in a moment)
    const { hash: small } = buildView(root, view, prefixes.slice(0, 1), ['link: copy'])
    const remote = path.join(root, 'r', 'hpc')
    expect(push(host, view, [dest(host, remote)]).code).toBe(0)
    // a generation of 20,000 files
    const { hash: large } = buildView(root, view, prefixes, ['link: copy', 'fold: false'])

    // a heartbeat of 250 ms: both ends give up after 3 s of silence
    const heartbeat = { VIEWCTL_PUSH_HEARTBEAT_MS: '250' }
    const child = viewctlAsync(['push', view, dest(host, remote), ...remoteOptions(host), '--json'], { env: heartbeat })
    onTestFinished(() => void child.kill('SIGKILL'))
    const done = finishedWithin(child, 120_000)
    const staging = path.join(storeOf(remote), `.staging-push-${large}`)
    expect(await waitFor(() => fs.existsSync(path.join(staging, 'bin')), 120_000, 10), 'rsync did not start').toBe(true)
    netns.down()
    const cut = Date.now()
    const r = await done
    expect(r.timedOut).toBe(false)
    expect(r.code, r.stderr).toBe(1)
    const d = JSON.parse(r.stdout).destinations[0]
    expect(d.error.code).toBe('CONNECTION_LOST')
    expect(d.error.message).toContain(netns.address)
    expect(Date.now() - cut).toBeLessThan(30_000)
    expect(fs.readlinkSync(remote)).toBe(`._hpc/${small}`)
    // the receiver there gave up too: the lock is free, its rsync stopped, the staging directory stays for the next push
    expect(await waitFor(() => lockIsFree(remote), 30_000, 100), 'the receiver held its lock after the cut').toBe(true)
    expect(fs.existsSync(staging)).toBe(true)

    netns.up()
    expect(await waitFor(() => reachable(host.address, host.port), 30_000, 200), 'the network did not come back').toBeTruthy()
    const again = push(host, view, [dest(host, remote)], ['--json'])
    expect(again.code, again.stdout + again.stderr).toBe(0)
    expect(again.json.destinations[0]).toMatchObject({ ok: true, resumed: true, mode: 'full', hash: large })
    expect(fs.readlinkSync(remote)).toBe(`._hpc/${large}`)
    expect(stagings(remote)).toEqual([])
    expect(viewctl(['verify', remote]).code).toBe(0)
  }, 300_000)
})

let probe: Promise<boolean> | null = null
let reached = false

/** Polled by waitFor: true once a TCP connection to address:port succeeds. */
function reachable(address: string, port: number): boolean {
  if (reached) return true
  probe ??= new Promise<boolean>((resolve) => {
    const socket = net.connect({ host: address, port, timeout: 1000 })
    const end = (ok: boolean) => {
      socket.destroy()
      probe = null
      reached = ok
      resolve(ok)
    }
    socket.once('connect', () => end(true))
    socket.once('error', () => end(false))
    socket.once('timeout', () => end(false))
  })
  return false
}
