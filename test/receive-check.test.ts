/**
 * What a receiving host checks of a symlink view's generation files before it
 * makes the tree from them (src/ops/replicate/check.ts, checkGenerationFiles):
 * the files of a real generation pass, and each way of not describing it is a
 * problem named for its file. The whole push refusing such files is in
 * test/push.test.ts.
 */
import fs from 'node:fs'
import path from 'node:path'
import { describe, expect, it } from 'vitest'
import { checkGenerationFiles } from '../src/ops/replicate/check.js'
import { makePrefixes, tempDir, viewctl, writeManifest } from './helpers.js'

/** The generation files of a freshly built view, as a sender reads them, and its hash. */
function generationFiles(extra = ''): { meta: string; plan: string; hash: string } {
  const dir = tempDir()
  const prefixes = makePrefixes(path.join(dir, 'opt'), 2)
  const view = path.join(dir, 'view')
  const manifest = writeManifest(dir, `view: ${view}\n${extra}packages:\n${prefixes.map((p) => `  - ${p}\n`).join('')}`)
  const r = viewctl(['regenerate', manifest, '--json'])
  expect(r.code, r.stderr).toBe(0)
  const files = path.join(dir, '._view', r.json.hash, '.viewctl')
  return { meta: fs.readFileSync(path.join(files, 'meta.json'), 'utf8'), plan: fs.readFileSync(path.join(files, 'plan.tsv'), 'utf8'), hash: r.json.hash }
}

const problemsOf = (meta: string, plan: string, hash: string) => checkGenerationFiles(meta, plan, hash).problems.map((p) => `${p.path}: ${p.detail}`)

describe("a symlink view's generation files, checked where they arrive", () => {
  it('pass as a generation has them, and give back the parsed plan and meta', () => {
    const { meta, plan, hash } = generationFiles()
    const checked = checkGenerationFiles(meta, plan, hash)
    expect(checked.problems).toEqual([])
    expect(checked.meta).toMatchObject({ hash })
    expect(checked.plan?.paths.length).toBe(JSON.parse(meta).counts.entries)
  })

  it('a plan that does not hash to the name, or lists another count or other prefixes than meta.json', () => {
    const { meta, plan, hash } = generationFiles()
    const lines = plan.split('\n')
    let last = lines.length - 1
    while (!lines[last]!.includes('\t')) last--
    const edited = lines.map((l, i) => (i === last ? l.replace(/([^/\t]+)$/, 'renamed-$1') : l)).join('\n')
    expect(edited).not.toBe(plan)
    expect(problemsOf(meta, edited, hash)).toEqual([`.viewctl/plan.tsv: does not hash to ${hash}`])

    const m = JSON.parse(meta)
    expect(problemsOf(JSON.stringify({ ...m, counts: { ...m.counts, entries: m.counts.entries + 1 } }), plan, hash)).toEqual([`.viewctl/meta.json: counts ${m.counts.entries + 1} entries, the plan lists ${m.counts.entries}`])
    expect(problemsOf(JSON.stringify({ ...m, prefixes: [...m.prefixes].reverse() }), plan, hash)).toEqual(['.viewctl/meta.json: lists other prefixes than the plan'])
  })

  it('a meta.json that names another hash, another plan format, or a view of another link mode', () => {
    const { meta, plan, hash } = generationFiles()
    const m = JSON.parse(meta)
    const other = 'f'.repeat(hash.length)
    // announced as another generation: the meta.json names its own, and the plan hashes to that one, not to the announced name
    expect(problemsOf(meta, plan, other)).toEqual([`.viewctl/meta.json: names hash ${hash}, the sender announced ${other}`, `.viewctl/plan.tsv: does not hash to ${other}`])
    expect(problemsOf(JSON.stringify({ ...m, format: 99 }), plan, hash)).toContainEqual(expect.stringMatching(/^\.viewctl\/meta\.json: plan format 99, this viewctl reads format \d+$/))
    expect(problemsOf(JSON.stringify({ ...m, options: { ...m.options, link: 'copy' } }), plan, hash)).toContain(".viewctl/meta.json: a copy view's tree cannot be made from its plan")
  })

  it('a meta.json that is not JSON, or not a generation\'s: refused before the plan is read', () => {
    const { plan, hash } = generationFiles()
    expect(problemsOf('{"hash": ', plan, hash)).toEqual([expect.stringMatching(/^\.viewctl\/meta\.json: cannot be parsed: /)])
    for (const meta of ['null', '[]', '{}', '{"options": {}, "prefixes": [], "counts": null}']) {
      const checked = checkGenerationFiles(meta, plan, hash)
      expect(checked.problems.map((p) => `${p.path}: ${p.detail}`), meta).toEqual([".viewctl/meta.json: is not a generation's meta.json"])
      expect(checked.plan).toBeNull()
    }
  })

  it('a plan that cannot be parsed is named as such', () => {
    const { meta, hash } = generationFiles()
    expect(problemsOf(meta, 'not a plan\n', hash)).toContainEqual(expect.stringMatching(/^\.viewctl\/plan\.tsv: cannot be read: /))
  })
})
