/**
 * plan(): pure. Reads the manifest's prefixes and returns what the view will
 * contain, the conflicts met, and the hash. Writes nothing.
 */
import { createHash } from 'node:crypto'
import fs from 'node:fs'
import { fsPath } from '../fs.js'
import { ViewError } from '../errors.js'
import type { Manifest } from '../manifest/types.js'
import { makeFilter, rootIncludeState } from './filters.js'
import { mergedWalk, sameContent, type Release, type WalkPackage } from './merge.js'
import { readDirListing, type DirReader } from './scan.js'
import { hashPlan, parsePlanText, planChunks, PLAN_FORMAT } from './hash.js'
import type { PlanMemo, RecalledPlan, RememberedPlan } from './cache.js'
import type { Conflict, Plan, PlanOptions } from './types.js'
import { toolVersion } from '../version.js'

export * from './types.js'

export interface PlanInputs {
  /** Override how directories are listed (the scan cache does). */
  readDir?: DirReader
  /**
   * The last plan made from the same inputs, recalled while nothing it was
   * made from has changed (the scan cache does this, cache.ts). A recalled
   * plan is read back from its generation's plan text and checked against its
   * hash; anything amiss and the plan is made afresh.
   */
  memo?: PlanMemo
  /** Told of entries as the walk settles them (merge.ts); not called for a recalled plan. */
  onRelease?: Release
  /**
   * Copy views: the array the walk fills with each entry's source identity
   * (statIdentity) as it places the entry, so that a streamed build can look
   * at an entry's identity when the walk tells it (store/build/stream.ts).
   * Becomes the result's `identities`.
   */
  identities?: string[]
}

export interface PlanResult extends Plan {
  /** The plan's text, as hashed and as written to the generation. */
  chunks: string[]
  /**
   * Copy views: each entry's source identity, by entry index (empty for a
   * directory), as hashed; written to the generation as its sources file, so
   * that the next generation shares a copy only while its source is the
   * same file (store/build/share.ts). Null for symlink and hardlink views.
   */
  identities: string[] | null
}

/** The plan's prefix table: every package path once, sorted. */
export function prefixTable(manifest: Manifest): string[] {
  return [...new Set(manifest.packages.map((p) => p.path))].sort()
}

export function createPlan(manifest: Manifest, inputs: PlanInputs = {}): PlanResult {
  const table = prefixTable(manifest)
  const options = { link: manifest.link, fold: manifest.fold, relative: manifest.relative }
  const memoKey = inputs.memo ? planInputsKey(manifest) : ''
  if (inputs.memo) {
    const recalled = inputs.memo.recall(memoKey)
    const plan = recalled && planFromText(recalled, options, table)
    if (plan) return plan
  }
  const tableIndex = new Map(table.map((p, i) => [p, i]))
  const packages: WalkPackage[] = manifest.packages.map((p, order) => ({
    order,
    table: tableIndex.get(p.path)!,
    path: p.path,
    priority: p.priority,
    filter: makeFilter(manifest.include, manifest.exclude, p.include, p.exclude),
    rootInclude: rootIncludeState(manifest.include, p.include),
  }))

  // source identity: hardlink and copy views only (statIdentity)
  const identity = manifest.link === 'symlink' ? null : createHash('sha256')
  const onDir = manifest.link === 'hardlink' ? (abs: string) => identity!.update(statIdentity(abs, false)) : undefined
  const identities = manifest.link === 'copy' ? (inputs.identities ?? []) : null
  const onFile =
    identities === null
      ? undefined
      : (abs: string, index: number) => {
          const id = statIdentity(abs, true)
          identity!.update(id)
          identities[index] = id
        }

  let comparisons = 0
  const walked = mergedWalk(packages, {
    fold: manifest.fold && manifest.link === 'symlink',
    conflicts: manifest.conflicts,
    readDir: inputs.readDir ?? readDirListing,
    onRelease: inputs.onRelease,
    onDir,
    onFile,
    sameContent: (a, b) => {
      comparisons++
      return sameContent(a, b)
    },
  })
  const chunks = planChunks(table, walked.paths, walked.kinds, walked.sources, walked.quoted)
  const identityDigest = identity !== null ? identity.digest('hex') : '-'
  const hash = hashPlan(options, chunks, identityDigest)
  // Only a plan that depends on nothing but the directory listings can be recalled by them:
  // not when file contents were compared, nor for hardlink/copy views (their identity is per inode).
  if (inputs.memo && manifest.link === 'symlink' && comparisons === 0 && walked.conflicts.length === 0) {
    inputs.memo.remember(memoKey, { hash, entries: walked.paths.length, excluded: walked.excluded, warnings: walked.warnings })
  }
  const { paths, kinds, sources, conflicts, warnings, excluded } = walked
  if (identities !== null) identities.length = paths.length
  return { options, prefixes: table, paths, kinds, sources, conflicts, warnings, excluded, hash, chunks, identities }
}

