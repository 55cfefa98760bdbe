/**
 * What the worker threads of build/ (link-worker) and remove/ (rm-worker)
 * have in common, kept below both so that neither imports the other: how
 * many threads a knob allows, where a worker's script is, and how an error
 * crosses the thread boundary. A change to how workers are found, counted or
 * report failure goes here; what a worker does goes in its own room.
 */
import fs from 'node:fs'
import os from 'node:os'

/** Metadata operations kept in flight on a remote filesystem by default: waiting on the network needs no core. */
export const REMOTE_JOBS = 16
/** Threads a local build or removal uses by default, at most: more isolates cost memory and start-up for little. */
export const LOCAL_JOBS_CAP = 8

/**
 * The one knob for parallel work: `--jobs N` or VIEWCTL_JOBS=N, the
 * metadata operations in flight at once. By default the CPUs this process
 * may run on (at most LOCAL_JOBS_CAP) on a local filesystem, and REMOTE_JOBS
 * on a remote one, where each operation is a round trip.
 */
export function jobs(remote: boolean): number {
  const raw = process.env.VIEWCTL_JOBS
  if (raw && /^\d+$/.test(raw) && Number(raw) >= 1) return Number(raw)
  return remote ? REMOTE_JOBS : Math.min(os.availableParallelism(), LOCAL_JOBS_CAP)
}

/**
 * Worker threads besides the main one on a local filesystem: jobs() threads
 * in all, the main one included, and never more than the CPUs. `1` keeps
 * everything on the main thread.
 */
export function extraThreads(): number {
  return Math.min(jobs(false), os.availableParallelism()) - 1
}

/**
 * Where a worker thread's script is. The bundle (dist/bundle/, what
 * bin/viewctl runs) has each worker as one CommonJS file, `name.cjs`, which
 * boots sooner than an ES module that loads its chunks (scripts/bundle.mjs);
 * the library build (dist/store/build/, dist/store/remove/) has the compiled
 * module, `name.js`, beside the module that starts it. Run from sources (the
 * tests import src/ directly) there is neither, and the callers keep all the
 * work on the main thread.
 *
 * Returns the worker `name` beside the module whose URL is `base`, or null when it was not built.
 */
export function workerFile(name: string, base: string): URL | null {
  for (const ext of ['.cjs', '.js']) {
    const file = new URL(`./${name}${ext}`, base)
    if (fs.existsSync(file)) return file
  }
  return null
}

/** workerFile, looked up on the first call only: the files next to a running module do not come and go. */
export function workerFileOnce(name: string, base: string): () => URL | null {
  let found: URL | null | undefined
  return () => (found === undefined ? (found = workerFile(name, base)) : found)
}

/**
 * An error crossing a thread boundary: a worker sends it as plain data (an
 * Error's own fields do not survive postMessage), and the main thread
 * revives it as an Error with the errno fields translateOsError reads.
 */
export interface WorkerError {
  message: string
  code?: string
  errno?: number
  syscall?: string
  path?: string
  dest?: string
  stack?: string
}

export function describeError(err: unknown): WorkerError {
  if (!(err instanceof Error)) return { message: String(err) }
  const e = err as NodeJS.ErrnoException & { dest?: string }
  return { message: e.message, code: e.code, errno: e.errno, syscall: e.syscall, path: e.path, dest: e.dest, stack: e.stack }
}

export function reviveError(e: WorkerError): Error {
  const err = new Error(e.message) as NodeJS.ErrnoException & { dest?: string }
  if (e.code !== undefined) err.code = e.code
  if (e.errno !== undefined) err.errno = e.errno
  if (e.syscall !== undefined) err.syscall = e.syscall
  if (e.path !== undefined) err.path = e.path
  if (e.dest !== undefined) err.dest = e.dest
  if (e.stack !== undefined) err.stack = e.stack
  return err
}
