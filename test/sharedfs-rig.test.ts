/**
 * The shared-filesystem rig itself (test/rig/): one export seen through an
 * uncached, a stale and a delayed sshfs mount of a private sshd, and nothing
 * left behind when it stops, also when its process dies.
 */
import fs from 'node:fs'
import path from 'node:path'
import { spawn } from 'node:child_process'
import { describe, expect, it } from 'vitest'
import { ROOT } from './helpers.js'
import { processGone } from './rig/cleanup.mjs'
import { isMounted, startSharedFs } from './rig/sharedfs.mjs'
import { requireSharedFs, useSharedFs } from './rig/vitest.js'

const DELAY_MS = 5
const rig = useSharedFs({ delayMs: DELAY_MS })

function timeMs(fn: () => void): number {
  const t0 = performance.now()
  fn()
  return performance.now() - t0
}

describe('the shared-filesystem rig', () => {
  it('shows one export through every mount, absolute symlinks included', (ctx) => {
    requireSharedFs(ctx)
    const { export: exp, at } = rig()
    const dir = fs.mkdtempSync(path.join(exp, 'same-'))
    fs.writeFileSync(path.join(dir, 'file'), 'from the server')
    fs.symlinkSync('/an/absolute/target', path.join(dir, 'abs'))
    for (const m of ['uncached', 'stale', 'delayed'] as const) {
      expect(fs.readFileSync(at(m, path.join(dir, 'file')), 'utf8')).toBe('from the server')
      // EPERM here would mean contain_symlinks is on (Debian's sshfs default)
      expect(fs.readlinkSync(at(m, path.join(dir, 'abs')))).toBe('/an/absolute/target')
    }
    // and a write through one mount is what the others read
    fs.writeFileSync(at('uncached', path.join(dir, 'written')), 'through a mount')
    expect(fs.readFileSync(path.join(dir, 'written'), 'utf8')).toBe('through a mount')
    expect(fs.readFileSync(at('delayed', path.join(dir, 'written')), 'utf8')).toBe('through a mount')
  })

  it('the stale mount serves an old symlink target that the uncached mount does not; O_EXCL is answered by the server on both', (ctx) => {
    requireSharedFs(ctx)
    const { export: exp, at } = rig()
    const dir = fs.mkdtempSync(path.join(exp, 'stale-'))
    const link = path.join(dir, 'view')
    fs.symlinkSync('._view/aaa', link)
    expect(fs.readlinkSync(at('stale', link))).toBe('._view/aaa')
    expect(fs.readlinkSync(at('uncached', link))).toBe('._view/aaa')
    // another client switches the view
    fs.symlinkSync('._view/bbb', path.join(dir, 'tmp'))
    fs.renameSync(path.join(dir, 'tmp'), link)
    expect(fs.readlinkSync(at('uncached', link))).toBe('._view/bbb')
    expect(fs.readlinkSync(at('stale', link)), 'the stale mount should still show the old target (sshfs dir_cache)').toBe('._view/aaa')
    // a name the stale client has never looked up is created by the server, which knows it exists
    fs.writeFileSync(path.join(dir, 'switch.2'), '')
    let code: string | undefined
    try {
      fs.closeSync(fs.openSync(at('stale', path.join(dir, 'switch.2')), fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_WRONLY))
    } catch (err) {
      code = (err as NodeJS.ErrnoException).code
    }
    expect(code).toBe('EEXIST')
  })

  it('the delayed mount pays the proxy delay on every round trip', (ctx) => {
    requireSharedFs(ctx)
    const { export: exp, at, proxy } = rig()
    const file = path.join(exp, 'timed')
    fs.writeFileSync(file, '')
    const delayed = at('delayed', file)
    // one uncached lstat is at least one round trip: the delay each way
    const times = Array.from({ length: 10 }, () => timeMs(() => fs.lstatSync(delayed)))
    expect(Math.min(...times)).toBeGreaterThanOrEqual(2 * DELAY_MS * 0.95)
    const stats = proxy!.stats()
    expect(stats!.chunks).toBeGreaterThan(0)
    expect(stats!.meanHoldMs!).toBeGreaterThanOrEqual(DELAY_MS * 0.95)
  })

  it('stop() unmounts everything and ends every process it started', async (ctx) => {
    requireSharedFs(ctx)
    const second = await startSharedFs({ label: 'vc15', mounts: ['uncached', 'delayed'] })
    const mounts = Object.values(second.mounts).map((m) => m!)
    const pids = [second.sshd.pid, second.proxy!.pid, ...mounts.map((m) => m.pid)]
    for (const m of mounts) expect(isMounted(m.path)).toBe(true)
    await second.stop()
    for (const m of mounts) expect(isMounted(m.path)).toBe(false)
    for (const pid of pids) expect(processGone(pid), `pid ${pid} still runs`).toBe(true)
    expect(fs.existsSync(second.root)).toBe(false)
    expect(fs.existsSync(second.sshd.dir)).toBe(false)
  })

  for (const ending of ['an uncaught error', 'SIGTERM'] as const) {
    it(`a process that dies of ${ending} leaves no mount and no process behind`, async (ctx) => {
      requireSharedFs(ctx)
      const script = `
        import { startSharedFs } from ${JSON.stringify(path.join(ROOT, 'test', 'rig', 'sharedfs.mjs'))}
        const rig = await startSharedFs({ label: 'vc15' })
        const m = Object.values(rig.mounts)
        process.stdout.write(JSON.stringify({ root: rig.root, sshdDir: rig.sshd.dir, mounts: m.map((x) => x.path), pids: [rig.sshd.pid, rig.proxy.pid, ...m.map((x) => x.pid)] }) + '\\n')
        ${ending === 'SIGTERM' ? 'setInterval(() => {}, 1000)' : 'setTimeout(() => { throw new Error("boom") }, 50)'}
      `
      const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] })
      const line = await new Promise<string>((resolve, reject) => {
        let out = ''
        child.stdout.on('data', (d) => {
          out += d
          if (out.includes('\n')) resolve(out.slice(0, out.indexOf('\n')))
        })
        child.once('exit', (code) => reject(new Error(`the driver exited (${code}) before the rig started`)))
      })
      const info = JSON.parse(line) as { root: string; sshdDir: string; mounts: string[]; pids: number[] }
      for (const m of info.mounts) expect(isMounted(m)).toBe(true)
      if (ending === 'SIGTERM') child.kill('SIGTERM')
      await new Promise((r) => child.once('exit', r))
      for (const m of info.mounts) expect(isMounted(m), `${m} is still mounted`).toBe(false)
      for (const pid of info.pids) expect(processGone(pid), `pid ${pid} still runs`).toBe(true)
      expect(fs.existsSync(info.root)).toBe(false)
      expect(fs.existsSync(info.sshdDir)).toBe(false)
    })
  }
})
