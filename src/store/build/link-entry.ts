/**
 * Placing entries of a plan in staging: a symlink, a hardlink or a copy of
 * each one's source. Every way of linking (linker.ts's queue, a streamed
 * build's chunks in stream-queue.ts, on any thread) ends here, so how a
 * link's target is spelled and how its error names the place are decided
 * once.
 *
 * Two ways to make the same links. linkEntries gives each run of entries in
 * one directory to the link addon (native.ts): the directory is opened once,
 * never through a symlink, and the run's links are made into it by one call,
 * each named by its last component only. Where the addon is not loaded,
 * while faults are armed (the seam's counters must see every call), for
 * copies, and for names that carry escaped bytes, linkEntry makes one link at
 * a time through the fs seam. Both end in the same tree and, for any entry
 * that fails, the same error and the same handling (linkFromBase's fallbacks).
 */
import fs from 'node:fs'
import os from 'node:os'
import util from 'node:util'
import * as sfs from '../../fs.js'
import type { LinkMode } from '../../manifest/types.js'
import { Kind, NO_SOURCE } from '../../plan/types.js'
import { linksAddon, type LinksAddon } from './native.js'
import { absolutePaths } from './workdir.js'

/**
 * Slots of the array every thread of one build shares about sharing
 * (store/build/share.ts): set once the build has stopped linking from the
 * base, the errno (os.constants.errno) of the refusal that stopped it, links
 * made from the base, entries at their link limit that were created anew,
 * and entries of the base that were not a symlink to the planned target
 * (changed by hand since), created anew. An entry missing there is a
 * refusal (ENOENT), as linking it would be.
 */
export const SHARE_OFF = 0
export const SHARE_ERRNO = 1
export const SHARE_LINKED = 2
export const SHARE_AT_LIMIT = 3
export const SHARE_DIFFERED = 4
export const SHARE_SLOTS = 5

/** What a thread needs to link entries from the base tree instead of creating them. */
export interface ShareContext {
  /** The base tree, spelled as LinkContext.at spells staging (its hash, when the store is the working directory). */
  from: string
  /** Entry i is linked from the base when `flags[i]` is 1: its path, kind and target are the base's (share.ts decided). */
  flags: ArrayLike<number>
  /** SHARE_* slots, in shared memory when threads link together. */
  state: Int32Array
}

/** The base tree a build links flagged entries from, and its SHARE_* slots; null when nothing is shared. */
export type SharedFrom = { from: string; state: Int32Array } | null

/** Where a build links and how, whatever entries it is given: what a streamed build's workers share (stream-queue.ts). */
export interface LinkPlace {
  staging: string
  /** How a link's place is spelled: `staging`, or its name when the store is the working directory (workdir.ts). */
  at: string
  mode: LinkMode
  /** Symlink views with `relative: true`. */
  relative: boolean
  prefixes: string[]
  /** Each prefix relative to the generation's root (for relative links). */
  prefixFromRoot: string[]
}

/** What one thread needs to place entry i of a plan. */
export interface LinkContext extends LinkPlace {
  paths: string[]
  kinds: ArrayLike<number>
  sources: ArrayLike<number>
  /** No path involved carries escaped bytes (checked by the caller, fs.ts hasEscapes): symlinks and hardlinks skip the seam's per-name test. */
  plain?: boolean
  /** Link the flagged entries from the base tree (share.ts); absent when nothing is shared. */
  share?: ShareContext
}

/**
 * Place the entries `order[from]` … `order[to - 1]` (indices into ctx's plan;
 * `order` null for the indices themselves): natively a directory at a time
 * where the addon can, else one by one (linkEntry). Throws the first error
 * of the first entry that could not be placed.
 */
export function linkEntries(ctx: LinkContext, order: ArrayLike<number> | null, from: number, to: number): void {
  const addon = ctx.mode === 'copy' || sfs.faultsArmed() ? null : linksAddon()
  if (addon === null) {
    for (let k = from; k < to; k++) linkEntry(ctx, order === null ? k : order[k]!)
    return
  }
  const { paths } = ctx
  let start = from
  while (start < to) {
    // the run of entries in the same directory (plan order keeps siblings together)
    const first = paths[order === null ? start : order[start]!]!
    const slash = first.lastIndexOf('/')
    const parentSlash = first.slice(0, slash + 1)
    let end = start + 1
    for (; end < to; end++) {
      const rel = paths[order === null ? end : order[end]!]!
      if (rel.lastIndexOf('/') !== slash || !rel.startsWith(parentSlash)) break
    }
    linkRun(addon, ctx, order, start, end, first.slice(0, Math.max(slash, 0)), slash + 1)
    start = end
  }
}

