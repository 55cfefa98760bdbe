/** status and list: read-only, no lock. */
import { layoutFor, generationDir, linkTargetFor, type Layout } from '../store/layout.js'
import { describeProblem, modeProblems, storeSharing } from '../store/guard/sharing.js'
import { BAD_LINES_FILE } from '../store/journal/history.js'
import { listGenerations, readViewState, requireManaged, type GenerationInfo } from '../store/journal/state.js'
import { readMeta } from '../store/journal/meta.js'
import { viewPathOf } from '../manifest/target.js'

export interface StatusResult {
  view: string
  store: string
  generation: number | null
  hash: string
  target: string
  canonical: string
  /** When the current generation became current (the last switch to it). */
  since: string | null
  ageMs: number | null
  prefixes: number
  entries: number
  manifest: string | null
  generationsOnDisk: number
  health: 'ok' | 'degraded'
  problems: string[]
}

export function status(target: string): StatusResult {
  const layout = layoutFor(viewPathOf(target))
  const state = readViewState(layout)
  requireManaged(state)
  const dir = generationDir(layout, state.hash)
  const meta = readMeta(dir)
  const problems: string[] = []
  if (!meta) problems.push(`the current tree ${dir} is missing or has no .viewctl/meta.json`)
  if (!state.current) problems.push('the journal has no record of the current hash (history.jsonl missing or edited)')
  if (state.target !== linkTargetFor(layout, state.hash)) problems.push(`unexpected link target ${state.target}`)
  for (const c of state.corrupt) problems.push(`${layout.history} line ${c.line} is not a record (the journal is damaged; the tree it named stays reachable by its hash: \`viewctl rollback --to <hash>\`); the next writer takes it out and keeps it in ${BAD_LINES_FILE}`)
  problems.push(...storeProblems(layout))
  const gens = listGenerations(state)
  const since = state.current?.at ?? null
  return {
    view: layout.view,
    store: layout.store,
    generation: state.current?.generation ?? null,
    hash: state.hash,
    target: state.target!,
    canonical: dir,
    since,
    ageMs: since ? Date.now() - Date.parse(since) : null,
    prefixes: meta?.prefixes.length ?? 0,
    entries: meta?.counts.entries ?? 0,
    manifest: state.current?.manifest ?? meta?.manifest ?? null,
    generationsOnDisk: new Set(gens.filter((g) => g.onDisk).map((g) => g.hash)).size,
    health: problems.length ? 'degraded' : 'ok',
    problems,
  }
}

/** What is wrong with the store itself: a symlink in its place, files whose modes its sharing does not allow (store/guard/sharing.ts). */
function storeProblems(layout: Layout): string[] {
  let sharing
  try {
    sharing = storeSharing(layout)
  } catch (err) {
    return [err instanceof Error ? err.message : String(err)]
  }
  const problems = modeProblems(layout, sharing).map(describeProblem)
  if ((sharing.mode & 0o020) !== 0 && (sharing.mode & 0o2000) === 0) {
    problems.push(`the store ${layout.store} is group-writable but not setgid: each file takes the group of whoever made it, which other members may not write (\`chmod g+s ${layout.store}\`)`)
  }
  return problems
}

export interface ListResult {
  view: string
  current: number | null
  generations: GenerationInfo[]
}

export interface HistoryEntry {
  at: string
  action: string
  generation: number
  hash: string
  /** The generation it switched away from (rollback, switch), when recorded. */
  from: number | null
  user: string
  host: string
  argv: string[]
  /** This switch put the view on what it shows now (the last record of the current tree). */
  current: boolean
}

export interface HistoryResult {
  view: string
  current: number | null
  history: HistoryEntry[]
}

/** Every record of the journal, oldest first: each regenerate, rollback, switch, adoption, push. */
export function history(target: string): HistoryResult {
  const layout = layoutFor(viewPathOf(target))
  const state = readViewState(layout)
  requireManaged(state)
  return {
    view: layout.view,
    current: state.current?.generation ?? null,
    history: state.records.map((r) => ({ at: r.at, action: r.action, generation: r.generation, hash: r.hash, from: r.from ?? null, user: r.user, host: r.host, argv: r.argv, current: r === state.current })),
  }
}

export function list(target: string): ListResult {
  const layout = layoutFor(viewPathOf(target))
  const state = readViewState(layout)
  requireManaged(state)
  return { view: layout.view, current: state.current?.generation ?? null, generations: listGenerations(state) }
}

