/**
 * The fs seam's calls for files in a store (DESIGN §13): none follows a
 * symlink at its last component, a read does not block on a FIFO, an
 * exclusive create refuses a name that exists. The many-users suites check
 * the same end to end, with real users; these run anywhere.
 */
import fs from 'node:fs'
import path from 'node:path'
import { spawnSync } from 'node:child_process'
import { describe, expect, it } from 'vitest'
import { appendDurable, chmodDirNoFollow, isRefusedSymlink, readFileNoFollow, writeFileDurable } from '../src/fs.js'
import { translateOsError } from '../src/errors.js'
import { checkReceivedTree } from '../src/ops/replicate/check.js'
import { makePrefixes, tempDir, viewctl, writeManifest } from './helpers.js'

function victim(dir: string): { file: string; link: string; before: () => { text: string; mode: number } } {
  const file = path.join(dir, 'victim')
  fs.writeFileSync(file, 'precious', { mode: 0o600 })
  const link = path.join(dir, 'planted')
  fs.symlinkSync(file, link)
  return { file, link, before: () => ({ text: fs.readFileSync(file, 'utf8'), mode: fs.statSync(file).mode & 0o7777 }) }
}

describe('files in a store are never reached through a symlink', () => {
  it('writeFileDurable, appendDurable and readFileNoFollow refuse a planted symlink (UNSAFE_PATH when translated); the target is untouched', () => {
    const v = victim(tempDir())
    const before = v.before()
    for (const call of [() => writeFileDurable(v.link, 'x'), () => writeFileDurable(v.link, 'x', { exclusive: true }), () => appendDurable(v.link, 'x'), () => readFileNoFollow(v.link)]) {
      let err: unknown = null
      try {
        call()
      } catch (e) {
        err = e
      }
      expect(err, 'refused').not.toBeNull()
      const code = (err as NodeJS.ErrnoException).code
      if (code === 'ELOOP') {
        expect(isRefusedSymlink(err)).toBe(true)
        expect(translateOsError(err, 'testing').code).toBe('UNSAFE_PATH')
      } else expect(code).toBe('EEXIST') // the exclusive create: the name exists, whatever it is
    }
    expect(v.before()).toEqual(before)
  })

  it('chmodDirNoFollow refuses a symlink to a directory and leaves its mode alone', () => {
    const dir = tempDir()
    const target = path.join(dir, 'target')
    fs.mkdirSync(target, { mode: 0o700 })
    fs.symlinkSync(target, path.join(dir, 'staging'))
    expect(() => chmodDirNoFollow(path.join(dir, 'staging'), () => 0o2775)).toThrow(/symlink/)
    expect(fs.statSync(target).mode & 0o7777).toBe(0o700)
  })

  it('a read does not hang on a FIFO planted in place of a file', () => {
    const dir = tempDir()
    const fifo = path.join(dir, 'history.jsonl')
    expect(spawnSync('mkfifo', [fifo]).status).toBe(0)
    const started = Date.now()
    expect(() => readFileNoFollow(fifo)).toThrow(/not a regular file/)
    expect(Date.now() - started).toBeLessThan(5000)
  })
})

describe("a received generation's plan is read without following a symlink", () => {
  /** A real generation copied whole, as rsync leaves it in `.staging-push-<hash>`, and its hash. */
  function stagedCopy(): { staging: string; finalReal: string; hash: string } {
    const dir = tempDir()
    const prefixes = makePrefixes(path.join(dir, 'opt'), 2)
    const view = path.join(dir, 'view')
    const manifest = writeManifest(dir, `view: ${view}\npackages:\n${prefixes.map((p) => `  - ${p}\n`).join('')}`)
    expect(viewctl(['regenerate', manifest]).code).toBe(0)
    const hash = path.basename(fs.readlinkSync(view))
    const store = path.join(dir, '._view')
    const staging = path.join(store, `.staging-push-${hash}`)
    expect(spawnSync('cp', ['-a', path.join(store, hash), staging]).status).toBe(0)
    return { staging, finalReal: path.join(fs.realpathSync(store), `${hash}-copy`), hash }
  }

  it('a plan.tsv that is a symlink (even to the right plan) or a FIFO is a problem of the tree, not followed or waited on', () => {
    const { staging, finalReal, hash } = stagedCopy()
    expect(checkReceivedTree(staging, finalReal, hash).problems).toEqual([]) // the control: the copy as it is passes
    const plan = path.join(staging, '.viewctl', 'plan.tsv')
    const aside = path.join(path.dirname(staging), 'plan-aside.tsv')
    fs.renameSync(plan, aside)
    fs.symlinkSync(aside, plan)
    const viaLink = checkReceivedTree(staging, finalReal, hash).problems
    expect(viaLink.map((p) => `${p.path}: ${p.detail}`).join('\n')).toMatch(/plan\.tsv: cannot be read: .*symlink|plan\.tsv: cannot be read: .*ELOOP/)
    fs.rmSync(plan)
    expect(spawnSync('mkfifo', [plan]).status).toBe(0)
    const started = Date.now()
    const viaFifo = checkReceivedTree(staging, finalReal, hash).problems
    expect(viaFifo.map((p) => `${p.path}: ${p.detail}`).join('\n')).toMatch(/plan\.tsv: cannot be read: .*not a regular file/)
    expect(Date.now() - started).toBeLessThan(5000)
  })
})
