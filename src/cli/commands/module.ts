import { moduleFile } from '../../modules/module.js'
import type { ModuleFormat } from '../../modules/modulefile.js'
import { writeModuleTreeFor } from '../../modules/tree.js'
import { ViewError } from '../../errors.js'
import type { Output } from '../render.js'
import type { GlobalArgs } from '../args.js'

type ModuleArgs = GlobalArgs & { target: string; format?: ModuleFormat; name?: string; family?: string; canonical: boolean; dir?: string; generations: boolean }

export async function run(args: ModuleArgs, out: Output): Promise<number> {
  try {
    if (args.dir === undefined) {
      if (args.generations) throw new ViewError('USAGE', '--generations writes one file per generation into a module tree: it needs --dir', 'add --dir <directory>, the one you give to `module use`')
      const r = moduleFile(args.target, { format: args.format, name: args.name, family: args.family, canonical: args.canonical })
      if (out.flags.json) out.result(r, () => '')
      else process.stdout.write(r.text) // the file is the result: --quiet drops nothing of it
      return 0
    }
    if (args.canonical) throw new ViewError('USAGE', "--canonical and --dir do not go together: a tree's `current` follows the view, and --generations pins one file to each generation", 'drop --canonical; add --generations for files pinned to generations')
    const r = writeModuleTreeFor(args.target, { dir: args.dir, format: args.format, name: args.name, family: args.family, generations: args.generations })
    out.result(r, () => {
      const changes = [r.written.length ? `wrote ${r.written.join(', ')}` : 'nothing to write', ...(r.removed.length ? [`removed ${r.removed.join(', ')}`] : [])]
      return [`${r.module}: ${changes.join('; ')}`, `load it with: module use ${r.dir}; module load ${r.name}`]
    })
    return 0
  } catch (err) {
    return out.fail(err)
  }
}