/**
 * Link a run of entries that share the parent directory `parent` (their
 * names start at `nameAt`) with the addon: the flagged ones from the base
 * first (linkat from the base tree's directory, opened as staging's is:
 * a directory of the base swapped for a symlink is refused like any other
 * refusal, and its entries created anew), then any of those refused and
 * the rest created (symlinkat, or linkat of the prefix's file).
 */
function linkRun(addon: LinksAddon, ctx: LinkContext, order: ArrayLike<number> | null, start: number, end: number, parent: string, nameAt: number): void {
  const { paths, sources, share } = ctx
  const names: string[] = []
  const froms: string[] = []
  const entries: number[] = []
  const shareNames: string[] = []
  const shareEntries: number[] = []
  const sharing = share !== undefined && Atomics.load(share.state, SHARE_OFF) === 0
  for (let k = start; k < end; k++) {
    const i = order === null ? k : order[k]!
    const rel = paths[i]!
    if (sources[i] === NO_SOURCE) throw new Error(`plan entry ${rel} has no source`)
    if (sharing && share.flags[i] === 1) {
      shareNames.push(rel.slice(nameAt))
      shareEntries.push(i)
    } else {
      names.push(rel.slice(nameAt))
      froms.push(linkFrom(ctx, i, rel))
      entries.push(i)
    }
  }
  const text = { names: names.join('\0'), froms: froms.join('\0'), shareNames: shareNames.join('\0') }
  // a name or target that is not valid UTF-8 travels as bytes (fs.ts): the seam's path handles it
  const bytes = sfs.hasEscapes(ctx.at) || sfs.hasEscapes(parent) || sfs.hasEscapes(text.names) || sfs.hasEscapes(text.froms) || sfs.hasEscapes(text.shareNames) || (share !== undefined && sfs.hasEscapes(share.from))
  // a symlink is linked from the base only while it is a symlink to the planned target (sharedLinks)
  const shareTargets = ctx.mode === 'symlink' && shareEntries.length > 0 ? shareEntries.map((i) => symlinkTarget(ctx, paths[i]!, sources[i]!)).join('\0') : null
  const fd = bytes || (shareTargets !== null && sfs.hasEscapes(shareTargets)) ? -1 : addon.openDir(ctx.at, parent)
  if (fd < 0) {
    // something not a directory on the way (a symlink put in place of one, which O_NOFOLLOW refuses): nothing is linked through it
    if (fd === -ENOTDIR || fd === -ELOOP) throw notADirectory(-fd, `${ctx.staging}${parent === '' ? '' : `/${parent}`}`)
    // the directory cannot be opened (or the names need bytes): one by one, each with its own error
    for (let k = start; k < end; k++) linkEntry(ctx, order === null ? k : order[k]!)
    return
  }
  try {
    if (shareEntries.length > 0) {
      const errs = new Int32Array(shareEntries.length)
      const baseFd = addon.openDir(share!.from, parent)
      let failed: number
      if (baseFd >= 0) {
        try {
          failed = shareTargets === null ? addon.links(fd, text.shareNames, text.shareNames, errs, baseFd) : addon.sharedLinks(fd, shareTargets, text.shareNames, errs, baseFd)
        } finally {
          addon.closeDir(baseFd)
        }
      } else {
        // the base's directory is gone, or is not one (a symlink there is not followed): refused, every entry of it
        errs.fill(-baseFd)
        failed = errs.length
      }
      Atomics.add(share!.state, SHARE_LINKED, shareEntries.length - failed)
      if (failed > 0) {
        // refused ones are created anew, after the others (the order of creation within a directory does not matter)
        for (let s = 0; s < errs.length; s++) {
          if (errs[s] === 0) continue
          if (errs[s] === -1) Atomics.add(share!.state, SHARE_DIFFERED, 1)
          else shareRefused(share!, { code: errnoCode(errs[s]!) })
          const i = shareEntries[s]!
          names.push(shareNames[s]!)
          froms.push(linkFrom(ctx, i, paths[i]!))
          entries.push(i)
        }
        text.names = names.join('\0')
        text.froms = froms.join('\0')
      }
    }
    if (entries.length === 0) return
    const errs = new Int32Array(entries.length)
    const failed = ctx.mode === 'symlink' ? addon.symlinks(fd, text.froms, text.names, errs) : addon.links(fd, text.froms, text.names, errs)
    if (failed > 0) {
      const e = errs.findIndex((x) => x !== 0)
      throw absolutePaths(linkError(errs[e]!, ctx.mode === 'symlink' ? 'symlink' : 'link', froms[e]!, `${ctx.at}/${paths[entries[e]!]!}`), ctx.at, ctx.staging)
    }
  } finally {
    addon.closeDir(fd)
  }
}

