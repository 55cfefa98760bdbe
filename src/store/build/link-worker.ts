/**
 * A link worker (see linker.ts): parses the plan text it was given, then
 * takes chunks from the shared queue until none is left, and reports done or
 * the first error. It writes only through the fs seam, like the main thread.
 *
 * Started with its queue (workerData), or ahead of the plan (startLinkHelpers):
 * then it may get the plan text first, to parse while it waits, and its
 * queue in a second message; or it joins a streamed build (stream-queue.ts),
 * linking chunks while the main thread is still walking.
 */
import { parentPort, workerData } from 'node:worker_threads'
import { parsePlanText } from '../../plan/hash.js'
import { drainChunks, STOP, type LinkWorkerData, type LinkWorkerMessage, type WorkerReport } from './linker.js'
import { describeError } from '../workers.js'
import { drainStream, STOP as STREAM_STOP, type StreamSetup } from './stream-queue.js'

type Parsed = ReturnType<typeof parsePlanText>

function parse(planText: string[], count: number): Parsed {
  const plan = parsePlanText(planText.join(''))
  if (plan.paths.length !== count) throw new Error(`link worker parsed ${plan.paths.length} plan entries, expected ${count}`)
  return plan
}

if (workerData !== null) run(workerData as LinkWorkerData, null)
else {
  let early: { plan: Parsed } | { error: unknown } | null = null
  const onMessage = (m: LinkWorkerMessage) => {
    if (m.kind === 'plan') {
      try {
        early = { plan: parse(m.planText, m.count) }
      } catch (error) {
        early = { error }
      }
      return
    }
    parentPort!.off('message', onMessage) // nothing more to come: the worker ends after its report
    if (m.kind === 'stream') stream(m.setup)
    else run(m.data, early)
  }
  parentPort!.on('message', onMessage)
}

/** Do the work, then report done or the error it stopped on, having set `stop` so that no other thread takes more. */
function workThenReport(work: () => void, stop: () => void): void {
  let report: WorkerReport
  try {
    work()
    report = { ok: true }
  } catch (err) {
    stop()
    report = { ok: false, error: describeError(err) }
  }
  parentPort!.postMessage(report)
}

function run(data: LinkWorkerData, early: { plan: Parsed } | { error: unknown } | null): void {
  workThenReport(() => {
    let plan: Parsed
    if (data.planText !== null) plan = parse(data.planText, data.count)
    else if (early === null) throw new Error('link worker got its queue without a plan')
    else if ('error' in early) throw early.error
    else plan = early.plan
    drainChunks({ staging: data.staging, at: data.at, mode: data.mode, relative: data.relative, prefixes: plan.prefixes, prefixFromRoot: data.prefixFromRoot, paths: plan.paths, kinds: plan.kinds, sources: plan.sources, share: data.share ?? undefined }, data.schedule, data.control)
  }, () => Atomics.store(data.control, STOP, 1))
}

function stream(setup: StreamSetup): void {
  workThenReport(
    () => {
      try {
        drainStream(setup)
      } finally {
        setup.port.close()
      }
    },
    () => Atomics.store(setup.control, STREAM_STOP, 1),
  )
}
