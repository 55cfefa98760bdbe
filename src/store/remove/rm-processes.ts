/**
 * The remove room (store/remove/): taking trees away fast, once gc has
 * retired them to `.trash-*`. startRemover (this file) picks how: `rm -rf`
 * child processes when the tree is large or on a remote filesystem, and
 * /bin/rm is there; else remover.ts, which unlinks on the main thread and
 * worker threads at once (rm-worker.ts is that worker); a small local tree,
 * or any tree while test faults are armed, goes through fs.ts's rmTree alone. What to remove, and when, is
 * gc's decision (ops/gc.ts); this room removes a tree entirely or throws the
 * first error, and never follows a symlink.
 *
 * Removing a tree with `rm -rf` child processes, one per top-level
 * directory of the tree, and then fs.ts's rmTree over whatever is left.
 *
 * Why processes: a removal is almost all the kernel's unlinks, which run in
 * parallel when they are in different directories. A worker thread has to
 * boot a V8 isolate first (50-70 ms on a busy 2-CPU VM, while it competes
 * with the main thread for a core); `rm` is running after a millisecond or
 * two. gc of one 70,000-link generation on tmpfs takes 1.05 x `rm -rf` this
 * way, 1.2 x with the thread remover (docs/benchmarks.md, "Measurements
 * behind the code").
 *
 * What does not change:
 *   - rm never follows a symlink, and each argument is a directory that was
 *     listed as one, never a link to one, inside a tree that lstat found to
 *     be a real directory (a tree that is a symlink is only unlinked);
 *   - errors: `rm`'s own exit status and messages are not used. Whatever rm
 *     could not remove is still there when rmTree runs, and rmTree meets the
 *     same error and throws it with its errno and path, exactly as without
 *     the processes;
 *   - a tree whose names are not valid UTF-8, a small tree, faults armed
 *     (tests) or no rm at /bin/rm or /usr/bin/rm: the thread remover
 *     (store/remove/remover.ts) or the main thread alone.
 *   - VIEWCTL_RM_PROCESSES=0 turns this off.
 *
 * If this process is killed, its rm children go on removing trash, which
 * nothing can reach; the next writer's rmTree takes what is left, and a name
 * that a child removes under it counts as gone.
 */
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import * as sfs from '../../fs.js'
import { PARALLEL_MIN_ENTRIES, startTreeRemover, type RemovalStats, type TreeRemover } from './remover.js'
import { jobs } from '../workers.js'

/** At most this many rm processes for one tree. */
export const MAX_RM_PROCESSES = 8

/** coreutils' rm, by absolute path (a wrapper earlier on PATH must not decide what a removal does), or null. */
export function rmProgram(): string | null {
  for (const p of ['/bin/rm', '/usr/bin/rm']) {
    try {
      fs.accessSync(p, fs.constants.X_OK)
      return p
    } catch {
      // next
    }
  }
  return null
}

/**
 * The remover gc uses for trees of about `entries` entries in all: rm
 * processes when they are worth it and allowed, else the thread remover
 * (which starts its workers now, so that they boot while the caller works).
 *
 * On a remote filesystem rm processes are worth it at any size: each unlink
 * is a round trip, rm unlinks relative to an open directory where the thread
 * remover names every path from the root (a lookup per component, each a
 * round trip on a mount that caches nothing), and up to jobs() of them
 * (`--jobs`, 16 by default there) work in different directories at once.
 */
export function startRemover(entries: number, where: { remote?: boolean } = {}): TreeRemover {
  const remote = where.remote === true
  const rm = (remote || entries >= PARALLEL_MIN_ENTRIES) && !sfs.faultsArmed() && process.env.VIEWCTL_RM_PROCESSES !== '0' ? rmProgram() : null
  return rm === null ? startTreeRemover(entries) : processRemover(rm, remote ? jobs(true) : undefined)
}

/** How a removal went with processes: `processes` rm children ran (0 when none did). */
export interface ProcessRemovalStats extends RemovalStats {
  processes: number
}

/** A TreeRemover whose removals report the rm processes they ran. */
export interface ProcessRemover extends TreeRemover {
  remove(p: string): Promise<ProcessRemovalStats>
}

/** `most`: at most this many rm children (default: two per CPU, at most MAX_RM_PROCESSES). */
export function processRemover(rm: string, most?: number): ProcessRemover {
  return {
    async remove(p) {
      let processes = 0
      const root = sfs.fsPath(p)
      // only a real directory is listed and handed out: a symlink (a tree an admin moved, leaving a link
      // behind) is unlinked by rmTree, never followed, and names that are not valid UTF-8 stay with rmTree
      const listing = typeof root === 'string' && sfs.removalStart(root) === 'dir' ? sfs.listForRemoval(root) : null
      if (listing !== null && listing.dirs.length > 0) {
        const groups: string[][] = []
        const n = Math.min(listing.dirs.length, most ?? Math.min(MAX_RM_PROCESSES, Math.max(2, os.availableParallelism() * 2)))
        listing.dirs.forEach((d, i) => (groups[i % n] ??= []).push(`${root as string}/${d}`))
        processes = groups.length
        await Promise.all(groups.map((paths) => runRm(rm, paths)))
      }
      sfs.rmTree(p) // what is left: the files at the top, the directories, anything rm could not remove (and its error)
      return { chunks: 0, workerChunks: 0, processes }
    },
    close: async () => {},
  }
}

/** Run `rm -rf -- paths`; resolves when it has ended, however it ended (rmTree finds out what is left). */
function runRm(rm: string, paths: string[]): Promise<void> {
  return new Promise((resolve) => {
    let child
    try {
      child = spawn(rm, ['-rf', '--', ...paths], { stdio: 'ignore' })
    } catch {
      resolve()
      return
    }
    child.on('error', () => resolve())
    child.on('close', () => resolve())
  })
}
