/**
 * The progress line: on a TTY only (a real pseudo-terminal from `script`),
 * never with --json or --quiet, never when stderr is not a TTY.
 */
import path from 'node:path'
import { spawnSync } from 'node:child_process'
import { describe, expect, it } from 'vitest'
import { BIN, tempDir, viewctl, writeManifest, writeTree } from './helpers.js'

function prefixWith(dir: string, files: number): void {
  const tree: Record<string, string> = {}
  for (let i = 0; i < files; i++) tree[`bin/tool-${i}`] = ''
  writeTree(dir, tree)
}

/** Run the CLI with its stdio on a pseudo-terminal; returns what the terminal showed. */
function onTty(args: string[]): { code: number | null; screen: string } {
  const command = [process.execPath, BIN, ...args].map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ')
  const r = spawnSync('script', ['-qfec', command, '/dev/null'], { encoding: 'utf8', env: { ...process.env, VIEWCTL_PROGRESS_AFTER_MS: '0' }, timeout: 60_000 })
  return { code: r.status, screen: r.stdout }
}

describe('progress', () => {
  it('shows entries linked / total and a rate on a TTY, and nothing with --json, --quiet or without a TTY', () => {
    const dir = tempDir()
    prefixWith(path.join(dir, 'a'), 5000)
    prefixWith(path.join(dir, 'b'), 5000)
    const manifests = ['a', 'b'].map((p, i) => writeManifest(dir, `view: v${i}\nfold: false\npackages: [${p}]\n`, `m${i}.yaml`))

    const shown = onTty(['regenerate', manifests[0]!])
    expect(shown.code).toBe(0)
    expect(shown.screen).toMatch(/linked [\d,]+ \/ 5,001 entries \([\d,]+\/s\)/)

    const json = onTty(['regenerate', manifests[1]!, '--json'])
    expect(json.code).toBe(0)
    expect(json.screen).not.toContain('linked')
    expect(JSON.parse(json.screen.replace(/\r/g, '')).entries).toBe(5001)

    const quiet = onTty(['regenerate', writeManifest(dir, 'view: v2\nfold: false\npackages: [a]\n', 'm2.yaml'), '--quiet'])
    expect(quiet.code).toBe(0)
    expect(quiet.screen).toBe('')

    const piped = viewctl(['regenerate', writeManifest(dir, 'view: v3\nfold: false\npackages: [b]\n', 'm3.yaml')], { env: { VIEWCTL_PROGRESS_AFTER_MS: '0' } })
    expect(piped.code).toBe(0)
    expect(piped.stderr).not.toContain('linked')
  })
})
