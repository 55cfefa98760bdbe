import { describe, expect, it } from 'vitest'
import { formatCount, Output, progressReporter } from '../src/cli/render.js'
import { ViewError } from '../src/errors.js'

describe('formatCount', () => {
  it('groups thousands with commas, as toLocaleString("en-US") did', () => {
    for (const n of [0, 7, 999, 1000, 70106, 100106, 1000000, 1234567890, -1234, 12.7]) {
      expect(formatCount(n), String(n)).toBe(Math.trunc(n).toLocaleString('en-US'))
    }
  })
})

describe('the progress line', () => {
  /** Run `fn` with stderr taken for a TTY, and return what it wrote there. */
  function onTtyStderr(fn: () => void): string {
    const written: string[] = []
    const write = process.stderr.write
    const tty = Object.getOwnPropertyDescriptor(process.stderr, 'isTTY')
    const after = process.env.VIEWCTL_PROGRESS_AFTER_MS
    Object.defineProperty(process.stderr, 'isTTY', { value: true, configurable: true })
    process.env.VIEWCTL_PROGRESS_AFTER_MS = '0'
    process.stderr.write = ((chunk: string) => written.push(String(chunk)) > 0) as typeof process.stderr.write
    try {
      fn()
    } finally {
      process.stderr.write = write
      if (tty) Object.defineProperty(process.stderr, 'isTTY', tty)
      else delete (process.stderr as { isTTY?: boolean }).isTTY
      if (after === undefined) delete process.env.VIEWCTL_PROGRESS_AFTER_MS
      else process.env.VIEWCTL_PROGRESS_AFTER_MS = after
    }
    return written.join('')
  }

  it('while walking it has no total; a build given up ends the line before the error', () => {
    const flags = { json: false, quiet: false, debug: false }
    const text = onTtyStderr(() => {
      const progress = progressReporter(flags)!
      progress(4096, null)
      new Output(flags).fail(new ViewError('CONFLICT', 'a conflict', 'a hint'))
    })
    expect(text).toMatch(/linked 4,096 so far, still walking the prefixes \([\d,]+\/s\)\nviewctl: a conflict\nhint: a hint\n$/)
  })

  it('a finished build ends its own line, and nothing more is added', () => {
    const flags = { json: false, quiet: false, debug: false }
    const text = onTtyStderr(() => {
      const progress = progressReporter(flags)!
      progress(10, 20)
      progress(20, 20)
      new Output(flags).warn('after')
    })
    expect(text).toMatch(/linked 20 \/ 20 entries \([\d,]+\/s\)\nviewctl: warning: after\n$/)
  })
})
