/**
 * `viewctl exec`: the command runs against the canonical generation, holds a
 * shared lease on it through an inherited descriptor, survives regenerates
 * and gc, keeps its lease when viewctl is killed, gets signals forwarded and
 * passes its exit status back.
 */
import fs from 'node:fs'
import path from 'node:path'
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { describe, expect, it, onTestFinished } from 'vitest'
import { BIN, tempDir, viewctl, viewctlAsync, writeManifest, writeTree, type RunResult } from './helpers.js'
import { tryExclusiveLease, trySharedLease } from '../src/store/guard/lease.js'
import { collectGarbage } from '../src/ops/gc.js'

const DAY = 24 * 3600_000
const BASE_PATH = '/usr/bin:/bin'

interface Fixture {
  dir: string
  view: string
  store: string
  gen(k: number, extra?: string): { generation: number; hash: string }
  run(args: string[], env?: NodeJS.ProcessEnv): RunResult
}

function fixture(): Fixture {
  const dir = fs.realpathSync(tempDir('viewctl-exec-'))
  const view = path.join(dir, 'view')
  const store = path.join(dir, '._view')
  const run = (args: string[], env?: NodeJS.ProcessEnv) => viewctl(args, { cwd: dir, env })
  return {
    dir,
    view,
    store,
    run,
    gen(k, extra = '') {
      writeTree(path.join(dir, 'prefixes', `v${k}`), {
        'bin/tool': { content: `#!/bin/sh\necho v${k}\n`, mode: 0o755 },
        'bin/not-executable': '#!/bin/sh\n',
        [`share/v${k}.txt`]: 'x',
      })
      writeManifest(dir, `view: ./view\npackages: [./prefixes/v${k}]\ngc: {auto: false}\n${extra}`)
      const r = run(['regenerate', path.join(dir, 'env.yaml'), '--json'])
      expect(r.code, r.stderr).toBe(0)
      return { generation: r.json.generation, hash: r.json.hash }
    },
  }
}

function age(store: string, ms: number): void {
  const file = path.join(store, 'history.jsonl')
  const lines = fs.readFileSync(file, 'utf8').split('\n').filter(Boolean)
  fs.writeFileSync(file, lines.map((l) => {
    const rec = JSON.parse(l)
    rec.at = new Date(Date.parse(rec.at) - ms).toISOString()
    return JSON.stringify(rec)
  }).join('\n') + '\n')
}

/** Start `viewctl exec`, kill it (and what it started, by pid file when given) when the test ends. */
function startExec(f: Fixture, command: string[], env: NodeJS.ProcessEnv = {}): ChildProcess & { done: Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }> } {
  const child = viewctlAsync(['exec', f.view, '--', ...command], { cwd: f.dir, env })
  let stderr = ''
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d))
  child.stdout!.resume()
  const done = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal, stderr })))
  onTestFinished(() => {
    child.kill('SIGKILL')
    const pidFile = path.join(f.dir, 'pid')
    if (fs.existsSync(pidFile)) {
      try {
        process.kill(Number(fs.readFileSync(pidFile, 'utf8')), 'SIGKILL')
      } catch {
        // gone
      }
    }
  })
  return Object.assign(child, { done })
}

async function waitFor(what: string, check: () => boolean, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 25))
  }
}

function lines(file: string): string[] {
  try {
    return fs.readFileSync(file, 'utf8').split('\n').filter(Boolean)
  } catch {
    return []
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
  } catch {
    return false
  }
  // a zombie (killed, not yet reaped by whoever inherited it) is not alive
  try {
    return !/^State:\s+Z/m.test(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))
  } catch {
    return false
  }
}

