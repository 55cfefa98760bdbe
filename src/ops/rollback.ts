/**
 * rollback and switch: show an earlier (or, for switch, any) generation
 * again, in one rename. No tree is built and no generation number is
 * created; the switch is recorded. Switching to a generation that shares the
 * current tree but not its settings (ops/settings.ts) is a switch too: the
 * record alone makes it current, and its settings with it. `dryRun` decides
 * the same way without the lock and changes nothing.
 */
import { ViewError } from '../errors.js'
import { madeRecord, newRecord, type SwitchAction } from '../store/journal/history.js'
import { generationDir, layoutFor, type Layout } from '../store/layout.js'
import { switchView } from '../store/build/publish.js'
import { hashesOnDisk, listGenerations, nextGenerationNumber, readViewState, requireManaged, treeCondition, type GenerationInfo, type ViewState } from '../store/journal/state.js'
import { readMeta } from '../store/journal/meta.js'
import { viewPathOf } from '../manifest/target.js'
import { keepModuleTreeCurrent } from '../modules/hook.js'
import { enterWriter, withWriter, type WriterOptions } from './writer.js'
import { recordSettings, sameSettings, settingsFromManifestCopy } from './settings.js'

export interface RollbackOptions extends WriterOptions {
  /** A generation number or a hash prefix; default: the previous generation. */
  to?: string
  /** Decide and report; take no lock, change nothing. */
  dryRun?: boolean
}

export interface RollbackResult {
  view: string
  from: number | null
  to: number
  hash: string
  /** False when the view already showed that tree with those settings (nothing was done), and for a dry run. */
  changed: boolean
  dryRun: boolean
  warnings: string[]
}

export async function rollback(target: string, opts: RollbackOptions = {}): Promise<RollbackResult> {
  return switchTo(target, opts.to, 'rollback', opts)
}

/** `viewctl switch <view> <N|hash>`: what `nix-env --switch-generation` does; `rollback --to N` is the same move. */
export async function switchGeneration(target: string, spec: string, opts: Omit<RollbackOptions, 'to'> = {}): Promise<RollbackResult> {
  return switchTo(target, spec, 'switch', opts)
}

async function switchTo(target: string, spec: string | undefined, action: Extract<SwitchAction, 'rollback' | 'switch'>, opts: RollbackOptions): Promise<RollbackResult> {
  const layout = layoutFor(viewPathOf(target))
  if (!opts.dryRun) enterWriter(layout, opts)
  const first = readViewState(layout)
  requireManaged(first)
  if (opts.dryRun) return decide(layout, first, spec, true).result
  return withWriter(layout, opts, async (_cleared, guard) => {
    const state = guard.state
    requireManaged(state)
    const { dest, result } = decide(layout, state, spec, false)
    if (!result.changed) return result
    // a tree no record names (its record was lost with a damaged journal line) gets a new number and the settings its manifest copy holds
    const settings = dest.untracked ? settingsFromManifestCopy(generationDir(layout, dest.hash)) : carriedSettings(state, dest.generation)
    const record = newRecord({ generation: dest.generation, hash: dest.hash, action, argv: opts.argv ?? process.argv.slice(1), from: result.from ?? undefined, ...settings })
    // the same tree with other settings: the record alone switches, the view already points there
    const warnings = [...guard.notes, ...switchView(layout, state, record, guard, { publish: dest.hash !== state.hash })]
    warnings.push(...(await keepModuleTreeCurrent(layout)).warnings)
    return { ...result, warnings }
  })
}

