import { verify, type VerifyProblem, type VerifyResult } from '../../ops/verify.js'
import { checkedTarget } from '../manifest-check.js'
import { exitCodeFor } from '../../errors.js'
import { formatCount, shortHash, type Output } from '../render.js'
import { writerOptions, type GlobalArgs } from '../args.js'

export async function run(args: GlobalArgs & { target: string; repair: boolean }, out: Output): Promise<number> {
  try {
    const target = await checkedTarget(args.target)
    if (args.repair) return await runRepair({ ...args, target }, out)
    const v = verify(target)
    out.result(v, () => (v.ok ? okLine(v) : [...problemLines(v.problems), summary(v)]))
    if (!v.ok && !out.flags.json) {
      process.stderr.write(`viewctl: verify found ${v.problems.length} problem(s) in ${v.view}\nhint: \`viewctl verify ${v.view} --repair\` re-creates what the plan says, each entry in one rename while the view stays in use; an entry whose source the prefix lost needs a regenerate\n`)
    }
    return v.ok ? 0 : exitCodeFor('VERIFY_FAILED')
  } catch (err) {
    return out.fail(err)
  }
}

async function runRepair(args: GlobalArgs & { target: string }, out: Output): Promise<number> {
  const { repair } = await import('../../ops/repair.js')
  const r = await repair(args.target, writerOptions(args, (w) => out.warn(w)))
  out.result(r, () => {
    const lines = [...r.repaired.map((p) => `repaired     ${p.path}: ${p.detail}`), ...r.unrepaired.map((p) => `not repaired ${p.path}: ${p.detail}; ${p.why}`)]
    lines.push(r.ok ? okLine(r, r.repaired.length) : summary(r))
    return lines
  })
  if (!r.ok && !out.flags.json) process.stderr.write(`viewctl: ${r.problems.length} problem(s) remain in ${r.view} after the repair\nhint: the lines above say why each could not be repaired\n`)
  return r.ok ? 0 : exitCodeFor('VERIFY_FAILED')
}

function okLine(v: VerifyResult, repaired?: number): string {
  const how = repaired === undefined ? '' : repaired === 0 ? '; nothing to repair' : `; ${repaired} entr${repaired === 1 ? 'y' : 'ies'} repaired`
  return `ok: ${v.view} generation ${v.generation ?? '?'} (${shortHash(v.hash)}) matches its plan (${formatCount(v.checked)} entries)${how}`
}

function problemLines(problems: VerifyProblem[]): string[] {
  const lines = problems.slice(0, 200).map((p) => `${p.problem.padEnd(12)} ${p.path}: ${p.detail}`)
  if (problems.length > 200) lines.push(`… and ${problems.length - 200} more`)
  return lines
}

function summary(v: VerifyResult): string {
  return `${v.problems.length} problem${v.problems.length === 1 ? '' : 's'} in ${v.view} generation ${v.generation ?? '?'} (${shortHash(v.hash)})`
}
