/**
 * One way to fail. Every failure the library reports is a ViewError with a
 * stable `code`, a message that names the path involved, and a `hint` that
 * says what to do. The CLI maps codes to exit codes through `exitCodeFor`.
 */
import fs from 'node:fs'

export type ErrorCode =
  // bad input: exit 2
  | 'USAGE'
  | 'MANIFEST_NOT_FOUND'
  | 'MANIFEST_YAML'
  | 'MANIFEST_INVALID'
  | 'PREFIX_INVALID'
  | 'GLOB_EMPTY'
  | 'VIEW_INSIDE_PREFIX'
  | 'VIEW_PATH_INVALID'
  | 'STORE_COLLISION'
  | 'NOT_A_VIEW'
  | 'GENERATION_NOT_FOUND'
  | 'BAD_DESTINATION'
  | 'PROTOCOL_MISMATCH'
  | 'PREFIX_MISSING'
  | 'UNFIT_PATH'
  | 'NOT_CONFIRMED'
  // conflicts: exit 3
  | 'CONFLICT'
  // lock: exit 4
  | 'LOCK_TIMEOUT'
  // verify: exit 5
  | 'VERIFY_FAILED'
  // runtime: exit 1
  | 'NOT_MANAGED'
  | 'NO_ROLLBACK_TARGET'
  | 'GENERATION_COLLECTED'
  | 'GENERATION_CURRENT'
  | 'GENERATION_PINNED'
  | 'GENERATION_IN_USE'
  | 'TREE_DAMAGED'
  | 'LOCK_UNSUPPORTED'
  | 'LOCK_LOST'
  | 'STALE_READS'
  | 'STATE_MISMATCH'
  | 'TTL_TOO_SHORT'
  | 'PERMISSION'
  | 'PREFIX_UNREADABLE'
  | 'DISK_FULL'
  | 'READ_ONLY'
  | 'XDEV_HARDLINK'
  | 'NAME_TOO_LONG'
  | 'SYMLINK_LOOP'
  | 'UNSAFE_PATH'
  | 'INTERRUPTED'
  | 'TRANSFER_FAILED'
  | 'CONNECTION_LOST'
  | 'PLAN_MISMATCH'
  | 'IO'
  | 'INTERNAL'

const EXIT_CODES: Partial<Record<ErrorCode, number>> = {
  USAGE: 2,
  MANIFEST_NOT_FOUND: 2,
  MANIFEST_YAML: 2,
  MANIFEST_INVALID: 2,
  PREFIX_INVALID: 2,
  GLOB_EMPTY: 2,
  VIEW_INSIDE_PREFIX: 2,
  VIEW_PATH_INVALID: 2,
  STORE_COLLISION: 2,
  NOT_A_VIEW: 2,
  GENERATION_NOT_FOUND: 2,
  BAD_DESTINATION: 2,
  PROTOCOL_MISMATCH: 2,
  PREFIX_MISSING: 2,
  UNFIT_PATH: 2,
  NOT_CONFIRMED: 2,
  CONFLICT: 3,
  LOCK_TIMEOUT: 4,
  VERIFY_FAILED: 5,
}

export function exitCodeFor(code: ErrorCode): number {
  return EXIT_CODES[code] ?? 1
}

/**
 * errnos with which a filesystem refuses fcntl locks: ENOLCK (NFS without a
 * lock manager, `nolock`), ENOSYS (Lustre without `-o flock`), EOPNOTSUPP /
 * ENOTSUP, and EINVAL (filesystems without OFD lock support).
 */
export function isLockUnsupported(code: string | undefined): boolean {
  return code === 'ENOLCK' || code === 'ENOSYS' || code === 'EOPNOTSUPP' || code === 'ENOTSUP' || code === 'EINVAL'
}

/** What to do about a prefix viewctl may not read (PREFIX_UNREADABLE): it needs read and search permission on all of it. */
export const PREFIX_PERMISSION_HINT =
  'viewctl reads every directory of every prefix as the user it runs as; give that user read and search permission (e.g. `chmod -R a+rX` on the prefix, and search permission on the directories above it), or leave the prefix out of the manifest'

/** ` (owner alice, mode 0644)` for a path that exists, '' otherwise: a permission error says whose the file is. */
function accessOf(p: string): string {
  try {
    const st = fs.lstatSync(p)
    return ` (owner ${ownerName(st.uid)}, mode ${(st.mode & 0o7777).toString(8).padStart(4, '0')})`
  } catch {
    return ''
  }
}

const names = new Map<number, string>()

/** The passwd name of a uid, for messages (the number when it has none). */
export function ownerName(uid: number): string {
  let name = names.get(uid)
  if (name === undefined) {
    name = String(uid)
    try {
      for (const line of fs.readFileSync('/etc/passwd', 'utf8').split('\n')) {
        const f = line.split(':')
        if (Number(f[2]) === uid && f[0]) {
          name = f[0]
          break
        }
      }
    } catch {
      // no passwd file: the number will do
    }
    names.set(uid, name)
  }
  return name
}

