import { execInView } from '../../shell/exec.js'
import type { Output } from '../render.js'
import { ViewError } from '../../errors.js'
import type { GlobalArgs } from '../args.js'

export async function run(args: GlobalArgs & { target: string; '--'?: Array<string | number> }, out: Output): Promise<number> {
  try {
    if (out.flags.json) {
      // the command owns stdout; a JSON object there would be mixed into its output
      throw new ViewError('USAGE', 'exec does not take --json: the command\'s own output is what exec prints', 'drop --json; use `viewctl status --json <view>` for the generation exec would use')
    }
    const command = (args['--'] ?? []).map(String)
    const r = await execInView(args.target, command)
    for (const w of r.warnings) out.warn(w)
    if (r.error !== null) process.stderr.write(`viewctl: ${r.error}\n`)
    return r.status
  } catch (err) {
    return out.fail(err)
  }
}
