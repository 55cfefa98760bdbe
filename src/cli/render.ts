/**
 * Output. With --json, stdout carries exactly one JSON object; otherwise
 * human text (nothing with --quiet except errors). Errors always go to
 * stderr as one paragraph and a hint; with --json they are on stdout too.
 */
import { exitCodeFor, isViewError, translateOsError, type ViewError } from '../errors.js'

export interface OutputFlags {
  json: boolean
  quiet: boolean
  debug: boolean
}

/** Set while a progress line (progressReporter) is on stderr without its newline. */
let progressOpen = false

/** End an unfinished progress line, so that what is written next starts a line of its own (a build given up, or reused). */
function endProgressLine(): void {
  if (!progressOpen) return
  progressOpen = false
  process.stderr.write('\n')
}

export class Output {
  constructor(readonly flags: OutputFlags) {}

  /** Print a command's result: its JSON form, or its text lines. */
  result(json: unknown, text: () => string | string[]): void {
    endProgressLine()
    if (this.flags.json) {
      process.stdout.write(JSON.stringify(json, null, 2) + '\n')
      return
    }
    if (this.flags.quiet) return
    const out = text()
    const lines = Array.isArray(out) ? out : [out]
    if (lines.length) process.stdout.write(lines.join('\n') + '\n')
  }

  warn(message: string): void {
    endProgressLine()
    if (!this.flags.quiet || this.flags.debug) process.stderr.write(`viewctl: warning: ${message}\n`)
  }

  /** Render a failure; returns the exit code. */
  fail(err: unknown): number {
    const e: ViewError = isViewError(err) ? err : translateOsError(err, 'running the command')
    endProgressLine()
    process.stderr.write(`viewctl: ${e.message}\n`)
    if (e.hint) process.stderr.write(`hint: ${e.hint}\n`)
    if (this.flags.debug) process.stderr.write(`${(e.cause instanceof Error ? e.cause : e).stack}\n`)
    if (this.flags.json) {
      process.stdout.write(JSON.stringify({ error: { code: e.code, message: e.message, hint: e.hint, ...(e.details ?? {}) } }, null, 2) + '\n')
    }
    return exitCodeFor(e.code)
  }
}

export function shortHash(hash: string): string {
  return hash.slice(0, 12)
}

/** What a push or pull did with the generation on the host that received it (`where`: 'here' for a pull, 'there' for a push). */
export interface Received {
  action?: string
  hash?: string
  mode?: string
  linked?: number
  created?: number
  resumed?: boolean
  switched?: boolean
  settingsChanged?: boolean
}

/** "switched; made from its plan, 990 entries shared, 10 new": the state of the view there, then how its tree came to be. */
export function receivedOutcome(r: Received, where: 'here' | 'there'): string {
  const how =
    r.action === 'rebuilt' ? `rebuilt ${where === 'here' ? 'here ' : ''}from its manifest (hash ${shortHash(r.hash ?? '')})`
    : r.action === 'recorded' ? `its tree was ${where} already`
    : r.mode === 'plan' ? `made from its plan, ${r.linked ?? 0} entries shared, ${r.created ?? 0} new`
    : `copied${r.resumed ? ' (resumed)' : ''}`
  const state = r.settingsChanged ? 'settings changed' : r.switched ? 'switched' : 'recorded, not switched (--no-switch)'
  return `${state}; ${how}`
}

export function formatWhen(iso: string): string {
  const d = new Date(iso)
  if (Number.isNaN(d.getTime())) return iso
  const pad = (n: number) => String(n).padStart(2, '0')
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`
}

/** A progress line on stderr, only on a TTY and never with --json or --quiet; shown after about a second. */
export function progressReporter(flags: OutputFlags): ((done: number, total: number | null) => void) | undefined {
  if (flags.json || flags.quiet || !process.stderr.isTTY) return undefined
  const start = performance.now()
  // VIEWCTL_PROGRESS_AFTER_MS: how long a build runs before the line appears (tests set 0)
  const after = Number(process.env.VIEWCTL_PROGRESS_AFTER_MS ?? 1000)
  let shown = false
  return (done, total) => {
    const elapsed = performance.now() - start
    if (elapsed < after && (total === null || done < total)) return
    if (!shown && done === total) return
    shown = true
    const rate = Math.round(done / (elapsed / 1000))
    // while a streamed build still walks the prefixes, the total is not known yet
    const of = total === null ? 'so far, still walking the prefixes' : `/ ${formatCount(total)} entries`
    process.stderr.write(`\r\x1b[K  linked ${formatCount(done)} ${of} (${formatCount(rate)}/s)${done === total ? '\n' : ''}`)
    progressOpen = done !== total
  }
}

/** 70106 -> "70,106" (toLocaleString would load ICU's number formatting: about 12 ms at start-up). */
export function formatCount(n: number): string {
  const digits = String(Math.trunc(Math.abs(n)))
  const grouped = digits.replace(/\B(?=(\d{3})+$)/g, ',')
  return n < 0 ? `-${grouped}` : grouped
}