/** Where the switch goes, and what it would report; refusals are thrown. */
function decide(layout: Layout, state: ViewState & { hash: string }, spec: string | undefined, dryRun: boolean): { dest: Destination; result: RollbackResult } {
  const dest: Destination = spec === undefined ? previousGeneration(state) : findGeneration(state, spec, true)
  // checked without a walk (meta present, naming its hash): a rollback stays one rename at any size
  const tree = treeCondition(layout, dest.hash)
  if (tree.state === 'missing') {
    throw new ViewError('GENERATION_COLLECTED', `generation ${dest.generation} (${dest.hash.slice(0, 12)}) of ${layout.view} was garbage-collected; its tree is gone`, 'pick one that is still on disk (`viewctl list`), or regenerate from its manifest')
  }
  if (tree.state === 'damaged') {
    throw new ViewError('TREE_DAMAGED', `generation ${dest.generation} (${dest.hash.slice(0, 12)}) of ${layout.view} is damaged: ${tree.why}; refusing to switch to it`, 'regenerate from its manifest to rebuild the tree, or switch to another generation (`viewctl list`); nothing was changed')
  }
  const from = state.current?.generation ?? null
  const shown = dest.hash === state.hash && (dest.generation === from || sameSettings(settingsOf(state, dest.generation), recordSettings(state.current)))
  const warnings = shown ? [`${layout.view} already shows generation ${dest.generation}'s tree and settings; nothing to do`] : []
  return { dest, result: { view: layout.view, from, to: dest.generation, hash: dest.hash, changed: !shown && !dryRun, dryRun, warnings } }
}

/** The settings recorded when that generation was made (not by a later switch back to it). */
function carriedSettings(state: ViewState, generation: number) {
  const made = madeRecord(state.records, generation)
  return { manifest: made?.manifest, env: made?.env, gc: made?.gc, modules: made?.modules }
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
    throw new ViewError('NO_ROLLBACK_TARGET', `${state.layout.view} has no earlier generation on disk to roll back to (current: ${state.current ? `generation ${state.current.generation}` : state.hash})`, '`viewctl list` shows the generations; `viewctl switch <view> N` switches to a later one')
  }
  return dest
}

/** A generation to switch to; `untracked`: a tree no journal record names (findGeneration). */
type Destination = GenerationInfo & { untracked?: true }

/**
 * The generation `spec` names: a number, or a hash prefix (the newest
 * generation with that tree). With `untracked`, a hash prefix may also name
 * a complete tree in the store that no journal record names (its record was
 * lost to a damaged journal line): it comes back as the next generation
 * number, so that the tree stays reachable by its hash.
 */
/** Digits this many or more that name no generation are read as a hash prefix (as git reads a short hash). */
export const MIN_DIGIT_PREFIX = 7

export function findGeneration(state: ViewState, spec: string, untracked = false): Destination {
  const gens = listGenerations(state)
  // Digits name a generation number. A hash prefix may be all digits too (one in 200 of ten characters is):
  // one of MIN_DIGIT_PREFIX digits or more that names no generation is taken as a hash prefix.
  const numeric = /^\d+$/.test(spec)
  if (numeric) {
    const g = gens.find((x) => x.generation === Number(spec))
    if (g) return g
    if (spec.length < MIN_DIGIT_PREFIX) throw new ViewError('GENERATION_NOT_FOUND', `${state.layout.view} has no generation ${Number(spec)}`, `\`viewctl list ${state.layout.view}\` shows the generations`)
  }
  const prefix = spec.toLowerCase()
  const matches = [...new Map(gens.filter((g) => g.hash.startsWith(prefix)).map((g) => [g.hash, g])).values()]
  if (matches.length === 0 && untracked) {
    const named = new Set(state.records.map((r) => r.hash))
    const found = hashesOnDisk(state.layout).filter((h) => h.startsWith(prefix) && !named.has(h))
    if (found.length > 1) throw new ViewError('USAGE', `hash prefix ${spec} is ambiguous: ${found.map((h) => h.slice(0, 12)).join(', ')}`, 'give more characters of the hash')
    if (found.length === 1) {
      const hash = found[0]!
      return { generation: nextGenerationNumber(state), hash, created: readMeta(generationDir(state.layout, hash))?.created ?? '', action: 'rollback', current: false, onDisk: true, pinned: false, untracked: true }
    }
  }
  if (matches.length === 0) throw new ViewError('GENERATION_NOT_FOUND', numeric ? `${state.layout.view} has no generation ${Number(spec)}, and none whose hash starts with ${spec}` : `${state.layout.view} has no generation whose hash starts with ${spec}`, `\`viewctl list ${state.layout.view}\` shows the generations`)
  if (matches.length > 1) throw new ViewError('USAGE', `hash prefix ${spec} is ambiguous: ${matches.map((g) => g.hash.slice(0, 12)).join(', ')}`, 'give more characters of the hash, or the generation number')
  // several numbers can share one tree: take the newest of them
  const all = gens.filter((g) => g.hash === matches[0]!.hash)
  return all[all.length - 1]!
}
