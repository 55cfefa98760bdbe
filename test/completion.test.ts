/**
 * Shell completion and the man page, both generated from the command table.
 * bash: the real completion function called with COMP_WORDS/COMP_CWORD;
 * fish: `complete -C` on the real script; zsh: `zsh -n`. Generation numbers
 * come from the real `viewctl __complete generations`, which bin/viewctl
 * answers without loading the command line.
 */
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { spawnSync } from 'node:child_process'
import { beforeAll, describe, expect, it } from 'vitest'
import { BIN, ROOT, tempDir, viewctl, writeManifest, writeTree } from './helpers.js'
import { COMMANDS as ALL_COMMANDS, commandName } from '../src/cli/spec.js'
import { flagsOf } from '../src/cli/completion/table.js'

const NODE = process.execPath
/** The commands people type; hidden ones (receive) are neither completed nor in the manual. */
const COMMANDS = ALL_COMMANDS.filter((c) => !c.hidden)
const has = (cmd: string) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0

/** A directory on PATH holding `viewctl`, as users have it. */
function onPath(dir = tempDir('viewctl-bin-')): string {
  fs.writeFileSync(path.join(dir, 'viewctl'), `#!/bin/sh\nexec ${JSON.stringify(NODE)} ${JSON.stringify(BIN)} "$@"\n`, { mode: 0o755 })
  return dir
}

interface Fixture {
  base: string
  view: string
  bin: string
}

/** `base`: where to build (default: a fresh directory, removed when the test finishes). */
function fixture(base = fs.realpathSync(tempDir('viewctl-comp-'))): Fixture {
  writeTree(path.join(base, 'p'), { 'bin/x': 'x' })
  writeTree(path.join(base, 'q'), { 'bin/y': 'y' })
  const a = writeManifest(base, `view: ./my view\npackages: [${JSON.stringify(path.join(base, 'p'))}]\ngc: {auto: false}\n`, 'a.yaml')
  const b = writeManifest(base, `view: ./my view\npackages: [${JSON.stringify(path.join(base, 'q'))}]\ngc: {auto: false}\n`, 'b.yml')
  for (const m of [a, b, a]) expect(viewctl(['regenerate', m]).code).toBe(0)
  expect(viewctl(['pin', path.join(base, 'my view'), '2']).code).toBe(0)
  fs.writeFileSync(path.join(base, 'notes.txt'), '')
  fs.mkdirSync(path.join(base, '.bin'))
  return { base, view: path.join(base, 'my view'), bin: onPath(path.join(base, '.bin')) }
}

