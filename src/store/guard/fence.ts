/**
 * Fresh reads and the fencing counter (DESIGN §14).
 *
 * A client of a shared filesystem may answer from its caches: the view's
 * target and the journal as they were some seconds ago. A writer must not act
 * on that. So, under the writer lock:
 *
 *   - it reads with the freshest lookup the mount offers: it reopens the
 *     view's parent directory and the store before reading the symlink and
 *     the journal (close-to-open consistency: on NFS, opening revalidates
 *     what the client cached);
 *   - every switch also creates `._<name>/switch.<n>` with O_EXCL, n being
 *     the number of switches the journal then holds with this one. Only the
 *     server answers O_EXCL, never a cache. A writer whose journal shows n
 *     switches while `switch.<n+1>` exists has read old data: it waits until
 *     its reads catch up (sshfs's cache lives 20 s by default, NFS's
 *     attributes at most 60 s), and a switch it decided on stale reads fails
 *     at its own O_EXCL and changes nothing.
 *
 * A writer that dies between creating its fence and appending its record
 * leaves a fence the journal never catches up with. It is told apart from a
 * stale read by the fence's own age, by the server's clock: once it is older
 * than SETTLE_S no cache can still hide its record, and it is removed. On a
 * local filesystem reads are never stale, so it goes at once.
 *
 * Each fence also records which tree the switch left and which it made
 * current, with the server's timestamp: gc's two-minute rule (ops/gc.ts)
 * reads the recent ones.
 */
import fs from 'node:fs'
import path from 'node:path'
import { ViewError, translateOsError } from '../../errors.js'
import * as sfs from '../../fs.js'
import { nonce, type Layout } from '../layout.js'
import { STALE_LIMIT_S, type Filesystem } from './filesystem.js'
import { thisProcess, type ProcessId } from './host.js'

export const FENCE_PREFIX = 'switch.'
/** A fence the journal has not caught up with after this long (server time) was left by a writer that died. */
export const SETTLE_S = STALE_LIMIT_S
/** Fences kept however old: the newest this many. Older ones go once they are a day old: no client's cache is that old, so no writer's count can fall among them. */
export const KEEP_FENCES = 64
const POLL_MS = 250

export interface FenceRecord extends ProcessId {
  n: number
  generation: number
  /** The tree the view showed before this switch (null for the first). */
  from: string | null
  to: string
  at: string
}

export function fencePath(layout: Layout, n: number): string {
  return path.join(layout.store, `${FENCE_PREFIX}${n}`)
}

/** The time on the filesystem's own clock, in ms: a file created now carries it (1 s resolution on some servers). */
export function serverNow(layout: Layout, filesystem: Filesystem): number {
  if (!filesystem.remote) return Date.now()
  const probe = path.join(layout.store, `.clock-${process.pid}-${nonce()}`)
  let fd: number
  try {
    fd = sfs.openNoFollow(probe, sfs.createFlags(true), 0o600)
  } catch {
    return Date.now() // the store is not writable here: this host's clock is the best left
  }
  try {
    return fs.fstatSync(fd).mtimeMs
  } finally {
    fs.closeSync(fd)
    try {
      fs.unlinkSync(probe)
    } catch {
      // cleared as a leftover by the next writer
    }
  }
}

function lstatOrNull(p: string): fs.Stats | null {
  try {
    return fs.lstatSync(p)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null
    throw err
  }
}

export function readFence(file: string): FenceRecord | null {
  try {
    return JSON.parse(sfs.readTextNoFollow(file)) as FenceRecord
  } catch {
    return null
  }
}

/** What awaitFreshState needs to know of a reading of the view (journal/state.ts). */
export interface SwitchFacts {
  /** Switch records in the journal. */
  switches: number
  /** The hash of the journal's last switch, null with none. */
  lastHash: string | null
  /** The hash the view's symlink shows, null when it is not a view. */
  shownHash: string | null
}

export interface FreshState<S> {
  state: S
  /** Warnings for the caller's result: a wait for stale reads, a dead writer's fence removed. */
  notes: string[]
}

/**
 * Under the writer lock, before deciding anything: a reading of the view
 * (`read`, fresh: journal/state.ts readViewStateFresh) not older than the
 * last switch any client made: no `switch.<n+1>` beyond the journal's n
 * switches, and on a shared filesystem no recent switch the symlink does not
 * show yet. Waits while this client's reads catch up; removes the fence of a
 * writer that died before recording its switch.
 */
export async function awaitFreshState<S>(layout: Layout, filesystem: Filesystem, read: () => S, facts: (s: S) => SwitchFacts, signal?: AbortSignal): Promise<FreshState<S>> {
  const notes: string[] = []
  let waitedMs = 0
  for (;;) {
    const state = read()
    const f = facts(state)
    const next = fencePath(layout, f.switches + 1)
    const st = lstatOrNull(next)
    if (st === null) {
      if (!symlinkBehind(layout, filesystem, f)) {
        if (waitedMs > 0) notes.push(`waited ${(waitedMs / 1000).toFixed(1)} s for this client's view of ${layout.store} to catch up with a switch made elsewhere`)
        return { state, notes }
      }
    } else if (!filesystem.remote || (serverNow(layout, filesystem) - st.mtimeMs) / 1000 >= SETTLE_S) {
      const fence = readFence(next)
      removeFence(next)
      notes.push(`removed ${path.basename(next)}: ${fence ? `pid ${fence.pid} on ${fence.host} began a switch to ${fence.to.slice(0, 12)} at ${fence.at}` : 'a switch began'} and died before recording it`)
      continue
    }
    if (signal?.aborted) throw new ViewError('INTERRUPTED', `interrupted while waiting for fresh reads of ${layout.store}`, 'nothing was changed')
    await new Promise((r) => setTimeout(r, POLL_MS))
    waitedMs += POLL_MS
  }
}

