import { activate, type ShellKind } from '../../shell/activate.js'
import type { Output } from '../render.js'
import type { GlobalArgs } from '../args.js'

export async function run(args: GlobalArgs & { target: string; shell?: ShellKind; canonical: boolean; deactivate: boolean }, out: Output): Promise<number> {
  try {
    const r = activate(args.target, { shell: args.shell, canonical: args.canonical, deactivate: args.deactivate })
    if (out.flags.json) out.result(r, () => '')
    else process.stdout.write(r.script) // the script is the result: --quiet only drops the hint below
    if (process.stdout.isTTY && !out.flags.json && !out.flags.quiet) {
      const how = r.shell === 'fish' ? `viewctl activate … --shell fish | source` : r.shell === 'csh' ? 'eval "`viewctl activate … --shell csh`"' : 'eval "$(viewctl activate …)"'
      process.stderr.write(`viewctl: these lines change nothing by themselves; run them in your shell: ${how}\n`)
    }
    return 0
  } catch (err) {
    return out.fail(err)
  }
}
