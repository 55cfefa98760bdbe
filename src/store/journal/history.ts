/**
 * history.jsonl: the append-only journal of switches, one JSON object a line.
 * A torn last line (a writer killed mid-append) is ignored when reading and
 * cut off by the next writer before it appends.
 */
import fs from 'node:fs'
import os from 'node:os'
import { appendDurable } from '../../fs.js'
import type { GcPolicy, ModuleTreeSettings } from '../../manifest/types.js'

/** `push` and `pull`: a generation received from another host (ops/replicate/). */
export type SwitchAction = 'regenerate' | 'rollback' | 'switch' | 'adopt' | 'push' | 'pull'

/** Where a received generation came from. */
export interface RecordOrigin {
  host: string
  user: string
  view: string
  generation: number | null
  /** The hash on the sending host (a hardlink view is rebuilt on the receiving one, under another hash). */
  hash: string
}

export interface HistoryRecord {
  generation: number
  hash: string
  action: SwitchAction
  at: string
  user: string
  host: string
  argv: string[]
  /** The manifest a regenerate was built from (absolute path). */
  manifest?: string
  /** The manifest's env and gc settings, so commands given a view path can use them. */
  env?: Record<string, string[]>
  gc?: Pick<GcPolicy, 'keep' | 'ttl' | 'auto'>
  /** The manifest's module tree (`modules:`), null when it names none; absent in records older than the setting. */
  modules?: ModuleTreeSettings | null
  /** For a rollback or a switch: the generation it switched away from. */
  from?: number
  /** For a push or pull: the host, view and generation it came from. */
  origin?: RecordOrigin
  /** False for a generation received with `--no-switch`: recorded, its tree on disk, not published. */
  published?: boolean
}

export function readHistory(file: string): HistoryRecord[] {
  let text: string
  try {
    text = fs.readFileSync(file, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return []
    throw err
  }
  const records: HistoryRecord[] = []
  for (const line of text.split('\n')) {
    if (!line.trim()) continue
    try {
      const rec = JSON.parse(line) as HistoryRecord
      if (typeof rec.generation === 'number' && typeof rec.hash === 'string') records.push(rec)
    } catch {
      // a torn line (killed writer) or hand-edited garbage: not a record
    }
  }
  return records
}

/** Cut a torn last line so the next append starts on a fresh line. */
export function repairHistory(file: string): boolean {
  let fd: number
  try {
    fd = fs.openSync(file, 'r+')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false
    throw err
  }
  try {
    const size = fs.fstatSync(fd).size
    if (size === 0) return false
    const tail = Buffer.alloc(Math.min(size, 1 << 16))
    fs.readSync(fd, tail, 0, tail.length, size - tail.length)
    if (tail[tail.length - 1] === 0x0a) return false
    const lastNewline = tail.lastIndexOf(0x0a)
    const keep = lastNewline === -1 ? (tail.length === size ? 0 : size - tail.length) : size - tail.length + lastNewline + 1
    fs.ftruncateSync(fd, keep)
    fs.fsyncSync(fd)
    return true
  } finally {
    fs.closeSync(fd)
  }
}

/** Append a record; returns the journal's size before it, for `retractHistory`. */
export function appendHistory(file: string, record: HistoryRecord): number {
  repairHistory(file)
  let before = 0
  try {
    before = fs.statSync(file).size
  } catch {
    // first record
  }
  appendDurable(file, JSON.stringify(record) + '\n')
  return before
}

/** Take back the record just appended when the switch it announces did not happen. */
export function retractHistory(file: string, size: number): void {
  try {
    fs.truncateSync(file, size)
  } catch {
    // the record stays; it names a generation that never became current, which readers tolerate
  }
}

/** Who runs this: the passwd name, or $USER where the uid has no passwd entry (containers). */
export function currentUser(): string {
  try {
    return os.userInfo().username
  } catch {
    return process.env.USER ?? ''
  }
}

export function newRecord(fields: Omit<HistoryRecord, 'at' | 'user' | 'host'>): HistoryRecord {
  return { ...fields, at: new Date().toISOString(), user: currentUser(), host: os.hostname() }
}

const SWITCH_ACTIONS: ReadonlySet<string> = new Set<SwitchAction>(['regenerate', 'rollback', 'switch', 'adopt', 'push', 'pull'])

/** Switch records only (regenerate, rollback, switch, adopt, push, pull), in journal order. */
export function switches(records: HistoryRecord[]): HistoryRecord[] {
  return records.filter((r) => SWITCH_ACTIONS.has(r.action))
}

/** The record that made generation `n` (a regenerate, an adoption, a push or pull that brought it), not a later switch back to it. */
export function madeRecord(records: HistoryRecord[], n: number): HistoryRecord | undefined {
  return switches(records).find((r) => r.generation === n && r.action !== 'rollback' && r.action !== 'switch')
}
