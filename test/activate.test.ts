/**
 * `viewctl activate`: the printed code is evaluated by real shells (bash,
 * sh, and zsh, fish, csh when installed; .ci/run installs them, and under
 * CI=true a missing shell fails the suite instead of being skipped).
 */
import fs from 'node:fs'
import path from 'node:path'
import { spawnSync } from 'node:child_process'
import { describe, expect, it } from 'vitest'
import { BIN, tempDir, viewctl, writeManifest, writeTree } from './helpers.js'
import { cshQuote, fishQuote, shQuote } from '../src/shell/activate.js'

const NODE = process.execPath
const BASE_PATH = '/usr/local/bin:/usr/bin:/bin'
/** A directory name that breaks naive quoting in every shell. */
const NASTY = `it's a "dir" $HOME !x  y`

function which(cmd: string): string | null {
  for (const dir of (process.env.PATH ?? '').split(':')) {
    const p = path.join(dir || '.', cmd)
    try {
      fs.accessSync(p, fs.constants.X_OK)
      return p
    } catch {
      // not here
    }
  }
  return null
}

interface Fixture {
  dir: string
  view: string
  store: string
  hash: string
}

function fixture(under = '', extra = ''): Fixture {
  const base = fs.realpathSync(tempDir('viewctl-act-'))
  const dir = under ? path.join(base, under) : base
  fs.mkdirSync(dir, { recursive: true })
  writeTree(path.join(base, 'prefix'), {
    'bin/tool': { content: '#!/bin/sh\necho tool ran\n', mode: 0o755 },
    'share/man/man1/tool.1': '.TH tool',
  })
  writeManifest(dir, `view: ./view\npackages: [${JSON.stringify(path.join(base, 'prefix'))}]\ngc: {auto: false}\n${extra}`)
  const r = viewctl(['regenerate', path.join(dir, 'env.yaml'), '--json'])
  expect(r.code, r.stderr).toBe(0)
  return { dir, view: path.join(dir, 'view'), store: path.join(dir, '._view'), hash: r.json.hash }
}

/** Run a shell script with a clean, known environment; `viewctl` in it is the real CLI. */
function shell(argv: string[], script: string, dir: string, env: NodeJS.ProcessEnv = {}) {
  const r = spawnSync(argv[0]!, [...argv.slice(1), script], {
    cwd: dir,
    encoding: 'utf8',
    env: { HOME: dir, PATH: BASE_PATH, VIEWCTL: `${NODE} ${BIN}`, ...env },
  })
  return { code: r.status, stdout: r.stdout, stderr: r.stderr }
}

// the activate line for each shell, run in the fixture's folder with the relative target `view`
const SH_FAMILY = {
  bash: { argv: ['bash', '-c'], eval: (args: string) => `eval "$($VIEWCTL activate view --shell bash ${args})"`, lookup: 'command -v tool' },
  sh: { argv: ['sh', '-c'], eval: (args: string) => `eval "$($VIEWCTL activate view --shell sh ${args})"`, lookup: 'command -v tool' },
  zsh: { argv: ['zsh', '-f', '-c'], eval: (args: string) => `eval "$(\${=VIEWCTL} activate view --shell zsh ${args})"`, lookup: 'whence -p tool' },
}

