/**
 * A shared filesystem on one machine: one export (a temporary directory, the
 * "server side") mounted several times with sshfs through a private sshd,
 * each mount behaving as one client of the kind a view meets on a cluster:
 *
 *   uncached  every lookup, attribute and listing asked of the server
 *             (sshfs dir_cache off, FUSE attribute/entry timeouts 0): a
 *             client with close-to-open freshness, as NFS gives;
 *   stale     sshfs's default caching (names, attributes and symlink targets
 *             kept for 20 s, FUSE timeouts 1 s): a client that serves old
 *             answers, as NFS does with long attribute caching or `nocto`;
 *   delayed   uncached, through a TCP proxy that holds every chunk `delayMs`
 *             in each direction: a client on a network where every
 *             metadata operation is a round trip.
 *
 * Mounts use `no_contain_symlinks` where sshfs has it (Debian's 3.7.3 turns
 * `contain_symlinks` on, and reading an absolute symlink through the mount
 * then fails with EPERM). sshfs runs in the foreground as a child of this
 * process; the mounts are undone with `fusermount -u` (lazily when busy) and
 * the processes stopped by pid, by `stop()` and at process exit.
 *
 * Start it with `startSharedFs()`; `sharedFsUnavailable()` says why it cannot
 * run here (no /dev/fuse, a tool missing), or null.
 */
