import { collectGarbage, type GcResult } from '../../ops/gc.js'
import { shortHash, type Output } from '../render.js'
import { writerOptions, type GlobalArgs } from '../args.js'

export async function run(args: GlobalArgs & { target: string; generation?: string; keep?: number; ttl?: string; dryRun: boolean; force: boolean }, out: Output): Promise<number> {
  try {
    const r = await collectGarbage(args.target, {
      generation: args.generation,
      keep: args.keep,
      ttl: args.ttl,
      dryRun: args.dryRun,
      force: args.force,
      ...writerOptions(args, (w) => out.warn(w)),
    })
    for (const w of r.warnings) out.warn(w)
    out.result(r, () => describe(r, args.generation))
    return 0
  } catch (err) {
    return out.fail(err)
  }
}

function generations(ns: number[]): string {
  return `generation${ns.length === 1 ? '' : 's'} ${ns.join(', ')}`
}

function describe(r: GcResult, named: string | undefined): string[] {
  const lines: string[] = []
  const verb = r.dryRun ? 'would remove' : 'removed'
  for (const t of r.removed) {
    const size = t.bytes === undefined ? '' : `, ${formatBytes(t.bytes)}`
    lines.push(`${verb} ${generations(t.generations)} (${shortHash(t.hash)}${size})`)
  }
  for (const k of r.kept) lines.push(`keep ${String(k.generation).padStart(5)} (${shortHash(k.hash)}): ${k.reasons.join('; ')}`)
  for (const u of r.untracked) lines.push(`left alone: ${u.hash} (${u.note})`)
  if (named !== undefined) {
    if (r.removed.length === 0) lines.push(`${r.dryRun ? 'would remove nothing' : 'nothing removed'} from ${r.view}: the tree of generation ${named} stays`)
    else if (r.dryRun) lines.push('dry run: nothing was deleted')
    return lines
  }
  const policy = `keep ${r.policy.keep}, ttl ${r.policy.ttl}${r.policy.from === 'recorded' ? ', as recorded for the current generation' : r.policy.from === 'default' ? ', the defaults' : ''}`
  if (r.removed.length === 0) lines.push(`${r.dryRun ? 'would remove nothing' : 'nothing to remove'} from ${r.view} (${policy})`)
  else lines.push(`${r.dryRun ? 'dry run: nothing was deleted' : `${r.removed.length} tree${r.removed.length === 1 ? '' : 's'} removed`} from ${r.view} (${policy})`)
  return lines
}

function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB']
  let i = 0
  let v = n
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024
    i++
  }
  return `${i === 0 ? v : v.toFixed(1)} ${units[i]}`
}
