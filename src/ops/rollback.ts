/**
 * rollback: switch the view to an earlier generation in one rename. No tree
 * is built and no generation number is created; the switch is recorded.
 * Rolling back to a generation that shares the current tree but not its
 * settings (ops/settings.ts) is a switch too: the record alone makes it
 * current, and its settings with it.
 */
import { ViewError } from '../errors.js'
import { appendHistory, newRecord, retractHistory, switches } from '../store/journal/history.js'
import { layoutFor } from '../store/layout.js'
import { publishGeneration } from '../store/build/publish.js'
import { isComplete, listGenerations, readViewState, requireManaged, type GenerationInfo, type ViewState } from '../store/journal/state.js'
import { viewPathOf } from '../manifest/target.js'
import { withWriter, type WriterOptions } from './writer.js'
import { recordSettings, sameSettings } from './settings.js'

export interface RollbackOptions extends WriterOptions {
  /** A generation number or a hash prefix; default: the previous generation. */
  to?: string
}

export interface RollbackResult {
  view: string
  from: number | null
  to: number
  hash: string
  warnings: string[]
}

export async function rollback(target: string, opts: RollbackOptions = {}): Promise<RollbackResult> {
  const layout = layoutFor(viewPathOf(target))
  requireManaged(readViewState(layout))
  return withWriter(layout, opts, () => {
    const state = readViewState(layout)
    requireManaged(state)
    const dest = opts.to === undefined ? previousGeneration(state) : findGeneration(state, opts.to)
    if (!isComplete(layout, dest.hash)) {
      throw new ViewError('GENERATION_COLLECTED', `generation ${dest.generation} (${dest.hash.slice(0, 12)}) of ${layout.view} was garbage-collected; its tree is gone`, 'pick one that is still on disk (`viewctl list`), or regenerate from its manifest')
    }
    const from = state.current?.generation ?? null
    const sameTree = dest.hash === state.hash
    if (sameTree && (dest.generation === from || sameSettings(settingsOf(state, dest.generation), recordSettings(state.current)))) {
      return { view: layout.view, from, to: dest.generation, hash: dest.hash, warnings: [`${layout.view} already shows generation ${dest.generation}'s tree and settings; nothing to do`] }
    }
    const record = newRecord({ generation: dest.generation, hash: dest.hash, action: 'rollback', argv: opts.argv ?? process.argv.slice(1), from: from ?? undefined, ...carriedSettings(state, dest.generation) })
    const size = appendHistory(layout.history, record)
    try {
      // the same tree with other settings: the record alone switches, the view already points there
      const warnings = sameTree ? [] : publishGeneration(layout, dest.hash)
      return { view: layout.view, from, to: dest.generation, hash: dest.hash, warnings }
    } catch (err) {
      retractHistory(layout.history, size)
      throw err
    }
  })
}

/** The env and gc settings recorded when that generation was made. */
function carriedSettings(state: ViewState, generation: number) {
  const made = switches(state.records).find((r) => r.generation === generation && r.action !== 'rollback')
  return { manifest: made?.manifest, env: made?.env, gc: made?.gc }
}

function settingsOf(state: ViewState, generation: number) {
  return recordSettings(carriedSettings(state, generation))
}

/**
 * The generation below the current one that a rollback returns to: the
 * newest still on disk that differs from the current one, by its tree or by
 * its settings (a "settings changed" generation shares its tree with the one
 * before it, and is a step of its own).
 */
function previousGeneration(state: ViewState & { hash: string }): GenerationInfo {
  const current = state.current?.generation ?? Infinity
  const now = recordSettings(state.current)
  const candidates = listGenerations(state).filter((g) => g.generation < current && g.onDisk && (g.hash !== state.hash || !sameSettings(settingsOf(state, g.generation), now)))
  const dest = candidates[candidates.length - 1]
  if (!dest) {
    throw new ViewError('NO_ROLLBACK_TARGET', `${state.layout.view} has no earlier generation on disk to roll back to (current: ${state.current ? `generation ${state.current.generation}` : state.hash})`, '`viewctl list` shows the generations; `rollback --to N` switches to a later one')
  }
  return dest
}

export function findGeneration(state: ViewState, spec: string): GenerationInfo {
  const gens = listGenerations(state)
  if (/^\d+$/.test(spec)) {
    const n = Number(spec)
    const g = gens.find((x) => x.generation === n)
    if (!g) throw new ViewError('GENERATION_NOT_FOUND', `${state.layout.view} has no generation ${n}`, `\`viewctl list ${state.layout.view}\` shows the generations`)
    return g
  }
  const prefix = spec.toLowerCase()
  const matches = [...new Map(gens.filter((g) => g.hash.startsWith(prefix)).map((g) => [g.hash, g])).values()]
  if (matches.length === 0) throw new ViewError('GENERATION_NOT_FOUND', `${state.layout.view} has no generation whose hash starts with ${spec}`, `\`viewctl list ${state.layout.view}\` shows the generations`)
  if (matches.length > 1) throw new ViewError('USAGE', `hash prefix ${spec} is ambiguous: ${matches.map((g) => g.hash.slice(0, 12)).join(', ')}`, 'give more characters of the hash, or the generation number')
  // several numbers can share one tree: take the newest of them
  const all = gens.filter((g) => g.hash === matches[0]!.hash)
  return all[all.length - 1]!
}
