/**
 * Modes follow the store (DESIGN §13). A store is shared the way its own
 * directory says: its group bits are what the files in it get, whatever the
 * umask of the member who writes (a group-writable store gives
 * group-writable files), nothing is ever world-writable, the writer lock
 * gives others no permission at all (a shared lock on a readable `.lock`
 * lets anyone block every writer), and a generation's lease is readable by
 * every user who can read the view (anyone's `exec` holds one). A writer sets
 * its umask from the store's mode for as long as it holds the lock, so that
 * every file and directory it makes follows without a chmod per entry; a
 * store under a setgid directory hands its group on the same way.
 *
 * Stores made by earlier versions (0644 files) are brought to these modes by
 * the next writer, for the files it owns (only an owner may chmod); `status`
 * names those it finds wrong, with who can fix them.
 *
 * Here too the store directory itself is checked: a store that is a symlink
 * (or no directory at all) is refused, since everything a writer does below
 * it would land wherever the link points.
 */
import fs from 'node:fs'
import path from 'node:path'
import { ViewError, ownerName } from '../../errors.js'
import * as sfs from '../../fs.js'
import { isHashName, LEASE_FILE, META_DIR, type Layout } from '../layout.js'

export interface Sharing {
  /** The store directory's mode (permission bits, setgid). */
  mode: number
  uid: number
  gid: number
  /** The umask a writer creates with: the store's bits, never world-writable. */
  umask: number
}

/** The store's files and what kind of mode each must have. */
function storeFiles(layout: Layout): Array<{ file: string; lock: boolean }> {
  const names = ['history.jsonl', 'history.jsonl.bad', 'pins.json', path.basename(layout.scanCache)]
  return [{ file: layout.lock, lock: true }, ...names.map((n) => ({ file: path.join(layout.store, n), lock: false }))]
}

/** The umask that makes new files and directories follow a store of mode `mode`. */
export function umaskFor(mode: number): number {
  return (~mode & 0o077) | 0o002
}

/** The permission bits a file of this kind must have in a store of this sharing (the owner's own bits aside). */
export function wantedBits(sharing: Sharing, lock: boolean): number {
  return (lock ? 0o660 : 0o666) & ~sharing.umask & 0o077
}

/**
 * The sharing of an existing store, after checking that it is a real
 * directory (lstat: a symlink is refused, not followed).
 */
export function storeSharing(layout: Layout): Sharing {
  const st = fs.lstatSync(layout.store)
  if (st.isSymbolicLink() || !st.isDirectory()) {
    throw new ViewError(
      'UNSAFE_PATH',
      `the store ${layout.store} of ${layout.view} is ${st.isSymbolicLink() ? `a symlink (to ${fs.readlinkSync(layout.store)})` : 'not a directory'}; viewctl writes only into a real directory beside the view`,
      'a store is the directory `._<name>` that viewctl makes beside the view; move what stands there away (a symlink could send every write of the store elsewhere)',
    )
  }
  const mode = st.mode & 0o7777
  return { mode, uid: st.uid, gid: st.gid, umask: umaskFor(mode) }
}

/**
 * Make the store (and the directories above it) when it does not exist. It
 * follows the umask, except under a setgid directory (a directory an admin
 * set up for a group): there the store takes that directory's group bits
 * too, and the kernel hands on its group and its setgid bit.
 */
export function makeStore(layout: Layout): void {
  if (fs.existsSync(layout.parent)) {
    const parent = fs.statSync(layout.parent)
    if (parent.mode & 0o2000) {
      try {
        sfs.mkdir(layout.store, false, 0o777)
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'EEXIST') return
        throw err
      }
      // through a descriptor of the directory just made: a name swapped for a symlink meanwhile is refused, not followed
      sfs.chmodDirNoFollow(layout.store, (mode) => (mode & 0o7700) | (parent.mode & 0o070) | (mode & 0o005))
      return
    }
  }
  sfs.mkdir(layout.store, true)
}

