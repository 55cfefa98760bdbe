import { destroyView } from '../../ops/destroy.js'
import type { Output } from '../render.js'
import { writerOptions, type GlobalArgs } from '../args.js'

export async function run(args: GlobalArgs & { target: string; yes: boolean }, out: Output): Promise<number> {
  try {
    const r = await destroyView(args.target, { yes: args.yes, ...writerOptions(args, (w) => out.warn(w)) })
    for (const w of r.warnings) out.warn(w)
    out.result(r, () => {
      const lines = [`removed ${r.linkRemoved ? `${r.view} and ` : ''}its store ${r.store} (${r.trees.length} generation tree${r.trees.length === 1 ? '' : 's'})`]
      if (r.moduleTree?.removed.length) lines.push(`removed the module files ${r.moduleTree.removed.join(', ')} from ${r.moduleTree.module}`)
      return lines
    })
    return 0
  } catch (err) {
    return out.fail(err)
  }
}
