/**
 * The fs seam. Every filesystem write that matters for safety (building a
 * generation, publishing it, recording history, collecting garbage) goes
 * through this module, so that tests can make the N-th call of one kind fail
 * with a chosen errno and check that the view did not change.
 *
 * Faults are armed with `armFaults("symlink:100:ENOSPC,rename:2:EIO")` or,
 * for a real process, the environment variable VIEWCTL_TEST_FAULTS in the same
 * syntax. Each rule fails exactly the N-th call of its kind (1-based), once.
 *
 * Paths are strings. A name that is not valid UTF-8 is carried as a string in
 * which each undecodable byte is a lone surrogate U+DC80..U+DCFF (Python's
 * "surrogateescape"); `fsPath` turns such strings back into the exact bytes.
 */
import { isUtf8 } from 'node:buffer'
import fs from 'node:fs'
import path from 'node:path'

export type FaultOp =
  | 'mkdir'
  | 'symlink'
  | 'link'
  | 'copyFile'
  | 'rename'
  | 'writeFile'
  | 'appendFile'
  | 'fsync'
  | 'rm'
  | 'unlink'

interface FaultRule {
  op: FaultOp
  nth: number
  errno: string
}

const counters = new Map<FaultOp, number>()
let rules: FaultRule[] = parseFaults(process.env.VIEWCTL_TEST_FAULTS ?? '')

function parseFaults(spec: string): FaultRule[] {
  if (!spec.trim()) return []
  return spec.split(',').map((part) => {
    const [op, nth, errno] = part.trim().split(':')
    return { op: op as FaultOp, nth: Number(nth), errno: errno || 'EIO' }
  })
}

/** Arm fault rules for this process (tests only); resets the call counters. */
export function armFaults(spec: string): void {
  rules = parseFaults(spec)
  counters.clear()
}

/**
 * Are faults armed? Counters are per thread (each worker thread loads its own
 * copy of this module), so code that would spread writes over worker threads
 * keeps them on the main thread while this is true: "the N-th symlink" then
 * still means the N-th in plan order.
 */
export function faultsArmed(): boolean {
  return rules.length > 0
}

const ERRNO_MESSAGES: Record<string, string> = {
  ENOSPC: 'no space left on device',
  EIO: 'i/o error',
  EACCES: 'permission denied',
  EXDEV: 'cross-device link not permitted',
  EROFS: 'read-only file system',
  EDQUOT: 'disk quota exceeded',
}

function maybeFail(op: FaultOp, path: string): void {
  if (rules.length === 0) return
  const n = (counters.get(op) ?? 0) + 1
  counters.set(op, n)
  for (const rule of rules) {
    if (rule.op === op && rule.nth === n) {
      const err = new Error(`${rule.errno}: ${ERRNO_MESSAGES[rule.errno] ?? 'injected fault'}, ${op} '${path}'`) as NodeJS.ErrnoException
      err.code = rule.errno
      err.syscall = op
      err.path = path
      throw err
    }
  }
}

const SURROGATE = /[\uDC80-\uDCFF]/

/** The path as the kernel must see it: a Buffer when it carries escaped bytes. */
export function fsPath(p: string): string | Buffer {
  return SURROGATE.test(p) ? encodeEscaped(p) : p
}

/** Whether a path carries escaped bytes (then it must go through fsPath). One test can cover many names joined. */
export function hasEscapes(p: string): boolean {
  return SURROGATE.test(p)
}

function encodeEscaped(p: string): Buffer {
  const parts: Buffer[] = []
  let run = ''
  for (const ch of p) {
    const c = ch.charCodeAt(0)
    if (ch.length === 1 && c >= 0xdc80 && c <= 0xdcff) {
      if (run) parts.push(Buffer.from(run, 'utf8'))
      run = ''
      parts.push(Buffer.of(c - 0xdc00))
    } else {
      run += ch
    }
  }
  if (run) parts.push(Buffer.from(run, 'utf8'))
  return Buffer.concat(parts)
}

