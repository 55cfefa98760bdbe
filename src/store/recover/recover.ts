/**
 * The recover room (store/recover/): taking over what viewctl did not
 * finish, or did not make. This file clears what a dead writer left
 * (staging trees, trash, temporary symlinks beside the view) and retires a
 * tree out of sight; adopt.ts turns a plain directory at the view path into
 * the view's first generation, building on ../build/ (publishing) and
 * ../journal/ (the switch record). Both run under the writer lock.
 *
 * What a dead writer leaves behind, cleared by the next writer under the
 * lock: staging trees, trash trees, and temporary symlinks beside the view.
 * Holding the writer lock means no other writer is running, so every one of
 * them belongs to a writer that died.
 */
import fs from 'node:fs'
import path from 'node:path'
import * as sfs from '../../fs.js'
import { isTmpLinkName, trashDir, type Layout } from '../layout.js'

/** Temporary files of the store's own files: `.history.tmp-*`, `.pins.tmp-*`, `.scan-cache.tmp-*` (and the fixed `.scan-cache.tmp` of earlier versions). */
const TMP_FILE = /^\.(history|pins)\.tmp-|^\.scan-cache\.tmp(-|$)/

/**
 * `keep`: a leftover name to leave in place (a receiving push keeps the
 * `.staging-push-<hash>` of the generation it receives, so that an
 * interrupted push resumes where it stopped; ops/replicate/receive.ts).
 */
export function clearLeftovers(layout: Layout, keep?: string): string[] {
  const removed: string[] = []
  let names: string[] = []
  try {
    names = fs.readdirSync(layout.store)
  } catch {
    return removed
  }
  for (const name of names) {
    if ((name.startsWith('.staging-') || name.startsWith('.trash-')) && name !== keep) {
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
      if (!isTmpLinkName(layout, name)) continue
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
