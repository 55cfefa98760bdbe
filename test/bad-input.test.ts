/**
 * Bad input (DESIGN §3, §5, §10), end to end through bin/viewctl: every kind
 * of wrong manifest is refused with the right exit code and one message that
 * names the file (and line:column), with no stack trace, and the view it
 * points at does not change. Also: --adopt of a real directory, and names
 * that are hostile to shells and to UTF-8.
 */
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { linkTarget, makePrefixes, tempDir, viewctl, writeManifest, writeTree } from './helpers.js'
import { assertCompleteGeneration, fullSnapshot, historyRecords, leftovers, noStackTrace, storeOf } from './view-checks.js'

/** A directory tree as data: relative path -> content, or '->target' for a symlink, '/' for a dir. */
function treeOf(dir: string): Record<string, string> {
  const out: Record<string, string> = {}
  const walk = (rel: string) => {
    for (const e of fs.readdirSync(path.join(dir, rel), { withFileTypes: true })) {
      const r = rel ? `${rel}/${e.name}` : e.name
      const abs = path.join(dir, r)
      if (e.isSymbolicLink()) out[r] = `->${fs.readlinkSync(abs)}`
      else if (e.isDirectory()) {
        out[r] = '/'
        walk(r)
      } else out[r] = fs.readFileSync(abs, 'utf8')
    }
  }
  walk('')
  return out
}

