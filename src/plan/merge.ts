/**
 * The merged walk. All prefixes are walked together, one view directory at a
 * time: the listings of every prefix that has that directory are unioned,
 * names are visited in sorted order, and each name is settled on the spot —
 * a directory (merged, or folded when one prefix alone provides it), a link
 * to a file, or a conflict. The result comes out already sorted, depth first,
 * so the plan never needs a global sort.
 *
 * Folding (symlink views): a directory that exactly one prefix provides is
 * linked as a whole. When that prefix's filters cannot touch anything below
 * it, the walker does not even descend; otherwise it descends, and folds
 * afterwards if nothing below was dropped.
 */
import fs from 'node:fs'
import { fsPath } from '../fs.js'
import { PREFIX_PERMISSION_HINT, ViewError, translateOsError } from '../errors.js'
import type { PackageFilter, IncludeState } from './filters.js'
import { INCLUDED } from './filters.js'
import { EntryType, type DirListing, type DirReader } from './scan.js'
import { Kind, NEEDS_QUOTING, NO_SOURCE, type Conflict, type ConflictSource } from './types.js'

export interface WalkPackage {
  /** position in the manifest's merge order */
  order: number
  /** index into the plan's sorted prefix table */
  table: number
  path: string
  priority: number
  filter: PackageFilter
  rootInclude: IncludeState
}

export interface WalkOptions {
  fold: boolean
  conflicts: 'error' | 'first' | 'last'
  readDir: DirReader
  /** Called with each directory read for a package, for source identity (hardlink views). */
  onDir?: (abs: string) => void
  /** Called with each file linked and the index its entry is about to get, for source identity (copy views). */
  onFile?: (abs: string, index: number) => void
  /** Compares two files found at one path (default: sameContent); the planner counts the calls. */
  sameContent?: (a: string, b: string) => boolean
  /** Told of entries as soon as they are final (see `Release`), so that a build can start before the walk ends. */
  onRelease?: Release
}

/**
 * Entries `from` … `to - 1` of the walk's output so far are settled: no
 * later step of the walk removes a file, symlink or folded entry among them.
 * A directory entry may still vanish, when everything below it is filtered
 * away; `from` then starts below an earlier `to`, over entries told before.
 * (So a consumer makes a directory only once something is placed in it.)
 * `blocked` is set once a conflict that stops the run (`conflicts: error`)
 * has been met: nothing told from then on will be built.
 */
export type Release = (out: ReleasedEntries, from: number, to: number, blocked: boolean) => void

/**
 * The walk's output so far, as onRelease sees it: `paths.length` entries
 * (kinds and sources are typed arrays with room to spare). A walk also gives
 * each entry's own name and the directory it is in (`dirs[parentIds[i]]`,
 * `''` at the root): strings it has already, so that a consumer need not
 * take the path apart (which would make V8 copy every path into a flat
 * string). A plan read back from text has neither.
 */
export interface ReleasedEntries {
  paths: string[]
  kinds: ArrayLike<number>
  sources: ArrayLike<number>
  names?: string[]
  parentIds?: ArrayLike<number>
  dirs?: string[]
}

export interface WalkResult {
  paths: string[]
  kinds: number[]
  sources: number[]
  conflicts: Conflict[]
  warnings: string[]
  excluded: number
  /** Whether some path needs quoting in the plan text; when false, planChunks need not test each. */
  quoted: boolean
}

interface Candidate {
  pkg: WalkPackage
  type: EntryType
  abs: string
  inc: IncludeState
}

/**
 * A directory of a prefix that cannot be listed. Permission is the usual
 * cause (a prefix installed by another user with a tight umask) and gets its
 * own message naming the prefix: the generic advice about the view's parent
 * would send the admin to the wrong directory.
 */
