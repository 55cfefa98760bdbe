/**
 * The quick parse (src/cli/parse.ts) takes valid command lines without
 * loading yargs; yargs (src/cli/yargs.ts) takes the rest. Both read one
 * table, and here they must hand a runner the same arguments for every
 * valid line, while the quick parse declines every line that needs yargs.
 */
import { describe, expect, it } from 'vitest'
import { parseQuickly } from '../src/cli/parse.js'
import { parseWithYargs } from '../src/cli/yargs.js'
import { COMMANDS, GLOBAL_OPTIONS, commandName, positionalsOf } from '../src/cli/spec.js'

const VALID: string[][] = [
  ['regenerate', 'env.yaml'],
  ['regenerate', 'env.yaml', '--json'],
  ['regenerate', 'env.yaml', '--dry-run', '--quiet'],
  ['regenerate', '--adopt', 'env.yaml', '-q'],
  ['regenerate', 'env.yaml', '--lock-timeout', '0'],
  ['regenerate', 'env.yaml', '--lock-timeout=2.5', '--no-lock', '--debug'],
  ['regenerate', '123'],
  ['regenerate', 'env.yaml', '--lock-timeout'], // no value: yargs takes the default, and so does the quick parse
  ['regenerate', 'my view.yaml', '--no-dry-run'],
  ['plan', 'env.yaml', '--list'],
  ['plan', 'env.yaml', '--json', '--list=false'],
  ['status', '/opt/views/hpc'],
  ['status', '/opt/views/hpc', '--json'],
  ['list', 'v'],
  ['rollback', 'v'],
  ['rollback', 'v', '--to', '3'],
  ['rollback', 'v', '--to', '1e0'],
  ['rollback', 'v', '--to=abc123', '--lock-timeout', '10'],
  ['diff', 'v'],
  ['diff', 'v', '3'],
  ['diff', 'v', '3', '5'],
  ['diff', 'v', '1e0', '007'],
  ['verify', 'v', '--json'],
  ['gc', 'v'],
  ['gc', 'v', '--keep', '0', '--ttl', '0', '--force'],
  ['gc', 'v', '--dry-run', '--ttl', '7d', '--keep=3'],
  ['pin', 'v', '7'],
  ['unpin', 'v', 'abc', '--no-lock'],
  ['exec', 'v', '--', 'make', '-j8'],
  ['exec', 'v', '--', 'sh', '-c', 'echo --json'],
  ['exec', 'v'],
  ['activate', 'v'],
  ['activate', 'v', '--shell', 'fish', '--canonical'],
  ['activate', 'v', '--shell=csh', '--deactivate'],
  ['push', 'v', 'node1:/opt/views/v'],
  ['push', 'v', 'node1:/opt/views/v', 'admin@node2:/opt/views/v', '--parallel', '2', '--no-switch', '--ssh', 'ssh -p 2222 -o BatchMode=yes'],
  ['push', 'env.yaml', 'n:/v', '--generation', '3', '--with-prefixes', '--remote-viewctl', '/opt/bin/viewctl', '--lock-timeout', '0', '--json'],
  ['receive', '/opt/views/v'],
  ['receive', '/opt/views/v', '--rsync', '--', '--server', '-logDtpre.iLsfxCIvu', '--delete', '.', '/opt/views/._v/.staging-push-ab/'],
]

const DECLINED: string[][] = [
  [],
  ['--help'],
  ['regenerate', '--help'],
  ['regenerate', 'env.yaml', '-h'],
  ['status', 'v', '--version'],
  ['--json', 'status', 'v'], // options before the command: yargs decides
  ['frobnicate', 'v'],
  ['statu', 'v'],
  ['status'],
  ['status', 'v', 'extra'],
  ['status', 'v', '--jsn'],
  ['push', 'v'], // no destination
  ['status', 'v', '--', 'x'],
  ['regenerate', 'env.yaml', '--lock-timeout', 'soon'],
  ['regenerate', 'env.yaml', '--lock-timeout', '1', '--lock-timeout', '2'],
  ['gc', 'v', '--keep', 'all'],
  ['activate', 'v', '--shell', 'tcsh'],
  ['plan', 'env.yaml', '--dry-run'],
  ['pin', 'v'],
  ['diff', 'v', '1', '2', '3'],
]

/** What a runner reads: the declared options (camel case), the positionals, and `--`. */
function runnerView(args: Record<string, unknown>, command: string): Record<string, unknown> {
  const spec = COMMANDS.find((c) => commandName(c) === command)!
  const keys = [
    ...Object.keys({ ...GLOBAL_OPTIONS, ...spec.options }).map((k) => k.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase())),
    ...positionalsOf(spec).map((p) => p.name),
    ...(spec.passThrough ? ['--'] : []),
  ]
  return Object.fromEntries(keys.map((k) => [k, args[k]]))
}

describe('the quick parse', () => {
  it.each(VALID.map((argv) => [argv.join(' '), argv]))('gives a runner what yargs gives it: %s', async (_line, argv) => {
    const quick = parseQuickly(argv as string[])
    expect(quick).not.toBeNull()
    const full = await parseWithYargs(argv as string[], { exitProcess: false })
    expect(full).not.toBeNull()
    expect(commandName(quick!.spec)).toBe(commandName(full!.spec))
    expect(runnerView(quick!.args, commandName(quick!.spec))).toEqual(runnerView(full!.args, commandName(full!.spec)))
  })

  it.each(DECLINED.map((argv) => [argv.join(' ') || '(nothing)', argv]))('leaves to yargs: %s', (_line, argv) => {
    expect(parseQuickly(argv as string[])).toBeNull()
  })

  it('keeps every positional a string, as yargs is told to', () => {
    const r = parseQuickly(['diff', 'v', '1e0', '007'])!
    expect(r.args).toMatchObject({ target: 'v', from: '1e0', to: '007' })
  })
})
