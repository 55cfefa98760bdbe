import { diff } from '../../ops/diff.js'
import { shortHash, type Output } from '../render.js'
import type { GlobalArgs } from '../args.js'

export async function run(args: GlobalArgs & { target: string; from?: string | number; to?: string | number }, out: Output): Promise<number> {
  try {
    const d = diff(args.target, args.from === undefined ? undefined : String(args.from), args.to === undefined ? undefined : String(args.to))
    out.result(d, () => {
      const lines = [`generation ${d.from.generation} (${shortHash(d.from.hash)}) -> generation ${d.to.generation} (${shortHash(d.to.hash)})`]
      for (const p of d.prefixesAdded) lines.push(`+ prefix ${p}`)
      for (const p of d.prefixesRemoved) lines.push(`- prefix ${p}`)
      for (const c of d.added) lines.push(`+ ${c.path}`)
      for (const c of d.removed) lines.push(`- ${c.path}`)
      for (const c of d.changed) lines.push(`~ ${c.path}  (${c.before} -> ${c.after})`)
      if (lines.length === 1) lines.push('no differences')
      else lines.push(`${d.added.length} added, ${d.removed.length} removed, ${d.changed.length} changed`)
      return lines
    })
    return 0
  } catch (err) {
    return out.fail(err)
  }
}
