import path from 'node:path'
import { ViewError } from '../../errors.js'
import { completionScript, type CompletionShell } from '../completion/index.js'
import { COMPLETION_SHELLS } from '../spec.js'
import type { Output } from '../render.js'
import type { GlobalArgs } from '../main.js'

export async function run(args: GlobalArgs & { shell?: string }, out: Output): Promise<number> {
  try {
    const shell = args.shell ?? path.basename(process.env.SHELL ?? '')
    if (!(COMPLETION_SHELLS as readonly string[]).includes(shell)) {
      const why = args.shell === undefined ? `$SHELL (${process.env.SHELL ?? 'unset'}) is not one of them` : `not ${JSON.stringify(shell)}`
      throw new ViewError('USAGE', `completion is written for bash, zsh and fish, ${why}`, 'name the shell: `viewctl completion bash` (or zsh, fish)')
    }
    const script = completionScript(shell as CompletionShell)
    if (out.flags.json) out.result({ shell, script }, () => '')
    else process.stdout.write(script)
    return 0
  } catch (err) {
    return out.fail(err)
  }
}
