/**
 * exec: run a command inside one generation of a view (DESIGN §7, the RCU
 * reader discipline).
 *
 * The view is resolved once, to its canonical tree `<store>/<hash>`; the
 * command's PATH, MANPATH, PKG_CONFIG_PATH, CMAKE_PREFIX_PATH (or the
 * manifest's `env`) name that tree, not the view path, so a job that runs for
 * days sees one generation however often the view is regenerated.
 *
 * The tree is protected from gc by a lease: a shared OFD lock on
 * `.viewctl/lease`, taken on a descriptor the command inherits as fd 3
 * (VIEWCTL_LEASE_FD=3). The lock belongs to the open file description, so it
 * lasts as long as any process of the command's tree keeps that descriptor:
 * viewctl itself may die, even by kill -9, and the lease stays. A command
 * that closes descriptors it did not open (some daemons do) gives it up;
 * the ttl and the /proc scan (its environment names the tree) still apply.
 *
 * On a shared filesystem, where another client's gc cannot see this
 * client's fcntl locks, the command also gets a lease file in
 * `._<name>/leases/<hash>/` (store/guard/lease-file.ts), kept fresh by a
 * watcher process for as long as the command's process tree holds
 * descriptor 4, the write end of a pipe whose read end only the watcher has.
 *
 * The library never exits the process: it returns the status the CLI should
 * exit with (the command's, 128+N when it died by signal N, 127 when it was
 * not found, 126 when it could not be run).
 */
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import type { Readable } from 'node:stream'
import { ViewError, translateOsError } from '../errors.js'
import { viewPathOf } from '../manifest/target.js'
import { isHashName, layoutFor, META_DIR, META_FILE, type Layout } from '../store/layout.js'
import { trySharedLease, type SharedLease } from '../store/guard/lease.js'
import { readViewState, requireManaged } from '../store/journal/state.js'
import { currentUser } from '../store/journal/history.js'
import { filesystemOf } from '../store/guard/filesystem.js'
import { createLeaseFile, type LeaseFile } from '../store/guard/lease-file.js'
import { envEntries, prependEntries, recordedEnv } from './env.js'

/** The descriptor number the command finds its lease on. */
export const LEASE_FD = 3

const FORWARDED: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT']

export interface ExecOptions {
  /** The environment to start from (default: this process's). */
  env?: NodeJS.ProcessEnv
  cwd?: string
  /** Pass SIGINT, SIGTERM, SIGHUP, SIGQUIT received by this process on to the command (default true). */
  forwardSignals?: boolean
  /** Called once the command is running (tests, progress). */
  onSpawn?: (pid: number, prepared: PreparedExec) => void
}

export interface PreparedExec {
  view: string
  /** The canonical generation directory the command runs against. */
  root: string
  hash: string
  generation: number | null
  /** The command's environment. */
  env: NodeJS.ProcessEnv
  /** 'held': the command holds a lease; 'unsupported': the filesystem cannot lock, it runs without one. */
  lease: 'held' | 'unsupported'
  leaseFd: number
}

export interface ExecResult {
  view: string
  root: string
  hash: string
  generation: number | null
  /** What the CLI should exit with. */
  status: number
  /** The signal that ended the command, if one did. */
  signal: NodeJS.Signals | null
  /** Why the command did not run (not found, not executable); null when it ran. */
  error: string | null
  warnings: string[]
}

const RESOLVE_ATTEMPTS = 100
const RETRY_MS = 20

/**
 * Resolve the view to one generation and take its lease. The caller owns
 * `leaseFd` (execInView closes it when the command ends).
 */
export async function prepareExec(target: string, base: NodeJS.ProcessEnv = process.env): Promise<PreparedExec> {
  const layout = layoutFor(viewPathOf(target))
  requireManaged(readViewState(layout))
  for (let attempt = 0; ; attempt++) {
    const root = resolveCanonical(layout)
    let lease: SharedLease | null = null
    try {
      lease = trySharedLease(root)
    } catch (err) {
      // the tree went to trash between resolving and opening: the view has moved on
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw translateOsError(err, `opening the lease of ${root}`)
    }
    if (lease && lease.state !== 'busy') {
      if (fs.existsSync(path.join(root, META_DIR, META_FILE))) return finishPrepare(layout, root, lease, base)
      fs.closeSync(lease.fd) // gc retired it after we resolved it
    }
    if (attempt >= RESOLVE_ATTEMPTS) {
      throw new ViewError('IO', `${layout.view}: could not take a lease on its current generation ${root} (gc kept retiring it, or the view kept changing)`, 'retry; if it persists, check for a runaway gc or regenerate loop')
    }
    await new Promise((r) => setTimeout(r, RETRY_MS)) // gc holds it exclusively while it retires the tree
  }
}

function resolveCanonical(layout: Layout): string {
  let root: string
  let store: string
  try {
    root = fs.realpathSync(layout.view)
    store = fs.realpathSync(layout.store)
  } catch (err) {
    throw translateOsError(err, `resolving ${layout.view}`)
  }
  if (path.dirname(root) !== store || !isHashName(path.basename(root))) {
    throw new ViewError('NOT_MANAGED', `${layout.view} resolves to ${root}, which is not a generation in ${store}`, 'check the view path; viewctl views are symlinks to ._<name>/<hash>')
  }
  return root
}

