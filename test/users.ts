/**
 * Real users for the many-users suites (DESIGN §13): a group and its members
 * made with groupadd/useradd for one test file, viewctl run as one of them
 * with setpriv, and a copy of viewctl that they can run.
 *
 * The checkout may sit in a directory only its owner can enter, so another
 * user cannot run bin/viewctl from it: `publicBin()` copies what the
 * command needs (bin/, dist/bundle/, package.json, schemas/ and the
 * production packages of node_modules, the lock addon among them) into a
 * world-readable temporary directory, once per test file.
 *
 * Names are unique to the suite that uses them (vc14…), so that suites running
 * in parallel never share a user; a user left by a killed run is removed and
 * made again.
 */
import fs from 'node:fs'
import path from 'node:path'
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { jsonOutput, publicInstall, tempDir, type PublicInstall, type RunResult } from './helpers.js'
import { finishedWithin } from './view-checks.js'

export const isRoot = process.getuid?.() === 0

function has(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' }).status === 0
}

/** Why real users cannot be made here, or null when they can (root on Linux with useradd and setpriv). */
export function whyNoUsers(): string | null {
  if (process.platform !== 'linux') return 'real users are made with useradd and setpriv, which need Linux'
  if (!isRoot) return 'making real users (useradd) needs root; CI runs the suite as root'
  for (const cmd of ['useradd', 'userdel', 'groupadd', 'groupdel', 'setpriv']) if (!has(cmd)) return `${cmd} is not installed`
  return null
}

export interface TestUser {
  name: string
  uid: number
  gid: number
}

export interface TestUsers {
  group: { name: string; gid: number }
  user(name: string): TestUser
  /** Delete the users and the groups (also those of a killed earlier run). */
  remove(): void
}

function idOf(flag: '-u' | '-g', name: string): number | null {
  const r = spawnSync('id', [flag, name], { encoding: 'utf8' })
  return r.status === 0 ? Number(r.stdout.trim()) : null
}

function groupExists(name: string): boolean {
  return spawnSync('getent', ['group', name], { encoding: 'utf8' }).status === 0
}

