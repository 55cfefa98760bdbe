/**
 * rmTree (the fs seam's `rm -rf`, used by gc and --adopt): removes a tree of
 * directories, files and symlinks without following a single symlink,
 * copes with names that are not UTF-8, with a path that is gone, and with
 * deep trees.
 */
import fs from 'node:fs'
import path from 'node:path'
import { describe, expect, it } from 'vitest'
import { listForRemoval, removeEmptyDir, rmTree, unlinkNames } from '../src/fs.js'
import { tempDir, writeTree } from './helpers.js'

describe('rmTree', () => {
  it('removes files, directories and symlinks, and never follows a symlink', () => {
    const dir = tempDir('viewctl-rm-')
    const outside = writeTree(path.join(dir, 'outside'), { 'keep/me': 'precious', 'file': 'also precious' })
    const tree = writeTree(path.join(dir, 'tree'), {
      'bin/a': 'a',
      'lib/libx.so': { symlink: 'libx.so.1' },
      'lib/libx.so.1': 'x',
      'share/man/man1/a.1': '.TH',
      'empty': { dir: true },
      'to-dir': { symlink: outside },
      'to-file': { symlink: path.join(outside, 'file') },
      'dangling': { symlink: '/nonexistent/x' },
    })
    fs.symlinkSync(path.join(outside, 'keep'), path.join(tree, 'share', 'deep-link'))
    rmTree(tree)
    expect(fs.existsSync(tree)).toBe(false)
    expect(fs.readFileSync(path.join(outside, 'keep', 'me'), 'utf8')).toBe('precious')
    expect(fs.readFileSync(path.join(outside, 'file'), 'utf8')).toBe('also precious')
  })

  it('removes names that are not UTF-8, given as escaped strings or found inside', () => {
    const dir = tempDir('viewctl-rm-')
    const raw = Buffer.concat([Buffer.from(`${dir}/odd-`), Buffer.from([0xff, 0xfe])])
    fs.mkdirSync(raw)
    fs.writeFileSync(Buffer.concat([raw, Buffer.from('/f-'), Buffer.from([0xc3, 0x28])]), 'x')
    rmTree(`${dir}/odd-\udcff\udcfe`)
    expect(fs.readdirSync(dir)).toEqual([])
  })

  it('finds a name that is not UTF-8 deep inside a tree given by a plain path, and removes it byte for byte', () => {
    const dir = tempDir('viewctl-rm-')
    const tree = writeTree(path.join(dir, 'tree'), { 'a/b/plain': 'x', 'a/other': 'y' })
    const odd = Buffer.concat([Buffer.from(`${tree}/a/b/bad-`), Buffer.from([0xc3, 0x28])])
    fs.writeFileSync(odd, 'z')
    fs.mkdirSync(Buffer.concat([odd, Buffer.from('-dir')]))
    fs.writeFileSync(Buffer.concat([odd, Buffer.from('-dir/f-'), Buffer.from([0xff])]), 'z')
    const listing = listForRemoval(path.join(tree, 'a', 'b'))!
    expect(listing.files).toEqual(['plain'])
    expect(listing.odd.map((b) => b.toString('latin1')).sort()).toEqual([odd.toString('latin1'), `${odd.toString('latin1')}-dir`])
    expect(listForRemoval(path.join(tree, 'a'))).toEqual({ files: ['other'], dirs: ['b'], odd: [] })
    rmTree(tree)
    expect(fs.readdirSync(dir)).toEqual([])
  })

  it('removes a directory that is not empty after all (a name appeared after it was listed)', () => {
    const dir = tempDir('viewctl-rm-')
    const tree = writeTree(path.join(dir, 'tree'), { 'f1': '1', 'f2': '2' })
    const listing = listForRemoval(tree)!
    unlinkNames(tree, [...listing.files, 'gone-already'])
    writeTree(tree, { 'late/file': 'x', '.nfs0000abcd': 'y' }) // what an NFS client's silly rename leaves
    removeEmptyDir(tree)
    expect(fs.existsSync(tree)).toBe(false)
    expect(listForRemoval(tree)).toBeNull()
    expect(() => removeEmptyDir(tree)).not.toThrow()
  })

  it('is fine with a path that is gone, and removes a single file or link', () => {
    const dir = tempDir('viewctl-rm-')
    expect(() => rmTree(path.join(dir, 'nothing-here'))).not.toThrow()
    fs.writeFileSync(path.join(dir, 'f'), 'x')
    fs.symlinkSync(dir, path.join(dir, 'l'))
    rmTree(path.join(dir, 'f'))
    rmTree(path.join(dir, 'l'))
    expect(fs.readdirSync(dir)).toEqual([])
  })

  it('removes a deep tree without recursion limits', () => {
    const dir = tempDir('viewctl-rm-')
    let p = path.join(dir, 'deep')
    fs.mkdirSync(p)
    for (let i = 0; i < 300; i++) {
      p = path.join(p, 'd')
      fs.mkdirSync(p)
      fs.writeFileSync(path.join(p, 'f'), '')
    }
    rmTree(path.join(dir, 'deep'))
    expect(fs.readdirSync(dir)).toEqual([])
  })
})