describe('bad input never touches the view', () => {
  let root = ''
  let view = ''
  let pkgs: string[] = []
  let prefixTrees: Record<string, string>[] = []

  beforeAll(() => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'viewctl-bad-input-'))
    pkgs = makePrefixes(path.join(root, 'p'), 2, 2)
    writeTree(path.join(root, 'p', 'clash'), { 'bin/pkg0-tool0': 'a different tool\n' })
    fs.writeFileSync(path.join(root, 'p', 'not-a-dir'), 'a file\n')
    view = path.join(root, 'view')
    const good = viewctl(['regenerate', writeManifest(root, `view: ${view}\npackages:\n  - ${pkgs[0]}\n  - ${pkgs[1]}\n`, 'good.yaml')])
    expect(good.code, good.stderr).toBe(0)
    prefixTrees = pkgs.map(treeOf)
  })
  afterAll(() => fs.rmSync(root, { recursive: true, force: true }))

  interface BadCase {
    name: string
    /** The manifest text; null: the file does not exist. */
    yaml: () => string | null
    exit: number
    code: string
    /** `line:column` the message must point at, or null when there is no position. */
    at: string | null
    says: RegExp
  }

  const cases: BadCase[] = [
    { name: 'invalid YAML', yaml: () => `view: ${view}\nlink: symlink: hard\npackages:\n  - ${pkgs[0]}\n`, exit: 2, code: 'MANIFEST_YAML', at: '2:7', says: /mapping/i },
    { name: 'unknown key', yaml: () => `view: ${view}\nlnk: symlink\npackages:\n  - ${pkgs[0]}\n`, exit: 2, code: 'MANIFEST_INVALID', at: '2:1', says: /lnk: unknown key/ },
    { name: 'wrong type (fold)', yaml: () => `view: ${view}\nfold: yes please\npackages:\n  - ${pkgs[0]}\n`, exit: 2, code: 'MANIFEST_INVALID', at: '2:7', says: /fold: must be true or false/ },
    { name: 'wrong type (packages)', yaml: () => `view: ${view}\npackages: ${pkgs[0]}\n`, exit: 2, code: 'MANIFEST_INVALID', at: '2:11', says: /packages: must be a list/ },
    { name: 'bad enum', yaml: () => `view: ${view}\nlink: softlink\npackages:\n  - ${pkgs[0]}\n`, exit: 2, code: 'MANIFEST_INVALID', at: '2:7', says: /link: must be one of symlink, hardlink, copy/ },
    { name: 'missing view', yaml: () => `packages:\n  - ${pkgs[0]}\n`, exit: 2, code: 'MANIFEST_INVALID', at: '1:1', says: /view/ },
    { name: 'missing prefix', yaml: () => `view: ${view}\npackages:\n  - ${pkgs[0]}\n  - ${root}/p/nope\n`, exit: 2, code: 'PREFIX_INVALID', at: '4:5', says: /p\/nope does not exist/ },
    { name: 'non-directory prefix', yaml: () => `view: ${view}\npackages:\n  - ${pkgs[0]}\n  - ${root}/p/not-a-dir\n`, exit: 2, code: 'PREFIX_INVALID', at: '4:5', says: /not-a-dir is not a directory/ },
    { name: 'glob matching nothing', yaml: () => `view: ${view}\npackages:\n  - ${pkgs[0]}\n  - glob: ${root}/p/zzz*\n`, exit: 2, code: 'GLOB_EMPTY', at: '4:11', says: /zzz\* matches no/ },
    { name: 'view inside a prefix (the prefix contains the view)', yaml: () => `view: ${view}\npackages:\n  - ${pkgs[0]}\n  - ${root}\n`, exit: 2, code: 'VIEW_INSIDE_PREFIX', at: '4:5', says: /contains the view/ },
    { name: 'view inside a prefix (view path under a prefix)', yaml: () => `view: ${pkgs[0]}/view\npackages:\n  - ${pkgs[0]}\n`, exit: 2, code: 'VIEW_INSIDE_PREFIX', at: '3:5', says: /view/ },
    { name: 'empty manifest', yaml: () => '', exit: 2, code: 'MANIFEST_INVALID', at: '1:1', says: /empty/ },
    { name: 'comments-only manifest', yaml: () => '# nothing here\n', exit: 2, code: 'MANIFEST_INVALID', at: '1:1', says: /empty/ },
    { name: 'missing manifest file', yaml: () => null, exit: 2, code: 'MANIFEST_NOT_FOUND', at: null, says: /does not exist/ },
    { name: 'env entry leading outside the view', yaml: () => `view: ${view}\nenv:\n  PATH: [bin, ../../../etc]\npackages:\n  - ${pkgs[0]}\n`, exit: 2, code: 'MANIFEST_INVALID', at: '3:15', says: /env\.PATH\[1\]: "\.\.\/\.\.\/\.\.\/etc" leads outside the view/ },
    { name: 'env entry hidden behind a subdirectory', yaml: () => `view: ${view}\nenv:\n  MANPATH:\n    - share/../../x\npackages:\n  - ${pkgs[0]}\n`, exit: 2, code: 'MANIFEST_INVALID', at: '4:7', says: /env\.MANPATH\[0\]: .* leads outside the view/ },
    { name: 'env entry with the list separator', yaml: () => `view: ${view}\nenv:\n  PATH: ["bin:/usr/local/evil"]\npackages:\n  - ${pkgs[0]}\n`, exit: 2, code: 'MANIFEST_INVALID', at: '3:10', says: /env\.PATH\[0\]: .* contains ':'/ },
    { name: 'gc.keep .inf', yaml: () => `view: ${view}\ngc:\n  keep: .inf\npackages:\n  - ${pkgs[0]}\n`, exit: 2, code: 'MANIFEST_INVALID', at: '3:9', says: /gc\.keep: must be a whole number \(got infinity\)/ },
    { name: 'gc.keep 1e400', yaml: () => `view: ${view}\ngc:\n  keep: 1e400\npackages:\n  - ${pkgs[0]}\n`, exit: 2, code: 'MANIFEST_INVALID', at: '3:9', says: /gc\.keep: must be a whole number/ },
    { name: 'gc.keep 2.5', yaml: () => `view: ${view}\ngc:\n  keep: 2.5\npackages:\n  - ${pkgs[0]}\n`, exit: 2, code: 'MANIFEST_INVALID', at: '3:9', says: /gc\.keep: must be an integer/ },
    { name: 'gc.ttl .inf', yaml: () => `view: ${view}\ngc:\n  ttl: .inf\npackages:\n  - ${pkgs[0]}\n`, exit: 2, code: 'MANIFEST_INVALID', at: '3:8', says: /gc\.ttl: must be a whole number/ },
    { name: 'priority .inf', yaml: () => `view: ${view}\npackages:\n  - path: ${pkgs[0]}\n    priority: .inf\n`, exit: 2, code: 'MANIFEST_INVALID', at: '4:15', says: /packages\[0\]\.priority: must be a whole number \(got infinity\)/ },
    { name: 'priority -1e400', yaml: () => `view: ${view}\npackages:\n  - path: ${pkgs[0]}\n    priority: -1e400\n`, exit: 2, code: 'MANIFEST_INVALID', at: '4:15', says: /packages\[0\]\.priority: must be a whole number/ },
    { name: 'priority 2.5', yaml: () => `view: ${view}\npackages:\n  - path: ${pkgs[0]}\n    priority: 2.5\n`, exit: 2, code: 'MANIFEST_INVALID', at: '4:15', says: /priority: must be an integer/ },
    { name: "the view's parent is a regular file", yaml: () => `view: ${root}/p/not-a-dir/view\npackages:\n  - ${pkgs[0]}\n`, exit: 2, code: 'VIEW_PATH_INVALID', at: '1:7', says: /not-a-dir is not a directory/ },
    { name: 'a view path with a colon', yaml: () => `view: ${root}/a:b\npackages:\n  - ${pkgs[0]}\n`, exit: 2, code: 'MANIFEST_INVALID', at: '1:7', says: /contains ':'/ },
    { name: 'a conflict', yaml: () => `view: ${view}\npackages:\n  - ${pkgs[0]}\n  - ${root}/p/clash\n`, exit: 3, code: 'CONFLICT', at: null, says: /bin\/pkg0-tool0/ },
  ]

  it.each(cases)('$name: exit $exit ($code), names the file, no stack trace, view unchanged', (c) => {
    const file = path.join(root, 'cases', `${c.name.replace(/\W+/g, '-')}.yaml`)
    fs.mkdirSync(path.dirname(file), { recursive: true })
    const text = c.yaml()
    if (text !== null) fs.writeFileSync(file, text)
    const before = fullSnapshot(view)

    const r = viewctl(['regenerate', file, '--json'])
    expect(r.code, r.stderr).toBe(c.exit)
    expect(r.json?.error?.code, r.stdout).toBe(c.code)
    expect(r.stderr).toMatch(/^viewctl: /)
    expect(r.stderr, 'the message names the manifest').toContain(c.at ? `${file}:${c.at}: ` : file)
    expect(r.stderr).toMatch(c.says)
    expect(r.stderr).toMatch(/\nhint: \S/)
    noStackTrace(r.stderr)
    if (c.code === 'CONFLICT') {
      expect(r.stderr).toContain(pkgs[0])
      expect(r.stderr).toContain(`${root}/p/clash`)
    }

    expect(fullSnapshot(view)).toEqual(before)
    expect(leftovers(view)).toEqual([])
    // Prefixes are read-only inputs, even when the bad view path lies inside one.
    expect(pkgs.map(treeOf)).toEqual(prefixTrees)
  })

  it.each(cases.filter((c) => c.code === 'MANIFEST_INVALID' && /^(env|gc)/.test(c.name)))('$name: status and verify given the manifest refuse it too (exit 2, at its line), the view unchanged', (c) => {
    const file = path.join(root, 'cases', `look-${c.name.replace(/\W+/g, '-')}.yaml`)
    fs.mkdirSync(path.dirname(file), { recursive: true })
    fs.writeFileSync(file, c.yaml() as string)
    const before = fullSnapshot(view)
    for (const args of [['status', file], ['verify', file], ['verify', file, '--repair']]) {
      const r = viewctl([...args, '--json'])
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(2)
      expect(r.json?.error?.code, r.stdout).toBe('MANIFEST_INVALID')
      expect(r.stderr).toContain(`${file}:${c.at}: `)
      expect(r.stderr).toMatch(c.says)
      noStackTrace(r.stderr)
    }
    expect(fullSnapshot(view)).toEqual(before)
    // the control: the same view through a good manifest, and a missing prefix does not stop a look at it
    const good = writeManifest(path.dirname(file), `view: ${view}\npackages:\n  - ${pkgs[0]}\n  - ${root}/p/gone\n`, 'look-good.yaml')
    expect(viewctl(['status', good]).code).toBe(0)
    expect(viewctl(['verify', good]).code).toBe(0)
  })

  it('a real directory at the view path without --adopt: exit 1, suggests --adopt, the directory untouched', () => {
    const real = writeTree(path.join(root, 'real'), { 'bin/hello': 'hello from a real dir\n', 'share/doc/README': 'docs\n', 'lib/libx.so': { symlink: 'libx.so.1' } })
    const tree = treeOf(real)
    const file = writeManifest(root, `view: ${real}\npackages:\n  - ${pkgs[0]}\n`, 'real.yaml')
    const r = viewctl(['regenerate', file, '--json'])
    expect(r.code, r.stderr).toBe(1)
    expect(r.json?.error?.code).toBe('NOT_MANAGED')
    expect(r.stderr).toContain(real)
    expect(r.stderr).toContain('--adopt')
    noStackTrace(r.stderr)
    expect(fs.lstatSync(real).isDirectory()).toBe(true)
    expect(treeOf(real)).toEqual(tree)
    expect(fs.existsSync(storeOf(real)), 'a store was created for a refused view').toBe(false)
    expect(leftovers(real)).toEqual([])
  })
})