export class ViewError extends Error {
  readonly code: ErrorCode
  readonly hint: string
  /** Structured details for --json output (conflict lists, holder info, …). */
  readonly details: Record<string, unknown> | undefined

  constructor(code: ErrorCode, message: string, hint = '', details?: Record<string, unknown>, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'ViewError'
    this.code = code
    this.hint = hint
    this.details = details
  }
}

export function isViewError(err: unknown): err is ViewError {
  return err instanceof ViewError
}

interface OsErrorLike {
  code?: string
  path?: string
  dest?: string
  syscall?: string
  message?: string
}

function isOsError(err: unknown): err is OsErrorLike & Error {
  return err instanceof Error && typeof (err as OsErrorLike).code === 'string'
}

/**
 * Turn an OS error (EACCES, ENOSPC, EXDEV, …) into one sentence a user
 * understands. `doing` names the step, e.g. "building generation 3f9c… in
 * /opt/views/._hpc". Errors that are already ViewErrors pass through.
 */
export function translateOsError(err: unknown, doing: string): ViewError {
  if (isViewError(err)) return err
  if (!isOsError(err)) {
    const message = err instanceof Error ? err.message : String(err)
    return new ViewError('INTERNAL', `internal error while ${doing}: ${message}`, 'this is a bug in viewctl; please report it with the output of --debug', undefined, { cause: err })
  }
  const where = err.path ? ` at ${err.path}${err.dest ? ` -> ${err.dest}` : ''}` : ''
  const cause = { cause: err }
  switch (err.code) {
    case 'EACCES':
    case 'EPERM': {
      const access = err.path ? accessOf(err.path) : ''
      // a file of a store (`._<name>/…`) that its sharing does not let this user write: say whose it is and who fixes it
      const inStore = err.path !== undefined && /\/\._[^/]+\/[^/]/.test(err.path) && access !== ''
      const hint = inStore
        ? `a store shared by a group needs its files group-writable: the next writer run by the file's owner (or root) brings the store's files to its modes, or its owner can \`chmod g+w\` it; \`viewctl status\` lists the files it finds wrong`
        : "run as a user who may write the view's parent directory and its store, or choose a view path you own"
      return new ViewError('PERMISSION', `permission denied${where}${access} while ${doing}`, hint, undefined, cause)
    }
    case 'ENOSPC':
    case 'EDQUOT':
      return new ViewError('DISK_FULL', `no space left on the device${where} while ${doing} (${err.code === 'EDQUOT' ? 'quota exceeded' : 'out of blocks or inodes'})`, 'free space or inodes on that filesystem (`df -h`, `df -i`), or run `viewctl gc` to drop old generations, then retry; the view was left on its previous generation', undefined, cause)
    case 'EROFS':
      return new ViewError('READ_ONLY', `read-only filesystem${where} while ${doing}`, 'remount the filesystem read-write or put the view on a writable filesystem', undefined, cause)
    case 'EXDEV':
      return new ViewError('XDEV_HARDLINK', `cannot hardlink across filesystems${where} while ${doing}`, 'hardlinks need the prefixes and the view on one filesystem; use `link: symlink` (or `link: copy`) in the manifest', undefined, cause)
    case 'ENAMETOOLONG':
      return new ViewError('NAME_TOO_LONG', `file name too long${where} while ${doing}`, 'shorten the view path or the prefix path; the kernel limits a name to 255 bytes and a path to 4096', undefined, cause)
    case 'ELOOP':
      if ((err as { refusedSymlink?: boolean }).refusedSymlink) {
        return new ViewError('UNSAFE_PATH', `${err.path} is a symlink, which viewctl does not follow in a store or a generation (while ${doing})`, 'a file of the store was replaced by a symlink, which could redirect a write to any file the writer may change; remove the symlink (and find out who made it), then retry', undefined, cause)
      }
      return new ViewError('SYMLINK_LOOP', `too many levels of symbolic links${where} while ${doing}`, 'a symlink loops back on itself; fix or remove it', undefined, cause)
    case 'EMFILE':
    case 'ENFILE':
      return new ViewError('IO', `too many open files${where} while ${doing}`, 'raise the open-file limit (`ulimit -n`) and retry', undefined, cause)
    case 'ENOLCK':
    case 'EOPNOTSUPP':
    case 'ENOTSUP':
    case 'ENOSYS':
      return new ViewError('LOCK_UNSUPPORTED', `the filesystem refused a lock${where} while ${doing}`, 'NFS mounted with `nolock` or Lustre without `-o flock` cannot lock; mount with locking, or pass --no-lock if you are sure no other writer runs', undefined, cause)
    default:
      return new ViewError('IO', `${err.code}${where} while ${doing}: ${err.message}`, 'check the path and the filesystem, then retry; the view was left on its previous generation', undefined, cause)
  }
}
