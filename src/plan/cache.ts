/**
 * The scan cache (DESIGN §4.5): what the last writer saw in every directory
 * it walked, so that a regenerate where nothing changed need not read the
 * prefixes again. It plugs into the planner as a DirReader and a PlanMemo,
 * and is saved by the writer under the lock.
 *
 * Listings. A listing is reused only when a fresh stat() of its directory
 * matches the remembered (device, inode, mtime, ctime), to the nanosecond:
 * creating, removing or renaming a name in a directory updates its mtime and
 * ctime. The stat is taken *before* the directory is read, so a change racing
 * with the read leaves a stat that will not match next time, never a stale
 * listing under a matching stat.
 *
 * The "racy git" rule: a directory whose mtime or ctime is less than RACY_NS
 * before the scan started (or in the future) is never stored. Timestamps have
 * a granularity (a clock tick; a second on some NFS servers), so a second
 * change within the tick of the listing we read would leave the times as they
 * were. Two seconds covers the tick, not a clock skew between this host and a
 * file server larger than that (docs/how-it-works.md, "The scan cache: what
 * it trusts").
 *
 * The plan memo. When every directory a plan was made from is stored, the
 * cache also remembers that plan by the digest of its inputs (plan/index.ts):
 * the hash and what the plan text does not hold (excluded count, warnings).
 * If the inputs are the same and a stat of every one of those directories
 * still matches, the planner reads the plan text back from the generation
 * that holds it (`<hash>/.viewctl/plan.tsv`) and checks that it hashes to the
 * same hash instead of walking: a no-op regenerate reads no directory.
 *
 * The file is written atomically (temporary file + rename), in two parts
 * with a digest each, so that a no-op, which needs only the directories'
 * stats and the memo, neither hashes nor decodes the names:
 *
 *   viewctl-scan-cache <version> <index bytes> <sha256 of index> <sha256 of listings>\n
 *   index: UTF-8 fields, each ended by a NUL
 *     memo (JSON, or empty), document key (or empty), document (JSON, or empty), n,
 *     n times: abs-path, dev, ino, mtime-ns, ctime-ns, name count
 *   listings: for every directory, in the same order: its types, then its names
 *
 * where `types` holds one digit (EntryType) per name. The digests guard
 * against a torn or damaged file, not against someone who may write the
 * store anyway. NUL is the one byte no path or name can hold. The index is checked when the file is opened; the
 * listings the first time one of them would be used, and if they do not
 * match then, no listing is trusted (the directories are read) and the file
 * is rewritten. So a torn, truncated or otherwise damaged file is never
 * believed: a missing or corrupt cache only costs speed.
 * Directories whose path or names are not valid Unicode (escaped bytes, see
 * fs.ts) are not stored.
 *
 * The manifest's document. The cache also keeps the validated document of the
 * manifest it was last used with, under its key (the manifest's text and the
 * code that parsed it: `documentKey` in manifest/load.ts), so that a no-op
 * regenerate neither parses YAML nor validates. The key is compared
 * whole; a document that does not survive JSON unchanged is not kept.
 */
import { createHash } from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import { isDeepStrictEqual } from 'node:util'
import { OPEN, createFlags, fsPath, openNoFollow, readFileNoFollow } from '../fs.js'
import { readDirListing, type DirListing, type DirReader, type EntryType } from './scan.js'
import { META_DIR, PLAN_FILE } from './types.js'

/** What the memo keeps of a plan; the rest is in the plan text of generation `hash`. */
export interface RememberedPlan {
  /** The plan's hash: what is read back is used only if it hashes to this again. */
  hash: string
  /** Entries in the plan (what a no-op reports without reading the plan text). */
  entries: number
  excluded: number
  warnings: string[]
}

export interface RecalledPlan extends RememberedPlan {
  /** The plan text, as hashed. */
  text: string
}

