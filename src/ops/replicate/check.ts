/**
 * What the receiving host checks before a received tree becomes a
 * generation. A symlink view arrives as its generation files: meta.json
 * names the hash the sender announced and the plan hashes to it, so the
 * tree made from that plan is the generation (checkGenerationFiles). A
 * copy view arrives as a tree rsync filled (checkReceivedTree): the tree
 * holds exactly what its `.viewctl/plan.tsv` says (every entry, of the
 * right type, nothing else), and its `meta.json` names the hash the sender
 * announced. The walk reads each
 * directory once with its file types and each link once; it flushes every
 * directory it reads (and for a copy view every file), so that the rename
 * that follows publishes names that are on disk.
 *
 * Separately, for symlink views: do the links resolve on this host, that is,
 * are the prefixes there, at the same paths? Answered from a listing of
 * each source directory rather than a stat of each link.
 */
import fs from 'node:fs'
import path from 'node:path'
import { decodeName, fsPath, readTextNoFollow } from '../../fs.js'
import { hashPlan, parsePlanText, type ParsedPlan } from '../../plan/hash.js'
import { EntryType, readDirListing, type DirListing } from '../../plan/scan.js'
import { Kind, NO_SOURCE, PLAN_FORMAT, type PlanOptions } from '../../plan/types.js'
import { readMeta, type GenerationMeta } from '../../store/journal/meta.js'
import { LEASE_FILE, MANIFEST_COPY, META_DIR, META_FILE, PLAN_FILE, SOURCES_FILE } from '../../store/layout.js'

export interface ReceivedProblem {
  path: string
  problem: 'missing' | 'extra' | 'wrong-type' | 'wrong-target' | 'meta'
  detail: string
}

export interface ReceivedTree {
  meta: GenerationMeta | null
  plan: ParsedPlan | null
  problems: ReceivedProblem[]
}

/** Past this many, problems are counted, not listed. */
const PROBLEM_LIMIT = 200

/** What viewctl writes in a generation's .viewctl/ (sources.tsv: a copy view's source identities, for sharing). */
const META_FILES = new Set([MANIFEST_COPY, PLAN_FILE, META_FILE, LEASE_FILE, SOURCES_FILE])

/**
 * Check the tree in `dir` (a staging directory) as the generation `hash`,
 * to be renamed to a place whose real path is `finalReal` (relative links
 * are computed from there).
 */
export function checkReceivedTree(dir: string, finalReal: string, hash: string): ReceivedTree {
  const problems = new Problems()
  const meta = readMeta(dir)
  if (meta === null) {
    problems.add({ path: `${META_DIR}/${META_FILE}`, problem: 'meta', detail: 'missing or unreadable: the transfer did not complete' })
    return { meta, plan: null, problems: problems.list }
  }
  let text: string
  try {
    // rsync filled staging: a symlink or a FIFO put there is refused, never followed or waited on
    text = readTextNoFollow(path.join(dir, META_DIR, PLAN_FILE))
  } catch (err) {
    problems.add({ path: `${META_DIR}/${PLAN_FILE}`, problem: 'meta', detail: `cannot be read: ${(err as Error).message}` })
    return { meta, plan: null, problems: problems.list }
  }
  const plan = checkFiles(meta, text, hash, problems)
  if (plan !== null && problems.list.length === 0) walk(dir, finalReal, plan, meta, problems)
  return { meta, plan, problems: problems.list }
}

/**
 * A symlink view's generation files as the sender sent them (action
 * `build`): its meta.json names the hash announced, and its plan, which the
 * receiver makes the tree from, hashes to that name.
 */
export function checkGenerationFiles(metaText: string, planText: string, hash: string): ReceivedTree {
  const problems = new Problems()
  let meta: GenerationMeta | null = null
  try {
    meta = JSON.parse(metaText) as GenerationMeta
  } catch (err) {
    problems.add({ path: `${META_DIR}/${META_FILE}`, problem: 'meta', detail: `cannot be parsed: ${(err as Error).message}` })
  }
  if (meta === null || typeof meta !== 'object' || typeof meta.options !== 'object' || meta.options === null || !Array.isArray(meta.prefixes) || typeof meta.counts !== 'object' || meta.counts === null) {
    if (problems.list.length === 0) problems.add({ path: `${META_DIR}/${META_FILE}`, problem: 'meta', detail: 'is not a generation\'s meta.json' })
    return { meta: null, plan: null, problems: problems.list }
  }
  if (meta.options.link !== 'symlink') problems.add({ path: `${META_DIR}/${META_FILE}`, problem: 'meta', detail: `a ${String(meta.options.link)} view's tree cannot be made from its plan` })
  const plan = checkFiles(meta, planText, hash, problems)
  return { meta, plan, problems: problems.list }
}

