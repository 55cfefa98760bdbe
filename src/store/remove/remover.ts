/**
 * Removing a large tree (a generation gc has retired to `.trash-*`) on the
 * main thread and worker threads at once.
 *
 * Almost all of `rm -rf`'s time is the kernel's unlink, and unlinks spread
 * over two threads finish in about 0.6 of the time (tmpfs, 70,000 links:
 * 0.25 s against 0.4 s on one thread; docs/generations.md), even within one
 * directory, which is locked for only part of each unlink. So:
 *
 *   - the main thread walks the tree, listing each directory once (file types
 *     from the listing, no stat, as in fs.ts's rmTree), and cuts the names of
 *     its files and links into chunks of REMOVE_CHUNK, which it publishes: the
 *     names go to every worker as one message, the count in a shared array;
 *   - the main thread, between two listings and after the last, takes the
 *     oldest chunk nobody has taken; a worker takes the newest. So the threads
 *     are mostly in different directories, which matters: two threads
 *     unlinking in one directory contend for its lock (measured: 0.25 s with
 *     the threads in different directories against 0.3 s in the same one, for
 *     70,000 links on tmpfs);
 *   - once every chunk is done, the main thread removes the directories,
 *     deepest first.
 *
 * A chunk is taken by a compare-and-swap on its flag in a shared array, so
 * whoever is free takes whatever is left: a worker that is still starting
 * simply takes fewer, and on a small tree the main thread has taken them all
 * before a worker joins. A worker joins a tree by a compare-and-swap on its
 * slot, and the main thread seals the slots of those that did not once no
 * chunk is left, so that it waits only for workers that actually work on the
 * tree.
 *
 * A directory is listed completely before any of its names is unlinked, so
 * listings never race with removals in the same directory (some NFS servers
 * skip entries when they do). An entry whose name is not valid UTF-8 is
 * removed on the main thread by fs.ts, byte for byte.
 *
 * Errors: the first one in any thread stops every thread from taking another
 * chunk and is thrown, with its errno (for translateOsError); what is left is
 * trash, which the next writer removes. A worker that fails for another
 * reason (it died, or a message went missing) costs only speed: the main
 * thread then removes what is left on its own.
 *
 * All writes go through the fs seam. Its fault-injection counters are per
 * thread, so while faults are armed everything stays on the main thread
 * (fs.rmTree), where "the N-th rm" keeps its meaning.
 */
import { Worker } from 'node:worker_threads'
import * as sfs from '../../fs.js'
import { extraThreads, reviveError, workerFileOnce, type WorkerError } from '../workers.js'

/** Below this many entries a worker's start-up (a fresh V8 isolate, ~20-40 ms of CPU) does not pay. */
export const PARALLEL_MIN_ENTRIES = 12_000

/** Names a chunk holds: small enough to share out a directory of a few thousand, large enough that taking one (a compare-and-swap, a message) costs nothing next to its unlinks. */
export const REMOVE_CHUNK = 512

/** Chunks a tree can publish (one flag byte each); a larger tree's further chunks stay with the main thread. */
export const MAX_CHUNKS = 1 << 16

/** Slots of a tree's shared control array: chunks published so far. */
export const PUBLISHED = 0
/** Chunks in all; -1 while the main thread is still listing. */
export const TOTAL = 1
/** Bumped and notified whenever PUBLISHED, TOTAL or STOP changes: what a waiting worker sleeps on. */
export const SIGNAL = 2
/** Set by the first thread that fails: nobody takes another chunk. */
export const STOP = 3
/** JOIN + w: 0 until worker w joins (1) or the main thread seals it out (-1). */
export const JOIN = 4

/** What the main thread sends a worker. */
export type RemoverMessage =
  | { type: 'tree'; id: number; control: Int32Array; taken: Uint8Array; slot: number }
  | { type: 'chunk'; id: number; dir: string; names: string }


/** What a worker that joined a tree reports when it leaves it. */
export interface RemoverReport {
  id: number
  error?: WorkerError
}

