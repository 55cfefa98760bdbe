/**
 * `viewctl module` against the real tools: Lmod with the Lua file and with
 * the Tcl file, Environment Modules with the Tcl file (test/module-tools.ts
 * finds or fetches them), each in a clean bash. The view lives under a
 * directory whose name holds spaces, `$`, brackets, quotes, a backslash and
 * `]]`, so every path goes through the files' quoting.
 */
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { spawnSync } from 'node:child_process'
import { beforeAll, describe, expect, it } from 'vitest'
import { BIN, tempDir, viewctl, writeManifest, writeTree } from './helpers.js'
import { environmentModules, inCleanBash, lmod, type Tool } from './module-tools.js'
import { luaString, tclWord } from '../src/modules/quote.js'

const NODE = process.execPath
/** The directory the view sits in: every character the two file formats must quote. */
const ODD = `odd dir $HOME [1] "q" \\ ]] {x`
const VARS = ['PATH', 'MANPATH', 'PKG_CONFIG_PATH', 'CMAKE_PREFIX_PATH'] as const

interface Fixture {
  base: string
  view: string
  manifest: string
  /** The same view with hello 2 instead of hello 1. */
  manifest2: string
}

/** `base`: a directory to build in (default: a fresh one, removed when the test finishes). */
function fixture(base = fs.realpathSync(tempDir('viewctl-mod-'))): Fixture {
  const page = (n: number) => `.TH HELLO 1\n.SH NAME\nhello \\- says hello ${n}\n`
  for (const n of [1, 2]) {
    writeTree(path.join(base, `hello-${n}`), {
      'bin/hello': { content: `#!/bin/sh\necho hello ${n}\n`, mode: 0o755 },
      'share/man/man1/hello.1': page(n),
      'lib/pkgconfig/hello.pc': `Name: hello\nVersion: ${n}\n`,
    })
  }
  const dir = path.join(base, ODD)
  fs.mkdirSync(dir)
  const yaml = (n: number) => `view: ./hpc\npackages: [${JSON.stringify(path.join(base, `hello-${n}`))}]\ngc: {auto: false}\n`
  const manifest = writeManifest(dir, yaml(1))
  const manifest2 = writeManifest(dir, yaml(2), 'env2.yaml')
  const r = viewctl(['regenerate', manifest])
  expect(r.code, r.stderr).toBe(0)
  return { base, view: path.join(dir, 'hpc'), manifest, manifest2 }
}

/** A manual page `man -w` finds in a clean shell with MANPATH unset: the system's pages, which loading the view must not hide. */
function systemPage(tool: Tool, cwd: string): string {
  const r = inCleanBash(tool, 'unset MANPATH; for p in ls man sh bash cat; do if man -w "$p" >/dev/null 2>&1; then echo "$p"; exit 0; fi; done; exit 1', cwd)
  if (r.code !== 0) throw new Error('man -w finds no system manual page (ls, man, sh, bash, cat) in a clean shell: install man-db and the manual pages (.ci/run does)')
  return r.stdout.trim()
}

/** The four variables, telling unset from empty. */
const SNAPSHOT = `snap() { for v in ${VARS.join(' ')}; do if [ -n "\${!v+x}" ]; then printf '%s=[%s]\\n' "$v" "\${!v}"; else printf '%s unset\\n' "$v"; fi; done; }`

function section(out: string, name: string): string {
  const m = new RegExp(`^@${name}\\n([\\s\\S]*?)^@end\\n`, 'm').exec(out)
  if (!m) throw new Error(`no @${name} section in:\n${out}`)
  return m[1]!
}

function line(out: string, name: string): string {
  const m = new RegExp(`^@${name} (.*)$`, 'm').exec(out)
  return m ? m[1]! : `(no @${name} line)`
}

const STATES: Array<[string, string]> = [
  ['unset', 'unset MANPATH'],
  ['empty', 'export MANPATH='],
  ['a trailing colon', "export MANPATH='/usr/share/lmod/lmod/share/man:'"],
  ['a doubled colon', "export MANPATH='/opt/other/man::/opt/more/man'"],
  ['a leading colon', "export MANPATH=':/opt/other/man'"],
  ['no empty entry', "export MANPATH='/usr/share/man:/opt/other/man'"],
]

