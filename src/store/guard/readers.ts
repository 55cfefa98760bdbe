/**
 * Who is using a generation on this host: a scan of /proc, in the spirit of
 * Nix's runtime-root scan. A generation's canonical path is
 * `<realpath of the store>/<hash>`; a process uses it when any of these names
 * a path inside it:
 *
 *   /proc/<pid>/cwd, exe, root   readlink
 *   /proc/<pid>/fd/*             readlink of every open descriptor
 *   /proc/<pid>/maps             mapped files (shared libraries of a copy or hardlink view)
 *   /proc/<pid>/environ          any variable whose value contains the canonical path
 *                                (what `viewctl exec` and `activate --canonical` set)
 *
 * What this cannot see, and what therefore protects those readers instead
 * (the ttl, the spare generations, and exec leases):
 *
 * - Other users' processes, unless gc runs as root: the kernel lets a user
 *   read these entries only for its own processes (ptrace access mode), and
 *   everything unreadable (EACCES, and ESRCH/ENOENT for processes that exit
 *   mid-scan) is skipped silently.
 * - Other hosts. On a shared filesystem only exec leases reach across hosts.
 * - Paths that never name the tree: in a symlink view, a program run as
 *   `/opt/views/hpc/bin/tool` has the prefix's real file as its exe and maps,
 *   and a cwd inside a folded directory resolves into the prefix. A process
 *   that only has the view path (not the canonical path) in its environment
 *   follows the view, which is what it asked for.
 * - Processes in other mount namespaces (containers) see other paths.
 *
 * A process another user owns costs two failed calls (cwd, and the listing of
 * fd/, which has a check of its own), not six: the kernel decides cwd, exe,
 * root, maps and environ with the same check. A kernel thread (no exe) is
 * not asked for its maps and environ, which it does not have.
 *
 * The scan compares bytes, not decoded strings, and looks each hit up in a
 * set of hashes, so its cost is one pass over /proc whatever the number of
 * candidate generations. Reading `maps` is the most expensive part and is
 * skipped when every candidate is a symlink view: a file mapped through a
 * symlink shows the path of its target (the prefix), so the maps of a
 * process can only name a hardlink or copy tree. Measured with 1,000
 * processes: docs/generations.md.
 */
import fs from 'node:fs'

export type UseKind = 'cwd' | 'exe' | 'root' | 'fd' | 'map' | 'environ'

export interface ProcessUse {
  pid: number
  /** The process name from /proc/<pid>/comm, when readable. */
  command: string
  how: UseKind
}

export interface ProcessScan {
  /** hash -> the processes using that generation (at most one entry per pid and hash). */
  uses: Map<string, ProcessUse[]>
  /** Processes looked at. */
  scanned: number
  /** Processes some of whose entries the kernel refused to show (other users', when not root). */
  unreadable: number
  /** False when there is no /proc (not Linux): nothing could be checked. */
  available: boolean
  elapsedMs: number
}

const LINKS: ReadonlyArray<UseKind> = ['cwd', 'exe', 'root']

/**
 * Scan /proc for processes using any of `hashes` under `stores` (the store's
 * real path, and the path as configured when it differs, for environments
 * that name it that way). The calling process itself is skipped.
 */
export interface ScanOptions {
  /** Also read /proc/<pid>/maps (needed when a candidate is a hardlink or copy view). Default true. */
  maps?: boolean
  /** Where procfs is mounted (tests). */
  procRoot?: string
}

