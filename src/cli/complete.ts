/**
 * `viewctl __complete generations <target>`: the generation numbers the
 * completion scripts offer, one a line as `<number>\t<note>`, newest first.
 * bin/viewctl answers it before the command line is loaded (no parser, no
 * command table), so a TAB costs one Node start and a read of the journal.
 * It prints nothing, and exits 0, for anything it cannot read: a completion
 * must never print an error into the user's command line.
 */
import path from 'node:path'
import { guessViewPath, isManifestPath } from '../manifest/target.js'
import { layoutFor } from '../store/layout.js'
import { readPins } from '../store/journal/pins.js'
import { isComplete, readViewState } from '../store/journal/state.js'
import fs from 'node:fs'

export function complete(argv: string[]): number {
  if (argv[0] !== 'generations' || argv[1] === undefined) return 0
  try {
    process.stdout.write(generationLines(argv[1]))
  } catch {
    // nothing to offer
  }
  return 0
}

function viewOf(target: string): string | null {
  if (!isManifestPath(target)) return path.resolve(target)
  return guessViewPath(fs.readFileSync(target, 'utf8'), target)
}

export function generationLines(target: string): string {
  const view = viewOf(target)
  if (view === null) return ''
  const layout = layoutFor(view)
  const state = readViewState(layout)
  const pins = readPins(layout)
  const seen = new Set<number>()
  const lines: string[] = []
  const records = state.records
  for (let i = records.length - 1; i >= 0; i--) {
    const r = records[i]!
    if (seen.has(r.generation)) continue
    seen.add(r.generation)
    const notes = [r.generation === state.current?.generation ? 'current' : '', pins.has(r.generation) ? 'pinned' : '', isComplete(layout, r.hash) ? '' : 'collected'].filter(Boolean)
    lines.push(`${r.generation}\t${[...notes, r.at.slice(0, 16).replace('T', ' ')].join(', ')}`)
  }
  lines.sort((a, b) => parseInt(b, 10) - parseInt(a, 10))
  return lines.length ? lines.join('\n') + '\n' : ''
}
