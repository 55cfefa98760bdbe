/** `viewctl completion <shell>`: the script for that shell, written from the command table. */
import { bashCompletion } from './bash.js'
import { fishCompletion } from './fish.js'
import { zshCompletion } from './zsh.js'

export type CompletionShell = 'bash' | 'zsh' | 'fish'

export function completionScript(shell: CompletionShell): string {
  return shell === 'bash' ? bashCompletion() : shell === 'zsh' ? zshCompletion() : fishCompletion()
}

/** The file name each shell looks for (scripts/generate.mjs writes them into dist/completion/; cli/commands/completion.ts reads them). */
export const COMPLETION_FILES: Record<CompletionShell, string> = { bash: 'viewctl', zsh: '_viewctl', fish: 'viewctl.fish' }