/**
 * What createPlan would return, in summary, when the memo remembers a plan
 * made from these same inputs and nothing it was made from has changed: the
 * hash and the counts, without reading the plan text. A no-op regenerate
 * needs no more (ops/regenerate.ts).
 */
export function recallPlanSummary(manifest: Manifest, memo: PlanMemo): (RememberedPlan & { prefixes: number }) | null {
  const recalled = memo.recallSummary(planInputsKey(manifest))
  return recalled && { ...recalled, prefixes: new Set(manifest.packages.map((p) => p.path)).size }
}

/**
 * Everything a plan is made from besides the directory listings: the format,
 * the tool version (a new planner may plan differently), the options and the
 * packages with their order, priorities and filters. As JSON, compared whole
 * (a few KiB in the cache's index).
 */
function planInputsKey(manifest: Manifest): string {
  const inputs = {
    format: PLAN_FORMAT,
    tool: toolVersion(),
    link: manifest.link,
    fold: manifest.fold,
    relative: manifest.relative,
    conflicts: manifest.conflicts,
    include: manifest.include,
    exclude: manifest.exclude,
    packages: manifest.packages.map((p) => [p.path, p.priority, p.include, p.exclude]),
  }
  return JSON.stringify(inputs)
}

/**
 * A recalled plan: its text parsed back, used only if it hashes to the
 * remembered hash again (only symlink views are remembered, whose hash has no
 * source identity) and names the same prefixes.
 */
function planFromText(recalled: RecalledPlan, options: PlanOptions, table: string[]): PlanResult | null {
  const chunks = [recalled.text]
  if (hashPlan(options, chunks, '-') !== recalled.hash) return null
  let parsed
  try {
    parsed = parsePlanText(recalled.text)
  } catch {
    return null
  }
  if (parsed.prefixes.length !== table.length || parsed.prefixes.some((p, i) => p !== table[i])) return null
  return { options, prefixes: table, paths: parsed.paths, kinds: parsed.kinds, sources: parsed.sources, conflicts: [], warnings: [...recalled.warnings], excluded: recalled.excluded, hash: recalled.hash, chunks, identities: null }
}

/**
 * Source identity for hardlink and copy views, where the view holds inodes
 * or bytes rather than names. Hardlink views hash each source directory's
 * (device, inode, ctime): replacing a file by rename, the way installers do,
 * updates its directory's ctime, and a file rewritten in place is the same
 * inode the view already shares. Copy views hash each file's (device, inode,
 * size, mtime, ctime, mode), since a copy would not see a rewrite in place
 * (ctime too: `touch -r` can restore an mtime, nothing restores a ctime).
 */
function statIdentity(abs: string, file: boolean): string {
  const st = fs.lstatSync(fsPath(abs), { bigint: true })
  return file ? `${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}:${st.mode}\n` : `${st.dev}:${st.ino}:${st.ctimeNs}\n`
}

export const CONFLICT_LIST_LIMIT = 20

export function unresolvedConflicts(plan: Plan): Conflict[] {
  return plan.conflicts.filter((c) => c.resolution === 'error')
}

/** Under `conflicts: error`, stop before any write and list every conflict with its sources. */
export function assertNoConflicts(plan: Plan, manifestFile: string): void {
  const open = unresolvedConflicts(plan)
  if (open.length === 0) return
  const lines = open.slice(0, CONFLICT_LIST_LIMIT).map((c) => `  ${c.path}: ${c.sources.map((s) => `${s.path} (${s.kind}${s.priority ? `, priority ${s.priority}` : ''})`).join(' vs ')}`)
  if (open.length > CONFLICT_LIST_LIMIT) lines.push(`  … and ${open.length - CONFLICT_LIST_LIMIT} more`)
  throw new ViewError(
    'CONFLICT',
    `${manifestFile}: ${open.length} conflict${open.length === 1 ? '' : 's'}: several prefixes provide different files at one path\n${lines.join('\n')}`,
    'give one package a higher `priority`, exclude the path from one package, or set `conflicts: first` or `conflicts: last`; the view was not changed',
    { conflicts: open },
  )
}
