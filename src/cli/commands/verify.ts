import { verify } from '../../ops/verify.js'
import { exitCodeFor } from '../../errors.js'
import { formatCount, shortHash, type Output } from '../render.js'
import type { GlobalArgs } from '../args.js'

export async function run(args: GlobalArgs & { target: string }, out: Output): Promise<number> {
  try {
    const v = verify(args.target)
    out.result(v, () => {
      if (v.ok) return `ok: ${v.view} generation ${v.generation ?? '?'} (${shortHash(v.hash)}) matches its plan (${formatCount(v.checked)} entries)`
      const lines = v.problems.slice(0, 200).map((p) => `${p.problem.padEnd(12)} ${p.path}: ${p.detail}`)
      if (v.problems.length > 200) lines.push(`… and ${v.problems.length - 200} more`)
      lines.push(`${v.problems.length} problem${v.problems.length === 1 ? '' : 's'} in ${v.view} generation ${v.generation ?? '?'} (${shortHash(v.hash)})`)
      return lines
    })
    if (!v.ok && !out.flags.json) process.stderr.write(`viewctl: verify found ${v.problems.length} problem(s) in ${v.view}\nhint: regenerate to rebuild the tree, or roll back\n`)
    return v.ok ? 0 : exitCodeFor('VERIFY_FAILED')
  } catch (err) {
    return out.fail(err)
  }
}
