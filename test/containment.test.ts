/**
 * The build's containment check (src/store/build/build.ts): an entry is written
 * only as one plain name directly inside a directory the same build made.
 * It remembers the last parent it found, so the shortcut is exercised here
 * along with the slow path: a bad name right after good siblings must still
 * be refused.
 */
import { describe, expect, it } from 'vitest'
import { assertContained } from '../src/store/build/build.js'

/** Run a plan's paths in order; `dirs` are the directories made so far, as linkEntries keeps them. */
function check(entries: Array<[string, 'd' | 'f']>): string | null {
  const dirs = new Set<string>([''])
  const last = { parent: '' }
  for (const [rel, kind] of entries) {
    try {
      assertContained(rel, dirs, last)
    } catch (err) {
      return (err as { code?: string }).code === 'UNSAFE_PATH' ? rel : `unexpected ${String(err)}`
    }
    if (kind === 'd') dirs.add(rel)
  }
  return null
}

describe('containment', () => {
  it('accepts plain names inside directories made before them', () => {
    expect(check([['bin', 'd'], ['bin/a', 'f'], ['bin/b', 'f'], ['lib', 'd'], ['lib/x', 'd'], ['lib/x/y', 'f'], ['lib/z', 'f'], ['top', 'f'], ['.hidden', 'f'], ['bin/..a', 'f']])).toBeNull()
  })

  it.each([
    ['a parent never made', [['bin/a', 'f']]],
    ['a parent made later', [['bin/a', 'f'], ['bin', 'd']]],
    ['..', [['..', 'f']]],
    ['.', [['.', 'f']]],
    ['an empty name', [['bin', 'd'], ['bin/', 'f']]],
    ['an absolute path', [['/etc/passwd', 'f']]],
    ['.. after good siblings (the shortcut)', [['bin', 'd'], ['bin/a', 'f'], ['bin/..', 'f']]],
    ['. after good siblings', [['bin', 'd'], ['bin/a', 'f'], ['bin/.', 'f']]],
    ['a climb through ..', [['bin', 'd'], ['bin/a', 'f'], ['bin/../../x', 'f']]],
    ['a sibling directory of the same length', [['bin', 'd'], ['bin/a', 'f'], ['bix/a', 'f']]],
    ['a deeper path under the last parent', [['bin', 'd'], ['bin/a', 'f'], ['bin/sub/a', 'f']]],
    ['a root name after root names, then an absolute one', [['a', 'f'], ['b', 'f'], ['/b', 'f']]],
  ] as Array<[string, Array<[string, 'd' | 'f']>]>)('refuses %s', (_what, entries) => {
    expect(check(entries)).toBe(entries[entries.length - 1]![0] === 'bin' ? 'bin/a' : entries[entries.length - 1]![0])
  })
})
