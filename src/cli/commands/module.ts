import { moduleFile } from '../../modules/module.js'
import type { ModuleFormat } from '../../modules/modulefile.js'
import type { Output } from '../render.js'
import type { GlobalArgs } from '../main.js'

export async function run(args: GlobalArgs & { target: string; format?: ModuleFormat; name?: string; family?: string; canonical: boolean }, out: Output): Promise<number> {
  try {
    const r = moduleFile(args.target, { format: args.format, name: args.name, family: args.family, canonical: args.canonical })
    if (out.flags.json) out.result(r, () => '')
    else process.stdout.write(r.text) // the file is the result: --quiet drops nothing of it
    return 0
  } catch (err) {
    return out.fail(err)
  }
}
