/**
 * The real module tools for the modules suite: Lmod (Debian's `lmod`
 * package, which .ci/run installs) and Environment Modules. Debian's
 * `environment-modules` conflicts with `lmod`, so it is not installed: its
 * package is downloaded and unpacked by .ci/run (`apt-get download`, `dpkg
 * -x`) into a cache directory, and its `modulecmd.tcl` runs with tclsh, as
 * its own init script does. A test makes no connection beyond this machine.
 *
 * A tool that is missing is a skip with the reason printed, except where it
 * can be had: as root with apt-get (CI), where .ci/run gets it, a missing
 * tool fails the suite.
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
  const cmd = findModulecmd(root)
  if (cmd === null) {
    // A test makes no connection beyond this machine: .ci/run downloads and unpacks the package.
    const why = `environment-modules is not unpacked in ${root} (.ci/run does it: apt-get download environment-modules, dpkg -x into ${root}/root)`
    if (canInstall()) throw new Error(why)
    return why
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
