/**
 * The rsync guard: what a push's rsync runs on the receiving host instead
 * of rsync itself (`--rsync-path "viewctl receive <view> --rsync --"`).
 *
 * rsync travels over its own ssh connection, so nothing ties it to the
 * receiving session that holds the writer lock: if that session dies (the
 * pusher killed, the receiver killed, the network cut), a bare rsync would
 * go on writing into the store with no lock held. The guard starts the real
 * `rsync --server` only while a session holds the lock and has named the
 * directory rsync is about to fill (`.push-session`, session-file.ts),
 * refuses any other destination and any option that writes in place, and
 * stops rsync the moment the session's lock is gone or changes hands. It
 * runs rsync as the receiving store's owner (root becomes that owner) and
 * with that store's umask (store/guard/sharing.ts), so owners and modes
 * follow the store, never the sender.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { ViewError, isLockUnsupported } from '../../errors.js'
import { tryLockFd } from '../../store/guard/lock.js'
import { storeSharing } from '../../store/guard/sharing.js'
import { layoutFor, type Layout } from '../../store/layout.js'
import { enterWriter } from '../writer.js'
import { readSessionFile, type SessionFile } from './session-file.js'
import { withParentDeathSignal } from './rsync.js'

/** How often the guard looks at the session's lock. */
const WATCH_MS = 100

/** Options that would write through hardlinks into older generations, or outside the staging directory. */
const REFUSED = ['--inplace', '--append', '--append-verify', '--sender', '--partial-dir', '--temp-dir', '--backup-dir', '--write-devices', '--copy-devices', '--remove-source-files', '--remove-sent-files']

export async function runGuardedRsync(view: string, args: string[], opts: { asStoreOwner?: boolean } = {}): Promise<number> {
  const layout = layoutFor(view)
  // rsync writes as the store's owner, as the receiving session does
  enterWriter(layout, { asStoreOwner: opts.asStoreOwner })
  const session = readSessionFile(layout)
  if (session === null) throw new ViewError('INTERRUPTED', `no push is receiving into ${layout.view} on ${os.hostname()}: refusing to start rsync`, 'push again; the receiving session ended (or never began)')
  assertAllowed(layout, session, args)
  const watch = openLockWatch(layout)
  try {
    if (!sessionAlive(layout, session, watch)) throw new ViewError('INTERRUPTED', `the push receiving into ${layout.view} on ${os.hostname()} has ended: refusing to start rsync`, 'push again')
    const previous = process.umask(storeSharing(layout).umask)
    let child: ChildProcess
    try {
      const [file, argv] = withParentDeathSignal('rsync', args)
      child = spawn(file, argv, { stdio: 'inherit' })
    } finally {
      process.umask(previous)
    }
    return await new Promise<number>((resolve) => {
      let stopped = false
      const timer = setInterval(() => {
        if (stopped || sessionAlive(layout, session, watch)) return
        stopped = true
        // the session is gone: rsync must not write one more file
        child.kill('SIGTERM')
        setTimeout(() => child.kill('SIGKILL'), 1000).unref()
        process.stderr.write(`viewctl: the push receiving into ${layout.view} on ${os.hostname()} ended; rsync was stopped\n`)
      }, WATCH_MS)
      child.on('error', (err) => {
        clearInterval(timer)
        process.stderr.write(`viewctl: cannot run rsync on ${os.hostname()}: ${err.message}\n`)
        resolve(127)
      })
      child.on('exit', (code, signal) => {
        clearInterval(timer)
        resolve(stopped ? 20 : code ?? (signal ? 128 + (os.constants.signals[signal] ?? 0) : 1))
      })
    })
  } finally {
    if (watch.fd !== null) fs.closeSync(watch.fd)
  }
}

function assertAllowed(layout: Layout, session: SessionFile, args: string[]): void {
  if (!args.includes('--server')) throw refused(layout, 'it is not an rsync server command line')
  for (const a of args) {
    const name = a.split('=')[0]!
    if (REFUSED.includes(name)) throw refused(layout, `${name} is not allowed into a store`)
  }
  const dest = args[args.length - 1]
  const normal = dest === undefined ? '' : path.resolve(dest)
  if (!session.destinations.includes(normal)) throw refused(layout, `its destination ${JSON.stringify(dest)} is not the staging directory of the push being received`)
}

function refused(layout: Layout, why: string): ViewError {
  return new ViewError('USAGE', `refusing to run rsync into ${layout.store} on ${os.hostname()}: ${why}`, 'the rsync guard runs only the rsync of a `viewctl push`')
}

interface LockWatch {
  /** A descriptor of the lock file, to ask whether someone holds it; null where it cannot be opened (then the holder's pid decides). */
  fd: number | null
  /** The lock was found free once: the session is over for good. */
  freed: boolean
}

function openLockWatch(layout: Layout): LockWatch {
  try {
    return { fd: fs.openSync(layout.lock, fs.constants.O_RDWR | fs.constants.O_NOFOLLOW), freed: false }
  } catch {
    return { fd: null, freed: false }
  }
}

/** The session that named this destination still holds the lock. */
function sessionAlive(layout: Layout, session: SessionFile, watch: LockWatch): boolean {
  if (watch.freed) return false
  const now = readSessionFile(layout)
  if (now === null || now.pid !== session.pid || now.host !== session.host) return false
  if (session.host === os.hostname()) {
    try {
      process.kill(session.pid, 0)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false
    }
  }
  if (watch.fd === null) return true
  try {
    if (!tryLockFd(watch.fd, false)) return true
  } catch (err) {
    return isLockUnsupported((err as NodeJS.ErrnoException).code)
  }
  // we got the lock: nobody held it. Let it go at once (closing the description drops it) and say so.
  fs.closeSync(watch.fd)
  watch.fd = null
  watch.freed = true
  return false
}
