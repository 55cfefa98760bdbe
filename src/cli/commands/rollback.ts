import { rollback } from '../../ops/rollback.js'
import { shortHash, type Output } from '../render.js'
import type { GlobalArgs } from '../args.js'

export async function run(args: GlobalArgs & { target: string; to?: string }, out: Output): Promise<number> {
  try {
    const r = await rollback(args.target, { to: args.to, lockTimeout: args.lockTimeout, noLock: !args.lock, argv: ['viewctl', ...process.argv.slice(2)] })
    for (const w of r.warnings) out.warn(w)
    out.result(r, () => `${r.view} is now generation ${r.to} (hash ${shortHash(r.hash)})${r.from === null ? '' : `, rolled back from generation ${r.from}`}`)
    return 0
  } catch (err) {
    return out.fail(err)
  }
}