describe('exec: environment and exit status', () => {
  it('prepends the canonical generation to the search paths, sets VIEWCTL_*, and passes the lease as fd 3', () => {
    const f = fixture()
    const g = f.gen(1)
    const canonical = path.join(fs.realpathSync(f.store), g.hash)
    const script = [
      'printf "%s\\n" "PATH=$PATH" "MANPATH=$MANPATH" "PKG_CONFIG_PATH=$PKG_CONFIG_PATH" "CMAKE_PREFIX_PATH=$CMAKE_PREFIX_PATH"',
      'printf "%s\\n" "VIEW=$VIEWCTL_VIEW" "ROOT=$VIEWCTL_ROOT" "GEN=$VIEWCTL_GENERATION" "HASH=$VIEWCTL_HASH" "LEASE_FD=$VIEWCTL_LEASE_FD"',
      'printf "%s\\n" "FD3=$(readlink /proc/self/fd/3)"',
      'tool',
    ].join('; ')
    const r = f.run(['exec', f.view, '--', 'sh', '-c', script], { PATH: BASE_PATH, MANPATH: undefined, PKG_CONFIG_PATH: '/opt/pc', CMAKE_PREFIX_PATH: undefined })
    expect(r.stderr).toBe('')
    expect(r.code).toBe(0)
    expect(r.stdout.split('\n')).toEqual([
      `PATH=${canonical}/bin:${BASE_PATH}`,
      `MANPATH=${canonical}/share/man:`,
      `PKG_CONFIG_PATH=${canonical}/lib/pkgconfig:${canonical}/share/pkgconfig:/opt/pc`,
      `CMAKE_PREFIX_PATH=${canonical}`,
      `VIEW=${f.view}`,
      `ROOT=${canonical}`,
      'GEN=1',
      `HASH=${g.hash}`,
      'LEASE_FD=3',
      `FD3=${canonical}/.viewctl/lease`,
      'v1',
      '',
    ])
  })

  it('uses the env settings recorded with the generation, and puts the view first even when its entries are already there', () => {
    const f = fixture()
    const g = f.gen(1, 'env:\n  PATH: [bin]\n  MY_DIRS: [".", share]\n')
    const canonical = path.join(fs.realpathSync(f.store), g.hash)
    const r = f.run(['exec', f.view, '--', 'sh', '-c', 'printf "%s\\n" "$PATH" "$MY_DIRS" "${MANPATH-unset}"'], { PATH: `${BASE_PATH}:${canonical}/bin`, MY_DIRS: undefined, MANPATH: undefined })
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout).toBe(`${canonical}/bin:${BASE_PATH}\n${canonical}:${canonical}/share\nunset\n`)
  })

  it('exits with the command status, 128+N for a signal, 127 when not found, 126 when not executable', () => {
    const f = fixture()
    f.gen(1)
    expect(f.run(['exec', f.view, '--', 'sh', '-c', 'exit 7']).code).toBe(7)
    expect(f.run(['exec', f.view, '--', 'sh', '-c', 'kill -TERM $$']).code).toBe(143)
    expect(f.run(['exec', f.view, '--', 'sh', '-c', 'kill -KILL $$']).code).toBe(137)

    const missing = f.run(['exec', f.view, '--', 'no-such-command-xyz', 'arg'])
    expect(missing.code).toBe(127)
    expect(missing.stderr).toBe("viewctl: no-such-command-xyz: command not found (searched the view's PATH and the inherited one)\n")

    const notExec = f.run(['exec', f.view, '--', 'not-executable'])
    expect(notExec.code).toBe(126)
    expect(notExec.stderr).toContain('not-executable: cannot run it (EACCES)')

    const none = f.run(['exec', f.view, '--json'])
    expect(none.code).toBe(2)
    expect(none.json.error.code).toBe('USAGE')

    const notView = f.run(['exec', path.join(f.dir, 'nope'), '--', 'true', '--json'])
    expect(notView.code).toBe(2)
  })

  it('passes options after -- to the command untouched', () => {
    const f = fixture()
    f.gen(1)
    const r = f.run(['exec', f.view, '--', 'sh', '-c', 'printf "[%s]" "$@"', 'sh', '--json', '-q', '--help', '--', 'x y'])
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout).toBe('[--json][-q][--help][--][x y]')
  })
})