function must(cmd: string, args: string[]): void {
  const r = spawnSync(cmd, args, { encoding: 'utf8' })
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr || r.error}`)
}

function removeNames(group: string, names: string[]): void {
  for (const n of names) {
    if (idOf('-u', n) !== null) spawnSync('userdel', [n], { encoding: 'utf8' })
    if (groupExists(n)) spawnSync('groupdel', [n], { encoding: 'utf8' })
  }
  if (groupExists(group)) spawnSync('groupdel', [group], { encoding: 'utf8' })
}

/**
 * A group `group` whose members are `members`, and users `others` outside it.
 * Each user has a primary group of its own name (so that a file takes the
 * shared group only where the store hands it on), no home directory and no
 * login shell.
 */
export function makeUsers(group: string, members: string[], others: string[] = []): TestUsers {
  const all = [...members, ...others]
  removeNames(group, all)
  must('groupadd', [group])
  for (const n of all) must('useradd', ['-M', '-U', '-s', '/usr/sbin/nologin', ...(members.includes(n) ? ['-G', group] : []), n])
  const users = new Map<string, TestUser>()
  for (const n of all) users.set(n, { name: n, uid: idOf('-u', n)!, gid: idOf('-g', n)! })
  const gid = Number(spawnSync('getent', ['group', group], { encoding: 'utf8' }).stdout.split(':')[2])
  return {
    group: { name: group, gid },
    user(name) {
      const u = users.get(name)
      if (!u) throw new Error(`no test user ${name}`)
      return u
    },
    remove: () => removeNames(group, all),
  }
}

let install: (() => PublicInstall) | null = null

/**
 * Call once at the top of a test file that runs viewctl as test users: they
 * run the world-readable copy publicInstall makes (helpers.ts), removed after
 * the file's tests.
 */
export function usePublicInstall(): void {
  install = publicInstall()
}

function publicBin(): string {
  if (install === null) throw new Error('call usePublicInstall() at the top of the test file')
  return install().bin
}

/** A temporary directory every test user can enter and read (mkdtemp makes 0700 ones); removed after the test. */
export function sharedTempDir(prefix = 'vc14-'): string {
  const dir = tempDir(prefix)
  fs.chmodSync(dir, 0o755)
  return dir
}

export interface AsUser {
  /** null: run as this process's user (root), with the same copy of viewctl. */
  user: TestUser | null
  /** The umask the command starts with (default 022, the usual login umask). */
  umask?: number
}

function argvAs(as: AsUser, argv: string[]): { cmd: string; args: string[] } {
  const umask = (as.umask ?? 0o022).toString(8).padStart(3, '0')
  const inner = ['sh', '-c', `umask ${umask} && exec "$0" "$@"`, ...argv]
  if (as.user === null) return { cmd: inner[0]!, args: inner.slice(1) }
  return { cmd: 'setpriv', args: [`--reuid=${as.user.uid}`, `--regid=${as.user.gid}`, '--init-groups', '--', ...inner] }
}

function envAs(as: AsUser): NodeJS.ProcessEnv {
  const env = { ...process.env }
  if (as.user !== null) Object.assign(env, { HOME: '/nonexistent', USER: as.user.name, LOGNAME: as.user.name })
  return env
}

/** Run any command as `as.user`. */
export function runCommandAs(as: AsUser, argv: string[], opts: { cwd?: string; input?: string } = {}): { code: number; stdout: string; stderr: string } {
  const { cmd, args } = argvAs(as, argv)
  const r = spawnSync(cmd, args, { encoding: 'utf8', env: envAs(as), cwd: opts.cwd, input: opts.input, timeout: 120_000 })
  return { code: r.status ?? -1, stdout: r.stdout ?? '', stderr: (r.stderr ?? '') + (r.error ? String(r.error) : '') }
}

/** Run viewctl (the portable copy) as `as.user`. */
export function viewctlAs(as: AsUser, args: string[]): RunResult {
  const r = runCommandAs(as, [process.execPath, publicBin(), ...args])
  return { ...r, json: jsonOutput(args, r.stdout) }
}

/** Start viewctl as `as.user` without waiting. */
export function viewctlAsAsync(as: AsUser, args: string[]): ChildProcess {
  const { cmd, args: argv } = argvAs(as, [process.execPath, publicBin(), ...args])
  return spawn(cmd, argv, { env: envAs(as), stdio: ['ignore', 'pipe', 'pipe'] })
}

/** viewctlAs, without blocking. */
export async function viewctlAsRun(as: AsUser, args: string[]): Promise<RunResult> {
  const r = await finishedWithin(viewctlAsAsync(as, args), 120_000)
  return { code: r.code ?? -1, stdout: r.stdout, stderr: r.stderr, json: jsonOutput(args, r.stdout) }
}

/** Start a node script as `as.user`, run from the portable copy (its node_modules are found from there). */
export function nodeScriptAs(as: AsUser, script: string): ChildProcess {
  const dir = install!().root
  const file = path.join(dir, `script-${process.pid}-${Math.random().toString(16).slice(2)}.cjs`)
  fs.writeFileSync(file, script, { mode: 0o644 })
  const { cmd, args } = argvAs(as, [process.execPath, file])
  return spawn(cmd, args, { env: envAs(as), stdio: ['ignore', 'pipe', 'pipe'], cwd: dir })
}

/** Owner, group and permission bits of a path (not following a symlink). */
export function modeOf(p: string): { uid: number; gid: number; mode: number } {
  const st = fs.lstatSync(p)
  return { uid: st.uid, gid: st.gid, mode: st.mode & 0o7777 }
}

/**
 * A node script (run with nodeScriptAs) that opens `file` and tries to take an
 * OFD lock on it with the lock addon viewctl uses: it prints one line, `held`,
 * `busy` or `open <errno>`, and then keeps the descriptor (and the lock) until
 * it is killed.
 */
export function lockHolderScript(file: string, opts: { shared: boolean }): string {
  return `
const fs = require('fs')
const { tryLock } = require('fs-native-extensions')
let fd
try {
  fd = fs.openSync(${JSON.stringify(file)}, ${opts.shared ? "'r'" : "'r+'"})
} catch (err) {
  console.log('open ' + err.code)
  setInterval(() => {}, 1000)
  return
}
console.log(tryLock(fd, { shared: ${opts.shared} }) ? 'held' : 'busy')
setInterval(() => {}, 1000)
`
}

/** The first line a child prints on stdout. */
export function firstLine(child: ChildProcess): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = ''
    child.stdout!.setEncoding('utf8').on('data', (d: string) => {
      text += d
      const nl = text.indexOf('\n')
      if (nl >= 0) resolve(text.slice(0, nl))
    })
    child.on('error', reject)
    child.on('exit', (code) => resolve(`exited ${code}: ${text}`))
  })
}
