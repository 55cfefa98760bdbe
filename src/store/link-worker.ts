/**
 * A link worker (see linker.ts): parses the plan text it was given, then
 * takes chunks from the shared queue until none is left, and reports done or
 * the first error. It writes only through the fs seam, like the main thread.
 */
import { parentPort, workerData } from 'node:worker_threads'
import { parsePlanText } from '../plan/hash.js'
import { drainChunks, STOP, type LinkWorkerData, type WorkerReport } from './linker.js'
import { describeError } from './worker-error.js'

/** Started with its queue, or ahead of the plan (startLinkHelpers) and given it in the first message. */
if (workerData === null) parentPort!.once('message', (data: LinkWorkerData) => run(data))
else run(workerData as LinkWorkerData)

function run(data: LinkWorkerData): void {
  let report: WorkerReport
  try {
    const plan = parsePlanText(data.planText.join(''))
    if (plan.paths.length !== data.count) throw new Error(`link worker parsed ${plan.paths.length} plan entries, expected ${data.count}`)
    drainChunks({ staging: data.staging, mode: data.mode, relative: data.relative, prefixes: plan.prefixes, prefixFromRoot: data.prefixFromRoot, paths: plan.paths, kinds: plan.kinds, sources: plan.sources }, data.schedule, data.control)
    report = { ok: true }
  } catch (err) {
    Atomics.store(data.control, STOP, 1)
    report = { ok: false, error: describeError(err) }
  }
  parentPort!.postMessage(report)
}
