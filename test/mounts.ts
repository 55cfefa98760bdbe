/**
 * Real small filesystems for the disk-full tests: a tmpfs mounted for one
 * test (root only; in CI, which runs as root, failing to mount is a failure,
 * not a skip).
 */
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { spawnSync } from 'node:child_process'
import { onTestFinished, type TestContext } from 'vitest'

const isRoot = process.getuid?.() === 0
const inCI = process.env.CI === 'true'

/** Can this process mount a tmpfs? Probed once. */
const mountProbe: { ok: true } | { ok: false; reason: string } = (() => {
  if (!isRoot) return { ok: false, reason: 'not running as root: mounting a tmpfs (for disk-full tests) needs root' }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'viewctl-mount-probe-'))
  try {
    const r = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=1m,nr_inodes=64', 'tmpfs', dir], { encoding: 'utf8' })
    if (r.status !== 0) return { ok: false, reason: `\`mount -t tmpfs\` failed (${r.error?.message ?? `exit ${r.status}`}): ${r.stderr.trim()}` }
    spawnSync('umount', [dir])
    return { ok: true }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
})()

/** Skip with the reason when a tmpfs cannot be mounted, except in CI as root, where that is a failure. */
export function requireMount(ctx: TestContext): void {
  if (mountProbe.ok) return
  if (inCI && isRoot) throw new Error(`CI runs as root but cannot mount a tmpfs: ${mountProbe.reason}`)
  ctx.skip(mountProbe.reason)
}

/** A fresh tmpfs with these options; unmounted (lazily if busy) and removed when the test ends. */
export function mountTmpfs(options: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'viewctl-tmpfs-'))
  const r = spawnSync('mount', ['-t', 'tmpfs', '-o', options, 'tmpfs', dir], { encoding: 'utf8' })
  if (r.status !== 0) {
    fs.rmdirSync(dir)
    throw new Error(`mount -t tmpfs -o ${options} failed: ${r.stderr}`)
  }
  onTestFinished(() => {
    if (spawnSync('umount', [dir]).status !== 0) spawnSync('umount', ['-l', dir])
    fs.rmdirSync(dir)
  })
  return dir
}


/**
 * A fresh ext4 filesystem of `sizeMb` MiB in a sparse image file, mounted
 * through a loop device for one test (root only, like mountTmpfs), with
 * ext4's own limits: 65,000 links an inode, a symlink target of 60 bytes or
 * more in a block of its own. Unmounted (lazily if busy) and removed, image
 * and all, when the test ends.
 */
export function mountExt4Image(sizeMb: number): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'viewctl-ext4-'))
  const image = `${dir}.img`
  const undo = () => {
    if (spawnSync('umount', [dir]).status !== 0) spawnSync('umount', ['-l', dir])
    fs.rmSync(dir, { recursive: true, force: true })
    fs.rmSync(image, { force: true })
  }
  fs.writeFileSync(image, '')
  fs.truncateSync(image, sizeMb * 1024 * 1024)
  for (const [cmd, args] of [['mkfs.ext4', ['-q', '-F', image]], ['mount', ['-o', 'loop', image, dir]]] as const) {
    const r = spawnSync(cmd, [...args], { encoding: 'utf8' })
    if (r.status !== 0) {
      undo()
      throw new Error(`${cmd} ${args.join(' ')} failed: ${r.error?.message ?? r.stderr}`)
    }
  }
  onTestFinished(undo)
  return dir
}