describe('--adopt', () => {
  it('moves a real directory into the store as generation 1, publishes generation 2, and rollback returns to the adopted tree', () => {
    const root = tempDir()
    const pkgs = makePrefixes(path.join(root, 'p'), 2, 2)
    const view = writeTree(path.join(root, 'view'), { 'bin/hello': 'adopted hello\n', 'share/doc/README': 'adopted docs\n', 'lib/libx.so': { symlink: 'libx.so.1' }, 'lib/libx.so.1': 'x\n' })
    const tree = treeOf(view)
    const file = writeManifest(root, `view: ${view}\npackages:\n${pkgs.map((p) => `  - ${p}\n`).join('')}`)

    const refused = viewctl(['regenerate', file])
    expect(refused.code, refused.stderr).toBe(1)
    expect(refused.stderr).toContain('--adopt')
    expect(treeOf(view)).toEqual(tree)

    const r = viewctl(['regenerate', file, '--adopt', '--json'])
    expect(r.code, r.stderr).toBe(0)
    expect(r.json.generation).toBe(2)
    expect(r.json.changed).toBe(true)
    expect(fs.lstatSync(view).isSymbolicLink()).toBe(true)
    const records = historyRecords(view)
    expect(records.map((x) => [x.generation, x.action])).toEqual([
      [1, 'adopt'],
      [2, 'regenerate'],
    ])
    const adoptedHash = records[0]!.hash
    expect(records[1]!.hash).toBe(r.json.hash)
    expect(adoptedHash).not.toBe(r.json.hash)
    // The adopted tree is a complete generation in the store, with the files it had.
    const adoptedDir = path.join(storeOf(view), adoptedHash)
    expect(fs.existsSync(path.join(adoptedDir, '.viewctl', 'meta.json'))).toBe(true)
    const adoptedFiles = Object.fromEntries(Object.entries(treeOf(adoptedDir)).filter(([k]) => k !== '.viewctl' && !k.startsWith('.viewctl/')))
    expect(adoptedFiles).toEqual(tree)
    // The view now shows the manifest's generation.
    expect(assertCompleteGeneration(view).hash).toBe(r.json.hash)
    expect(fs.existsSync(path.join(view, 'bin', 'hello'))).toBe(false)
    expect(fs.readFileSync(path.join(view, 'bin', 'pkg0-tool0'), 'utf8')).toBe('#!/bin/sh\necho pkg0 0\n')
    expect(leftovers(view)).toEqual([])

    const back = viewctl(['rollback', view, '--json'])
    expect(back.code, back.stderr).toBe(0)
    expect(back.json.to).toBe(1)
    expect(linkTarget(view)).toBe(`._view/${adoptedHash}`)
    expect(fs.readFileSync(path.join(view, 'bin', 'hello'), 'utf8')).toBe('adopted hello\n')
    expect(fs.readFileSync(path.join(view, 'share', 'doc', 'README'), 'utf8')).toBe('adopted docs\n')
    expect(fs.readlinkSync(path.join(view, 'lib', 'libx.so'))).toBe('libx.so.1')
    assertCompleteGeneration(view)
    const verify = viewctl(['verify', view])
    expect(verify.code, verify.stdout + verify.stderr).toBe(0)
  })
})