/** Take chunk c unless someone has. */
export function take(taken: Uint8Array, c: number): boolean {
  return Atomics.compareExchange(taken, c, 0, 1) === 0
}

export function signal(control: Int32Array): void {
  Atomics.add(control, SIGNAL, 1)
  Atomics.notify(control, SIGNAL)
}

/** How a removal was shared out. */
export interface RemovalStats {
  /** Chunks of names published for the threads to take (0 when everything ran on the main thread alone). */
  chunks: number
  /** Of those, the chunks worker threads took. */
  workerChunks: number
}

/** Removes trees, one at a time; `close` when done (it stops the worker threads). */
export interface TreeRemover {
  /** rmTree's semantics: gone is fine, symlinks are removed and never followed; throws the first error. */
  remove(p: string): Promise<RemovalStats>
  close(): Promise<void>
}

const ALONE: RemovalStats = { chunks: 0, workerChunks: 0 }

/** Worker threads besides the main one: VIEWCTL_JOBS - 1 (store/workers.ts). */
export function extraRemoveThreads(): number {
  return extraThreads()
}

/** The worker's script; null when it was not built (run from sources, as in the tests: everything stays on the main thread). */
const WORKER_FILE = workerFileOnce('rm-worker', import.meta.url)

/**
 * A remover for trees of about `entries` entries in all. Worker threads are
 * started at once (so that they boot while the caller does other work) when
 * that is PARALLEL_MIN_ENTRIES or more, faults are not armed, and the
 * compiled worker exists (run from sources, as in the tests, everything stays
 * on the main thread).
 */
export function startTreeRemover(entries: number): TreeRemover {
  const extra = entries >= PARALLEL_MIN_ENTRIES && !sfs.faultsArmed() ? extraRemoveThreads() : 0
  if (extra === 0 || WORKER_FILE() === null) return serialRemover
  const helpers: Helper[] = []
  for (let w = 0; w < extra; w++) {
    const helper = startHelper(w)
    if (!helper) break // no thread to be had (limits, memory): fewer threads do it
    helpers.push(helper)
  }
  return helpers.length === 0 ? serialRemover : new ParallelRemover(helpers)
}

const serialRemover: TreeRemover = {
  remove: async (p) => {
    sfs.rmTree(p)
    return ALONE
  },
  close: async () => {},
}

/** One worker thread and the reports it owes. */
interface Helper {
  slot: number
  worker: Worker
  dead: boolean
  /** Reports that arrived, by tree id, and waiters for those that have not. */
  reports: Map<number, RemoverReport>
  waiters: Map<number, (r: RemoverReport | null) => void>
}

function startHelper(slot: number): Helper | null {
  let worker: Worker
  try {
    worker = new Worker(WORKER_FILE()!)
  } catch {
    return null
  }
  const helper: Helper = { slot, worker, dead: false, reports: new Map(), waiters: new Map() }
  worker.on('message', (r: RemoverReport) => {
    const waiter = helper.waiters.get(r.id)
    if (waiter) {
      helper.waiters.delete(r.id)
      waiter(r)
    } else helper.reports.set(r.id, r)
  })
  const died = () => {
    helper.dead = true
    for (const waiter of helper.waiters.values()) waiter(null)
    helper.waiters.clear()
  }
  worker.on('error', died)
  worker.on('exit', died)
  worker.unref() // never what keeps the process alive; held while waited for
  return helper
}

/** The report of a helper that joined tree `id`, or null when it died without one. */
function reportOf(helper: Helper, id: number): Promise<RemoverReport | null> {
  const r = helper.reports.get(id)
  if (r) {
    helper.reports.delete(id)
    return Promise.resolve(r)
  }
  if (helper.dead) return Promise.resolve(null)
  helper.worker.ref()
  return new Promise<RemoverReport | null>((resolve) => helper.waiters.set(id, resolve)).finally(() => helper.worker.unref())
}

