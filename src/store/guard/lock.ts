/**
 * The guard room (store/guard/): who may write, and who still reads. This
 * file is the per-view writer lock every writing command holds (ops/writer.ts
 * takes it); lease.ts the exec leases by which `viewctl exec`, on any host,
 * tells gc that a generation is in use; readers.ts the /proc scan that finds
 * the processes on this host using a generation. gc asks lease.ts and
 * readers.ts before it removes a tree. For shared filesystems:
 * filesystem.ts tells a mount's kind from mountinfo (remote, how far its
 * fcntl locks reach, stale-read options); xlock.ts is the cross-client lock
 * file where fcntl locks stay on one client; fence.ts the fresh reads and the
 * fencing counter (`switch.<n>`); lease-file.ts the exec leases other
 * clients can see; host.ts who and where a process is. For many users:
 * identity.ts drops root to a store's owner; sharing.ts the modes a store
 * passes on and what is risky for root. A change to how writers keep out of
 * each other's way, or to how readers are protected, goes here.
 *
 * The per-view writer lock: an exclusive OFD (open file description) lock on
 * `._<name>/.lock`, taken with fcntl(F_OFD_SETLK) through fs-native-extensions.
 * The kernel drops it the moment the holder dies, even by kill -9; NFS
 * clients forward it to the server. The holder writes who it is into the file
 * so that a waiter can name it.
 */
import fs from 'node:fs'
import os from 'node:os'
import { createRequire } from 'node:module'
import path from 'node:path'
import { ViewError, isLockUnsupported, translateOsError } from '../../errors.js'
import { OPEN, openNoFollow, readTextNoFollow } from '../../fs.js'

export interface LockHolder {
  host: string
  pid: number
  started: string
  command: string
}

export interface WriterLock {
  /** False when --no-lock skipped locking. */
  readonly held: boolean
  release(): void
}

export interface LockOptions {
  /** Seconds to wait; 0 = one try. */
  timeoutSeconds: number
  /** Skip locking (the filesystem cannot lock, and the admin knows no one else writes). */
  noLock?: boolean
  command: string
  signal?: AbortSignal
}

const POLL_MS = 25

export async function acquireWriterLock(lockFile: string, opts: LockOptions): Promise<WriterLock> {
  if (opts.noLock) return { held: false, release() {} }
  if (!Number.isFinite(opts.timeoutSeconds) || opts.timeoutSeconds < 0) {
    throw new ViewError('USAGE', `--lock-timeout ${opts.timeoutSeconds}: expected a number of seconds, 0 or more`, 'e.g. --lock-timeout 30 (the default), or 0 to fail at once when another writer holds the lock')
  }
  let fd: number
  try {
    // never through a symlink; 0660 less the umask a writer takes from the store: others get nothing (DESIGN §13)
    fd = openNoFollow(lockFile, OPEN.O_RDWR | OPEN.O_CREAT | OPEN.O_NONBLOCK, 0o660)
  } catch (err) {
    throw translateOsError(err, `opening the lock file ${lockFile}`)
  }
  if (!fs.fstatSync(fd).isFile()) {
    fs.closeSync(fd)
    throw new ViewError('UNSAFE_PATH', `the lock file ${lockFile} is not a regular file`, 'something else was put where the lock file belongs; remove it and retry')
  }
  const deadline = Date.now() + opts.timeoutSeconds * 1000
  try {
    for (;;) {
      if (tryLock(fd, lockFile)) break
      if (opts.signal?.aborted) {
        throw new ViewError('INTERRUPTED', `interrupted while waiting for the lock on ${lockFile}`, 'nothing was changed')
      }
      if (Date.now() >= deadline) {
        const holder = liveHolder(readHolder(fd))
        // a holder that wrote no record of itself: not viewctl (any process that may open the file can lock it), or one whose record this user cannot see
        const who = holder ? `another viewctl holds the lock on ${lockFile}: pid ${holder.pid} on ${holder.host}, running \`${holder.command}\` since ${holder.started}` : `the lock on ${lockFile} is held by a process that is not viewctl, or by another user`
        throw new ViewError(
          'LOCK_TIMEOUT',
          `${who}; waited ${opts.timeoutSeconds} s`,
          'wait for it to finish, or raise --lock-timeout; if that process is stuck, stop it (the lock is freed the moment it dies)',
          { holder },
        )
      }
      await new Promise((r) => setTimeout(r, Math.min(POLL_MS, Math.max(1, deadline - Date.now()))))
    }
    writeHolder(fd, opts.command)
  } catch (err) {
    fs.closeSync(fd)
    throw err
  }
  let released = false
  return {
    held: true,
    release() {
      if (released) return
      released = true
      try {
        fs.ftruncateSync(fd, 0) // a waiter must never name a holder that has gone
      } catch {
        // the lock is dropped by the close below all the same
      }
      fs.closeSync(fd) // closing the last descriptor of the description drops the OFD lock
    },
  }
}

