/**
 * verify: the current tree against the plan it was built from. Every planned
 * entry exists with the right type and target and resolves (unless the
 * prefix itself ships it dangling); nothing unplanned sits in the tree.
 */
import fs from 'node:fs'
import path from 'node:path'
import { decodeName, fsPath } from '../fs.js'
import { viewPathOf } from '../manifest/target.js'
import { Kind, NO_SOURCE } from '../plan/types.js'
import { EntryType, readDirListing } from '../plan/scan.js'
import { readMeta, type GenerationMeta } from '../store/journal/meta.js'
import { generationDir, layoutFor, META_DIR, realGenerationDir, type Layout } from '../store/layout.js'
import type { ParsedPlan } from '../plan/hash.js'
import { readGenerationPlan } from '../store/journal/plan-file.js'
import { readViewState, requireManaged } from '../store/journal/state.js'
import { BAD_LINES_FILE, type CorruptLine } from '../store/journal/history.js'

export type ProblemKind = 'missing' | 'extra' | 'wrong-type' | 'wrong-target' | 'dangling' | 'incomplete' | 'journal'

export interface VerifyProblem {
  path: string
  problem: ProblemKind
  detail: string
}

export interface VerifyResult {
  view: string
  generation: number | null
  hash: string
  checked: number
  ok: boolean
  problems: VerifyProblem[]
}

/** The current tree of a view and what it must hold: the plan it was built from and how (its meta). */
export interface CheckedTree {
  layout: Layout
  generation: number | null
  hash: string
  root: string
  /** The tree's directory with the symlinks in its parents resolved (relative links are computed from it). */
  realRoot: string
  plan: ParsedPlan
  /** Null when meta.json is missing: the tree is incomplete, and only a regenerate can rebuild it. */
  meta: GenerationMeta | null
  mode: string
  relative: boolean
  /** Lines of the journal that are not records: reported with the tree's problems (a writer, verify --repair too, mends them). */
  corrupt: CorruptLine[]
}

export function verify(target: string): VerifyResult {
  const tree = currentTree(layoutFor(viewPathOf(target)))
  const journal = tree.corrupt.map((c): VerifyProblem => ({ path: path.basename(tree.layout.history), problem: 'journal', detail: `line ${c.line} is not a record; the next writer (verify --repair is one) takes it out and keeps it in ${BAD_LINES_FILE}` }))
  return resultOf(tree, [...journal, ...checkTree(tree)])
}

export function currentTree(layout: Layout): CheckedTree {
  const state = readViewState(layout)
  requireManaged(state)
  const root = generationDir(layout, state.hash)
  const plan = readGenerationPlan(layout, state.hash, state.current?.generation)
  const meta = readMeta(root)
  const mode = meta?.options.link ?? 'symlink'
  return {
    layout,
    generation: state.current?.generation ?? null,
    hash: state.hash,
    root,
    realRoot: realGenerationDir(layout, state.hash),
    plan,
    meta,
    mode,
    relative: mode === 'symlink' && !!meta?.options.relative,
    corrupt: state.corrupt,
  }
}

export function resultOf(tree: CheckedTree, problems: VerifyProblem[]): VerifyResult {
  return { view: tree.layout.view, generation: tree.generation, hash: tree.hash, checked: tree.plan.paths.length, ok: problems.length === 0, problems }
}

/** Every way the tree differs from its plan: planned entries first, in plan order, then the extra ones. */
export function checkTree(tree: CheckedTree): VerifyProblem[] {
  const { root, plan, mode, relative, realRoot } = tree
  const problems: VerifyProblem[] = []
  if (tree.meta === null) problems.push({ path: `${META_DIR}/meta.json`, problem: 'incomplete', detail: 'the tree has no meta.json, which is written last: it is not a complete generation (regenerate rebuilds it)' })
  const planned = new Set<string>()

  for (let i = 0; i < plan.paths.length; i++) {
    const rel = plan.paths[i]!
    const kind = plan.kinds[i]!
    const src = plan.sources[i]!
    planned.add(rel)
    const abs = `${root}/${rel}`
    let st: fs.Stats
    try {
      st = fs.lstatSync(fsPath(abs))
    } catch {
      problems.push({ path: rel, problem: 'missing', detail: 'planned but not in the tree' })
      continue
    }
    if (kind === Kind.Dir) {
      if (!st.isDirectory()) problems.push({ path: rel, problem: 'wrong-type', detail: 'should be a directory' })
      continue
    }
    const source = src === NO_SOURCE ? null : `${plan.prefixes[src]}/${rel}`
    if (source === null) continue
    if (mode === 'symlink') checkSymlink(rel, abs, st, source, relative, realRoot, problems)
    else if (mode === 'hardlink') checkHardlink(rel, st, source, problems)
    else checkCopy(rel, st, source, kind, problems)
  }

  collectExtras(root, '', planned, problems)
  return problems
}

