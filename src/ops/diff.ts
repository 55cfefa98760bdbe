/** diff: what changed between two generations, read from their recorded plans. */
import { ViewError } from '../errors.js'
import { viewPathOf } from '../manifest/target.js'
import { KIND_LETTERS, NO_SOURCE } from '../plan/types.js'
import { layoutFor } from '../store/layout.js'
import { readGenerationPlan } from '../store/journal/plan-file.js'
import { listGenerations, readViewState, requireManaged, type GenerationInfo, type ViewState } from '../store/journal/state.js'
import { switches } from '../store/journal/history.js'
import { findGeneration } from './rollback.js'

export interface PathChange {
  path: string
  /** kind letter and source prefix before and after (kind letters as in the plan file) */
  before?: string
  after?: string
}

export interface DiffResult {
  view: string
  from: { generation: number; hash: string }
  to: { generation: number; hash: string }
  prefixesAdded: string[]
  prefixesRemoved: string[]
  added: PathChange[]
  removed: PathChange[]
  changed: PathChange[]
}

export function diff(target: string, a?: string, b?: string): DiffResult {
  const layout = layoutFor(viewPathOf(target))
  const state = readViewState(layout)
  requireManaged(state)
  const gens = listGenerations(state)
  const to: GenerationInfo = b !== undefined ? findGeneration(state, b) : currentRow(gens, state.layout.view)
  const from: GenerationInfo = a !== undefined ? findGeneration(state, a) : previousRow(state, gens, to)
  const planA = readGenerationPlan(layout, from.hash, from.generation)
  const planB = readGenerationPlan(layout, to.hash, to.generation)

  const describe = (kinds: number[], sources: number[], prefixes: string[], i: number) => {
    const src = sources[i]!
    return `${KIND_LETTERS[kinds[i]!]} ${src === NO_SOURCE ? '-' : prefixes[src]}`
  }
  const before = new Map<string, string>()
  for (let i = 0; i < planA.paths.length; i++) before.set(planA.paths[i]!, describe(planA.kinds, planA.sources, planA.prefixes, i))
  const added: PathChange[] = []
  const changed: PathChange[] = []
  for (let i = 0; i < planB.paths.length; i++) {
    const p = planB.paths[i]!
    const after = describe(planB.kinds, planB.sources, planB.prefixes, i)
    const was = before.get(p)
    if (was === undefined) added.push({ path: p, after })
    else if (was !== after) changed.push({ path: p, before: was, after })
    before.delete(p)
  }
  const removed: PathChange[] = [...before].map(([path, was]) => ({ path, before: was }))
  const setA = new Set(planA.prefixes)
  const setB = new Set(planB.prefixes)
  return {
    view: layout.view,
    from: { generation: from.generation, hash: from.hash },
    to: { generation: to.generation, hash: to.hash },
    prefixesAdded: planB.prefixes.filter((p) => !setA.has(p)),
    prefixesRemoved: planA.prefixes.filter((p) => !setB.has(p)),
    added,
    removed,
    changed,
  }
}

function currentRow(gens: GenerationInfo[], view: string): GenerationInfo {
  const cur = gens.find((g) => g.current)
  if (!cur) throw new ViewError('GENERATION_NOT_FOUND', `${view}: the journal has no record of the current generation`, 'give both generations explicitly: `viewctl diff <view> A B`')
  return cur
}

/**
 * The default "before": the generation that was current just before `to`
 * became current (after a rollback, the one rolled back from), else the
 * highest-numbered earlier one still on disk.
 */
function previousRow(state: ViewState, gens: GenerationInfo[], to: GenerationInfo): GenerationInfo {
  const sw = switches(state.records)
  let i = sw.length - 1
  while (i >= 0 && sw[i]!.generation !== to.generation) i--
  for (let j = i - 1; j >= 0; j--) {
    if (sw[j]!.hash === to.hash) continue
    const row = gens.find((g) => g.generation === sw[j]!.generation)
    if (row?.onDisk) return row
  }
  const earlier = gens.filter((g) => g.generation < to.generation && g.onDisk && g.hash !== to.hash)
  const prev = earlier[earlier.length - 1]
  if (!prev) throw new ViewError('GENERATION_NOT_FOUND', `${state.layout.view}: no earlier generation on disk to compare generation ${to.generation} with`, 'give two generations: `viewctl diff <view> A B`')
  return prev
}
