import { describe, expect, it } from 'vitest'
import { formatCount } from '../src/cli/render.js'

describe('formatCount', () => {
  it('groups thousands with commas, as toLocaleString("en-US") did', () => {
    for (const n of [0, 7, 999, 1000, 70106, 100106, 1000000, 1234567890, -1234, 12.7]) {
      expect(formatCount(n), String(n)).toBe(Math.trunc(n).toLocaleString('en-US'))
    }
  })
})
