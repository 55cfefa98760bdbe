/**
 * Where a view may be made, and what a real directory at a view path is.
 *
 * A view's store is the sibling `._<name>`, so names can collide. With view
 * `x` built, a manifest whose view is `._x` finds a real directory there (x's
 * store); adopting it would move every generation and the journal of x into
 * a generation of the new view, and x would dangle at once. In the other
 * order, with a view `._y` built, a view `y` would find its store path
 * `._y` to be a symlink into `.__y/<hash>` and write its store inside that
 * view's current, supposedly immutable, generation. Both are refused before
 * anything is written (STORE_COLLISION, exit 2), as is a view path that lies
 * inside a store or a generation.
 *
 * A real directory at a view path is offered `--adopt` only when it could be
 * an old view: a directory of install trees (bin/, lib/, share/ …), not the
 * filesystem root, not a world-writable directory such as /tmp, not the
 * folder that holds the manifest, and never a store or a generation.
 */
import fs from 'node:fs'
import path from 'node:path'
import { ViewError } from '../errors.js'
import { isHashName, META_DIR, META_FILE, type Layout } from './layout.js'

/** The names every install tree has one of; a directory with none of them is no old view. */
const VIEW_LIKE = ['bin', 'sbin', 'lib', 'lib64', 'libexec', 'include', 'share', 'etc', 'man']

function exists(p: string): boolean {
  try {
    fs.lstatSync(p)
    return true
  } catch {
    return false
  }
}

/** Is `dir` a viewctl store: named `._<view>`, holding a journal or a lock? */
export function holdsStore(dir: string): boolean {
  return path.basename(dir).startsWith('._') && (exists(path.join(dir, 'history.jsonl')) || exists(path.join(dir, '.lock')))
}

/** Is `dir` a generation tree (it has `.viewctl/meta.json`)? */
export function isGenerationTree(dir: string): boolean {
  return exists(path.join(dir, META_DIR, META_FILE))
}

/** The view whose store `storeDir` is: `/v/._x` -> `/v/x`. */
function viewOfStore(storeDir: string): string {
  return path.join(path.dirname(storeDir), path.basename(storeDir).slice(2))
}

/**
 * Refuse a view path that is, or lies inside, another view's store or
 * generation, and a store path that is another view. Reads only; called by
 * regenerate before anything is written and again under the lock.
 */
export function assertNoCollision(layout: Layout): void {
  const hint = 'choose a view path outside every store (the hidden `._<name>` directories beside the views) and whose `._<name>` is not taken by another view; nothing was changed'
  const inside = storeAbove(layout.parent)
  if (inside !== null) {
    throw new ViewError('STORE_COLLISION', `${layout.view} lies inside ${inside.what}; a view there would be written into another view's store`, hint)
  }
  let st: fs.Stats | null = null
  try {
    st = fs.lstatSync(layout.view)
  } catch {
    // nothing there
  }
  if (st?.isDirectory()) {
    if (holdsStore(layout.view)) {
      throw new ViewError('STORE_COLLISION', `${layout.view} is the store of the view ${viewOfStore(layout.view)}: it holds that view's generations and journal, and cannot be a view of its own`, hint)
    }
    if (isGenerationTree(layout.view)) {
      throw new ViewError('STORE_COLLISION', `${layout.view} is a viewctl generation tree, not a view path`, hint)
    }
  }
  let storeSt: fs.Stats | null = null
  try {
    storeSt = fs.lstatSync(layout.store)
  } catch {
    return // made by the first writer
  }
  if (storeSt.isSymbolicLink()) {
    const target = fs.readlinkSync(layout.store)
    const isView = new RegExp(`^\\._${escapeRe(path.basename(layout.store))}/[0-9a-f]{16,64}$`).test(target)
    if (isView) {
      throw new ViewError('STORE_COLLISION', `the store path ${layout.store} of ${layout.view} is itself a view (a symlink to ${target}); ${layout.view}'s store would be written inside that view's current generation`, hint)
    }
  }
}

/** The store or generation that the directory `dir` (made yet or not) lies in, if any. */
function storeAbove(dir: string): { what: string } | null {
  const parts = realPathOf(dir).split('/')
  for (let i = 1; i < parts.length; i++) {
    if (!parts[i]!.startsWith('._') || parts[i]!.length <= 2) continue
    const candidate = parts.slice(0, i + 1).join('/')
    if (!holdsStore(candidate)) continue
    const next = parts[i + 1]
    if (next !== undefined && isHashName(next) && isGenerationTree(path.join(candidate, next))) {
      return { what: `generation ${next.slice(0, 12)} of the view ${viewOfStore(candidate)}` }
    }
    return { what: `the store ${candidate} of the view ${viewOfStore(candidate)}` }
  }
  return null
}

export interface NotAView {
  /** Why the directory is not plausibly an old view, as a clause ("it is …"). */
  why: string
  /** Adopting it would do harm (move a store, the manifest, /tmp …): refused even with --adopt. */
  unsafe: boolean
}

/**
 * Why the real directory `dir` is not plausibly an old view, or null when it
 * could be one. `manifestFile`: the manifest being applied, whose own
 * folder is never a view.
 */
export function notAnOldView(dir: string, manifestFile?: string): NotAView | null {
  const unsafe = (why: string): NotAView => ({ why, unsafe: true })
  let real: string
  try {
    real = fs.realpathSync(dir)
  } catch {
    return unsafe('it cannot be resolved')
  }
  if (real === path.parse(real).root) return unsafe('it is the filesystem root')
  if (fs.statSync(dir).dev !== fs.statSync(path.dirname(real)).dev) return unsafe('it is a mount point, and a mount point cannot be replaced by a symlink')
  if (holdsStore(dir)) return unsafe(`it is the store of the view ${viewOfStore(dir)}`)
  if (isGenerationTree(dir)) return unsafe('it is a viewctl generation tree')
  if (fs.statSync(dir).mode & 0o1002) return unsafe('it is writable by every user, like /tmp')
  if (manifestFile !== undefined) {
    const manifestDir = fs.realpathSync(path.dirname(path.resolve(manifestFile)))
    if (manifestDir === real || manifestDir.startsWith(`${real}/`)) return unsafe(`it holds the manifest ${manifestFile}`)
  }
  let names: string[]
  try {
    names = fs.readdirSync(dir)
  } catch {
    return unsafe('it cannot be read')
  }
  if (names.some((n) => isHashName(n) && isGenerationTree(path.join(dir, n)))) return unsafe('it holds viewctl generation trees')
  if (!names.some((n) => VIEW_LIKE.includes(n))) return { why: `it holds none of ${VIEW_LIKE.map((n) => `${n}/`).join(', ')}, what an install tree has`, unsafe: false }
  return null
}

/** realpath() of the deepest part of `p` that exists, with the rest appended. */
function realPathOf(p: string): string {
  const missing: string[] = []
  for (let current = p; ; ) {
    try {
      return path.join(fs.realpathSync(current), ...missing.reverse())
    } catch {
      const parent = path.dirname(current)
      if (parent === current) return p
      missing.push(path.basename(current))
      current = parent
    }
  }
}

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
}
