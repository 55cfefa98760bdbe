/**
 * A viewctl on another host, reached by one ssh connection that runs
 * `<remote viewctl> receive|send …` and carries the conversation on its
 * stdin and stdout. ssh dies with this process (setpriv --pdeathsig), so a
 * killed push leaves no connection that would keep the remote session (and
 * its lock) alive.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { ViewError } from '../../errors.js'
import { Channel } from './channel.js'
import { remoteCommand, sshWords, type Destination } from './destination.js'
import { withParentDeathSignal } from './rsync.js'

export interface RemoteEnd {
  channel: Channel
  /** What ssh and the remote command said on stderr (the last 16 KiB). */
  stderr(): string
  /** Turn a lost connection before the first message into what went wrong (ssh could not connect, no viewctl there). */
  explain(err: unknown): Promise<unknown>
  /** End the conversation; ssh is killed if it does not end by itself soon. */
  close(): Promise<void>
  /** Kill ssh now. */
  kill(): void
}

export function openRemote(dest: Destination, ssh: string, remoteViewctl: string, args: string[], lostHint: string): RemoteEnd {
  const words = sshWords(ssh)
  const [file, argv] = withParentDeathSignal(words[0]!, [...words.slice(1), dest.login, remoteCommand(remoteViewctl, args)])
  const child: ChildProcess = spawn(file, argv, { stdio: ['pipe', 'pipe', 'pipe'] })
  let stderr = ''
  child.stderr!.setEncoding('utf8').on('data', (d: string) => {
    stderr = (stderr + d).slice(-16384)
  })
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; error?: Error }>((resolve) => {
    child.once('error', (error) => resolve({ code: null, signal: null, error }))
    child.once('close', (code, signal) => resolve({ code, signal }))
  })
  const channel = new Channel(child.stdout!, child.stdin!, `${dest.login}:${dest.view}`, lostHint)
  const words0 = words[0]!
  return {
    channel,
    stderr: () => stderr,
    async explain(err) {
      if (!(err instanceof ViewError) || err.code !== 'CONNECTION_LOST' || channel.spoke) return err
      const end = await Promise.race([exited, new Promise<null>((r) => setTimeout(() => r(null), 3000))])
      const said = stderr.trim().split('\n').slice(-4).join(' / ')
      if (end?.error) return new ViewError('CONNECTION_LOST', `cannot run ${words0} to reach ${dest.login}: ${end.error.message}`, 'install OpenSSH, or give the ssh command with --ssh')
      if (end?.code === 255) return new ViewError('CONNECTION_LOST', `ssh to ${dest.login} failed: ${said || 'exit 255'}`, 'check that `ssh <host> true` works with the same --ssh options (for cron: keys without a passphrase, the host key in known_hosts, --ssh "ssh -o BatchMode=yes")')
      if (end?.code === 127 || /not found|No such file/.test(said)) return new ViewError('PROTOCOL_MISMATCH', `viewctl was not found on ${dest.login} (${remoteViewctl}): ${said}`, 'install viewctl there, or name it with --remote-viewctl /path/to/viewctl')
      if (end?.code === 2 && /receive|send|Unknown/.test(said)) return new ViewError('PROTOCOL_MISMATCH', `the viewctl on ${dest.login} (${remoteViewctl}) does not take part in pushes: ${said}`, 'install a viewctl there that knows `viewctl push` (one whose push protocol agrees with this one)')
      return new ViewError('CONNECTION_LOST', `${err.message}${said ? ` (${said})` : ''}`, err.hint)
    },
    async close() {
      channel.close()
      const timer = setTimeout(() => child.kill('SIGTERM'), 5000)
      timer.unref()
      await exited
      clearTimeout(timer)
    },
    kill() {
      child.kill('SIGKILL')
    },
  }
}
