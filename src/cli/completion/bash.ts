/**
 * The bash completion script. It needs nothing but bash itself (not the
 * bash-completion package): the command table is written into it as case
 * branches, and `viewctl __complete generations` is run only where a
 * generation number goes.
 */
import { commandsForCompletion, globalFlags, type CommandInfo, type FlagInfo } from './table.js'
import type { ValueKind } from '../spec.js'

export function bashCompletion(): string {
  const commands = commandsForCompletion()
  const global = globalFlags()
  const words = (flags: FlagInfo[]) => flags.flatMap((f) => [f.flag, ...(f.alias ? [f.alias] : [])]).join(' ')
  const branches = commands.map((c) => commandBranch(c, global, words)).join('\n')
  return `# bash completion for viewctl, generated from its command table (viewctl completion bash).
# Install: viewctl completion bash > ~/.local/share/bash-completion/completions/viewctl
#      or: eval "$(viewctl completion bash)" in ~/.bashrc

# What goes at a value of the given kind; COMPREPLY gets the matches of $cur.
_viewctl_complete_kind() {
  local kind=$1 cur=$2 target=$3 IFS=$'\\n' name
  local -a found=()
  case $kind in
    manifest|target)
      compopt -o filenames 2>/dev/null
      found=($(compgen -d -- "$cur") $(compgen -f -X '!*.yaml' -- "$cur") $(compgen -f -X '!*.yml' -- "$cur")) ;;
    directory)
      compopt -o filenames 2>/dev/null
      found=($(compgen -d -- "$cur")) ;;
    generation)
      [[ -n $target ]] || return 0
      local gens
      gens=$("\${_viewctl_self:-viewctl}" __complete generations "\${target/#\\~/$HOME}" 2>/dev/null | cut -f1)
      COMPREPLY+=($(compgen -W "$gens" -- "$cur")) ;;
    shell)
      COMPREPLY+=($(compgen -W $'bash\\nzsh\\nfish' -- "$cur")) ;;
  esac
  # hidden names only when the name typed so far starts with a dot, as readline shows them
  for name in "\${found[@]}"; do
    [[ \${name##*/} == .* && \${cur##*/} != .* ]] || COMPREPLY+=("$name")
  done
}

_viewctl() {
  local cur=\${COMP_WORDS[COMP_CWORD]} prev=\${COMP_WORDS[COMP_CWORD-1]}
  local _viewctl_self=\${COMP_WORDS[0]}
  local cmd='' i w dashes=0 after=0
  local -a args=()
  COMPREPLY=()
  # --opt=value: bash splits it into --opt, =, value
  if [[ $cur == '=' ]]; then cur=''; elif [[ $prev == '=' ]] && ((COMP_CWORD >= 2)); then prev=\${COMP_WORDS[COMP_CWORD-2]}; fi
  # the command, then its positionals, skipping options and their values
  for ((i = 1; i < COMP_CWORD; i++)); do
    w=\${COMP_WORDS[i]}
    if ((dashes)); then ((after++)); continue; fi
    case $w in
      --) dashes=1 ;;
      =) ((i++)) ;;
      -*) [[ -n $cmd ]] && _viewctl_takes_value "$cmd" "$w" && [[ \${COMP_WORDS[i+1]} != '=' ]] && ((i++)) ;;
      *) if [[ -z $cmd ]]; then cmd=$w; else args+=("$w"); fi ;;
    esac
  done
  if [[ -z $cmd ]]; then
    if [[ $cur == -* ]]; then COMPREPLY=($(compgen -W '${words(global)} --version' -- "$cur"))
    else COMPREPLY=($(compgen -W '${commands.map((c) => c.name).join(' ')}' -- "$cur")); fi
    return 0
  fi
  case $cmd in
${branches}
  esac
  return 0
}

# Does option $2 of command $1 take a value?
_viewctl_takes_value() {
  case "$1 $2" in
${commands
  .flatMap((c) => c.flags.filter((f) => f.value !== null).map((f) => `    '${c.name} ${f.flag}') return 0 ;;`))
  .join('\n')}
  esac
  return 1
}

complete -F _viewctl viewctl
`
}

function commandBranch(c: CommandInfo, global: FlagInfo[], words: (flags: FlagInfo[]) => string): string {
  const lines = [`    ${c.name})`]
  if (c.passThrough) {
    // after --, the command to run and its own arguments
    lines.push(`      if ((dashes)); then if ((after == 0)); then COMPREPLY=($(compgen -c -- "$cur")); else compopt -o default 2>/dev/null; fi; return 0; fi`)
  }
  const valued = c.flags.filter((f) => f.value !== null)
  if (valued.length) {
    lines.push('      case $prev in')
    for (const f of valued) {
      const v = f.value!
      if (v.choices) lines.push(`        ${f.flag}) COMPREPLY=($(compgen -W '${v.choices.join(' ')}' -- "$cur")); return 0 ;;`)
      else if (v.kind) lines.push(`        ${f.flag}) _viewctl_complete_kind ${v.kind} "$cur" "\${args[0]}"; return 0 ;;`)
      else lines.push(`        ${f.flag}) return 0 ;;`)
    }
    lines.push('      esac')
  }
  lines.push(`      if [[ $cur == -* ]]; then COMPREPLY=($(compgen -W '${words([...c.flags, ...global])}${c.passThrough ? ' --' : ''}' -- "$cur")); return 0; fi`)
  if (c.positionals.length) {
    lines.push('      case \${#args[@]} in')
    c.positionals.forEach((p, i) => {
      if (p.kind) lines.push(`        ${i}) _viewctl_complete_kind ${p.kind satisfies ValueKind} "$cur" "\${args[0]}" ;;`)
    })
    lines.push('      esac')
  }
  lines.push('      ;;')
  return lines.join('\n')
}
