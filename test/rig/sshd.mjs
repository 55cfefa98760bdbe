/**
 * A private OpenSSH server on a free loopback port, for tests and benches
 * that need a real remote end (sshfs mounts, pushes over ssh).
 *
 * Everything lives in one fresh temporary directory: a host key and a user
 * key made with ssh-keygen, an sshd_config that listens on 127.0.0.1 only,
 * accepts only that user key (no passwords, no PAM, no strict modes, so it
 * runs the same as root in CI and as an ordinary user), serves sftp from
 * sshd itself (internal-sftp), and an ssh_config for clients that trusts
 * only this server's host key under a fixed alias (so a client reaching it
 * through a proxy on another port still checks the key). sshd runs in the
 * foreground (-D) as a child of this process and is stopped by its pid.
 */
import { spawn, spawnSync } from 'node:child_process'
import fs from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { atCleanup, reaped, stopProcessSync } from './cleanup.mjs'

/** The host key's name in known_hosts and ssh_config. */
export const HOST_ALIAS = 'viewctl-rig'

/** What the rig needs from the system, or why it cannot run here. */
export function sshdUnavailable() {
  const missing = []
  if (!findSshd()) missing.push('sshd (apt-get install openssh-server)')
  for (const tool of ['ssh', 'ssh-keygen']) if (!onPath(tool)) missing.push(`${tool} (apt-get install openssh-client)`)
  return missing.length ? `not installed: ${missing.join(', ')}` : null
}

export function onPath(cmd) {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0
}

/** sshd must be started by its absolute path (it re-executes itself for every connection). */
function findSshd() {
  for (const p of ['/usr/sbin/sshd', '/usr/local/sbin/sshd', '/sbin/sshd']) if (fs.existsSync(p)) return p
  const r = spawnSync('sh', ['-c', 'command -v sshd'], { encoding: 'utf8' })
  return r.status === 0 ? r.stdout.trim() : null
}

/** A port nothing listens on right now (the kernel's pick); the caller retries if someone takes it first. */
export async function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address()
      server.close(() => resolve(port))
    })
  })
}

/** Resolves once something accepts connections on the port, or rejects when `failed()` says why not. */
async function waitForListener(port, failed, timeoutMs, address = '127.0.0.1') {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const why = failed()
    if (why) throw new Error(why)
    const ok = await new Promise((resolve) => {
      const socket = net.connect(port, address)
      socket.once('connect', () => {
        socket.destroy()
        resolve(true)
      })
      socket.once('error', () => resolve(false))
    })
    if (ok) return
    if (Date.now() > deadline) throw new Error(`nothing listens on ${address}:${port} after ${timeoutMs} ms`)
    await new Promise((r) => setTimeout(r, 25))
  }
}

function keygen(file) {
  const r = spawnSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', HOST_ALIAS, '-f', file], { encoding: 'utf8' })
  if (r.status !== 0) throw new Error(`ssh-keygen -f ${file} failed: ${r.stderr || r.error?.message}`)
}

/**
 * Start sshd. Returns { dir, port, address, user, identity, sshConfig, pid, sshArgs(port?), stop() }.
 * `sshArgs()` are the arguments an `ssh` client needs to reach it (add the
 * command); `await stop()` (also done at exit) ends sshd and removes the
 * directory.
 *
 * A second "host" on the same machine: `wrap` is a command that ends by
 * exec'ing its arguments (sshd's command line), e.g. `ip netns exec <ns>`
 * for a network namespace, or an `unshare --mount` script that mounts over
 * a directory first; `address` is where sshd listens (an address inside
 * that namespace). sshd's pid stays the wrapper's, so stop() still ends it.
 */
