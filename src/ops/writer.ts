/**
 * Every writer (regenerate, rollback, gc, pin, verify --repair) runs its
 * critical section through `withWriter`: make the store if needed and check
 * it is a real directory, take on the store's modes (its umask), take the
 * writer lock (and, where the kernel's lock stays on one client, the
 * cross-client lock file), bring the store's files to its modes, read the
 * view fresh and no older than the last switch any client made, mend a
 * damaged journal, clear what dead writers left, run, release. Before any of
 * it, when asked (the CLI asks), root acting on another user's store becomes
 * that user (`enterWriter`, DESIGN §13).
 */
import fs from 'node:fs'
import { ViewError, translateOsError } from '../errors.js'
import { actAs, ownerToActAs } from '../store/guard/identity.js'
import { acquireWriterLock, loadLockAddon } from '../store/guard/lock.js'
import { fixModes, makeStore, riskyForRoot, storeSharing, withStoreUmask } from '../store/guard/sharing.js'
import { awaitFreshState } from '../store/guard/fence.js'
import { describeFilesystem, filesystemOf, STALE_LIMIT_S, type Filesystem } from '../store/guard/filesystem.js'
import type { CrossClientLock } from '../store/guard/xlock.js'
import { mendJournal } from '../store/journal/history.js'
import { readViewStateFresh, switchFacts, type ViewState } from '../store/journal/state.js'
import { clearLeftovers } from '../store/recover/recover.js'
import type { Layout } from '../store/layout.js'

export interface WriterOptions {
  /** Seconds to wait for the lock (default 30; 0 = one try). */
  lockTimeout?: number
  /** Skip the lock (filesystems that cannot lock). */
  noLock?: boolean
  /** Remove the cross-client lock file of a holder known to be gone, without waiting for its heartbeat to go stale. */
  breakLock?: boolean
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

/** What a writer's critical section is given besides the leftovers it cleared. */
export interface WriterGuard {
  filesystem: Filesystem
  /** The view as read fresh under the lock, not older than the last switch (store/guard/fence.ts). */
  state: ViewState
  /** For the result's warnings: waits for fresh reads, a dead writer's fence removed. */
  notes: string[]
  /**
   * Throws LOCK_LOST when the cross-client lock is no longer this writer's
   * (broken by an admin, or judged dead while this process was stopped):
   * called before anything is recorded or deleted.
   */
  assertHeld(): void
}

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

export async function withWriter<T>(layout: Layout, opts: WriterOptions, fn: (cleared: string[], guard: WriterGuard) => T | Promise<T>): Promise<T> {
  let sharing
  try {
    if (!fs.existsSync(layout.store)) makeStore(layout)
    sharing = storeSharing(layout)
  } catch (err) {
    throw translateOsError(err, `creating the store ${layout.store}`)
  }
  const filesystem = filesystemOf(layout.store)
  if (filesystem.staleBy !== null) {
    throw new ViewError(
      'STALE_READS',
      `${layout.store} is on ${describeFilesystem(filesystem)}, mounted with ${filesystem.staleBy}: this client may answer from caches older than ${STALE_LIMIT_S} s, and a writer must not decide on them`,
      `remount without ${filesystem.staleBy} (close-to-open, attribute caching of ${STALE_LIMIT_S} s or less), or run viewctl on the file server or on a client mounted that way`,
    )
  }
  const risky = riskyForRoot(layout, sharing)
  if (risky !== null) opts.warn?.(risky)
  return withStoreUmask(sharing, async () => {
    const timeoutSeconds = opts.lockTimeout ?? DEFAULT_LOCK_TIMEOUT
    const deadline = Date.now() + timeoutSeconds * 1000
    const command = (opts.argv ?? process.argv.slice(1)).join(' ')
    let kernelUnsupported = false
    const lock = await acquireWriterLock(layout.lock, { timeoutSeconds, noLock: opts.noLock, command, signal: opts.signal }).catch((err: unknown) => {
      // fcntl refused (Lustre without flock): the lock file alone serves where the server answers O_EXCL
      if (err instanceof ViewError && err.code === 'LOCK_UNSUPPORTED' && filesystem.exclusive) {
        kernelUnsupported = true
        return { held: false, release() {} }
      }
      throw err
    })
    let xlock: CrossClientLock | null = null
    try {
      if (!opts.noLock && (filesystem.locks !== 'cluster' || kernelUnsupported)) {
        if (!filesystem.exclusive) {
          throw new ViewError(
            'LOCK_UNSUPPORTED',
            `no lock on ${describeFilesystem(filesystem)} reaches other clients: fcntl locks stay on this one (${filesystem.locksBy}) and its server does not answer O_EXCL atomically, so a lock file cannot stand in`,
            'put views on a filesystem that locks across clients, or pass --no-lock if you are sure no other writer runs on this view (then only the ttl and the spare generations protect readers)',
          )
        }
        // loaded only here: it brings worker_threads (its heartbeat thread), which other writers need not load
        const { acquireCrossClientLock } = await import('../store/guard/xlock.js')
        xlock = await acquireCrossClientLock(layout.store, { deadline, timeoutSeconds, command, signal: opts.signal, breakLock: opts.breakLock })
      }
      for (const w of fixModes(layout, sharing)) opts.warn?.(w)
      const fresh = await awaitFreshState(layout, filesystem, () => readViewStateFresh(layout), switchFacts, opts.signal)
      try {
        const mended = mendJournal(layout.history)
        if (mended !== null) opts.warn?.(mended)
      } catch (err) {
        opts.warn?.(`${layout.history} has lines that are not records, and they could not be taken out: ${translateOsError(err, 'mending the journal').message}`)
      }
      // Leftovers belong to dead writers when this writer holds a lock every client honours.
      const cleared = clearLeftovers(layout, { everyWriterExcluded: !opts.noLock, filesystem, keep: opts.keepLeftover })
      const held = xlock
      const guard: WriterGuard = {
        filesystem,
        state: fresh.state,
        notes: fresh.notes,
        assertHeld() {
          if (held !== null && !held.verify()) {
            throw new ViewError('LOCK_LOST', `this writer no longer holds the cross-client lock ${held.file}: another process broke it (--break-lock, or it judged this one dead while it was stopped); nothing more was changed`, 'check what the other writer did (`viewctl list`), then run the command again')
          }
        },
      }
      return await fn(cleared, guard)
    } finally {
      xlock?.release()
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
export async function withWriterIfFree<T>(layout: Layout, opts: WriterOptions, fn: (cleared: string[], guard: WriterGuard) => T | Promise<T>): Promise<{ value: T } | null> {
  let entered = false
  try {
    const value = await withWriter(layout, { ...opts, lockTimeout: 0 }, (cleared, guard) => {
      entered = true
      return fn(cleared, guard)
    })
    return { value }
  } catch (err) {
    if (!entered && err instanceof ViewError && err.code === 'LOCK_TIMEOUT') return null
    throw err
  }
}
