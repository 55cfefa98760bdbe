/**
 * Quoting for modulefiles. Every path and text a modulefile carries is
 * written so that the module tool reads back exactly those bytes:
 *
 * - Lua: a long bracket `[==[…]==]` whose level is the lowest at which the
 *   closing bracket does not occur in the text, so no character inside is
 *   special (Lmod reads the file with Lua's own parser).
 * - Tcl: in braces, which substitute nothing, when the text has no brace
 *   and no backslash (braces must balance, and a backslash before a newline
 *   still counts inside them); otherwise every character Tcl would interpret
 *   (`$ [ ] { } \ "`, `;`, spaces) behind a backslash.
 *
 * A newline is refused earlier (a PATH entry cannot hold one, and Lmod's Tcl
 * translation cuts lines); so is `:`, the separator of every path list.
 */

/** `s` as a Lua long-bracket string literal. */
export function luaString(s: string): string {
  let level = 0
  while (s.includes(`]${'='.repeat(level)}]`) || s.endsWith(`]${'='.repeat(level)}`)) level++
  const eq = '='.repeat(level)
  // a newline right after the opening bracket is dropped by Lua: keep one that the text starts with
  const lead = s.startsWith('\n') ? '\n' : ''
  return `[${eq}[${lead}${s}]${eq}]`
}

/** `s` as one Tcl word, substituted to exactly itself. */
export function tclWord(s: string): string {
  if (!/[{}\\\n]/.test(s)) return `{${s}}`
  return s.replace(/[\\$[\]{}";\s#]/g, (c) => (c === '\n' ? '\\n' : c === '\t' ? '\\t' : `\\${c}`))
}
