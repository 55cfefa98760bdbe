/**
 * Exec leases other clients can see: a file per running job in
 * `._<name>/leases/<hash>/<host>.<pid>.<start>`, beside the fcntl lease
 * (lease.ts), which stays on one client where fcntl locks do.
 *
 *   - `leases/` and each `leases/<hash>/` are made by writers, sticky and
 *     writable by everyone who may read the store (like /tmp: anyone may add
 *     an entry, only its owner may remove it). They live outside the
 *     generation, which stays immutable, so `verify` stays exact.
 *   - `viewctl exec` on a remote filesystem creates its file (O_EXCL,
 *     O_NOFOLLOW, readable by all) before the command starts: `<pid>` and
 *     `<start>` are the exec's own pid and its start time in ms. A small
 *     watcher process (sh) touches the file every REFRESH_S seconds for as
 *     long as the command's process tree holds the write end of a pipe it
 *     inherited (so it outlives a killed viewctl, as the fcntl lease does),
 *     then removes it.
 *   - gc, on any client, keeps a tree while one of its lease files was
 *     touched within STALE_S (by the server's clock), naming the holders;
 *     a file not touched for longer is a dead job's and is ignored (and
 *     removed with the tree); and one lease holds a tree back for at most
 *     MAX_AGE_S after its start, so that a planted or runaway lease cannot
 *     block gc forever.
 */
import fs from 'node:fs'
import { createRequire } from 'node:module'
import os from 'node:os'
import path from 'node:path'
import type { Readable } from 'node:stream'
import * as sfs from '../../fs.js'
import type { Layout } from '../layout.js'
import { bootId } from './host.js'

export const LEASES_DIR = 'leases'
/** How often a running job's watcher touches its lease file. */
export const REFRESH_S = 30
/** A lease file untouched for longer belongs to a job that ended without its watcher removing it (a crashed node). */
export const STALE_S = 180
/** The longest one lease holds a tree back, counted from the job's start. */
export const MAX_AGE_S = 14 * 24 * 3600

export function leasesRoot(layout: Layout): string {
  return path.join(layout.store, LEASES_DIR)
}

export function leaseDirOf(layout: Layout, hash: string): string {
  return path.join(leasesRoot(layout), hash)
}

/**
 * Sticky, and writable by each class of user that may read the store: the
 * store's read bits become read, write and search bits.
 */
function stickyModeFor(storeMode: number): number {
  let mode = 0o1700
  if (storeMode & 0o040) mode |= 0o070
  if (storeMode & 0o004) mode |= 0o007
  return mode
}

/** A directory at `dir`, made if missing, never through a symlink; its mode set (mkdir's is cut by the umask). */
function stickyDir(dir: string, mode: number): void {
  try {
    fs.mkdirSync(dir)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
  }
  const st = fs.lstatSync(dir)
  if (!st.isDirectory()) throw Object.assign(new Error(`${dir} is not a directory`), { code: 'ENOTDIR', path: dir })
  if ((st.mode & 0o7777) !== mode && st.uid === process.geteuid?.()) fs.chmodSync(dir, mode)
}

/** Writers: make `leases/<hash>/` for a tree the view now shows (best effort: exec then runs with the fcntl lease only). */
export function ensureLeaseDir(layout: Layout, hash: string): string | null {
  try {
    const mode = stickyModeFor(fs.statSync(layout.store).mode)
    stickyDir(leasesRoot(layout), mode)
    stickyDir(leaseDirOf(layout, hash), mode)
    return null
  } catch (err) {
    return `could not make ${leaseDirOf(layout, hash)} for exec leases: ${(err as Error).message}`
  }
}

export interface LeaseFile {
  file: string
  /**
   * Start the watcher on `job`'s lifeline (the end of a pipe whose other end
   * only the job's process tree holds): it keeps the file fresh until the
   * tree has ended, then removes it.
   */
  watch(lifeline: Readable): void
  /** Remove it now (the command did not start). */
  remove(): void
}

