/**
 * The journal room (store/journal/): what the store records about a view,
 * read without a lock and written only under the writer lock. history.ts is
 * the append-only journal of switches (`history.jsonl`); pins.ts the
 * generations protected from gc (`pins.json`); meta.ts a generation's
 * `.viewctl/meta.json`, whose presence makes a tree complete; plan-file.ts
 * reads the plan a generation was built from (`.viewctl/plan.tsv`). This
 * file puts them together with the view's symlink into a ViewState: which
 * generation is current, and which still have a tree. A new record, a new
 * file in the store, or a new question about a view's past goes here.
 *
 * Reading a view's state: what the symlink points at, the journal, and which
 * generations still have a tree on disk. Readers take no lock: the symlink is
 * the single source of truth for what readers see.
 */
import fs from 'node:fs'
import path from 'node:path'
import { ViewError } from '../../errors.js'
import { readJournal, switches, type CorruptLine, type HistoryRecord } from './history.js'
import { generationDir, isHashName, META_DIR, META_FILE, type Layout } from '../layout.js'
import { readPins } from './pins.js'
import { notAnOldView } from '../places.js'
import { readTextNoFollow } from '../../fs.js'

export type ViewPathKind = 'missing' | 'managed' | 'directory' | 'foreign'

export interface ViewState {
  layout: Layout
  kind: ViewPathKind
  /** The raw symlink target, when the view path is a symlink. */
  target: string | null
  /** The hash the view points at, when managed. */
  hash: string | null
  records: HistoryRecord[]
  /** Lines of the journal that are not records (readJournal): the view's health is degraded. */
  corrupt: CorruptLine[]
  /** The switch record of the current generation (last one with the current hash). */
  current: HistoryRecord | null
}

export function readViewState(layout: Layout): ViewState {
  let target: string | null = null
  let kind: ViewPathKind = 'missing'
  let hash: string | null = null
  try {
    target = fs.readlinkSync(layout.view)
    const prefix = `._${layout.name}/`
    const rest = target.startsWith(prefix) ? target.slice(prefix.length) : null
    if (rest !== null && isHashName(rest)) {
      kind = 'managed'
      hash = rest
    } else {
      kind = 'foreign'
    }
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'EINVAL') kind = fs.statSync(layout.view).isDirectory() ? 'directory' : 'foreign'
    else if (code === 'ENOTDIR') throw viewPathBlocked(layout)
    else if (code !== 'ENOENT') throw err
  }
  const { records, corrupt } = readJournal(layout.history)
  let current: HistoryRecord | null = null
  if (hash) {
    const sw = switches(records)
    for (let i = sw.length - 1; i >= 0; i--) {
      if (sw[i]!.hash === hash) {
        current = sw[i]!
        break
      }
    }
  }
  return { layout, kind, target, hash, records, corrupt, current }
}

/** ENOTDIR at the view path: a file stands where one of its parent directories should be. Bad input, not an I/O error. */
function viewPathBlocked(layout: Layout): ViewError {
  let file = layout.parent
  for (let p = layout.parent; path.dirname(p) !== p; p = path.dirname(p)) {
    try {
      if (!fs.statSync(p).isDirectory()) file = p
    } catch {
      // missing or unreachable: look further up
    }
  }
  return new ViewError('VIEW_PATH_INVALID', `${layout.view} cannot be a view: ${file} is not a directory`, `a view and its store live in a directory; check the path (a file stands at ${file})`)
}

/** What a tree is fit for: 'intact' (reuse it, switch to it), 'missing' (collected, or never completed), 'damaged' (rebuild it). */
export type TreeCondition = { state: 'intact' } | { state: 'missing' } | { state: 'damaged'; why: string }

/**
 * The condition of the tree of `hash`, found without walking it: three calls
 * whatever its size, so that a rollback at 1,000,000 files stays one. The
 * tree and its `.viewctl/` must be real directories (a symlink is not
 * followed: it could lead anywhere) and its meta.json, read without
 * following a symlink, must name this hash. What only a walk finds (an
 * entry removed by hand) is verify's, and verify --repair mends it.
 */
