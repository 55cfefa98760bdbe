/**
 * Publishing: make a symlink `.<name>.tmp-<pid>-<rand>` -> `._<name>/<hash>`
 * beside the view and rename() it over the view path. POSIX rename of a
 * symlink over a symlink is atomic, also on NFS: a reader resolves either
 * the old tree or the new one. `ln -sfn` unlinks first and is not atomic.
 */
import * as sfs from '../../fs.js'
import { translateOsError } from '../../errors.js'
import { linkTargetFor, tmpLinkPath, type Layout } from '../layout.js'

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
