import { rollback, switchGeneration, type RollbackResult } from '../../ops/rollback.js'
import { shortHash, type Output } from '../render.js'
import { writerOptions, type GlobalArgs } from '../args.js'

export async function runRollback(args: GlobalArgs & { target: string; to?: string; dryRun: boolean }, out: Output): Promise<number> {
  return report(() => rollback(args.target, { to: args.to, dryRun: args.dryRun, ...writerOptions(args, (w) => out.warn(w)) }), 'rolled back', out)
}

export async function runSwitch(args: GlobalArgs & { target: string; generation: string | number; dryRun: boolean }, out: Output): Promise<number> {
  return report(() => switchGeneration(args.target, String(args.generation), { dryRun: args.dryRun, ...writerOptions(args, (w) => out.warn(w)) }), 'switched', out)
}

async function report(op: () => Promise<RollbackResult>, verb: string, out: Output): Promise<number> {
  try {
    const r = await op()
    for (const w of r.warnings) out.warn(w)
    out.result(r, () => {
      const to = `generation ${r.to} (hash ${shortHash(r.hash)})`
      const from = r.from === null ? '' : ` from generation ${r.from}`
      if (r.dryRun) return r.warnings.length ? `dry run: ${r.view} already shows ${to}; nothing would change` : `dry run: would switch ${r.view} to ${to}${from}; nothing changed`
      if (!r.changed) return `${r.view} already shows ${to}`
      return `${r.view} is now ${to}, ${verb}${from}`
    })
    return 0
  } catch (err) {
    return out.fail(err)
  }
}