describe('activate for sh, bash and zsh', () => {
  for (const [name, sh] of Object.entries(SH_FAMILY)) {
    const has = which(name) !== null
    const title = (what: string) => (has ? `${name}: ${what}` : `${name}: ${what} — SKIPPED, ${name} is not installed`)
    if (!has && process.env.CI === 'true') {
      it(`${name} is installed (required under CI)`, () => {
        throw new Error(`${name} is not installed, so activate is untested for it; .ci/run installs zsh, fish and csh`)
      })
      continue
    }
    it.runIf(has)(title('puts the view first, finds its tools, and deactivate restores every variable exactly'), () => {
      const f = fixture()
      const script = [
        `before_path="$PATH"; before_pc="$PKG_CONFIG_PATH"`,
        sh.eval(''),
        sh.lookup,
        'tool',
        'printf "%s\\n" "$PATH" "$MANPATH" "$PKG_CONFIG_PATH" "$CMAKE_PREFIX_PATH"',
        sh.eval(''), // twice: nothing added again
        'printf "%s\\n" "$PATH"',
        sh.eval('--deactivate'),
        '[ "$PATH" = "$before_path" ] && echo path-restored',
        '[ "$PKG_CONFIG_PATH" = "$before_pc" ] && echo pc-restored',
        'echo "MANPATH=${MANPATH-unset} CMAKE_PREFIX_PATH=${CMAKE_PREFIX_PATH-unset}"',
      ].join('\n')
      const r = shell(sh.argv, script, f.dir, { PKG_CONFIG_PATH: '/opt/pc' })
      expect(r.stderr).toBe('')
      expect(r.code).toBe(0)
      expect(r.stdout.split('\n')).toEqual([
        `${f.view}/bin/tool`,
        'tool ran',
        `${f.view}/bin:${BASE_PATH}`,
        `${f.view}/share/man:`,
        `${f.view}/lib/pkgconfig:${f.view}/share/pkgconfig:/opt/pc`,
        f.view,
        `${f.view}/bin:${BASE_PATH}`,
        'path-restored',
        'pc-restored',
        'MANPATH=unset CMAKE_PREFIX_PATH=unset',
        '',
      ])
    })

    it.runIf(has)(title('quotes paths with spaces, quotes, $ and !'), () => {
      const f = fixture(NASTY)
      const r = shell(sh.argv, `${sh.eval('')}\n${sh.lookup}\ntool`, f.dir)
      expect(r.stderr).toBe('')
      expect(r.stdout).toBe(`${f.view}/bin/tool\ntool ran\n`)
    })
  }

  it('--canonical names the generation tree; deactivate removes it even after the view moved on', () => {
    const f = fixture()
    const canonical = path.join(fs.realpathSync(f.store), f.hash)
    const script = [
      'eval "$($VIEWCTL activate view --shell bash --canonical)"',
      'command -v tool',
      // the view moves to a new generation
      `printf 'view: ./view\\npackages: [%s, %s]\\ngc: {auto: false}\\n' "$PREFIX" "$EXTRA" > env.yaml`,
      '$VIEWCTL regenerate env.yaml >/dev/null',
      'command -v tool',
      'eval "$($VIEWCTL activate view --shell bash --deactivate)"',
      'printf "%s\\n" "$PATH" "${MANPATH-unset}"',
    ].join('\n')
    const extra = path.join(f.dir, 'extra')
    writeTree(extra, { 'bin/other': { content: '#!/bin/sh\n', mode: 0o755 } })
    const r = shell(['bash', '-c'], script, f.dir, { PREFIX: path.join(f.dir, 'prefix'), EXTRA: extra })
    expect(r.stderr).toBe('')
    expect(r.stdout.split('\n')).toEqual([`${canonical}/bin/tool`, `${canonical}/bin/tool`, BASE_PATH, 'unset', ''])
  })
})

describe('activate for fish and csh', () => {
  const hasFish = which('fish') !== null
  const hasCsh = which('csh') !== null
  if (process.env.CI === 'true') {
    it('fish and csh are installed (required under CI)', () => {
      expect({ fish: hasFish, csh: hasCsh }).toEqual({ fish: true, csh: true })
    })
  }
  const fishTitle = (what: string) => (hasFish ? `fish: ${what}` : `fish: ${what} — SKIPPED, fish is not installed`)
  const cshTitle = (what: string) => (hasCsh ? `csh: ${what}` : `csh: ${what} — SKIPPED, csh is not installed`)

  it.runIf(hasFish)(fishTitle('sets PATH as a list, keeps MANPATH\'s trailing colon on export, and deactivates exactly'), () => {
    const f = fixture()
    const script = [
      'set before $PATH',
      '$VIEWCTL activate view --shell fish | source',
      'command -v tool',
      'count $PATH',
      'env | grep "^MANPATH="',
      'env | grep "^PATH="',
      '$VIEWCTL activate view --shell fish --deactivate | source',
      'test (string join : $PATH) = (string join : $before); and echo path-restored',
      'set -q MANPATH; or echo manpath-unset',
    ].join('\n')
    const r = shell(['fish', '--no-config', '-c'], script.replaceAll('$VIEWCTL', `${NODE} ${BIN}`), f.dir)
    expect(r.stderr).toBe('')
    expect(r.stdout.split('\n')).toEqual([
      `${f.view}/bin/tool`,
      String(BASE_PATH.split(':').length + 1),
      `MANPATH=${f.view}/share/man:`,
      `PATH=${f.view}/bin:${BASE_PATH}`,
      'path-restored',
      'manpath-unset',
      '',
    ])
  })

  it.runIf(hasFish)(fishTitle('quotes paths with spaces, quotes, $ and !'), () => {
    const f = fixture(NASTY)
    const r = shell(['fish', '--no-config', '-c'], `${NODE} ${BIN} activate view --shell fish | source\ncommand -v tool\ntool`, f.dir)
    expect(r.stderr).toBe('')
    expect(r.stdout).toBe(`${f.view}/bin/tool\ntool ran\n`)
  })

  it.runIf(hasCsh)(cshTitle('setenv for eval, finds the tools, and deactivates exactly'), () => {
    const f = fixture()
    const script = [
      'set before = "$PATH"',
      `eval "\`${NODE} ${BIN} activate view --shell csh\`"`,
      'which tool',
      'printenv MANPATH',
      `eval "\`${NODE} ${BIN} activate view --shell csh --deactivate\`"`,
      'if ("$PATH" == "$before") echo path-restored',
      'if (! $?MANPATH) echo manpath-unset',
    ].join('\n')
    const r = shell(['csh', '-f', '-c'], script, f.dir)
    expect(r.stderr).toBe('')
    expect(r.stdout.split('\n')).toEqual([`${f.view}/bin/tool`, `${f.view}/share/man:`, 'path-restored', 'manpath-unset', ''])
  })

  it.runIf(hasCsh)(cshTitle('quotes paths with spaces, quotes, $ and !'), () => {
    const f = fixture(NASTY)
    const r = shell(['csh', '-f', '-c'], `eval "\`${NODE} ${BIN} activate view --shell csh\`"\nwhich tool\ntool`, f.dir)
    expect(r.stderr).toBe('')
    expect(r.stdout).toBe(`${f.view}/bin/tool\ntool ran\n`)
  })
})