describe('hostile names', () => {
  it('a directory named with U+FFFD holding a name that is not UTF-8: the plan (one component at a time) and verify (a whole target) spell it alike', () => {
    const root = tempDir()
    const prefix = path.join(root, 'p')
    // d<U+FFFD> is valid UTF-8; x<FF> is not: the target read back whole holds both
    const dir = Buffer.concat([Buffer.from(`${prefix}/share/d`), Buffer.of(0xef, 0xbf, 0xbd)])
    fs.mkdirSync(dir, { recursive: true })
    fs.writeFileSync(Buffer.concat([dir, Buffer.from('/x'), Buffer.of(0xff)]), 'x\n')
    fs.writeFileSync(Buffer.concat([dir, Buffer.from('/plain')]), 'plain\n')
    const view = path.join(root, 'view')
    const file = writeManifest(root, `view: ${view}\nfold: false\npackages: [${JSON.stringify(prefix)}]\n`)
    expect(viewctl(['regenerate', file]).code).toBe(0)
    const verify = viewctl(['verify', view, '--json'])
    expect(verify.code, verify.stdout + verify.stderr).toBe(0)
    expect(verify.json.ok).toBe(true)
  })

  it('spaces, a newline, a tab, quotes, a leading dash and non-UTF-8 bytes: regenerate and verify exit 0, every name reachable through the view', () => {
    const root = tempDir()
    const b = (s: string) => Buffer.from(s, 'utf8')
    // Prefix directories whose own paths have a space and a leading dash.
    const p1 = path.join(root, 'my prefix')
    const p2 = path.join(root, '-dash prefix')
    const names: Buffer[] = [
      b('with space'),
      b('new\nline'),
      b('tab\there'),
      b('-leading-dash'),
      b('--help'),
      b('quote"and\\backslash'),
      Buffer.concat([b('latin1-'), Buffer.of(0xe9, 0x74, 0xe9)]),
      Buffer.concat([b('bad-'), Buffer.of(0xff, 0xfe), b('.bin')]),
    ]
    const badDir = Buffer.concat([b('share/'), Buffer.of(0xe9), b('t'), Buffer.of(0xe9)])
    const join = (...parts: (string | Buffer)[]) => Buffer.concat(parts.map((x) => (typeof x === 'string' ? b(x) : x)))
    fs.mkdirSync(join(p1, '/bin'), { recursive: true })
    fs.mkdirSync(join(p1, '/', badDir), { recursive: true })
    for (const n of names) {
      fs.writeFileSync(join(p1, '/bin/', n), join('content of ', n))
      fs.writeFileSync(join(p1, '/', badDir, '/', n), join('deep ', n))
    }
    writeTree(p2, { 'bin/other tool': 'other\n' })

    for (const fold of [false, true]) {
      const view = path.join(root, fold ? 'folded' : 'flat')
      const file = writeManifest(root, `view: ${view}\nfold: ${fold}\npackages:\n  - ${JSON.stringify(p1)}\n  - ${JSON.stringify(p2)}\n`, `${fold ? 'folded' : 'flat'}.yaml`)
      const r = viewctl(['regenerate', file, '--json'])
      expect(r.code, r.stderr).toBe(0)
      expect(r.json.warnings).toEqual([])
      assertCompleteGeneration(view)
      for (const n of names) {
        const inView = join(view, '/bin/', n)
        const st = fs.lstatSync(inView)
        expect(st.isSymbolicLink(), `bin/${JSON.stringify(n.toString('latin1'))}`).toBe(true)
        expect(fs.readlinkSync(inView, { encoding: 'buffer' }).equals(join(p1, '/bin/', n)), `bin/${n.toString('latin1')} points at its source`).toBe(true)
        expect(fs.readFileSync(inView).equals(join('content of ', n))).toBe(true)
        const deep = join(view, '/', badDir, '/', n)
        fs.lstatSync(deep)
        expect(fs.readFileSync(deep).equals(join('deep ', n))).toBe(true)
      }
      expect(fs.readFileSync(path.join(view, 'bin', 'other tool'), 'utf8')).toBe('other\n')
      const verify = viewctl(['verify', view, '--json'])
      expect(verify.code, verify.stdout + verify.stderr).toBe(0)
      expect(verify.json.ok).toBe(true)
      // flat: bin, share, share/<é>t<é> and 2 × names + "other tool"; folded: bin, its links, and share as one link
      expect(verify.json.checked).toBe(fold ? names.length + 3 : 2 * names.length + 4)
    }
  })
})