/** exec: this process's lease file on `hash`; null (and why) when the lease directory is missing or unusable. */
export function createLeaseFile(layout: Layout, hash: string, meta: Record<string, unknown>): { lease: LeaseFile | null; problem: string | null } {
  const dir = leaseDirOf(layout, hash)
  const start = Date.now()
  const file = path.join(dir, `${os.hostname()}.${process.pid}.${start}`)
  let fd: number
  try {
    const st = fs.lstatSync(dir)
    if (!st.isDirectory() || (st.mode & 0o1000) === 0) return { lease: null, problem: `${dir} is not a sticky directory` }
    fd = sfs.openNoFollow(file, sfs.createFlags(true), 0o644)
  } catch (err) {
    return { lease: null, problem: `no lease file in ${dir}: ${(err as Error).message}` }
  }
  try {
    fs.writeSync(fd, JSON.stringify({ host: os.hostname(), boot: bootId(), pid: process.pid, start, ...meta }) + '\n')
    fs.fchmodSync(fd, 0o644) // readable by every gc, whatever the umask
  } catch {
    // the name says who holds it; the content is for people
  } finally {
    fs.closeSync(fd)
  }
  const remove = () => {
    try {
      fs.unlinkSync(file)
    } catch {
      // gone already
    }
  }
  return {
    problem: null,
    lease: {
      file,
      remove,
      watch(lifeline) {
        // loaded here: node:child_process costs 2-3 ms to load, and every switch reaches this module (publish.ts)
        const { spawn } = createRequire(import.meta.url)('node:child_process') as typeof import('node:child_process')
        const watcher = spawn('sh', ['-c', WATCHER, 'viewctl-lease-watcher', file, String(REFRESH_S)], { stdio: [lifeline, 'ignore', 'ignore'], detached: true })
        watcher.on('error', () => {}) // no sh: the file goes stale after STALE_S, the fcntl lease still holds on this client
        watcher.unref()
      },
    },
  }
}

/**
 * The watcher: `cat` reads the lifeline until every process of the job's
 * tree has closed it; meanwhile a subshell touches the lease file every
 * REFRESH_S seconds, for as long as the watcher itself lives. It runs in a
 * session of its own (detached), so the terminal's signals go to the job,
 * not to it.
 */
const WATCHER = `f=$1 every=$2
( while kill -0 $$ 2>/dev/null; do sleep "$every"; touch -c -h -- "$f" 2>/dev/null; done ) &
cat >/dev/null
kill $! 2>/dev/null
rm -f -- "$f"`

export interface LeaseHolder {
  /** The file's name: `<host>.<pid>.<start>`. */
  name: string
  host: string
  pid: number
  /** Seconds since it was last touched, by the server's clock. */
  idleS: number
  /** Seconds since the job started (from its name). */
  heldS: number
}

export interface LeaseScan {
  /** Fresh leases that keep the tree. */
  holding: LeaseHolder[]
  /** Leases that no longer count: stale (untouched for STALE_S) or past MAX_AGE_S, or malformed. */
  ignored: Array<LeaseHolder | { name: string }>
}

/** gc: the lease files of `hash`, judged at `nowMs` (the server's clock). */
export function scanLeaseFiles(layout: Layout, hash: string, nowMs: number): LeaseScan {
  const dir = leaseDirOf(layout, hash)
  const out: LeaseScan = { holding: [], ignored: [] }
  let names: string[]
  try {
    fs.closeSync(fs.openSync(dir, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY | fs.constants.O_NOFOLLOW)) // close-to-open: a fresh listing
    names = fs.readdirSync(dir)
  } catch {
    return out
  }
  for (const name of names) {
    const m = /^(.+)\.(\d+)\.(\d+)$/.exec(name)
    let st: fs.Stats
    try {
      st = fs.lstatSync(path.join(dir, name))
    } catch {
      continue
    }
    if (m === null || !st.isFile()) {
      out.ignored.push({ name })
      continue
    }
    const holder: LeaseHolder = { name, host: m[1]!, pid: Number(m[2]), idleS: Math.max(0, (nowMs - st.mtimeMs) / 1000), heldS: (nowMs - Number(m[3])) / 1000 }
    // a start in the future (beyond clock skew) is not a job's: a planted name
    const plausible = holder.heldS > -STALE_S
    if (plausible && holder.idleS < STALE_S && holder.heldS < MAX_AGE_S) out.holding.push(holder)
    else out.ignored.push(holder)
  }
  return out
}

/** One line naming a holder, for gc's reasons. */
export function describeHolder(h: LeaseHolder): string {
  return `pid ${h.pid} on ${h.host} (refreshed ${Math.round(h.idleS)} s ago)`
}

/** gc, after removing a tree: its lease directory and the stale files in it (best effort; a fresh one keeps it). */
export function removeLeaseDir(layout: Layout, hash: string): void {
  const dir = leaseDirOf(layout, hash)
  try {
    for (const name of fs.readdirSync(dir)) fs.rmSync(path.join(dir, name), { force: true })
    fs.rmdirSync(dir)
  } catch {
    // not there, or not ours to remove
  }
}
