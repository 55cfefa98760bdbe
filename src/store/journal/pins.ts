/**
 * Pins: generations the admin protected from gc (`viewctl pin <view> N`).
 *
 * They live in `._<name>/pins.json`, not in history.jsonl: the journal's
 * switch records decide which generation is current, and a pin is not a
 * switch. The file is small and rewritten whole (tmp + rename), under the
 * writer lock; readers (list, gc's unlocked first pass) read it without one,
 * which the rename makes safe.
 */
import fs from 'node:fs'
import path from 'node:path'
import * as sfs from '../../fs.js'
import { nonce, type Layout } from '../layout.js'
import { currentUser } from './history.js'

export const PINS_FILE = 'pins.json'

export interface PinRecord {
  generation: number
  hash: string
  at: string
  user: string
}

interface PinsDocument {
  version: 1
  pins: PinRecord[]
}

export function pinsFile(layout: Layout): string {
  return path.join(layout.store, PINS_FILE)
}

/**
 * The pins, by generation number. A missing or unreadable file means no pins
 * (as a symlink does: it is not followed, and whoever could plant one could
 * as well have removed the file).
 */
export function readPins(layout: Layout): Map<number, PinRecord> {
  const pins = new Map<number, PinRecord>()
  let doc: PinsDocument
  try {
    doc = JSON.parse(sfs.readTextNoFollow(pinsFile(layout))) as PinsDocument
  } catch {
    return pins
  }
  if (!doc || !Array.isArray(doc.pins)) return pins
  for (const p of doc.pins) {
    if (p && typeof p.generation === 'number' && typeof p.hash === 'string') pins.set(p.generation, p)
  }
  return pins
}

/** Replace pins.json atomically. Call under the writer lock. */
export function writePins(layout: Layout, pins: Map<number, PinRecord>): void {
  const doc: PinsDocument = { version: 1, pins: [...pins.values()].sort((a, b) => a.generation - b.generation) }
  const file = pinsFile(layout)
  const tmp = path.join(layout.store, `.pins.tmp-${process.pid}-${nonce()}`)
  try {
    sfs.writeFileDurable(tmp, JSON.stringify(doc, null, 2) + '\n', { exclusive: true })
    sfs.rename(tmp, file)
  } catch (err) {
    try {
      fs.unlinkSync(tmp)
    } catch {
      // not created, or already renamed
    }
    throw err
  }
  sfs.fsyncDir(layout.store)
}

export function newPin(generation: number, hash: string): PinRecord {
  return { generation, hash, at: new Date().toISOString(), user: currentUser() }
}