function finishPrepare(layout: Layout, root: string, lease: Exclude<SharedLease, { state: 'busy' }>, base: NodeJS.ProcessEnv): PreparedExec {
  const hash = path.basename(root)
  const { env: settings, record } = recordedEnv(readViewState(layout), hash)
  const env: NodeJS.ProcessEnv = { ...base }
  try {
    for (const { name, dirs } of envEntries(root, settings)) env[name] = prependEntries(name, base[name], dirs, true)
  } catch (err) {
    fs.closeSync(lease.fd)
    throw err
  }
  env.VIEWCTL_VIEW = layout.view
  env.VIEWCTL_ROOT = root
  env.VIEWCTL_HASH = hash
  env.VIEWCTL_GENERATION = record ? String(record.generation) : ''
  if (lease.state === 'held') env.VIEWCTL_LEASE_FD = String(LEASE_FD)
  else delete env.VIEWCTL_LEASE_FD
  return { view: layout.view, root, hash, generation: record?.generation ?? null, env, lease: lease.state, leaseFd: lease.fd }
}

export async function execInView(target: string, command: string[], opts: ExecOptions = {}): Promise<ExecResult> {
  if (command.length === 0 || command[0] === '') {
    throw new ViewError('USAGE', 'exec needs a command to run', 'put it after --, e.g. `viewctl exec /opt/views/hpc -- make -j8`')
  }
  const prepared = await prepareExec(target, opts.env ?? process.env)
  const warnings: string[] = []
  if (prepared.lease === 'unsupported') {
    warnings.push(`the filesystem cannot lock ${prepared.root}/.viewctl/lease: this command holds no lease, only the ttl and the spares protect its generation from gc`)
  }
  const base = { view: prepared.view, root: prepared.root, hash: prepared.hash, generation: prepared.generation, warnings }
  const leaseFile = sharedLeaseFile(prepared, command, warnings)
  try {
    const outcome = await runChild(command, prepared, opts, leaseFile)
    return { ...base, ...outcome }
  } finally {
    fs.closeSync(prepared.leaseFd) // the command's own copy of the descriptor keeps the lease while it lives
  }
}

/** On a shared filesystem: the command's lease file, for other clients' gc (null elsewhere, or when it cannot be made: then a warning says so). */
function sharedLeaseFile(prepared: PreparedExec, command: string[], warnings: string[]): LeaseFile | null {
  const layout = layoutFor(prepared.view)
  let remote: boolean
  try {
    remote = filesystemOf(layout.store).remote
  } catch {
    return null
  }
  if (!remote) return null
  const { lease, problem } = createLeaseFile(layout, prepared.hash, { user: currentUser(), view: prepared.view, generation: prepared.generation, command: command[0] })
  if (problem !== null) warnings.push(`${problem}: gc on other clients is held back from ${prepared.root} only by the ttl, the spares and the two-minute rule`)
  return lease
}

function runChild(command: string[], prepared: PreparedExec, opts: ExecOptions, leaseFile: LeaseFile | null): Promise<Pick<ExecResult, 'status' | 'signal' | 'error'>> {
  return new Promise((resolve) => {
    // descriptor 4: the lease file watcher's lifeline (store/guard/lease-file.ts), held by the command's process tree
    const stdio: Array<'inherit' | 'pipe' | number> = ['inherit', 'inherit', 'inherit', prepared.leaseFd, ...(leaseFile ? ['pipe' as const] : [])]
    let child
    try {
      child = spawn(command[0]!, command.slice(1), { stdio, env: prepared.env, cwd: opts.cwd })
    } catch (err) {
      leaseFile?.remove()
      resolve(spawnFailure(command[0]!, err))
      return
    }
    if (leaseFile) {
      const lifeline = child.stdio[4] as Readable | null
      if (child.pid !== undefined && lifeline) leaseFile.watch(lifeline)
      else leaseFile.remove()
      lifeline?.destroy() // the watcher has its own copy: the command's tree is now the only writer
    }
    const forward = (signal: NodeJS.Signals) => {
      try {
        child.kill(signal)
      } catch {
        // already gone
      }
    }
    const handlers = opts.forwardSignals === false ? [] : FORWARDED.map((s) => [s, () => forward(s)] as const)
    for (const [s, h] of handlers) process.on(s, h)
    const done = (result: Pick<ExecResult, 'status' | 'signal' | 'error'>) => {
      for (const [s, h] of handlers) process.off(s, h)
      resolve(result)
    }
    child.once('error', (err) => {
      leaseFile?.remove()
      done(spawnFailure(command[0]!, err))
    })
    child.once('spawn', () => opts.onSpawn?.(child.pid!, prepared))
    child.once('exit', (code, signal) => {
      if (signal) done({ status: 128 + (os.constants.signals[signal] ?? 0), signal, error: null })
      else done({ status: code ?? 1, signal: null, error: null })
    })
  })
}

function spawnFailure(cmd: string, err: unknown): Pick<ExecResult, 'status' | 'signal' | 'error'> {
  const code = (err as NodeJS.ErrnoException).code
  if (code === 'ENOENT') return { status: 127, signal: null, error: `${cmd}: command not found (searched the view's PATH and the inherited one)` }
  if (code === 'EACCES' || code === 'ENOEXEC' || code === 'EISDIR') return { status: 126, signal: null, error: `${cmd}: cannot run it (${code})` }
  return { status: 126, signal: null, error: `${cmd}: ${(err as Error).message}` }
}
