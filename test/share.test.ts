/**
 * Generations that share what did not change (DESIGN §17): a regenerate
 * hard-links every entry whose path, kind and target are the base tree's,
 * and creates only the rest; the new tree is complete and verifies like any
 * other, and deleting the base drops one name of each shared inode.
 * Real bin/viewctl, real trees, inodes read back with lstat.
 */
import fs from 'node:fs'
import path from 'node:path'
import { describe, expect, it, onTestFinished } from 'vitest'
import { linkTarget, tempDir, viewctl, writeManifest } from './helpers.js'
import { assertCompleteGeneration, makeWidePrefixes, scratchDir, storeOf } from './view-checks.js'
import { expectSharedExactly, inodeOf, linkPaths, sameInodes, treeDir, treeFingerprint, unchangedPaths } from './share-checks.js'

/** No link worker: the plan is made first and built after (ops/regenerate.ts, planAndSwitch). */
const PLAIN = { VIEWCTL_JOBS: '1' }

function prefixes(files = 100, pkgs = 12): { root: string; pkgs: string[] } {
  const root = scratchDir('vc20-p-')
  onTestFinished(() => fs.rmSync(root, { recursive: true, force: true }))
  return { root, pkgs: makeWidePrefixes(root, pkgs, files) }
}

function manifest(dir: string, name: string, lines: string[], packages: string[]): string {
  return writeManifest(dir, [...lines, 'packages:', ...packages.map((p) => `  - ${p}`), ''].join('\n'), name)
}

function regenerate(file: string, env: NodeJS.ProcessEnv = {}, extra: string[] = []) {
  const r = viewctl(['regenerate', file, '--json', ...extra], { env })
  expect(r.code, r.stderr).toBe(0)
  return r.json as { hash: string; generation: number; shared: number; sharedWith: { generation: number; hash: string } | null; streamed: boolean; built: boolean; entries: number; warnings: string[] }
}

function verifyOk(view: string): void {
  const r = viewctl(['verify', view, '--json'])
  expect(r.json?.problems ?? r.stderr, `verify ${view}`).toEqual([])
  expect(r.code).toBe(0)
}

/**
 * The packages of a second manifest of the same view in which little
 * changed: a file added to pkg4's bin/, and pkg9 replaced by a copy of it
 * elsewhere (every one of its links gets a new target). The manifest also
 * drops one file of pkg6 (EXCLUDE_ONE).
 */
function changeALittle(root: string, pkgs: string[]): string[] {
  fs.writeFileSync(path.join(pkgs[4]!, 'bin', 'pkg4-new'), 'new\n')
  const moved = path.join(root, 'moved', 'pkg9')
  fs.cpSync(pkgs[9]!, moved, { recursive: true })
  return pkgs.map((p, i) => (i === 9 ? moved : p))
}

const EXCLUDE_ONE = 'exclude: ["lib/libpkg6-7.so"]'

