/**
 * Every writer (regenerate, rollback, gc, pin, verify --repair) runs its
 * critical section through `withWriter`: make the store if needed and check
 * it is a real directory, take on the store's modes (its umask), take the
 * writer lock, bring the store's files to its modes, mend a damaged journal,
 * clear what dead writers left, run, release. Before any of it, when asked
 * (the CLI asks), root acting on another user's store becomes that user
 * (`enterWriter`, DESIGN §13).
 */
import fs from 'node:fs'
import { ViewError, translateOsError } from '../errors.js'
import { actAs, ownerToActAs } from '../store/guard/identity.js'
import { acquireWriterLock, loadLockAddon } from '../store/guard/lock.js'
import { fixModes, makeStore, riskyForRoot, storeSharing, withStoreUmask } from '../store/guard/sharing.js'
import { mendJournal } from '../store/journal/history.js'
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
  /**
   * Root running this writer on a store another user owns becomes that
   * owner, with the store's group, before it touches the store
   * (store/guard/identity.ts). It changes the identity of the whole process
   * for good: the CLI sets it, a library caller only if that is what it wants.
   */
  asStoreOwner?: boolean
  /** Told what the user should know: a store that is risky for root, files whose modes could not be fixed, a mended journal. */
  warn?: (message: string) => void
}

export const DEFAULT_LOCK_TIMEOUT = 30

/**
 * The first step of a writer, before it reads anything in the store: with
 * `asStoreOwner`, root becomes the owner of the store (or of the directory it
 * will be made in) when that is another user. The lock addon is loaded
 * first, while root can still read its own copy of viewctl.
 */
export function enterWriter(layout: Layout, opts: WriterOptions): void {
  if (!opts.asStoreOwner) return
  const id = ownerToActAs(layout)
  if (id === null) return
  loadLockAddon()
  actAs(id)
}

export async function withWriter<T>(layout: Layout, opts: WriterOptions, fn: (cleared: string[]) => T | Promise<T>): Promise<T> {
  let sharing
  try {
    if (!fs.existsSync(layout.store)) makeStore(layout)
    sharing = storeSharing(layout)
  } catch (err) {
    throw translateOsError(err, `creating the store ${layout.store}`)
  }
  const risky = riskyForRoot(layout, sharing)
  if (risky !== null) opts.warn?.(risky)
  return withStoreUmask(sharing, async () => {
    const lock = await acquireWriterLock(layout.lock, {
      timeoutSeconds: opts.lockTimeout ?? DEFAULT_LOCK_TIMEOUT,
      noLock: opts.noLock,
      command: (opts.argv ?? process.argv.slice(1)).join(' '),
      signal: opts.signal,
    })
    try {
      for (const w of fixModes(layout, sharing)) opts.warn?.(w)
      try {
        const mended = mendJournal(layout.history)
        if (mended !== null) opts.warn?.(mended)
      } catch (err) {
        opts.warn?.(`${layout.history} has lines that are not records, and they could not be taken out: ${translateOsError(err, 'mending the journal').message}`)
      }
      const cleared = clearLeftovers(layout, opts.keepLeftover)
      return await fn(cleared)
    } finally {
      lock.release()
    }
  })
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
