/**
 * The real module tools for the modules suite: Lmod (Debian's `lmod`
 * package, which .ci/run installs) and Environment Modules. Debian's
 * `environment-modules` conflicts with `lmod`, so it is not installed: its
 * package is downloaded with `apt-get download` and unpacked with `dpkg -x`
 * into a cache directory (the same place .ci/run fills), and its
 * `modulecmd.tcl` runs with tclsh, as its own init script does.
 *
 * A tool that is missing is a skip with the reason printed, except where it
 * can be had: as root with apt-get (CI), a failure to get it fails the suite.
 * Each shell starts clean: `env -i` plus HOME and PATH, `bash --noprofile
 * --norc`, then the tool's init.
 */
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { spawnSync } from 'node:child_process'

export const LMOD_INIT = '/usr/share/lmod/lmod/init/bash'
export const BASE_PATH = '/usr/local/bin:/usr/bin:/bin'

const isRoot = process.getuid?.() === 0

/** Where .ci/run and this helper keep the unpacked environment-modules package. */
export function toolCache(): string {
  return process.env.VIEWCTL_TEST_CACHE ?? path.join(process.env.XDG_CACHE_HOME ?? path.join(os.homedir(), '.cache'), 'viewctl-test')
}

function has(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' }).status === 0
}

/** Can this machine get a missing package (root with apt-get)? Then a missing tool is a failure, not a skip. */
export function canInstall(): boolean {
  return isRoot && has('apt-get') && has('dpkg')
}

export interface Tool {
  name: 'lmod' | 'modules'
  /** Shell lines that define `module` in a clean bash. */
  init: string
}

export function lmod(): Tool | string {
  if (!fs.existsSync(LMOD_INIT)) {
    const why = `Lmod is not installed (${LMOD_INIT} missing; apt-get install lmod, as .ci/run does)`
    if (canInstall()) throw new Error(why)
    return why
  }
  return { name: 'lmod', init: `. ${LMOD_INIT} >/dev/null` }
}

/** modulecmd.tcl of environment-modules, unpacked into the cache if it is not there yet. */
export function environmentModules(): Tool | string {
  if (!has('tclsh')) {
    const why = 'tclsh is not installed (Environment Modules runs on it; apt-get install tcl)'
    if (canInstall()) throw new Error(why)
    return why
  }
  const root = path.join(toolCache(), 'environment-modules')
  let cmd = findModulecmd(root)
  if (cmd === null) {
    if (!has('apt-get') || !has('dpkg')) return 'environment-modules is not unpacked in ' + root + ' and apt-get/dpkg are not there to get it'
    const got = unpackEnvironmentModules(root)
    if ('error' in got) {
      if (canInstall()) throw new Error(got.error)
      return got.error
    }
    cmd = got.modulecmd
  }
  return { name: 'modules', init: `eval "$(tclsh '${cmd}' bash autoinit)"` }
}

function findModulecmd(root: string): string | null {
  for (const rel of ['usr/lib/x86_64-linux-gnu/modulecmd.tcl', 'usr/lib/aarch64-linux-gnu/modulecmd.tcl', 'usr/lib/modulecmd.tcl', 'usr/share/modules/libexec/modulecmd.tcl']) {
    const p = path.join(root, 'root', rel)
    if (fs.existsSync(p)) return fs.realpathSync(p)
  }
  return null
}

/** `apt-get download environment-modules` and `dpkg -x` it into `root`, renamed into place whole. */
function unpackEnvironmentModules(root: string): { modulecmd: string } | { error: string } {
  fs.mkdirSync(path.dirname(root), { recursive: true })
  const work = fs.mkdtempSync(path.join(path.dirname(root), '.em-'))
  try {
    const dl = spawnSync('apt-get', ['download', 'environment-modules'], { cwd: work, encoding: 'utf8' })
    const deb = fs.readdirSync(work).find((f) => f.endsWith('.deb'))
    if (deb === undefined) return { error: `apt-get download environment-modules failed: ${(dl.stderr || dl.stdout).trim().split('\n').pop()}` }
    fs.mkdirSync(path.join(work, 'root'))
    const x = spawnSync('dpkg', ['-x', deb, 'root'], { cwd: work, encoding: 'utf8' })
    if (x.status !== 0) return { error: `dpkg -x ${deb} failed: ${x.stderr.trim()}` }
    try {
      fs.renameSync(work, root)
    } catch (err) {
      // another run unpacked it meanwhile
      if (!['ENOTEMPTY', 'EEXIST'].includes((err as NodeJS.ErrnoException).code ?? '')) throw err
    }
    const modulecmd = findModulecmd(root)
    return modulecmd === null ? { error: `no modulecmd.tcl in the unpacked environment-modules package (${root})` } : { modulecmd }
  } finally {
    fs.rmSync(work, { recursive: true, force: true })
  }
}

export interface ShellRun {
  code: number
  stdout: string
  stderr: string
}

/** A clean bash (env -i, no profile, no rc) that runs `tool`'s init and then `script`; `env` adds variables. */
export function inCleanBash(tool: Tool, script: string, cwd: string, env: Record<string, string> = {}): ShellRun {
  const vars = Object.entries({ HOME: cwd, PATH: BASE_PATH, ...env }).map(([k, v]) => `${k}=${v}`)
  const r = spawnSync('env', ['-i', ...vars, 'bash', '--noprofile', '--norc', '-c', `${tool.init}\n${script}`], { cwd, encoding: 'utf8', timeout: 120_000 })
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr }
}