describe('an incremental regenerate shares every unchanged entry with the tree on disk', () => {
  for (const [label, env, streamed] of [
    ['streamed build (linking while walking)', {}, true],
    ['plain build (plan first)', PLAIN, false],
  ] as const) {
    it(`${label}: one inode for each unchanged link and folded directory, new ones for the rest; verify, rollback and gc as before`, { timeout: 120_000 }, () => {
      const { root, pkgs } = prefixes()
      const dir = tempDir('vc20-')
      const view = path.join(dir, 'view')
      const m1 = manifest(dir, 'm1.yaml', [`view: ${view}`], pkgs)
      const first = regenerate(m1, env)
      expect(first.shared).toBe(0)
      expect(first.sharedWith).toBeNull()

      const m2 = manifest(dir, 'm2.yaml', [`view: ${view}`, EXCLUDE_ONE], changeALittle(root, pkgs))
      const second = regenerate(m2, env)
      expect(second.generation).toBe(2)
      if (streamed) expect(second.streamed, 'links went out while the prefixes were walked').toBe(true)
      else expect(second.streamed).toBe(false)
      const unchanged = unchangedPaths(view, first.hash, second.hash)
      // 12 prefixes x 300 per-file links + 12 folded include/pkgN, minus pkg9's 301 and the removed lib
      expect(unchanged.length).toBe(12 * 301 - 301 - 1)
      expect(unchanged).toContain('include/pkg3') // a folded directory
      expect(second.shared).toBe(unchanged.length)
      expect(second.sharedWith).toEqual({ generation: 1, hash: first.hash })
      expectSharedExactly(view, first.hash, second.hash, unchanged)
      expect(inodeOf(`${treeDir(view, second.hash)}/bin/pkg0-tool0`).nlink).toBe(2)
      expect(inodeOf(`${treeDir(view, second.hash)}/bin/pkg4-new`).nlink).toBe(1)
      expect(fs.readlinkSync(`${treeDir(view, second.hash)}/bin/pkg9-tool0`)).toBe(path.join(root, 'moved', 'pkg9', 'bin', 'pkg9-tool0'))
      assertCompleteGeneration(view)
      verifyOk(view)

      // the base is untouched, and both trees are whole generations: roll back and forth
      const back = viewctl(['rollback', view, '--json'])
      expect(back.code, back.stderr).toBe(0)
      expect(linkTarget(view)).toBe(`._view/${first.hash}`)
      verifyOk(view)
      expect(viewctl(['rollback', view, '--to', '2']).code).toBe(0)
      verifyOk(view)

      // deleting the base drops one name of each shared inode; the new tree is whole
      const gc = viewctl(['gc', view, '--keep', '0', '--ttl', '0', '--force', '--json'])
      expect(gc.code, gc.stderr).toBe(0)
      expect(gc.json.removed.map((t: { hash: string }) => t.hash)).toEqual([first.hash])
      expect(fs.existsSync(treeDir(view, first.hash))).toBe(false)
      verifyOk(view)
      expect(inodeOf(`${treeDir(view, second.hash)}/bin/pkg0-tool0`).nlink).toBe(1)
    })
  }

  it('each generation shares with the one before it; ten of them hold the links of one and a little more', { timeout: 120_000 }, () => {
    const { pkgs } = prefixes(50, 10)
    const dir = tempDir('vc20-')
    const view = path.join(dir, 'view')
    const hashes: string[] = []
    for (let g = 1; g <= 10; g++) {
      fs.writeFileSync(path.join(pkgs[g % 10]!, 'bin', `added-${g}`), `${g}\n`)
      const r = regenerate(manifest(dir, `m${g}.yaml`, [`view: ${view}`, 'gc: { keep: 20, ttl: 4w }'], pkgs))
      if (g > 1) {
        expect(r.sharedWith?.hash).toBe(hashes.at(-1))
        // every link but the one added (directories are always made anew)
        expect(r.shared).toBe(linkPaths(view, r.hash).length - 1)
        expect(r.shared).toBe(unchangedPaths(view, hashes.at(-1)!, r.hash).length)
      }
      hashes.push(r.hash)
    }
    // an entry of generation 1 that never changed is one inode in all ten trees
    const ino = inodeOf(`${treeDir(view, hashes[0]!)}/lib/libpkg3-1.so`)
    expect(ino.nlink).toBe(10)
    for (const h of hashes) expect(inodeOf(`${treeDir(view, h)}/lib/libpkg3-1.so`).ino).toBe(ino.ino)
    verifyOk(view)
  })

  it('shares from the newest tree on disk when the tree the view shows is gone', { timeout: 60_000 }, () => {
    const { pkgs } = prefixes(20, 6)
    const dir = tempDir('vc20-')
    const view = path.join(dir, 'view')
    const g1 = regenerate(manifest(dir, 'm1.yaml', [`view: ${view}`], pkgs.slice(0, 4)))
    const g2 = regenerate(manifest(dir, 'm2.yaml', [`view: ${view}`], pkgs.slice(0, 5)))
    expect(viewctl(['rollback', view, '--to', '1']).code).toBe(0)
    fs.rmSync(treeDir(view, g1.hash), { recursive: true })
    const g3 = regenerate(manifest(dir, 'm3.yaml', [`view: ${view}`], pkgs))
    expect(g3.sharedWith).toEqual({ generation: 2, hash: g2.hash })
    expect(g3.shared).toBe(unchangedPaths(view, g2.hash, g3.hash).length)
    expectSharedExactly(view, g2.hash, g3.hash, unchangedPaths(view, g2.hash, g3.hash))
    verifyOk(view)
  })
})

