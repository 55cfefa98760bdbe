/**
 * The build room (store/build/): everything that turns a plan into a
 * published generation. This file stages a tree under `.staging-*`, checks
 * that every name stays inside it, writes the generation's files and seals
 * it; linker.ts links a plan's entries, over worker threads for a large plan
 * (link-worker.ts), each entry placed by link-entry.ts; stream.ts and
 * stream-queue.ts link while the prefixes are still being walked;
 * native.ts makes the links a directory at a time through the link addon
 * (native/links.c), with Node's calls as the fallback; lanes.ts keeps many
 * link operations in flight on a remote filesystem; share.ts hard-links the
 * entries unchanged since the generation on disk; workdir.ts names places
 * from inside the store; publish.ts swaps the view's symlink. It stands on
 * the journal (../journal/: is a tree complete, what meta.json holds) and on
 * layout.ts; the writer lock (../guard/) is taken by its caller in ops/. A
 * change to what a generation holds, or to how one comes to be, starts here.
 *
 * Building a generation: everything happens in `._<name>/.staging-<hash>-<pid>-<rand>/`,
 * `.viewctl/meta.json` is written last, and one rename() makes the tree
 * `._<name>/<hash>/`. A tree without meta.json is never a generation.
 */
import fs from 'node:fs'
import path from 'node:path'
import * as sfs from '../../fs.js'
import { ViewError, translateOsError } from '../../errors.js'
import type { BuildSettings } from '../../manifest/types.js'
// plan/types.js, not plan/index.js: rollback and gc reach this module and need not load the planner
import { Kind } from '../../plan/types.js'
import type { PlanResult } from '../../plan/index.js'
import { generationDir, realGenerationDir, LEASE_FILE, MANIFEST_COPY, META_DIR, META_FILE, PLAN_FILE, SOURCES_FILE, stagingDir, trashDir, type Layout } from '../layout.js'
import { treeCondition } from '../journal/state.js'
import { linkAll, type LinkHelpers } from './linker.js'
import { generationMeta, kindCounts, readMeta, type GenerationMeta } from '../journal/meta.js'
import { enterStore, stagingSpelling } from './workdir.js'
import { BaseMatcher, baseSpelling, newShareState, shareOutcome, sourcesText, type ShareBase, type ShareOutcome } from './share.js'
import type { ShareContext } from './link-entry.js'

export interface BuildResult {
  dir: string
  /** False when a complete tree with this hash was already on disk. */
  built: boolean
  meta: GenerationMeta
  /** Entries hard-linked from the base tree, and notes on what was created anew instead and why (share.ts). */
  share: ShareOutcome
}

/** Entries placed so far, of `total`; a streamed build (stream.ts) tells links made while it still walks, with `total` null. */
export interface BuildProgress {
  (done: number, total: number | null): void
}

export function metaFor(plan: PlanResult, manifest: BuildSettings): GenerationMeta {
  return generationMeta(plan.hash, manifest, manifest.file, plan.prefixes, kindCounts(plan.kinds, plan.excluded, plan.conflicts.length))
}

export interface BuildOptions {
  onProgress?: BuildProgress
  /** Aborting (SIGINT/SIGTERM) stops the build at the next batch, removes staging and throws INTERRUPTED. */
  signal?: AbortSignal
  /** Link workers started ahead of the plan (linker.ts); the caller releases them. */
  helpers?: LinkHelpers | null
  /** Make the store the working directory while linking, and name links from it (workdir.ts); only for a process with nothing else going on. */
  workInStore?: boolean
  /** The tree to share unchanged entries from (share.ts, chooseBase), chosen under the writer lock. */
  base?: ShareBase | null
  /** On a remote filesystem: link operations kept in flight, one per directory (lanes.ts). */
  inFlight?: number
  /** The generation's meta.json as another host wrote it (a pushed generation keeps its own), checked by the caller: its text is written as given. */
  received?: { meta: GenerationMeta; text: string }
}

/** Nothing was shared. */
export const NOTHING_SHARED: ShareOutcome = { shared: 0, notes: [] }

