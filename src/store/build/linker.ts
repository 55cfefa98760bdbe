/**
 * Linking a plan's entries into a staging tree, on the main thread and, for a
 * large plan, worker threads at the same time.
 *
 * The main thread first makes every directory, in plan order (build.ts). The
 * links are then cut into chunks, each inside one directory or packing
 * several small ones, and every thread takes the next chunk from a shared
 * counter until none is left. Creating a name locks its directory, so links
 * in different directories do not contend: the queue interleaves the chunks
 * of the big directories, so that two threads are most of the time in two
 * different directories. Taking chunks from a counter, rather than splitting
 * the plan in halves up front, also lets the main thread start at once while
 * a worker boots, and evens out directories of very different sizes.
 *
 * A worker gets the plan as its text (the `chunks` hashed and written to
 * plan.tsv: one cheap copy instead of cloning a hundred thousand strings) and
 * parses it itself, while the main thread is already linking.
 *
 * Every write goes through the fs seam (fs.ts). Its fault-injection counters
 * are per thread, so while faults are armed everything runs on the main
 * thread, in plan order, and "the N-th symlink fails" keeps its meaning.
 */
import { Worker } from 'node:worker_threads'
import * as sfs from '../../fs.js'
import type { LinkMode } from '../../manifest/types.js'
import { extraThreads, reviveError, workerFileOnce, type WorkerError } from '../workers.js'
import type { StreamSetup } from './stream-queue.js'
import { linkEntries, type LinkContext, type ShareContext } from './link-entry.js'
import { linkInLanes } from './lanes.js'

// ---------------------------------------------------------------------------
// Scheduling

/** Chunk c is entries order[bounds[c]] … order[bounds[c + 1] - 1]. */
export interface LinkSchedule {
  order: Int32Array
  bounds: Int32Array
}

/** Links a chunk holds (a packed one may run over by less than one small directory); also how often the main thread looks at signals and progress. */
export const CHUNK = 1024

/**
 * Cut the links (entry indices, in plan order) into chunks by directory.
 * A directory with CHUNK links or more gets chunks of its own; smaller ones
 * are packed together in plan order. The queue then takes one chunk from
 * each big directory (and the packed run) in turn.
 */
export function scheduleLinks(paths: string[], links: ArrayLike<number>, chunk = CHUNK): LinkSchedule {
  const groups = new Map<string, number[]>()
  // plan order keeps most siblings next to each other: compare with the last parent before slicing and looking up
  let lastParent = ''
  let lastGroup: number[] | null = null
  for (let k = 0; k < links.length; k++) {
    const i = links[k]!
    const rel = paths[i]!
    const parentLength = Math.max(0, rel.lastIndexOf('/'))
    if (lastGroup !== null && parentLength === lastParent.length && rel.startsWith(lastParent)) {
      lastGroup.push(i)
      continue
    }
    lastParent = rel.slice(0, parentLength)
    lastGroup = groups.get(lastParent) ?? null
    if (lastGroup === null) groups.set(lastParent, (lastGroup = []))
    lastGroup.push(i)
  }
  const runs: number[][][] = []
  const packed: number[][] = []
  let current: number[] = []
  for (const group of groups.values()) {
    if (group.length >= chunk) {
      const pieces: number[][] = []
      for (let s = 0; s < group.length; s += chunk) pieces.push(group.slice(s, s + chunk))
      runs.push(pieces)
      continue
    }
    for (const i of group) current.push(i)
    if (current.length >= chunk) {
      packed.push(current)
      current = []
    }
  }
  if (current.length) packed.push(current)
  if (packed.length) runs.push(packed)

  const order = new Int32Array(links.length)
  const bounds: number[] = [0]
  let at = 0
  for (let round = 0, left = true; left; round++) {
    left = false
    for (const run of runs) {
      const piece = run[round]
      if (!piece) continue
      left = true
      order.set(piece, at)
      at += piece.length
      bounds.push(at)
    }
  }
  return { order, bounds: Int32Array.from(bounds) }
}

// ---------------------------------------------------------------------------
// Running the queue

/** Slots of the shared control array. */
export const NEXT = 0
export const DONE = 1
export const STOP = 2
/** Raised by a worker before it takes its first chunk: a worker that dies before that has lost nothing. */
export const JOINED = 3
const CONTROL_SLOTS = 4

