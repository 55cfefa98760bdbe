/**
 * Adoption (Portage's migration): a real directory at the view path becomes
 * a generation. Its listing is hashed like a plan whose entries have no
 * source; `.viewctl/` is written into it; it is renamed into the store (or
 * copied, when the directory is a mount point or on another filesystem); the
 * switch is recorded; a symlink is published in its place.
 *
 * POSIX has no atomic swap of a directory for a symlink (and
 * renameat2(RENAME_EXCHANGE) fails on NFS and Lustre), so between moving the
 * directory away and renaming the symlink in, the view path does not exist
 * for a moment: two renames and one journal append.
 */
import fs from 'node:fs'
import path from 'node:path'
import * as sfs from '../fs.js'
import { translateOsError } from '../errors.js'
import type { Manifest } from '../manifest/types.js'
import { hashPlan, planChunks } from '../plan/hash.js'
import { EntryType, readDirListing } from '../plan/scan.js'
import { Kind, NO_SOURCE } from '../plan/types.js'
import { toolVersion } from '../version.js'
import { removeQuietly, type GenerationMeta } from './build.js'
import { appendHistory, newRecord, retractHistory } from './history.js'
import { generationDir, LEASE_FILE, MANIFEST_COPY, META_DIR, META_FILE, PLAN_FILE, stagingDir, type Layout } from './layout.js'
import { publishGeneration } from './publish.js'
import { isComplete, nextGenerationNumber, type ViewState } from './state.js'

export interface AdoptResult {
  generation: number
  hash: string
  entries: number
}

export function adoptDirectory(layout: Layout, state: ViewState, manifest: Manifest, argv: string[]): AdoptResult {
  const { paths, kinds } = listTree(layout.view)
  const sources = paths.map(() => NO_SOURCE)
  const chunks = planChunks([], paths, kinds, sources)
  const options = { link: 'copy' as const, fold: false, relative: false }
  const hash = hashPlan(options, chunks, 'adopted')
  const metaDir = path.join(layout.view, META_DIR)
  const hadMeta = fs.existsSync(metaDir)
  const meta: GenerationMeta = {
    hash,
    format: 1,
    tool: { name: 'viewctl', version: toolVersion() },
    created: new Date().toISOString(),
    manifest: `(adopted from ${layout.view})`,
    options: { ...options, conflicts: 'error' },
    prefixes: [],
    counts: { entries: paths.length, dirs: kinds.filter((k) => k === Kind.Dir).length, files: kinds.filter((k) => k === Kind.File).length, symlinks: kinds.filter((k) => k === Kind.Symlink).length, folded: 0, excluded: 0, conflicts: 0 },
  }
  const dest = generationDir(layout, hash)
  try {
    sfs.mkdir(metaDir, true)
    sfs.writeFileDurable(path.join(metaDir, MANIFEST_COPY), `# adopted: ${layout.view} was a real directory before viewctl managed it\n`)
    sfs.writeFileDurable(path.join(metaDir, PLAN_FILE), chunks.join(''))
    sfs.writeFileDurable(path.join(metaDir, LEASE_FILE), '')
    sfs.writeFileDurable(path.join(metaDir, META_FILE), JSON.stringify(meta, null, 2) + '\n')
    if (!isComplete(layout, hash)) moveIntoStore(layout, dest, hash)
    else removeQuietly(layout.view) // the same listing was adopted before (a crash after the move): keep that copy
  } catch (err) {
    if (!hadMeta && fs.existsSync(layout.view)) removeQuietly(metaDir)
    throw translateOsError(err, `adopting ${layout.view} into ${layout.store}`)
  }
  const generation = nextGenerationNumber(state)
  const record = newRecord({ generation, hash, action: 'adopt', argv, manifest: manifest.file, env: manifest.env, gc: { keep: manifest.gc.keep, ttl: manifest.gc.ttl, auto: manifest.gc.auto } })
  const size = appendHistory(layout.history, record)
  try {
    publishGeneration(layout, hash)
  } catch (err) {
    retractHistory(layout.history, size)
    throw err
  }
  return { generation, hash, entries: paths.length }
}

function moveIntoStore(layout: Layout, dest: string, hash: string): void {
  try {
    sfs.rename(layout.view, dest)
    sfs.fsyncDir(layout.store)
    return
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code !== 'EXDEV' && code !== 'EBUSY') throw err
  }
  // a mount point, or a store on another filesystem: copy, then remove the original
  const staging = stagingDir(layout, hash)
  try {
    fs.cpSync(layout.view, staging, { recursive: true, verbatimSymlinks: true, preserveTimestamps: true, errorOnExist: true })
    sfs.rename(staging, dest)
  } catch (err) {
    removeQuietly(staging)
    throw err
  }
  sfs.rmTree(layout.view)
}

/** The directory's listing in plan order (sorted names, depth first), without `.viewctl` at its root. */
function listTree(root: string): { paths: string[]; kinds: number[] } {
  const paths: string[] = []
  const kinds: number[] = []
  const walk = (rel: string) => {
    const { names, types } = readDirListing(rel ? `${root}/${rel}` : root)
    const order = names.map((_, i) => i).sort((a, b) => (names[a]! < names[b]! ? -1 : names[a]! > names[b]! ? 1 : 0))
    for (const i of order) {
      const name = names[i]!
      if (rel === '' && name === META_DIR) continue
      const child = rel ? `${rel}/${name}` : name
      const type = types[i]!
      if (type === EntryType.Dir) {
        paths.push(child)
        kinds.push(Kind.Dir)
        walk(child)
      } else {
        paths.push(child)
        kinds.push(type === EntryType.Symlink ? Kind.Symlink : Kind.File)
      }
    }
  }
  walk('')
  return { paths, kinds }
}
