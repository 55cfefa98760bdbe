/**
 * Generations that share what did not change (DESIGN §17).
 *
 * A new generation is built beside one already on disk, its *base*: the
 * tree the view shows, or else the newest generation's tree. Every entry
 * whose path, kind and target are the base's is hard-linked from the base
 * instead of created: on Linux `link()` of a symlink links the symlink
 * itself, so both trees name one inode with one target. A symlink cannot be
 * changed in place and a generation is never modified, so no reader can tell
 * a shared entry from a new one; deleting either tree drops one of its names.
 *
 * Copy views share a copied file only while its source is the same file:
 * each copy view records every entry's source identity (device, inode, size,
 * mtime, ctime, mode; the very text hashed into the plan's hash) in
 * `.viewctl/sources.tsv`. Hardlink views already link the prefixes' own
 * inodes and have nothing more to share.
 *
 * The base is chosen and checked under the writer lock, so no other viewctl
 * writer (gc included) removes it meanwhile. The check is cheap, without a
 * walk: meta.json present and naming the hash, the same link mode, and the
 * plan file (with the sources file) hashing to the tree's hash again. For
 * relative links, one link a prefix is read back, since their targets also
 * depend on where the store really is.
 *
 * Deciding is a merge of two sorted lists: the new plan's entries come in
 * plan order (planned, or told by the walk), and a cursor moves forward
 * through the base plan. No entry of the base is looked at on disk to
 * decide. What a thread does with the decision is in link-entry.ts: a
 * symlink is read back and linked only while it points where the plan says,
 * otherwise (or on a refusal) the entry is created.
 */
import { createHash } from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import util from 'node:util'
import type { BuildSettings } from '../../manifest/types.js'
import { readTextNoFollow } from '../../fs.js'
import { hashPlan, parsePlanText, type ParsedPlan } from '../../plan/hash.js'
import { Kind, NO_SOURCE } from '../../plan/types.js'
import { generationDir, META_DIR, PLAN_FILE, realGenerationDir, SOURCES_FILE, type Layout } from '../layout.js'
import { switches } from '../journal/history.js'
import { readMeta } from '../journal/meta.js'
import { riskyForRoot, storeSharing } from '../guard/sharing.js'
import { treeCondition, type ViewState } from '../journal/state.js'
import { SHARE_AT_LIMIT, SHARE_DIFFERED, SHARE_ERRNO, SHARE_LINKED, SHARE_OFF, SHARE_SLOTS } from './link-entry.js'

/** The tree a build shares from, checked. */
export interface ShareBase {
  hash: string
  /** The newest generation number recorded for the tree (for messages). */
  generation: number
  /** The tree's absolute path. */
  dir: string
  plan: ParsedPlan
  /** Copy views: each base entry's source identity, by entry index. */
  identities: string[] | null
}

/** The base chosen for a build, or why there is none worth telling (a tree that failed its check). */
export interface BaseChoice {
  base: ShareBase | null
  note: string | null
}

const SOURCES_HEADER = '# viewctl sources 1\n'

/** The text of `.viewctl/sources.tsv`: one identity line for each entry that is not a directory, in plan order. */
export function sourcesText(kinds: ArrayLike<number>, identities: string[]): string {
  const lines: string[] = [SOURCES_HEADER]
  for (let i = 0; i < kinds.length; i++) if (kinds[i] !== Kind.Dir) lines.push(identities[i] ?? '')
  return lines.join('')
}

/**
 * The tree a new generation of this manifest shares from: the current tree
 * when it is on disk, else the tree of the newest generation that is. Null
 * (with no note) when there is none, or sharing cannot apply: `share: false`,
 * a hardlink view, another link mode or other relative-ness. Call under the
 * writer lock.
 */
export function chooseBase(layout: Layout, state: ViewState, manifest: BuildSettings): BaseChoice {
  if (!manifest.share || manifest.link === 'hardlink') return { base: null, note: null }
  const candidate = newestTree(layout, state)
  if (candidate === null) return { base: null, note: null }
  if (riskyForRoot(layout, storeSharing(layout)) !== null) {
    // link() follows the symlinks on the way to a name: a directory of the base replaced by a symlink would make root
    // link any file of the filesystem into the view, a setuid program among them, which fs.protected_hardlinks denies everyone else
    return { base: null, note: `root shares nothing from trees in ${layout.store}, which others may write (a directory replaced by a symlink there would make root hard-link files from anywhere); every entry was created anew` }
  }
  const condition = treeCondition(layout, candidate.hash)
  const why = condition.state === 'damaged' ? condition.why : checkBase(layout, candidate.hash, manifest)
  if (typeof why === 'string') {
    return { base: null, note: `generation ${candidate.generation}'s tree (${candidate.hash.slice(0, 12)}) was not shared from: ${why}; every entry was created anew` }
  }
  if (why === null) return { base: null, note: null }
  return { base: { ...why, hash: candidate.hash, generation: candidate.generation, dir: generationDir(layout, candidate.hash) }, note: null }
}