describe("a view path that collides with another view's store", () => {
  /** The store and every generation tree of `view`, as data. */
  function storeTree(view: string): Record<string, string> {
    return treeOf(storeOf(view))
  }

  it('a view at ._x, with x built: exit 2 (STORE_COLLISION), --adopt refused too, x and its store untouched', () => {
    const root = tempDir()
    const pkgs = makePrefixes(path.join(root, 'p'), 2, 2)
    const x = path.join(root, 'x')
    expect(viewctl(['regenerate', writeManifest(root, `view: ${x}\npackages:\n  - ${pkgs[0]}\n`, 'x.yaml')]).code).toBe(0)
    const before = { x: fullSnapshot(x), store: storeTree(x) }
    const clash = writeManifest(root, `view: ${storeOf(x)}\npackages:\n  - ${pkgs[1]}\n`, 'clash.yaml')
    for (const extra of [[], ['--adopt']]) {
      const r = viewctl(['regenerate', clash, '--json', ...extra])
      expect(r.code, r.stderr).toBe(2)
      expect(r.json?.error?.code).toBe('STORE_COLLISION')
      expect(r.stderr).toContain(`${storeOf(x)} is the store of the view ${x}`)
      expect(r.stderr).not.toContain('--adopt')
      noStackTrace(r.stderr)
      expect({ x: fullSnapshot(x), store: storeTree(x) }).toEqual(before)
      assertCompleteGeneration(x)
    }
    expect(fs.existsSync(storeOf(storeOf(x))), 'no store was made for the refused view').toBe(false)
  })

  it('a view y, with ._y built: exit 2 (STORE_COLLISION), nothing written into ._y\'s generation', () => {
    const root = tempDir()
    const pkgs = makePrefixes(path.join(root, 'p'), 2, 2)
    const hidden = path.join(root, '._y')
    expect(viewctl(['regenerate', writeManifest(root, `view: ${hidden}\npackages:\n  - ${pkgs[0]}\n`, 'hidden.yaml')]).code).toBe(0)
    const seen = assertCompleteGeneration(hidden)
    const before = { view: fullSnapshot(hidden), tree: treeOf(seen.dir) }
    const y = path.join(root, 'y')
    const r = viewctl(['regenerate', writeManifest(root, `view: ${y}\npackages:\n  - ${pkgs[1]}\n`, 'y.yaml'), '--json'])
    expect(r.code, r.stderr).toBe(2)
    expect(r.json?.error?.code).toBe('STORE_COLLISION')
    expect(r.stderr).toContain(`the store path ${hidden} of ${y} is itself a view`)
    noStackTrace(r.stderr)
    expect({ view: fullSnapshot(hidden), tree: treeOf(seen.dir) }).toEqual(before)
    expect(fs.existsSync(y)).toBe(false)
  })

  it('a view inside a generation or inside a store: exit 2 (STORE_COLLISION), nothing created there', () => {
    const root = tempDir()
    const pkgs = makePrefixes(path.join(root, 'p'), 2, 2)
    const x = path.join(root, 'x')
    expect(viewctl(['regenerate', writeManifest(root, `view: ${x}\npackages:\n  - ${pkgs[0]}\n`, 'x.yaml')]).code).toBe(0)
    const before = { x: fullSnapshot(x), store: storeTree(x) }
    for (const [view, says] of [
      [path.join(x, 'inner'), /lies inside generation [0-9a-f]{12} of the view/],
      [path.join(storeOf(x), 'inner'), /lies inside the store .* of the view/],
    ] as const) {
      const r = viewctl(['regenerate', writeManifest(root, `view: ${view}\npackages:\n  - ${pkgs[1]}\n`, 'inner.yaml'), '--json'])
      expect(r.code, r.stderr).toBe(2)
      expect(r.json?.error?.code).toBe('STORE_COLLISION')
      expect(r.stderr).toMatch(says)
      expect({ x: fullSnapshot(x), store: storeTree(x) }).toEqual(before)
    }
  })
})