const COMBINATIONS: Array<['lmod' | 'modules', 'lua' | 'tcl']> = [
  ['lmod', 'lua'],
  ['lmod', 'tcl'],
  ['modules', 'tcl'],
]

describe('quoting, read back by the languages themselves', () => {
  const nasty = ['plain', 'a b', '$HOME', '[1]', ']]', ']=]', 'x]', 'x]=', '"q"', "it's", '\\', 'tail\\', '{', '}', '{a', ';', '#x', 'tab\there', 'ünï']
  const lua = spawnSync('sh', ['-c', 'command -v lua'], { encoding: 'utf8' }).stdout.trim()
  const tclsh = spawnSync('sh', ['-c', 'command -v tclsh'], { encoding: 'utf8' }).stdout.trim()

  it.skipIf(!lua)('Lua long brackets give back every byte', () => {
    const program = nasty.map((s) => `io.write(${luaString(s)}, "\\0")`).join('\n')
    const r = spawnSync(lua, ['-'], { input: program, encoding: 'utf8' })
    expect(r.stderr).toBe('')
    expect(r.stdout.split('\0').slice(0, -1)).toEqual(nasty)
  })

  it.skipIf(!tclsh)('Tcl braces and backslashes give back every byte', () => {
    const program = 'fconfigure stdout -translation binary -encoding utf-8\n' + nasty.map((s) => `puts -nonewline ${tclWord(s)}; puts -nonewline "\\0"`).join('\n')
    const r = spawnSync(tclsh, [], { input: program, encoding: 'utf8' })
    expect(r.stderr).toBe('')
    expect(r.stdout.split('\0').slice(0, -1)).toEqual(nasty)
  })
})