/** What entry i's link is made from: a symlink's target, or the file a hardlink names. */
function linkFrom(ctx: LinkContext, i: number, rel: string): string {
  const src = ctx.sources[i]!
  return ctx.mode === 'symlink' ? symlinkTarget(ctx, rel, src) : `${ctx.prefixes[src]}/${rel}`
}

/** The error fs.symlinkSync or fs.linkSync throws for `errno`: the same message, code, errno, syscall, path and dest. */
function linkError(errno: number, syscall: 'symlink' | 'link', from: string, dest: string): NodeJS.ErrnoException & { dest: string } {
  const [code, description] = util.getSystemErrorMap().get(-errno) ?? [`Unknown system error ${errno}`, 'unknown error']
  const err = new Error(`${code}: ${description}, ${syscall} '${from}' -> '${dest}'`) as NodeJS.ErrnoException & { dest: string }
  err.errno = -errno
  err.code = code
  err.syscall = syscall
  err.path = from
  err.dest = dest
  return err
}

const { ENOTDIR, ELOOP } = os.constants.errno

/** A directory of staging that is not one (a symlink or a file in its place): what the addon refused to open. */
function notADirectory(errno: number, dir: string): NodeJS.ErrnoException {
  const code = errnoCode(errno) ?? 'ENOTDIR'
  const err = new Error(`${code}: refusing to link into ${dir}: not a directory this build made (a symlink there is not followed)`) as NodeJS.ErrnoException
  err.errno = -errno
  err.code = code
  err.syscall = 'open'
  err.path = dir
  return err
}

function errnoCode(errno: number): string | undefined {
  return util.getSystemErrorMap().get(-errno)?.[0]
}

/** Place one non-directory entry: a symlink, a hardlink or a copy of its source. */
export function linkEntry(ctx: LinkContext, i: number): void {
  const rel = ctx.paths[i]!
  const src = sourceOf(ctx, i)
  const dest = `${ctx.at}/${rel}`
  if (ctx.share !== undefined && ctx.share.flags[i] === 1 && linkFromBase(ctx.share, rel, dest, ctx.plain === true, ctx.mode === 'symlink' ? symlinkTarget(ctx, rel, src) : null)) return
  try {
    if (ctx.mode === 'symlink') {
      const target = symlinkTarget(ctx, rel, src)
      if (ctx.plain) sfs.symlinkPlain(target, dest)
      else sfs.symlink(target, dest)
      return
    }
    const source = `${ctx.prefixes[src]}/${rel}`
    if (ctx.mode === 'hardlink') {
      if (ctx.plain) sfs.linkPlain(source, dest)
      else sfs.link(source, dest)
    }
    else if (ctx.kinds[i] === Kind.Symlink) sfs.symlink(sfs.decodeName(fs.readlinkSync(sfs.fsPath(source), 'buffer')), dest)
    else sfs.copyFile(source, dest)
  } catch (err) {
    throw absolutePaths(err, ctx.at, ctx.staging)
  }
}

