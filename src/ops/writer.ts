/**
 * Every writer (regenerate, rollback, gc, pin) runs its critical section
 * through `withWriter`: create the store, take the writer lock, clear what
 * dead writers left, run, release.
 */
import fs from 'node:fs'
import { translateOsError } from '../errors.js'
import { acquireWriterLock } from '../store/lock.js'
import { clearLeftovers } from '../store/recover.js'
import type { Layout } from '../store/layout.js'

export interface WriterOptions {
  /** Seconds to wait for the lock (default 30; 0 = one try). */
  lockTimeout?: number
  /** Skip the lock (filesystems that cannot lock). */
  noLock?: boolean
  /** The command line, recorded in the lock file and the journal. */
  argv?: string[]
  /** Stop waiting for the lock when aborted. */
  signal?: AbortSignal
}

export const DEFAULT_LOCK_TIMEOUT = 30

export async function withWriter<T>(layout: Layout, opts: WriterOptions, fn: (cleared: string[]) => T | Promise<T>): Promise<T> {
  try {
    fs.mkdirSync(layout.store, { recursive: true })
  } catch (err) {
    throw translateOsError(err, `creating the store ${layout.store}`)
  }
  const lock = await acquireWriterLock(layout.lock, {
    timeoutSeconds: opts.lockTimeout ?? DEFAULT_LOCK_TIMEOUT,
    noLock: opts.noLock,
    command: (opts.argv ?? process.argv.slice(1)).join(' '),
    signal: opts.signal,
  })
  try {
    const cleared = clearLeftovers(layout)
    return await fn(cleared)
  } finally {
    lock.release()
  }
}
