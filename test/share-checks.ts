/**
 * Checks for generations that share unchanged entries (DESIGN §17), read from
 * disk independently of src/: which entries two plans have unchanged, and
 * whether two trees name one inode for each of them.
 */
import fs from 'node:fs'
import path from 'node:path'
import { expect } from 'vitest'
import { rawPath, readPlanEntries, storeOf } from './view-checks.js'

export function treeDir(view: string, hash: string): string {
  return path.join(storeOf(view), hash)
}

/**
 * The paths of `to`'s plan that `from`'s plan has unchanged: not a
 * directory, the same kind and the same prefix (so the same link target).
 */
export function unchangedPaths(view: string, from: string, to: string): string[] {
  const a = readPlanEntries(path.join(treeDir(view, from), '.viewctl', 'plan.tsv'))
  const b = readPlanEntries(path.join(treeDir(view, to), '.viewctl', 'plan.tsv'))
  const before = new Map(a.entries.map((e) => [e.path, `${e.kind}\t${e.source === '-' ? '-' : a.prefixes[Number(e.source)]}`]))
  return b.entries.filter((e) => e.kind !== 'd' && before.get(e.path) === `${e.kind}\t${b.prefixes[Number(e.source)]}`).map((e) => e.path)
}

/** Every non-directory entry of a tree's plan. */
export function linkPaths(view: string, hash: string): string[] {
  return readPlanEntries(path.join(treeDir(view, hash), '.viewctl', 'plan.tsv')).entries.filter((e) => e.kind !== 'd').map((e) => e.path)
}

export function inodeOf(p: string): { ino: number; nlink: number } {
  const st = fs.lstatSync(rawPath(p))
  return { ino: st.ino, nlink: st.nlink }
}

/** How many of `paths` are one inode in both trees. */
export function sameInodes(view: string, a: string, b: string, paths: string[]): number {
  let same = 0
  for (const rel of paths) if (inodeOf(`${treeDir(view, a)}/${rel}`).ino === inodeOf(`${treeDir(view, b)}/${rel}`).ino) same++
  return same
}

/**
 * Tree `to` shares exactly `expected` with tree `from` (one inode for each),
 * and no other entry: every other entry of `to` is an inode `from` does not
 * have at that path.
 */
export function expectSharedExactly(view: string, from: string, to: string, expected: string[]): void {
  const shared = new Set(expected)
  const wrong: string[] = []
  for (const rel of linkPaths(view, to)) {
    const mine = inodeOf(`${treeDir(view, to)}/${rel}`).ino
    let theirs: number | null = null
    try {
      theirs = inodeOf(`${treeDir(view, from)}/${rel}`).ino
    } catch {
      theirs = null
    }
    if ((mine === theirs) !== shared.has(rel)) wrong.push(`${rel}: ${mine === theirs ? 'shared' : 'not shared'}`)
  }
  expect(wrong.slice(0, 10), `${wrong.length} entries shared or not against expectation`).toEqual([])
}

/** Everything under a tree (names, types, link targets, file bytes and inodes), to show that it did not change. */
export function treeFingerprint(dir: string): string[] {
  const out: string[] = []
  const visit = (rel: string) => {
    for (const d of fs.readdirSync(path.join(dir, rel), { withFileTypes: true })) {
      const r = rel ? `${rel}/${d.name}` : d.name
      const abs = path.join(dir, r)
      const st = fs.lstatSync(abs)
      if (d.isDirectory()) {
        out.push(`${r}/`)
        visit(r)
      } else if (d.isSymbolicLink()) out.push(`${r} -> ${fs.readlinkSync(abs)} @${st.ino}`)
      else out.push(`${r} ${st.size} @${st.ino} ${fs.readFileSync(abs).toString('base64')}`)
    }
  }
  visit('')
  return out.sort()
}