/** Remembers the last plan and recalls it while nothing it was made from has changed. */
export interface PlanMemo {
  /** The plan remembered under `key`, if every directory it was made from is unchanged; its text is not read. */
  recallSummary(key: string): RememberedPlan | null
  /** The same, with the plan text read back from its generation. */
  recall(key: string): RecalledPlan | null
  remember(key: string, plan: RememberedPlan): void
}

export interface ScanCache extends PlanMemo {
  readDir: DirReader
  /** The manifest document remembered under exactly `key` (a fresh copy), or undefined (manifest/load.ts, DocumentMemory). */
  recallDocument(key: string): unknown
  /**
   * Keep `document` under `key` from the next save(); a key or document that
   * would not read back the same is not kept. Not part of `dirty`: a no-op
   * whose manifest changed only in its comments is still a no-op, and writes
   * nothing; the next run that saves the cache keeps the new document.
   */
  rememberDocument(key: string, document: unknown): void
  /** Persist what was learned (called under the writer lock, store existing). Never throws. */
  save(): void
  /** Whether save() has anything to write about the prefixes (listings, the plan memo). */
  readonly dirty: boolean
  /**
   * Whether a walk from these prefix roots may find something the last scan
   * did not: there was no last scan, a root was not walked then (or one
   * walked then is no longer given), or a directory of the last scan stats
   * differently now or is gone. A stat of each directory, no listing.
   */
  changedSinceLastScan(roots: readonly string[]): boolean
  /** What this run did, for tests and benchmarks. */
  readonly stats: ScanCacheStats
}

export interface ScanCacheStats {
  /** Directories remembered in the cache file when it was opened. */
  loaded: number
  /** Listings reused (a recalled plan counts every directory it checked). */
  hits: number
  /** Directories read from the filesystem. */
  misses: number
  /** Directories read but too recently changed (or not valid Unicode) to be remembered. */
  racy: number
  /** The plan memo: recalled, stale (something changed), or not consulted/none. */
  memo: 'recalled' | 'stale' | 'none'
  /** Whether save() wrote the file (it is not rewritten when nothing changed). */
  saved: boolean
  /** Why the cache file was not used, when it was not. */
  rejected: string | null
}

export interface ScanCacheOptions {
  /** The scan time in nanoseconds since the epoch (tests move it). */
  now?: () => bigint
}

const MAGIC = 'viewctl-scan-cache'
const VERSION = 7
/** Changes younger than this at scan time are "racy" and not remembered. */
export const RACY_NS = 2_000_000_000n
const NOT_UNICODE = /[\uD800-\uDFFF]/

interface StoredDir {
  /** dev:ino:mtimeNs:ctimeNs */
  key: string
  /** How many names it holds. */
  count: number
  /** Its listing: given for a directory read in this run, found in the file's listings on first use otherwise. */
  listing: StoredListing | null
  /** Where its types field is in the file's listings (split into fields), or -1. */
  first: number
}

interface StoredListing {
  types: string
  names: string[]
}

interface StoredMemo extends RememberedPlan {
  key: string
}

interface StoredDocument {
  key: string
  /** The document as JSON. */
  json: string
}