export async function buildGeneration(layout: Layout, plan: PlanResult, manifest: BuildSettings, opts: BuildOptions = {}): Promise<BuildResult> {
  const finalDir = generationDir(layout, plan.hash)
  // reused only when intact (checked without a walk); a damaged tree under this name is rebuilt and retired by sealGeneration
  if (treeCondition(layout, plan.hash).state === 'intact') {
    return { dir: finalDir, built: false, meta: readMeta(finalDir) ?? metaFor(plan, manifest), share: NOTHING_SHARED }
  }
  if (manifest.link === 'hardlink') assertSameFilesystem(layout, plan.prefixes)

  const staging = stagingDir(layout, plan.hash)
  const meta = opts.received?.meta ?? metaFor(plan, manifest)
  const base = opts.base ?? null
  const shareState = base === null ? null : newShareState()
  try {
    sfs.mkdir(staging, false, STAGING_MODE)
    const leave = opts.workInStore ? enterStore(layout.store) : null
    try {
      const share = base === null ? undefined : { from: baseSpelling(base, leave !== null), flags: shareFlags(base, plan), state: shareState! }
      await linkEntries(staging, realGenerationDir(layout, plan.hash), plan, manifest, opts, stagingSpelling(staging, leave !== null), share)
    } finally {
      leave?.()
    }
    throwIfAborted(opts.signal)
    writeGenerationFiles(staging, plan, manifest)
    sealGeneration(layout, staging, plan, meta, opts.received?.text)
  } catch (err) {
    removeQuietly(staging)
    throw translateOsError(err, `building generation ${plan.hash} in ${layout.store}`)
  }
  return { dir: finalDir, built: true, meta, share: base === null ? NOTHING_SHARED : shareOutcome(base, shareState!) }
}

/** Which entries of the plan the base has unchanged: 1 at their index (share.ts). */
function shareFlags(base: ShareBase, plan: PlanResult): Uint8Array {
  const matcher = new BaseMatcher(base, plan.prefixes)
  const { paths, kinds, sources, identities } = plan
  const flags = new Uint8Array(paths.length)
  for (let i = 0; i < paths.length; i++) if (matcher.matches(paths[i]!, kinds[i]!, sources[i]!, identities?.[i])) flags[i] = 1
  return flags
}

/**
 * The generation's files besides meta.json: the manifest copy, the plan text
 * and the lease file, in `.viewctl/`. A streamed build writes them while its
 * link workers are still linking (stream.ts); a tree without meta.json is
 * not a generation yet whatever else it holds.
 */
export function writeGenerationFiles(staging: string, plan: PlanResult, manifest: BuildSettings): void {
  const metaDir = path.join(staging, META_DIR)
  sfs.mkdir(metaDir)
  // new names in a new directory: O_EXCL, so that nothing another user put there meanwhile is written through
  sfs.writeFileDurable(path.join(metaDir, MANIFEST_COPY), manifest.text, { exclusive: true })
  sfs.writeFileDurable(path.join(metaDir, PLAN_FILE), plan.chunks, { exclusive: true })
  if (plan.identities !== null) sfs.writeFileDurable(path.join(metaDir, SOURCES_FILE), sourcesText(plan.kinds, plan.identities), { exclusive: true })
  sfs.writeFileDurable(path.join(metaDir, LEASE_FILE), '', { exclusive: true })
}

/**
 * A staging directory is its writer's alone while it is filled (0700): in a
 * store the group may write, no other member can put a symlink inside it for
 * the build to write through. sealGeneration gives it the store's mode just
 * before it becomes the generation.
 */
export const STAGING_MODE = 0o700

/**
 * The last steps of every build, once the tree is linked in staging and
 * writeGenerationFiles has run: `meta.json` last, a flush, and the rename
 * that makes staging the generation `<hash>`.
 */
export function sealGeneration(layout: Layout, staging: string, plan: PlanResult, meta: GenerationMeta, metaText = JSON.stringify(meta, null, 2) + '\n'): void {
  const finalDir = generationDir(layout, plan.hash)
  const metaDir = path.join(staging, META_DIR)
  sfs.writeFileDurable(path.join(metaDir, META_FILE), metaText, { exclusive: true })
  sfs.fsyncDir(metaDir)
  // the generation's directory takes the store's mode (setgid kept, never world-writable): readers may enter it
  // through a descriptor that does not follow a symlink: staging sits in a store others may write
  const storeMode = fs.statSync(layout.store).mode
  sfs.chmodDirNoFollow(staging, () => storeMode & 0o2775)
  sfs.fsyncDir(staging)
  if (lexists(finalDir)) {
    // an incomplete or damaged tree under the final name (meta.json removed by hand, a symlink planted): retire it first
    sfs.rename(finalDir, trashDir(layout, plan.hash))
  }
  sfs.rename(staging, finalDir)
  sfs.fsyncDir(layout.store)
}

/** Is there anything at `p` (a symlink counts: it is not followed)? */
function lexists(p: string): boolean {
  try {
    fs.lstatSync(p)
    return true
  } catch {
    return false
  }
}

export function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) {
    // the other end of a push gone: say that, not "a signal"
    if (signal.reason instanceof ViewError) throw signal.reason
    const reason = typeof signal.reason === 'string' ? signal.reason : 'a signal'
    throw new ViewError('INTERRUPTED', `interrupted by ${reason}; the build was abandoned and its staging directory removed`, 'the view was left on its previous generation; run the command again when ready')
  }
}

/** Entries placed between two looks at the event loop (signals are delivered there). */
const BATCH = 4096

/**
 * Two passes: the directories first, in plan order (each inside one made
 * before it), then the links — split over worker threads for a large plan
 * (linker.ts), serially and in plan order otherwise or while faults are armed.
 */
