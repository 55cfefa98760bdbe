/** Reading the plan a generation was built from (`.viewctl/plan.tsv`). */
import { readTextNoFollow } from '../../fs.js'
import path from 'node:path'
import { ViewError } from '../../errors.js'
import { parsePlanText, type ParsedPlan } from '../../plan/hash.js'
import { generationDir, META_DIR, PLAN_FILE, type Layout } from '../layout.js'

export function readGenerationPlan(layout: Layout, hash: string, generation?: number): ParsedPlan {
  const file = path.join(generationDir(layout, hash), META_DIR, PLAN_FILE)
  let text: string
  try {
    text = readTextNoFollow(file)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      const which = generation === undefined ? hash.slice(0, 12) : `generation ${generation} (${hash.slice(0, 12)})`
      throw new ViewError('GENERATION_COLLECTED', `${which} of ${layout.view} is not on disk (garbage-collected, or its plan file was removed)`, '`viewctl list` shows which generations are on disk')
    }
    throw err
  }
  return parsePlanText(text)
}
