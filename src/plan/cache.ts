/**
 * The scan cache (DESIGN §4.5): what the last writer saw in every directory
 * it walked, so that a regenerate where nothing changed need not read the
 * prefixes again. It plugs into the planner as a DirReader and is saved by
 * the writer under the lock.
 *
 * A listing is reused only when a fresh stat() of its directory matches the
 * remembered (device, inode, mtime, ctime), to the nanosecond: creating,
 * removing or renaming a name in a directory updates its mtime and ctime. The
 * stat is taken *before* the directory is read, so a change racing with the
 * read leaves a stat that will not match next time, never a stale listing
 * under a matching stat.
 *
 * The "racy git" rule: a directory whose mtime or ctime is less than
 * RACY_NS before the scan started (or in the future) is never stored. The
 * timestamps have a granularity (a clock tick; a second on some NFS servers),
 * so a second change within the tick of the listing we read would leave the
 * times unchanged. Two seconds covers the tick, not a clock skew between this
 * host and a file server larger than that (docs/benchmarks.md).
 *
 * The file is one compact blob written atomically (temporary file + rename):
 *
 *   viewctl-scan-cache <version> <sha256 of the body, hex>\n
 *   body: NUL-separated fields, per directory:
 *     abs-path, dev, ino, mtime-ns, ctime-ns, types, name_1 … name_n
 *
 * where `types` holds one digit (EntryType) per name, so its length is n.
 * NUL is the one byte no path or name can hold. The digest covers the body,
 * so a torn, truncated or otherwise damaged file is ignored as a whole: a
 * missing or corrupt cache only costs speed. Directories whose path or names
 * are not valid Unicode (escaped bytes, see fs.ts) are not cached.
 */
import crypto from 'node:crypto'
import fs from 'node:fs'
import { fsPath } from '../fs.js'
import { readDirListing, type DirListing, type DirReader, type EntryType } from './scan.js'

export interface ScanCache {
  readDir: DirReader
  /** Persist what was learned (called under the writer lock, store existing). Never throws. */
  save(): void
  /** What this run did, for tests and benchmarks. */
  readonly stats: ScanCacheStats
}

export interface ScanCacheStats {
  /** Directories remembered in the cache file when it was opened. */
  loaded: number
  /** Listings reused. */
  hits: number
  /** Directories read from the filesystem. */
  misses: number
  /** Directories read but too recently changed to be remembered. */
  racy: number
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
const VERSION = 1
/** Changes younger than this at scan time are "racy" and not remembered. */
export const RACY_NS = 2_000_000_000n
const FIELDS_PER_DIR = 6
const NOT_UNICODE = /[\uD800-\uDFFF]/

interface Remembered {
  /** dev:ino:mtimeNs:ctimeNs */
  key: string
  names: string[]
  types: string
}

export function openScanCache(file: string, opts: ScanCacheOptions = {}): ScanCache {
  const scanStart = opts.now ? opts.now() : BigInt(Date.now()) * 1_000_000n
  const stats: ScanCacheStats = { loaded: 0, hits: 0, misses: 0, racy: 0, saved: false, rejected: null }
  const { dirs: previous, rejected } = loadCacheFile(file)
  stats.loaded = previous.size
  stats.rejected = rejected
  /** What this run saw and may keep, in walk order. */
  const seen = new Map<string, Remembered>()

  const readDir: DirReader = (abs) => {
    let st: fs.BigIntStats | undefined
    try {
      st = fs.statSync(fsPath(abs), { bigint: true })
    } catch {
      st = undefined // let the real read report the error the way it always does
    }
    if (st === undefined || !st.isDirectory()) return readDirListing(abs)
    const key = `${st.dev}:${st.ino}:${st.mtimeNs}:${st.ctimeNs}`
    const old = previous.get(abs)
    if (old !== undefined && old.key === key) {
      stats.hits++
      seen.set(abs, old)
      return { names: old.names, types: decodeTypes(old.types) }
    }
    stats.misses++
    const listing = readDirListing(abs)
    const newest = st.mtimeNs > st.ctimeNs ? st.mtimeNs : st.ctimeNs
    if (newest > scanStart - RACY_NS) {
      stats.racy++
    } else {
      const remembered = remember(abs, key, listing)
      if (remembered) seen.set(abs, remembered)
    }
    return listing
  }

  const save = () => {
    if (stats.misses === 0 && stats.rejected === null && seen.size === previous.size) return // nothing new to say
    try {
      writeCacheFile(file, seen)
      stats.saved = true
    } catch {
      // the cache is an optimization: a full disk or a read-only store must not fail the run
    }
  }

  return { readDir, save, stats }
}

function remember(abs: string, key: string, listing: DirListing): Remembered | null {
  if (NOT_UNICODE.test(abs)) return null
  const { names, types } = listing
  for (const name of names) if (NOT_UNICODE.test(name)) return null
  let digits = ''
  for (const t of types) digits += String.fromCharCode(48 + t)
  return { key, names, types: digits }
}

function decodeTypes(digits: string): EntryType[] {
  const types = new Array<EntryType>(digits.length)
  for (let i = 0; i < digits.length; i++) types[i] = (digits.charCodeAt(i) - 48) as EntryType
  return types
}

function loadCacheFile(file: string): { dirs: Map<string, Remembered>; rejected: string | null } {
  const dirs = new Map<string, Remembered>()
  let buf: Buffer
  try {
    buf = fs.readFileSync(file)
  } catch (err) {
    return { dirs, rejected: (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'missing' : 'unreadable' }
  }
  const nl = buf.indexOf(10)
  const header = nl < 0 ? [] : buf.toString('latin1', 0, nl).split(' ')
  if (header.length !== 3 || header[0] !== MAGIC) return { dirs, rejected: 'not a scan cache' }
  if (header[1] !== String(VERSION)) return { dirs, rejected: `version ${header[1]}` }
  const body = buf.subarray(nl + 1)
  if (crypto.createHash('sha256').update(body).digest('hex') !== header[2]) return { dirs, rejected: 'checksum mismatch' }
  if (body.length === 0) return { dirs, rejected: null }
  const fields = body.toString('utf8').split('\0')
  let i = 0
  while (i < fields.length) {
    if (i + FIELDS_PER_DIR > fields.length) return { dirs: new Map(), rejected: 'truncated record' }
    const abs = fields[i]!
    const key = `${fields[i + 1]}:${fields[i + 2]}:${fields[i + 3]}:${fields[i + 4]}`
    const types = fields[i + 5]!
    const start = i + FIELDS_PER_DIR
    const end = start + types.length
    if (end > fields.length || !/^[0-3]*$/.test(types)) return { dirs: new Map(), rejected: 'malformed record' }
    dirs.set(abs, { key, names: fields.slice(start, end), types })
    i = end
  }
  return { dirs, rejected: null }
}

function writeCacheFile(file: string, dirs: Map<string, Remembered>): void {
  const fields: string[] = []
  for (const [abs, d] of dirs) {
    fields.push(abs, ...d.key.split(':'), d.types)
    for (const name of d.names) fields.push(name)
  }
  const body = Buffer.from(fields.join('\0'), 'utf8')
  const digest = crypto.createHash('sha256').update(body).digest('hex')
  // One writer at a time (the lock), so a fixed temporary name: a killed writer's leftover is simply overwritten.
  const tmp = `${file}.tmp`
  try {
    const fd = fs.openSync(tmp, 'w', 0o644)
    try {
      fs.writeSync(fd, `${MAGIC} ${VERSION} ${digest}\n`)
      fs.writeSync(fd, body)
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
