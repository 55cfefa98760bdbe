/**
 * The cross-client writer lock: `._<name>/.xlock`, created with O_EXCL,
 * which the server answers for every client, taken in addition to the
 * kernel lock (lock.ts) where the kernel lock stays on one client
 * (filesystem.ts: FUSE mounts such as sshfs, NFS `nolock`/`local_lock`,
 * Lustre `localflock`, BeeGFS without global locks), or instead of it where
 * the filesystem refuses fcntl locks (Lustre without `flock`).
 *
 * The file holds one fixed-size record: who holds it (host, boot id, pid and
 * its start time, the command) and a heartbeat count. A worker thread
 * rewrites the record every HEARTBEAT_MS, so a build that keeps the main
 * thread busy linking for minutes still shows it is alive; the thread dies
 * with the process, kill -9 included, and the heartbeat stops. The record
 * has a fixed size so that a client whose cached file size is old still
 * reads all of it.
 *
 * A waiter decides that the holder is gone:
 *   - at once when the holder ran on this host: its boot id differs (the
 *     host rebooted) or its pid no longer runs with the same start time;
 *   - for a holder on another host, only once the record has not changed
 *     for STALE_AFTER_S seconds on the waiter's own monotonic clock (no
 *     clocks of two hosts are compared);
 *   - at once with --break-lock, for the admin who knows the holder is gone.
 * Breaking is itself serialised by a second O_EXCL file, `.xlock.break`, so
 * that two waiters can never both remove a lock and one of them remove the
 * lock the other just took. The holder's heartbeat thread checks that the
 * file is still its own; `verify()` tells the writer, before it records a
 * switch or deletes a tree, whether it still holds the lock.
 */
import fs from 'node:fs'
import path from 'node:path'
import { Worker } from 'node:worker_threads'
import { ViewError, translateOsError } from '../../errors.js'
import * as sfs from '../../fs.js'
import { nonce } from '../layout.js'
import { provablyDead, thisProcess, type ProcessId } from './host.js'

export const XLOCK_FILE = '.xlock'
const BREAK_FILE = '.xlock.break'
/** How often the holder rewrites its record. */
export const HEARTBEAT_MS = 2000
/** A holder on another host whose record has not changed for this long (on the waiter's clock) is taken to be dead. */
export const STALE_AFTER_S = 20
/** The record's size: padded with spaces, so that every write replaces all of it. */
const RECORD_BYTES = 512
const POLL_MS = 200

export interface XlockRecord extends ProcessId {
  command: string
  started: string
  /** Random: tells this holder's file from a later one. */
  token: string
  beat: number
}

export interface CrossClientLock {
  readonly file: string
  /** False once the file is no longer this holder's (broken by an admin or a waiter that judged it dead). */
  verify(): boolean
  release(): void
}

export interface XlockOptions {
  /** Wall-clock deadline (Date.now()) for waiting. */
  deadline: number
  timeoutSeconds: number
  command: string
  signal?: AbortSignal
  /** Remove whatever lock file is there, once, without waiting (--break-lock). */
  breakLock?: boolean
}

/** The record with its command cut so that it fits RECORD_BYTES with room for the heartbeat count to grow. */
function fitted(record: XlockRecord): XlockRecord {
  const over = Buffer.byteLength(JSON.stringify(record)) - (RECORD_BYTES - 32)
  if (over <= 0) return record
  const chars = [...record.command]
  return { ...record, command: chars.slice(0, Math.max(0, chars.length - over - 1)).join('') + '…' }
}

function encode(record: XlockRecord): Buffer {
  return Buffer.from(JSON.stringify(record).padEnd(RECORD_BYTES - 1, ' ') + '\n')
}

/** The record in the lock file, its raw text (to notice changes), or null when there is no lock file. */
export function readXlock(file: string): { record: XlockRecord | null; raw: string } | null {
  let raw: string
  try {
    raw = readSmall(file)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null
    if ((err as NodeJS.ErrnoException).code === 'EINVAL' || sfs.isRefusedSymlink(err)) return { record: null, raw: `(not a regular file: ${(err as Error).message})` }
    throw err
  }
  try {
    const record = JSON.parse(raw) as XlockRecord
    return { record: typeof record.pid === 'number' && typeof record.host === 'string' ? record : null, raw }
  } catch {
    return { record: null, raw } // being written, or torn by a crash: judged by whether it changes
  }
}

