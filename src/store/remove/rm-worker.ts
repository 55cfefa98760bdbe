/**
 * A removal worker (see remover.ts). For each tree it is told about, it joins
 * unless the main thread has already sealed it out, then takes the newest
 * published chunk nobody has taken and unlinks its names, reading chunks'
 * names from its port as they are published, until every chunk is taken or
 * some thread failed; then it reports. It writes only through the fs seam.
 */
import { parentPort, receiveMessageOnPort } from 'node:worker_threads'
import { unlinkNames } from '../../fs.js'
import { PUBLISHED, signal, SIGNAL, STOP, take, TOTAL, type RemoverMessage, type RemoverReport } from './remover.js'
import { describeError } from '../workers.js'

const port = parentPort!

port.on('message', (m: RemoverMessage) => {
  // Chunks of a tree this worker was sealed out of, or left after a stop, arrive here and are dropped.
  if (m.type !== 'tree') return
  const { id, control, taken, slot } = m
  if (Atomics.compareExchange(control, slot, 0, 1) !== 0) return
  let report: RemoverReport
  try {
    drain(id, control, taken)
    report = { id }
  } catch (err) {
    Atomics.store(control, STOP, 1)
    signal(control)
    report = { id, error: describeError(err) }
  }
  port.postMessage(report)
})

function drain(id: number, control: Int32Array, taken: Uint8Array): void {
  // chunk c's names are the c-th chunk message of this tree, posted before it was published
  const chunks: Array<{ dir: string; names: string } | null> = []
  let seenPublished = 0
  // Stretches of chunks not yet looked at, newest last; each is walked down from its newest chunk.
  const stretches: Array<{ next: number; low: number }> = []
  for (;;) {
    const seen = Atomics.load(control, SIGNAL)
    if (Atomics.load(control, STOP) !== 0) return
    const published = Atomics.load(control, PUBLISHED)
    if (published > seenPublished) {
      while (chunks.length < published) {
        const m = receiveMessageOnPort(port)?.message as RemoverMessage | undefined
        if (!m || m.type !== 'chunk' || m.id !== id) throw new Error(`removal worker: chunk ${chunks.length} of tree ${id} missing`)
        chunks.push({ dir: m.dir, names: m.names })
      }
      stretches.push({ next: published - 1, low: seenPublished })
      seenPublished = published
    }
    let c = -1
    while (c < 0 && stretches.length > 0) {
      const top = stretches[stretches.length - 1]!
      if (top.next < top.low) stretches.pop()
      else if (take(taken, top.next--)) c = top.next + 1
    }
    if (c >= 0) {
      const chunk = chunks[c]!
      chunks[c] = null
      unlinkNames(chunk.dir, chunk.names.split('\0'))
      continue
    }
    const total = Atomics.load(control, TOTAL)
    if (total >= 0 && seenPublished >= total) return
    Atomics.wait(control, SIGNAL, seen, 1000)
  }
}
