/**
 * The fish completion script (for ~/.config/fish/completions/), written from
 * the command table: one `complete` line per command and flag.
 */
import { commandsForCompletion, globalFlags, type FlagInfo } from './table.js'
import type { ValueKind } from '../spec.js'

function quoted(text: string): string {
  return `'${text.replace(/[\\']/g, (c) => `\\${c}`)}'`
}

const VALUES: Record<ValueKind, string> = {
  manifest: '(__viewctl_manifests)',
  target: '(__viewctl_manifests)',
  generation: '(__viewctl_generations)',
  directory: "(__fish_complete_directories (commandline -ct) '')",
  shell: 'bash zsh fish',
}

function flagLine(condition: string | null, f: FlagInfo): string {
  const parts = ['complete -c viewctl']
  if (condition) parts.push(`-n ${quoted(condition)}`)
  parts.push(`-l ${f.flag.slice(2)}`)
  if (f.alias) parts.push(`-s ${f.alias.slice(1)}`)
  if (f.value !== null) {
    parts.push('-x')
    if (f.value.choices) parts.push(`-a ${quoted(f.value.choices.join(' '))}`)
    else if (f.value.kind) parts.push(`-a ${quoted(VALUES[f.value.kind])}`)
  }
  parts.push(`-d ${quoted(f.describe)}`)
  return parts.join(' ')
}

export function fishCompletion(): string {
  const commands = commandsForCompletion()
  const lines = [
    '# fish completion for viewctl, generated from its command table (viewctl completion fish).',
    '# Install: viewctl completion fish > ~/.config/fish/completions/viewctl.fish',
    '',
    '# the arguments after the command, options left out',
    'function __viewctl_args',
    '    set -l tokens (commandline -opc)',
    '    set -e tokens[1]',
    '    set -l seen 0',
    '    for t in $tokens',
    "        string match -q -- '-*' $t; and continue",
    '        if test $seen = 0',
    '            set seen 1',
    '            continue',
    '        end',
    '        echo $t',
    '    end',
    'end',
    '',
    '# how many arguments the command has so far',
    'function __viewctl_nargs',
    '    count (__viewctl_args)',
    'end',
    '',
    '# manifests (*.yaml, *.yml) and directories (views are symlinks to them) under what is typed',
    'function __viewctl_manifests',
    '    set -l token (commandline -ct | string unescape)',
    '    for f in $token*.yaml $token*.yml',
    '        echo $f',
    '    end',
    "    __fish_complete_directories $token ''",
    'end',
    '',
    '# generation numbers of the target on the line, from viewctl itself',
    'function __viewctl_generations',
    '    set -l target (__viewctl_args)[1]',
    '    test -n "$target"; or return',
    '    set -l self (commandline -opc)[1]',
    '    $self __complete generations $target 2>/dev/null',
    'end',
    '',
    'complete -c viewctl -f',
  ]
  for (const f of globalFlags()) lines.push(flagLine(null, f))
  lines.push(flagLine('__fish_use_subcommand', { flag: '--version', describe: 'show the version', value: null }))
  for (const c of commands) lines.push(`complete -c viewctl -n __fish_use_subcommand -a ${c.name} -d ${quoted(c.describe)}`)
  for (const c of commands) {
    const seen = `__fish_seen_subcommand_from ${c.name}`
    for (const f of c.flags) lines.push(flagLine(seen, f))
    c.positionals.forEach((p, i) => {
      if (!p.kind) return
      // the arguments so far include the command itself: the i-th positional comes when there are i of them
      lines.push(`complete -c viewctl -n ${quoted(`${seen}; and test (__viewctl_nargs) -eq ${i}`)} -a ${quoted(VALUES[p.kind])}`)
    })
    if (c.passThrough) lines.push(`complete -c viewctl -n ${quoted(`${seen}; and contains -- -- (commandline -opc)`)} -a '(__fish_complete_subcommand --fcs-skip=3)'`)
  }
  return lines.join('\n') + '\n'
}