describe('exec: a job across regenerate and gc', () => {
  it('keeps running against its generation, which gc keeps until the job ends', async () => {
    const f = fixture()
    const g1 = f.gen(1)
    const out = path.join(f.dir, 'out.txt')
    const job = startExec(f, ['sh', '-c', `echo $$ > pid; while [ ! -e stop ]; do tool >> "${out}"; sleep 0.1; done`])
    await waitFor('the job to run tool', () => lines(out).length >= 2)

    const g2 = f.gen(2)
    expect(g2.generation).toBe(2)
    const viaView = spawnSync(path.join(f.view, 'bin', 'tool'), { encoding: 'utf8' })
    expect(viaView.stdout).toBe('v2\n')
    age(f.store, DAY)

    const seen = lines(out).length
    await waitFor('more output after the switch', () => lines(out).length >= seen + 3)
    const gc = f.run(['gc', f.view, '--keep', '0', '--ttl', '1h', '--json'])
    expect(gc.code, gc.stderr).toBe(0)
    expect(gc.json.removed).toEqual([])
    expect(gc.json.kept[0].generation).toBe(1)
    expect(gc.json.kept[0].reasons).toHaveLength(1)
    expect(gc.json.kept[0].reasons[0]).toMatch(/^in use on this host: pid \d+ \(\w+\)/)
    expect(fs.existsSync(path.join(f.store, g1.hash, 'bin'))).toBe(true)

    const afterGc = lines(out).length
    await waitFor('more output after gc', () => lines(out).length >= afterGc + 3)
    fs.writeFileSync(path.join(f.dir, 'stop'), '')
    const end = await job.done
    expect(end.code).toBe(0)
    expect(end.stderr).toBe('')
    const all = lines(out)
    expect(all.length).toBeGreaterThanOrEqual(afterGc + 3)
    expect(new Set(all)).toEqual(new Set(['v1']))

    const later = f.run(['gc', f.view, '--keep', '0', '--ttl', '1h', '--json'])
    expect(later.json.removed).toEqual([{ generations: [1], hash: g1.hash }])
    expect(fs.existsSync(path.join(f.store, g1.hash))).toBe(false)
  })

  it('gc skips a tree held by an exec lease even where the /proc scan cannot see the holder', async () => {
    // the holder here is this very process, which the scan skips: as a holder on another host would be
    const f = fixture()
    const g1 = f.gen(1)
    f.gen(2)
    age(f.store, DAY)
    const canonical = path.join(fs.realpathSync(f.store), g1.hash)
    const lease = trySharedLease(canonical)
    expect(lease.state).toBe('held')
    let closed = false
    onTestFinished(() => {
      if (!closed && lease.state === 'held') fs.closeSync(lease.fd)
    })

    const kept = await collectGarbage(f.view, { keep: 0, ttl: '1h' })
    expect(kept.removed).toEqual([])
    expect(kept.kept[0]).toEqual({ generation: 1, hash: g1.hash, reasons: ['held by a lease (a viewctl exec runs in it, or a viewctl push or pull is sending it, on this or another host)'] })
    expect(fs.existsSync(path.join(canonical, '.viewctl', 'meta.json'))).toBe(true)

    if (lease.state === 'held') fs.closeSync(lease.fd)
    closed = true
    const removed = await collectGarbage(f.view, { keep: 0, ttl: '1h' })
    expect(removed.removed).toEqual([{ generations: [1], hash: g1.hash }])
  })

  it('the lease outlives a SIGKILLed viewctl while the command runs, and ends with the command', async () => {
    const f = fixture()
    const g1 = f.gen(1)
    const canonical = path.join(fs.realpathSync(f.store), g1.hash)
    const pidFile = path.join(f.dir, 'pid')
    const job = startExec(f, ['sh', '-c', 'echo $$ > pid; while [ ! -e stop ]; do sleep 0.1; done'])
    await waitFor('the job to start', () => lines(pidFile).length === 1)
    const shPid = Number(lines(pidFile)[0])
    f.gen(2)
    age(f.store, DAY)

    // kill viewctl only (the command shares its process group and must survive)
    process.kill(job.pid!, 'SIGKILL')
    const end = await job.done
    expect(end.signal).toBe('SIGKILL')
    expect(alive(shPid)).toBe(true)

    const probe = tryExclusiveLease(canonical)
    expect(probe.state).toBe('held')
    const gc = f.run(['gc', f.view, '--keep', '0', '--ttl', '1h', '--json'])
    expect(gc.code, gc.stderr).toBe(0)
    expect(gc.json.removed).toEqual([])
    expect(gc.json.kept[0].reasons[0]).toMatch(new RegExp(`^in use on this host: pid ${shPid} \\(sh\\)`))

    process.kill(shPid, 'SIGKILL')
    // the lease goes when the last holder of fd 3 (sh, or the sleep it started) is gone
    await waitFor('the lease to be released', () => {
      const p = tryExclusiveLease(canonical)
      if (p.state === 'free') fs.closeSync(p.fd)
      return p.state === 'free'
    })
    const after = f.run(['gc', f.view, '--keep', '0', '--ttl', '1h', '--json'])
    expect(after.json.removed).toEqual([{ generations: [1], hash: g1.hash }])
  })
})