/** meta.json and plan.tsv agree with each other and with the hash; the plan, parsed, or null when it cannot be. */
function checkFiles(meta: GenerationMeta, text: string, hash: string, problems: Problems): ParsedPlan | null {
  if (meta.hash !== hash) problems.add({ path: `${META_DIR}/${META_FILE}`, problem: 'meta', detail: `names hash ${meta.hash}, the sender announced ${hash}` })
  if (meta.format !== PLAN_FORMAT) problems.add({ path: `${META_DIR}/${META_FILE}`, problem: 'meta', detail: `plan format ${meta.format}, this viewctl reads format ${PLAN_FORMAT}` })
  let plan: ParsedPlan
  try {
    plan = parsePlanText(text)
  } catch (err) {
    problems.add({ path: `${META_DIR}/${PLAN_FILE}`, problem: 'meta', detail: `cannot be read: ${(err as Error).message}` })
    return null
  }
  // a symlink view's hash covers its plan and options only: recompute it (hardlink and copy views also hash source identity, which stays on the sending host)
  if (meta.options.link === 'symlink' && hashPlan(meta.options as PlanOptions, [text], '-') !== hash) {
    problems.add({ path: `${META_DIR}/${PLAN_FILE}`, problem: 'meta', detail: `does not hash to ${hash}` })
  }
  if (meta.counts.entries !== plan.paths.length) problems.add({ path: `${META_DIR}/${META_FILE}`, problem: 'meta', detail: `counts ${meta.counts.entries} entries, the plan lists ${plan.paths.length}` })
  if (meta.prefixes.join('\0') !== plan.prefixes.join('\0')) problems.add({ path: `${META_DIR}/${META_FILE}`, problem: 'meta', detail: 'lists other prefixes than the plan' })
  return plan
}

class Problems {
  readonly list: ReceivedProblem[] = []
  more = 0
  add(p: ReceivedProblem): void {
    if (this.list.length < PROBLEM_LIMIT) this.list.push(p)
    else this.more++
  }
}

interface Expected {
  kind: number
  source: number
}

function walk(dir: string, finalReal: string, plan: ParsedPlan, meta: GenerationMeta, problems: Problems): void {
  const mode = meta.options.link
  const relative = mode === 'symlink' && meta.options.relative
  // each planned directory's children, by name (the plan is sorted depth first, so parents come first)
  const children = new Map<string, Map<string, Expected>>([['', new Map()]])
  for (let i = 0; i < plan.paths.length; i++) {
    const rel = plan.paths[i]!
    const slash = rel.lastIndexOf('/')
    const parent = slash === -1 ? '' : rel.slice(0, slash)
    const siblings = children.get(parent)
    if (siblings === undefined) {
      problems.add({ path: rel, problem: 'meta', detail: 'the plan lists it without its directory' })
      continue
    }
    siblings.set(slash === -1 ? rel : rel.slice(slash + 1), { kind: plan.kinds[i]!, source: plan.sources[i]! })
    if (plan.kinds[i] === Kind.Dir) children.set(rel, new Map())
  }
  for (const [rel, expected] of children) {
    const abs = rel === '' ? dir : `${dir}/${rel}`
    let listing: DirListing
    try {
      listing = readDirListing(abs)
    } catch (err) {
      problems.add({ path: rel, problem: 'missing', detail: `cannot be listed (${(err as NodeJS.ErrnoException).code ?? 'error'})` })
      continue
    }
    const seen = new Set<string>()
    for (let i = 0; i < listing.names.length; i++) {
      const name = listing.names[i]!
      const type = listing.types[i]!
      const child = rel === '' ? name : `${rel}/${name}`
      seen.add(name)
      if (rel === '' && name === META_DIR) {
        checkMetaDir(`${dir}/${META_DIR}`, type, problems)
        continue
      }
      const want = expected.get(name)
      if (want === undefined) {
        problems.add({ path: child, problem: 'extra', detail: 'in the tree but not in the plan' })
        continue
      }
      checkEntry(`${dir}/${child}`, child, type, want, plan, mode, relative, finalReal, problems)
    }
    for (const name of expected.keys()) {
      if (!seen.has(name)) problems.add({ path: rel === '' ? name : `${rel}/${name}`, problem: 'missing', detail: 'planned but not in the tree' })
    }
    if (!seen.has(META_DIR) && rel === '') problems.add({ path: META_DIR, problem: 'missing', detail: 'the generation files are missing' })
    flush(abs)
  }
}