/** Decode raw name bytes, escaping every byte that is not valid UTF-8. */
export function decodeName(raw: Buffer): string {
  // Nearly every name is valid UTF-8: one check in C++ instead of a slice per character (a received tree
  // of 70,000 links is checked in about half the CPU). Not for a name holding U+FFFD, which the loop below
  // escapes byte by byte, so that a path decodes to the same string whole or one component at a time.
  if (isUtf8(raw)) {
    const text = raw.toString('utf8')
    if (!text.includes('\uFFFD')) return text
  }
  let out = ''
  let i = 0
  while (i < raw.length) {
    const b = raw[i]!
    let len = 0
    if (b < 0x80) len = 1
    else if (b >= 0xc2 && b <= 0xdf) len = 2
    else if (b >= 0xe0 && b <= 0xef) len = 3
    else if (b >= 0xf0 && b <= 0xf4) len = 4
    if (len > 0 && i + len <= raw.length) {
      const chunk = raw.subarray(i, i + len)
      const text = chunk.toString('utf8')
      if (!text.includes('\uFFFD') && Buffer.byteLength(text) === len) {
        out += text
        i += len
        continue
      }
    }
    out += String.fromCharCode(0xdc00 + b)
    i += 1
  }
  return out
}

export function mkdir(p: string, recursive = false, mode?: number): void {
  maybeFail('mkdir', p)
  fs.mkdirSync(fsPath(p), { recursive, mode })
}

// ---------------------------------------------------------------------------
// Files in a store or a generation (DESIGN §13)
//
// Every file viewctl opens or creates there is opened with O_NOFOLLOW, so a
// member of the group who replaced one with a symlink (to a file only root
// may write, say) makes the open fail instead of redirecting root's write.
// O_NOFOLLOW guards the last component only; the directories on the way are
// checked where a writer enters them (store/guard/sharing.ts), and a root
// writer acts as the store's owner whenever another user owns it. Reads are
// also O_NONBLOCK and of regular files only: a FIFO planted in their place
// would otherwise hang the reader (a 2 a.m. gc) forever. New files take mode
// 0666 or the one given, less the umask, which a writer sets from the store's
// own mode.

const { O_RDONLY, O_WRONLY, O_RDWR, O_CREAT, O_EXCL, O_TRUNC, O_APPEND, O_NOFOLLOW, O_NONBLOCK } = fs.constants
const O_DIRECTORY = fs.constants.O_DIRECTORY ?? 0

/** The errno a refused symlink gives (ELOOP), turned into a message that says what happened (translateOsError). */
function refusing(err: unknown, p: string): unknown {
  const e = err as NodeJS.ErrnoException
  if (e.code === 'ELOOP') {
    const refused = new Error(`ELOOP: refusing to follow the symlink ${p}`) as NodeJS.ErrnoException & { refusedSymlink: true }
    refused.code = 'ELOOP'
    refused.syscall = 'open'
    refused.path = p
    refused.refusedSymlink = true
    return refused
  }
  return err
}

/** Was this error a symlink that viewctl refused to follow (O_NOFOLLOW)? */
export function isRefusedSymlink(err: unknown): boolean {
  return (err as { refusedSymlink?: boolean } | null)?.refusedSymlink === true
}

/** open(2) with O_NOFOLLOW added: `flags` are fs.constants bits. */
export function openNoFollow(p: string, flags: number, mode = 0o666): number {
  try {
    return fs.openSync(fsPath(p), flags | O_NOFOLLOW, mode)
  } catch (err) {
    // with O_DIRECTORY, Linux answers a symlink with ENOTDIR rather than ELOOP
    if ((err as NodeJS.ErrnoException).code === 'ENOTDIR' && flags & O_DIRECTORY && isSymlink(p)) throw refusing(Object.assign(new Error('ELOOP'), { code: 'ELOOP' }), p)
    throw refusing(err, p)
  }
}