/**
 * Run `fn` with the umask of the store's sharing, and the previous umask
 * back afterwards. The umask belongs to the whole process (its link threads
 * too), as the working directory does (build/workdir.ts): for a process
 * whose work is this writer.
 */
export async function withStoreUmask<T>(sharing: Sharing, fn: () => Promise<T>): Promise<T> {
  const previous = process.umask(sharing.umask)
  try {
    return await fn()
  } finally {
    process.umask(previous)
  }
}

/** A file of the store whose mode breaks the rules. */
export interface ModeProblem {
  file: string
  owner: number
  mode: number
  wanted: number
}

/**
 * Store files (and generations' leases) whose group or other bits are not
 * what the store's sharing says, or that are symlinks. One lstat each.
 */
export function modeProblems(layout: Layout, sharing: Sharing): ModeProblem[] {
  const problems: ModeProblem[] = []
  const look = (file: string, lock: boolean) => {
    let st: fs.Stats
    try {
      st = fs.lstatSync(file)
    } catch {
      return // not there: nothing to fix
    }
    const wanted = wantedBits(sharing, lock)
    if (st.isSymbolicLink() || (st.isFile() && (st.mode & 0o077) !== wanted)) problems.push({ file, owner: st.uid, mode: st.isSymbolicLink() ? -1 : st.mode & 0o7777, wanted })
  }
  for (const { file, lock } of storeFiles(layout)) look(file, lock)
  let names: string[] = []
  try {
    names = fs.readdirSync(layout.store)
  } catch {
    // unreadable: the writer says so when it gets there
  }
  for (const name of names) if (isHashName(name)) look(path.join(layout.store, name, META_DIR, LEASE_FILE), false)
  return problems
}

/**
 * Bring the store's files to the modes its sharing says, where this process
 * owns them (a chmod needs the owner, or root); returns what it could not
 * fix, in words. The file is opened without following a symlink and changed
 * through its descriptor, so a name swapped meanwhile changes nothing else.
 */
export function fixModes(layout: Layout, sharing: Sharing): string[] {
  const cannot: string[] = []
  const me = process.geteuid?.() ?? -1
  for (const p of modeProblems(layout, sharing)) {
    if (p.mode === -1) {
      cannot.push(`${p.file} is a symlink, which viewctl does not follow; remove it`)
      continue
    }
    if (p.owner !== me && me !== 0) {
      cannot.push(describeProblem(p))
      continue
    }
    try {
      const fd = sfs.openNoFollow(p.file, sfs.OPEN.O_RDONLY | sfs.OPEN.O_NONBLOCK)
      try {
        const st = fs.fstatSync(fd)
        if (st.isFile()) fs.fchmodSync(fd, (st.mode & 0o7700) | p.wanted)
      } finally {
        fs.closeSync(fd)
      }
    } catch {
      cannot.push(describeProblem(p))
    }
  }
  return cannot
}

/** One problem in words: the file, its mode and owner, the mode it should have, and who can change it. */
export function describeProblem(p: ModeProblem): string {
  if (p.mode === -1) return `${p.file} is a symlink, which viewctl does not follow; remove it`
  const show = (m: number) => m.toString(8).padStart(4, '0')
  const owner = ownerName(p.owner)
  return `${p.file} has mode ${show(p.mode)} where the store's sharing asks for ${show((p.mode & 0o7700) | p.wanted)}; only its owner ${owner} (or root) can change that: the next writer run by ${owner} fixes it, or \`chmod ${show((p.mode & 0o700) | p.wanted).slice(1)} ${p.file}\``
}

/** A store that root owns and others may write: root warns (a member can race any path below it). */
export function riskyForRoot(layout: Layout, sharing: Sharing): string | null {
  if (process.geteuid?.() !== 0 || sharing.uid !== 0 || (sharing.mode & 0o022) === 0) return null
  const who = sharing.mode & 0o002 ? 'every user' : 'its group'
  return `the store ${layout.store} belongs to root but ${who} may write it: a member can replace any path below it while root works there; viewctl opens nothing there through a symlink and checks each directory it enters, but a shared store should belong to a service account (docs/safety.md, "Many users")`
}