describe('bash: the completion function, called as bash calls it', () => {
  let f: Fixture
  let script: string
  beforeAll(() => {
    const base = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'viewctl-comp-')))
    f = fixture(base)
    script = viewctl(['completion', 'bash']).stdout
    return () => fs.rmSync(base, { recursive: true, force: true })
  })

  /** COMPREPLY for the words typed so far (the last one is where the cursor is). */
  function complete(words: string[]): string[] {
    const program = `source /dev/stdin <<'EOF'\n${script}\nEOF\nCOMP_WORDS=("$@"); COMP_CWORD=$((\${#COMP_WORDS[@]} - 1)); _viewctl; printf '%s\\n' "\${COMPREPLY[@]}"`
    const r = spawnSync('bash', ['--norc', '--noprofile', '-c', program, 'bash', ...words], { cwd: f.base, encoding: 'utf8', env: { PATH: `${f.bin}:/usr/bin:/bin`, HOME: f.base } })
    expect(r.stderr).toBe('')
    return r.stdout.split('\n').filter(Boolean).sort()
  }

  it('is valid bash', () => {
    expect(spawnSync('bash', ['-n'], { input: script }).status).toBe(0)
  })

  it('completes the commands, and the global options before one', () => {
    expect(complete(['viewctl', ''])).toEqual(COMMANDS.map(commandName).sort())
    expect(complete(['viewctl', 'ro'])).toEqual(['rollback'])
    expect(complete(['viewctl', 're'])).toEqual(['regenerate']) // not receive, which push runs on the other host
    expect(complete(['viewctl', '--j'])).toEqual(['--json'])
  })

  it("completes every command's own options and the global ones, as the command table has them", () => {
    for (const c of COMMANDS) {
      const got = complete(['viewctl', commandName(c), '--'])
      for (const f of flagsOf(c.options ?? {})) expect(got, `${commandName(c)} ${f.flag}`).toContain(f.flag)
      for (const g of ['--json', '--quiet', '--debug', '--help']) expect(got).toContain(g)
    }
    expect(complete(['viewctl', 'regenerate', '--'])).not.toContain('--lock')
    const regenerate = COMMANDS.find((c) => commandName(c) === 'regenerate')!
    const negated = flagsOf(regenerate.options ?? {}).map((f) => f.flag).filter((f) => f.startsWith('--no'))
    expect(negated.length).toBeGreaterThan(0)
    expect(complete(['viewctl', 'regenerate', '--no']).sort()).toEqual([...new Set(['--no-lock', ...negated])].sort())
  })

  it('completes manifests (*.yaml, *.yml) and directories for regenerate, and choices of options', () => {
    expect(complete(['viewctl', 'regenerate', ''])).toEqual(['a.yaml', 'b.yml', 'my view', 'p', 'q'])
    // hidden names only when asked for
    expect(complete(['viewctl', 'regenerate', '.'])).toEqual(expect.arrayContaining(['._my view', '.bin']))
    expect(complete(['viewctl', 'activate', 'x', '--shell', ''])).toEqual(['bash', 'csh', 'fish', 'sh', 'zsh'])
    expect(complete(['viewctl', 'module', 'x', '--format', ''])).toEqual(['lua', 'tcl'])
    expect(complete(['viewctl', 'completion', ''])).toEqual(['bash', 'fish', 'zsh'])
  })

  it('completes generation numbers of the view on the line, from viewctl itself', () => {
    expect(complete(['viewctl', 'rollback', f.view, '--to', ''])).toEqual(['1', '2', '3'])
    // --to=<TAB> and --to=2<TAB>: bash splits at '=' (COMP_WORDBREAKS)
    expect(complete(['viewctl', 'rollback', f.view, '--to', '='])).toEqual(['1', '2', '3'])
    expect(complete(['viewctl', 'rollback', f.view, '--to', '=', '2'])).toEqual(['2'])
    expect(complete(['viewctl', 'pin', f.view, ''])).toEqual(['1', '2', '3'])
    expect(complete(['viewctl', 'unpin', path.join(f.base, 'a.yaml'), '2'])).toEqual(['2'])
    expect(complete(['viewctl', 'diff', f.view, '1', ''])).toEqual(['1', '2', '3'])
    expect(complete(['viewctl', 'gc', f.view, '--generation', ''])).toEqual(['1', '2', '3'])
    expect(complete(['viewctl', 'switch', '--dry-run', f.view, ''])).toEqual(['1', '2', '3'])
    // no target yet, or one that is no view: nothing, and no error on the line
    expect(complete(['viewctl', 'pin', ''])).toEqual(['a.yaml', 'b.yml', 'my view', 'p', 'q'])
    expect(complete(['viewctl', 'rollback', path.join(f.base, 'nowhere'), '--to', ''])).toEqual([])
  })

  it('completes a command after exec --', () => {
    expect(complete(['viewctl', 'exec', f.view, '--', 'bas'])).toContain('bash')
  })
})

describe('__complete generations', () => {
  it('prints number and note a line, newest first, for a view or its manifest', () => {
    const f = fixture()
    const r = spawnSync(NODE, [BIN, '__complete', 'generations', f.view], { encoding: 'utf8' })
    expect(r.status).toBe(0)
    const lines = r.stdout.trim().split('\n').map((l) => l.split('\t'))
    expect(lines.map((l) => l[0])).toEqual(['3', '2', '1'])
    expect(lines[0]![1]).toMatch(/^current, \d{4}-\d\d-\d\d \d\d:\d\d$/)
    expect(lines[1]![1]).toMatch(/^pinned, /)
    const viaManifest = spawnSync(NODE, [BIN, '__complete', 'generations', path.join(f.base, 'b.yml')], { encoding: 'utf8' })
    expect(viaManifest.stdout).toBe(r.stdout)
    for (const args of [['generations', path.join(f.base, 'none')], ['generations'], ['other', f.view]]) {
      const n = spawnSync(NODE, [BIN, '__complete', ...args], { encoding: 'utf8' })
      expect([n.status, n.stdout, n.stderr]).toEqual([0, '', ''])
    }
  })

  it('is answered without loading the command line: it works from a copy that has none', () => {
    const f = fixture()
    const copy = tempDir('viewctl-copy-')
    fs.cpSync(path.join(ROOT, 'bin'), path.join(copy, 'bin'), { recursive: true })
    fs.cpSync(path.join(ROOT, 'dist', 'bundle'), path.join(copy, 'dist', 'bundle'), { recursive: true })
    fs.cpSync(path.join(ROOT, 'package.json'), path.join(copy, 'package.json'))
    fs.rmSync(path.join(copy, 'dist', 'bundle', 'main.js'))
    const r = spawnSync(NODE, [path.join(copy, 'bin', 'viewctl'), '__complete', 'generations', f.view], { encoding: 'utf8' })
    expect(r.stderr).toBe('')
    expect(r.stdout.split('\n')[0]).toMatch(/^3\t/)
    expect(spawnSync(NODE, [path.join(copy, 'bin', 'viewctl'), 'list', f.view], { encoding: 'utf8' }).status).not.toBe(0)
  })
})