function isSymlink(p: string): boolean {
  try {
    return fs.lstatSync(fsPath(p)).isSymbolicLink()
  } catch {
    return false
  }
}

/** The whole of a regular file, opened without following a symlink or blocking on a FIFO. */
export function readFileNoFollow(p: string): Buffer {
  const fd = openNoFollow(p, O_RDONLY | O_NONBLOCK)
  try {
    if (!fs.fstatSync(fd).isFile()) {
      const err = new Error(`EINVAL: not a regular file, open '${p}'`) as NodeJS.ErrnoException
      err.code = 'EINVAL'
      err.syscall = 'open'
      err.path = p
      throw err
    }
    return fs.readFileSync(fd)
  } finally {
    fs.closeSync(fd)
  }
}

/** readFileNoFollow as text. */
export function readTextNoFollow(p: string): string {
  return readFileNoFollow(p).toString('utf8')
}

/**
 * chmod a directory through a descriptor opened without following a
 * symlink: `mode` gets its current mode and returns the new one. A name
 * someone swapped for a symlink fails (ELOOP) instead of changing whatever
 * the link points at.
 */
export function chmodDirNoFollow(p: string, mode: (current: number) => number): void {
  const fd = openNoFollow(p, O_RDONLY | O_DIRECTORY)
  try {
    fs.fchmodSync(fd, mode(fs.fstatSync(fd).mode & 0o7777))
  } finally {
    fs.closeSync(fd)
  }
}

/** Open flags for a new file: `exclusive` (O_EXCL) for a name that must not exist yet, such as a temporary one. */
export function createFlags(exclusive: boolean): number {
  return O_WRONLY | O_CREAT | (exclusive ? O_EXCL : O_TRUNC)
}

export const OPEN = { O_RDONLY, O_WRONLY, O_RDWR, O_CREAT, O_EXCL, O_APPEND, O_NONBLOCK, O_DIRECTORY }

export function symlink(target: string, p: string): void {
  maybeFail('symlink', p)
  fs.symlinkSync(fsPath(target), fsPath(p))
}

/**
 * symlink and link for names the caller has checked carry no escaped bytes
 * (hasEscapes): no per-call test, for the hot loop of a large build.
 */
export function symlinkPlain(target: string, p: string): void {
  maybeFail('symlink', p)
  fs.symlinkSync(target, p)
}

export function linkPlain(existing: string, p: string): void {
  maybeFail('link', p)
  fs.linkSync(existing, p)
}

export function link(existing: string, p: string): void {
  maybeFail('link', p)
  fs.linkSync(fsPath(existing), fsPath(p))
}

/**
 * symlink, link and copyFile on libuv's thread pool, for the lanes of a
 * build on a remote filesystem (store/build/lanes.ts), where each call waits
 * on the network and many are kept in flight. Faults are never armed there
 * (the lanes run only when they are not), but the seam is asked all the same.
 */
export async function symlinkAsync(target: string, p: string): Promise<void> {
  maybeFail('symlink', p)
  await fs.promises.symlink(fsPath(target), fsPath(p))
}

export async function linkAsync(existing: string, p: string): Promise<void> {
  maybeFail('link', p)
  await fs.promises.link(fsPath(existing), fsPath(p))
}

export async function copyFileAsync(src: string, dest: string): Promise<void> {
  maybeFail('copyFile', dest)
  await fs.promises.copyFile(fsPath(src), fsPath(dest))
}

export async function readlinkAsync(p: string): Promise<string> {
  return decodeName(await fs.promises.readlink(fsPath(p), 'buffer'))
}

export function copyFile(src: string, dest: string): void {
  maybeFail('copyFile', dest)
  fs.copyFileSync(fsPath(src), fsPath(dest))
}

export function rename(from: string, to: string): void {
  maybeFail('rename', to)
  fs.renameSync(fsPath(from), fsPath(to))
}

