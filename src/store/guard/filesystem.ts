/**
 * What kind of filesystem holds a store, read from /proc/self/mountinfo
 * (with statfs where that cannot be read), and what that means for the
 * guards:
 *
 *   remote      other hosts may read and write it: the two-minute rule and
 *               fencing matter, and metadata operations are round trips, so
 *               more of them are kept in flight (--jobs);
 *   locks       whether an fcntl lock taken here excludes every client
 *               ('cluster': local filesystems, NFS with its lock manager,
 *               Lustre `flock`, GPFS, CephFS, GFS2/OCFS2), only the
 *               processes of this client ('client': FUSE mounts such as
 *               sshfs, NFS `nolock` or `local_lock=posix|all`, Lustre
 *               `localflock`, BeeGFS without global locks, CIFS `nobrl`),
 *               or nobody, because the filesystem refuses it ('none':
 *               Lustre without `flock`); on 'client' and 'none' a
 *               cross-client lock file is taken as well (xlock.ts);
 *   exclusive   whether the server answers O_EXCL atomically (false for
 *               NFSv2 and object-store FUSE mounts): where it does not, no
 *               lock file can be trusted either;
 *   staleBy     a mount option that lets this client serve metadata older
 *               than a writer may act on (NFS `nocto`, attribute caching
 *               longer than STALE_LIMIT_S), or null. sshfs's own caching is
 *               not visible here; the fencing counter (fence.ts) catches it.
 *
 * Everything is decided from the mount's type and options: nothing here is
 * probed by writing.
 */
import fs from 'node:fs'
import path from 'node:path'

export type LockReach = 'cluster' | 'client' | 'none'

export interface MountEntry {
  mountPoint: string
  /** major:minor of the mounted device. */
  device: string
  type: string
  source: string
  /** Per-mount and superblock options together. */
  options: string[]
}

export interface Filesystem {
  type: string
  mountPoint: string
  source: string
  options: string[]
  remote: boolean
  locks: LockReach
  /** The mount option (or setting) that decided `locks`, for messages. */
  locksBy: string
  exclusive: boolean
  staleBy: string | null
}

/** Metadata a client may serve from its caches beyond this is too old for a writer to act on (NFS's own default maximum is 60 s). */
export const STALE_LIMIT_S = 60

/** Filesystems on one host's own disks or memory. */
const LOCAL = new Set([
  'ext2', 'ext3', 'ext4', 'xfs', 'btrfs', 'zfs', 'f2fs', 'jfs', 'reiserfs', 'bcachefs', 'nilfs2',
  'tmpfs', 'ramfs', 'devtmpfs', 'overlay', 'squashfs', 'erofs', 'iso9660', 'udf',
  'vfat', 'msdos', 'exfat', 'ntfs', 'ntfs3', 'hfs', 'hfsplus', 'fuseblk',
])

/** Shared filesystems whose fcntl locks the servers arbitrate for every client. */
const CLUSTER_LOCKS = new Set(['gpfs', 'ceph', 'fuse.ceph-fuse', 'fuse.glusterfs', 'gfs2', 'ocfs2', 'panfs'])

/** FUSE filesystems over object stores: no atomic exclusive create. */
const NO_EXCLUSIVE = new Set(['fuse.s3fs', 'fuse.goofys', 'fuse.gcsfuse', 'fuse.rclone', 'fuse.blobfuse', 'fuse.blobfuse2', 'davfs', 'fuse.davfs2', 'fuse.mountpoint-s3'])

/** Parse /proc/self/mountinfo: `id parent major:minor root mountpoint opts [optional…] - type source superopts`. */
export function parseMountinfo(text: string): MountEntry[] {
  const out: MountEntry[] = []
  for (const line of text.split('\n')) {
    const f = line.split(' ')
    const dash = f.indexOf('-', 6)
    if (f.length < 10 || dash === -1) continue
    const options = [...f[5]!.split(','), ...(f[dash + 3] ?? '').split(',')].filter((o) => o !== '')
    out.push({ mountPoint: unescapeMount(f[4]!), device: f[2]!, type: f[dash + 1]!, source: unescapeMount(f[dash + 2]!), options })
  }
  return out
}

/** mountinfo writes space, tab, newline and backslash as \ooo. */
function unescapeMount(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)))
}

function option(options: string[], name: string): string | null {
  for (let i = options.length - 1; i >= 0; i--) {
    const o = options[i]!
    if (o === name) return ''
    if (o.startsWith(`${name}=`)) return o.slice(name.length + 1)
  }
  return null
}