function unreadable(err: unknown, c: Candidate): ViewError {
  const code = (err as NodeJS.ErrnoException).code
  if (code !== 'EACCES' && code !== 'EPERM') return translateOsError(err, `reading ${c.abs}`)
  const inside = c.abs === c.pkg.path ? '' : ` (inside the prefix ${c.pkg.path})`
  return new ViewError('PREFIX_UNREADABLE', `cannot read the directory ${c.abs}${inside}: permission denied (listing it needs read and search permission)`, PREFIX_PERMISSION_HINT, undefined, { cause: err })
}

/** The largest slot number a sort key can carry (two 15-bit code units). */
const MAX_SLOT = 2 ** 30 - 1

/** Slot tags made so far, shared by every directory (the small slot numbers recur in each). */
const TAGS: string[] = []
const CACHED_TAGS = 1 << 16

/** What follows a name in its sort key: NUL and the slot number in two 15-bit code units (see walk). */
function slotTag(slot: number): string {
  if (slot >= CACHED_TAGS) return '\0' + String.fromCharCode(slot >>> 15, slot & 0x7fff)
  return (TAGS[slot] ??= '\0' + String.fromCharCode(slot >>> 15, slot & 0x7fff))
}

/** A sort key's slot number (see walk). */
function slotOf(key: string): number {
  return (key.charCodeAt(key.length - 2) << 15) | key.charCodeAt(key.length - 1)
}

/** Entries placed between two calls of onRelease within one directory. */
const RELEASE_EVERY = 1024

/** The directory every prefix-level `.viewctl` would collide with. */
const RESERVED_ROOT_NAME = '.viewctl'