/**
 * Write a whole file and fsync it before closing. Never through a symlink;
 * `exclusive`: the name must not exist yet (O_EXCL), for temporary names and
 * the files of a new generation.
 */
export function writeFileDurable(p: string, data: string | Uint8Array | readonly string[], opts: { exclusive?: boolean; mode?: number } = {}): void {
  maybeFail('writeFile', p)
  const fd = openNoFollow(p, createFlags(!!opts.exclusive), opts.mode ?? 0o666)
  try {
    if (typeof data === 'string' || data instanceof Uint8Array) fs.writeFileSync(fd, data)
    else for (const part of data) fs.writeFileSync(fd, part) // a plan's text chunks, never joined into one big string
    fs.fsyncSync(fd)
  } finally {
    fs.closeSync(fd)
  }
}

/** Append one record and fsync it (the journal's only write); returns the file's size before it. Never through a symlink. */
export function appendDurable(p: string, data: string): number {
  maybeFail('appendFile', p)
  const fd = openNoFollow(p, O_WRONLY | O_APPEND | O_CREAT)
  try {
    const before = fs.fstatSync(fd).size
    fs.writeSync(fd, data)
    fs.fsyncSync(fd)
    return before
  } finally {
    fs.closeSync(fd)
  }
}

/** fsync a directory so that the names created or renamed in it are durable. */
export function fsyncDir(p: string): void {
  maybeFail('fsync', p)
  let fd: number
  try {
    fd = fs.openSync(fsPath(p), O_RDONLY | O_DIRECTORY | O_NOFOLLOW)
  } catch {
    return // some filesystems refuse to open directories (and a symlink is not one); nothing to flush then
  }
  try {
    fs.fsyncSync(fd)
  } catch (err) {
    // EINVAL: the filesystem does not support fsync on directories
    if ((err as NodeJS.ErrnoException).code !== 'EINVAL') throw err
  } finally {
    fs.closeSync(fd)
  }
}

/**
 * Remove a tree, like `rm -rf`: gone already is fine, symlinks are removed,
 * never followed. Node's rmSync(recursive) lstat()s every entry before
 * unlinking it; here the file types come with the directory listing (d_type,
 * the way rm does it), which halves the system calls for a tree of links
 * (docs/benchmarks.md). Names are handled as strings, which Node lists and
 * passes to the kernel faster than Buffers; only an entry whose name is not
 * valid UTF-8 is removed byte for byte. A directory that is
 * not empty when removed (an NFS client's .nfsXXXX file of something still
 * open appearing) is listed and tried again, twice, then the error stands.
 *
 * This runs on one thread. store/remove/remover.ts spreads a large tree over worker
 * threads with the pieces below (listForRemoval, unlinkNames, removeByBytes,
 * removeEmptyDir).
 */
export function rmTree(p: string): void {
  maybeFail('rm', p)
  const fp = fsPath(p)
  if (typeof fp === 'string') removeTreeText(fp)
  else removeTreeBytes(fp)
}

/**
 * The first step of removing `p` (a path as the kernel sees it): a directory
 * is left for the caller to empty; anything else is unlinked here, and a
 * path that is gone is fine.
 */
export function removalStart(p: string): 'dir' | 'done' {
  let isDir: boolean
  try {
    isDir = fs.lstatSync(p).isDirectory()
  } catch (err) {
    ignoreGone(err)
    return 'done'
  }
  if (isDir) return 'dir'
  try {
    fs.unlinkSync(p)
  } catch (err) {
    ignoreGone(err)
  }
  return 'done'
}

/** A directory's entries, for removal: what to unlink, and the subdirectories to empty. */
export interface RemovalListing {
  /** Names of everything that is not a directory (files, symlinks, sockets, …). */
  files: string[]
  /** Names of subdirectories. */
  dirs: string[]
  /** Entries whose names are not valid UTF-8, as full paths in bytes: for removeByBytes. */
  odd: Buffer[]
}

