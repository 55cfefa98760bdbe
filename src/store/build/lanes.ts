/**
 * Linking on a remote filesystem (NFS, Lustre, GPFS, sshfs): many operations
 * in flight, one per directory.
 *
 * There every symlink, link or copy is a round trip to the server, and the
 * cost is waiting, not CPU. A client creates one name per directory at a time
 * (the kernel holds the directory's lock across the round trip), but names in
 * different directories go out together. So the links are grouped by parent
 * directory, the largest group first, and `inFlight` lanes (`--jobs`,
 * store/workers.ts) each take the next group and create its names one after
 * another on libuv's thread pool, which the launcher (bin/viewctl) sizes to
 * the jobs. No worker thread is needed: the main thread only issues calls.
 *
 * The entries, their targets and their errors are linkEntry's (link-entry.ts);
 * the first error stops every lane from taking more, the calls already in
 * flight settle, and it is thrown. Never used while test faults are armed
 * (their counters assume plan order).
 */
import { linkEntryAsync, type LinkContext } from './link-entry.js'

/** `checkpoint` (progress, signals) is called after this many links, or this long, whichever comes first: near the end only the largest directory's lane is left, a round trip a link. */
const CHECK_EVERY = 256
const CHECK_EVERY_MS = 100

/** Indices of `links`, grouped by parent directory, the largest group first. */
export function groupByDirectory(paths: string[], links: ArrayLike<number>): number[][] {
  const groups = new Map<string, number[]>()
  let lastParent: string | null = null
  let lastGroup: number[] = []
  for (let k = 0; k < links.length; k++) {
    const i = links[k]!
    const rel = paths[i]!
    const parent = rel.slice(0, Math.max(0, rel.lastIndexOf('/')))
    if (parent !== lastParent) {
      lastParent = parent
      let group = groups.get(parent)
      if (group === undefined) groups.set(parent, (group = []))
      lastGroup = group
    }
    lastGroup.push(i)
  }
  return [...groups.values()].sort((a, b) => b.length - a.length)
}

/** Link every entry in `links` with `inFlight` lanes, one directory each at a time. */
export async function linkInLanes(ctx: LinkContext, links: ArrayLike<number>, inFlight: number, checkpoint: (linksDone: number) => void): Promise<void> {
  const groups = groupByDirectory(ctx.paths, links)
  const run = { next: 0, done: 0, checked: 0, checkedAt: performance.now(), failed: false, error: undefined as unknown }
  const lane = async () => {
    while (!run.failed && run.next < groups.length) {
      const group = groups[run.next++]!
      for (const i of group) {
        if (run.failed) return
        try {
          await linkEntryAsync(ctx, i)
          run.done++
          if (run.done - run.checked >= CHECK_EVERY || performance.now() - run.checkedAt >= CHECK_EVERY_MS) {
            run.checked = run.done
            run.checkedAt = performance.now()
            checkpoint(run.done)
          }
        } catch (error) {
          if (!run.failed) Object.assign(run, { failed: true, error })
          return
        }
      }
    }
  }
  await Promise.all(Array.from({ length: Math.max(1, Math.min(inFlight, groups.length)) }, lane))
  if (run.failed) throw run.error
  checkpoint(run.done)
}
