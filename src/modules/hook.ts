/**
 * The hook every command that changes the set of generations calls, under
 * the view's writer lock, after its switch: regenerate, rollback, switch, gc
 * (and `receive`, once it has swapped the view link). It brings the module
 * tree (tree.ts) up to date when the view's recorded settings name one, and
 * loads the tree's code only then, so a view without `modules:` pays a read
 * of the journal it has already made.
 */
import path from 'node:path'
import type { ModuleTreeSettings } from '../manifest/types.js'
import type { Layout } from '../store/layout.js'
import { readViewState, type ViewState } from '../store/journal/state.js'
import type { ModuleTreeResult } from './tree.js'

/**
 * The module settings the view runs under: those recorded with its current
 * generation (a regenerate records the manifest's `modules:`, or null when
 * it has none), else the last ones recorded; null when there are none.
 */
export function recordedModuleSettings(state: ViewState): ModuleTreeSettings | null {
  if (state.current && state.current.modules !== undefined) return state.current.modules
  for (let i = state.records.length - 1; i >= 0; i--) {
    const m = state.records[i]!.modules
    if (m !== undefined) return m
  }
  return null
}

/** A failure to write the tree does not undo the command: it comes back as a warning. */
export async function keepModuleTreeCurrent(layout: Layout): Promise<{ tree: ModuleTreeResult | null; warnings: string[] }> {
  let settings: ModuleTreeSettings | null = null
  try {
    const state = readViewState(layout)
    settings = recordedModuleSettings(state)
    if (settings === null || state.kind !== 'managed') return { tree: null, warnings: [] }
    const { writeModuleTree } = await import('./tree.js')
    return { tree: writeModuleTree(layout, settings), warnings: [] }
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err)
    const where = settings ? ` in ${path.join(settings.dir, settings.name ?? layout.name)}` : ''
    return { tree: null, warnings: [`the module tree${where} was not updated: ${message} (\`viewctl module ${layout.view} --dir ${settings?.dir ?? '<dir>'}\` writes it)`] }
  }
}