export function openScanCache(file: string, opts: ScanCacheOptions = {}): ScanCache {
  const scanStart = opts.now ? opts.now() : BigInt(Date.now()) * 1_000_000n
  const stats: ScanCacheStats = { loaded: 0, hits: 0, misses: 0, racy: 0, memo: 'none', saved: false, rejected: null }
  const loaded = loadCacheFile(file)
  const previous = loaded.dirs
  stats.loaded = previous.size
  stats.rejected = loaded.rejected
  /** What this run saw and may keep, in walk order. */
  const seen = new Map<string, StoredDir>()
  let memo: StoredMemo | null = null
  let learned = false
  let document = loaded.document

  const listingOf = (d: StoredDir): StoredListing | null => {
    if (d.listing === null && d.first >= 0) {
      const fields = loaded.listings()
      if (fields === null) stats.rejected ??= 'listings do not match their digest'
      const types = fields?.[d.first]
      // only a writer bug could get a wrong count past the digest; then this listing is not trusted
      if (types !== undefined && types.length === d.count && /^[0-3]*$/.test(types)) d.listing = { types, names: fields!.slice(d.first + 1, d.first + 1 + d.count) }
      d.first = -1 // looked once
    }
    return d.listing
  }

  const readDir: DirReader = (abs) => {
    const st = statDir(abs)
    if (st === null) return readDirListing(abs) // let the real read report the error the way it always does
    const key = `${st.dev}:${st.ino}:${st.mtimeNs}:${st.ctimeNs}`
    const old = previous.get(abs)
    const stored = old !== undefined && old.key === key ? listingOf(old) : null
    if (stored !== null) {
      stats.hits++
      seen.set(abs, old!)
      return { names: stored.names, types: decodeTypes(stored.types) }
    }
    stats.misses++
    learned = true
    const listing = readDirListing(abs)
    const newest = st.mtimeNs > st.ctimeNs ? st.mtimeNs : st.ctimeNs
    const fresh = newest > scanStart - RACY_NS ? null : storable(key, listing, abs)
    if (fresh === null) stats.racy++
    else seen.set(abs, fresh)
    return listing
  }

  /** Whether a directory of the last scan stats differently now, once looked at (recallSummary looks first when it can). */
  let changed: boolean | null = null
  const anyChanged = (): boolean => {
    for (const [abs, d] of previous) {
      const st = statDir(abs)
      if (st === null || `${st.dev}:${st.ino}:${st.mtimeNs}:${st.ctimeNs}` !== d.key) return true
    }
    return false
  }

  let summary: { key: string; plan: StoredMemo | null } | null = null
  const recallSummary = (key: string): RememberedPlan | null => {
    if (summary?.key === key) return summary.plan
    const m = loaded.memo
    let plan: StoredMemo | null = m !== null && m.key === key ? m : null
    if (plan !== null) {
      changed = anyChanged()
      if (changed) {
        stats.memo = 'stale'
        plan = null
      }
    }
    if (plan !== null) {
      for (const [abs, d] of previous) seen.set(abs, d)
      stats.hits += previous.size
      stats.memo = 'recalled'
      memo = plan
    }
    summary = { key, plan }
    return plan === null ? null : { hash: plan.hash, entries: plan.entries, excluded: plan.excluded, warnings: plan.warnings }
  }

  const recall = (key: string): RecalledPlan | null => {
    const m = recallSummary(key)
    if (m === null) return null
    let text: string
    try {
      text = readFileNoFollow(path.join(path.dirname(file), m.hash, META_DIR, PLAN_FILE)).toString('utf8')
    } catch {
      stats.memo = 'stale' // that generation was collected; the walk that follows counts its own hits
      stats.hits -= previous.size
      return null
    }
    return { ...m, text }
  }

  const remember = (key: string, plan: RememberedPlan) => {
    memo = { key, ...plan }
    learned = true
  }

  const recallDocument = (key: string): unknown => {
    if (document === null || document.key !== key) return undefined
    try {
      return JSON.parse(document.json) as unknown
    } catch {
      return undefined // the index's digest matched, so only a writer bug gets here: parse the manifest
    }
  }
  const rememberDocument = (key: string, value: unknown) => {
    if (document?.key === key || key.includes('\0')) return
    const json = JSON.stringify(value)
    if (json !== undefined && isDeepStrictEqual(JSON.parse(json), value)) document = { key, json }
  }

  const isDirty = () => learned || stats.rejected !== null || seen.size !== previous.size
  const save = () => {
    if (!isDirty() && document === loaded.document) return // nothing new to say
    // A memo is only as good as the listings behind it: all of them must be stored.
    const keepMemo = memo !== null && stats.racy === 0 ? memo : null
    try {
      writeCacheFile(file, keepMemo, document, seen, listingOf)
      stats.saved = true
    } catch {
      // the cache is an optimization: a full disk or a read-only store must not fail the run
    }
  }

  const changedSinceLastScan = (roots: readonly string[]): boolean => {
    if (previous.size === 0) return true
    const given = new Set(roots)
    for (const root of given) if (!previous.has(root)) return true
    // the last scan's roots: its directories whose parent it did not list
    for (const abs of previous.keys()) if (!given.has(abs) && !previous.has(path.dirname(abs))) return true
    changed ??= anyChanged()
    return changed
  }

  return {
    readDir,
    changedSinceLastScan,
    recallSummary,
    recall,
    remember,
    recallDocument,
    rememberDocument,
    save,
    stats,
    get dirty() {
      return isDirty()
    },
  }
}

