/**
 * Settings that are not part of the tree (DESIGN §13, §6): a manifest whose
 * tree is unchanged but whose `env:` or `gc:` changed records a new
 * generation sharing the tree ("settings changed"); activate, exec and gc use
 * the new settings; rollback treats such a generation as a step of its own.
 */
import fs from 'node:fs'
import path from 'node:path'
import { describe, expect, it } from 'vitest'
import { linkTarget, makePrefixes, tempDir, viewctl, writeManifest } from './helpers.js'
import { assertCompleteGeneration, historyRecords, storeOf } from './view-checks.js'

function setup() {
  const root = tempDir()
  const [pkg] = makePrefixes(path.join(root, 'p'), 1, 2)
  fs.mkdirSync(path.join(pkg!, 'sbin'))
  fs.writeFileSync(path.join(pkg!, 'sbin', 'daemon'), '#!/bin/sh\n', { mode: 0o755 })
  const view = path.join(root, 'view')
  const manifest = (settings: string, name: string) => writeManifest(root, `view: ${view}\npackages:\n  - ${pkg}\n${settings}`, name)
  return { root, view, manifest }
}

/** The PATH entries `activate` exports for the view. */
function exportedPath(view: string): string[] {
  const r = viewctl(['activate', view, '--shell', 'sh', '--json'])
  expect(r.code, r.stderr).toBe(0)
  const line = (r.json.script as string).split('\n').find((l) => l.startsWith('PATH=') || l.startsWith('export PATH='))
  expect(line, r.json.script).toBeDefined()
  return line!.replace(/^export /, '').replace(/^PATH=/, '').replace(/;.*$/, '').replace(/^'|'$/g, '').split(':').filter((p) => p.startsWith(view))
}

/** What `exec` puts in PATH for a command. */
function execPath(view: string): string[] {
  const r = viewctl(['exec', view, '--', 'sh', '-c', 'printf %s "$PATH"'])
  expect(r.code, r.stderr).toBe(0)
  const root = fs.realpathSync(view)
  return r.stdout.split(':').filter((p) => p.startsWith(root)).map((p) => p.slice(root.length + 1))
}

