import { loadManifest } from '../../manifest/load.js'
import { createPlan, unresolvedConflicts, KIND_LETTERS, NO_SOURCE, type Conflict } from '../../plan/index.js'
import { exitCodeFor } from '../../errors.js'
import { formatCount, shortHash, type Output } from '../render.js'
import type { GlobalArgs } from '../args.js'

const KIND_NAMES = ['dir', 'file', 'symlink', 'folded'] as const

export async function run(args: GlobalArgs & { manifest: string; list: boolean }, out: Output): Promise<number> {
  try {
    const manifest = await loadManifest(args.manifest)
    const plan = createPlan(manifest)
    const open = unresolvedConflicts(plan)
    const counts = { dir: 0, file: 0, symlink: 0, folded: 0 }
    for (const k of plan.kinds) counts[KIND_NAMES[k]!]++
    for (const w of plan.warnings) out.warn(w)
    const entries = () =>
      plan.paths.map((p, i) => ({ path: p, kind: KIND_NAMES[plan.kinds[i]!]!, source: plan.sources[i] === NO_SOURCE ? null : `${plan.prefixes[plan.sources[i]!]}/${p}` }))
    out.result(
      {
        view: manifest.view,
        // with unresolved conflicts there is no view to name: regenerate would refuse
        hash: open.length ? null : plan.hash,
        link: manifest.link,
        entries: plan.paths.length,
        counts,
        prefixes: plan.prefixes,
        excluded: plan.excluded,
        conflicts: plan.conflicts,
        unresolved: open.length,
        warnings: plan.warnings,
        ...(args.list ? { plan: entries() } : {}),
      },
      () => {
        const lines = [
          `view:      ${manifest.view} (${manifest.link}${manifest.link === 'symlink' && manifest.fold ? ', folded' : ''})`,
          `hash:      ${open.length ? `none (${open.length} unresolved conflict${open.length === 1 ? '' : 's'})` : plan.hash}`,
          `prefixes:  ${plan.prefixes.length}`,
          `entries:   ${formatCount(plan.paths.length)} (${counts.dir} dirs, ${counts.file} files, ${counts.symlink} symlinks, ${counts.folded} folded dirs; ${plan.excluded} excluded by filters)`,
        ]
        if (plan.conflicts.length) {
          lines.push(`conflicts: ${plan.conflicts.length} (${open.length} unresolved)`)
          for (const c of plan.conflicts.slice(0, 50)) lines.push(describeConflict(c))
          if (plan.conflicts.length > 50) lines.push(`  … and ${plan.conflicts.length - 50} more`)
        }
        if (args.list) {
          for (let i = 0; i < plan.paths.length; i++) {
            const src = plan.sources[i]!
            lines.push(`${KIND_LETTERS[plan.kinds[i]!]} ${plan.paths[i]}${src === NO_SOURCE ? '' : `  <- ${plan.prefixes[src]}`}`)
          }
        }
        if (!open.length) lines.push(`regenerate would build ${shortHash(plan.hash)}; nothing was written`)
        return lines
      },
    )
    return open.length ? exitCodeFor('CONFLICT') : 0
  } catch (err) {
    return out.fail(err)
  }
}

function describeConflict(c: Conflict): string {
  const srcs = c.sources.map((s) => `${s.path}${s.priority ? ` (priority ${s.priority})` : ''}`).join(' vs ')
  const how = c.resolution === 'error' ? 'UNRESOLVED' : `${c.resolution} wins: ${c.winner}`
  return `  ${c.path}: ${srcs} -> ${how}`
}