export function treeCondition(layout: Layout, hash: string): TreeCondition {
  const dir = generationDir(layout, hash)
  for (const d of [dir, path.join(dir, META_DIR)]) {
    let st: fs.Stats
    try {
      st = fs.lstatSync(d)
    } catch {
      return { state: 'missing' }
    }
    if (st.isSymbolicLink()) return { state: 'damaged', why: `${d} is a symlink` }
    if (!st.isDirectory()) return { state: 'damaged', why: `${d} is not a directory` }
  }
  const meta = path.join(dir, META_DIR, META_FILE)
  let named: unknown
  try {
    named = (JSON.parse(readTextNoFollow(meta)) as { hash?: unknown } | null)?.hash
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'ENOENT') return { state: 'missing' }
    return { state: 'damaged', why: code === 'ELOOP' ? `${meta} is a symlink` : `${meta} cannot be read (${code ?? 'not JSON'})` }
  }
  if (named !== hash) return { state: 'damaged', why: `${meta} names ${typeof named === 'string' ? `the hash ${named}` : 'no hash'}` }
  return { state: 'intact' }
}

/** Names in the store that are generation trees, complete or not; none when there is no store. */
export function hashesOnDisk(layout: Layout): string[] {
  try {
    return fs.readdirSync(layout.store).filter(isHashName)
  } catch {
    return []
  }
}

/**
 * readViewState with the freshest lookup the mount offers: the view's parent
 * directory and the store are opened first (close-to-open consistency: on
 * NFS, opening a directory revalidates what the client cached of it), then
 * the symlink and the journal are read. Writers read this way under the lock.
 */
export function readViewStateFresh(layout: Layout): ViewState {
  for (const dir of [layout.parent, layout.store]) {
    try {
      fs.closeSync(fs.openSync(dir, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY))
    } catch {
      // missing or unreadable: readViewState says what matters
    }
  }
  return readViewState(layout)
}

/** What the fencing counter (guard/fence.ts) needs to know of a reading. */
export function switchFacts(state: ViewState): { switches: number; lastHash: string | null; shownHash: string | null } {
  const sw = switches(state.records)
  return { switches: sw.length, lastHash: sw[sw.length - 1]?.hash ?? null, shownHash: state.hash }
}

export function isComplete(layout: Layout, hash: string): boolean {
  return fs.existsSync(path.join(generationDir(layout, hash), META_DIR, META_FILE))
}

export interface GenerationInfo {
  generation: number
  hash: string
  /** When the generation was first recorded. */
  created: string
  action: string
  current: boolean
  onDisk: boolean
  /** Protected from gc by `viewctl pin` (recorded in pins.json). */
  pinned: boolean
}

/** One row per generation number, oldest first. */
export function listGenerations(state: ViewState): GenerationInfo[] {
  const byNumber = new Map<number, GenerationInfo>()
  const pins = readPins(state.layout)
  for (const r of switches(state.records)) {
    if (byNumber.has(r.generation)) continue
    byNumber.set(r.generation, {
      generation: r.generation,
      hash: r.hash,
      created: r.at,
      action: r.action,
      current: false,
      onDisk: isComplete(state.layout, r.hash),
      pinned: pins.has(r.generation),
    })
  }
  const rows = [...byNumber.values()].sort((a, b) => a.generation - b.generation)
  if (state.current) {
    const row = byNumber.get(state.current.generation)
    if (row) row.current = true
  }
  return rows
}

export function nextGenerationNumber(state: ViewState): number {
  let max = 0
  for (const r of state.records) if (r.generation > max) max = r.generation
  return max + 1
}

/** The view must be managed by viewctl (a symlink into its store) for commands that read generations. */
export function requireManaged(state: ViewState): asserts state is ViewState & { hash: string } {
  const { layout } = state
  if (state.kind === 'missing') {
    throw new ViewError('NOT_A_VIEW', `${layout.view} does not exist`, 'build it first with `viewctl regenerate <manifest>`')
  }
  if (state.kind === 'directory') {
    // --adopt only where the directory could be an old view: not for /tmp, a store, the manifest's folder …
    const notView = notAnOldView(layout.view)
    const hint = notView === null ? 'if it is an old view, regenerate its manifest with --adopt to move it into the store as generation 1' : 'give the path of a view (the symlink `viewctl regenerate` made), or its manifest'
    throw new ViewError('NOT_A_VIEW', `${layout.view} is a real directory, not a view managed by viewctl${notView === null ? '' : ` (${notView.why})`}`, hint)
  }
  if (state.kind === 'foreign') {
    throw new ViewError('NOT_A_VIEW', `${layout.view} is not a view managed by viewctl (it does not point into ${layout.store})`, 'check the path; viewctl views are symlinks to ._<name>/<hash>')
  }
}