export async function startSshd({ label = 'vc15', wrap = [], address = '127.0.0.1' } = {}) {
  const why = sshdUnavailable()
  if (why) throw new Error(`cannot start sshd: ${why}`)
  const sshd = findSshd()
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `viewctl-${label}-sshd-`))
  const removeDir = atCleanup(() => fs.rmSync(dir, { recursive: true, force: true }))
  const hostKey = path.join(dir, 'host_key')
  const identity = path.join(dir, 'user_key')
  keygen(hostKey)
  keygen(identity)
  const authorized = path.join(dir, 'authorized_keys')
  fs.copyFileSync(`${identity}.pub`, authorized)
  const knownHosts = path.join(dir, 'known_hosts')
  fs.writeFileSync(knownHosts, `${HOST_ALIAS} ${fs.readFileSync(`${hostKey}.pub`, 'utf8').trim()}\n`)
  const user = os.userInfo().username
  const sshConfig = path.join(dir, 'ssh_config')
  fs.writeFileSync(
    sshConfig,
    [
      'Host *',
      `  User ${user}`,
      `  IdentityFile ${identity}`,
      '  IdentitiesOnly yes',
      `  HostKeyAlias ${HOST_ALIAS}`,
      `  UserKnownHostsFile ${knownHosts}`,
      '  GlobalKnownHostsFile /dev/null',
      '  StrictHostKeyChecking yes',
      '  BatchMode yes',
      '  ControlMaster no',
      '  ControlPath none',
      '  LogLevel ERROR',
      '',
    ].join('\n'),
  )
  // root's sshd wants its privilege separation directory (the Debian service makes it at boot)
  if (process.getuid?.() === 0) fs.mkdirSync('/run/sshd', { recursive: true, mode: 0o755 })

  for (let attempt = 1; ; attempt++) {
    const port = await freePort()
    const config = path.join(dir, 'sshd_config')
    fs.writeFileSync(
      config,
      [
        `Port ${port}`,
        `ListenAddress ${address}`,
        `HostKey ${hostKey}`,
        `PidFile ${path.join(dir, 'sshd.pid')}`,
        `AuthorizedKeysFile ${authorized}`,
        'PubkeyAuthentication yes',
        'PasswordAuthentication no',
        'KbdInteractiveAuthentication no',
        'UsePAM no',
        'StrictModes no',
        'PermitRootLogin prohibit-password',
        `AllowUsers ${user}`,
        'Subsystem sftp internal-sftp',
        // many sshfs mounts and ssh sessions connect at once in tests
        'MaxStartups 100',
        'MaxSessions 100',
        'LogLevel ERROR',
        '',
      ].join('\n'),
    )
    const command = [...wrap, sshd, '-D', '-e', '-f', config]
    const child = spawn(command[0], command.slice(1), { stdio: ['ignore', 'ignore', 'pipe'] })
    let stderr = ''
    child.stderr.on('data', (d) => (stderr += d))
    let exited = null
    child.once('exit', (code, signal) => (exited = signal ?? code))
    child.once('error', (err) => (exited = err.message))
    const stopSshd = atCleanup(() => stopProcessSync(child.pid))
    try {
      await waitForListener(port, () => (exited !== null ? `sshd exited (${exited}): ${stderr.trim()}` : null), 15_000, address)
    } catch (err) {
      stopSshd()
      if (attempt < 5 && /Address already in use|Cannot bind/i.test(stderr)) continue
      removeDir()
      throw err
    }
    child.stderr.unref?.()
    child.unref()
    const sshArgs = (p = port) => ['-F', sshConfig, '-p', String(p), address]
    const rig = {
      dir,
      port,
      address,
      user,
      identity,
      sshConfig,
      pid: child.pid,
      sshArgs,
      /** sshd's own complaints so far (LogLevel ERROR). */
      log: () => stderr,
      /** End sshd (and wait until it is reaped), remove its directory. */
      async stop() {
        stopSshd()
        await reaped(child)
        removeDir()
      },
    }
    // check that a client gets in before anyone relies on it
    const probe = spawnSync('ssh', [...sshArgs(), 'true'], { encoding: 'utf8', timeout: 30_000 })
    if (probe.status !== 0) {
      await rig.stop()
      throw new Error(`ssh to the private sshd failed (exit ${probe.status}): ${probe.stderr.trim()} ${stderr.trim()}`)
    }
    return rig
  }
}
