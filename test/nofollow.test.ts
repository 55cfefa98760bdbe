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
import { tempDir } from './helpers.js'

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
