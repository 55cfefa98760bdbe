/**
 * `verify --repair` (DESIGN §13): a writer that re-creates what the plan says
 * for every missing, wrong or extra entry of the current generation, each in
 * one rename, while the view stays in use; exit 0 when the tree then matches
 * its plan, 5 when something could not be repaired.
 */
import fs from 'node:fs'
import path from 'node:path'
import { spawn } from 'node:child_process'
import { describe, expect, it, onTestFinished } from 'vitest'
import { linkTarget, makePrefixes, tempDir, viewctl, writeManifest, writeTree } from './helpers.js'
import { assertCompleteGeneration, finishedWithin, fullSnapshot, historyText, leftovers, noStackTrace, storeOf, treeOf, viewctlRun, waitFor } from './view-checks.js'
import { firstLine, lockHolderScript, nodeScriptAs, usePublicInstall } from './users.js'

usePublicInstall()

function built(opts: { link?: string; fold?: boolean; prefixes?: number; files?: number } = {}) {
  const root = tempDir()
  const pkgs = makePrefixes(path.join(root, 'p'), opts.prefixes ?? 2, opts.files ?? 3)
  const view = path.join(root, 'view')
  const manifest = writeManifest(root, `view: ${view}\nlink: ${opts.link ?? 'symlink'}\nfold: ${opts.fold ?? false}\ngc: {auto: false}\npackages:\n${pkgs.map((p) => `  - ${p}\n`).join('')}`)
  const r = viewctl(['regenerate', manifest, '--json'])
  expect(r.code, r.stderr).toBe(0)
  const gen = assertCompleteGeneration(view)
  return { root, pkgs, view, manifest, dir: gen.dir, hash: gen.hash }
}

