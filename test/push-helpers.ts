/**
 * What the push and pull suites share: a private sshd (test/rig/sshd.mjs)
 * started once per file, the command-line options that reach it, and the
 * remote viewctl, which is this checkout's bin/viewctl run by this node (so
 * nothing depends on the PATH of the ssh session).
 */
import fs from 'node:fs'
import path from 'node:path'
import { spawnSync } from 'node:child_process'
import { createRequire } from 'node:module'
import { afterAll, beforeAll, type TestContext } from 'vitest'
import { BIN, viewctl, writeManifest, type RunResult } from './helpers.js'
import { onPath, sshdUnavailable, startSshd, type Sshd } from './rig/sshd.mjs'

/** Why pushes cannot be tested here, or null. */
export function pushUnavailable(): string | null {
  const why = sshdUnavailable()
  if (why !== null) return why
  return onPath('rsync') ? null : 'not installed: rsync (apt-get install rsync)'
}

const unavailable = pushUnavailable()

/** Skip with the reason where sshd or rsync is missing, except as root on Linux (CI installs them: then it is a failure). */
export function requirePush(ctx: TestContext): void {
  if (unavailable === null) return
  if (process.getuid?.() === 0 && process.platform === 'linux') throw new Error(`push tests cannot run: ${unavailable} (.ci/run installs them)`)
  ctx.skip(`push tests need sshd and rsync: ${unavailable}`)
}

/** Start sshd before the file's tests (or describe block's), stop it after. */
export function useSshd(options: { wrap?: string[]; address?: string } = {}): () => Sshd {
  let rig: Sshd | null = null
  beforeAll(async () => {
    if (unavailable !== null) {
      process.stderr.write(`push tests skipped: ${unavailable}\n`)
      return
    }
    rig = await startSshd({ label: 'vc16', ...options })
  }, 60_000)
  afterAll(async () => {
    await rig?.stop()
    rig = null
  }, 60_000)
  return () => {
    if (rig === null) throw new Error('sshd is not running (call requirePush(ctx) first)')
    return rig
  }
}

export function quote(word: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`
}

/** This checkout's viewctl, as a command for the remote shell. */
export const REMOTE_VIEWCTL = `${quote(process.execPath)} ${quote(BIN)}`

/** --ssh and --remote-viewctl for a push or pull through `rig`. */
export function remoteOptions(rig: Sshd, remoteViewctl = REMOTE_VIEWCTL): string[] {
  const [, config, , port] = rig.sshArgs()
  return ['--ssh', `ssh -F ${quote(config!)} -p ${port}`, '--remote-viewctl', remoteViewctl]
}

/** `host:/abs/view` for a view reached through `rig`. */
export function dest(rig: Sshd, view: string): string {
  return `${rig.address}:${view}`
}

export function push(rig: Sshd, source: string, dests: string[], extra: string[] = []): RunResult {
  return viewctl(['push', source, ...dests, ...remoteOptions(rig), ...extra])
}

/**
 * Prefixes for a view with `pkgs` packages of `filesPer` files in each of
 * bin/, lib/, include/<pkg>/ (only one package has it: folded) and
 * share/man/man1/.
 */
export function makeTree(root: string, pkgs: number, filesPer: number): string[] {
  const out: string[] = []
  for (let p = 0; p < pkgs; p++) {
    const name = `pkg${p}`
    const dir = path.join(root, name)
    for (const [d, file] of [
      ['bin', (f: number) => `${name}-tool${f}`],
      ['lib', (f: number) => `lib${name}-${f}.so`],
      [`include/${name}`, (f: number) => `h${f}.h`],
      ['share/man/man1', (f: number) => `${name}-tool${f}.1`],
    ] as const) {
      fs.mkdirSync(path.join(dir, d), { recursive: true })
      for (let f = 0; f < filesPer; f++) fs.writeFileSync(path.join(dir, d, file(f)), `${name} ${f}\n`)
    }
    out.push(dir)
  }
  return out
}

/** A manifest for `view` over `prefixes`, regenerated; returns the manifest path and the hash. */
export function buildView(root: string, view: string, prefixes: string[], extra: string[] = [], name = 'env.yaml'): { manifest: string; hash: string } {
  const manifest = writeManifest(root, [`view: ${JSON.stringify(view)}`, ...extra, 'packages:', ...prefixes.map((p) => `  - ${JSON.stringify(p)}`), ''].join('\n'), name)
  const r = viewctl(['regenerate', manifest, '--json'])
  if (r.code !== 0) throw new Error(`regenerate ${manifest}: ${r.stderr}`)
  return { manifest, hash: r.json.hash as string }
}

/** Run viewctl on the "remote host": through ssh, so that it sees what that host sees (its own mount namespace). */
export function remoteViewctl(rig: Sshd, args: string[]): RunResult {
  const r = spawnSync('ssh', [...rig.sshArgs(), [REMOTE_VIEWCTL, ...args.map(quote)].join(' ')], { encoding: 'utf8', timeout: 120_000 })
  let json: unknown
  if (args.includes('--json')) {
    try {
      json = JSON.parse(r.stdout)
    } catch {
      json = undefined
    }
  }
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr, json }
}

/** Nobody holds the writer lock of `view` right now (tried the way viewctl takes it: an OFD lock, let go at once). */
export function lockIsFree(view: string): boolean {
  const { tryLock } = createRequire(import.meta.url)('fs-native-extensions') as { tryLock(fd: number): boolean }
  let fd: number
  try {
    fd = fs.openSync(path.join(path.dirname(view), `._${path.basename(view)}`, '.lock'), 'r+')
  } catch {
    return true
  }
  try {
    return tryLock(fd)
  } finally {
    fs.closeSync(fd)
  }
}

/** Processes whose command line satisfies `match`, by pid (from /proc). */
export function processes(match: (argv: string[]) => boolean): number[] {
  const pids: number[] = []
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue
    let argv: string[]
    try {
      argv = fs.readFileSync(`/proc/${name}/cmdline`, 'utf8').split('\0').filter((a) => a !== '')
    } catch {
      continue
    }
    if (argv.length > 0 && match(argv)) pids.push(Number(name))
  }
  return pids
}