describe('relative links, copies and hardlinks', () => {
  it('relative: true shares while the store stays where it is, and not once it has moved', { timeout: 60_000 }, () => {
    const { pkgs } = prefixes(20, 6)
    const dir = tempDir('vc20-')
    // the view's folder is reached through a symlink; relative targets are computed from where the store really is
    fs.mkdirSync(path.join(dir, 'real', 'views'), { recursive: true })
    fs.symlinkSync('real/views', path.join(dir, 'views'))
    const view = path.join(dir, 'views', 'v')
    const lines = [`view: ${view}`, 'relative: true', 'fold: false']
    const g1 = regenerate(manifest(dir, 'm1.yaml', lines, pkgs))
    fs.writeFileSync(path.join(pkgs[2]!, 'bin', 'extra'), 'x\n')
    const g2 = regenerate(manifest(dir, 'm2.yaml', lines, pkgs))
    expect(g2.shared).toBe(unchangedPaths(view, g1.hash, g2.hash).length)
    expect(g2.shared).toBeGreaterThan(400)
    verifyOk(view)

    // one level deeper: every relative target of the existing trees is now wrong for a new tree
    fs.mkdirSync(path.join(dir, 'deeper'))
    fs.renameSync(path.join(dir, 'real'), path.join(dir, 'deeper', 'real'))
    fs.unlinkSync(path.join(dir, 'views'))
    fs.symlinkSync('deeper/real/views', path.join(dir, 'views'))
    fs.writeFileSync(path.join(pkgs[3]!, 'bin', 'extra3'), 'x\n')
    const g3 = regenerate(manifest(dir, 'm3.yaml', lines, pkgs))
    expect(g3.shared).toBe(0)
    expect(g3.warnings.join('\n')).toMatch(/relative link .* \(the store was moved\)/)
    verifyOk(view)
    expect(fs.readFileSync(path.join(view, 'bin', 'pkg0-tool0'), 'utf8')).toBe('pkg0 0\n')
  })

  it('copy views share a copy only while its source is the same file, as recorded in .viewctl/sources.tsv', { timeout: 60_000 }, () => {
    const { pkgs } = prefixes(20, 4)
    const dir = tempDir('vc20-')
    const view = path.join(dir, 'view')
    const lines = [`view: ${view}`, 'link: copy']
    const g1 = regenerate(manifest(dir, 'm1.yaml', lines, pkgs))
    const sources = fs.readFileSync(path.join(treeDir(view, g1.hash), '.viewctl', 'sources.tsv'), 'utf8').split('\n')
    expect(sources[0]).toBe('# viewctl sources 1')
    expect(sources.length - 2).toBe(linkPaths(view, g1.hash).length)

    // rewritten in place (same inode, new mtime and ctime), replaced by a rename, and one new file
    fs.writeFileSync(path.join(pkgs[1]!, 'lib', 'libpkg1-3.so'), 'rewritten in place\n')
    const replacement = path.join(pkgs[2]!, 'bin', '.new')
    fs.writeFileSync(replacement, 'replaced\n')
    fs.renameSync(replacement, path.join(pkgs[2]!, 'bin', 'pkg2-tool5'))
    fs.writeFileSync(path.join(pkgs[3]!, 'bin', 'added'), 'added\n')
    const g2 = regenerate(manifest(dir, 'm2.yaml', lines, pkgs))
    const expected = unchangedPaths(view, g1.hash, g2.hash).filter((p) => p !== 'lib/libpkg1-3.so' && p !== 'bin/pkg2-tool5')
    expect(g2.shared).toBe(expected.length)
    expectSharedExactly(view, g1.hash, g2.hash, expected)
    expect(fs.readFileSync(path.join(view, 'lib', 'libpkg1-3.so'), 'utf8')).toBe('rewritten in place\n')
    expect(fs.readFileSync(path.join(view, 'bin', 'pkg2-tool5'), 'utf8')).toBe('replaced\n')
    expect(fs.readFileSync(path.join(treeDir(view, g1.hash), 'lib', 'libpkg1-3.so'), 'utf8')).toBe('pkg1 3\n')
    verifyOk(view)

    // a tree that records no identities is not shared from, with a note
    fs.rmSync(path.join(treeDir(view, g2.hash), '.viewctl', 'sources.tsv'))
    fs.writeFileSync(path.join(pkgs[0]!, 'bin', 'added'), 'added\n')
    const g3 = regenerate(manifest(dir, 'm3.yaml', lines, pkgs))
    expect(g3.shared).toBe(0)
    expect(g3.warnings.join('\n')).toMatch(/records no source identities/)
    expect(sameInodes(view, g2.hash, g3.hash, unchangedPaths(view, g2.hash, g3.hash))).toBe(0)
  })

  it('hardlink views share the prefixes\' inodes already: nothing to count, nothing noted', { timeout: 60_000 }, () => {
    const dir = tempDir('vc20-')
    // on the view's filesystem, as hardlinks need
    const pkgs = makeWidePrefixes(path.join(dir, 'p'), 4, 10)
    const view = path.join(dir, 'view')
    const g1 = regenerate(manifest(dir, 'm1.yaml', [`view: ${view}`, 'link: hardlink'], pkgs))
    fs.writeFileSync(path.join(pkgs[0]!, 'bin', 'added'), 'added\n')
    const g2 = regenerate(manifest(dir, 'm2.yaml', [`view: ${view}`, 'link: hardlink'], pkgs))
    expect(g2.shared).toBe(0)
    expect(g2.warnings).toEqual([])
    expect(sameInodes(view, g1.hash, g2.hash, unchangedPaths(view, g1.hash, g2.hash))).toBe(unchangedPaths(view, g1.hash, g2.hash).length)
  })
})