function statDir(abs: string): fs.BigIntStats | null {
  try {
    const st = fs.statSync(fsPath(abs), { bigint: true })
    return st.isDirectory() ? st : null
  } catch {
    return null
  }
}

function storable(key: string, listing: DirListing, abs: string): StoredDir | null {
  if (NOT_UNICODE.test(abs)) return null
  // names that are not valid Unicode are found when the listing is written (one test of the joined names)
  return { key, count: listing.names.length, listing: { types: listing.types.join(''), names: listing.names }, first: -1 }
}

function decodeTypes(digits: string): EntryType[] {
  const types = new Array<EntryType>(digits.length)
  for (let i = 0; i < digits.length; i++) types[i] = (digits.charCodeAt(i) - 48) as EntryType
  return types
}

interface LoadedCache {
  memo: StoredMemo | null
  document: StoredDocument | null
  dirs: Map<string, StoredDir>
  /** The listings split into fields, checked and split on first use; null if they do not match their digest or add up. */
  listings: () => string[] | null
  rejected: string | null
}

function loadCacheFile(file: string): LoadedCache {
  const empty = (rejected: string | null): LoadedCache => ({ memo: null, document: null, dirs: new Map(), listings: () => null, rejected })
  // The header and the index only: the listings, most of the file, are read if a listing is used.
  let buf: Buffer
  try {
    buf = readHead(file)
  } catch (err) {
    return empty((err as NodeJS.ErrnoException).code === 'ENOENT' ? 'missing' : 'unreadable')
  }
  const nl = buf.indexOf(10)
  const header = nl < 0 ? [] : buf.toString('latin1', 0, nl).split(' ')
  if (header[0] !== MAGIC) return empty('not a scan cache')
  if (header[1] !== String(VERSION)) return empty(`version ${header[1]}`)
  if (header.length !== 5) return empty('malformed header')
  const indexBytes = Number(header[2])
  if (!Number.isSafeInteger(indexBytes) || indexBytes < 0) return empty('malformed header')
  if (nl + 1 + indexBytes > buf.length) {
    try {
      buf = readHead(file, nl + 1 + indexBytes)
    } catch {
      return empty('unreadable')
    }
    if (nl + 1 + indexBytes > buf.length) return empty('truncated')
  }
  const index = buf.subarray(nl + 1, nl + 1 + indexBytes)
  if (sha256(index) !== header[3]) return empty('index does not match its digest')
  const text = index.toString('utf8')
  let at = 0
  const field = (): string | null => {
    const end = text.indexOf('\0', at)
    if (end < 0) return null
    const value = text.slice(at, end)
    at = end + 1
    return value
  }
  const memoText = field()
  const documentKey = field()
  const documentJson = field()
  const count = Number(field())
  if (memoText === null || documentKey === null || documentJson === null || !Number.isInteger(count) || count < 0) return empty('malformed header')
  const document = documentKey === '' ? null : { key: documentKey, json: documentJson }
  let memo: StoredMemo | null = null
  if (memoText !== '') {
    try {
      memo = JSON.parse(memoText) as StoredMemo
    } catch {
      return empty('malformed memo')
    }
  }
  const dirs = new Map<string, StoredDir>()
  let first = 0
  for (let d = 0; d < count; d++) {
    const f = [field(), field(), field(), field(), field(), field()]
    if (f.some((x) => x === null)) return empty('truncated record')
    const names = Number(f[5])
    if (!Number.isSafeInteger(names) || names < 0) return empty('malformed record')
    dirs.set(f[0]!, { key: `${f[1]}:${f[2]}:${f[3]}:${f[4]}`, count: names, listing: null, first })
    first += 1 + names
  }
  if (at !== text.length) return empty('malformed record')
  const total = first
  let listings: string[] | null | undefined
  const split = (): string[] | null => {
    if (listings !== undefined) return listings
    listings = null
    let whole: Buffer
    try {
      whole = readFileNoFollow(file)
    } catch {
      return listings
    }
    // whatever file is there now (another writer may have replaced it), its listings must be the ones this index was written with
    const body = whole.subarray(nl + 1 + indexBytes)
    if (sha256(body) !== header[4]) return listings
    const all = body.toString('utf8')
    if (total === 0 ? all !== '' : all.charCodeAt(all.length - 1) !== 0) return listings
    const fields = total === 0 ? [] : all.slice(0, -1).split('\0')
    listings = fields.length === total ? fields : null
    return listings
  }
  return { memo, document, dirs, listings: split, rejected: null }
}

