/**
 * Placing one entry of a plan in staging: a symlink, a hardlink or a copy of
 * its source. Every way of linking (linker.ts's queue, a streamed build's
 * chunks in stream-queue.ts, on any thread) ends here, so how a link's target
 * is spelled and how its error names the place are decided once.
 */
import fs from 'node:fs'
import os from 'node:os'
import * as sfs from '../../fs.js'
import type { LinkMode } from '../../manifest/types.js'
import { Kind, NO_SOURCE } from '../../plan/types.js'
import { absolutePaths } from './workdir.js'

/**
 * Slots of the array every thread of one build shares about sharing
 * (store/build/share.ts): set once the build has stopped linking from the
 * base, the errno (os.constants.errno) of the refusal that stopped it, links
 * made from the base, and entries at their link limit that were created anew.
 */
export const SHARE_OFF = 0
export const SHARE_ERRNO = 1
export const SHARE_LINKED = 2
export const SHARE_AT_LIMIT = 3
export const SHARE_SLOTS = 4

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

/** Place one non-directory entry: a symlink, a hardlink or a copy of its source. */
export function linkEntry(ctx: LinkContext, i: number): void {
  const rel = ctx.paths[i]!
  const src = sourceOf(ctx, i)
  const dest = `${ctx.at}/${rel}`
  if (ctx.share !== undefined && ctx.share.flags[i] === 1 && linkFromBase(ctx.share, rel, dest, ctx.plain === true)) return
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
      try {
        await sfs.linkAsync(`${ctx.share.from}/${rel}`, dest)
        Atomics.add(ctx.share.state, SHARE_LINKED, 1)
        return
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
 * instead: sharing is off for this build, or the link was refused
 * (shareRefused). Nothing depends on the base being linkable: an entry
 * created anew is the same entry.
 */
function linkFromBase(share: ShareContext, rel: string, dest: string, plain: boolean): boolean {
  if (Atomics.load(share.state, SHARE_OFF) !== 0) return false
  try {
    if (plain) sfs.linkPlain(`${share.from}/${rel}`, dest)
    else sfs.link(`${share.from}/${rel}`, dest)
  } catch (err) {
    shareRefused(share, err)
    return false
  }
  Atomics.add(share.state, SHARE_LINKED, 1)
  return true
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