describe('turning sharing off, and a base that fails its check', () => {
  for (const how of ['--no-share', 'share: false'] as const) {
    it(`${how} creates every entry anew`, { timeout: 60_000 }, () => {
      const { pkgs } = prefixes(20, 4)
      const dir = tempDir('vc20-')
      const view = path.join(dir, 'view')
      const lines = [`view: ${view}`, ...(how === 'share: false' ? ['share: false'] : [])]
      const g1 = regenerate(manifest(dir, 'm1.yaml', lines, pkgs))
      fs.writeFileSync(path.join(pkgs[0]!, 'bin', 'added'), 'added\n')
      const g2 = regenerate(manifest(dir, 'm2.yaml', lines, pkgs), {}, how === '--no-share' ? ['--no-share'] : [])
      expect(g2.shared).toBe(0)
      expect(g2.sharedWith).toBeNull()
      expect(g2.warnings).toEqual([])
      const unchanged = unchangedPaths(view, g1.hash, g2.hash)
      expect(unchanged.length).toBeGreaterThan(200)
      expect(sameInodes(view, g1.hash, g2.hash, unchanged)).toBe(0)
      verifyOk(view)
    })
  }

  it('the manifest key is a boolean', () => {
    const dir = tempDir('vc20-')
    const file = manifest(dir, 'm.yaml', [`view: ${path.join(dir, 'v')}`, 'share: yes please'], [dir])
    const r = viewctl(['plan', file])
    expect(r.code).toBe(2)
    expect(r.stderr).toMatch(/m\.yaml:2:8: share: must be true or false/)
  })

  for (const [label, damage, why] of [
    ['its plan file was changed', (tree: string) => fs.appendFileSync(path.join(tree, '.viewctl', 'plan.tsv'), 'f\t0\tbin/planted\n'), /does not hash to its name/],
    ['its meta.json names another hash', (tree: string) => {
      const file = path.join(tree, '.viewctl', 'meta.json')
      fs.writeFileSync(file, fs.readFileSync(file, 'utf8').replace(/"hash": "[0-9a-f]+"/, `"hash": "${'0'.repeat(32)}"`))
    }, /names the hash 0{32}/],
  ] as const) {
    it(`a base tree is not used when ${label}; the new tree is whole`, { timeout: 60_000 }, () => {
      const { pkgs } = prefixes(20, 4)
      const dir = tempDir('vc20-')
      const view = path.join(dir, 'view')
      const g1 = regenerate(manifest(dir, 'm1.yaml', [`view: ${view}`], pkgs))
      const tree = treeDir(view, g1.hash)
      damage(tree)
      const before = treeFingerprint(tree)
      fs.writeFileSync(path.join(pkgs[0]!, 'bin', 'added'), 'added\n')
      const g2 = regenerate(manifest(dir, 'm2.yaml', [`view: ${view}`], pkgs))
      expect(g2.shared).toBe(0)
      expect(g2.warnings.join('\n')).toMatch(why)
      expect(sameInodes(view, g1.hash, g2.hash, unchangedPaths(view, g1.hash, g2.hash))).toBe(0)
      expect(treeFingerprint(tree)).toEqual(before)
      verifyOk(view)
      expect(fs.readdirSync(storeOf(view)).filter((n) => n.startsWith('.staging-'))).toEqual([])
    })
  }
})