describe('verify --repair', () => {
  it('missing, wrong, extra and wrong-type entries: verify exits 5 pointing at --repair; --repair makes the tree what it was, exit 0', () => {
    const { view, dir, pkgs } = built()
    const good = treeOf(view, 'inode')
    fs.rmSync(path.join(dir, 'bin', 'pkg0-tool0'))
    fs.rmSync(path.join(dir, 'bin', 'pkg1-tool1'))
    fs.symlinkSync('/etc/passwd', path.join(dir, 'bin', 'pkg1-tool1'))
    fs.writeFileSync(path.join(dir, 'lib', 'stray.so'), 'not planned\n')
    writeTree(path.join(dir, 'share', 'junk'), { 'a/b': 'deep extra\n' })
    fs.rmSync(path.join(dir, 'include', 'pkg0'), { recursive: true }) // a planned directory and everything in it
    fs.writeFileSync(path.join(dir, 'include', 'pkg0'), 'a file where a directory belongs\n')
    fs.rmSync(path.join(dir, 'lib', 'libpkg1-0.so'))
    fs.mkdirSync(path.join(dir, 'lib', 'libpkg1-0.so')) // a directory where a link belongs
    fs.writeFileSync(path.join(dir, 'lib', 'libpkg1-0.so', 'inside'), 'x\n')

    const v = viewctl(['verify', view])
    expect(v.code).toBe(5)
    expect(v.stderr).toContain(`hint: \`viewctl verify ${view} --repair\``)
    expect(v.stderr).not.toMatch(/regenerate to rebuild/)

    const before = { target: linkTarget(view), history: historyText(view) }
    const r = viewctl(['verify', view, '--repair', '--json'])
    expect(r.code, r.stdout + r.stderr).toBe(0)
    expect(r.json.ok).toBe(true)
    expect(r.json.unrepaired).toEqual([])
    const repaired = r.json.repaired.map((p: { path: string; problem: string }) => `${p.problem} ${p.path}`)
    expect(repaired).toEqual(
      expect.arrayContaining([
        'missing bin/pkg0-tool0',
        'wrong-target bin/pkg1-tool1',
        'wrong-type include/pkg0',
        'missing include/pkg0/h0.h',
        'wrong-type lib/libpkg1-0.so',
        'extra lib/stray.so',
        'extra share/junk',
      ]),
    )
    expect(treeOf(view, 'inode')).toEqual(good)
    expect(viewctl(['verify', view]).code).toBe(0)
    // the same generation, in place: no switch, no new record, nothing left behind
    expect({ target: linkTarget(view), history: historyText(view) }).toEqual(before)
    expect(leftovers(view)).toEqual([])
    expect(fs.readdirSync(path.dirname(path.join(dir, 'bin', 'x'))).filter((n) => n.includes('.repair-'))).toEqual([])
    expect(fs.readFileSync(path.join(view, 'bin', 'pkg0-tool0'), 'utf8')).toBe(fs.readFileSync(path.join(pkgs[0]!, 'bin', 'pkg0-tool0'), 'utf8'))

    const again = viewctl(['verify', view, '--repair'])
    expect(again.code).toBe(0)
    expect(again.stdout).toMatch(/nothing to repair/)
  })

  it('hardlink and copy views: a replaced file is linked or copied again', () => {
    for (const link of ['hardlink', 'copy']) {
      const { view, dir, pkgs } = built({ link })
      const source = path.join(pkgs[0]!, 'lib', 'libpkg0-0.so')
      const entry = path.join(dir, 'lib', 'libpkg0-0.so')
      fs.rmSync(entry)
      fs.writeFileSync(entry, 'a different and longer content\n')
      fs.rmSync(path.join(dir, 'bin', 'pkg1-tool0'))
      expect(viewctl(['verify', view]).code).toBe(5)
      const r = viewctl(['verify', view, '--repair', '--json'])
      expect(r.code, `${link}: ${r.stdout}${r.stderr}`).toBe(0)
      expect(fs.readFileSync(entry, 'utf8')).toBe(fs.readFileSync(source, 'utf8'))
      if (link === 'hardlink') expect(fs.statSync(entry).ino).toBe(fs.statSync(source).ino)
      expect(fs.statSync(path.join(dir, 'bin', 'pkg1-tool0')).mode & 0o777).toBe(fs.statSync(path.join(pkgs[1]!, 'bin', 'pkg1-tool0')).mode & 0o777)
    }
  })

  it('what cannot be repaired (a source the prefix lost, an incomplete tree) is reported, exit 5, the rest repaired; regenerate rebuilds an incomplete tree', () => {
    const { view, dir, pkgs, manifest } = built()
    fs.rmSync(path.join(pkgs[0]!, 'bin', 'pkg0-tool2'))
    fs.rmSync(path.join(dir, 'bin', 'pkg1-tool0'))
    const r = viewctl(['verify', view, '--repair', '--json'])
    expect(r.code, r.stdout).toBe(5)
    expect(r.json.ok).toBe(false)
    expect(r.json.repaired.map((p: { path: string }) => p.path)).toEqual(['bin/pkg1-tool0'])
    expect(r.json.unrepaired).toEqual([expect.objectContaining({ path: 'bin/pkg0-tool2', problem: 'dangling', why: expect.stringMatching(/regenerate/) })])
    expect(r.json.problems.map((p: { path: string }) => p.path)).toEqual(['bin/pkg0-tool2'])
    const text = viewctl(['verify', view, '--repair'])
    expect(text.code).toBe(5)
    expect(text.stdout).toMatch(/^not repaired bin\/pkg0-tool2: /m)
    noStackTrace(text.stderr)

    fs.rmSync(path.join(dir, '.viewctl', 'meta.json'))
    const incomplete = viewctl(['verify', view, '--repair', '--json'])
    expect(incomplete.code).toBe(5)
    expect(incomplete.json.unrepaired[0]).toMatchObject({ problem: 'incomplete', why: expect.stringMatching(/regenerate/) })
    fs.writeFileSync(path.join(pkgs[0]!, 'bin', 'pkg0-tool2'), 'back\n')
    const rebuilt = viewctl(['regenerate', manifest, '--json'])
    expect(rebuilt.code, rebuilt.stderr).toBe(0)
    expect(rebuilt.json.built).toBe(true)
    assertCompleteGeneration(view)
    expect(viewctl(['verify', view]).code).toBe(0)
  })

  it('is a writer: another holder of the lock makes it wait, and --lock-timeout 0 exit 4 with the tree unchanged', async () => {
    const { view, dir } = built()
    fs.rmSync(path.join(dir, 'bin', 'pkg0-tool0'))
    const holder = nodeScriptAs({ user: null }, lockHolderScript(path.join(storeOf(view), '.lock'), { shared: false }))
    onTestFinished(() => void holder.kill('SIGKILL'))
    expect(await firstLine(holder)).toBe('held')
    const before = fullSnapshot(view)
    const r = viewctl(['verify', view, '--repair', '--lock-timeout', '0', '--json'])
    expect(r.code, r.stdout + r.stderr).toBe(4)
    expect(r.json.error.code).toBe('LOCK_TIMEOUT')
    expect(fs.existsSync(path.join(dir, 'bin', 'pkg0-tool0'))).toBe(false)
    expect(fullSnapshot(view)).toEqual(before)
    holder.kill('SIGKILL')
    await finishedWithin(holder, 10_000)
    expect(viewctl(['verify', view, '--repair']).code).toBe(0)
  })

  it('a reader loop never sees the view path or a repaired entry missing', { timeout: 180_000 }, async () => {
    const { view, dir } = built({ prefixes: 10, files: 150 }) // 1,500 links in bin/ alone
    const names = fs.readdirSync(path.join(dir, 'bin'))
    for (const n of names) {
      fs.rmSync(path.join(dir, 'bin', n))
      fs.symlinkSync(`/nonexistent/${n}`, path.join(dir, 'bin', n))
    }
    // the reader: lstat of the view path and of every damaged entry, through the view, until told to stop
    const stop = path.join(path.dirname(view), 'stop-reader')
    const script = `
const fs = require('fs')
const names = ${JSON.stringify(names)}
let passes = 0, missing = 0, firstMissing = null, good = 0
for (;;) {
  if (fs.existsSync(${JSON.stringify(stop)})) break
  for (const n of names) {
    try {
      fs.lstatSync(${JSON.stringify(view)})
      const t = fs.readlinkSync(${JSON.stringify(view)} + '/bin/' + n)
      if (!t.startsWith('/nonexistent/')) good++
    } catch (err) {
      missing++
      firstMissing ??= n + ': ' + err.code
    }
  }
  passes++
  if (passes === 1) console.error('reading')
}
console.log(JSON.stringify({ passes, missing, firstMissing, good }))
`
    const reader = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'pipe'] })
    onTestFinished(() => void reader.kill('SIGKILL'))
    const done = finishedWithin(reader, 60_000)
    let started = false
    reader.stderr!.on('data', () => (started = true))
    expect(await waitFor(() => started, 10_000)).toBe(true)
    const r = await viewctlRun(['verify', view, '--repair', '--json'])
    fs.writeFileSync(stop, '')
    const out = await done
    expect(r.code, r.stdout + r.stderr).toBe(0)
    expect(r.json.repaired).toHaveLength(names.length)
    const seen = JSON.parse(out.stdout) as { passes: number; missing: number; firstMissing: string | null; good: number }
    expect(seen.missing, `the reader saw ${seen.firstMissing}`).toBe(0)
    expect(seen.passes).toBeGreaterThan(1)
    expect(seen.good, 'the reader saw repaired entries').toBeGreaterThan(0)
    expect(viewctl(['verify', view]).code).toBe(0)
  })
})
