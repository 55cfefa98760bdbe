/**
 * viewctl pull: a push with the roles swapped, the writer on the host it
 * writes (this one), the other host reached through a private sshd.
 */
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import type { ChildProcess } from 'node:child_process'
import { describe, expect, it, onTestFinished, type TestContext } from 'vitest'
import { tempDir, viewctl, viewctlAsync } from './helpers.js'
import { finishedWithin, historyRecords, leftovers, scratchDir, stagingDirs, storeOf, treeOf, waitFor } from './view-checks.js'
import { buildView, dest, makeTree, processes, remoteOptions, requirePush, useSshd } from './push-helpers.js'

const sshd = useSshd()

function pull(from: string, view: string, extra: string[] = []) {
  return viewctl(['pull', from, view, ...remoteOptions(sshd()), ...extra])
}

describe('pull', () => {
  it('copies the generation the other host shows, records it as a pull, then is a no-op; an incremental pull shares what did not change', (ctx) => {
    requirePush(ctx)
    const root = tempDir()
    const prefixes = makeTree(path.join(root, 'p'), 6, 10)
    const there = path.join(root, 'there', 'hpc')
    fs.mkdirSync(path.dirname(there))
    const { manifest, hash } = buildView(root, there, prefixes, ['fold: false', 'env:', '  PATH: [bin]'])
    const here = path.join(root, 'here', 'hpc')

    const r = pull(dest(sshd(), there), here, ['--json'])
    expect(r.code, r.stderr).toBe(0)
    expect(r.json).toMatchObject({ view: here, action: 'pushed', generation: 1, hash, switched: true, source: { generation: 1, hash } })
    expect(fs.readlinkSync(here)).toBe(`._hpc/${hash}`)
    expect(treeOf(here, 'inode')).toEqual(Object.fromEntries(Object.entries(treeOf(there, 'inode')).map(([k, v]) => [k, v.startsWith('->') || v === 'dir' ? v : expect.any(String)])))
    expect(viewctl(['verify', here]).code).toBe(0)
    expect(historyRecords(here)[0]).toMatchObject({ action: 'pull', hash, env: { PATH: ['bin'] }, origin: { host: os.hostname(), view: there, generation: 1, hash } })

    const again = pull(dest(sshd(), there), here, ['--json'])
    expect(again.code, again.stderr).toBe(0)
    expect(again.json.action).toBe('noop')
    expect(historyRecords(here)).toHaveLength(1)

    const before = fs.realpathSync(here)
    fs.writeFileSync(path.join(prefixes[2]!, 'bin', 'pkg2-extra'), 'x')
    const regen = viewctl(['regenerate', manifest, '--json'])
    const inc = pull(dest(sshd(), there), here, ['--json'])
    expect(inc.code, inc.stderr).toBe(0)
    expect(inc.json).toMatchObject({ action: 'pushed', generation: 2, hash: regen.json.hash, mode: 'plan', created: 1 })
    expect(viewctl(['verify', here]).code).toBe(0)
    expect(fs.lstatSync(path.join(here, 'bin', 'pkg0-tool0')).ino).toBe(fs.lstatSync(path.join(before, 'bin', 'pkg0-tool0')).ino)
    expect(fs.readdirSync(storeOf(here)).filter((n) => n.startsWith('.staging-') || n.startsWith('.push-'))).toEqual([])
  }, 120_000)

  it('pulls a copy view with rsync into a staging directory here, checked against its plan', (ctx) => {
    requirePush(ctx)
    const root = tempDir()
    const there = path.join(root, 'hpc')
    const { hash } = buildView(root, there, makeTree(path.join(root, 'p'), 2, 3), ['link: copy'])
    const here = path.join(root, 'here', 'hpc')
    const r = pull(dest(sshd(), there), here, ['--json'])
    expect(r.code, r.stderr).toBe(0)
    expect(r.json).toMatchObject({ action: 'pushed', hash, mode: 'full' })
    expect(treeOf(here, 'content')).toEqual(treeOf(there, 'content'))
    expect(viewctl(['verify', here]).code).toBe(0)
    // without --json: one line, saying how the tree came here
    const elsewhere = path.join(root, 'elsewhere', 'hpc')
    const text = pull(dest(sshd(), there), elsewhere)
    expect(text.code, text.stderr).toBe(0)
    expect(text.stdout).toMatch(new RegExp(`^${elsewhere} is generation 1: generation 1 \\(${hash.slice(0, 12)}\\) of .*, switched; copied in \\d+\\.\\d s\n$`))
    expect(fs.readdirSync(storeOf(here)).filter((n) => n.startsWith('.staging-') || n.startsWith('.push-'))).toEqual([])
  }, 120_000)

  /**
   * A pull of a generation of 80,000 links, made here on one thread (long
   * enough to be interrupted in the middle), and `interrupt` called the moment
   * its staging directory appears. Returns how the pull ended; checks that
   * the view here is as it was, with no staging and no record, and that the
   * next pull goes through.
   */
  async function interruptedPull(ctx: TestContext, interrupt: (child: ChildProcess, there: string) => void) {
    requirePush(ctx)
    const root = tempDir()
    const big = scratchDir('viewctl-vc16-pull-int-')
    onTestFinished(() => fs.rmSync(big, { recursive: true, force: true }))
    const prefixes = makeTree(path.join(big, 'p'), 20, 1000)
    const there = path.join(root, 'there', 'hpc')
    const small = buildView(root, there, prefixes.slice(0, 1)).hash
    const here = path.join(root, 'here', 'hpc')
    expect(pull(dest(sshd(), there), here).code).toBe(0)
    const large = buildView(root, there, prefixes, ['fold: false']).hash
    const child = viewctlAsync(['pull', dest(sshd(), there), here, ...remoteOptions(sshd()), '--json'], { env: { VIEWCTL_JOBS: '1' } })
    onTestFinished(() => void child.kill('SIGKILL'))
    const done = finishedWithin(child, 120_000)
    const staging = await waitFor(() => stagingDirs(here).find((n) => n.includes(large)), 60_000, 1)
    expect(staging, 'the build never made its staging directory').toBeTruthy()
    interrupt(child, there)
    const r = await done
    expect(r.timedOut).toBe(false)
    expect(fs.readlinkSync(here)).toBe(`._hpc/${small}`)
    expect(stagingDirs(here)).toEqual([])
    expect(leftovers(here)).toEqual([])
    expect(historyRecords(here)).toHaveLength(1)
    const again = pull(dest(sshd(), there), here, ['--json'])
    expect(again.code, again.stderr).toBe(0)
    expect(again.json).toMatchObject({ hash: large, mode: 'plan' })
    return r
  }

  it('SIGINT while the tree is made here from its plan: exit 130, the build abandoned and its staging removed, the view as it was', async (ctx) => {
    const r = await interruptedPull(ctx, (child) => child.kill('SIGINT'))
    expect(r.code === 130 || r.signal === 'SIGINT', `exit ${r.code ?? r.signal}: ${r.stderr}`).toBe(true)
  }, 180_000)

  it('the other host gone while the tree is made here (its viewctl killed): CONNECTION_LOST, the build abandoned, the view as it was', async (ctx) => {
    const r = await interruptedPull(ctx, (_child, there) => {
      const senders = processes((a) => a.includes('send') && a.includes(there))
      expect(senders.length, 'no viewctl send for the pull').toBeGreaterThan(0)
      for (const pid of senders) process.kill(pid, 'SIGKILL')
    })
    expect(r.code, r.stderr).toBe(1)
    expect(JSON.parse(r.stdout).error).toMatchObject({ code: 'CONNECTION_LOST' })
  }, 180_000)

  it('pulls a named generation; refuses one that is not there (exit 2) and a source that is not host:/path (exit 2)', (ctx) => {
    requirePush(ctx)
    const root = tempDir()
    const prefixes = makeTree(path.join(root, 'p'), 2, 2)
    const there = path.join(root, 'hpc')
    const first = buildView(root, there, prefixes.slice(0, 1)).hash
    buildView(root, there, prefixes)
    const here = path.join(root, 'here', 'hpc')
    const r = pull(dest(sshd(), there), here, ['--generation', '1', '--json'])
    expect(r.code, r.stderr).toBe(0)
    expect(r.json).toMatchObject({ hash: first, source: { generation: 1 } })
    const missing = pull(dest(sshd(), there), here, ['--generation', '9', '--json'])
    expect(missing.code).toBe(2)
    expect(missing.json.error.code).toBe('GENERATION_NOT_FOUND')
    const bad = pull(there, here, ['--json'])
    expect(bad.code).toBe(2)
    expect(bad.json.error.code).toBe('BAD_DESTINATION')
    expect(fs.readlinkSync(here)).toBe(`._hpc/${first}`)
  }, 120_000)
})