/** Take and link chunks until none is left or STOP is set (a worker's loop: no yielding). */
export function drainChunks(ctx: LinkContext, schedule: LinkSchedule, control: Int32Array): void {
  const { order, bounds } = schedule
  const chunks = bounds.length - 1
  Atomics.add(control, JOINED, 1)
  while (Atomics.load(control, STOP) === 0) {
    const c = Atomics.add(control, NEXT, 1)
    if (c >= chunks) return
    const end = bounds[c + 1]!
    linkEntries(ctx, order, bounds[c]!, end)
    Atomics.add(control, DONE, end - bounds[c]!)
  }
}

/** What a worker is started with. */
export interface LinkWorkerData {
  /** null when the plan text went ahead in a LinkWorkerPlan message. */
  planText: string[] | null
  /** Entries in the plan, to check the worker parsed the same plan. */
  count: number
  staging: string
  at: string
  mode: LinkMode
  relative: boolean
  prefixFromRoot: string[]
  schedule: LinkSchedule
  control: Int32Array
  /** Entries linked from the base tree (share.ts): its flags are cloned to the worker, its state is shared memory. */
  share: ShareContext | null
}

/** What a worker reports: done, or the error it stopped on. */
export type WorkerReport = { ok: true } | { ok: false; error: WorkerError }

export interface LinkAllOptions {
  /** The plan's text (hash.ts), which a worker parses instead of being sent every path. */
  planText: string[]
  /** Called between chunks on the main thread with the links done so far (all threads); may throw to stop. */
  checkpoint: (linksDone: number) => void
  /** Workers started ahead (startLinkHelpers), used instead of starting new ones. linkAll does not release them. */
  helpers?: LinkHelpers | null
  /** On a remote filesystem: operations kept in flight, one per directory (lanes.ts); no worker threads then. */
  inFlight?: number
}

/** Worker threads besides the main thread: VIEWCTL_JOBS - 1 (store/workers.ts). */
export function extraLinkThreads(): number {
  return extraThreads()
}

/** Below this many links a worker's start-up (a fresh V8 isolate, ~20-40 ms) costs more than it saves. */
export const PARALLEL_MIN_LINKS = 12_000

/** The worker's script; null when it was not built (run from sources, as in the tests: everything stays on the main thread). */
const WORKER_FILE = workerFileOnce('link-worker', import.meta.url)

/** The plan text, sent to a helper as soon as the plan is made: it parses while the main thread takes the lock and makes the directories. */
export interface LinkWorkerPlan {
  kind: 'plan'
  planText: string[]
  count: number
}

/** What a helper is sent: the plan ahead of time, then its queue; or, instead, a streamed build's queue (stream-queue.ts). */
export type LinkWorkerMessage = LinkWorkerPlan | { kind: 'queue'; data: LinkWorkerData } | { kind: 'stream'; setup: StreamSetup }

/** A link worker: started, possibly still booting, waiting for its queue (a LinkWorkerData message). */
export interface Helper {
  worker: Worker
  /** Settles when the worker reports or dies; `died` is set when it ended without a report. */
  ended: Promise<WorkerReport & { died?: boolean }>
  /** The plan text this helper was sent ahead (sendPlan), if any. */
  planText?: string[]
}

/**
 * Link workers started before the plan is known, so that a worker's start-up
 * (a fresh isolate loading the linker, 40-100 ms) overlaps the walk instead
 * of the linking. Unused ones are released; they never keep the process alive.
 */
export interface LinkHelpers {
  readonly helpers: Helper[]
  /** Send the plan text ahead, to be parsed while the main thread prepares the build. */
  sendPlan(planText: string[], count: number): void
  release(): void
}

export function startLinkHelpers(): LinkHelpers | null {
  const extra = sfs.faultsArmed() ? 0 : extraLinkThreads()
  // Only the compiled package ships the worker; run from sources (the tests), everything stays on the main thread.
  if (extra === 0 || WORKER_FILE() === null) return null
  const helpers: Helper[] = []
  for (let w = 0; w < extra; w++) {
    const helper = spawnHelper(null)
    if (helper === null) break
    helper.worker.unref()
    helpers.push(helper)
  }
  if (helpers.length === 0) return null
  return {
    helpers,
    sendPlan: (planText, count) => {
      for (const helper of helpers) {
        helper.worker.postMessage({ kind: 'plan', planText, count } satisfies LinkWorkerMessage)
        helper.planText = planText
      }
    },
    release: () => {
      for (const { worker } of helpers) void worker.terminate()
    },
  }
}