describe('zsh and fish', () => {
  it.skipIf(!has('zsh'))('the zsh script is valid zsh and has one _arguments case per command', () => {
    const script = viewctl(['completion', 'zsh']).stdout
    const r = spawnSync('zsh', ['-n'], { input: script, encoding: 'utf8' })
    expect(r.stderr).toBe('')
    expect(r.status).toBe(0)
    expect(script.startsWith('#compdef viewctl\n')).toBe(true)
    for (const c of COMMANDS) expect(script).toContain(`    (${commandName(c)})\n      _arguments -S`)
  })

  it.skipIf(!has('fish'))('the fish script is valid fish and completes commands, options and generation numbers', () => {
    const f = fixture()
    const script = viewctl(['completion', 'fish']).stdout
    const file = path.join(f.base, 'viewctl.fish')
    fs.writeFileSync(file, script)
    expect(spawnSync('fish', ['-n', file], { encoding: 'utf8' }).status).toBe(0)
    const ask = (line: string) => {
      const r = spawnSync('fish', ['--no-config', '-c', `source ${JSON.stringify(file)}; complete -C ${JSON.stringify(line)}`], { cwd: f.base, encoding: 'utf8', env: { PATH: `${f.bin}:/usr/bin:/bin`, HOME: f.base } })
      expect(r.stderr).toBe('')
      return r.stdout.split('\n').filter(Boolean).map((l) => l.split('\t')[0]!)
    }
    expect(ask('viewctl rol')).toEqual(['rollback'])
    expect(ask('viewctl rollback --')).toEqual(expect.arrayContaining(['--to', '--dry-run', '--no-lock', '--json']))
    expect(ask('viewctl rollback my\\ view --to ').sort()).toEqual(['1', '2', '3'])
    expect(ask('viewctl pin my\\ view ').sort()).toEqual(['1', '2', '3'])
    expect(ask('viewctl regenerate ').sort()).toEqual(['a.yaml', 'b.yml', 'my view/', 'p/', 'q/'])
    expect(ask('viewctl status my').sort()).toEqual(['my view/'])
  })
})

describe('files generated at build time', () => {
  it('the completion files are what `viewctl completion` prints', () => {
    for (const [shell, file] of [['bash', 'viewctl'], ['zsh', '_viewctl'], ['fish', 'viewctl.fish']]) {
      expect(viewctl(['completion', shell!]).stdout).toBe(fs.readFileSync(path.join(ROOT, 'dist', 'completion', file!), 'utf8'))
    }
    const r = viewctl(['completion', 'tcsh', '--json'])
    expect(r.code).toBe(2)
    expect(r.json.error.code).toBe('USAGE')
    expect(viewctl(['completion'], { env: { SHELL: '/usr/bin/fish' } }).stdout).toContain('complete -c viewctl')
  })

  it.skipIf(!has('man'))('viewctl(1) is the man page package.json installs, and documents every command and option', () => {
    const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'))
    const page = path.join(ROOT, pkg.man)
    expect(fs.existsSync(page)).toBe(true)
    const r = spawnSync('man', ['--warnings', '-l', page], { encoding: 'utf8', env: { ...process.env, MANWIDTH: '200', MAN_KEEP_FORMATTING: '' } })
    expect(r.status).toBe(0)
    expect(r.stderr).toBe('')
    const text = r.stdout.replace(/.\x08/g, '')
    for (const c of COMMANDS) {
      expect(text).toContain(`viewctl ${commandName(c)}`)
      for (const f of flagsOf(c.options ?? {})) expect(text, `${commandName(c)} ${f.flag}`).toContain(f.flag)
    }
    expect(text).toContain('viewctl exec <target> -- <command> [argument …]')
    expect(text).toContain('EXIT STATUS')
    expect(text).not.toContain('viewctl receive')
  })
})
