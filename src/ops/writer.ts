/**
 * Every writer (regenerate, rollback, gc, pin) runs its critical section
 * through `withWriter`: create the store, take the writer lock, clear what
 * dead writers left, run, release.
 */
import fs from 'node:fs'
import { ViewError, translateOsError } from '../errors.js'
import { acquireWriterLock } from '../store/guard/lock.js'
import { clearLeftovers } from '../store/recover/recover.js'
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
  /** A leftover in the store that this writer takes over instead of clearing (store/recover/recover.ts). */
  keepLeftover?: string
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
    const cleared = clearLeftovers(layout, opts.keepLeftover)
    return await fn(cleared)
  } finally {
    lock.release()
  }
}

/**
 * withWriter, only if no other writer holds the lock at this moment: null
 * when one does (nothing was run). A streamed build (ops/regenerate.ts)
 * takes the lock before it plans; when the lock is busy it plans first and
 * waits for the lock afterwards, like any other writer.
 */
export async function withWriterIfFree<T>(layout: Layout, opts: WriterOptions, fn: (cleared: string[]) => T | Promise<T>): Promise<{ value: T } | null> {
  let entered = false
  try {
    const value = await withWriter(layout, { ...opts, lockTimeout: 0 }, (cleared) => {
      entered = true
      return fn(cleared)
    })
    return { value }
  } catch (err) {
    if (!entered && err instanceof ViewError && err.code === 'LOCK_TIMEOUT') return null
    throw err
  }
}
