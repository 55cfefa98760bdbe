/**
 * Placing one entry of a plan in staging: a symlink, a hardlink or a copy of
 * its source. Every way of linking (linker.ts's queue, a streamed build's
 * chunks in stream-queue.ts, on any thread) ends here, so how a link's target
 * is spelled and how its error names the place are decided once.
 */
import fs from 'node:fs'
import * as sfs from '../../fs.js'
import type { LinkMode } from '../../manifest/types.js'
import { Kind, NO_SOURCE } from '../../plan/types.js'
import { absolutePaths } from './workdir.js'

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
}

/** Place one non-directory entry: a symlink, a hardlink or a copy of its source. */
export function linkEntry(ctx: LinkContext, i: number): void {
  const rel = ctx.paths[i]!
  const src = ctx.sources[i]!
  if (src === NO_SOURCE) throw new Error(`plan entry ${rel} has no source`)
  const dest = `${ctx.at}/${rel}`
  try {
    if (ctx.mode === 'symlink') {
      const target = ctx.relative ? `${'../'.repeat(depthOf(rel))}${ctx.prefixFromRoot[src]}/${rel}` : `${ctx.prefixes[src]}/${rel}`
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

function depthOf(rel: string): number {
  let n = 0
  for (let i = 0; i < rel.length; i++) if (rel.charCodeAt(i) === 47) n++
  return n
}
