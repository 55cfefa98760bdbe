/**
 * `viewctl completion [shell]` prints the script the build wrote into
 * dist/completion/ from the command table (scripts/generate.mjs), the same
 * file a package installs, so the two cannot differ.
 */
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { ViewError } from '../../errors.js'
import type { Output } from '../render.js'
import type { GlobalArgs } from '../args.js'

/** The file each shell looks for, as scripts/generate.mjs names them. */
const FILES: Record<string, string> = { bash: 'viewctl', zsh: '_viewctl', fish: 'viewctl.fish' }

export async function run(args: GlobalArgs & { shell?: string }, out: Output): Promise<number> {
  try {
    const shell = args.shell ?? path.basename(process.env.SHELL ?? '')
    const file = FILES[shell]
    if (file === undefined) {
      const why = args.shell === undefined ? `$SHELL (${process.env.SHELL ?? 'unset'}) is not one of them` : `not ${JSON.stringify(shell)}`
      throw new ViewError('USAGE', `completion is written for bash, zsh and fish, ${why}`, 'name the shell: `viewctl completion bash` (or zsh, fish)')
    }
    const script = readScript(file)
    if (out.flags.json) out.result({ shell, script }, () => '')
    else process.stdout.write(script)
    return 0
  } catch (err) {
    return out.fail(err)
  }
}

/** dist/completion/<file>, seen from the bundle (dist/bundle/) or from dist/cli/commands/. */
function readScript(file: string): string {
  const here = path.dirname(fileURLToPath(import.meta.url))
  for (const dir of [path.join(here, '..', 'completion'), path.join(here, '..', '..', 'completion')]) {
    try {
      return fs.readFileSync(path.join(dir, file), 'utf8')
    } catch {
      // not this layout
    }
  }
  throw new ViewError('INTERNAL', `the completion script ${file} was not built (dist/completion/ is missing)`, 'run `npm run build`, which writes it')
}
