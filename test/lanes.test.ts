/**
 * Linking in lanes (src/store/build/lanes.ts), the way a build links on a
 * remote filesystem: grouped by directory, largest first; the same entries as
 * the main thread's linkEntry; the first error stops the lanes and is thrown
 * with its path; nothing is left in flight. Run here on a local directory,
 * with the lanes asked for directly: test/sharedfs.test.ts builds through
 * the rig's mounts, where regenerate picks them by itself.
 */
import fs from 'node:fs'
import path from 'node:path'
import { describe, expect, it } from 'vitest'
import { groupByDirectory, linkInLanes } from '../src/store/build/lanes.js'
import { linkEntry, SHARE_LINKED, SHARE_OFF, SHARE_SLOTS, type LinkContext } from '../src/store/build/link-entry.js'
import { Kind } from '../src/plan/types.js'
import { decodeName } from '../src/fs.js'
import { tempDir } from './helpers.js'

function plan(dirs: Record<string, number>): string[] {
  const paths: string[] = []
  for (const [dir, n] of Object.entries(dirs)) for (let i = 0; i < n; i++) paths.push(dir === '' ? `f${i}` : `${dir}/f${i}`)
  return paths
}

/** A context linking `paths` from one prefix into `staging`; the prefix holds every file. */
function contextFor(root: string, paths: string[], mode: 'symlink' | 'hardlink' | 'copy' = 'symlink'): LinkContext {
  const prefix = path.join(root, 'prefix')
  const staging = path.join(root, `staging-${mode}-${Math.random().toString(36).slice(2)}`)
  for (const rel of paths) {
    fs.mkdirSync(path.join(prefix, path.dirname(rel)), { recursive: true })
    fs.mkdirSync(path.join(staging, path.dirname(rel)), { recursive: true })
    if (!fs.existsSync(path.join(prefix, rel))) fs.writeFileSync(path.join(prefix, rel), rel)
  }
  return { staging, at: staging, mode, relative: false, prefixes: [prefix], prefixFromRoot: [], paths, kinds: new Uint8Array(paths.length).fill(Kind.File), sources: new Int32Array(paths.length) }
}

function listing(dir: string): Array<[string, string]> {
  const out: Array<[string, string]> = []
  for (const rel of (fs.readdirSync(dir, { recursive: true }) as string[]).sort()) {
    const st = fs.lstatSync(path.join(dir, rel))
    out.push([rel, st.isSymbolicLink() ? `-> ${fs.readlinkSync(path.join(dir, rel))}` : st.isDirectory() ? 'dir' : `file ${fs.readFileSync(path.join(dir, rel), 'utf8')}`])
  }
  return out
}

describe('groupByDirectory', () => {
  it('takes every link once, one group per directory, the largest first', () => {
    const paths = plan({ bin: 40, lib: 60, 'include/a': 5, 'share/man/man1': 40, '': 3 })
    const links = paths.map((_, i) => i)
    const groups = groupByDirectory(paths, links)
    expect(groups.flat().sort((a, b) => a - b)).toEqual(links)
    expect(groups.map((g) => g.length)).toEqual([60, 40, 40, 5, 3])
    for (const g of groups) expect(new Set(g.map((i) => path.dirname(paths[i]!))).size).toBe(1)
  })

  it('keeps one group for a directory whose entries are not next to each other in the plan', () => {
    const paths = ['bin/a', 'lib/x', 'bin/b', 'lib/y', 'bin/c']
    expect(groupByDirectory(paths, [0, 1, 2, 3, 4])).toEqual([[0, 2, 4], [1, 3]])
  })
})