/** linkEntry on libuv's thread pool: the same entry, target and errors, for the lanes of a remote build (lanes.ts). */
export async function linkEntryAsync(ctx: LinkContext, i: number): Promise<void> {
  const rel = ctx.paths[i]!
  const src = sourceOf(ctx, i)
  const dest = `${ctx.at}/${rel}`
  if (ctx.share !== undefined && ctx.share.flags[i] === 1) {
    if (Atomics.load(ctx.share.state, SHARE_OFF) === 0) {
      const base = `${ctx.share.from}/${rel}`
      try {
        // a symlink is linked from the base only while it points where the plan says
        if (ctx.mode === 'symlink' && !(await baseLinksToAsync(base, symlinkTarget(ctx, rel, src)))) Atomics.add(ctx.share.state, SHARE_DIFFERED, 1)
        else {
          await sfs.linkAsync(base, dest)
          Atomics.add(ctx.share.state, SHARE_LINKED, 1)
          return
        }
      } catch (err) {
        shareRefused(ctx.share, err)
      }
    }
  }
  try {
    if (ctx.mode === 'symlink') await sfs.symlinkAsync(symlinkTarget(ctx, rel, src), dest)
    else {
      const source = `${ctx.prefixes[src]}/${rel}`
      if (ctx.mode === 'hardlink') await sfs.linkAsync(source, dest)
      else if (ctx.kinds[i] === Kind.Symlink) await sfs.symlinkAsync(await sfs.readlinkAsync(source), dest)
      else await sfs.copyFileAsync(source, dest)
    }
  } catch (err) {
    throw absolutePaths(err, ctx.at, ctx.staging)
  }
}

function sourceOf(ctx: LinkContext, i: number): number {
  const src = ctx.sources[i]!
  if (src === NO_SOURCE) throw new Error(`plan entry ${ctx.paths[i]} has no source`)
  return src
}

function symlinkTarget(ctx: LinkContext, rel: string, src: number): string {
  return ctx.relative ? `${'../'.repeat(depthOf(rel))}${ctx.prefixFromRoot[src]}/${rel}` : `${ctx.prefixes[src]}/${rel}`
}

/**
 * Hard-link the base tree's entry at `rel` into place: on Linux `link()` of
 * a symlink links the symlink itself, so the new tree gets the very inode the
 * base has, with the same target. False when the entry must be created
 * instead: sharing is off for this build, the base's symlink does not point
 * where the plan says (`target`: changed by hand since), or the
 * link was refused (shareRefused). Nothing depends on the base being
 * linkable: an entry created anew is the same entry.
 */
function linkFromBase(share: ShareContext, rel: string, dest: string, plain: boolean, target: string | null): boolean {
  if (Atomics.load(share.state, SHARE_OFF) !== 0) return false
  try {
    if (target !== null && !baseLinksTo(`${share.from}/${rel}`, target)) {
      Atomics.add(share.state, SHARE_DIFFERED, 1)
      return false
    }
    if (plain) sfs.linkPlain(`${share.from}/${rel}`, dest)
    else sfs.link(`${share.from}/${rel}`, dest)
  } catch (err) {
    shareRefused(share, err)
    return false
  }
  Atomics.add(share.state, SHARE_LINKED, 1)
  return true
}

/** Is the base's entry a symlink to `target`? False for another entry; throws (ENOENT, …) when there is none, as link would. */
function baseLinksTo(base: string, target: string): boolean {
  try {
    return sfs.decodeName(fs.readlinkSync(sfs.fsPath(base), 'buffer')) === target
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EINVAL') return false
    throw err
  }
}

async function baseLinksToAsync(base: string, target: string): Promise<boolean> {
  try {
    return (await sfs.readlinkAsync(base)) === target
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EINVAL') return false
    throw err
  }
}

/**
 * A refusal to link from the base says something about this inode only when
 * it is EMLINK (the inode is at its filesystem's link limit); any other
 * (EXDEV, EPERM from fs.protected_hardlinks or from a filesystem without hard
 * links, ENOTSUP, ENOENT from a base that was removed) says the base cannot
 * be linked from at all, and turns sharing off for every thread of the build
 * at once.
 */
function shareRefused(share: ShareContext, err: unknown): void {
  const code = (err as NodeJS.ErrnoException).code
  if (code === 'EMLINK') Atomics.add(share.state, SHARE_AT_LIMIT, 1)
  else if (Atomics.compareExchange(share.state, SHARE_OFF, 0, 1) === 0) Atomics.store(share.state, SHARE_ERRNO, errnoOf(code))
}

/** The number of an errno code (0 when it has none: a fault injected by a test without a known code). */
function errnoOf(code: string | undefined): number {
  return (code !== undefined ? (os.constants.errno as Record<string, number>)[code] : undefined) ?? 0
}

function depthOf(rel: string): number {
  let n = 0
  for (let i = 0; i < rel.length; i++) if (rel.charCodeAt(i) === 47) n++
  return n
}