export function mergedWalk(packages: WalkPackage[], opts: WalkOptions): WalkResult {
  const compare = opts.sameContent ?? sameContent
  const paths: string[] = []
  // Kinds, sources and parent ids live in typed arrays grown by doubling: pushing 100,000 numbers onto
  // JavaScript arrays cost 8-16 ms each (growth, large-object pages, the scavenger), a typed array 0.1 ms.
  let kinds = new Uint8Array(1024)
  let sources = new Uint32Array(1024)
  const conflicts: Conflict[] = []
  const warnings: string[] = []
  let excluded = 0
  // whether some name placed needs quoting in the plan text (hash.ts): if none does, no path does
  let quoted = false
  const telling = opts.onRelease !== undefined
  const names: string[] = []
  let parentIds = new Int32Array(telling ? 1024 : 0)
  const dirs: string[] = ['']
  const out: ReleasedEntries = telling ? { paths, kinds, sources, names, parentIds, dirs } : { paths, kinds, sources }
  // the directory being walked (its index in dirs): every entry pushed now is in it
  let parent = 0
  // Entries below `released` were told to onRelease. A directory folded after
  // descending may still replace everything from its mark on: `holding` counts
  // such directories open, and `holdFrom` is the outermost one's mark.
  let released = 0
  let holding = 0
  let holdFrom = 0
  let blocked = false
  const release = () => {
    if (!opts.onRelease) return
    const to = holding > 0 ? holdFrom : paths.length
    if (to > released) opts.onRelease(out, released, to, blocked)
    released = Math.max(released, to)
  }

  const grow = () => {
    const bigger = <T extends Uint8Array | Uint32Array | Int32Array>(a: T, make: (n: number) => T): T => {
      const b = make(a.length * 2)
      b.set(a)
      return b
    }
    kinds = bigger(kinds, (n) => new Uint8Array(n))
    sources = bigger(sources, (n) => new Uint32Array(n))
    out.kinds = kinds
    out.sources = sources
    if (telling) out.parentIds = parentIds = bigger(parentIds, (n) => new Int32Array(n))
  }
  const push = (path: string, kind: number, source: number, name: string) => {
    const i = paths.length
    if (i === kinds.length) grow()
    paths.push(path)
    kinds[i] = kind
    sources[i] = source
    if (telling) {
      names.push(name)
      parentIds[i] = parent
    }
  }
  const truncate = (length: number) => {
    if (released > length) released = length // only directory entries are ever taken back below it
    paths.length = length // kinds, sources and parentIds count up to paths.length
    if (telling) names.length = length
  }

  /**
   * Walk one view directory; returns how many paths below it were dropped.
   * The names of all contributors are unioned by sorting: each name kept
   * gets a "slot" (contributor, index in its listing, include state), kept
   * in parallel arrays of small integers, and one sort key, the name followed
   * by NUL and the slot number in two UTF-16 code units. No name holds NUL,
   * so the keys sort as the names do (a name before the longer names it
   * begins), and one name's slots come out together, in the merge order.
   * A directory that one prefix alone provides needs no keys: Node lists a
   * directory sorted by bytes, the same order for all but a few names, and
   * that is checked. Sorting the keys costs a third of what a Map from name
   * to slot did,
   * and no object or lasting string is made per name until it is placed:
   * that is what keeps a walk of a million names light on the garbage
   * collector.
   */
  function walk(rel: string, contributors: Candidate[]): number {
    const outer = parent
    if (telling) {
      parent = dirs.length
      dirs.push(rel)
    }
    try {
      return walkIn(rel, contributors)
    } finally {
      parent = outer
    }
  }

  function walkIn(rel: string, contributors: Candidate[]): number {
    let dropped = 0
    const listings: DirListing[] = []
    let total = 0
    let filtered = false
    for (const c of contributors) {
      if (opts.onDir) opts.onDir(c.abs)
      let listing
      try {
        listing = opts.readDir(c.abs)
      } catch (err) {
        throw unreadable(err, c)
      }
      listings.push(listing)
      total += listing.names.length
      if (!c.pkg.filter.trivial) filtered = true
    }
    // sized once: no array here grows name by name
    const slotOwner = new Int32Array(total)
    const slotIndex = new Int32Array(total)
    const slotInc: IncludeState[] | null = filtered ? new Array<IncludeState>(total) : null
    let slots = 0
    for (let ci = 0; ci < contributors.length; ci++) {
      const c = contributors[ci]!
      const { names, types } = listings[ci]!
      const filter = c.pkg.filter
      for (let i = 0; i < names.length; i++) {
        const name = names[i]!
        const type = types[i]!
        if (rel === '' && name === RESERVED_ROOT_NAME) {
          warnings.push(`skipped ${c.abs}/${name}: the name .viewctl is reserved at the view's root`)
          dropped++
          continue
        }
        if (type === EntryType.Special) {
          warnings.push(`skipped ${c.abs}/${name}: sockets, fifos and device files are not linked`)
          dropped++
          continue
        }
        let inc = INCLUDED
        if (!filter.trivial) {
          const childRel = rel === '' ? name : `${rel}/${name}`
          if (filter.excludes(childRel)) {
            excluded++
            dropped++
            continue
          }
          const state = filter.includeState(childRel, c.inc)
          if (state === null || (type !== EntryType.Dir && !(state.global && state.pkg))) {
            excluded++
            dropped++
            continue
          }
          inc = state
        }
        if (!quoted && NEEDS_QUOTING.test(name)) quoted = true
        const slot = slots++
        if (slot > MAX_SLOT) throw new Error(`${rel === '' ? 'the view root' : rel}: more than ${MAX_SLOT} names in one view directory`)
        slotOwner[slot] = ci
        slotIndex[slot] = i
        if (slotInc !== null) slotInc[slot] = inc
      }
    }

    const nameOf = (slot: number) => listings[slotOwner[slot]!]!.names[slotIndex[slot]!]!
    const order = new Int32Array(slots)
    let sorted = contributors.length === 1
    // One prefix's directory: Node lists a directory sorted (libuv sorts by bytes, which is this order for
    // nearly every name); checked, and then there is nothing to sort.
    for (let k = 1; sorted && k < slots; k++) sorted = nameOf(k - 1) < nameOf(k)
    if (sorted) {
      for (let k = 0; k < slots; k++) order[k] = k
    } else {
      const keys = new Array<string>(slots)
      for (let k = 0; k < slots; k++) keys[k] = nameOf(k) + slotTag(k)
      keys.sort()
      // the sorted slots; the keys are garbage from here on, before the next collection has to copy them
      for (let k = 0; k < slots; k++) order[k] = slotOf(keys[k]!)
    }

    const candidate = (slot: number, name: string): Candidate => {
      const c = contributors[slotOwner[slot]!]!
      return { pkg: c.pkg, type: listings[slotOwner[slot]!]!.types[slotIndex[slot]!]!, abs: `${c.abs}/${name}`, inc: slotInc === null ? INCLUDED : slotInc[slot]! }
    }
    // made once, so that each child's path is one join, not two
    const base = rel === '' ? '' : `${rel}/`
    for (let k = 0; k < slots; ) {
      const first = order[k]!
      const name = nameOf(first)
      let end = k + 1
      while (end < slots && nameOf(order[end]!) === name) end++
      const childRel = base + name
      if (end === k + 1) {
        const owner = slotOwner[first]!
        const type = listings[owner]!.types[slotIndex[first]!]!
        if (type === EntryType.Dir) {
          dropped += placeDir(childRel, [candidate(first, name)], name)
        } else {
          if (opts.onFile) opts.onFile(`${contributors[owner]!.abs}/${name}`, paths.length)
          push(childRel, type === EntryType.Symlink ? Kind.Symlink : Kind.File, contributors[owner]!.pkg.table, name)
          if (opts.onRelease && paths.length - released >= RELEASE_EVERY) release()
        }
        k = end
        continue
      }
      const cands: Candidate[] = []
      for (; k < end; k++) cands.push(candidate(order[k]!, name))
      dropped += settle(childRel, cands, name)
      // a big directory is told in parts, so that linking starts before its last name is placed
      if (opts.onRelease && paths.length - released >= RELEASE_EVERY) release()
    }
    return dropped
  }

  function placeFile(rel: string, c: Candidate, name: string) {
    if (opts.onFile) opts.onFile(c.abs, paths.length)
    push(rel, c.type === EntryType.Symlink ? Kind.Symlink : Kind.File, c.pkg.table, name)
  }

  /** A directory from one or more prefixes: fold it, or merge and descend. */
  function placeDir(rel: string, dirs: Candidate[], name: string): number {
    const mark = paths.length
    if (opts.fold && dirs.length === 1) {
      const only = dirs[0]!
      const filter = only.pkg.filter
      if (filter.trivial || filter.filterFreeBelow(rel.split('/'), only.inc)) {
        push(rel, Kind.Folded, only.pkg.table, name)
        return 0
      }
      push(rel, Kind.Dir, NO_SOURCE, name)
      if (holding++ === 0) holdFrom = mark
      let dropped: number
      try {
        dropped = walk(rel, dirs)
      } finally {
        holding--
      }
      if (dropped === 0) {
        truncate(mark)
        push(rel, Kind.Folded, only.pkg.table, name)
        release()
        return 0
      }
      if (paths.length === mark + 1) truncate(mark) // filters emptied it: no empty directory in the view
      release()
      return dropped
    }
    push(rel, Kind.Dir, NO_SOURCE, name)
    const dropped = walk(rel, dirs)
    if (dropped > 0 && paths.length === mark + 1) truncate(mark)
    release()
    return dropped
  }

  /** Several prefixes provide one path. Returns paths dropped below it. */
  function settle(rel: string, cands: Candidate[], name: string): number {
    const dirs = cands.filter((c) => c.type === EntryType.Dir)
    const files = cands.filter((c) => c.type !== EntryType.Dir)
    if (files.length === 0) return placeDir(rel, dirs, name)

    // Files with the same content form one group: the first is what gets linked, but
    // every copy lends the group its priority and its place in the merge order.
    const groups: Candidate[][] = []
    for (const f of files) {
      const group = groups.find((g) => compare(g[0]!.abs, f.abs))
      if (group) group.push(f)
      else groups.push([f])
    }
    if (dirs.length === 0 && groups.length === 1) {
      placeFile(rel, groups[0]![0]!, name)
      return 0
    }

    // Contenders: each distinct content, and the directories as one group (they merge with each other).
    interface Contender { files: Candidate | null; members: Candidate[] }
    const contenders: Contender[] = groups.map((g) => ({ files: g[0]!, members: g }))
    if (dirs.length > 0) contenders.push({ files: null, members: dirs })
    const top = Math.max(...cands.map((c) => c.pkg.priority))
    // Among the members at the top priority, a contender's earliest and latest place in the merge order.
    const orders = (c: Contender) => c.members.filter((m) => m.pkg.priority === top).map((m) => m.pkg.order)
    const tied = contenders.filter((c) => orders(c).length > 0)
    const earliest = (c: Contender) => Math.min(...orders(c))
    const latest = (c: Contender) => Math.max(...orders(c))
    let winner: Contender | null
    let resolution: Conflict['resolution']
    if (tied.length === 1) {
      winner = tied[0]!
      resolution = 'priority'
    } else if (opts.conflicts === 'first') {
      winner = tied.reduce((w, c) => (earliest(c) < earliest(w) ? c : w))
      resolution = 'first'
    } else if (opts.conflicts === 'last') {
      winner = tied.reduce((w, c) => (latest(c) > latest(w) ? c : w))
      resolution = 'last'
    } else {
      winner = null
      resolution = 'error'
      blocked = true
    }
    const listed = [...cands].sort((a, b) => a.pkg.order - b.pkg.order)
    conflicts.push({
      path: rel,
      sources: listed.map(describeSource),
      resolution,
      winner: winner === null ? null : winner.files ? winner.files.abs : dirs[0]!.abs,
    })
    if (winner === null) return 1
    if (winner.files) {
      placeFile(rel, winner.files, name)
      return 1
    }
    return placeDir(rel, dirs, name) + 1
  }

  const roots: Candidate[] = packages.map((pkg) => ({ pkg, type: EntryType.Dir, abs: pkg.path, inc: pkg.rootInclude }))
  walk('', roots)
  release()
  const n = paths.length
  return { paths, kinds: Array.from(kinds.subarray(0, n)), sources: Array.from(sources.subarray(0, n)), conflicts, warnings, excluded, quoted }
}

