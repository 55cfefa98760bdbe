import { execInView } from '../../shell/exec.js'
import type { Output } from '../render.js'
import type { GlobalArgs } from '../main.js'

export async function run(args: GlobalArgs & { target: string; '--'?: Array<string | number> }, out: Output): Promise<number> {
  try {
    const command = (args['--'] ?? []).map(String)
    const r = await execInView(args.target, command)
    for (const w of r.warnings) out.warn(w)
    if (r.error !== null) process.stderr.write(`viewctl: ${r.error}\n`)
    return r.status
  } catch (err) {
    return out.fail(err)
  }
}
