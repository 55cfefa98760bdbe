/**
 * Adoption (Portage's migration): a real directory at the view path becomes
 * a generation. Its listing (names and file identities) is hashed like a plan
 * whose entries have no source; `.viewctl/` is written into it; it is renamed
 * into the store beside it; the switch is recorded; a symlink is published in
 * its place. A mount point is refused: it cannot be renamed, and copying it
 * away would empty the mounted filesystem.
 *
 * POSIX has no atomic swap of a directory for a symlink (and
 * renameat2(RENAME_EXCHANGE) fails on NFS and Lustre), so between moving the
 * directory away and renaming the symlink in, the view path does not exist
 * for a moment: two renames and one journal append.
 */
import fs from 'node:fs'
import path from 'node:path'
import * as sfs from '../../fs.js'
import { ViewError, translateOsError } from '../../errors.js'
import type { Manifest } from '../../manifest/types.js'
import { hashPlan, planChunks } from '../../plan/hash.js'
import { EntryType, readDirListing } from '../../plan/scan.js'
import { Kind, NO_SOURCE } from '../../plan/types.js'
import { removeQuietly } from '../build/build.js'
import { newRecord } from '../journal/history.js'
import { generationDir, LEASE_FILE, MANIFEST_COPY, META_DIR, META_FILE, PLAN_FILE, type Layout } from '../layout.js'
import { generationMeta, kindCounts } from '../journal/meta.js'
import { switchView, type SwitchGuard } from '../build/publish.js'
import { nextGenerationNumber, type ViewState } from '../journal/state.js'

export interface AdoptResult {
  generation: number
  hash: string
  entries: number
}

export function adoptDirectory(layout: Layout, state: ViewState, manifest: Manifest, argv: string[], guard: SwitchGuard): AdoptResult {
  assertNotMountPoint(layout)
  const { paths, kinds, identity } = listTree(layout.view)
  const chunks = planChunks([], paths, kinds, paths.map(() => NO_SOURCE))
  const options = { link: 'copy' as const, fold: false, relative: false }
  // names and file identities (device, inode, size, mtime): two directories with the same names are not the same tree
  const hash = hashPlan(options, chunks, `adopted\n${identity}`)
  const dest = generationDir(layout, hash)
  if (fs.existsSync(dest)) {
    throw new ViewError('IO', `cannot adopt ${layout.view}: the store already holds a tree ${dest} with the same hash`, 'move that tree away (or remove it if it is a leftover) and retry; nothing was changed')
  }
  const metaDir = path.join(layout.view, META_DIR)
  const hadMeta = fs.existsSync(metaDir)
  if (hadMeta && (fs.lstatSync(metaDir).isSymbolicLink() || !fs.lstatSync(metaDir).isDirectory())) {
    // the files below are written into it: never through a link to somewhere else
    throw new ViewError('UNSAFE_PATH', `cannot adopt ${layout.view}: its ${META_DIR} is not a directory (a symlink, or a file)`, `move ${metaDir} away and retry; nothing was changed`)
  }
  const meta = generationMeta(hash, options, `(adopted from ${layout.view})`, [], kindCounts(kinds, 0, 0))
  try {
    sfs.mkdir(metaDir, true)
    sfs.writeFileDurable(path.join(metaDir, MANIFEST_COPY), `# adopted: ${layout.view} was a real directory before viewctl managed it\n`)
    sfs.writeFileDurable(path.join(metaDir, PLAN_FILE), chunks.join(''))
    sfs.writeFileDurable(path.join(metaDir, LEASE_FILE), '')
    sfs.writeFileDurable(path.join(metaDir, META_FILE), JSON.stringify(meta, null, 2) + '\n')
    // the store is a sibling of the view path, and the view is no mount point: one rename within one filesystem
    sfs.rename(layout.view, dest)
    sfs.fsyncDir(layout.store)
  } catch (err) {
    if (!hadMeta && fs.existsSync(layout.view)) removeQuietly(metaDir)
    const e = translateOsError(err, `adopting ${layout.view} into ${layout.store}`)
    throw new ViewError(e.code, e.message, `${layout.view} was not moved; fix the cause and retry`, e.details, { cause: err })
  }
  const generation = nextGenerationNumber(state)
  const record = newRecord({ generation, hash, action: 'adopt', argv, manifest: manifest.file, env: manifest.env, gc: { keep: manifest.gc.keep, ttl: manifest.gc.ttl, auto: manifest.gc.auto }, modules: manifest.modules })
  try {
    switchView(layout, state, record, guard)
  } catch (err) {
    const e = translateOsError(err, `publishing the adopted tree at ${layout.view}`)
    throw new ViewError(e.code, e.message, `the adopted directory is safe at ${dest}; fix the cause and run the same regenerate again, or move it back by hand`, e.details, { cause: err })
  }
  return { generation, hash, entries: paths.length }
}

function assertNotMountPoint(layout: Layout): void {
  if (fs.statSync(layout.view).dev !== fs.statSync(layout.parent).dev) {
    throw new ViewError(
      'NOT_MANAGED',
      `cannot adopt ${layout.view}: it is a mount point, and a mount point cannot be replaced by a symlink`,
      "mount the filesystem elsewhere and point the manifest's `view` at a new path, or unmount it first; nothing was changed",
    )
  }
}

/** The directory's listing in plan order (sorted names, depth first), without `.viewctl` at its root. */
function listTree(root: string): { paths: string[]; kinds: number[]; identity: string } {
  const paths: string[] = []
  const kinds: number[] = []
  const ids: string[] = []
  const walk = (rel: string) => {
    const { names, types } = readDirListing(rel ? `${root}/${rel}` : root)
    const order = names.map((_, i) => i).sort((a, b) => (names[a]! < names[b]! ? -1 : names[a]! > names[b]! ? 1 : 0))
    for (const i of order) {
      const name = names[i]!
      if (rel === '' && name === META_DIR) continue
      const child = rel ? `${rel}/${name}` : name
      paths.push(child)
      if (types[i] === EntryType.Dir) {
        kinds.push(Kind.Dir)
        walk(child)
        continue
      }
      kinds.push(types[i] === EntryType.Symlink ? Kind.Symlink : Kind.File)
      const st = fs.lstatSync(sfs.fsPath(`${root}/${child}`), { bigint: true })
      ids.push(`${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}`)
    }
  }
  walk('')
  return { paths, kinds, identity: ids.join('\n') }
}
