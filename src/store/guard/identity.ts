/**
 * Who a writer acts as (DESIGN §13). Root running a writer on a store that
 * another user owns (root's cron gc on a group's store, an admin's sudo)
 * first becomes that owner, with the store's group, before it touches the
 * store: every file it makes then belongs to whom the store belongs, and a
 * member of the group who planted a symlink in the store can at most make it
 * write where the owner may write anyway. O_NOFOLLOW alone cannot give that:
 * it guards the last component of a path only, and Node has no openat().
 * Without a store yet, the directory it will be made in decides the same
 * way. A store root owns stays root's (and is checked harder: sharing.ts).
 *
 * Changing identity is the process's business, not a library's: it happens
 * only when the caller asks (WriterOptions.asStoreOwner, which the CLI sets),
 * once, before anything else of the command is done, and cannot be undone.
 */
import fs from 'node:fs'
import path from 'node:path'
import { ViewError } from '../../errors.js'
import type { Layout } from '../layout.js'

export interface Identity {
  uid: number
  gid: number
  /** What it was decided from (the store, or the directory it will be made in). */
  from: string
}

/** The identity root acts as for a writer on `layout`, or null to act as itself (not root, or root owns it). */
export function ownerToActAs(layout: Layout): Identity | null {
  if (process.geteuid?.() !== 0) return null
  for (let dir = layout.store; ; dir = path.dirname(dir)) {
    let st: fs.Stats | null = null
    try {
      st = fs.lstatSync(dir)
    } catch {
      // not made yet: its parent decides
    }
    // a symlink where the store belongs decides nothing (whoever planted it would decide whom root becomes): the writer refuses it later
    if (st?.isSymbolicLink()) st = null
    if (st !== null) return st.uid === 0 ? null : { uid: st.uid, gid: st.gid, from: dir }
    if (path.dirname(dir) === dir) return null
  }
}

/**
 * Become `id` for good: the owner's supplementary groups (or only the
 * store's group when the owner has no passwd entry), then the group, then
 * the user. Checked after: a process that could not drop everything stops.
 */
export function actAs(id: Identity): void {
  try {
    try {
      // in Node, though not in its type definitions: the owner's groups from the group database, plus `gid`
      ;(process as unknown as { initgroups(user: number, extraGroup: number): void }).initgroups(id.uid, id.gid)
    } catch {
      process.setgroups!([id.gid])
    }
    process.setgid!(id.gid)
    process.setuid!(id.uid)
  } catch (err) {
    throw new ViewError('PERMISSION', `could not act as uid ${id.uid}, gid ${id.gid}, the owner of ${id.from}: ${(err as Error).message}`, 'run viewctl as the owner of the store (e.g. `sudo -u <owner> viewctl …`)', undefined, { cause: err })
  }
  if (process.getuid!() !== id.uid || process.geteuid!() !== id.uid || process.getegid!() !== id.gid) {
    throw new ViewError('PERMISSION', `could not act as uid ${id.uid}, gid ${id.gid}, the owner of ${id.from}`, 'run viewctl as the owner of the store (e.g. `sudo -u <owner> viewctl …`)')
  }
}
