/**
 * `._<name>/.push-session`: what a receiving session lets rsync write, for
 * the rsync guard (guard.ts) on the same host. Written by the receiver once
 * it holds the writer lock, removed when it releases it; a guard trusts it
 * only while the lock is held by the process it names.
 */
import fs from 'node:fs'
import path from 'node:path'
import { translateOsError } from '../../errors.js'
import { nonce, type Layout } from '../../store/layout.js'

export const SESSION_FILE = '.push-session'

export interface SessionFile {
  pid: number
  host: string
  hash: string
  /** The directories rsync may fill: the staging directory, and the temporary names of prefixes being copied. */
  destinations: string[]
}

export function writeSessionFile(layout: Layout, session: SessionFile): void {
  const file = path.join(layout.store, SESSION_FILE)
  const tmp = `${file}.tmp-${process.pid}-${nonce()}`
  try {
    const fd = fs.openSync(tmp, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW, 0o600)
    try {
      fs.writeSync(fd, JSON.stringify(session) + '\n')
    } finally {
      fs.closeSync(fd)
    }
    fs.renameSync(tmp, file)
  } catch (err) {
    try {
      fs.unlinkSync(tmp)
    } catch {
      // not made
    }
    throw translateOsError(err, `writing ${file}`)
  }
}

export function readSessionFile(layout: Layout): SessionFile | null {
  try {
    const fd = fs.openSync(path.join(layout.store, SESSION_FILE), fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW)
    try {
      return JSON.parse(fs.readFileSync(fd, 'utf8')) as SessionFile
    } finally {
      fs.closeSync(fd)
    }
  } catch {
    return null
  }
}