function checkEntry(abs: string, rel: string, type: EntryType, want: Expected, plan: ParsedPlan, mode: string, relative: boolean, finalReal: string, problems: Problems): void {
  if (want.kind === Kind.Dir) {
    if (type !== EntryType.Dir) problems.add({ path: rel, problem: 'wrong-type', detail: 'should be a directory' })
    return
  }
  if (mode === 'copy' && want.kind === Kind.File) {
    if (type !== EntryType.File) problems.add({ path: rel, problem: 'wrong-type', detail: 'should be a regular file (a copy)' })
    else flush(abs)
    return
  }
  if (type !== EntryType.Symlink) {
    problems.add({ path: rel, problem: 'wrong-type', detail: 'should be a symlink' })
    return
  }
  // a copy view copies a symlink the prefix ships as it stands: its target is the prefix's business
  if (mode !== 'symlink' || want.source === NO_SOURCE) return
  const source = `${plan.prefixes[want.source]}/${rel}`
  const planned = relative ? path.relative(path.dirname(path.join(finalReal, rel)), source) : source
  const actual = decodeName(fs.readlinkSync(fsPath(abs), 'buffer'))
  if (actual !== planned) problems.add({ path: rel, problem: 'wrong-target', detail: `points to ${actual}, planned ${planned}` })
}

function checkMetaDir(abs: string, type: EntryType, problems: Problems): void {
  if (type !== EntryType.Dir) {
    problems.add({ path: META_DIR, problem: 'wrong-type', detail: 'should be a directory' })
    return
  }
  for (const name of readDirListing(abs).names) {
    if (!META_FILES.has(name)) problems.add({ path: `${META_DIR}/${name}`, problem: 'extra', detail: 'not a file viewctl writes there' })
    else flush(`${abs}/${name}`)
  }
  flush(abs)
}

/** fsync a file or directory; a filesystem that cannot is taken at its word. */
function flush(abs: string): void {
  let fd: number
  try {
    fd = fs.openSync(fsPath(abs), fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW)
  } catch {
    return
  }
  try {
    fs.fsyncSync(fd)
  } catch {
    // EINVAL: no fsync on this kind of file here
  } finally {
    fs.closeSync(fd)
  }
}

/** Links of a symlink view that do not resolve on this host, grouped by what is missing. */
export interface Unresolved {
  /** Prefixes that are not there at all. */
  prefixes: string[]
  /** Entries missing from prefixes that are there (a different build of the package). */
  entries: string[]
  /** How many links do not resolve. */
  count: number
}

/**
 * Which planned links would dangle here: their source is not in its
 * directory. A source that is itself a symlink the prefix ships counts as
 * there, dangling or not (verify makes the same exception: where it leads
 * is the prefix's business).
 */
export function unresolvedLinks(plan: ParsedPlan): Unresolved {
  const missingPrefixes = new Set<string>()
  for (const p of plan.prefixes) if (!isDirectory(p)) missingPrefixes.add(p)
  // the entries of present prefixes, grouped by the directory that holds their source
  const byDir = new Map<string, string[]>()
  let count = 0
  for (let i = 0; i < plan.paths.length; i++) {
    const src = plan.sources[i]!
    if (plan.kinds[i] === Kind.Dir || src === NO_SOURCE) continue
    const prefix = plan.prefixes[src]!
    if (missingPrefixes.has(prefix)) {
      count++
      continue
    }
    const source = `${prefix}/${plan.paths[i]}`
    const slash = source.lastIndexOf('/')
    const d = source.slice(0, slash)
    let names = byDir.get(d)
    if (names === undefined) byDir.set(d, (names = []))
    names.push(source.slice(slash + 1))
  }
  const entries: string[] = []
  for (const [d, names] of byDir) {
    let present: Set<string>
    try {
      present = new Set(listNames(d))
    } catch {
      present = new Set()
    }
    for (const name of names) if (!present.has(name)) entries.push(`${d}/${name}`)
  }
  count += entries.length
  return { prefixes: [...missingPrefixes].sort(), entries, count }
}

/** A directory's names, as plan paths spell them; without file types, which this check does not need. */
function listNames(dir: string): string[] {
  const names = fs.readdirSync(fsPath(dir))
  return names.some((n) => n.includes('\uFFFD')) ? readDirListing(dir).names : names
}

function isDirectory(p: string): boolean {
  try {
    return fs.statSync(fsPath(p)).isDirectory()
  } catch {
    return false
  }
}