describe('linkInLanes', () => {
  for (const mode of ['symlink', 'hardlink', 'copy'] as const) {
    it(`makes the same ${mode} entries as linkEntry on the main thread`, async () => {
      const root = tempDir('viewctl-lanes-')
      const paths = plan({ bin: 30, lib: 50, 'include/a': 7, 'include/b': 9, 'share/man/man1': 20 })
      const links = paths.map((_, i) => i)
      const serial = contextFor(root, paths, mode)
      for (const i of links) linkEntry(serial, i)
      const lanes = contextFor(root, paths, mode)
      const seen: number[] = []
      await linkInLanes(lanes, links, 16, (n) => seen.push(n))
      expect(listing(lanes.staging)).toEqual(listing(serial.staging))
      expect(seen[seen.length - 1]).toBe(paths.length)
      if (mode === 'hardlink') expect(fs.statSync(path.join(lanes.staging, 'bin/f0')).ino).toBe(fs.statSync(path.join(root, 'prefix', 'bin/f0')).ino)
    })
  }

  it('names that are not UTF-8, links named from the working directory, and a copied symlink come out as on the main thread', async () => {
    const root = tempDir('viewctl-lanes-')
    const prefix = path.join(root, 'prefix')
    const odd = Buffer.concat([Buffer.from('bin/bad-'), Buffer.of(0xff, 0xfe)])
    fs.mkdirSync(path.join(prefix, 'bin'), { recursive: true })
    fs.writeFileSync(Buffer.concat([Buffer.from(`${prefix}/`), odd]), 'odd')
    fs.writeFileSync(path.join(prefix, 'bin', 'tool'), 'tool')
    fs.symlinkSync('tool', path.join(prefix, 'bin', 'alias'))
    const paths = [decodeName(odd), 'bin/tool', 'bin/alias']
    const kinds = Uint8Array.from([Kind.File, Kind.File, Kind.Symlink])
    const made: Record<string, Array<[string, string]>> = {}
    for (const how of ['main thread', 'lanes']) {
      for (const mode of ['symlink', 'copy'] as const) {
        const name = `${how === 'lanes' ? 'l' : 's'}-${mode}`
        fs.mkdirSync(path.join(root, name, 'bin'), { recursive: true })
        // named from the working directory, as a CLI build names links from inside the store
        const ctx: LinkContext = { staging: path.join(root, name), at: name, mode, relative: false, prefixes: [prefix], prefixFromRoot: [], paths, kinds, sources: new Int32Array(paths.length) }
        const cwd = process.cwd()
        process.chdir(root)
        try {
          if (how === 'lanes') await linkInLanes(ctx, [0, 1, 2], 4, () => {})
          else for (const i of [0, 1, 2]) linkEntry(ctx, i)
        } finally {
          process.chdir(cwd)
        }
        made[`${how} ${mode}`] = fs.readdirSync(path.join(root, name, 'bin'), { encoding: 'buffer' }).map((n) => {
          const p = Buffer.concat([Buffer.from(`${root}/${name}/bin/`), n])
          const st = fs.lstatSync(p)
          return [n.toString('hex'), st.isSymbolicLink() ? `-> ${fs.readlinkSync(p, 'buffer').toString('hex')}` : `file ${fs.readFileSync(p, 'utf8')}`] as [string, string]
        }).sort()
      }
    }
    expect(made['lanes symlink']).toEqual(made['main thread symlink'])
    expect(made['lanes copy']).toEqual(made['main thread copy'])
    // the copied symlink is a symlink with the prefix's own target; the odd name is the same bytes
    expect(made['lanes copy']).toContainEqual([Buffer.from('alias').toString('hex'), `-> ${Buffer.from('tool').toString('hex')}`])
    expect(made['lanes symlink'].map(([n]) => n)).toContain(Buffer.from('bad-\xff\xfe', 'latin1').toString('hex'))
  })

  it('links the flagged entries from the base tree, and creates the rest', async () => {
    const root = tempDir('viewctl-lanes-')
    const paths = plan({ bin: 10, lib: 10 })
    const base = contextFor(root, paths)
    for (let i = 0; i < paths.length; i++) linkEntry(base, i)
    const ctx = contextFor(root, paths)
    const flags = new Uint8Array(paths.length)
    for (let i = 0; i < paths.length; i += 2) flags[i] = 1
    const state = new Int32Array(SHARE_SLOTS)
    ctx.share = { from: base.staging, flags, state }
    await linkInLanes(ctx, paths.map((_, i) => i), 8, () => {})
    expect(state[SHARE_LINKED]).toBe(10)
    expect(state[SHARE_OFF]).toBe(0)
    for (let i = 0; i < paths.length; i++) {
      const ours = fs.lstatSync(path.join(ctx.staging, paths[i]!)).ino
      const theirs = fs.lstatSync(path.join(base.staging, paths[i]!)).ino
      if (flags[i]) expect(ours).toBe(theirs)
      else expect(ours).not.toBe(theirs)
    }
  })

  it('a base that is gone turns sharing off and every entry is created anew', async () => {
    const root = tempDir('viewctl-lanes-')
    const paths = plan({ bin: 10, lib: 10 })
    const ctx = contextFor(root, paths)
    const state = new Int32Array(SHARE_SLOTS)
    ctx.share = { from: path.join(root, 'no-such-tree'), flags: new Uint8Array(paths.length).fill(1), state }
    await linkInLanes(ctx, paths.map((_, i) => i), 8, () => {})
    expect(state[SHARE_OFF]).toBe(1)
    expect(state[SHARE_LINKED]).toBe(0)
    for (const rel of paths) expect(fs.readlinkSync(path.join(ctx.staging, rel))).toBe(path.join(root, 'prefix', rel))
  })

  it('stops at the first error, which names the entry, and leaves nothing in flight', async () => {
    const root = tempDir('viewctl-lanes-')
    const paths = plan({ bin: 200, lib: 200, 'include/a': 200 })
    const ctx = contextFor(root, paths)
    fs.writeFileSync(path.join(ctx.staging, 'lib/f3'), 'in the way')
    const err = (await linkInLanes(ctx, paths.map((_, i) => i), 4, () => {}).catch((e: unknown) => e)) as NodeJS.ErrnoException
    expect(err.code).toBe('EEXIST')
    expect(err.path ?? err.message).toContain('lib/f3')
    // the other lanes stopped soon after: not every entry was made, and nothing changes once the promise has settled
    const count = () => (fs.readdirSync(ctx.staging, { recursive: true }) as string[]).length
    const settled = count()
    expect(settled).toBeLessThan(paths.length / 2)
    await new Promise((resolve) => setTimeout(resolve, 50))
    expect(count()).toBe(settled)
  })

  it('a checkpoint that throws (an interrupt) stops the lanes and is what the caller sees', async () => {
    const root = tempDir('viewctl-lanes-')
    const paths = plan({ bin: 600, lib: 600 })
    const ctx = contextFor(root, paths)
    const interrupted = new Error('interrupted')
    const err = await linkInLanes(ctx, paths.map((_, i) => i), 4, (n) => {
      if (n >= 256) throw interrupted
    }).catch((e: unknown) => e)
    expect(err).toBe(interrupted)
    expect((fs.readdirSync(ctx.staging, { recursive: true }) as string[]).length).toBeLessThan(paths.length)
  })
})