for (const [toolName, format] of COMBINATIONS) {
  describe(`${toolName === 'lmod' ? 'Lmod' : 'Environment Modules'} with the ${format === 'lua' ? 'Lua' : 'Tcl'} file`, () => {
    const tool = toolName === 'lmod' ? lmod() : environmentModules()
    if (typeof tool === 'string') {
      it.skip(`skipped: ${tool}`, () => {})
      return
    }
    let f: Fixture
    let tree: string
    let sysPage: string
    beforeAll(() => {
      const base = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'viewctl-mod-')))
      f = fixture(base)
      tree = path.join(f.base, 'modulefiles')
      const r = viewctl(['module', f.view, '--dir', tree, '--format', format])
      expect(r.code, r.stderr).toBe(0)
      sysPage = systemPage(tool, f.base)
      return () => fs.rmSync(base, { recursive: true, force: true })
    })

    for (const [what, setState] of STATES) {
      it(`MANPATH ${what}: load, hello and its page from the view, the system's pages still found, a regenerate followed, unload gives every variable back byte for byte`, () => {
        // each case starts from generation 1 of the view
        expect(viewctl(['regenerate', f.manifest]).code).toBe(0)
        const script = `${SNAPSHOT}
${setState}
module use "$TREE"
echo @before; snap; echo @end
module load hpc 2>&1 || echo "@loadfailed"
echo "@hello $(hello 2>&1)"
echo "@manhello $(man -w hello 2>&1)"
echo "@mansys $(man -w "$SYSPAGE" 2>&1)"
"$NODE" "$BIN" regenerate "$MANIFEST2" >/dev/null 2>&1 || echo "@regenfailed"
hash -r
echo "@hello2 $(hello 2>&1)"
echo "@manhello2 $(man hello 2>/dev/null | grep -o 'says hello [0-9]')"
module unload hpc 2>&1
echo @after; snap; echo @end
echo "@mansysafter $(man -w "$SYSPAGE" 2>&1)"
echo "@marks $(env | grep -c '^__VIEWCTL_\\|^__LMOD_STACK_MANPATH=')"
`
        const r = inCleanBash(tool, script, f.base, { TREE: tree, SYSPAGE: sysPage, NODE, BIN, MANIFEST2: f.manifest2, MANWIDTH: '80' })
        expect(r.stdout, r.stderr).not.toContain('@loadfailed')
        expect(line(r.stdout, 'hello')).toBe('hello 1')
        expect(line(r.stdout, 'manhello')).toBe(path.join(f.view, 'share/man/man1/hello.1'))
        expect(line(r.stdout, 'mansys')).toMatch(/^\//)
        expect(r.stdout).not.toContain('@regenfailed')
        expect(line(r.stdout, 'hello2')).toBe('hello 2')
        expect(line(r.stdout, 'manhello2')).toBe('says hello 2')
        const before = section(r.stdout, 'before')
        const after = section(r.stdout, 'after')
        if (toolName === 'lmod' && what === 'empty') {
          // Lmod holds no empty value on its stack and sets none on unload: an empty MANPATH comes back unset (docs/modules.md)
          expect(after).toBe(before.replace('MANPATH=[]', 'MANPATH unset'))
        } else {
          expect(after).toBe(before)
        }
        expect(line(r.stdout, 'mansysafter')).toMatch(/^\//)
        expect(line(r.stdout, 'marks')).toBe('0')
      })
    }

    it('another module that changes MANPATH in between keeps its entries when the view is unloaded first', () => {
      expect(viewctl(['regenerate', f.manifest]).code).toBe(0)
      const other = path.join(f.base, `other-${format}`)
      fs.mkdirSync(path.join(other, 'gcc'), { recursive: true })
      if (format === 'lua') fs.writeFileSync(path.join(other, 'gcc', '1.lua'), 'prepend_path("MANPATH", "/opt/gcc/man")\n')
      else fs.writeFileSync(path.join(other, 'gcc', '1'), '#%Module1.0\nprepend-path MANPATH /opt/gcc/man\n')
      const script = `${SNAPSHOT}
export MANPATH=/usr/share/lmod/lmod/share/man:
module use "$TREE"; module use "$OTHER"
module load hpc; module load gcc
module unload hpc
echo "@manpath $MANPATH"
echo "@mansys $(man -w "$SYSPAGE" 2>&1)"
module unload gcc
echo "@marks $(env | grep -c '^__VIEWCTL_\\|^__LMOD_STACK_MANPATH=')"
module load hpc; module unload hpc
echo "@again $MANPATH"
`
      const r = inCleanBash(tool, script, f.base, { TREE: tree, OTHER: other, SYSPAGE: sysPage })
      const manpath = line(r.stdout, 'manpath').split(':')
      expect(manpath, r.stderr).toContain('/opt/gcc/man')
      expect(manpath).toContain('/usr/share/lmod/lmod/share/man')
      expect(manpath.some((e) => e.startsWith(f.view))).toBe(false)
      expect(manpath).toContain('') // still an empty entry: the system's pages
      expect(line(r.stdout, 'mansys')).toMatch(/^\//)
      expect(line(r.stdout, 'marks')).toBe('0')
      // a later load and unload still gives back what it found
      expect(line(r.stdout, 'again').split(':').filter(Boolean)).toEqual(['/usr/share/lmod/lmod/share/man'])
    })

    if (toolName === 'lmod') {
      it("a module already on Lmod's MANPATH stack (pushenv) loaded first: the view's pages and the system's are found; unloading both gives MANPATH back byte for byte", () => {
        expect(viewctl(['regenerate', f.manifest]).code).toBe(0)
        const other = path.join(f.base, `stack-${format}`)
        fs.mkdirSync(path.join(other, 'gcc'), { recursive: true })
        fs.writeFileSync(path.join(other, 'gcc', '1.lua'), 'pushenv("MANPATH", "/opt/gcc/man:")\n')
        const script = `
export MANPATH=/usr/share/lmod/lmod/share/man:
module use "$TREE"; module use "$OTHER"
module load gcc; module unload gcc
echo "@control $(env | grep '^__VIEWCTL_\\|^__LMOD_STACK_MANPATH=' | tr '\\n' ' ')"
module load gcc; module load hpc
echo "@loaded $MANPATH"
echo "@manhello $(man -w hello 2>&1)"
echo "@mansys $(man -w "$SYSPAGE" 2>&1)"
module unload hpc
echo "@onlygcc $MANPATH"
echo "@mansysgcc $(man -w "$SYSPAGE" 2>&1)"
module unload gcc
echo "@none $MANPATH"
echo "@marks $(env | grep '^__VIEWCTL_\\|^__LMOD_STACK_MANPATH=' | tr '\\n' ' ')"
`
        const r = inCleanBash(tool, script, f.base, { TREE: tree, OTHER: other, SYSPAGE: sysPage })
        expect(line(r.stdout, 'loaded').split(':'), r.stderr).toContain(path.join(f.view, 'share/man'))
        expect(line(r.stdout, 'manhello')).toBe(path.join(f.view, 'share/man/man1/hello.1'))
        expect(line(r.stdout, 'mansys')).toMatch(/^\//)
        // The stack is the other module's, so the view's file prepends; Lmod's prepend onto a trailing ':' writes '::',
        // and its removal keeps that: one more empty entry, which man reads as the same system path (docs/modules.md)
        expect(line(r.stdout, 'onlygcc')).toBe('/opt/gcc/man::')
        expect(line(r.stdout, 'mansysgcc')).toMatch(/^\//)
        expect(line(r.stdout, 'none')).toBe('/usr/share/lmod/lmod/share/man:')
        // what is left in the environment is what the other module leaves on its own (Lmod's stack), nothing of viewctl's
        expect(line(r.stdout, 'marks')).toBe(line(r.stdout, 'control'))
        expect(line(r.stdout, 'marks')).not.toContain('__VIEWCTL_')
      })
    }

    it('module help and whatis say what the module is and how exec pins one generation', () => {
      const r = inCleanBash(tool, 'module use "$TREE"; module help hpc 2>&1; module whatis hpc 2>&1', f.base, { TREE: tree })
      const out = r.stdout + r.stderr
      expect(out).toContain(`viewctl exec ${f.view} -- <command>`)
      expect(out).toContain(`the viewctl view ${f.view}`)
    })

    it('the tree: current is the default, --generations adds files pinned to one generation each', () => {
      const g = fixture()
      const gens = path.join(g.base, 'modulefiles')
      expect(viewctl(['regenerate', g.manifest2]).code).toBe(0) // generation 2 (hello 2) is current
      const w = viewctl(['module', g.view, '--dir', gens, '--format', format, '--generations', '--json'])
      expect(w.code, w.stderr).toBe(0)
      const suffix = format === 'lua' ? '.lua' : ''
      expect(fs.readdirSync(path.join(gens, 'hpc')).sort()).toEqual(['.modulerc', `1${suffix}`, `2${suffix}`, `current${suffix}`].sort())
      const script = `
module use "$TREE"
module load hpc; echo "@default $(hello)"; module unload hpc
module load hpc/1; echo "@one $(hello)"
module load hpc/current 2>&1; echo "@both $(hello)"
module unload hpc
echo "@path $PATH"
`
      const r = inCleanBash(tool, script, g.base, { TREE: gens })
      expect(line(r.stdout, 'default'), r.stderr).toBe('hello 2')
      expect(line(r.stdout, 'one')).toBe('hello 1')
      // Lmod swaps one version of a name for another; Environment Modules refuses the second (conflict), never both at once
      expect(line(r.stdout, 'both')).toBe(toolName === 'lmod' ? 'hello 2' : 'hello 1')
      expect(line(r.stdout, 'path')).toBe('/usr/local/bin:/usr/bin:/bin')
    })
  })
}

/** A view `v` of one file, in a fresh directory. */
function smallView(): { base: string; view: string } {
  const base = fs.realpathSync(tempDir('viewctl-modbad-'))
  writeTree(path.join(base, 'p'), { 'bin/x': 'x' })
  writeManifest(base, `view: ./v\npackages: [${JSON.stringify(path.join(base, 'p'))}]\n`)
  expect(viewctl(['regenerate', path.join(base, 'env.yaml')]).code).toBe(0)
  return { base, view: path.join(base, 'v') }
}

describe('module: refusals', () => {
  it('a view path holding a colon or a newline is refused with exit 2, and nothing is written', () => {
    for (const bad of ['with:colon', 'with\nnewline']) {
      const base = fs.realpathSync(tempDir('viewctl-modbad-'))
      writeTree(path.join(base, 'p'), { 'bin/x': 'x' })
      const good = path.join(base, 'good')
      fs.mkdirSync(good)
      writeManifest(good, `view: ./v\npackages: [${JSON.stringify(path.join(base, 'p'))}]\n`)
      expect(viewctl(['regenerate', path.join(good, 'env.yaml')]).code).toBe(0)
      // the pair (link and store) moves as a whole: the view link is relative
      const moved = path.join(base, bad)
      fs.renameSync(good, moved)
      const view = path.join(moved, 'v')
      for (const format of ['lua', 'tcl']) {
        const r = viewctl(['module', view, '--format', format])
        expect(r.code).toBe(2)
        expect(r.stdout).toBe('')
        expect(r.stderr).toContain(bad.includes(':') ? "contains ':'" : 'contains a newline')
        const tree = path.join(base, `tree-${format}`)
        const t = viewctl(['module', view, '--format', format, '--dir', tree, '--json'])
        expect(t.code).toBe(2)
        expect(t.json.error.code).toBe('UNFIT_PATH')
        expect(fs.existsSync(path.join(tree, 'v'))).toBe(false)
      }
      expect(fs.readlinkSync(view)).toMatch(/^\._v\/[0-9a-f]+$/)
    }
  })

  it('a module name that is not a plain name, and a module directory that is a symlink, are refused', () => {
    const { base, view } = smallView()
    for (const name of ['../x', 'a b', '-x', '']) {
      const r = viewctl(['module', view, '--name', name])
      expect(r.code, name).toBe(2)
      expect(r.stdout).toBe('')
    }
    const tree = path.join(base, 'tree')
    const elsewhere = path.join(base, 'elsewhere')
    fs.mkdirSync(tree)
    fs.mkdirSync(elsewhere)
    fs.symlinkSync(elsewhere, path.join(tree, 'v'))
    const r = viewctl(['module', view, '--dir', tree, '--json'])
    expect(r.code).toBe(1)
    expect(r.json.error.code).toBe('UNSAFE_PATH')
    expect(fs.readdirSync(elsewhere)).toEqual([])
  })

  it('a modulefile that is a symlink is replaced, never written through', () => {
    const { base, view } = smallView()
    const tree = path.join(base, 'tree')
    fs.mkdirSync(path.join(tree, 'v'), { recursive: true })
    const victim = path.join(base, 'victim')
    fs.writeFileSync(victim, 'precious\n')
    fs.symlinkSync(victim, path.join(tree, 'v', 'current.lua'))
    const r = viewctl(['module', view, '--dir', tree, '--format', 'lua'])
    expect(r.code, r.stderr).toBe(0)
    expect(fs.readFileSync(victim, 'utf8')).toBe('precious\n')
    expect(fs.lstatSync(path.join(tree, 'v', 'current.lua')).isFile()).toBe(true)
  })
})

describe('module: the files', () => {
  it('point at the view path unresolved, or with --canonical at the current tree; --family and --json', () => {
    const f = fixture()
    const lua = viewctl(['module', f.view, '--format', 'lua', '--family', 'views'])
    expect(lua.code, lua.stderr).toBe(0)
    expect(lua.stdout).toContain(`prepend_path("PATH", ${luaString(path.join(f.view, 'bin'))})`)
    expect(lua.stdout).toContain(`family(${luaString('views')})`)
    expect(lua.stdout).not.toContain('._hpc')
    const tcl = viewctl(['module', f.view, '--format', 'tcl'])
    // under Lmod, a quote or backslash in a path is escaped once more for its translation into Lua
    expect(tcl.stdout).toContain(`prepend-path PATH [viewctl_path ${tclWord(path.join(f.view, 'bin'))}]`)
    const canonical = viewctl(['module', f.view, '--canonical', '--json'])
    expect(canonical.code).toBe(0)
    expect(canonical.json.root).toBe(fs.realpathSync(f.view))
    expect(canonical.json.text).toContain(luaString(path.join(fs.realpathSync(f.view), 'bin')))
    expect(canonical.json).toMatchObject({ view: f.view, name: 'hpc', format: 'lua', canonical: true, generation: 1 })
  })

  it('the default format follows the module tool of the calling shell', () => {
    const f = fixture()
    const env = (vars: Record<string, string>) => ({ LMOD_CMD: '', MODULES_CMD: '', ...vars })
    expect(viewctl(['module', f.view, '--json'], { env: env({ MODULES_CMD: '/usr/lib/modulecmd.tcl' }) }).json.format).toBe('tcl')
    expect(viewctl(['module', f.view, '--json'], { env: env({ LMOD_CMD: '/usr/share/lmod/lmod/libexec/lmod' }) }).json.format).toBe('lua')
    expect(viewctl(['module', f.view, '--json'], { env: env({}) }).json.format).toBe('lua')
  })
})
