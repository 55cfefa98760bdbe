/**
 * plan(): pure. Reads the manifest's prefixes and returns what the view will
 * contain, the conflicts met, and the hash. Writes nothing.
 */
import fs from 'node:fs'
import crypto from 'node:crypto'
import { fsPath } from '../fs.js'
import { ViewError } from '../errors.js'
import type { Manifest } from '../manifest/types.js'
import { makeFilter, rootIncludeState } from './filters.js'
import { mergedWalk, type WalkPackage } from './merge.js'
import { readDirListing, type DirReader } from './scan.js'
import { hashPlan, planChunks } from './hash.js'
import type { Conflict, Plan } from './types.js'

export * from './types.js'

export interface PlanInputs {
  /** Override how directories are listed (the scan cache does). */
  readDir?: DirReader
}

export interface PlanResult extends Plan {
  /** The plan's text, as hashed and as written to the generation. */
  chunks: string[]
}

export function createPlan(manifest: Manifest, inputs: PlanInputs = {}): PlanResult {
  const table = [...new Set(manifest.packages.map((p) => p.path))].sort()
  const tableIndex = new Map(table.map((p, i) => [p, i]))
  const packages: WalkPackage[] = manifest.packages.map((p, order) => ({
    order,
    table: tableIndex.get(p.path)!,
    path: p.path,
    priority: p.priority,
    filter: makeFilter(manifest.include, manifest.exclude, p.include, p.exclude),
    rootInclude: rootIncludeState(manifest.include, p.include),
  }))

  const identity = crypto.createHash('sha256')
  const onDir = manifest.link === 'hardlink' ? (abs: string) => identity.update(statIdentity(abs, false)) : undefined
  const onFile = manifest.link === 'copy' ? (abs: string) => identity.update(statIdentity(abs, true)) : undefined

  const walked = mergedWalk(packages, {
    fold: manifest.fold && manifest.link === 'symlink',
    conflicts: manifest.conflicts,
    readDir: inputs.readDir ?? readDirListing,
    onDir,
    onFile,
  })
  const options = { link: manifest.link, fold: manifest.fold, relative: manifest.relative }
  const chunks = planChunks(table, walked.paths, walked.kinds, walked.sources)
  const hash = hashPlan(options, chunks, onDir || onFile ? identity.digest('hex') : '-')
  return { options, prefixes: table, ...walked, hash, chunks }
}

/**
 * Source identity for hardlink and copy views, where the view holds inodes
 * or bytes rather than names. Hardlink views hash each source directory's
 * (device, inode, ctime): replacing a file by rename, the way installers do,
 * updates its directory's ctime, and a file rewritten in place is the same
 * inode the view already shares. Copy views hash each file's (device, inode,
 * size, mtime, mode), since a copy would not see a rewrite in place.
 */
function statIdentity(abs: string, file: boolean): string {
  const st = fs.lstatSync(fsPath(abs), { bigint: true })
  return file ? `${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}:${st.mode}\n` : `${st.dev}:${st.ino}:${st.ctimeNs}\n`
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
    'give one package a higher `priority`, exclude the path from one package, or set `conflicts: first` or `conflicts: last`; nothing was written',
    { conflicts: open },
  )
}