describe('env: or gc: changed alone', () => {
  it('records a generation that shares the tree; activate, exec and gc use the new settings; rollback steps back through them', () => {
    const { view, manifest } = setup()
    const one = manifest('env:\n  PATH: [bin]\ngc:\n  keep: 2\n  auto: false\n', 'one.yaml')
    const two = manifest('env:\n  PATH: [bin, sbin]\ngc:\n  keep: 2\n  auto: false\n', 'two.yaml')
    const three = manifest('env:\n  PATH: [bin, sbin]\ngc:\n  keep: 0\n  ttl: 10m\n  auto: false\n', 'three.yaml')

    const r1 = viewctl(['regenerate', one, '--json'])
    expect(r1.code, r1.stderr).toBe(0)
    const tree = assertCompleteGeneration(view)
    expect(exportedPath(view)).toEqual([`${view}/bin`])

    // env only
    const r2 = viewctl(['regenerate', two, '--json'])
    expect(r2.code, r2.stderr).toBe(0)
    expect(r2.json).toMatchObject({ changed: true, settingsChanged: true, built: false, generation: 2, previousGeneration: 1, hash: r1.json.hash })
    expect(viewctl(['regenerate', two]).stdout).toMatch(/^up to date/)
    const text = viewctl(['regenerate', one])
    expect(text.stdout).toMatch(/^settings changed: .* is now generation 3 \(was 2\)/)
    expect(viewctl(['regenerate', two]).stdout).toMatch(/^settings changed: .* generation 4 \(was 3\)/)
    expect(linkTarget(view)).toBe(`._view/${tree.hash}`)
    expect(assertCompleteGeneration(view).dir).toBe(tree.dir)
    expect(exportedPath(view)).toEqual([`${view}/bin`, `${view}/sbin`])
    expect(execPath(view)).toEqual(['bin', 'sbin'])

    // gc only
    const r5 = viewctl(['regenerate', three, '--json'])
    expect(r5.json).toMatchObject({ changed: true, settingsChanged: true, generation: 5, hash: r1.json.hash })
    expect(viewctl(['gc', view, '--dry-run', '--json']).json.policy).toEqual({ keep: 0, ttl: '10m', from: 'recorded' })
    expect(historyRecords(view).map((r) => [r.generation, r.hash === tree.hash, r.action])).toEqual([
      [1, true, 'regenerate'],
      [2, true, 'regenerate'],
      [3, true, 'regenerate'],
      [4, true, 'regenerate'],
      [5, true, 'regenerate'],
    ])
    // one tree on disk for all five
    expect(fs.readdirSync(storeOf(view)).filter((n) => /^[0-9a-f]{16,}$/.test(n))).toEqual([tree.hash])

    // rollback: each step restores the settings of the generation before, although the tree is the same
    const back4 = viewctl(['rollback', view, '--json'])
    expect(back4.code, back4.stderr).toBe(0)
    expect(back4.json).toMatchObject({ from: 5, to: 4 })
    expect(viewctl(['gc', view, '--dry-run', '--json']).json.policy).toEqual({ keep: 2, ttl: '7d', from: 'recorded' })
    expect(viewctl(['status', view, '--json']).json.generation).toBe(4)
    const back3 = viewctl(['rollback', view, '--json'])
    expect(back3.json).toMatchObject({ from: 4, to: 3 })
    expect(exportedPath(view)).toEqual([`${view}/bin`])
    expect(execPath(view)).toEqual(['bin'])
    expect(linkTarget(view)).toBe(`._view/${tree.hash}`)

    // --to a generation with the same tree but other settings is a switch, not "nothing to do"
    const to5 = viewctl(['rollback', view, '--to', '5', '--json'])
    expect(to5.code, to5.stderr).toBe(0)
    expect(to5.json).toMatchObject({ from: 3, to: 5, warnings: [] })
    expect(exportedPath(view)).toEqual([`${view}/bin`, `${view}/sbin`])
    expect(viewctl(['gc', view, '--dry-run', '--json']).json.policy).toEqual({ keep: 0, ttl: '10m', from: 'recorded' })
    const again = viewctl(['rollback', view, '--to', '5', '--json'])
    expect(again.json.warnings.join('\n')).toMatch(/nothing to do/)
    // and a plain rollback from 5 steps to 4 again, the newest earlier step with other settings
    expect(viewctl(['rollback', view, '--json']).json).toMatchObject({ from: 5, to: 4 })
  })

  it('a manifest that only reorders its env variables, or spells the ttl another way, changes nothing', () => {
    const { view, manifest } = setup()
    const a = manifest('env:\n  PATH: [bin]\n  MANPATH: [share/man]\ngc:\n  ttl: 7d\n  auto: false\n', 'a.yaml')
    const b = manifest('env:\n  MANPATH: [share/man]\n  PATH: [bin]\ngc:\n  ttl: 1w\n  auto: false\n', 'b.yaml')
    expect(viewctl(['regenerate', a]).code).toBe(0)
    const r = viewctl(['regenerate', b, '--json'])
    expect(r.json).toMatchObject({ changed: false, settingsChanged: false, generation: 1 })
    expect(historyRecords(view)).toHaveLength(1)
  })

  it('--dry-run says the settings would change and writes nothing', () => {
    const { view, manifest } = setup()
    expect(viewctl(['regenerate', manifest('gc: {auto: false}\n', 'a.yaml')]).code).toBe(0)
    const before = fs.readFileSync(path.join(storeOf(view), 'history.jsonl'), 'utf8')
    const r = viewctl(['regenerate', manifest('gc: {auto: false, keep: 5}\n', 'b.yaml'), '--dry-run', '--json'])
    expect(r.json).toMatchObject({ changed: true, settingsChanged: true, dryRun: true })
    expect(fs.readFileSync(path.join(storeOf(view), 'history.jsonl'), 'utf8')).toBe(before)
  })
})