function describeSource(c: Candidate): ConflictSource {
  return {
    prefix: c.pkg.path,
    path: c.abs,
    kind: c.type === EntryType.Dir ? 'dir' : c.type === EntryType.Symlink ? 'symlink' : 'file',
    priority: c.pkg.priority,
  }
}

/**
 * Two non-directory entries are the same content when they are the same
 * inode, symlinks with the same target, or regular files with equal mode and
 * bytes (bytes compared only when the sizes match).
 */
export function sameContent(a: string, b: string): boolean {
  const sa = fs.lstatSync(fsPath(a))
  const sb = fs.lstatSync(fsPath(b))
  if (sa.dev === sb.dev && sa.ino === sb.ino) return true
  if (sa.isSymbolicLink() && sb.isSymbolicLink()) {
    return fs.readlinkSync(fsPath(a), 'buffer').equals(fs.readlinkSync(fsPath(b), 'buffer'))
  }
  if (!sa.isFile() || !sb.isFile()) return false
  if (sa.mode !== sb.mode || sa.size !== sb.size) return false
  return sameBytes(a, b, sa.size)
}

function sameBytes(a: string, b: string, size: number): boolean {
  const chunk = 1 << 16
  const fa = fs.openSync(fsPath(a), 'r')
  const fb = fs.openSync(fsPath(b), 'r')
  try {
    const ba = Buffer.allocUnsafe(chunk)
    const bb = Buffer.allocUnsafe(chunk)
    for (let pos = 0; pos < size; pos += chunk) {
      const na = fs.readSync(fa, ba, 0, chunk, pos)
      const nb = fs.readSync(fb, bb, 0, chunk, pos)
      if (na !== nb || !ba.subarray(0, na).equals(bb.subarray(0, nb))) return false
      if (na === 0) break
    }
    return true
  } finally {
    fs.closeSync(fa)
    fs.closeSync(fb)
  }
}
