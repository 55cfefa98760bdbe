/** `.viewctl/meta.json`: written last into a generation; its presence makes the tree complete. */
import { readTextNoFollow } from '../../fs.js'
import path from 'node:path'
import { Kind, PLAN_FORMAT } from '../../plan/types.js'
import { toolVersion } from '../../version.js'
import { META_DIR, META_FILE } from '../layout.js'

export interface GenerationCounts {
  entries: number
  dirs: number
  files: number
  symlinks: number
  folded: number
  excluded: number
  conflicts: number
}

export interface GenerationMeta {
  hash: string
  format: number
  tool: { name: string; version: string }
  created: string
  manifest: string
  options: { link: string; fold: boolean; relative: boolean; conflicts: string }
  prefixes: string[]
  counts: GenerationCounts
}

export function kindCounts(kinds: ArrayLike<number>, excluded: number, conflicts: number): GenerationCounts {
  const counts = { entries: kinds.length, dirs: 0, files: 0, symlinks: 0, folded: 0, excluded, conflicts }
  for (let i = 0; i < kinds.length; i++) {
    const k = kinds[i]
    if (k === Kind.Dir) counts.dirs++
    else if (k === Kind.File) counts.files++
    else if (k === Kind.Symlink) counts.symlinks++
    else counts.folded++
  }
  return counts
}

export function generationMeta(
  hash: string,
  options: { link: string; fold: boolean; relative: boolean; conflicts?: string },
  manifest: string,
  prefixes: string[],
  counts: GenerationCounts,
): GenerationMeta {
  return {
    hash,
    format: PLAN_FORMAT,
    tool: { name: 'viewctl', version: toolVersion() },
    created: new Date().toISOString(),
    manifest,
    options: { link: options.link, fold: options.fold, relative: options.relative, conflicts: options.conflicts ?? 'error' },
    prefixes,
    counts,
  }
}

export function readMeta(dir: string): GenerationMeta | null {
  try {
    return JSON.parse(readTextNoFollow(path.join(dir, META_DIR, META_FILE))) as GenerationMeta
  } catch {
    return null
  }
}
