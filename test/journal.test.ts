/**
 * A damaged journal and damaged trees (DESIGN §13, §6, §9): a corrupt middle
 * line of history.jsonl makes `status` say the view is degraded (exit 5) and
 * `verify` report it, its tree stays reachable by hash, and the next writer
 * takes the line out, keeping a copy; a tree is reused or switched to only
 * when it is intact (meta.json present, naming its hash), checked without
 * walking it.
 */
import fs from 'node:fs'
import path from 'node:path'
import { describe, expect, it } from 'vitest'
import { linkTarget, makePrefixes, tempDir, viewctl, writeManifest } from './helpers.js'
import { assertCompleteGeneration, fullSnapshot, historyRecords, storeOf } from './view-checks.js'

function threeGenerations() {
  const root = tempDir()
  const pkgs = makePrefixes(path.join(root, 'p'), 3, 2)
  const view = path.join(root, 'view')
  const manifests = [1, 2, 3].map((n) =>
    writeManifest(root, `view: ${view}\nenv:\n  PATH: [bin]\n  GEN${n}: ["."]\ngc: {auto: false}\npackages:\n${pkgs.slice(0, n).map((p) => `  - ${p}\n`).join('')}`, `m${n}.yaml`),
  )
  const hashes = manifests.map((m) => {
    const r = viewctl(['regenerate', m, '--json'])
    expect(r.code, r.stderr).toBe(0)
    return r.json.hash as string
  })
  return { root, view, store: storeOf(view), manifests, hashes, journal: path.join(storeOf(view), 'history.jsonl') }
}

describe('a corrupt line in the middle of history.jsonl', () => {
  it('status: degraded, exit 5; verify reports it; its tree is reachable by hash; the next writer takes the line out and keeps it', () => {
    const { view, store, hashes, journal } = threeGenerations()
    const lines = fs.readFileSync(journal, 'utf8').split('\n')
    const bad = `${lines[1]!.slice(0, 40)}\u0000garbage`
    lines[1] = bad
    fs.writeFileSync(journal, lines.join('\n'))

    const status = viewctl(['status', view, '--json'])
    expect(status.code, status.stdout).toBe(5)
    expect(status.json.health).toBe('degraded')
    expect(status.json.problems.join('\n')).toMatch(/history\.jsonl line 2 is not a record/)
    const text = viewctl(['status', view])
    expect(text.code).toBe(5)
    expect(text.stdout).toMatch(/health: +degraded/)

    const verify = viewctl(['verify', view, '--json'])
    expect(verify.code).toBe(5)
    expect(verify.json.problems).toEqual([expect.objectContaining({ path: 'history.jsonl', problem: 'journal' })])

    // generation 2's record is gone from the list, but its tree is on disk and reachable by its hash
    expect(viewctl(['list', view, '--json']).json.generations.map((g: { generation: number }) => g.generation)).toEqual([1, 3])
    const back = viewctl(['rollback', view, '--to', hashes[1]!.slice(0, 10), '--json'])
    expect(back.code, back.stdout + back.stderr).toBe(0)
    expect(back.json).toMatchObject({ from: 3, to: 4, hash: hashes[1] })
    expect(back.stderr).toMatch(/warning: .*history\.jsonl: line 2 was not a record; taken out of the journal and kept in .*history\.jsonl\.bad/)
    expect(linkTarget(view)).toBe(`._view/${hashes[1]}`)
    assertCompleteGeneration(view)
    // its settings come from the manifest copy in the tree, as its lost record had them
    const act = viewctl(['activate', view, '--shell', 'sh', '--json'])
    expect(act.json.script).toMatch(/GEN2=/)

    // the journal parses line by line again; the bad line is kept, with where it stood
    expect(historyRecords(view).map((r) => [r.generation, r.action])).toEqual([
      [1, 'regenerate'],
      [3, 'regenerate'],
      [4, 'rollback'],
    ])
    const kept = fs.readFileSync(path.join(store, 'history.jsonl.bad'), 'utf8').trim().split('\n').map((l) => JSON.parse(l))
    expect(kept).toEqual([expect.objectContaining({ line: 2, text: bad })])
    expect(viewctl(['status', view]).code).toBe(0)
    expect(viewctl(['verify', view]).code).toBe(0)
  })

  it('a torn last line (a writer killed mid-append) is not damage: status ok, exit 0', () => {
    const { view, journal } = threeGenerations()
    fs.appendFileSync(journal, '{"generation":4,"hash":"ab')
    const status = viewctl(['status', view, '--json'])
    expect(status.code, status.stdout).toBe(0)
    expect(status.json.health).toBe('ok')
  })
})

describe('a damaged tree is never reused or switched to', () => {
  it('a meta.json that names another hash: rollback refuses it (exit 1, TREE_DAMAGED, view unchanged); regenerate rebuilds it', () => {
    const { view, store, manifests, hashes } = threeGenerations()
    const meta = path.join(store, hashes[0]!, '.viewctl', 'meta.json')
    const doc = JSON.parse(fs.readFileSync(meta, 'utf8'))
    fs.writeFileSync(meta, JSON.stringify({ ...doc, hash: hashes[2] }))
    const before = fullSnapshot(view)
    const r = viewctl(['rollback', view, '--to', '1', '--json'])
    expect(r.code, r.stdout).toBe(1)
    expect(r.json.error.code).toBe('TREE_DAMAGED')
    expect(r.json.error.message).toContain(`${meta} names the hash ${hashes[2]}`)
    expect(r.json.error.hint).toMatch(/regenerate/)
    expect(fullSnapshot(view)).toEqual(before)

    const rebuilt = viewctl(['regenerate', manifests[0]!, '--json'])
    expect(rebuilt.code, rebuilt.stderr).toBe(0)
    expect(rebuilt.json).toMatchObject({ hash: hashes[0], built: true, changed: true })
    assertCompleteGeneration(view)
    expect(JSON.parse(fs.readFileSync(meta, 'utf8')).hash).toBe(hashes[0])
    expect(viewctl(['verify', view]).code).toBe(0)
  })

  it('the current tree damaged the same way: regenerate of its own manifest rebuilds it instead of answering "up to date"', () => {
    const { view, store, manifests, hashes } = threeGenerations()
    const meta = path.join(store, hashes[2]!, '.viewctl', 'meta.json')
    fs.writeFileSync(meta, '{"hash": "not this one"}')
    const r = viewctl(['regenerate', manifests[2]!, '--json'])
    expect(r.code, r.stderr).toBe(0)
    expect(r.json).toMatchObject({ hash: hashes[2], built: true })
    assertCompleteGeneration(view)
  })
})
