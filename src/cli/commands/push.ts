import { push, type DestinationResult, type PushProgress, type PushResult } from '../../ops/replicate/push.js'
import { receivedOutcome, shortHash, type Output } from '../render.js'
import type { GlobalArgs } from '../args.js'
import { interruptible } from '../signals.js'

export interface PushArgs extends GlobalArgs {
  source: string
  destinations: string[]
  generation?: string
  switch: boolean
  withPrefixes: boolean
  ssh: string
  remoteViewctl: string
  parallel: number
}

export async function run(args: PushArgs, out: Output): Promise<number> {
  const interrupt = interruptible()
  try {
    const r = await push(args.source, args.destinations, {
      generation: args.generation,
      noSwitch: !args.switch,
      withPrefixes: args.withPrefixes,
      ssh: args.ssh,
      remoteViewctl: args.remoteViewctl,
      lockTimeout: args.lockTimeout,
      parallel: args.parallel,
      argv: ['viewctl', ...process.argv.slice(2)],
      onProgress: progressLine(out, args.destinations.length),
      signal: interrupt.signal,
    })
    for (const w of r.warnings) out.warn(w)
    for (const d of r.destinations) for (const w of d.warnings) out.warn(`${d.destination}: ${w}`)
    out.result(r, () => describe(r))
    if (!out.flags.json) for (const d of r.destinations) if (d.error) process.stderr.write(`viewctl: ${d.error.message}\nhint: ${d.error.hint}\n`)
    return interrupt.exitStatus() ?? r.exitCode
  } catch (err) {
    const code = out.fail(err)
    return interrupt.exitStatus() ?? code
  } finally {
    interrupt.dispose()
  }
}

function describe(r: PushResult): string[] {
  const what = `generation ${r.generation ?? '?'} (${shortHash(r.hash)}) of ${r.view}`
  const lines = r.destinations.map((d) => `${d.ok ? 'ok    ' : 'FAILED'} ${d.destination}: ${outcome(d)}`)
  const failed = r.destinations.filter((d) => !d.ok).length
  lines.push(failed === 0 ? `pushed ${what} to ${r.destinations.length} destination${r.destinations.length === 1 ? '' : 's'}` : `${failed} of ${r.destinations.length} destination${r.destinations.length === 1 ? '' : 's'} failed; ${what}`)
  return lines
}

function outcome(d: DestinationResult): string {
  if (!d.ok) return d.error?.code ?? 'failed'
  const gen = d.generation === null || d.generation === undefined ? '' : `generation ${d.generation}`
  const secs = `${(d.elapsedMs / 1000).toFixed(1)} s`
  if (d.action === 'noop') return `up to date (${gen || 'nothing recorded'})`
  return `${gen}, ${receivedOutcome(d, 'there')} in ${secs}`
}

/** One line on stderr, on a TTY only, never with --json or --quiet: the transfer, or how many destinations are done. */
function progressLine(out: Output, count: number): ((e: PushProgress) => void) | undefined {
  if (out.flags.json || out.flags.quiet || !process.stderr.isTTY) return undefined
  const phases = new Map<string, PushProgress['phase']>()
  let last = 0
  return (e) => {
    phases.set(e.destination, e.phase)
    const now = Date.now()
    if (e.phase === 'transferring' && now - last < 200) return
    last = now
    let finished = 0
    let transferring = 0
    for (const p of phases.values()) {
      if (p === 'done' || p === 'failed') finished++
      else if (p === 'transferring') transferring++
    }
    const text = count === 1 ? `push ${e.destination}: ${e.phase}${e.percent === undefined ? '' : ` ${e.percent}%`}` : `push: ${finished} of ${count} destinations finished, ${transferring} transferring`
    process.stderr.write(`\r\x1b[K  ${text}${finished === count ? '\n' : ''}`)
  }
}
