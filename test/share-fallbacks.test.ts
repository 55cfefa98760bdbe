/**
 * When an entry cannot be shared (DESIGN §17), it is created anew, and the
 * generation is as whole as a cold build's. Each refusal is the real one,
 * from a real filesystem:
 *
 *   EMLINK   an inode at ext4's limit of 65,000 links (an ext4 image on a
 *            loop device): that entry alone is created anew;
 *   EXDEV    the base tree on another mount (bind-mounted onto itself);
 *   ENOTSUP  a FUSE filesystem without hard links (sshfs over an SFTP
 *            server that refuses them, test/rig/sftp-nolink.mjs);
 *   EPERM    fs.protected_hardlinks: a member of the store's group cannot
 *            link root's links (a real user made with useradd);
 *
 * the last three turn sharing off for the whole build at the first refusal,
 * with a note saying why. Root only (mounts, users); skipped elsewhere with
 * the reason printed.
 */
import fs from 'node:fs'
import path from 'node:path'
import { spawnSync } from 'node:child_process'
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest'
import { tempDir, viewctl, writeManifest } from './helpers.js'
import { mountExt4Image, requireMount } from './mounts.js'
import { makeWidePrefixes, scratchDir } from './view-checks.js'
import { expectSharedExactly, inodeOf, linkPaths, sameInodes, treeDir, unchangedPaths } from './share-checks.js'
import { makeUsers, sharedTempDir, usePublicInstall, viewctlAs, whyNoUsers, type TestUsers } from './users.js'
import { isMounted, mountSshfs, sharedFsUnavailable } from './rig/sharedfs.mjs'

interface Regenerated {
  hash: string
  generation: number
  shared: number
  sharedWith: { generation: number; hash: string } | null
  warnings: string[]
}

function prefixes(files: number, pkgs: number, root = scratchDir('vc20-p-')): string[] {
  onTestFinished(() => fs.rmSync(root, { recursive: true, force: true }))
  return makeWidePrefixes(root, pkgs, files)
}

function manifest(dir: string, name: string, view: string, packages: string[], extra: string[] = []): string {
  return writeManifest(dir, [`view: ${view}`, ...extra, 'packages:', ...packages.map((p) => `  - ${p}`), ''].join('\n'), name)
}

function regenerate(file: string, extra: string[] = []): Regenerated {
  const r = viewctl(['regenerate', file, '--json', ...extra])
  expect(r.code, r.stderr).toBe(0)
  return r.json as Regenerated
}

function verifyOk(view: string, run = (args: string[]) => viewctl(args)): void {
  const r = run(['verify', view, '--json'])
  expect(r.json?.problems ?? r.stderr, `verify ${view}`).toEqual([])
  expect(r.code).toBe(0)
}

