/**
 * Pieces of Node that many runs never need, loaded on first use. Each costs
 * Node the compile of its own internal modules at first load: `node:crypto`
 * 5-6 ms (19 modules), `node:worker_threads` 3-4 ms, and the `performance`
 * global about 2 ms (it loads all of perf_hooks on first touch; `nowMs` uses
 * `process.hrtime` instead). A no-op regenerate, `rollback` and `status`
 * need none of them.
 */
import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)
let workerThreads: typeof import('node:worker_threads') | undefined
let nodeCrypto: typeof import('node:crypto') | undefined

export function crypto(): typeof import('node:crypto') {
  return (nodeCrypto ??= require('node:crypto') as typeof import('node:crypto'))
}

export function threads(): typeof import('node:worker_threads') {
  return (workerThreads ??= require('node:worker_threads') as typeof import('node:worker_threads'))
}

/** Milliseconds on a monotonic clock, for measuring how long something took. */
export function nowMs(): number {
  return Number(process.hrtime.bigint()) / 1e6
}
