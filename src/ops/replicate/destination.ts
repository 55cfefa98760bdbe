/**
 * The other end of a push or pull: `[user@]host:/abs/view`, the way scp and
 * rsync write it, and the commands that reach it. The ssh command is given
 * as one string (`--ssh "ssh -p 2222 -o BatchMode=yes"`, like rsync's `-e`)
 * and split into words the way a shell would; the command run on the remote
 * host is one string that its login shell parses, so every word viewctl puts
 * into it is single-quoted. The remote viewctl (`--remote-viewctl`, like
 * rsync's `--rsync-path`) is a command, not a path: it goes in as written,
 * so it may carry words of its own (`sudo -u views viewctl`).
 */
import path from 'node:path'
import { ViewError } from '../../errors.js'

export interface Destination {
  /** As the user wrote it. */
  spec: string
  /** What ssh is given: `host` or `user@host` (brackets of an IPv6 address removed). */
  login: string
  /** What rsync is given before the colon: `host`, `user@host` or `user@[::1]`. */
  rsyncHost: string
  /** The absolute view path on that host. */
  view: string
}

const HINT = 'write a destination as [user@]host:/absolute/view/path, e.g. admin@node17:/opt/views/hpc'

export function parseDestination(spec: string): Destination {
  const bad = (why: string) => new ViewError('BAD_DESTINATION', `${JSON.stringify(spec)} is not a destination: ${why}`, HINT)
  if (spec.startsWith('rsync://') || /^[^/]*::/.test(spec.replace(/\[[^\]]*\]/, ''))) throw bad('viewctl reaches other hosts over ssh, not the rsync daemon')
  // the user is what comes before the last `@` ahead of the host (a path may hold `@` too)
  const stop = spec.search(/[:[]/)
  const at = stop === -1 ? spec.lastIndexOf('@') : spec.lastIndexOf('@', stop)
  const user = at > 0 ? spec.slice(0, at) : ''
  const rest = at > 0 ? spec.slice(at + 1) : spec
  let host: string
  let view: string
  if (rest.startsWith('[')) {
    const close = rest.indexOf(']')
    if (close < 0 || rest[close + 1] !== ':') throw bad('an IPv6 address is written [address]:/path')
    host = rest.slice(1, close)
    view = rest.slice(close + 2)
  } else {
    const colon = rest.indexOf(':')
    if (colon < 0) throw bad('no host (a local view is pushed with `viewctl regenerate`, or copied with a manifest)')
    host = rest.slice(0, colon)
    view = rest.slice(colon + 1)
  }
  if (host === '' || /[\s/]/.test(host) || host.startsWith('-')) throw bad(`the host ${JSON.stringify(host)} is not a host name`)
  if (user.startsWith('-') || /\s/.test(user)) throw bad(`the user ${JSON.stringify(user)} is not a user name`)
  if (!view.startsWith('/')) throw bad('the view path on the remote host must be absolute')
  if (view.includes('\0')) throw bad('the view path holds a NUL byte')
  const normal = path.posix.normalize(view).replace(/\/+$/, '')
  if (normal === '' || normal === '/') throw bad('the view path cannot be the root directory')
  const login = user ? `${user}@${host}` : host
  const rsyncHost = host.includes(':') ? `${user ? `${user}@` : ''}[${host}]` : login
  return { spec, login, rsyncHost, view: normal }
}

/** Split a command line into words as sh would (single and double quotes, backslashes); no expansions. */
export function splitCommand(command: string): string[] {
  const words: string[] = []
  let word = ''
  let inWord = false
  let quote: "'" | '"' | null = null
  for (let i = 0; i < command.length; i++) {
    const c = command[i]!
    if (quote === "'") {
      if (c === "'") quote = null
      else word += c
      continue
    }
    if (quote === '"') {
      if (c === '"') quote = null
      else if (c === '\\' && i + 1 < command.length && '"\\$`'.includes(command[i + 1]!)) word += command[++i]
      else word += c
      continue
    }
    if (c === "'" || c === '"') {
      quote = c
      inWord = true
    } else if (c === '\\' && i + 1 < command.length) {
      word += command[++i]
      inWord = true
    } else if (/\s/.test(c)) {
      if (inWord) words.push(word)
      word = ''
      inWord = false
    } else {
      word += c
      inWord = true
    }
  }
  if (quote !== null) throw new ViewError('USAGE', `unbalanced ${quote} in the command ${JSON.stringify(command)}`, 'quote the command the way a shell would, e.g. --ssh "ssh -p 2222"')
  if (inWord) words.push(word)
  return words
}

/** One word for a POSIX shell, whatever bytes it holds. */
export function shellQuote(word: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`
}

/** The command line run on the remote host: the remote viewctl as given, then each argument quoted. */
export function remoteCommand(remoteViewctl: string, args: string[]): string {
  return [remoteViewctl, ...args.map(shellQuote)].join(' ')
}

/** The ssh command's words, refusing an empty one. */
export function sshWords(ssh: string): string[] {
  const words = splitCommand(ssh)
  if (words.length === 0) throw new ViewError('USAGE', '--ssh is empty', 'give the ssh command and its options, e.g. --ssh "ssh -o BatchMode=yes"')
  return words
}