function tryLock(fd: number, lockFile: string): boolean {
  try {
    return nativeTryLock(fd, false)
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (isLockUnsupported(code)) {
      throw new ViewError(
        'LOCK_UNSUPPORTED',
        `the filesystem holding ${lockFile} refused a lock (${code})`,
        'NFS mounted with `nolock` and Lustre mounted without `-o flock` cannot lock files; mount with locking, or pass --no-lock if you are sure no other writer runs on this view',
      )
    }
    throw translateOsError(err, `locking ${lockFile}`)
  }
}

function writeHolder(fd: number, command: string): void {
  const holder: LockHolder = { host: os.hostname(), pid: process.pid, started: new Date().toISOString(), command }
  const text = JSON.stringify(holder) + '\n'
  fs.ftruncateSync(fd, 0)
  fs.writeSync(fd, text, 0)
}

/** A holder on this host whose pid is gone left its record behind (it died before truncating): don't name it. */
function liveHolder(holder: LockHolder | null): LockHolder | null {
  if (!holder || holder.host !== os.hostname()) return holder
  try {
    process.kill(holder.pid, 0)
    return holder
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM' ? holder : null
  }
}

export function readLockHolder(lockFile: string): LockHolder | null {
  try {
    return holderOf(readTextNoFollow(lockFile))
  } catch {
    return null
  }
}

/** The holder record in the lock file open on `fd` (read through the descriptor: no name is looked up again). */
function readHolder(fd: number): LockHolder | null {
  try {
    const buf = Buffer.alloc(4096)
    const n = fs.readSync(fd, buf, 0, buf.length, 0)
    return holderOf(buf.subarray(0, n).toString('utf8'))
  } catch {
    return null
  }
}

function holderOf(text: string): LockHolder | null {
  try {
    const h = JSON.parse(text) as LockHolder
    return h !== null && typeof h === 'object' && typeof h.pid === 'number' && typeof h.host === 'string' ? h : null
  } catch {
    return null
  }
}

/** Try to take a lock on an already-open file without waiting; for leases. */
export function tryLockFd(fd: number, shared: boolean): boolean {
  return nativeTryLock(fd, shared)
}

/**
 * Load the lock addon now (it is loaded on first use otherwise): a root
 * writer does so before it becomes the store's owner (identity.ts), who may
 * not be able to read root's copy of viewctl.
 */
export function loadLockAddon(): LockBinding {
  if (binding === null) {
    const require = createRequire(import.meta.url)
    const dir = path.dirname(require.resolve('fs-native-extensions/package.json'))
    try {
      binding = require(path.join(dir, 'prebuilds', `${process.platform}-${process.arch}`, 'fs-native-extensions.node')) as LockBinding
    } catch {
      binding = require('fs-native-extensions/binding.js') as LockBinding
    }
  }
  return binding
}

/** The addon's own call: throws EAGAIN while a conflicting lock is held. */
interface LockBinding {
  tryLock(fd: number, offset: number, length: number, exclusive: boolean): void
}

let binding: LockBinding | null = null

/**
 * fcntl(F_OFD_SETLK) on the whole file. The addon's prebuilt binary for this
 * platform is loaded directly: the package's own loader (require-addon)
 * resolves it through three more packages and costs about 15 ms, a tenth of
 * a rollback. Where there is no prebuild (the package was built from
 * source), the package's loader finds what was built.
 */
function nativeTryLock(fd: number, shared: boolean): boolean {
  try {
    loadLockAddon().tryLock(fd, 0, 0, !shared)
    return true
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EAGAIN') return false
    throw err
  }
}