describe('exec: signals', () => {
  for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) {
    it(`forwards ${signal} to the command and exits with its status`, async () => {
      const f = fixture()
      f.gen(1)
      const name = signal.slice(3)
      const job = startExec(f, ['sh', '-c', `echo $$ > pid; trap 'echo ${name} > got; exit 3' ${name}; while :; do sleep 0.05; done`])
      await waitFor('the job to start', () => lines(path.join(f.dir, 'pid')).length === 1)
      await new Promise((r) => setTimeout(r, 100))
      process.kill(job.pid!, signal)
      const end = await job.done
      expect(end.code).toBe(3)
      expect(fs.readFileSync(path.join(f.dir, 'got'), 'utf8')).toBe(`${name}\n`)
    })
  }

  it('exits 128+N when the command dies of a forwarded signal', async () => {
    const f = fixture()
    f.gen(1)
    const child = spawn(process.execPath, [BIN, 'exec', f.view, '--', 'sh', '-c', 'echo $$ > pid; exec sleep 30'], { cwd: f.dir, stdio: 'ignore' })
    onTestFinished(() => {
      child.kill('SIGKILL')
      try {
        process.kill(Number(fs.readFileSync(path.join(f.dir, 'pid'), 'utf8')), 'SIGKILL')
      } catch {
        // gone
      }
    })
    await waitFor('the command to start', () => lines(path.join(f.dir, 'pid')).length === 1)
    await new Promise((r) => setTimeout(r, 100))
    child.kill('SIGTERM')
    const code = await new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)))
    expect(code).toBe(143)
  })
})

describe('exec: racing gc', () => {
  it('waits while gc holds the lease exclusively, then takes a shared one', async () => {
    const { prepareExec } = await import('../src/shell/exec.js')
    const f = fixture()
    const g1 = f.gen(1)
    const canonical = path.join(fs.realpathSync(f.store), g1.hash)
    const gcSide = tryExclusiveLease(canonical)
    expect(gcSide.state).toBe('free')
    const started = Date.now()
    setTimeout(() => {
      if (gcSide.state === 'free') fs.closeSync(gcSide.fd)
    }, 300)
    const prepared = await prepareExec(f.view, { PATH: BASE_PATH })
    try {
      expect(Date.now() - started).toBeGreaterThanOrEqual(250)
      expect(prepared.root).toBe(canonical)
      expect(prepared.lease).toBe('held')
      expect(tryExclusiveLease(canonical).state).toBe('held')
    } finally {
      fs.closeSync(prepared.leaseFd)
    }
    const probe = tryExclusiveLease(canonical)
    expect(probe.state).toBe('free')
    if (probe.state === 'free') fs.closeSync(probe.fd)
  })
})