describe('EMLINK: an entry whose inode is at its link limit', () => {
  it('is created anew; every other unchanged entry is still shared (ext4 image, 65,000 links)', { timeout: 180_000 }, (ctx) => {
    requireMount(ctx)
    const disk = mountExt4Image(64)
    const pkgs = prefixes(20, 4)
    const view = path.join(disk, 'view')
    const g1 = regenerate(manifest(disk, 'm1.yaml', view, pkgs, ['fold: false']))
    // bring one link of generation 1 to ext4's limit, with names of its own beside the store
    const full = `${treeDir(view, g1.hash)}/bin/pkg1-tool3`
    const pins = path.join(disk, 'pins')
    fs.mkdirSync(pins)
    let made = 0
    for (;;) {
      try {
        fs.linkSync(full, `${pins}/${made}`)
        made++
      } catch (err) {
        expect((err as NodeJS.ErrnoException).code).toBe('EMLINK')
        break
      }
    }
    expect(inodeOf(full).nlink).toBe(65_000)

    fs.writeFileSync(path.join(pkgs[0]!, 'bin', 'added'), 'added\n')
    const g2 = regenerate(manifest(disk, 'm2.yaml', view, pkgs, ['fold: false']))
    const unchanged = unchangedPaths(view, g1.hash, g2.hash)
    expect(unchanged).toContain('bin/pkg1-tool3')
    const shared = unchanged.filter((p) => p !== 'bin/pkg1-tool3')
    expect(g2.shared).toBe(shared.length)
    expect(g2.warnings.join('\n')).toMatch(/^1 entry of generation 1's tree \([0-9a-f]{12}\) had as many links as the filesystem allows \(EMLINK\) and was created anew$/m)
    expectSharedExactly(view, g1.hash, g2.hash, shared)
    expect(fs.readlinkSync(`${treeDir(view, g2.hash)}/bin/pkg1-tool3`)).toBe(`${pkgs[1]}/bin/pkg1-tool3`)
    verifyOk(view)
  })
})

describe('EXDEV: the base tree on another mount', () => {
  it('turns sharing off for the whole build at the first refusal, with a note; the new tree is whole', { timeout: 60_000 }, (ctx) => {
    requireMount(ctx)
    const pkgs = prefixes(20, 4)
    const dir = tempDir('vc20-')
    const view = path.join(dir, 'view')
    const g1 = regenerate(manifest(dir, 'm1.yaml', view, pkgs))
    const base = treeDir(view, g1.hash)
    const bind = spawnSync('mount', ['--bind', base, base], { encoding: 'utf8' })
    expect(bind.status, bind.stderr).toBe(0)
    const umount = () => {
      if (isMounted(base)) spawnSync('umount', [base])
    }
    onTestFinished(umount)
    // the kernel's own answer first: a link out of that mount is refused
    expect(() => fs.linkSync(`${base}/bin/pkg0-tool0`, path.join(dir, 'probe'))).toThrow(/EXDEV/)

    fs.writeFileSync(path.join(pkgs[0]!, 'bin', 'added'), 'added\n')
    const g2 = regenerate(manifest(dir, 'm2.yaml', view, pkgs))
    expect(g2.shared).toBe(0)
    expect(g2.sharedWith).toBeNull()
    expect(g2.warnings.join('\n')).toMatch(/sharing with generation 1's tree \([0-9a-f]{12}\) stopped at the first refused link \(EXDEV: the base tree is on another filesystem or mount than the new one\); the entries after it were created anew/)
    expect(sameInodes(view, g1.hash, g2.hash, unchangedPaths(view, g1.hash, g2.hash))).toBe(0)
    verifyOk(view)
    umount()
  })
})

const noSshfs = sharedFsUnavailable()
if (noSshfs !== null) console.log(`test/share-fallbacks.test.ts: the ENOTSUP case is skipped: ${noSshfs}`)

describe.skipIf(noSshfs !== null)('ENOTSUP: a filesystem without hard links', () => {
  it('turns sharing off for the whole build at the first refusal, with a note; the new tree is whole (sshfs, an SFTP server that refuses hard links)', { timeout: 120_000 }, async () => {
    const dir = tempDir('vc20-')
    const exported = path.join(dir, 'export')
    fs.mkdirSync(exported)
    const mount = path.join(dir, 'mnt')
    const server = path.resolve('test/rig/sftp-nolink.mjs')
    // sshfs starts the server itself in place of ssh; the sshd fields are the arguments it would give ssh
    const sshfs = await mountSshfs({ sshConfig: '/dev/null', port: 22 } as never, exported, mount, { options: [`ssh_command=${process.execPath} ${server}`] })
    onTestFinished(() => sshfs.unmount())
    fs.writeFileSync(path.join(mount, 'probe'), 'x')
    expect(() => fs.linkSync(path.join(mount, 'probe'), path.join(mount, 'probe2'))).toThrow(/ENOTSUP/)

    const pkgs = prefixes(10, 3)
    const view = path.join(mount, 'view')
    const g1 = regenerate(manifest(dir, 'm1.yaml', view, pkgs), ['--no-lock'])
    fs.writeFileSync(path.join(pkgs[0]!, 'bin', 'added'), 'added\n')
    const g2 = regenerate(manifest(dir, 'm2.yaml', view, pkgs), ['--no-lock'])
    expect(g2.shared).toBe(0)
    expect(g2.warnings.join('\n')).toMatch(/stopped at the first refused link \(ENOTSUP: the filesystem does not support hard links\)/)
    expect(sameInodes(view, g1.hash, g2.hash, unchangedPaths(view, g1.hash, g2.hash))).toBe(0)
    verifyOk(view)
    await sshfs.unmount()
  })
})

const noUsers = whyNoUsers()
if (noUsers !== null) console.log(`test/share-fallbacks.test.ts: the EPERM case is skipped: ${noUsers}`)

describe.skipIf(noUsers !== null)('EPERM: fs.protected_hardlinks, a member of the store\'s group and root\'s links', () => {
  usePublicInstall()
  let users: TestUsers
  let protectedBefore: string | null = null
  const SYSCTL = '/proc/sys/fs/protected_hardlinks'
  beforeAll(() => {
    users = makeUsers('vc20g', ['vc20a'])
    // on by default in Debian; where it is off, turn it on for this test (it only refuses more)
    protectedBefore = fs.readFileSync(SYSCTL, 'utf8').trim()
    if (protectedBefore !== '1') fs.writeFileSync(SYSCTL, '1')
  })
  afterAll(() => {
    users?.remove()
    if (protectedBefore !== null && protectedBefore !== '1') fs.writeFileSync(SYSCTL, protectedBefore)
  })

  it('the member\'s build creates every entry anew, with a note naming protected_hardlinks; its next build shares from its own tree', { timeout: 120_000 }, () => {
    const member = { user: users.user('vc20a') }
    const root = sharedTempDir('vc20-')
    const pkgs = prefixes(20, 4, path.join(root, 'p'))
    // a store the group writes: root builds the first generation, a member the next ones
    const views = path.join(root, 'views')
    fs.mkdirSync(views)
    fs.chownSync(views, 0, users.group.gid)
    fs.chmodSync(views, 0o2775)
    const view = path.join(views, 'v')
    const g1 = regenerate(manifest(root, 'm1.yaml', view, pkgs))
    const store = path.join(views, '._v')
    for (const name of ['', '.lock', 'history.jsonl', '.scan-cache']) {
      const p = path.join(store, name)
      if (fs.existsSync(p)) fs.chmodSync(p, name === '' ? 0o2775 : 0o664)
    }
    expect(fs.lstatSync(`${treeDir(view, g1.hash)}/bin/pkg0-tool0`).uid).toBe(0)

    // one file more in a prefix, and the member regenerates
    const memberRegenerates = (prefix: string, file: string, name: string): { json: Regenerated; stderr: string } => {
      fs.writeFileSync(path.join(prefix, 'bin', file), `${file}\n`)
      const m = manifest(root, name, view, pkgs)
      fs.chmodSync(m, 0o644)
      const r = viewctlAs(member, ['regenerate', m, '--json'])
      expect(r.code, r.stderr).toBe(0)
      return { json: r.json as Regenerated, stderr: r.stderr }
    }
    const r2 = memberRegenerates(pkgs[0]!, 'added', 'm2.yaml')
    const g2 = r2.json
    expect(g2.shared).toBe(0)
    expect(g2.warnings.join('\n')).toMatch(/stopped at the first refused link \(EPERM: fs\.protected_hardlinks lets only a file's owner hard-link it/)
    expect(r2.stderr).toMatch(/warning: sharing with generation 1's tree/)
    expect(sameInodes(view, g1.hash, g2.hash, unchangedPaths(view, g1.hash, g2.hash))).toBe(0)
    expect(fs.lstatSync(`${treeDir(view, g2.hash)}/bin/pkg0-tool0`).uid).toBe(users.user('vc20a').uid)
    verifyOk(view, (args) => viewctlAs(member, args))

    // the member's own links: linked, not refused
    const g3 = memberRegenerates(pkgs[1]!, 'added-too', 'm3.yaml').json
    expect(g3.warnings).toEqual([])
    expect(g3.sharedWith?.hash).toBe(g2.hash)
    expect(g3.shared).toBe(linkPaths(view, g3.hash).length - 1)
    verifyOk(view, (args) => viewctlAs(member, args))

    // root, in its own store that the group may write, links nothing from a tree a member could have changed
    fs.writeFileSync(path.join(pkgs[2]!, 'bin', 'added-by-root'), 'added by root\n')
    const g4 = regenerate(manifest(root, 'm4.yaml', view, pkgs))
    expect(g4.shared).toBe(0)
    expect(g4.warnings.join('\n')).toMatch(/root shares nothing from trees in .*, which others may write/)
    expect(sameInodes(view, g3.hash, g4.hash, unchangedPaths(view, g3.hash, g4.hash))).toBe(0)
    verifyOk(view)
  })
})
