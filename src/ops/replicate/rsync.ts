/**
 * rsync, as push and pull run it for a copy view's tree and for the
 * prefixes a receiving host lacks (a symlink view's tree is made there from
 * its plan): copied with
 *
 *   -aH --no-o --no-g --no-p --chmod=<the receiving store's rules> -J --delete
 *
 * and `--link-dest` sharing unchanged files with the receiver's newest
 * tree; a resumed push finds what it sent before in place. Never `--inplace`,
 * which would write through hardlinks into older generations. Owners,
 * groups and permissions follow the receiving host (`--no-o --no-g
 * --no-p`: new files get the sender's mode bits under the receiver's umask,
 * then `--chmod`), never the sender's uids. `-J` leaves symlink times alone,
 * without which `--link-dest` shares no symlink at all.
 */
import { spawn, spawnSync } from 'node:child_process'
import os from 'node:os'
import { ViewError } from '../../errors.js'

export interface RsyncTransfer {
  /** The source directory's contents (`dir/`), local path or `host:path`. */
  from: string
  /** The destination directory, local path or `host:path`. */
  to: string
  /** The ssh command (`-e`). */
  ssh: string
  /** The program rsync runs on the remote host (`--rsync-path`): the guard for a push, plain rsync for a pull. */
  rsyncPath?: string
  chmod: string
  /** Share unchanged files with this tree on the receiving host. */
  linkDest?: string | null
  /** Report progress (rsync's --info=progress2): percent of the whole transfer. */
  onProgress?: (percent: number) => void
  signal?: AbortSignal
}

export interface RsyncOutcome {
  code: number
  /** rsync's complaints (the last 64 KiB). */
  stderr: string
  /** The receiving side ran out of space or quota. */
  diskFull: boolean
}

export function rsyncArgs(t: RsyncTransfer): string[] {
  const args = ['-aH', '--no-o', '--no-g', '--no-p', `--chmod=${t.chmod}`, '-J', '--delete']
  if (t.linkDest) args.push(`--link-dest=${t.linkDest}`)
  args.push('-e', t.ssh)
  if (t.rsyncPath !== undefined) args.push(`--rsync-path=${t.rsyncPath}`)
  if (t.onProgress) args.push('--info=progress2')
  args.push(`${t.from.replace(/\/+$/, '')}/`, `${t.to.replace(/\/+$/, '')}/`)
  return args
}

/** Run rsync here; it dies with this process (setpriv --pdeathsig where there is one), and on `signal`. */
export async function runRsync(t: RsyncTransfer): Promise<RsyncOutcome> {
  const [file, argv] = withParentDeathSignal('rsync', rsyncArgs(t))
  return await new Promise<RsyncOutcome>((resolve) => {
    const child = spawn(file, argv, { stdio: ['ignore', t.onProgress ? 'pipe' : 'ignore', 'pipe'] })
    let stderr = ''
    child.stderr!.setEncoding('utf8').on('data', (d: string) => {
      stderr = (stderr + d).slice(-65536)
    })
    if (t.onProgress) {
      const report = t.onProgress
      child.stdout!.setEncoding('utf8').on('data', (d: string) => {
        const m = /(\d{1,3})%[^%]*$/.exec(d)
        if (m) report(Number(m[1]))
      })
    }
    const onAbort = () => child.kill('SIGTERM')
    t.signal?.addEventListener('abort', onAbort, { once: true })
    child.on('error', (err) => resolve({ code: 127, stderr: `cannot run rsync: ${err.message}`, diskFull: false }))
    child.on('close', (code, signal) => {
      t.signal?.removeEventListener('abort', onAbort)
      resolve({ code: code ?? 128 + (signal ? (os.constants.signals[signal] ?? 0) : 0), stderr, diskFull: /No space left on device|Disk quota exceeded|\(28\)|\(122\)/.test(stderr) })
    })
  })
}

/** The error for a failed rsync, naming the destination and rsync's own last words. */
export function rsyncFailure(outcome: RsyncOutcome, what: string): ViewError {
  const said = outcome.stderr.trim().split('\n').filter((l) => l.trim() !== '').slice(-4).join(' / ')
  if (outcome.diskFull) {
    return new ViewError('DISK_FULL', `${what}: the receiving host ran out of space (rsync exit ${outcome.code}: ${said})`, 'free space or inodes there (`df -h`, `df -i`), or run `viewctl gc` there, then push again; the view there was not changed and the partial copy was removed')
  }
  if (outcome.code === 127) return new ViewError('TRANSFER_FAILED', `${what}: rsync could not be run (${said})`, 'install rsync (3.2.4 or later) on both hosts')
  return new ViewError('TRANSFER_FAILED', `${what}: rsync failed (exit ${outcome.code}${said ? `: ${said}` : ''})`, 'push again: the copy resumes where it stopped; the view there was not changed')
}

let pdeathsig: boolean | null = null

/**
 * `file args…`, wrapped so that the kernel kills it when this process dies
 * (util-linux setpriv --pdeathsig), where setpriv has that option: a copy
 * must not go on when the viewctl that started it was killed. Elsewhere it
 * runs bare, and is stopped by the other means (its connection closing, the
 * receiver's guard).
 */
export function withParentDeathSignal(file: string, args: string[]): [string, string[]] {
  if (pdeathsig === null) {
    const r = spawnSync('setpriv', ['--help'], { encoding: 'utf8', timeout: 5000 })
    pdeathsig = r.status === 0 && r.stdout.includes('--pdeathsig')
  }
  return pdeathsig ? ['setpriv', ['--pdeathsig', 'KILL', '--', file, ...args]] : [file, args]
}
