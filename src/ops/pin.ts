/**
 * pin / unpin: protect a generation from gc, whatever its age and however
 * many spares are kept. Pins are kept in `._<name>/pins.json`, under the
 * writer lock (so a gc cannot decide on a stale set of pins); a pinned
 * generation does not count towards `keep`.
 */
import { ViewError, translateOsError } from '../errors.js'
import { viewPathOf } from '../manifest/target.js'
import { layoutFor, type Layout } from '../store/layout.js'
import { newPin, readPins, writePins } from '../store/journal/pins.js'
import { readViewState, requireManaged } from '../store/journal/state.js'
import { findGeneration } from './rollback.js'
import { enterWriter, withWriter, type WriterOptions } from './writer.js'

export interface PinResult {
  view: string
  generation: number
  hash: string
  pinned: boolean
  /** False when the generation already was in the requested state. With dryRun: whether it would change. */
  changed: boolean
  dryRun: boolean
  /** Every pinned generation after the change. */
  pins: number[]
}

export interface PinOptions extends WriterOptions {
  /** Decide and report; take no lock, change nothing. */
  dryRun?: boolean
}

/** `spec`: a generation number, or a hash prefix (the newest generation with that tree). */
export async function pin(target: string, spec: string | number, opts: PinOptions = {}): Promise<PinResult> {
  return setPinned(target, String(spec), true, opts)
}

export async function unpin(target: string, spec: string | number, opts: PinOptions = {}): Promise<PinResult> {
  return setPinned(target, String(spec), false, opts)
}

async function setPinned(target: string, spec: string, wanted: boolean, opts: PinOptions): Promise<PinResult> {
  const layout = layoutFor(viewPathOf(target))
  if (!opts.dryRun) enterWriter(layout, opts)
  requireManaged(readViewState(layout))
  if (opts.dryRun) return decidePin(layout, spec, wanted, true)
  return withWriter(layout, opts, () => decidePin(layout, spec, wanted, false))
}

/** Decide under the lock, or for a dry run without it: the pins after the change, written unless dry. */
function decidePin(layout: Layout, spec: string, wanted: boolean, dryRun: boolean): PinResult {
  const state = readViewState(layout)
  requireManaged(state)
  const pins = readPins(layout)
  let generation: number
  let hash: string
  if (!wanted && /^\d+$/.test(spec) && pins.has(Number(spec))) {
    // a pin can always be taken back, even of a number the journal no longer shows
    generation = Number(spec)
    hash = pins.get(generation)!.hash
  } else {
    const g = findGeneration(state, spec)
    generation = g.generation
    hash = g.hash
    if (wanted && !g.onDisk) {
      throw new ViewError('GENERATION_COLLECTED', `generation ${g.generation} (${g.hash.slice(0, 12)}) of ${layout.view} was garbage-collected; there is nothing left to pin`, 'pin a generation that is still on disk (`viewctl list`), or regenerate from its manifest')
    }
  }
  const changed = pins.has(generation) !== wanted
  if (changed) {
    if (wanted) pins.set(generation, newPin(generation, hash))
    else pins.delete(generation)
    if (!dryRun) {
      try {
        writePins(layout, pins)
      } catch (err) {
        throw translateOsError(err, `writing the pins of ${layout.view}`)
      }
    }
  }
  return { view: layout.view, generation, hash, pinned: wanted, changed, dryRun, pins: [...pins.keys()].sort((a, b) => a - b) }
}