import { spawn, spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { atCleanup, processGone, reaped, sleepSync, stopProcessSync } from './cleanup.mjs'
import { startDelayProxy } from './delay-proxy.mjs'
import { onPath, sshdUnavailable, startSshd } from './sshd.mjs'

/** FUSE options that make a mount ask the server every time. */
export const UNCACHED = ['dir_cache=no', 'attr_timeout=0', 'entry_timeout=0', 'negative_timeout=0']

let helpText = null
function sshfsHelp() {
  if (helpText === null) {
    const r = spawnSync('sshfs', ['-h'], { encoding: 'utf8' })
    helpText = `${r.stdout ?? ''}${r.stderr ?? ''}`
  }
  return helpText
}

/** Why sshfs mounts cannot be made here, or null. */
export function sharedFsUnavailable() {
  if (process.platform !== 'linux') return `sshfs rig needs Linux (this is ${process.platform})`
  if (!fs.existsSync('/dev/fuse')) return 'no /dev/fuse: FUSE is not available in this machine or container (run it with --device /dev/fuse, or load the fuse module)'
  const missing = []
  if (!onPath('sshfs')) missing.push('sshfs (apt-get install sshfs)')
  if (!onPath('fusermount3') && !onPath('fusermount')) missing.push('fusermount (apt-get install fuse3)')
  const sshd = sshdUnavailable()
  if (sshd) missing.push(sshd.replace(/^not installed: /, ''))
  return missing.length ? `not installed: ${missing.join(', ')}` : null
}

function fusermount() {
  return onPath('fusermount3') ? 'fusermount3' : 'fusermount'
}

/** Is `dir` a mount point right now (per /proc/self/mountinfo)? */
export function isMounted(dir) {
  const escaped = dir.replace(/[ \t\n\\]/g, (c) => `\\${c.charCodeAt(0).toString(8).padStart(3, '0')}`)
  try {
    return fs
      .readFileSync('/proc/self/mountinfo', 'utf8')
      .split('\n')
      .some((line) => line.split(' ')[4] === escaped)
  } catch {
    return false
  }
}

/** Unmount: politely, then lazily (a process may still have its cwd there); never throws. */
export function unmount(dir) {
  if (!isMounted(dir)) return
  if (spawnSync(fusermount(), ['-u', dir], { stdio: 'ignore' }).status === 0) return
  if (spawnSync(fusermount(), ['-uz', dir], { stdio: 'ignore' }).status === 0) return
  spawnSync('umount', ['-l', dir], { stdio: 'ignore' })
}

/**
 * Mount `remoteDir` of the rig's sshd on `mountpoint` with sshfs. `port`
 * defaults to sshd's (give the proxy's to go through it). Resolves once the
 * mount is in place; returns { path, options, pid, unmount() } (unmount
 * returns a promise: sshfs has ended and been reaped when it settles).
 */
export async function mountSshfs(sshd, remoteDir, mountpoint, { port = sshd.port, options = [] } = {}) {
  const opts = [...options]
  if (sshfsHelp().includes('no_contain_symlinks')) opts.unshift('no_contain_symlinks')
  fs.mkdirSync(mountpoint, { recursive: true })
  const args = ['-f', '-F', sshd.sshConfig, '-p', String(port), ...(opts.length ? ['-o', opts.join(',')] : []), `127.0.0.1:${remoteDir}`, mountpoint]
  const child = spawn('sshfs', args, { stdio: ['ignore', 'ignore', 'pipe'] })
  let stderr = ''
  child.stderr.on('data', (d) => (stderr += d))
  let exited = null
  child.once('exit', (code, signal) => (exited = signal ?? code))
  child.once('error', (err) => (exited = err.message))
  const undo = atCleanup(() => {
    unmount(mountpoint)
    // sshfs ends by itself once unmounted; make sure
    for (let i = 0; i < 100 && !processGone(child.pid); i++) sleepSync(20)
    stopProcessSync(child.pid)
  })
  const deadline = Date.now() + 30_000
  while (!isMounted(mountpoint)) {
    if (exited !== null || Date.now() > deadline) {
      undo()
      await reaped(child)
      throw new Error(`sshfs ${args.join(' ')} did not mount (${exited === null ? 'timed out' : `exited ${exited}`}): ${stderr.trim()}`)
    }
    await new Promise((r) => setTimeout(r, 20))
  }
  child.stderr.unref?.()
  child.unref()
  return {
    path: mountpoint,
    options: opts,
    pid: child.pid,
    async unmount() {
      undo()
      await reaped(child)
    },
  }
}

/**
 * The whole rig: sshd, the proxy, the export and its mounts.
 *
 * options: delayMs (default 1), mounts (names to make, default all three),
 * staleOptions (extra sshfs options for the stale mount, e.g. a longer
 * dcache_timeout), label (for temporary names).
 *
 * Returns { root, export, sshd, proxy, delayMs, mounts: { uncached, stale,
 * delayed }, at(mount, serverPath), stop() }. `at` turns a path inside the
 * export into the same path seen through a mount; `await stop()` unmounts
 * everything and stops every process it started (also done at exit).
 */
export async function startSharedFs({ delayMs = 1, mounts = ['uncached', 'stale', 'delayed'], staleOptions = [], label = 'vc15' } = {}) {
  const why = sharedFsUnavailable()
  if (why) throw new Error(`cannot start the shared-filesystem rig: ${why}`)
  const root = fs.mkdtempSync(path.join(os.tmpdir(), `viewctl-${label}-sharedfs-`))
  // removed last, and only what is no longer mounted: never recurse into a live mount
  const removeRoot = atCleanup(() => {
    const mnt = path.join(root, 'mnt')
    for (const name of fs.existsSync(mnt) ? fs.readdirSync(mnt) : []) if (isMounted(path.join(mnt, name))) return
    fs.rmSync(root, { recursive: true, force: true })
  })
  const exportDir = path.join(root, 'export')
  fs.mkdirSync(exportDir)
  const undo = []
  try {
    const sshd = await startSshd({ label })
    undo.push(() => sshd.stop())
    let proxy = null
    if (mounts.includes('delayed')) {
      proxy = await startDelayProxy(sshd.port, delayMs, { statsFile: path.join(root, 'proxy-stats.json') })
      undo.push(() => proxy.stop())
    }
    const made = {}
    for (const name of mounts) {
      const mountpoint = path.join(root, 'mnt', name)
      const options = name === 'stale' ? staleOptions : UNCACHED
      const m = await mountSshfs(sshd, exportDir, mountpoint, { port: name === 'delayed' ? proxy.port : sshd.port, options })
      undo.push(() => m.unmount())
      made[name] = m
    }
    return {
      root,
      export: exportDir,
      sshd,
      proxy,
      delayMs,
      mounts: made,
      at(mount, serverPath) {
        const rel = path.relative(exportDir, serverPath)
        if (rel.startsWith('..') || path.isAbsolute(rel)) throw new Error(`${serverPath} is not inside the export ${exportDir}`)
        return path.join(made[mount].path, rel)
      },
      async stop() {
        while (undo.length) await undo.pop()()
        removeRoot()
      },
    }
  } catch (err) {
    while (undo.length) await undo.pop()()
    removeRoot()
    throw err
  }
}