describe('a symlink of the base tree changed by hand', () => {
  for (const [label, env] of [
    ['streamed build, the link addon', {}],
    ['plain build, the link addon', PLAIN],
    ["Node's own calls (no addon)", { VIEWCTL_NATIVE: '0' }],
  ] as const) {
    it(`${label}: is not carried into the next tree; that entry is made anew from the plan, and said`, { timeout: 60_000 }, () => {
      const { pkgs } = prefixes(20, 4)
      const dir = tempDir('vc20-')
      const view = path.join(dir, 'view')
      const g1 = regenerate(manifest(dir, 'm1.yaml', [`view: ${view}`, 'fold: false'], pkgs), env)
      const tree = treeDir(view, g1.hash)
      // one link re-pointed, one replaced by a file: the tree still looks intact (meta.json, plan) without a walk
      const repointed = path.join(tree, 'bin', 'pkg1-tool1')
      const planned = fs.readlinkSync(repointed)
      fs.rmSync(repointed)
      fs.symlinkSync('/etc/passwd', repointed)
      fs.rmSync(path.join(tree, 'bin', 'pkg2-tool2'))
      fs.writeFileSync(path.join(tree, 'bin', 'pkg2-tool2'), 'planted\n')
      fs.writeFileSync(path.join(pkgs[0]!, 'bin', 'added'), 'added\n')
      const g2 = regenerate(manifest(dir, 'm2.yaml', [`view: ${view}`, 'fold: false'], pkgs), env)
      const unchanged = unchangedPaths(view, g1.hash, g2.hash).filter((p) => p !== 'bin/pkg1-tool1' && p !== 'bin/pkg2-tool2')
      expect(g2.shared).toBeGreaterThan(50)
      expect(sameInodes(view, g1.hash, g2.hash, unchanged)).toBe(unchanged.length)
      expect(g2.warnings.join('\n')).toMatch(/2 entries of generation 1's tree .* did not match its plan .* created anew/)
      expect(fs.readlinkSync(path.join(treeDir(view, g2.hash), 'bin', 'pkg1-tool1'))).toBe(planned)
      expect(fs.lstatSync(path.join(treeDir(view, g2.hash), 'bin', 'pkg1-tool1')).ino).not.toBe(fs.lstatSync(repointed).ino)
      expect(fs.readlinkSync(path.join(treeDir(view, g2.hash), 'bin', 'pkg2-tool2'))).toBe(path.join(pkgs[2]!, 'bin', 'pkg2-tool2'))
      verifyOk(view)
      // the tree changed by hand is left as it is: verify of that generation still finds it
      expect(fs.readlinkSync(repointed)).toBe('/etc/passwd')
    })
  }
})

describe('faults in an incremental build (VIEWCTL_TEST_FAULTS)', () => {
  it('an entry created anew that fails: exit 1, the view and the base unchanged, staging removed; a refused link: sharing stops, the build goes on', { timeout: 60_000 }, () => {
    const { pkgs } = prefixes(20, 4)
    const dir = tempDir('vc20-')
    const view = path.join(dir, 'view')
    const g1 = regenerate(manifest(dir, 'm1.yaml', [`view: ${view}`], pkgs))
    const base = treeFingerprint(treeDir(view, g1.hash))
    fs.writeFileSync(path.join(pkgs[0]!, 'bin', 'added'), 'added\n')
    const m2 = manifest(dir, 'm2.yaml', [`view: ${view}`], pkgs)

    // the one new link is the only symlink made: it fails
    const failed = viewctl(['regenerate', m2, '--json'], { env: { VIEWCTL_TEST_FAULTS: 'symlink:1:ENOSPC' } })
    expect(failed.code, failed.stderr).toBe(1)
    expect(failed.json?.error?.code).toBe('DISK_FULL')
    expect(linkTarget(view)).toBe(`._view/${g1.hash}`)
    expect(treeFingerprint(treeDir(view, g1.hash))).toEqual(base)
    expect(fs.readdirSync(storeOf(view)).filter((n) => n.startsWith('.staging-'))).toEqual([])

    // the fifth link from the base is refused: from there on every entry is created anew
    const r = regenerate(m2, { VIEWCTL_TEST_FAULTS: 'link:5:EIO' })
    expect(r.shared).toBe(4)
    expect(r.warnings.join('\n')).toMatch(/stopped at the first refused link \(EIO: the base tree could not be linked from\)/)
    expect(treeFingerprint(treeDir(view, g1.hash))).toEqual(base)
    verifyOk(view)
  })
})