describe('hints that fit the directory', () => {
  it('status of /tmp, of a plain folder and of the manifest\'s folder: exit 2, no --adopt suggested', () => {
    const root = tempDir()
    const folder = path.join(root, 'folder')
    fs.mkdirSync(path.join(folder, 'notes'), { recursive: true })
    for (const dir of [os.tmpdir(), folder, root]) {
      const r = viewctl(['status', dir, '--json'])
      expect(r.code, r.stderr).toBe(2)
      expect(r.json?.error?.code).toBe('NOT_A_VIEW')
      expect(r.stderr).toContain(`${dir} is a real directory`)
      expect(r.stderr).not.toContain('--adopt')
    }
    // an old view (a tree of bin/, lib/ …) is still offered it
    const old = writeTree(path.join(root, 'old'), { 'bin/tool': 'x\n' })
    const r = viewctl(['status', old])
    expect(r.code).toBe(2)
    expect(r.stderr).toContain('--adopt')
  })

  it("a manifest whose view is its own folder: no --adopt suggested, and --adopt refused; the folder untouched", () => {
    const root = tempDir()
    const pkgs = makePrefixes(path.join(root, 'p'), 1, 2)
    const folder = writeTree(path.join(root, 'here'), { 'bin/tool': 'x\n' })
    const file = writeManifest(folder, `view: .\npackages:\n  - ${pkgs[0]}\n`)
    const tree = treeOf(folder)
    for (const extra of [[], ['--adopt']]) {
      const r = viewctl(['regenerate', file, '--json', ...extra])
      expect(r.code, r.stderr).toBe(1)
      expect(r.json?.error?.code).toBe('NOT_MANAGED')
      expect(r.stderr).toContain(`it holds the manifest ${file}`)
      expect(r.stderr).not.toContain('pass --adopt')
      expect(treeOf(folder)).toEqual(tree)
      expect(fs.existsSync(storeOf(folder))).toBe(false)
    }
  })

  it("a view path below a regular file: exit 2 (VIEW_PATH_INVALID) for readers too, no raw ENOTDIR", () => {
    const root = tempDir()
    fs.writeFileSync(path.join(root, 'file'), 'x\n')
    for (const cmd of ['status', 'list', 'verify', 'rollback', 'gc']) {
      const r = viewctl([cmd, path.join(root, 'file', 'view'), '--json'])
      expect(r.code, `${cmd}: ${r.stderr}`).toBe(2)
      expect(r.json?.error?.code).toBe('VIEW_PATH_INVALID')
      expect(r.stderr).toContain(`${path.join(root, 'file')} is not a directory`)
      expect(r.stderr).not.toMatch(/ENOTDIR|readlink/)
    }
    expect(fs.readFileSync(path.join(root, 'file'), 'utf8')).toBe('x\n')
  })
})