/** The first `bytes` bytes of `file` (64 KiB, a typical index, by default), or all of it if shorter. */
function readHead(file: string, bytes = 65536): Buffer {
  // never through a symlink, never blocking on a FIFO (the store may be one others write: DESIGN §13)
  const fd = openNoFollow(file, OPEN.O_RDONLY | OPEN.O_NONBLOCK)
  try {
    if (!fs.fstatSync(fd).isFile()) throw Object.assign(new Error(`${file} is not a regular file`), { code: 'EINVAL' })
    const buf = Buffer.allocUnsafe(bytes)
    let n = 0
    while (n < bytes) {
      const got = fs.readSync(fd, buf, n, bytes - n, n)
      if (got === 0) break
      n += got
    }
    return buf.subarray(0, n)
  } finally {
    fs.closeSync(fd)
  }
}

const sha256 = (data: Buffer): string => createHash('sha256').update(data).digest('hex')

function writeCacheFile(file: string, memo: StoredMemo | null, document: StoredDocument | null, seen: Map<string, StoredDir>, listingOf: (d: StoredDir) => StoredListing | null): void {
  const dirs: Array<[string, StoredDir, StoredListing, string]> = []
  for (const [abs, d] of seen) {
    const listing = listingOf(d)
    const names = listing?.names.join('\0')
    if (names !== undefined && !NOT_UNICODE.test(names)) dirs.push([abs, d, listing!, names])
  }
  if (dirs.length !== seen.size) memo = null // a listing it was made from is missing
  const fields: string[] = [memo === null ? '' : JSON.stringify(memo), document?.key ?? '', document?.json ?? '', String(dirs.length)]
  for (const [abs, d, listing] of dirs) fields.push(abs, ...d.key.split(':'), String(listing.names.length))
  const index = Buffer.from(`${fields.join('\0')}\0`, 'utf8')
  const parts: string[] = []
  for (const [, , listing, names] of dirs) parts.push(listing.names.length ? `${listing.types}\0${names}` : listing.types)
  const listings = Buffer.from(parts.length ? `${parts.join('\0')}\0` : '', 'utf8')
  // A new name made with O_EXCL (and never through a symlink): whatever a member of the group put in the store
  // under a name of its choosing is not written through. A killed writer's leftover is cleared by the next writer.
  const tmp = `${file}.tmp-${process.pid}-${Math.random().toString(16).slice(2, 10)}`
  try {
    const fd = openNoFollow(tmp, createFlags(true))
    try {
      fs.writeSync(fd, `${MAGIC} ${VERSION} ${index.length} ${sha256(index)} ${sha256(listings)}\n`)
      fs.writeSync(fd, index)
      fs.writeSync(fd, listings)
    } finally {
      fs.closeSync(fd)
    }
    // No fsync: after a power cut the file is old, empty or torn, and the digest rejects the last two.
    fs.renameSync(tmp, file)
  } catch (err) {
    try {
      fs.unlinkSync(tmp)
    } catch {
      // not created
    }
    throw err
  }
}