/** What a mount means for the guards. `readFile` is for BeeGFS's client configuration (tests pass their own). */
export function classifyMount(m: MountEntry, readFile: (p: string) => string = (p) => fs.readFileSync(p, 'utf8')): Filesystem {
  const base = { type: m.type, mountPoint: m.mountPoint, source: m.source, options: m.options }
  const type = m.type
  const has = (name: string) => option(m.options, name) !== null
  if (LOCAL.has(type)) return { ...base, remote: false, locks: 'cluster', locksBy: `${type} is local`, exclusive: true, staleBy: null }

  let locks: LockReach = 'cluster'
  let locksBy = `${type} forwards fcntl locks to its servers`
  let exclusive = true
  let staleBy: string | null = null
  if (type === 'nfs' || type === 'nfs4') {
    const localLock = option(m.options, 'local_lock')
    if (has('nolock')) [locks, locksBy] = ['client', 'nolock']
    else if (localLock === 'all' || localLock === 'posix') [locks, locksBy] = ['client', `local_lock=${localLock}`]
    else locksBy = 'NFS with its lock manager'
    if (option(m.options, 'vers') === '2' || option(m.options, 'nfsvers') === '2') exclusive = false
    staleBy = has('nocto') ? 'nocto' : longAttributeCache(m.options)
  } else if (type === 'lustre') {
    if (has('flock')) locksBy = 'flock'
    else if (has('localflock')) [locks, locksBy] = ['client', 'localflock']
    else [locks, locksBy] = ['none', has('noflock') ? 'noflock' : 'neither flock nor localflock']
  } else if (type === 'beegfs') {
    ;[locks, locksBy] = beegfsGlobalLocks(m.options, readFile) ? ['cluster', 'tuneUseGlobalFileLocks=true'] : ['client', 'tuneUseGlobalFileLocks is not true']
  } else if (type === 'cifs' || type === 'smb3') {
    if (has('nobrl')) [locks, locksBy] = ['client', 'nobrl']
  } else if (type.startsWith('fuse') || type === '9p' || type === 'virtiofs' || type === 'afs') {
    if (!CLUSTER_LOCKS.has(type)) [locks, locksBy] = ['client', `${type} keeps fcntl locks on this client`]
    if (NO_EXCLUSIVE.has(type)) exclusive = false
  } else if (NO_EXCLUSIVE.has(type)) {
    exclusive = false
  } else if (!CLUSTER_LOCKS.has(type)) {
    locksBy = `${type} (assumed to forward fcntl locks)`
  }
  return { ...base, remote: true, locks, locksBy, exclusive, staleBy }
}

/** NFS attribute caching longer than STALE_LIMIT_S: `actimeo`, `acregmax` or `acdirmax`. */
function longAttributeCache(options: string[]): string | null {
  for (const name of ['actimeo', 'acregmax', 'acdirmax']) {
    const v = option(options, name)
    if (v !== null && Number(v) > STALE_LIMIT_S) return `${name}=${v}`
  }
  if (option(options, 'noac') !== null) return null
  return null
}

/** BeeGFS arbitrates fcntl locks on its servers only with `tuneUseGlobalFileLocks = true` in the client's configuration. */
function beegfsGlobalLocks(options: string[], readFile: (p: string) => string): boolean {
  const cfg = option(options, 'cfgFile') ?? '/etc/beegfs/beegfs-client.conf'
  try {
    const m = /^\s*tuneUseGlobalFileLocks\s*=\s*(\S+)/m.exec(readFile(cfg))
    return m !== null && /^(true|1|yes)$/i.test(m[1]!)
  } catch {
    return false
  }
}

/** statfs magic numbers, for where /proc/self/mountinfo cannot be read. */
const MAGIC: Record<number, string> = {
  0x6969: 'nfs',
  0x0bd00bd0: 'lustre',
  0x47504653: 'gpfs',
  0x19830326: 'beegfs',
  0x65735546: 'fuse',
  0xff534d42: 'cifs',
  0xfe534d42: 'smb3',
  0x00c36400: 'ceph',
  0x01021997: '9p',
  0x5346414f: 'afs',
  0x01161970: 'gfs2',
  0x7461636f: 'ocfs2',
  0x01021994: 'tmpfs',
  0xef53: 'ext4',
  0x58465342: 'xfs',
  0x9123683e: 'btrfs',
}

const byDevice = new Map<number, Filesystem>()

/** The filesystem holding `dir` (which must exist), remembered per device for the life of the process. */
export function filesystemOf(dir: string): Filesystem {
  const st = fs.statSync(dir)
  const known = byDevice.get(st.dev)
  if (known) return known
  const found = fromMountinfo(dir, st.dev) ?? fromStatfs(dir)
  byDevice.set(st.dev, found)
  return found
}

function fromMountinfo(dir: string, dev: number): Filesystem | null {
  let entries: MountEntry[]
  let real: string
  try {
    entries = parseMountinfo(fs.readFileSync('/proc/self/mountinfo', 'utf8'))
    real = fs.realpathSync(dir)
  } catch {
    return null
  }
  const device = `${Math.floor(dev / 256) & 0xfff}:${(dev & 0xff) | ((Math.floor(dev / 4096) & 0xfff00) >>> 0)}`
  let best: MountEntry | null = null
  for (const m of entries) {
    const inside = real === m.mountPoint || real.startsWith(m.mountPoint.endsWith(path.sep) ? m.mountPoint : m.mountPoint + path.sep)
    // the last of equally long mount points is the one on top
    if (inside && (best === null || m.mountPoint.length >= best.mountPoint.length)) best = m
  }
  if (best === null) return null
  // a bind mount or an overmount elsewhere can make the longest prefix the wrong device: trust the device when it disagrees
  if (best.device !== device) {
    const same = entries.filter((m) => m.device === device)
    if (same.length > 0) best = same[same.length - 1]!
  }
  return classifyMount(best)
}

function fromStatfs(dir: string): Filesystem {
  let type = 'unknown'
  try {
    type = MAGIC[fs.statfsSync(dir).type] ?? 'unknown'
  } catch {
    // keep 'unknown'
  }
  return classifyMount({ mountPoint: '/', device: '', type, source: '', options: [] })
}

/** One line for messages: `fuse.sshfs at /mnt/views (fcntl locks stay on this client: fuse.sshfs keeps fcntl locks on this client)`. */
export function describeFilesystem(f: Filesystem): string {
  return `${f.type} at ${f.mountPoint}`
}