export function findProcessUsers(stores: string[], hashes: Iterable<string>, opts: ScanOptions = {}): ProcessScan {
  const procRoot = opts.procRoot ?? '/proc'
  const files: ReadonlyArray<readonly [string, UseKind]> = opts.maps === false ? [['environ', 'environ']] : [['maps', 'map'], ['environ', 'environ']]
  const started = performance.now()
  const wanted = new Set(hashes)
  const uses = new Map<string, ProcessUse[]>()
  const result: ProcessScan = { uses, scanned: 0, unreadable: 0, available: true, elapsedMs: 0 }
  if (wanted.size === 0) return finish(result, started)
  const prefixes = [...new Set(stores.map((s) => s.replace(/\/+$/, '') + '/'))]
  const prefixBytes = prefixes.map((p) => Buffer.from(p))

  let pids: string[]
  try {
    pids = fs.readdirSync(procRoot)
  } catch {
    result.available = false
    return finish(result, started)
  }
  const self = String(process.pid)
  const buf = { data: Buffer.allocUnsafe(1 << 16) }

  for (const pid of pids) {
    const c = pid.charCodeAt(0)
    if (c < 48 || c > 57 || pid === self) continue
    result.scanned++
    const base = `${procRoot}/${pid}`
    const found = new Map<string, UseKind>()
    let unreadable = false
    const note = (hash: string | null, how: UseKind) => {
      if (hash !== null && !found.has(hash)) found.set(hash, how)
    }

    // cwd, exe, root, maps and environ are all behind one check (may this user read the
    // process: ptrace_may_access, PTRACE_MODE_READ_FSCREDS): when cwd is refused, so is the rest.
    // No exe means no memory of its own (a kernel thread, or a process that is exiting): its
    // maps and environ are empty, and a user memory a kernel thread borrows is its owner's, scanned there.
    let readMemory = true
    for (const how of LINKS) {
      const target = readlink(`${base}/${how}`)
      if (typeof target === 'string') note(hashInPath(target, prefixes, wanted), how)
      else if (target.denied) {
        unreadable = true
        readMemory = false
        break
      } else if (how === 'exe') readMemory = false
    }

    let fds: string[] | null = null
    try {
      fds = fs.readdirSync(`${base}/fd`)
    } catch (err) {
      if (isDenied(err)) unreadable = true
    }
    if (fds) {
      for (const fd of fds) {
        const target = readlink(`${base}/fd/${fd}`)
        if (typeof target === 'string') note(hashInPath(target, prefixes, wanted), 'fd')
      }
    }

    for (const [file, how] of readMemory ? files : []) {
      const n = readProcFile(`${base}/${file}`, buf)
      if (n === DENIED) unreadable = true
      if (n < 0) continue
      for (const hash of hashesInBytes(buf.data, n, prefixBytes, wanted)) note(hash, how)
    }

    if (unreadable) result.unreadable++
    if (found.size === 0) continue
    const command = commandOf(base)
    for (const [hash, how] of found) {
      let list = uses.get(hash)
      if (!list) uses.set(hash, (list = []))
      list.push({ pid: Number(pid), command, how })
    }
  }
  return finish(result, started)
}

function finish(result: ProcessScan, started: number): ProcessScan {
  result.elapsedMs = performance.now() - started
  return result
}

function isDenied(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException).code
  return code === 'EACCES' || code === 'EPERM'
}

/** The link's target, or why not: denied (another user's process) or gone (exited, kernel thread, closed fd). */
function readlink(p: string): string | { denied: boolean } {
  try {
    return fs.readlinkSync(p)
  } catch (err) {
    return { denied: isDenied(err) }
  }
}

const GONE = -1
const DENIED = -2

/** The hash of the generation `p` lies in, when it is one of `wanted`. */
function hashInPath(p: string, prefixes: string[], wanted: Set<string>): string | null {
  for (const prefix of prefixes) {
    if (!p.startsWith(prefix)) continue
    const slash = p.indexOf('/', prefix.length)
    const name = slash === -1 ? p.slice(prefix.length) : p.slice(prefix.length, slash)
    if (wanted.has(name)) return name
  }
  return null
}

/** Characters a hash name can contain (lowercase hex today; base32 would fit too). */
function isHashByte(b: number): boolean {
  return (b >= 48 && b <= 57) || (b >= 97 && b <= 122)
}

/** Every wanted hash that follows one of the store prefixes in `data[0, n)`. */
function hashesInBytes(data: Buffer, n: number, prefixes: Buffer[], wanted: Set<string>): string[] {
  const hits: string[] = []
  const view = data.subarray(0, n)
  for (const prefix of prefixes) {
    let at = view.indexOf(prefix)
    while (at !== -1) {
      let end = at + prefix.length
      while (end < n && isHashByte(view[end]!)) end++
      const name = view.toString('latin1', at + prefix.length, end)
      if (wanted.has(name) && !hits.includes(name)) hits.push(name)
      at = view.indexOf(prefix, end)
    }
  }
  return hits
}

/** Read a /proc file whole into the shared buffer (growing it); the byte count, or GONE / DENIED. */
function readProcFile(p: string, buf: { data: Buffer }): number {
  let fd: number
  try {
    fd = fs.openSync(p, 'r')
  } catch (err) {
    return isDenied(err) ? DENIED : GONE
  }
  try {
    let n = 0
    for (;;) {
      if (n === buf.data.length) {
        const bigger = Buffer.allocUnsafe(buf.data.length * 2)
        buf.data.copy(bigger, 0, 0, n)
        buf.data = bigger
      }
      const got = fs.readSync(fd, buf.data, n, buf.data.length - n, null)
      if (got === 0) return n
      n += got
    }
  } catch (err) {
    return isDenied(err) ? DENIED : GONE // EACCES on read (environ of another user), ESRCH (exited)
  } finally {
    fs.closeSync(fd)
  }
}

function commandOf(base: string): string {
  try {
    return fs.readFileSync(`${base}/comm`, 'utf8').trim()
  } catch {
    return '?'
  }
}

/** "pid 4242 (sleep) has its cwd there" */
export function describeUse(use: ProcessUse): string {
  const what: Record<UseKind, string> = {
    cwd: 'has its working directory there',
    exe: 'runs a program from there',
    root: 'has its root directory there',
    fd: 'has a file there open',
    map: 'has a file from there mapped',
    environ: 'names it in its environment',
  }
  return `pid ${use.pid} (${use.command}) ${what[use.how]}`
}