class ParallelRemover implements TreeRemover {
  private trees = 0

  constructor(private readonly helpers: Helper[]) {}

  async remove(p: string): Promise<RemovalStats> {
    const helpers = this.helpers.filter((h) => !h.dead)
    const fp = sfs.fsPath(p)
    // faults armed since the start, no helper left, or a path with bytes that are not UTF-8
    if (sfs.faultsArmed() || helpers.length === 0 || typeof fp !== 'string') return serialRemover.remove(p)
    if (sfs.removalStart(fp) !== 'dir') return ALONE

    const id = ++this.trees
    const control = new Int32Array(new SharedArrayBuffer((JOIN + this.helpers.length) * Int32Array.BYTES_PER_ELEMENT))
    const taken = new Uint8Array(new SharedArrayBuffer(MAX_CHUNKS))
    Atomics.store(control, TOTAL, -1)
    for (const h of helpers) h.worker.postMessage({ type: 'tree', id, control, taken, slot: JOIN + h.slot } satisfies RemoverMessage)

    // names joined, as sent to the workers: one string a chunk for the garbage collector to carry, not 512
    const chunks: Array<{ dir: string; names: string } | null> = []
    const dirs: string[] = [] // in the order listed: parents before children
    let failure: unknown = null
    let oldest = 0 // the main thread takes from the front of the published chunks, workers from the back
    let mainChunks = 0
    const takeOldest = (): boolean => {
      while (oldest < chunks.length && Atomics.load(control, STOP) === 0) {
        const c = oldest++
        if (!take(taken, c)) continue
        mainChunks++
        const chunk = chunks[c]!
        chunks[c] = null
        sfs.unlinkNames(chunk.dir, chunk.names.split('\0'))
        return true
      }
      return false
    }
    try {
      const stack = [fp]
      while (stack.length > 0 && Atomics.load(control, STOP) === 0) {
        const dir = stack.pop()!
        const listing = sfs.listForRemoval(dir)
        if (listing === null) continue
        sfs.removeByBytes(listing.odd) // names that are not UTF-8: here and now, byte for byte
        dirs.push(dir)
        for (const name of listing.dirs) stack.push(`${dir}/${name}`)
        const files = listing.files
        for (let s = 0; s < files.length; s += REMOVE_CHUNK) {
          const names = files.slice(s, s + REMOVE_CHUNK)
          if (chunks.length === MAX_CHUNKS) {
            sfs.unlinkNames(dir, names)
            continue
          }
          const chunk = { dir, names: names.join('\0') }
          chunks.push(chunk)
          const message: RemoverMessage = { type: 'chunk', ...chunk, id }
          for (const h of helpers) h.worker.postMessage(message)
          Atomics.store(control, PUBLISHED, chunks.length)
        }
        if (files.length > 0) signal(control)
        takeOldest() // unlink while listing: the workers are not kept waiting and neither is this thread
      }
      Atomics.store(control, TOTAL, chunks.length)
      signal(control)
      while (takeOldest());
    } catch (err) {
      failure = err
      Atomics.store(control, STOP, 1)
      signal(control)
    }

    // Wait only for the workers that joined; seal the others out of this tree.
    let workerLost = false
    for (const h of helpers) {
      if (Atomics.compareExchange(control, JOIN + h.slot, 0, -1) === 0) continue
      const report = await reportOf(h, id)
      if (report === null) workerLost = true
      else if (report.error && failure === null) {
        if (report.error.code !== undefined) failure = reviveError(report.error)
        else workerLost = true // not the filesystem's doing: finish here
      }
    }
    if (failure !== null) throw failure
    if (workerLost) sfs.rmTree(p)
    else for (let i = dirs.length - 1; i >= 0; i--) sfs.removeEmptyDir(dirs[i]!)
    return { chunks: chunks.length, workerChunks: chunks.length - mainChunks }
  }

  async close(): Promise<void> {
    await Promise.all(this.helpers.map((h) => h.worker.terminate()))
  }
}