/**
 * The first RECORD_BYTES of a regular file, never through a symlink or a
 * FIFO (DESIGN §13), read up to that size whatever size this client has
 * cached for it.
 */
function readSmall(file: string): string {
  const fd = sfs.openNoFollow(file, sfs.OPEN.O_RDONLY | sfs.OPEN.O_NONBLOCK)
  try {
    if (!fs.fstatSync(fd).isFile()) throw Object.assign(new Error(`EINVAL: not a regular file, open '${file}'`), { code: 'EINVAL' })
    const buf = Buffer.alloc(RECORD_BYTES)
    let n = 0
    for (let r; n < RECORD_BYTES && (r = fs.readSync(fd, buf, n, RECORD_BYTES - n, n)) > 0; ) n += r
    return buf.subarray(0, n).toString('utf8')
  } finally {
    fs.closeSync(fd)
  }
}

export async function acquireCrossClientLock(store: string, opts: XlockOptions): Promise<CrossClientLock> {
  const file = path.join(store, XLOCK_FILE)
  const me = fitted({ ...thisProcess(), command: opts.command, started: new Date().toISOString(), token: `${nonce()}${nonce()}`, beat: 0 })
  let breakOnce = opts.breakLock === true
  // what the holder's record looked like, and since when (this process's monotonic clock)
  let seen: { raw: string; since: number } | null = null
  for (;;) {
    const fd = tryCreate(file, me)
    if (fd !== null) return holding(file, fd, me)
    const current = readXlock(file)
    if (current === null) continue // released meanwhile
    const now = monotonicMs()
    if (seen === null || seen.raw !== current.raw) seen = { raw: current.raw, since: now }
    const unchangedS = (now - seen.since) / 1000
    const holder = current.record
    const dead = breakOnce || (holder !== null && provablyDead(holder) === true) || unchangedS >= STALE_AFTER_S
    if (dead && breakStale(store, file, current.raw)) {
      breakOnce = false
      seen = null
      continue
    }
    if (opts.signal?.aborted) throw new ViewError('INTERRUPTED', `interrupted while waiting for the cross-client lock ${file}`, 'nothing was changed')
    if (Date.now() >= opts.deadline) throw timeout(file, holder, unchangedS, opts.timeoutSeconds)
    await new Promise((r) => setTimeout(r, Math.min(POLL_MS, Math.max(1, opts.deadline - Date.now()))))
  }
}

function monotonicMs(): number {
  return Number(process.hrtime.bigint() / 1_000_000n)
}

function tryCreate(file: string, me: XlockRecord): number | null {
  let fd: number
  try {
    // mode 0666 less the writer's umask, which follows the store's mode (DESIGN §13)
    fd = sfs.openNoFollow(file, sfs.createFlags(true))
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return null
    throw translateOsError(err, `creating the cross-client lock ${file}`)
  }
  try {
    fs.writeSync(fd, encode(me), 0, RECORD_BYTES, 0)
    fs.fsyncSync(fd)
  } catch (err) {
    fs.closeSync(fd)
    try {
      fs.unlinkSync(file)
    } catch {
      // a waiter will find it torn and wait it out
    }
    throw translateOsError(err, `writing the cross-client lock ${file}`)
  }
  return fd
}

/**
 * Remove the lock file if it still holds `raw`, under `.xlock.break` so that
 * no two waiters break at once. True when the lock file is gone (by us or by
 * its holder); false when another waiter is breaking it or it changed.
 */
function breakStale(store: string, file: string, raw: string): boolean {
  const guard = path.join(store, BREAK_FILE)
  let fd: number
  try {
    fd = sfs.openNoFollow(guard, sfs.createFlags(true))
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw translateOsError(err, `creating ${guard}`)
    clearStaleBreak(guard)
    return false
  }
  try {
    fs.writeSync(fd, JSON.stringify({ ...thisProcess(), at: new Date().toISOString() }) + '\n')
    const now = readXlock(file)
    if (now === null) return true
    if (now.raw !== raw) return false
    fs.unlinkSync(file)
    return true
  } finally {
    fs.closeSync(fd)
    try {
      fs.unlinkSync(guard)
    } catch {
      // gone already
    }
  }
}

