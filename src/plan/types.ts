import type { LinkMode } from '../manifest/types.js'

/**
 * What one view-relative path becomes in a generation.
 * The single letters are the plan file's column one.
 */
export const Kind = {
  /** a real directory in the view (merged from several prefixes) */
  Dir: 0,
  /** a link (or hardlink, or copy) of a regular file */
  File: 1,
  /** the prefix ships a symlink here; the view links to it as it stands */
  Symlink: 2,
  /** a single-owner directory folded into one symlink to the prefix's directory */
  Folded: 3,
} as const
export type Kind = (typeof Kind)[keyof typeof Kind]

export const KIND_LETTERS = ['d', 'f', 'l', 'F'] as const

/** The characters a path in the plan text is quoted for (hash.ts, escapePath). */
export const NEEDS_QUOTING = /[\t\n\r\\"\uD800-\uDFFF]/

/** The plan text's format version (hash.ts); here so that readers of metadata need not load the hashing code. */
export const PLAN_FORMAT = 1

/**
 * Where a generation keeps the plan it was built from: `<hash>/.viewctl/plan.tsv`
 * (store/layout.ts names the rest of the store). Here because the scan cache
 * (cache.ts) reads a remembered plan back from there.
 */
export const META_DIR = '.viewctl'
export const PLAN_FILE = 'plan.tsv'
export const NO_SOURCE = 0xffffffff

export interface ConflictSource {
  prefix: string
  path: string
  kind: 'file' | 'dir' | 'symlink'
  priority: number
}

export interface Conflict {
  /** view-relative path */
  path: string
  sources: ConflictSource[]
  /** how it was settled: by priority, by the first/last policy, or not (error) */
  resolution: 'priority' | 'first' | 'last' | 'error'
  /** the absolute source that won, when settled */
  winner: string | null
}

export interface PlanOptions {
  link: LinkMode
  fold: boolean
  relative: boolean
}

/**
 * A plan is compact columnar data, sorted by view path (depth first, names in
 * code-unit order), so a million entries cost tens of megabytes, not hundreds.
 */
export interface Plan {
  options: PlanOptions
  /** Source prefixes, sorted, unique; `sources[i]` indexes this table. */
  prefixes: string[]
  paths: string[]
  kinds: number[]
  sources: number[]
  /** All conflicts met, settled or not. */
  conflicts: Conflict[]
  warnings: string[]
  /** Number of paths that filters dropped. */
  excluded: number
  hash: string
}
