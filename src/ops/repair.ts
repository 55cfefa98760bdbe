/**
 * verify --repair: make the current tree match its plan again, in place,
 * while readers keep using the view.
 *
 * A writer: it takes the writer lock (so no gc retires the tree and no other
 * repair races it) and honours --lock-timeout. Each entry the check found
 * wrong is re-created as the plan says under a temporary name beside it and
 * renamed over it, so a reader sees the old entry or the new one, never
 * none; a missing entry appears the same way, and an extra one is renamed
 * into the store's trash (it disappears in one step) and removed there. The
 * view path itself is never touched. One case cannot be a single rename:
 * a directory where a link should be (or the reverse), since rename() does
 * not put a directory over a file; the wrong one is moved to trash first,
 * and the path is missing between the two renames, as for --adopt.
 *
 * What cannot be repaired is reported, and the command exits 5: an entry
 * whose source the prefix no longer has (only a new plan can drop it), an
 * adopted tree's entry (its content is recorded nowhere), and a tree without
 * meta.json (incomplete: regenerate rebuilds it).
 */
import fs from 'node:fs'
import path from 'node:path'
import * as sfs from '../fs.js'
import { translateOsError } from '../errors.js'
import { viewPathOf } from '../manifest/target.js'
import { Kind, NO_SOURCE } from '../plan/types.js'
import { layoutFor, nonce, trashDir } from '../store/layout.js'
import { readViewState, requireManaged } from '../store/journal/state.js'
import { checkTree, currentTree, plannedTarget, resultOf, type CheckedTree, type VerifyProblem, type VerifyResult } from './verify.js'
import { enterWriter, withWriter, type WriterOptions } from './writer.js'

export interface RepairResult extends VerifyResult {
  /** What the check found before repairing. */
  found: VerifyProblem[]
  repaired: VerifyProblem[]
  /** What could not be repaired, and why. */
  unrepaired: Array<VerifyProblem & { why: string }>
}

export async function repair(target: string, opts: WriterOptions = {}): Promise<RepairResult> {
  const layout = layoutFor(viewPathOf(target))
  enterWriter(layout, opts)
  requireManaged(readViewState(layout))
  return withWriter(layout, opts, () => {
    const tree = currentTree(layout)
    const found = checkTree(tree)
    const repaired: VerifyProblem[] = []
    const unrepaired: RepairResult['unrepaired'] = []
    // where each problem's path is in the plan: looked up only for the paths that need it
    const wanted = new Set(found.map((p) => p.path))
    const index = new Map<string, number>()
    if (wanted.size > 0) tree.plan.paths.forEach((p, i) => wanted.has(p) && index.set(p, i))
    for (const problem of found) {
      let why: string | null
      try {
        why = repairOne(tree, problem, index.get(problem.path))
      } catch (err) {
        why = translateOsError(err, `repairing ${path.join(tree.root, problem.path)}`).message
      }
      if (why === null) repaired.push(problem)
      else unrepaired.push({ ...problem, why })
    }
    return { ...resultOf(tree, wanted.size > 0 ? checkTree(tree) : []), found, repaired, unrepaired }
  })
}

/** Repair one entry; returns null when done, or why it cannot be done. */
function repairOne(tree: CheckedTree, problem: VerifyProblem, i: number | undefined): string | null {
  const abs = `${tree.root}/${problem.path}`
  if (problem.problem !== 'incomplete' && !parentsAreDirectories(tree, problem.path)) {
    // an earlier repair replaced a parent (an extra below it went with it), or one still is not a directory: nothing is written through a link
    return problem.problem === 'extra' ? null : 'a directory above it is not a directory of the tree'
  }
  switch (problem.problem) {
    case 'incomplete':
      return 'an incomplete tree is rebuilt by `viewctl regenerate <manifest>`, not repaired'
    case 'dangling':
      return 'the prefix no longer has the file this entry links to; reinstall it, or regenerate so that the plan drops it'
    case 'extra':
      retire(tree, abs)
      return null
  }
  if (i === undefined) return 'it is not in the plan'
  const kind = tree.plan.kinds[i]!
  const src = tree.plan.sources[i]!
  if (kind !== Kind.Dir && src === NO_SOURCE) return 'an entry of an adopted tree: what it held is recorded nowhere'
  const source = src === NO_SOURCE ? '' : `${tree.plan.prefixes[src]}/${problem.path}`
  const tmp = `${path.dirname(abs)}/.${path.basename(abs)}.repair-${process.pid}-${nonce()}`
  create(tree, tmp, problem.path, kind, source)
  try {
    let st: fs.Stats | null = null
    try {
      st = fs.lstatSync(sfs.fsPath(abs))
    } catch {
      // missing: the rename below makes it appear
    }
    // rename() puts a directory only over a directory, and anything else only over a non-directory
    if (st !== null && st.isDirectory() !== (kind === Kind.Dir)) retire(tree, abs)
    sfs.rename(tmp, abs)
  } catch (err) {
    sfs.rmTree(tmp)
    throw err
  }
  return null
}

/**
 * Every directory between the tree's root and `rel` is a real directory
 * (lstat, one per level). A repair writes only directly inside those: never
 * through a symlink a damaged tree may hold where a directory belongs, which
 * could lead into a prefix or anywhere else.
 */
function parentsAreDirectories(tree: CheckedTree, rel: string): boolean {
  for (let slash = rel.indexOf('/'); slash !== -1; slash = rel.indexOf('/', slash + 1)) {
    try {
      if (!fs.lstatSync(sfs.fsPath(`${tree.root}/${rel.slice(0, slash)}`)).isDirectory()) return false
    } catch {
      return false
    }
  }
  return true
}

/** The planned entry, made at `tmp`: a directory, or what the view's link mode makes of its source. */
function create(tree: CheckedTree, tmp: string, rel: string, kind: number, source: string): void {
  if (kind === Kind.Dir) sfs.mkdir(tmp)
  else if (tree.mode === 'symlink') sfs.symlink(plannedTarget(tree, rel, source), tmp)
  else if (tree.mode === 'hardlink') sfs.link(source, tmp)
  else if (kind === Kind.Symlink) sfs.symlink(sfs.decodeName(fs.readlinkSync(sfs.fsPath(source), 'buffer')), tmp)
  else sfs.copyFile(source, tmp)
}

/** Take `abs` out of the tree in one rename (into the store's trash), then remove it; already gone is fine. */
function retire(tree: CheckedTree, abs: string): void {
  const trash = trashDir(tree.layout, tree.hash)
  try {
    sfs.rename(abs, trash)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return
    throw err
  }
  sfs.rmTree(trash)
}