/** A breaker that died between its two unlinks left `.xlock.break`: unchanged for STALE_AFTER_S here, it goes. */
const breakSeen = new Map<string, { raw: string; since: number }>()
function clearStaleBreak(guard: string): void {
  let raw: string
  try {
    raw = readSmall(guard)
  } catch {
    return
  }
  const now = monotonicMs()
  const seen = breakSeen.get(guard)
  if (seen === undefined || seen.raw !== raw) {
    breakSeen.set(guard, { raw, since: now })
    return
  }
  if (now - seen.since < STALE_AFTER_S * 1000) return
  let holder: ProcessId | null = null
  try {
    holder = JSON.parse(raw) as ProcessId
  } catch {
    holder = null
  }
  if (holder !== null && provablyDead(holder) === false) return
  try {
    fs.unlinkSync(guard)
  } catch {
    // someone else did
  }
  breakSeen.delete(guard)
}

function timeout(file: string, holder: XlockRecord | null, unchangedS: number, timeoutSeconds: number): ViewError {
  const who = holder ? `pid ${holder.pid} on ${holder.host}, running \`${holder.command}\` since ${holder.started}` : 'a holder whose record cannot be read yet'
  const beat = unchangedS >= 1 ? `; its heartbeat has not changed for ${Math.round(unchangedS)} s (it is taken to be dead after ${STALE_AFTER_S} s)` : ''
  return new ViewError(
    'LOCK_TIMEOUT',
    `another viewctl holds the cross-client lock ${file}: ${who}${beat}; waited ${timeoutSeconds} s`,
    `wait for it to finish, or raise --lock-timeout; if that process is gone for good (its host crashed), pass --break-lock`,
    { holder },
  )
}

/**
 * Heartbeat thread: rewrites the record every HEARTBEAT_MS through a
 * descriptor of its own (opened while the file is certainly this holder's,
 * so a late write after a release lands in the unlinked file and nowhere
 * else), and flags the lock lost once the file at the path is not this
 * holder's.
 */
const HEARTBEAT = `
const fs = require('node:fs')
const { workerData } = require('node:worker_threads')
const { file, record, size, interval, lost } = workerData
const me = JSON.parse(record)
const fd = fs.openSync(file, fs.constants.O_WRONLY | fs.constants.O_NOFOLLOW)
const mine = () => {
  try {
    const f = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK)
    try {
      const buf = Buffer.alloc(size)
      const n = fs.readSync(f, buf, 0, size, 0)
      return JSON.parse(buf.subarray(0, n).toString('utf8')).token === me.token
    } finally { fs.closeSync(f) }
  } catch (err) { return err.code !== 'ENOENT' && !(err instanceof SyntaxError) }
}
setInterval(() => {
  if (!mine()) { Atomics.store(lost, 0, 1); fs.closeSync(fd); process.exit(0) }
  me.beat++
  try { fs.writeSync(fd, Buffer.from(JSON.stringify(me).padEnd(size - 1, ' ') + '\\n'), 0, size, 0) } catch {}
}, interval)
`

function holding(file: string, fd: number, me: XlockRecord): CrossClientLock {
  fs.closeSync(fd) // the heartbeat thread writes through a descriptor of its own
  const lost = new Int32Array(new SharedArrayBuffer(4))
  let worker: Worker | null = null
  try {
    worker = new Worker(HEARTBEAT, { eval: true, workerData: { file, record: JSON.stringify(me), size: RECORD_BYTES, interval: HEARTBEAT_MS, lost } })
    worker.unref()
  } catch {
    // no thread to be had: the record still names the holder; a waiter on another host may judge it dead after STALE_AFTER_S, which verify() then tells
  }
  let released = false
  const stillMine = () => {
    try {
      return readXlock(file)?.record?.token === me.token
    } catch {
      return true // unreadable now is not proof of loss
    }
  }
  return {
    file,
    verify: () => !released && Atomics.load(lost, 0) === 0 && stillMine(),
    release() {
      if (released) return
      released = true
      void worker?.terminate()
      try {
        if (stillMine()) fs.unlinkSync(file)
      } catch {
        // gone already; a waiter breaks a leftover by its heartbeat
      }
    },
  }
}