/**
 * The current tree, else the newest generation's, that is on disk (intact or
 * damaged: the check says which). What a build shares from, and what a
 * received copy view gives rsync as `--link-dest` (ops/replicate/receive.ts).
 */
export function newestTree(layout: Layout, state: ViewState): { hash: string; generation: number } | null {
  const recorded = switches(state.records)
  const numberOf = (hash: string) => recorded.reduce((n, r) => (r.hash === hash && r.generation > n ? r.generation : n), 0)
  const onDisk = (hash: string) => treeCondition(layout, hash).state !== 'missing'
  if (state.kind === 'managed' && state.hash !== null && onDisk(state.hash)) return { hash: state.hash, generation: numberOf(state.hash) }
  const newest = [...recorded].sort((a, b) => b.generation - a.generation)
  for (const r of newest) if (onDisk(r.hash)) return { hash: r.hash, generation: r.generation }
  return null
}

/**
 * The cheap check of a base tree that is intact (store/journal/state.ts,
 * treeCondition: real directories, meta.json naming its hash): what it was
 * built from, read back and hashed again. A string says why it cannot be
 * used; null that it does not apply to this manifest (built another way),
 * which needs no note. Every file is read without following a symlink.
 */
function checkBase(layout: Layout, hash: string, manifest: BuildSettings): { plan: ParsedPlan; identities: string[] | null } | string | null {
  const dir = generationDir(layout, hash)
  const meta = readMeta(dir)
  if (meta === null) return 'its .viewctl/meta.json cannot be read'
  const options = meta.options
  if (options === undefined || options.link !== manifest.link) return null
  if (manifest.link === 'symlink' && options.relative !== manifest.relative) return null
  let text: string
  let sources: string | null = null
  try {
    text = readTextNoFollow(path.join(dir, META_DIR, PLAN_FILE))
    if (manifest.link === 'copy') sources = readTextNoFollow(path.join(dir, META_DIR, SOURCES_FILE))
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'ENOENT' && manifest.link === 'copy') return 'it records no source identities (.viewctl/sources.tsv), so an unchanged copy cannot be told from a changed one'
    return `its plan cannot be read (${code ?? String(err)})`
  }
  if (sources !== null && !sources.startsWith(SOURCES_HEADER)) return 'its .viewctl/sources.tsv is not a sources file'
  const identityDigest = sources === null ? '-' : createHash('sha256').update(sources.slice(SOURCES_HEADER.length)).digest('hex')
  if (hashPlan({ link: manifest.link, fold: options.fold, relative: options.relative }, [text], identityDigest) !== hash) {
    return 'its plan file does not hash to its name (changed since it was built)'
  }
  let plan: ParsedPlan
  try {
    plan = parsePlanText(text)
  } catch (err) {
    return `its plan cannot be read (${err instanceof Error ? err.message : String(err)})`
  }
  const identities = sources === null ? null : identitiesByEntry(plan, sources)
  if (identities === undefined) return 'its .viewctl/sources.tsv does not match its plan'
  if (manifest.link === 'symlink' && manifest.relative) {
    const moved = relativeTargetsMoved(layout, dir, plan)
    if (moved !== null) return moved
  }
  return { plan, identities }
}

/** The sources file's lines placed by entry index; undefined when their number is not the plan's. */
function identitiesByEntry(plan: ParsedPlan, sources: string): string[] | undefined {
  const lines = sources.slice(SOURCES_HEADER.length).split('\n')
  lines.pop() // after the last newline
  const out = new Array<string>(plan.paths.length)
  let k = 0
  for (let i = 0; i < plan.paths.length; i++) {
    if (plan.kinds[i] === Kind.Dir) continue
    if (k >= lines.length) return undefined
    out[i] = `${lines[k++]}\n`
  }
  return k === lines.length ? out : undefined
}

/**
 * A relative link's target depends on where the store really is (a parent
 * directory that became another symlink moves it): read one link of each
 * prefix back and compare it with the target a new link would get. A
 * string when one differs.
 */
function relativeTargetsMoved(layout: Layout, dir: string, plan: ParsedPlan): string | null {
  const realRoot = realGenerationDir(layout, path.basename(dir))
  const seen = new Set<number>()
  for (let i = 0; i < plan.paths.length; i++) {
    const src = plan.sources[i]!
    if (plan.kinds[i] === Kind.Dir || src === NO_SOURCE || seen.has(src)) continue
    seen.add(src)
    const rel = plan.paths[i]!
    const expected = `${'../'.repeat(rel.split('/').length - 1)}${path.relative(realRoot, plan.prefixes[src]!)}/${rel}`
    let actual: string
    try {
      actual = fs.readlinkSync(path.join(dir, rel))
    } catch (err) {
      return `its link ${rel} cannot be read (${(err as NodeJS.ErrnoException).code ?? String(err)})`
    }
    if (actual !== expected) return `its relative link ${rel} points at ${actual}, where a new link would point at ${expected} (the store was moved)`
  }
  return null
}

