import { history, list, status } from '../../ops/inspect.js'
import { checkedTarget } from '../manifest-check.js'
import { exitCodeFor } from '../../errors.js'
import { formatCount, formatWhen, shortHash, type Output } from '../render.js'
import { formatDuration } from '../../manifest/duration.js'
import type { GlobalArgs } from '../args.js'

export async function runStatus(args: GlobalArgs & { target: string }, out: Output): Promise<number> {
  try {
    const s = status(await checkedTarget(args.target))
    out.result(s, () => [
      `view:        ${s.view} -> ${s.target}`,
      `generation:  ${s.generation ?? 'unknown'} (hash ${s.hash})`,
      `canonical:   ${s.canonical}`,
      `current for: ${s.ageMs === null ? 'unknown' : formatDuration(s.ageMs)}${s.since ? ` (since ${formatWhen(s.since)})` : ''}`,
      `contents:    ${formatCount(s.entries)} entries from ${s.prefixes} prefixes`,
      `manifest:    ${s.manifest ?? 'unknown'}`,
      `on disk:     ${s.generationsOnDisk} generation tree${s.generationsOnDisk === 1 ? '' : 's'} in ${s.store}`,
      `health:      ${s.health}${s.problems.map((p) => `\n  - ${p}`).join('')}`,
    ])
    // like verify: a script or a monitoring check sees a view that is not healthy by its exit status alone
    return s.health === 'ok' ? 0 : exitCodeFor('VERIFY_FAILED')
  } catch (err) {
    return out.fail(err)
  }
}

export async function runList(args: GlobalArgs & { target: string; history: boolean }, out: Output): Promise<number> {
  try {
    if (args.history) {
      const h = history(args.target)
      out.result(h, () =>
        h.history.map((e) => {
          const from = e.from === null ? '' : ` (from ${e.from})`
          return `${formatWhen(e.at)}   ${e.action.padEnd(10)} ${String(e.generation).padStart(5)}   ${shortHash(e.hash)}   ${e.user}@${e.host}${from}${e.current ? '   (current)' : ''}`
        }),
      )
      return 0
    }
    const l = list(args.target)
    out.result(l, () =>
      l.generations.map((g) => {
        const marks = [g.current ? '(current)' : '', g.pinned ? '(pinned)' : '', g.onDisk ? '' : '(collected)'].filter(Boolean).join(' ')
        return `${String(g.generation).padStart(5)}   ${formatWhen(g.created)}   ${shortHash(g.hash)}   ${g.action.padEnd(10)} ${marks}`.trimEnd()
      }),
    )
    return 0
  } catch (err) {
    return out.fail(err)
  }
}
