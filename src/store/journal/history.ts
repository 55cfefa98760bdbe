/**
 * history.jsonl: the append-only journal of switches, one JSON object a line.
 * A torn last line (a writer killed mid-append) is ignored when reading and
 * cut off by the next writer before it appends; any other line that is not
 * a record is reported (readJournal) and taken out by the next writer
 * (mendJournal), which keeps it in history.jsonl.bad.
 */
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { OPEN, appendDurable, fsyncDir, openNoFollow, readTextNoFollow, rename, writeFileDurable } from '../../fs.js'
import { nonce } from '../layout.js'
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

/** A line of the journal that is not a record, and not the torn last line of a killed writer. */
export interface CorruptLine {
  /** 1-based line number. */
  line: number
  text: string
}

export interface Journal {
  records: HistoryRecord[]
  /** Lines in the middle (or a complete last line) that are not records: the journal is damaged. */
  corrupt: CorruptLine[]
}

/**
 * The journal, read without following a symlink. A torn last line (no
 * newline after it: a writer killed mid-append) is ignored silently, as
 * expected after a crash; any other line that is not a record is damage
 * (a disk error, a hand edit, a --no-lock writer on NFS interleaving bytes)
 * and is reported in `corrupt`, so that status can say the view is degraded
 * and the next writer can mend it (mendJournal).
 */
export function readJournal(file: string): Journal {
  let fd: number
  try {
    fd = openNoFollow(file, OPEN.O_RDONLY | OPEN.O_NONBLOCK)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { records: [], corrupt: [] }
    throw err
  }
  try {
    const st = fs.fstatSync(fd, { bigint: true })
    if (!st.isFile()) throw Object.assign(new Error(`EINVAL: not a regular file, open '${file}'`), { code: 'EINVAL', path: file, syscall: 'open' })
    // A writer reads the journal up to three times (before the lock, to mend it, under the lock): the same file,
    // unchanged, is parsed once. A journal of 5,000 switches is 2 MB and 20-30 ms to parse.
    const key = `${file}\0${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}`
    if (lastRead?.key !== key) lastRead = { key, journal: parseJournal(fs.readFileSync(fd, 'utf8')) }
    // the lists are the caller's to keep: copies, so that no caller changes what another reads
    return { records: [...lastRead.journal.records], corrupt: [...lastRead.journal.corrupt] }
  } finally {
    fs.closeSync(fd)
  }
}

let lastRead: { key: string; journal: Journal } | null = null

function parseJournal(text: string): Journal {
  const records: HistoryRecord[] = []
  const corrupt: CorruptLine[] = []
  const lines = text.split('\n')
  // text ends with '\n' unless the last line is torn: then split's last element is that torn line
  const torn = lines.length - 1
  lines.forEach((line, i) => {
    if (!line.trim()) return
    const rec = parseRecord(line)
    if (rec !== null) records.push(rec)
    else if (i !== torn) corrupt.push({ line: i + 1, text: line })
  })
  return { records, corrupt }
}

function parseRecord(line: string): HistoryRecord | null {
  try {
    const rec = JSON.parse(line) as HistoryRecord
    if (rec !== null && typeof rec === 'object' && typeof rec.generation === 'number' && typeof rec.hash === 'string') return rec
  } catch {
    // not JSON
  }
  return null
}

export function readHistory(file: string): HistoryRecord[] {
  return readJournal(file).records
}

/** Cut a torn last line so the next append starts on a fresh line. */
export function repairHistory(file: string): boolean {
  let fd: number
  try {
    fd = openNoFollow(file, OPEN.O_RDWR)
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
  return appendDurable(file, JSON.stringify(record) + '\n')
}

/** Take back the record just appended when the switch it announces did not happen. */
export function retractHistory(file: string, size: number): void {
  try {
    const fd = openNoFollow(file, OPEN.O_WRONLY)
    try {
      fs.ftruncateSync(fd, size)
    } finally {
      fs.closeSync(fd)
    }
  } catch {
    // the record stays; it names a generation that never became current, which readers tolerate
  }
}

/** Where the lines mendJournal takes out of the journal are kept, one JSON object a line. */
export const BAD_LINES_FILE = 'history.jsonl.bad'

/**
 * Take the corrupt lines out of the journal, keeping each in
 * `history.jsonl.bad` (with when it was found and where it stood): the
 * journal is rewritten whole under a temporary name and renamed over the
 * old one, so a reader sees one or the other. Under the writer lock only.
 * Returns what was done, for a warning, or null when the journal was sound.
 */
export function mendJournal(file: string): string | null {
  const { corrupt } = readJournal(file)
  if (corrupt.length === 0) return null
  const found = new Date().toISOString()
  const keep = path.join(path.dirname(file), BAD_LINES_FILE)
  appendDurable(keep, corrupt.map((c) => JSON.stringify({ found, line: c.line, text: c.text }) + '\n').join(''))
  const bad = new Set(corrupt.map((c) => c.line))
  const text = readTextNoFollow(file)
  const kept = text.split('\n').filter((_, i) => !bad.has(i + 1)).join('\n')
  const tmp = path.join(path.dirname(file), `.history.tmp-${process.pid}-${nonce()}`)
  try {
    writeFileDurable(tmp, kept, { exclusive: true })
    rename(tmp, file)
  } catch (err) {
    try {
      fs.unlinkSync(tmp)
    } catch {
      // not created, or renamed
    }
    throw err
  }
  fsyncDir(path.dirname(file))
  const lines = corrupt.map((c) => c.line).join(', ')
  return `${file}: line${corrupt.length === 1 ? '' : 's'} ${lines} ${corrupt.length === 1 ? 'was not a record' : 'were not records'}; taken out of the journal and kept in ${keep}`
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
