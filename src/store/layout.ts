/**
 * The ground every room of store/ stands on. The rooms, each explained at
 * the top of its main file: build/ (stage, link, seal and publish a
 * generation: build.ts), journal/ (what the store records: state.ts), guard/
 * (the writer lock, exec leases, the /proc scan: lock.ts), remove/ (large
 * trees taken away fast: rm-processes.ts), recover/ (a dead writer's
 * leftovers, adopting a plain directory: recover.ts). Beside this file,
 * places.ts says where a view may be made, and workers.ts is what the worker
 * threads of build/ and remove/ share. Imports point down: recover/ and
 * remove/ may use build/, build/ uses journal/ and guard/, and all of them
 * these three files (test/layers.test.ts checks it).
 *
 * Where things live (the main ones; README.md, "On disk", lists every
 * file). Given a view path `/opt/views/hpc`:
 *
 *   /opt/views/hpc                 -> ._hpc/<hash>   (relative symlink)
 *   /opt/views/._hpc/<hash>/       a generation
 *   /opt/views/._hpc/history.jsonl the journal
 *   /opt/views/._hpc/.lock         the writer lock
 *   /opt/views/._hpc/.staging-*    builds in progress (or left by a crash)
 *   /opt/views/._hpc/.trash-*      generations being deleted
 *   /opt/views/.hpc.tmp-*          a publish in progress
 */
import fs from 'node:fs'
import path from 'node:path'

export interface Layout {
  /** The public view path (absolute). */
  view: string
  /** Its parent directory. */
  parent: string
  /** The view's basename. */
  name: string
  /** The store directory `._<name>` beside the view. */
  store: string
  history: string
  lock: string
  scanCache: string
}

// a generation's own directory and plan file are named where the plan is (the scan cache reads plans back)
export { META_DIR, PLAN_FILE } from '../plan/types.js'
export const META_FILE = 'meta.json'
/** Copy views: each copied entry's source identity (store/build/share.ts). */
export const SOURCES_FILE = 'sources.tsv'
export const MANIFEST_COPY = 'manifest.yaml'
export const LEASE_FILE = 'lease'

export function layoutFor(viewPath: string): Layout {
  const view = path.resolve(viewPath)
  const parent = path.dirname(view)
  const name = path.basename(view)
  const store = path.join(parent, `._${name}`)
  return {
    view,
    parent,
    name,
    store,
    history: path.join(store, 'history.jsonl'),
    lock: path.join(store, '.lock'),
    scanCache: path.join(store, '.scan-cache'),
  }
}

/** Is `entry` (a name inside the store) a generation directory name? */
export function isHashName(entry: string): boolean {
  return /^[0-9a-f]{16,64}$/.test(entry)
}

export function generationDir(layout: Layout, hash: string): string {
  return path.join(layout.store, hash)
}

/**
 * The generation's directory with every symlink in its parents resolved. The
 * kernel resolves a relative link's `..` from where the link really is, so
 * `relative: true` targets must be computed from here (on HPC, /opt/views is
 * often a symlink into a parallel filesystem).
 */
export function realGenerationDir(layout: Layout, hash: string): string {
  return path.join(fs.realpathSync(layout.store), hash)
}

/** The relative target the view symlink carries for a hash. */
export function linkTargetFor(layout: Layout, hash: string): string {
  return `._${layout.name}/${hash}`
}

/**
 * Eight hex digits that keep two writers' temporary names apart when their
 * pids are the same (two hosts sharing a store over NFS). Uniqueness is all
 * that is asked, not secrecy: the names live in the store and beside the
 * view, where only writers of the view can create anything, and V8 seeds
 * Math.random from the OS's entropy in every process.
 */
export function nonce(): string {
  return Math.floor(Math.random() * 0x1_0000_0000).toString(16).padStart(8, '0')
}

export function stagingDir(layout: Layout, hash: string): string {
  return path.join(layout.store, `.staging-${hash}-${process.pid}-${nonce()}`)
}

export function trashDir(layout: Layout, hash: string): string {
  return path.join(layout.store, `.trash-${hash}-${process.pid}-${nonce()}`)
}

export function tmpLinkPath(layout: Layout): string {
  return path.join(layout.parent, `.${layout.name}.tmp-${process.pid}-${nonce()}`)
}

export function isTmpLinkName(layout: Layout, entry: string): boolean {
  return entry.startsWith(`.${layout.name}.tmp-`)
}
