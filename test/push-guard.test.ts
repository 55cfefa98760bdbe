/**
 * The rsync guard (src/ops/replicate/guard.ts) on its own: what a push's
 * rsync runs on the receiving host. It lets rsync write only into the
 * staging directory of a live receiving session, refuses options that write
 * in place, and stops rsync the moment that session's lock is gone, even
 * when the rsync on the sending side would go on.
 */
import fs from 'node:fs'
import path from 'node:path'
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { describe, expect, it, onTestFinished } from 'vitest'
import { tempDir } from './helpers.js'
import { finishedWithin, scratchDir, storeOf, waitFor } from './view-checks.js'
import { buildView, dest, makeTree, quote, REMOTE_VIEWCTL, requirePush, useSshd } from './push-helpers.js'
import { openSource } from '../src/ops/replicate/source.js'
import type { Sshd } from './rig/sshd.mjs'

const sshd = useSshd()

interface Session {
  child: ChildProcess
  ready: { action: string; staging?: string }
}

/** Play the pushing end by hand: ssh to `viewctl receive`, say hello, read what is ready. */
async function receiver(rig: Sshd, view: string, remote: string): Promise<Session> {
  const source = await openSource(view)
  const hello = source.hello({ noSwitch: false, withPrefixes: false, lockTimeout: 10, heartbeatMs: 5000, argv: ['test'] })
  source.release()
  const child = spawn('ssh', [...rig.sshArgs(), `${REMOTE_VIEWCTL} receive ${quote(remote)}`], { stdio: ['pipe', 'pipe', 'inherit'] })
  onTestFinished(() => void child.kill('SIGKILL'))
  let buffer = ''
  const lines: Array<Record<string, unknown>> = []
  child.stdout!.setEncoding('utf8').on('data', (d: string) => {
    buffer += d
    let nl
    while ((nl = buffer.indexOf('\n')) !== -1) {
      lines.push(JSON.parse(buffer.slice(0, nl)) as Record<string, unknown>)
      buffer = buffer.slice(nl + 1)
    }
  })
  expect(await waitFor(() => lines.some((l) => l.type === 'greeting'), 30_000, 10)).toBe(true)
  child.stdin!.write(JSON.stringify(hello) + '\n')
  const ready = await waitFor(() => lines.find((l) => l.type === 'ready' || l.type === 'error'), 30_000, 10)
  expect(ready?.type, JSON.stringify(ready)).toBe('ready')
  return { child, ready: ready as Session['ready'] }
}

function guardPath(remote: string): string {
  return `${REMOTE_VIEWCTL} receive ${quote(remote)} --rsync --`
}

function sshOption(rig: Sshd): string {
  const [, config, , port] = rig.sshArgs()
  return `ssh -F ${quote(config!)} -p ${port}`
}

describe('the rsync guard', () => {
  it('lets rsync fill only the staging directory of a live session, and nothing in place', async (ctx) => {
    requirePush(ctx)
    const root = tempDir()
    const view = path.join(root, 'hpc')
    // a copy view: its tree travels by rsync (a symlink view's is made there from its plan)
    buildView(root, view, makeTree(path.join(root, 'p'), 2, 2), ['link: copy'])
    const remote = path.join(root, 'r', 'hpc')
    const session = await receiver(sshd(), view, remote)
    expect(session.ready.action).toBe('transfer')
    expect(path.dirname(session.ready.staging!)).toBe(storeOf(remote))
    expect(path.basename(session.ready.staging!)).toMatch(/^\.staging-push-[0-9a-f]{32}$/)
    const rsync = (to: string, extra: string[] = []) =>
      spawnSync('rsync', ['-a', ...extra, '-e', sshOption(sshd()), `--rsync-path=${guardPath(remote)}`, `${fs.realpathSync(view)}/`, `${dest(sshd(), to)}/`], { encoding: 'utf8', timeout: 60_000 })

    const elsewhere = rsync(path.join(root, 'elsewhere'))
    expect(elsewhere.status).not.toBe(0)
    expect(elsewhere.stderr).toMatch(/not the staging directory/)
    expect(fs.existsSync(path.join(root, 'elsewhere'))).toBe(false)
    const inplace = rsync(session.ready.staging!, ['--inplace'])
    expect(inplace.status).not.toBe(0)
    expect(inplace.stderr).toMatch(/--inplace is not allowed/)
    const ok = rsync(session.ready.staging!)
    expect(ok.status, ok.stderr).toBe(0)
    expect(fs.existsSync(path.join(session.ready.staging!, '.viewctl', 'meta.json'))).toBe(true)

    // the session ends (the pusher gone): no rsync may start any more
    session.child.stdin!.end()
    await finishedWithin(session.child, 30_000)
    const late = rsync(session.ready.staging!)
    expect(late.status).not.toBe(0)
    expect(late.stderr).toMatch(/no push is receiving|has ended/)
  }, 120_000)

  it('stops rsync there the moment the session dies, though the sending rsync would go on', async (ctx) => {
    requirePush(ctx)
    const root = tempDir()
    const big = scratchDir('viewctl-vc16-guard-')
    onTestFinished(() => fs.rmSync(big, { recursive: true, force: true }))
    const view = path.join(root, 'hpc')
    buildView(root, view, makeTree(path.join(big, 'p'), 10, 200), ['link: copy'])
    const remote = path.join(root, 'r', 'hpc')
    const session = await receiver(sshd(), view, remote)
    // a slow link: 8,000 links at 20 KiB/s take a minute or more
    const copy = spawn('rsync', ['-a', '--bwlimit=20', '-e', sshOption(sshd()), `--rsync-path=${guardPath(remote)}`, `${fs.realpathSync(view)}/`, `${dest(sshd(), session.ready.staging!)}/`], { stdio: ['ignore', 'ignore', 'pipe'] })
    onTestFinished(() => void copy.kill('SIGKILL'))
    const copied = finishedWithin(copy, 120_000)
    expect(await waitFor(() => fs.existsSync(path.join(session.ready.staging!, 'bin')), 60_000, 20), 'rsync did not start').toBe(true)

    // kill -9 the receiving session: its lock is dropped by the kernel; the sending rsync knows nothing of it
    const receivers = fs
      .readdirSync('/proc')
      .filter((n) => /^\d+$/.test(n))
      .filter((n) => {
        try {
          const argv = fs.readFileSync(`/proc/${n}/cmdline`, 'utf8').split('\0')
          return argv.includes('receive') && argv.includes(remote) && !argv.includes('--rsync')
        } catch {
          return false
        }
      })
    expect(receivers).toHaveLength(1)
    const killed = Date.now()
    process.kill(Number(receivers[0]), 'SIGKILL')
    const r = await copied
    expect(r.timedOut).toBe(false)
    expect(r.code).not.toBe(0)
    expect(Date.now() - killed).toBeLessThan(10_000)
    expect(r.stderr).toMatch(/rsync was stopped/)
  }, 180_000)
})