/**
 * Decides, entry by entry in plan order, whether an entry of the new plan is
 * the base's: the same path, the same kind, the same prefix (so the same
 * target), and for copy views the same source identity. Entries must come
 * in plan order; `restart` begins again from the first.
 */
export class BaseMatcher {
  private at = 0
  /** The new plan's prefix index -> the base plan's index of the same prefix, or -1. */
  private readonly prefixMap: Int32Array

  constructor(
    private readonly base: ShareBase,
    prefixes: string[],
  ) {
    const index = new Map(base.plan.prefixes.map((p, i) => [p, i]))
    this.prefixMap = Int32Array.from(prefixes, (p) => index.get(p) ?? -1)
  }

  restart(): void {
    this.at = 0
  }

  /** `identity`: the entry's source identity (copy views). */
  matches(rel: string, kind: number, source: number, identity?: string): boolean {
    if (kind === Kind.Dir || source === NO_SOURCE) return false
    const { paths, kinds, sources } = this.base.plan
    while (this.at < paths.length) {
      const other = paths[this.at]!
      const order = other === rel ? 0 : comparePlanOrder(other, rel)
      if (order > 0) return false
      const j = this.at++
      if (order < 0) continue
      if (kinds[j] !== kind || sources[j] !== this.prefixMap[source]) return false
      const ids = this.base.identities
      return ids === null || (identity !== undefined && identity !== '' && ids[j] === identity)
    }
    return false
  }
}

/**
 * The order of a plan (plan/merge.ts): depth first, a directory before what
 * is in it, the names of one directory in code-unit order.
 */
export function comparePlanOrder(a: string, b: string): number {
  const n = Math.min(a.length, b.length)
  let k = 0
  while (k < n && a.charCodeAt(k) === b.charCodeAt(k)) k++
  // one is the other's beginning: an ancestor, or a shorter name, comes first
  if (k === n) return a.length - b.length
  const ca = a.charCodeAt(k)
  const cb = b.charCodeAt(k)
  // a name that ends where the other goes on is the shorter name, and comes first
  if (ca === 47) return -1
  if (cb === 47) return 1
  return ca - cb
}

/** The SHARE_* slots of one build, in memory every thread sees. */
export function newShareState(): Int32Array {
  return new Int32Array(new SharedArrayBuffer(SHARE_SLOTS * Int32Array.BYTES_PER_ELEMENT))
}

/** The base spelled as a build's links spell staging: its hash when the store is the working directory (workdir.ts). */
export function baseSpelling(base: ShareBase, inStore: boolean): string {
  return inStore ? base.hash : base.dir
}

/** What sharing came to in one build: entries linked from the base, and notes on what was created anew and why. */
export interface ShareOutcome {
  shared: number
  notes: string[]
}

export function shareOutcome(base: ShareBase, state: Int32Array): ShareOutcome {
  const notes: string[] = []
  const which = `generation ${base.generation}'s tree (${base.hash.slice(0, 12)})`
  const atLimit = Atomics.load(state, SHARE_AT_LIMIT)
  const differed = Atomics.load(state, SHARE_DIFFERED)
  if (differed > 0) notes.push(`${differed} ${differed === 1 ? 'entry' : 'entries'} of ${which} did not match its plan (a symlink re-pointed or replaced by hand since it was built?) and ${differed === 1 ? 'was' : 'were'} created anew from the plan; \`viewctl verify\` checks that tree, \`viewctl verify --repair\` mends it`)
  if (atLimit > 0) notes.push(`${atLimit} ${atLimit === 1 ? 'entry' : 'entries'} of ${which} had as many links as the filesystem allows (EMLINK) and ${atLimit === 1 ? 'was' : 'were'} created anew`)
  if (Atomics.load(state, SHARE_OFF) !== 0) {
    const errno = Atomics.load(state, SHARE_ERRNO)
    const code = errno > 0 ? util.getSystemErrorName(-errno) : 'an error'
    notes.push(`sharing with ${which} stopped at the first refused link (${code}: ${refusalReason(code)}); the entries after it were created anew`)
  }
  return { shared: Atomics.load(state, SHARE_LINKED), notes }
}

function refusalReason(code: string): string {
  switch (code) {
    case 'EPERM':
      return "fs.protected_hardlinks lets only a file's owner hard-link it, and the base tree belongs to another user; or the filesystem has no hard links"
    case 'EXDEV':
      return 'the base tree is on another filesystem or mount than the new one'
    case 'ENOTSUP':
    case 'EOPNOTSUPP':
    case 'ENOSYS':
      return 'the filesystem does not support hard links'
    case 'ENOENT':
    case 'ENOTDIR':
      return 'the base tree was removed or changed while the build ran'
    case 'EACCES':
      return 'the base tree cannot be searched by this user'
    default:
      return 'the base tree could not be linked from'
  }
}