/**
 * The journal's last switch is not what the symlink shows, and that switch
 * is recent (its fence younger than SETTLE_S, server time) on a remote
 * filesystem: this client may still be resolving the symlink from its cache.
 * An older disagreement is what a writer that died between recording and
 * publishing leaves, and is not waited for.
 */
function symlinkBehind(layout: Layout, filesystem: Filesystem, f: SwitchFacts): boolean {
  if (!filesystem.remote || f.shownHash === null || f.lastHash === null || f.lastHash === f.shownHash) return false
  const fence = lstatOrNull(fencePath(layout, f.switches))
  return fence !== null && (serverNow(layout, filesystem) - fence.mtimeMs) / 1000 < SETTLE_S
}

function removeFence(file: string): void {
  try {
    fs.unlinkSync(file)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw translateOsError(err, `removing the abandoned fence ${file}`)
  }
}

export interface FenceClaim {
  file: string
  /** Take the fence back: the switch it announced did not happen. */
  retract(): void
}

/**
 * Announce switch number `n` (the journal's switches so far, plus one) from
 * the tree `from` to `to`: create `switch.<n>` with O_EXCL. EEXIST means
 * another client switched after this one read the journal: nothing is
 * changed and the writer stops with STALE_READS.
 */
export function claimSwitch(layout: Layout, n: number, to: { from: string | null; hash: string; generation: number }): FenceClaim {
  const file = fencePath(layout, n)
  const record: FenceRecord = { n, generation: to.generation, from: to.from, to: to.hash, at: new Date().toISOString(), ...thisProcess() }
  let fd: number
  try {
    // mode 0666 less the writer's umask, which follows the store's mode (DESIGN §13)
    fd = sfs.openNoFollow(file, sfs.createFlags(true))
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') {
      const other = readFence(file)
      throw new ViewError(
        'STALE_READS',
        `${layout.view} was switched by another writer (${path.basename(file)}${other ? `: pid ${other.pid} on ${other.host} at ${other.at}` : ''}) after this client read its journal, which shows ${n - 1} switch${n - 1 === 1 ? '' : 'es'}; nothing was changed`,
        'run the command again: it reads the view afresh. If this keeps happening, this client caches metadata too long: mount with fresh reads (sshfs: -o dir_cache=no; NFS: without nocto, actimeo of 60 s or less) or run on the file server',
        { fence: path.basename(file), holder: other },
      )
    }
    throw translateOsError(err, `creating the fence ${file}`)
  }
  try {
    fs.writeSync(fd, JSON.stringify(record) + '\n')
  } finally {
    fs.closeSync(fd)
  }
  return {
    file,
    retract: () => {
      try {
        fs.unlinkSync(file)
      } catch {
        // a fence the journal never catches up with is removed by a later writer after SETTLE_S
      }
    },
  }
}

export interface RecentSwitch {
  n: number
  from: string | null
  to: string
  /** Server time of the switch (the fence's mtime), ms. */
  atMs: number
}

/**
 * The switches made within `windowS` before `nowMs` (server time), newest
 * first, looked up by number from the journal's count `n` down: each name is
 * asked of the server (a directory listing may come from a cache), and the
 * walk stops at the first fence that is older or missing.
 */
export function recentSwitches(layout: Layout, n: number, nowMs: number, windowS: number): RecentSwitch[] {
  const out: RecentSwitch[] = []
  for (let k = n; k >= 1; k--) {
    const file = fencePath(layout, k)
    const st = lstatOrNull(file)
    if (st === null || !st.isFile() || (nowMs - st.mtimeMs) / 1000 >= windowS) break
    const record = readFence(file)
    out.push({ n: k, from: record?.from ?? null, to: record?.to ?? '', atMs: st.mtimeMs })
  }
  return out
}

/**
 * Remove fences below the newest KEEP_FENCES that are over a day old (server
 * time), oldest first, stopping at the first younger one (fences are made in
 * order): usually one lstat. From a listing of the store; best effort.
 */
export function pruneFences(layout: Layout, names: string[], n: number, nowMs: number): void {
  const old: number[] = []
  for (const name of names) {
    if (!name.startsWith(FENCE_PREFIX)) continue
    const k = Number(name.slice(FENCE_PREFIX.length))
    if (Number.isInteger(k) && k >= 1 && k <= n - KEEP_FENCES) old.push(k)
  }
  for (const k of old.sort((a, b) => a - b)) {
    const file = fencePath(layout, k)
    const st = lstatOrNull(file)
    if (st !== null && nowMs - st.mtimeMs < 24 * 3600 * 1000) return
    try {
      fs.unlinkSync(file)
    } catch {
      // gone already
    }
  }
}