/**
 * `realFinalDir`: where the tree will be, symlinks in its parents resolved (relative links are computed from it).
 * `at`: how links name staging (workdir.ts).
 */
async function linkEntries(staging: string, realFinalDir: string, plan: PlanResult, manifest: BuildSettings, opts: BuildOptions, at: string, share: ShareContext | undefined): Promise<void> {
  const { paths, kinds, sources, prefixes } = plan
  const { onProgress, signal } = opts
  const total = paths.length
  const dirs = new Set<string>([''])
  const lastParent = { parent: '' }
  const links: number[] = []
  for (let i = 0; i < total; i++) {
    const rel = paths[i]!
    assertContained(rel, dirs, lastParent)
    if (kinds[i] === Kind.Dir) {
      sfs.mkdir(`${staging}/${rel}`)
      dirs.add(rel)
    } else {
      links.push(i)
    }
    if (i % BATCH === BATCH - 1) {
      await new Promise<void>((resolve) => setImmediate(resolve))
      throwIfAborted(signal)
    }
  }
  const made = total - links.length
  let reported = 0
  const relativeLinks = manifest.link === 'symlink' && manifest.relative
  await linkAll(
    {
      staging,
      at,
      mode: manifest.link,
      relative: relativeLinks,
      prefixes,
      // Staging sits beside the final directory, so a link relative to one is relative to the other.
      prefixFromRoot: relativeLinks ? prefixes.map((p) => path.relative(realFinalDir, p)) : [],
      paths,
      kinds,
      sources,
      share,
    },
    links,
    {
      planText: plan.chunks,
      helpers: opts.helpers,
      inFlight: opts.inFlight,
      checkpoint: (linked) => {
        throwIfAborted(signal)
        if (onProgress && linked - reported >= BATCH) {
          reported = linked
          onProgress(made + linked, total)
        }
      },
    },
  )
  if (onProgress) onProgress(total, total)
}

/**
 * Containment: an entry is written only directly inside a directory this
 * build created, and its name is one plain component. Whatever names or
 * symlinks a prefix holds, nothing is ever written through a link or
 * outside the staging tree.
 */
export function assertContained(rel: string, dirs: Set<string>, last: { parent: string }): void {
  const slash = rel.lastIndexOf('/')
  const start = slash + 1
  const length = rel.length - start
  const dotName = rel.charCodeAt(start) === 46 && (length === 1 || (length === 2 && rel.charCodeAt(start + 1) === 46))
  let contained: boolean
  // most entries share the previous one's parent, already found in `dirs`: no slice, no lookup
  if (slash === last.parent.length && (slash === -1 ? last.parent === '' : rel.startsWith(last.parent))) contained = true
  else {
    const parent = slash === -1 ? '' : rel.slice(0, slash)
    contained = dirs.has(parent)
    if (contained) last.parent = parent
  }
  if (!contained || length === 0 || dotName || rel.charCodeAt(0) === 47) {
    throw unsafePath(rel)
  }
}

/** The first prefix that is not on the store's filesystem, or null. */
export function prefixOnAnotherFilesystem(layout: Layout, prefixes: string[]): string | null {
  const storeDev = fs.statSync(layout.store).dev
  for (const p of prefixes) if (fs.statSync(sfs.fsPath(p)).dev !== storeDev) return p
  return null
}

/** What the containment checks throw: a path that is not a plain name inside a directory the build made. */
export function unsafePath(rel: string): ViewError {
  return new ViewError('UNSAFE_PATH', `refusing to write ${JSON.stringify(rel)}: it is not a plain name inside a directory this build created`, 'this is a bug in viewctl; please report it with the manifest')
}

/** Hardlinks cannot cross filesystems: say which two, before writing anything. */
function assertSameFilesystem(layout: Layout, prefixes: string[]): void {
  const p = prefixOnAnotherFilesystem(layout, prefixes)
  if (p !== null) {
    throw new ViewError(
      'XDEV_HARDLINK',
      `cannot hardlink ${p} (on the filesystem mounted at ${mountPointOf(p)}) into ${layout.store} (on the filesystem mounted at ${mountPointOf(layout.store)}): hardlinks cannot cross filesystems`,
      'use `link: symlink` (or `link: copy`) in the manifest, or put the view on the same filesystem as its prefixes; the view was not changed',
    )
  }
}

export function mountPointOf(p: string): string {
  let cur = path.resolve(p)
  const dev = fs.statSync(cur).dev
  for (;;) {
    const parent = path.dirname(cur)
    if (parent === cur) return cur
    if (fs.statSync(parent).dev !== dev) return cur
    cur = parent
  }
}

export function removeQuietly(dir: string): void {
  try {
    fs.rmSync(sfs.fsPath(dir), { recursive: true, force: true })
  } catch {
    // best effort: the next writer clears leftovers
  }
}