/** The target a planned symlink has: its source, or (relative views) the way there from where the link is. */
export function plannedTarget(tree: Pick<CheckedTree, 'relative' | 'realRoot'>, rel: string, source: string): string {
  return tree.relative ? path.relative(path.dirname(path.join(tree.realRoot, rel)), source) : source
}

function checkSymlink(rel: string, abs: string, st: fs.Stats, source: string, relative: boolean, realRoot: string, problems: VerifyProblem[]) {
  if (!st.isSymbolicLink()) {
    problems.push({ path: rel, problem: 'wrong-type', detail: `should be a symlink to ${source}` })
    return
  }
  // read as bytes: a target with non-UTF-8 bytes is carried escaped, as the plan carries it
  const actual = decodeName(fs.readlinkSync(fsPath(abs), 'buffer'))
  const expected = plannedTarget({ relative, realRoot }, rel, source)
  if (actual !== expected) {
    problems.push({ path: rel, problem: 'wrong-target', detail: `points to ${actual}, planned ${expected}` })
    return
  }
  if (!fs.existsSync(fsPath(abs)) && !shipsDangling(source)) {
    problems.push({ path: rel, problem: 'dangling', detail: `${source} does not exist any more` })
  }
}

/** The prefix itself ships a dangling symlink there: not the view's fault. */
function shipsDangling(source: string): boolean {
  try {
    return fs.lstatSync(fsPath(source)).isSymbolicLink() && !fs.existsSync(fsPath(source))
  } catch {
    return false
  }
}

function checkHardlink(rel: string, st: fs.Stats, source: string, problems: VerifyProblem[]) {
  let sst: fs.Stats
  try {
    sst = fs.lstatSync(fsPath(source))
  } catch {
    problems.push({ path: rel, problem: 'dangling', detail: `${source} does not exist any more` })
    return
  }
  if (sst.ino !== st.ino || sst.dev !== st.dev) problems.push({ path: rel, problem: 'wrong-target', detail: `is not a hardlink of ${source} (the source was replaced; regenerate)` })
}

function checkCopy(rel: string, st: fs.Stats, source: string, kind: number, problems: VerifyProblem[]) {
  if (kind === Kind.Symlink) {
    if (!st.isSymbolicLink()) problems.push({ path: rel, problem: 'wrong-type', detail: 'should be a symlink (copied from the prefix)' })
    return
  }
  if (!st.isFile()) {
    problems.push({ path: rel, problem: 'wrong-type', detail: 'should be a regular file (a copy)' })
    return
  }
  try {
    const sst = fs.statSync(fsPath(source))
    if (sst.size !== st.size) problems.push({ path: rel, problem: 'wrong-target', detail: `size ${st.size} differs from ${source} (${sst.size}); regenerate` })
  } catch {
    // the source is gone; the copy still stands on its own
  }
}

function collectExtras(root: string, rel: string, planned: Set<string>, problems: VerifyProblem[]) {
  let listing
  try {
    listing = readDirListing(rel ? `${root}/${rel}` : root)
  } catch {
    return
  }
  listing.names.forEach((name, i) => {
    const child = rel ? `${rel}/${name}` : name
    if (rel === '' && name === META_DIR) return
    if (!planned.has(child)) {
      problems.push({ path: child, problem: 'extra', detail: 'in the tree but not in the plan' })
      return
    }
    if (listing.types[i] === EntryType.Dir) collectExtras(root, child, planned, problems)
  })
}
