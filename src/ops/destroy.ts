/**
 * destroy: remove a whole view, for good.
 *
 * Refused while anything uses it: a process on this host whose cwd, exe,
 * open files, mappings or environment name one of its trees (the /proc scan
 * gc makes), or a `viewctl exec` lease on any host. Without `yes` it says
 * what would go and removes nothing.
 *
 * Under the writer lock, with every tree's lease held exclusively (so no
 * exec can start on one meanwhile): the view link goes first, so no new
 * reader finds the view; then the module tree the view's settings name;
 * then the store is renamed out of sight to `.<name>.destroyed-*` beside it
 * and removed. A crash after the link went leaves the store (or the renamed
 * store); `destroy` run again finishes the job.
 */
import fs from 'node:fs'
import path from 'node:path'
import * as sfs from '../fs.js'
import { ViewError, translateOsError } from '../errors.js'
import { viewPathOf } from '../manifest/target.js'
import { recordedModuleSettings } from '../modules/hook.js'
import { removeModuleTree, type ModuleTreeResult } from '../modules/tree.js'
import { isHashName, layoutFor, nonce, type Layout } from '../store/layout.js'
import { tryExclusiveLease } from '../store/guard/lease.js'
import { describeUse, findProcessUsers } from '../store/guard/readers.js'
import { readViewState, type ViewState } from '../store/journal/state.js'
import { enterWriter, withWriter, type WriterOptions } from './writer.js'

export interface DestroyOptions extends WriterOptions {
  /** Really remove it; without, a refusal that lists what would go. */
  yes?: boolean
}

export interface DestroyResult {
  view: string
  store: string
  /** The view link was there and is gone. */
  linkRemoved: boolean
  /** Generation trees that were in the store. */
  trees: string[]
  moduleTree: ModuleTreeResult | null
  warnings: string[]
}

export async function destroyView(target: string, opts: DestroyOptions = {}): Promise<DestroyResult> {
  const layout = layoutFor(viewPathOf(target))
  if (opts.yes) enterWriter(layout, opts)
  const first = readViewState(layout)
  assertDestroyable(first)
  refuseIfInUse(layout, treesIn(layout))
  if (!opts.yes) {
    const trees = treesIn(layout)
    const settings = recordedModuleSettings(first)
    const what = [
      first.kind === 'managed' ? `the view link ${layout.view}` : null,
      `the store ${layout.store} with ${trees.length} generation tree${trees.length === 1 ? '' : 's'}`,
      settings ? `the module files in ${path.join(settings.dir, settings.name ?? layout.name)}` : null,
    ].filter(Boolean)
    throw new ViewError('NOT_CONFIRMED', `destroy would remove ${what.join(', ')}; nothing was removed`, `run it again with --yes to remove them`)
  }
  return withWriter(layout, opts, () => {
    const state = readViewState(layout)
    assertDestroyable(state)
    const trees = treesIn(layout)
    refuseIfInUse(layout, trees)
    const leases: number[] = []
    const warnings: string[] = []
    try {
      for (const hash of trees) {
        const lease = tryExclusiveLease(path.join(layout.store, hash))
        if (lease.state === 'held') throw inUse(layout, `generation tree ${hash.slice(0, 12)} is held by a lease (a viewctl exec runs in it, or a viewctl push or pull is sending it, on this or another host)`)
        if (lease.state === 'free') leases.push(lease.fd)
      }
      let linkRemoved = false
      if (state.kind === 'managed') {
        sfs.unlink(layout.view)
        linkRemoved = true
        sfs.fsyncDir(layout.parent)
      }
      let moduleTree: ModuleTreeResult | null = null
      const settings = recordedModuleSettings(state)
      if (settings) {
        try {
          moduleTree = removeModuleTree(layout, settings)
        } catch (err) {
          warnings.push(`the module files in ${path.join(settings.dir, settings.name ?? layout.name)} stay: ${translateOsError(err, 'removing them').message}`)
        }
      }
      const aside = path.join(layout.parent, `.${layout.name}.destroyed-${process.pid}-${nonce()}`)
      sfs.rename(layout.store, aside)
      sfs.fsyncDir(layout.parent)
      removeAside(layout, aside, warnings)
      return { view: layout.view, store: layout.store, linkRemoved, trees, moduleTree, warnings }
    } catch (err) {
      throw translateOsError(err, `destroying ${layout.view}`)
    } finally {
      for (const fd of leases) fs.closeSync(fd)
    }
  })
}

/** The view must be viewctl's, or already half destroyed (its link gone, its store still there). */
function assertDestroyable(state: ViewState): void {
  const { layout } = state
  if (state.kind === 'managed') return
  if (state.kind === 'missing') {
    if (fs.existsSync(layout.store)) return
    throw new ViewError('NOT_A_VIEW', `${layout.view} does not exist and has no store ${layout.store}; there is nothing to destroy`, 'check the path')
  }
  throw new ViewError('NOT_A_VIEW', `${layout.view} is not a view managed by viewctl (${state.kind === 'directory' ? 'it is a real directory' : `it does not point into ${layout.store}`}); destroy removes only viewctl's views`, 'check the path')
}

function treesIn(layout: Layout): string[] {
  try {
    return fs.readdirSync(layout.store).filter(isHashName).sort()
  } catch {
    return []
  }
}

function refuseIfInUse(layout: Layout, trees: string[]): void {
  if (trees.length === 0) return
  const stores = [layout.store]
  try {
    stores.unshift(fs.realpathSync(layout.store))
  } catch {
    // a store that cannot be resolved is matched by its name
  }
  const scan = findProcessUsers(stores, trees, { maps: true })
  const uses = [...scan.uses.values()].flat()
  if (uses.length) {
    throw inUse(layout, `on this host: ${uses.slice(0, 3).map(describeUse).join('; ')}${uses.length > 3 ? ` and ${uses.length - 3} more` : ''}`)
  }
}

function inUse(layout: Layout, why: string): ViewError {
  return new ViewError('GENERATION_IN_USE', `${layout.view} is in use (${why}); nothing was removed`, 'end what uses it (or wait for it to end), then run destroy again')
}

/** Remove the renamed store, and what an interrupted destroy of the same view left beside it. */
function removeAside(layout: Layout, aside: string, warnings: string[]): void {
  const leftovers = [aside]
  try {
    for (const name of fs.readdirSync(layout.parent)) {
      const p = path.join(layout.parent, name)
      if (name.startsWith(`.${layout.name}.destroyed-`) && p !== aside) leftovers.push(p)
    }
  } catch {
    // the parent cannot be listed: only our own goes
  }
  for (const p of leftovers) {
    try {
      sfs.rmTree(p)
    } catch (err) {
      warnings.push(`${translateOsError(err, `removing ${p}`).message}; it is out of the view's reach, remove it by hand`)
    }
  }
}