describe('activate output', () => {
  it('chooses the shell from $SHELL, falling back to sh', () => {
    const f = fixture()
    const run = (shellPath: string | undefined) => viewctl(['activate', f.view], { env: { SHELL: shellPath, PATH: BASE_PATH, MANPATH: '/usr/share/man' } }).stdout.split('\n')[0]
    expect(run('/usr/bin/fish')).toBe(`set -gx PATH '${f.view}/bin' '/usr/local/bin' '/usr/bin' '/bin'`)
    expect(run('/bin/tcsh')).toBe(`setenv PATH '${f.view}/bin:${BASE_PATH}';`)
    expect(run('/bin/zsh')).toBe(`export PATH='${f.view}/bin:${BASE_PATH}'`)
    expect(run('/bin/dash')).toBe(`export PATH='${f.view}/bin:${BASE_PATH}'`)
    expect(run(undefined)).toBe(`export PATH='${f.view}/bin:${BASE_PATH}'`)
  })

  it('keeps an existing MANPATH after the view, and prints nothing for a variable that already has the entries', () => {
    const f = fixture()
    const r = viewctl(['activate', f.view, '--shell', 'sh'], {
      env: { PATH: `${f.view}/bin:${BASE_PATH}`, MANPATH: '/usr/share/man', PKG_CONFIG_PATH: undefined, CMAKE_PREFIX_PATH: f.view },
    })
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout).toBe(`export MANPATH='${f.view}/share/man:/usr/share/man'\nexport PKG_CONFIG_PATH='${f.view}/lib/pkgconfig:${f.view}/share/pkgconfig'\n`)
  })

  it('--json lists the variables and the script', () => {
    const f = fixture('', 'env:\n  PATH: [bin]\n')
    const r = viewctl(['activate', f.view, '--shell', 'bash', '--json'], { env: { PATH: BASE_PATH } })
    expect(r.code, r.stderr).toBe(0)
    expect(r.json).toEqual({
      view: f.view,
      root: f.view,
      shell: 'bash',
      generation: 1,
      hash: f.hash,
      deactivate: false,
      variables: [{ name: 'PATH', value: `${f.view}/bin:${BASE_PATH}` }],
      script: `export PATH='${f.view}/bin:${BASE_PATH}'\n`,
    })
  })

  it('refuses a path that is not a view', () => {
    const dir = fs.realpathSync(tempDir('viewctl-act-'))
    const r = viewctl(['activate', path.join(dir, 'nothing'), '--json'])
    expect(r.code).toBe(2)
    expect(r.json.error.code).toBe('NOT_A_VIEW')
  })

  it('quotes for each shell', () => {
    expect(shQuote(`a'b $c`)).toBe(`'a'\\''b $c'`)
    expect(fishQuote(`a'b\\c $d`)).toBe(`'a\\'b\\\\c $d'`)
    expect(cshQuote('PATH', `a'b!c`)).toBe(`'a'\\''b'\\!'c'`)
    expect(() => cshQuote('PATH', 'a\nb')).toThrow(/newline/)
  })
})