function spawnHelper(data: LinkWorkerData | null): Helper | null {
  let worker: Worker
  try {
    worker = new Worker(WORKER_FILE()!, { workerData: data })
  } catch {
    return null // no thread to be had (limits, memory): the main thread does it all
  }
  const ended = new Promise<WorkerReport & { died?: boolean }>((resolve) => {
    worker.once('message', (m: WorkerReport) => resolve(m))
    worker.once('error', (err: Error) => resolve({ ok: false, error: { message: err.message, stack: err.stack }, died: true }))
    worker.once('exit', (code) => resolve(code === 0 ? { ok: true } : { ok: false, error: { message: `link worker exited with code ${code}` }, died: true }))
  })
  return { worker, ended }
}

/** Link every entry in `links` (indices into ctx's plan). */
export async function linkAll(ctx: LinkContext, links: ArrayLike<number>, opts: LinkAllOptions): Promise<void> {
  if (opts.inFlight !== undefined && opts.inFlight > 1 && !sfs.faultsArmed()) {
    await linkInLanes(ctx, links, opts.inFlight, opts.checkpoint)
    return
  }
  const extra = links.length >= PARALLEL_MIN_LINKS && !sfs.faultsArmed() ? extraLinkThreads() : 0
  if (extra === 0 || WORKER_FILE() === null) {
    await linkSerially(ctx, links, opts)
    return
  }
  const schedule = scheduleLinks(ctx.paths, links)
  const control = new Int32Array(new SharedArrayBuffer(CONTROL_SLOTS * Int32Array.BYTES_PER_ELEMENT))
  const data: LinkWorkerData = { planText: opts.planText, count: ctx.paths.length, staging: ctx.staging, at: ctx.at, mode: ctx.mode, relative: ctx.relative, prefixFromRoot: ctx.prefixFromRoot, schedule, control, share: ctx.share ?? null }
  const ahead = opts.helpers?.helpers ?? []
  const started: Helper[] = []
  // the first error any thread met; a worker's arrives while the main thread yields between chunks
  const failed: { error: WorkerError | null } = { error: null }
  const stopAll = () => Atomics.store(control, STOP, 1)
  const reports: Array<Promise<WorkerReport>> = []
  try {
    for (let w = 0; w < extra; w++) {
      let helper: Helper | null = ahead[w] ?? null
      if (helper !== null) {
        helper.worker.ref() // it has work now: the process waits for its report
        const queue = helper.planText === opts.planText ? { ...data, planText: null } : data
        helper.worker.postMessage({ kind: 'queue', data: queue } satisfies LinkWorkerMessage)
      }
      else if ((helper = spawnHelper(data)) !== null) started.push(helper)
      else break
      // Died without a word (could not start, out of memory): harmless if no worker ever took a chunk.
      const report = helper.ended.then((r): WorkerReport => (r.died && Atomics.load(control, JOINED) === 0 ? { ok: true } : r))
      void report.then((r) => {
        if (!r.ok && failed.error === null) {
          failed.error = r.error
          stopAll()
        }
      })
      reports.push(report)
    }
    const { order, bounds } = schedule
    const chunks = bounds.length - 1
    for (;;) {
      if (failed.error !== null || Atomics.load(control, STOP) !== 0) break
      const c = Atomics.add(control, NEXT, 1)
      if (c >= chunks) break
      const end = bounds[c + 1]!
      linkEntries(ctx, order, bounds[c]!, end)
      Atomics.add(control, DONE, end - bounds[c]!)
      opts.checkpoint(Atomics.load(control, DONE))
      // let signals and worker reports in
      await new Promise<void>((resolve) => setImmediate(resolve))
    }
    for (const report of reports) {
      const r = await report
      if (!r.ok && failed.error === null) failed.error = r.error
    }
    if (failed.error !== null) throw reviveError(failed.error)
    opts.checkpoint(Atomics.load(control, DONE))
  } finally {
    stopAll()
    await Promise.all(started.map(({ worker }) => worker.terminate()))
  }
}

async function linkSerially(ctx: LinkContext, links: ArrayLike<number>, opts: LinkAllOptions): Promise<void> {
  for (let k = 0; k < links.length; k += CHUNK) {
    const end = Math.min(k + CHUNK, links.length)
    linkEntries(ctx, links, k, end)
    if (end < links.length) {
      opts.checkpoint(end)
      await new Promise<void>((resolve) => setImmediate(resolve))
    }
  }
  opts.checkpoint(links.length)
}
