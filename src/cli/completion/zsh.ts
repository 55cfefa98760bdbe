/**
 * The zsh completion script (a `#compdef` function for $fpath): one
 * `_arguments` call per command, written from the command table.
 */
import { commandsForCompletion, globalFlags, type CommandInfo, type FlagInfo } from './table.js'
import type { ValueKind } from '../spec.js'

const ACTIONS: Record<ValueKind, string> = {
  manifest: '_viewctl_manifests',
  target: '_viewctl_targets',
  generation: '_viewctl_generations',
  directory: '_directories',
  shell: '(bash zsh fish)',
}

/** Text inside '…' in an _arguments spec: brackets and colons are its syntax. */
function described(text: string): string {
  return text.replace(/\\/g, '\\\\').replace(/([[\]:])/g, '\\$1').replace(/'/g, `'\\''`)
}

function flagSpec(f: FlagInfo): string[] {
  const action = f.value === null ? '' : `:${f.value.name}:${f.value.choices ? `(${f.value.choices.join(' ')})` : f.value.kind ? ACTIONS[f.value.kind] : ' '}`
  const names = f.alias ? [f.flag, f.alias] : [f.flag]
  const eq = f.value === null ? '' : '='
  if (names.length === 1) return [`'${f.flag}${eq}[${described(f.describe)}]${action}'`]
  return [`'(${names.join(' ')})'{${names.join(',')}}'${eq}[${described(f.describe)}]${action}'`]
}

function commandCase(c: CommandInfo, global: FlagInfo[]): string {
  const specs = [...c.flags, ...global].flatMap(flagSpec)
  for (const p of c.positionals) specs.push(`'${p.variadic ? '*:' : p.required ? ':' : '::'}${p.name}:${p.kind ? ACTIONS[p.kind] : ' '}'`)
  if (c.passThrough) specs.push(`'*::command:_normal'`)
  return `    (${c.name})\n      _arguments -S \\\n        ${specs.join(' \\\n        ')}\n      ;;`
}

export function zshCompletion(): string {
  const commands = commandsForCompletion()
  const global = globalFlags()
  const list = commands.map((c) => `    '${c.name}:${described(c.describe)}'`).join('\n')
  return `#compdef viewctl
# zsh completion for viewctl, generated from its command table (viewctl completion zsh).
# Install: viewctl completion zsh > "\${fpath[1]}/_viewctl", then start a new shell.

_viewctl_manifests() { _files -g '*.(yaml|yml)(-.)' }
_viewctl_targets() { _alternative 'manifests:manifest:_files -g "*.(yaml|yml)(-.)"' 'views:view:_directories' }

# generation numbers of the target already on the line, from viewctl itself
_viewctl_generations() {
  local target=\${\${words[2,-1]:#-*}[1]}
  [[ -n $target ]] || return 1
  local -a gens
  gens=(\${(f)"$(_call_program generations \${_viewctl_self:-viewctl} __complete generations \${(q)~target} 2>/dev/null)"})
  gens=(\${gens//$'\\t'/:})
  _describe -V generation gens
}

_viewctl() {
  local _viewctl_self=$words[1]
  local curcontext=$curcontext state line
  typeset -A opt_args
  _arguments -C \\
    ${globalFlags().flatMap(flagSpec).join(' \\\n    ')} \\
    '--version[show the version]' \\
    '1:command:->command' \\
    '*::argument:->argument'
  case $state in
    (command)
      local -a commands
      commands=(
${list}
      )
      _describe -t commands 'viewctl command' commands
      ;;
    (argument)
      case $words[1] in
${commands.map((c) => commandCase(c, global)).join('\n')}
      esac
      ;;
  esac
}

_viewctl "$@"
`
}