/**
 * List `dir` for removal (file types from the listing, no stat); null when it
 * is gone. Read with opendir rather than readdirSync, which has libuv sort
 * the names first: 20 % less time for a directory of 30,000.
 */
export function listForRemoval(dir: string): RemovalListing | null {
  let handle: fs.Dir
  try {
    handle = fs.opendirSync(dir, { bufferSize: 1024 })
  } catch (err) {
    ignoreGone(err)
    return null
  }
  const files: string[] = []
  const dirs: string[] = []
  try {
    for (let entry = handle.readSync(); entry !== null; entry = handle.readSync()) {
      const name = entry.name
      // a name that is not valid UTF-8 came back with U+FFFD in it: list again, by bytes
      if (name.includes('\uFFFD')) return listBytes(dir)
      if (entry.isDirectory()) dirs.push(name)
      else files.push(name)
    }
  } finally {
    handle.closeSync()
  }
  return { files, dirs, odd: [] }
}

function listBytes(dir: string): RemovalListing | null {
  let entries: fs.Dirent<Buffer>[]
  try {
    entries = fs.readdirSync(dir, { withFileTypes: true, encoding: 'buffer' })
  } catch (err) {
    ignoreGone(err)
    return null
  }
  const base = Buffer.from(`${dir}/`, 'utf8')
  const listing: RemovalListing = { files: [], dirs: [], odd: [] }
  for (const entry of entries) {
    const name = entry.name.toString('utf8')
    if (name.includes('\uFFFD')) listing.odd.push(Buffer.concat([base, entry.name]))
    else if (entry.isDirectory()) listing.dirs.push(name)
    else listing.files.push(name)
  }
  return listing
}

/** Remove each path (given in bytes: a file, a link or a whole tree), like rmTree. */
export function removeByBytes(paths: readonly Buffer[]): void {
  for (const p of paths) removeTreeBytes(p)
}

/** Unlink `dir/name` for each name; one already gone is fine. */
export function unlinkNames(dir: string, names: readonly string[]): void {
  for (let i = 0; i < names.length; i++) {
    try {
      fs.unlinkSync(`${dir}/${names[i]}`)
    } catch (err) {
      ignoreGone(err)
    }
  }
}

/**
 * Remove a directory whose entries have all been removed. One that is not
 * empty after all (an NFS client's .nfsXXXX file, an entry a listing missed)
 * is removed as a whole tree, which lists it again; gone is fine.
 */
export function removeEmptyDir(dir: string): void {
  for (let tries = 0; ; tries++) {
    const outcome = tryRmdir(dir, tries)
    if (outcome !== 'again') return
    const listing = listForRemoval(dir)
    if (listing === null) return
    removeByBytes(listing.odd)
    unlinkNames(dir, listing.files)
    for (const name of listing.dirs) removeTreeText(`${dir}/${name}`)
  }
}

/** rmTree without its fault rule, for a path the kernel takes as a string. Depth first without recursion. */
function removeTreeText(p: string): void {
  if (removalStart(p) !== 'dir') return
  const stack: Array<{ dir: string; listed: boolean; tries: number }> = [{ dir: p, listed: false, tries: 0 }]
  while (stack.length > 0) {
    const frame = stack[stack.length - 1]!
    if (!frame.listed) {
      frame.listed = true
      const listing = listForRemoval(frame.dir)
      if (listing === null) {
        stack.pop()
        continue
      }
      removeByBytes(listing.odd)
      unlinkNames(frame.dir, listing.files)
      for (const name of listing.dirs) stack.push({ dir: `${frame.dir}/${name}`, listed: false, tries: 0 })
      continue
    }
    if (tryRmdir(frame.dir, frame.tries) === 'again') {
      frame.tries++
      frame.listed = false
    } else stack.pop()
  }
}

