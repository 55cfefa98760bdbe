/**
 * The scan cache (DESIGN §4.5) plugs into the planner as a DirReader and is
 * saved by the writer under the lock. This first version caches nothing: it
 * reads every directory afresh and saves nothing. A missing or corrupt cache
 * only costs speed, so this is always correct.
 */
import { readDirListing, type DirReader } from './scan.js'

export interface ScanCache {
  readDir: DirReader
  /** Persist what was learned (called under the writer lock, store existing). */
  save(): void
}

export function openScanCache(_file: string): ScanCache {
  return { readDir: readDirListing, save() {} }
}
