/**
 * The queue of a streamed build (stream.ts): the main thread walks the
 * prefixes and, as the walk settles entries, cuts their links into chunks and
 * hands each chunk to the link workers while it goes on walking. A worker
 * links chunks in the order they come; when the walk is over, the main
 * thread takes chunks from the other end, so the two meet in the middle and
 * are most of the time in different directories.
 *
 * Every chunk has a claim slot in shared memory: 0 free, 1 taken by a worker,
 * 2 taken by the main thread. A chunk is linked by whoever wins the slot, and
 * only by them. Workers pull chunk messages synchronously
 * (receiveMessageOnPort) and sleep on the SEQ slot, which the main thread
 * bumps on every publish, on sealing and on stop.
 */
import { receiveMessageOnPort, type MessagePort } from 'node:worker_threads'
import * as sfs from '../../fs.js'
import { linkEntries, type LinkContext, type LinkPlace, type SharedFrom } from './link-entry.js'

/** Slots of the shared control array. */
export const SEQ = 0
/** Chunks posted to the workers so far. */
export const PUBLISHED = 1
/** Set when the walk is over: no chunk will be added. */
export const SEALED = 2
/** Set to stop every thread at its next chunk (an error, an abandoned build). */
export const STOP = 3
/** Links made by the workers. */
export const DONE = 4
/**
 * Workers between deciding to take a chunk and having linked it. A worker
 * raises it before it looks at STOP, so once the main thread has set STOP and
 * then seen ACTIVE at 0, no worker will write into staging again.
 */
export const ACTIVE = 5
export const CONTROL_SLOTS = 6

export const FREE = 0
export const BY_WORKER = 1
export const BY_MAIN = 2

/** What a worker gets to join a streamed build; `port` is transferred with it. */
export interface StreamSetup extends LinkPlace {
  port: MessagePort
  control: Int32Array
  /** One claim slot per chunk; chunks past its length are never posted and stay with the main thread. */
  claims: Int32Array
  /** The base tree flagged entries are linked from, and the build's shared SHARE_* slots (link-entry.ts); null when nothing is shared. */
  share: SharedFrom
}

/** One chunk as posted: the view paths joined by NUL (no name holds one), and each entry's kind and prefix. */
export interface StreamChunk {
  id: number
  rels: string
  kinds: Uint8Array
  sources: Uint32Array
  /** 1 for each entry linked from the base tree (share.ts); null when none is. */
  shared: Uint8Array | null
}

/**
 * Link one chunk's entries. `plainNames`: no path of the chunk carries
 * escaped bytes (fs.ts, hasEscapes); when the setup's paths carry none
 * either, links skip the fs seam's per-name test (LinkContext.plain).
 */
export function linkStreamChunk(setup: LinkPlace & { share: SharedFrom }, paths: string[], kinds: ArrayLike<number>, sources: ArrayLike<number>, plainNames: boolean, shared: Uint8Array | null): void {
  const { staging, at, mode, relative, prefixes, prefixFromRoot } = setup
  const share = setup.share !== null && shared !== null ? { ...setup.share, flags: shared } : undefined
  const plain = plainNames && !sfs.hasEscapes(staging) && !sfs.hasEscapes((relative ? prefixFromRoot : prefixes).join('\0')) && (share === undefined || !sfs.hasEscapes(share.from))
  const ctx: LinkContext = { staging, at, mode, relative, prefixes, prefixFromRoot, paths, kinds, sources, plain, share }
  linkEntries(ctx, null, 0, paths.length)
}

/** A worker's loop: link chunks in the order they were published until the queue is sealed and spent, or STOP. */
export function drainStream(setup: StreamSetup): void {
  const { port, control, claims } = setup
  const arrived = new Map<number, StreamChunk>()
  let next = 0
  for (;;) {
    if (Atomics.load(control, STOP) !== 0) return
    const seq = Atomics.load(control, SEQ)
    for (let m = receiveMessageOnPort(port); m !== undefined; m = receiveMessageOnPort(port)) {
      const chunk = m.message as StreamChunk
      arrived.set(chunk.id, chunk)
    }
    const chunk = arrived.get(next)
    if (chunk !== undefined) {
      arrived.delete(next)
      Atomics.add(control, ACTIVE, 1)
      try {
        if (Atomics.load(control, STOP) !== 0) return
        const claim = Atomics.compareExchange(claims, next, FREE, BY_WORKER)
        // the main thread claims downwards from the last chunk: once it has this one, it has all the rest
        if (claim === BY_MAIN) return
        if (claim === FREE) {
          linkStreamChunk(setup, chunk.rels.split('\0'), chunk.kinds, chunk.sources, !sfs.hasEscapes(chunk.rels), chunk.shared)
          Atomics.add(control, DONE, chunk.kinds.length)
        }
      } finally {
        Atomics.sub(control, ACTIVE, 1)
        Atomics.notify(control, ACTIVE)
      }
      next++
      continue
    }
    const published = Atomics.load(control, PUBLISHED)
    if (next >= published && Atomics.load(control, SEALED) !== 0) return
    // a chunk counted as published is already in the port: look again soon; else sleep until the next bump
    Atomics.wait(control, SEQ, seq, next < published ? 1 : 1000)
  }
}