/** rmdir: 'done' (removed, or gone), 'again' (not empty, tries left), or the error is thrown. */
function tryRmdir(dir: string | Buffer, tries: number): 'done' | 'again' {
  try {
    fs.rmdirSync(dir)
    return 'done'
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'ENOENT') return 'done'
    if ((code === 'ENOTEMPTY' || code === 'EEXIST' || code === 'EBUSY') && tries < 2) return 'again'
    throw err
  }
}

const SLASH = Buffer.from('/')

function ignoreGone(err: unknown): void {
  if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
}

/** rmTree by raw bytes, for paths and names that are not valid UTF-8. */
function removeTreeBytes(root: Buffer): void {
  let isDir: boolean
  try {
    isDir = fs.lstatSync(root).isDirectory()
  } catch (err) {
    return ignoreGone(err)
  }
  if (!isDir) {
    try {
      fs.unlinkSync(root)
    } catch (err) {
      ignoreGone(err)
    }
    return
  }
  // Depth first without recursion: a directory is removed once everything listed in it is.
  const stack: Array<{ dir: Buffer; listed: boolean; tries: number }> = [{ dir: root, listed: false, tries: 0 }]
  while (stack.length > 0) {
    const top = stack[stack.length - 1]!
    if (!top.listed) {
      top.listed = true
      let entries: fs.Dirent<Buffer>[]
      try {
        entries = fs.readdirSync(top.dir, { withFileTypes: true, encoding: 'buffer' })
      } catch (err) {
        ignoreGone(err)
        stack.pop()
        continue
      }
      for (const entry of entries) {
        const child = Buffer.concat([top.dir, SLASH, entry.name])
        if (entry.isDirectory()) {
          stack.push({ dir: child, listed: false, tries: 0 })
          continue
        }
        try {
          fs.unlinkSync(child)
        } catch (err) {
          ignoreGone(err)
        }
      }
      continue
    }
    if (tryRmdir(top.dir, top.tries) === 'again') {
      top.tries++
      top.listed = false
    } else stack.pop()
  }
}

export function unlink(p: string): void {
  maybeFail('unlink', p)
  fs.unlinkSync(fsPath(p))
}

/**
 * Replace `file` with `data` for readers who may open it at any moment (a
 * modulefile): written to a temporary sibling with a random name, created
 * with O_EXCL and O_NOFOLLOW (a name planted there by someone else, or a
 * symlink, makes this fail instead of writing through it), flushed, given
 * `mode` whatever the umask, and renamed over `file`. The temporary file is
 * removed when any step fails.
 */
export function replaceFile(file: string, data: string, mode: number): void {
  const tmp = `${path.dirname(file)}/.${path.basename(file)}.tmp-${process.pid}-${Math.floor(Math.random() * 0x1_0000_0000).toString(16).padStart(8, '0')}`
  maybeFail('writeFile', tmp)
  const { O_WRONLY, O_CREAT, O_EXCL, O_NOFOLLOW } = fs.constants
  const fd = fs.openSync(fsPath(tmp), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, mode)
  try {
    try {
      fs.writeFileSync(fd, data)
      fs.fchmodSync(fd, mode)
      fs.fsyncSync(fd)
    } finally {
      fs.closeSync(fd)
    }
    rename(tmp, file)
  } catch (err) {
    try {
      fs.unlinkSync(fsPath(tmp))
    } catch {
      // already renamed or never there
    }
    throw err
  }
}

/** Is `name` one of replaceFile's temporary names for some file? */
export function isReplaceTempName(name: string): boolean {
  return /^\..+\.tmp-\d+-[0-9a-f]{8}$/.test(name)
}

/**
 * The mode for a file viewctl creates in `dir`, following the directory
 * (DESIGN §13): readable and writable by its owner, its group's read and
 * write bits from the directory (group-writable in a group-writable
 * directory whatever the umask), readable by others only where the
 * directory is, never writable by them.
 */
export function modeFollowing(dir: string): number {
  const dirMode = fs.statSync(fsPath(dir)).mode
  return 0o600 | 0o040 | (dirMode & 0o020) | (dirMode & 0o004)
}
