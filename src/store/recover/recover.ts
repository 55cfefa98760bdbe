/**
 * The recover room (store/recover/): taking over what viewctl did not
 * finish, or did not make. This file clears what a dead writer left
 * (staging trees, trash, temporary symlinks beside the view) and retires a
 * tree out of sight; adopt.ts turns a plain directory at the view path into
 * the view's first generation, building on ../build/ (publishing) and
 * ../journal/ (the switch record). Both run under the writer lock.
 *
 * What a dead writer leaves behind, cleared by the next writer under the
 * lock: staging trees, trash trees, clock probes, temporary files of the
 * store's own files, and temporary symlinks beside the view.
 *
 * Holding a lock that every writer on every client honours (the kernel's
 * lock where it reaches all clients, or with the cross-client lock file)
 * means no other writer is running, so every one of them belongs to a writer
 * that died. Without it (--no-lock) only the leftovers whose owner is
 * provably dead are cleared: on a local filesystem (this host is the only
 * writer), those whose pid, in the name, no longer runs here; on a shared
 * filesystem, none.
 */
import fs from 'node:fs'
import path from 'node:path'
import * as sfs from '../../fs.js'
import { isTmpLinkName, trashDir, type Layout } from '../layout.js'
import type { Filesystem } from '../guard/filesystem.js'

/** Temporary files of the store's own files: `.history.tmp-*`, `.pins.tmp-*`, `.scan-cache.tmp-*` (and the fixed `.scan-cache.tmp` of earlier versions). */
const TMP_FILE = /^\.(history|pins)\.tmp-|^\.scan-cache\.tmp(-|$)/

/** Trees and probes a writer makes in the store under names of its own (`…-<pid>-<random>`). */
const STORE_LEFTOVERS = ['.staging-', '.trash-', '.clock-']

export interface LeftoverPolicy {
  /** The caller holds a lock every writer on every client honours. */
  everyWriterExcluded: boolean
  filesystem: Filesystem
  /**
   * A leftover name to leave in place (a receiving push keeps the
   * `.staging-push-<hash>` of the generation it receives, so that an
   * interrupted push resumes where it stopped; ops/replicate/receive.ts).
   */
  keep?: string
}

/** The pid in a leftover's name (`…-<pid>-<random>`), or null. */
function pidOf(name: string): number | null {
  const parts = name.split('-')
  const pid = Number(parts[parts.length - 2])
  return Number.isInteger(pid) && pid > 0 ? pid : null
}

function ownerGone(name: string, policy: LeftoverPolicy): boolean {
  if (policy.everyWriterExcluded) return true
  if (policy.filesystem.remote) return false
  const pid = pidOf(name)
  if (pid === null) return false
  try {
    process.kill(pid, 0)
    return false
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ESRCH'
  }
}

export function clearLeftovers(layout: Layout, policy: LeftoverPolicy): string[] {
  const removed: string[] = []
  let names: string[] = []
  try {
    names = fs.readdirSync(layout.store)
  } catch {
    return removed
  }
  for (const name of names) {
    if (name === policy.keep || !ownerGone(name, policy)) continue
    if (STORE_LEFTOVERS.some((prefix) => name.startsWith(prefix))) {
      const p = path.join(layout.store, name)
      clearQuietly(p)
      removed.push(p)
    } else if (TMP_FILE.test(name)) {
      // a file a writer was writing under a temporary name (the journal mended, the pins, the scan cache) when it died
      const p = path.join(layout.store, name)
      try {
        sfs.unlink(p)
        removed.push(p)
      } catch {
        // gone already, or not ours to remove: the next writer tries again
      }
    }
  }
  try {
    for (const name of fs.readdirSync(layout.parent)) {
      if (!isTmpLinkName(layout, name) || !ownerGone(name, policy)) continue
      const p = path.join(layout.parent, name)
      try {
        if (fs.lstatSync(p).isSymbolicLink()) {
          fs.unlinkSync(p)
          removed.push(p)
        }
      } catch {
        // gone already
      }
    }
  } catch {
    // parent unreadable: nothing to clear there
  }
  return removed
}

/** Take a generation tree out of sight (one rename to `.trash-*`), then remove it; a crash between leaves trash. */
export function retireTree(layout: Layout, dir: string, hash: string): void {
  const trash = trashDir(layout, hash)
  try {
    sfs.rename(dir, trash)
  } catch {
    return // still there; gc or the next writer decides
  }
  clearQuietly(trash)
}

/**
 * Best effort, with the seam's rmTree: file types come from the listing, no
 * stat per entry (a dead gc's trash of 70,000 links goes in about 0.5 s on
 * tmpfs, against 0.75 s with Node's rmSync). Whatever stays, the next writer
 * tries again.
 */
function clearQuietly(p: string): void {
  try {
    sfs.rmTree(p)
  } catch {
    // the next writer tries again
  }
}
