/**
 * Publishing: make a symlink `.<name>.tmp-<pid>-<rand>` -> `._<name>/<hash>`
 * beside the view and rename() it over the view path. POSIX rename of a
 * symlink over a symlink is atomic, also on NFS: a reader resolves either
 * the old tree or the new one. `ln -sfn` unlinks first and is not atomic.
 */
import * as sfs from '../../fs.js'
import { translateOsError } from '../../errors.js'
import { claimSwitch } from '../guard/fence.js'
import type { Filesystem } from '../guard/filesystem.js'
import { ensureLeaseDir } from '../guard/lease-file.js'
import { appendHistory, retractHistory, type HistoryRecord } from '../journal/history.js'
import { linkTargetFor, tmpLinkPath, type Layout } from '../layout.js'
import { switchFacts, type ViewState } from '../journal/state.js'

/** Returns warnings: a failed flush after the rename does not undo the switch. */
export function publishGeneration(layout: Layout, hash: string): string[] {
  const tmp = tmpLinkPath(layout)
  try {
    sfs.symlink(linkTargetFor(layout, hash), tmp)
    sfs.rename(tmp, layout.view)
  } catch (err) {
    try {
      sfs.unlink(tmp)
    } catch {
      // not created, or already renamed
    }
    throw translateOsError(err, `publishing ${layout.view}`)
  }
  try {
    sfs.fsyncDir(layout.parent)
  } catch (err) {
    // the switch happened; only its durability across a power cut is in doubt
    return [translateOsError(err, `flushing ${layout.parent} after publishing ${layout.view}`).message]
  }
  return []
}

/** What a switch needs from the writer holding the lock (ops/writer.ts). */
export interface SwitchGuard {
  filesystem: Filesystem
  /** Throws when the cross-client lock is no longer this writer's. */
  assertHeld(): void
}

/**
 * One switch, whole or not at all: announce it with the fencing counter
 * (guard/fence.ts: EEXIST when another client switched after `state` was
 * read), record it in the journal, publish it; a failure at any step takes
 * back the steps before. On a shared filesystem the tree also gets its
 * directory of exec lease files (guard/lease-file.ts). With `publish:
 * false` (the view already points at the tree: other settings for the same
 * tree), the record alone switches. Returns warnings; throws what failed, as
 * it was thrown.
 */
export function switchView(layout: Layout, state: ViewState, record: HistoryRecord, guard: SwitchGuard, { publish = true } = {}): string[] {
  guard.assertHeld()
  const fence = claimSwitch(layout, switchFacts(state).switches + 1, { from: state.hash, hash: record.hash, generation: record.generation })
  let size: number
  try {
    size = appendHistory(layout.history, record)
  } catch (err) {
    fence.retract()
    throw err
  }
  let warnings: string[]
  try {
    warnings = publish ? publishGeneration(layout, record.hash) : []
  } catch (err) {
    retractHistory(layout.history, size)
    fence.retract()
    throw err
  }
  if (guard.filesystem.remote) {
    const problem = ensureLeaseDir(layout, record.hash)
    if (problem !== null) warnings.push(`${problem}; \`viewctl exec\` on other clients is then protected only by the ttl and the spares`)
  }
  return warnings
}
