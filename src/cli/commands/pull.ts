import { pull, type PullResult } from '../../ops/replicate/pull.js'
import { progressReporter, receivedOutcome, shortHash, type Output } from '../render.js'
import type { GlobalArgs } from '../args.js'
import { interruptible } from '../signals.js'

export interface PullArgs extends GlobalArgs {
  source: string
  view: string
  generation?: string
  switch: boolean
  withPrefixes: boolean
  ssh: string
  remoteViewctl: string
}

export async function run(args: PullArgs, out: Output): Promise<number> {
  const interrupt = interruptible()
  try {
    const progress = progressReporter(out.flags)
    const r = await pull(args.source, args.view, {
      generation: args.generation,
      noSwitch: !args.switch,
      withPrefixes: args.withPrefixes,
      ssh: args.ssh,
      remoteViewctl: args.remoteViewctl,
      lockTimeout: args.lockTimeout,
      argv: ['viewctl', ...process.argv.slice(2)],
      onProgress: progress ? (percent) => progress(percent, 100) : undefined,
      signal: interrupt.signal,
      asStoreOwner: true,
    })
    for (const w of r.warnings) out.warn(w)
    out.result(r, () => describe(r))
    return 0
  } catch (err) {
    const code = out.fail(err)
    return interrupt.exitStatus() ?? code
  } finally {
    interrupt.dispose()
  }
}

function describe(r: PullResult): string {
  const there = `generation ${r.source.generation ?? '?'} (${shortHash(r.source.hash)}) of ${r.from}`
  if (r.action === 'noop') return `up to date: ${r.view} shows ${there} (generation ${r.generation ?? '?'} here)`
  return `${r.view} is generation ${r.generation}: ${there}, ${receivedOutcome(r, 'here')} in ${(r.elapsedMs / 1000).toFixed(1)} s`
}
