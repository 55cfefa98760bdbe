/**
 * Exec leases: `viewctl exec` holds a SHARED OFD lock on a generation's
 * `.viewctl/lease` for as long as its command runs; gc takes an EXCLUSIVE
 * try-lock on the same file before it retires a tree, and skips the tree when
 * it cannot.
 *
 * The lock is taken with fcntl(F_OFD_SETLK) (fs-native-extensions): it belongs
 * to the open file description, not to a process, so a descriptor the command
 * inherits keeps it alive after viewctl itself is gone, even by kill -9, and
 * the kernel drops it when the last descriptor closes (the command's whole
 * process tree has exited). Where the filesystem forwards fcntl locks (local
 * filesystems, NFSv4, NFSv3 with lockd, Lustre with `-o flock`) this works
 * across hosts; where it does not (NFS `nolock`, Lustre without `flock`) the
 * lock is local to one client or refused, and only the ttl and the spare
 * generations protect readers (docs/generations.md).
 *
 * Trees made before the lease file existed (or adopted ones) have none; both
 * sides then lock `.viewctl/meta.json` instead. A published tree never
 * changes, so both always agree on which file it is.
 */
import fs from 'node:fs'
import path from 'node:path'
import { LEASE_FILE, META_DIR, META_FILE } from '../layout.js'
import { tryLockFd } from './lock.js'
import { isLockUnsupported } from '../../errors.js'
import { OPEN, openNoFollow } from '../../fs.js'

/** The file whose lock is the lease of the generation tree `dir`. */
export function leaseFileOf(dir: string): string {
  const lease = path.join(dir, META_DIR, LEASE_FILE)
  try {
    fs.lstatSync(lease)
    return lease
  } catch {
    return path.join(dir, META_DIR, META_FILE)
  }
}

export type ExclusiveLease =
  | { state: 'free'; fd: number; file: string }
  | { state: 'held'; file: string }
  | { state: 'unsupported'; file: string; code: string }
  | { state: 'missing'; file: string }


/**
 * gc's side: try to take the lease exclusively without waiting. When it is
 * free, the caller keeps `fd` open (so no exec can start on the tree) until
 * the tree has been renamed to trash, then closes it.
 */
export function tryExclusiveLease(dir: string): ExclusiveLease {
  const file = leaseFileOf(dir)
  let fd: number
  try {
    // an exclusive (write) lock needs a descriptor open for writing; never through a symlink
    fd = openNoFollow(file, OPEN.O_RDWR | OPEN.O_NONBLOCK)
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'ENOENT') return { state: 'missing', file }
    throw err
  }
  try {
    if (tryLockFd(fd, false)) return { state: 'free', fd, file }
    fs.closeSync(fd)
    return { state: 'held', file }
  } catch (err) {
    fs.closeSync(fd)
    const code = (err as NodeJS.ErrnoException).code ?? ''
    if (isLockUnsupported(code)) return { state: 'unsupported', file, code }
    throw err
  }
}

export type SharedLease =
  | { state: 'held'; fd: number; file: string }
  | { state: 'busy'; file: string }
  | { state: 'unsupported'; fd: number; file: string; code: string }

/**
 * exec's side: open the lease read-only (a shared lock needs read access
 * only, so any user who can read the view can hold one) and take a shared
 * lock. `busy` means gc holds it exclusively right now: the tree is being
 * retired, resolve the view again. `unsupported` keeps the descriptor so the
 * command still runs, unprotected by a lease.
 */
export function trySharedLease(dir: string): SharedLease {
  const file = leaseFileOf(dir)
  const fd = openNoFollow(file, OPEN.O_RDONLY | OPEN.O_NONBLOCK)
  try {
    if (tryLockFd(fd, true)) return { state: 'held', fd, file }
    fs.closeSync(fd)
    return { state: 'busy', file }
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? ''
    if (isLockUnsupported(code)) return { state: 'unsupported', fd, file, code }
    fs.closeSync(fd)
    throw err
  }
}
