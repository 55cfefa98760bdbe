/**
 * Durations as people write them in a manifest or on the command line: one
 * number with one unit (`30s 5m 12h 7d 2w`), or a bare number of seconds.
 * The language is deliberately the same one the manifest schema accepts for
 * `gc.ttl`, so `--ttl` and the manifest never disagree about what is valid.
 */
import { ViewError } from '../errors.js'

const SECOND = 1000
const MINUTE = 60 * SECOND
const HOUR = 60 * MINUTE
const DAY = 24 * HOUR
const WEEK = 7 * DAY

const UNIT_MS: Record<string, number> = { s: SECOND, m: MINUTE, h: HOUR, d: DAY, w: WEEK }

const DURATION_RE = /^(\d+)([smhdw]?)$/

/** Milliseconds in `text`, e.g. "7d" → 604800000 and "90" → 90000. */
export function parseDuration(text: string): number {
  const trimmed = String(text).trim()
  const match = DURATION_RE.exec(trimmed)
  if (!match) {
    throw new ViewError('USAGE', `invalid duration ${JSON.stringify(text)}: expected a number with one unit s, m, h, d or w (30s, 5m, 12h, 7d, 2w), or a bare number of seconds`, 'write the duration like 7d or 12h; combinations such as 1d12h are not accepted, use 36h')
  }
  const ms = Number(match[1]) * UNIT_MS[match[2] || 's']
  if (!Number.isSafeInteger(ms)) {
    throw new ViewError('USAGE', `invalid duration ${JSON.stringify(text)}: too large`, 'use a smaller number, e.g. 520w for ten years')
  }
  return ms
}

// Weeks are left out on purpose: "45d" reads faster than "6w 3d" in an age column.
const DISPLAY_UNITS: ReadonlyArray<[string, number]> = [['d', DAY], ['h', HOUR], ['m', MINUTE], ['s', SECOND]]

/**
 * A short human rendering: the largest unit, plus the next smaller one when it
 * is not zero ("7d", "3h 5m", "1d 2h"). Precision is cut, not rounded, so an
 * age is never shown as older than it is. Under a second shows milliseconds.
 */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms)) return String(ms)
  if (ms < 0) return `-${formatDuration(-ms)}`
  if (ms < SECOND) return `${Math.floor(ms)}ms`
  const first = DISPLAY_UNITS.findIndex(([, size]) => ms >= size)
  const [unit, size] = DISPLAY_UNITS[first]
  const parts = [`${Math.floor(ms / size)}${unit}`]
  const next = DISPLAY_UNITS[first + 1]
  if (next) {
    const rest = Math.floor((ms % size) / next[1])
    if (rest > 0) parts.push(`${rest}${next[0]}`)
  }
  return parts.join(' ')
}
