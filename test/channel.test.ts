/**
 * The conversation's framing (src/ops/replicate/channel.ts) on its own, over
 * in-memory streams: one JSON object a line, whatever the chunks the pipe
 * cuts them into (a symlink view's plan travels as one line of megabytes).
 */
import { PassThrough } from 'node:stream'
import { describe, expect, it } from 'vitest'
import { Channel } from '../src/ops/replicate/channel.js'

function pair(): { input: PassThrough; output: PassThrough; channel: Channel } {
  const input = new PassThrough()
  const output = new PassThrough()
  return { input, output, channel: new Channel(input, output, 'test:/view', 'a hint') }
}

describe('the channel', () => {
  it('reads several lines in one chunk, a line cut at any point, and a line of megabytes in many chunks', async () => {
    const { input, channel } = pair()
    const plan = 'f\t0\tbin/é-tool\n'.repeat(120_000) // 1.9 MB, with a two-byte character in every line
    const text = [
      JSON.stringify({ type: 'greeting', protocol: 2, planFormat: 1, tool: 't', host: 'h' }),
      JSON.stringify({ type: 'ping' }),
      JSON.stringify({ type: 'plan', text: plan }),
      JSON.stringify({ type: 'commit' }),
      '',
    ].join('\n')
    const bytes = Buffer.from(text)
    // chunks of odd sizes, so that lines and a two-byte character are cut in the middle
    for (let at = 0, size = 1; at < bytes.length; at += size, size = (size * 7 + 3) % 65_521 || 1) input.write(bytes.subarray(at, at + size))
    expect(await channel.receive('greeting')).toMatchObject({ protocol: 2 })
    const got = await channel.receive('plan')
    expect(got.text.length).toBe(plan.length)
    expect(got.text === plan).toBe(true)
    expect(await channel.receive('commit')).toEqual({ type: 'commit' })
  })

  it('sends one large message to several ends alike (it is serialized once)', async () => {
    const message = { type: 'plan' as const, text: 'f\t0\tbin/tool\n'.repeat(10_000) }
    const ends = [pair(), pair()]
    for (const end of ends) {
      end.channel.send(message)
      end.channel.send(message)
    }
    for (const end of ends) {
      const reader = new Channel(end.output, new PassThrough(), 'test:/other', 'a hint')
      expect(await reader.receive('plan')).toEqual(message)
      expect(await reader.receive('plan')).toEqual(message)
    }
  })

  it('a chunk that ends exactly at a line end, then the next line alone', async () => {
    const { input, channel } = pair()
    input.write(`${JSON.stringify({ type: 'commit' })}\n`)
    input.write(`${JSON.stringify({ type: 'abort', discard: true, reason: 'r' })}\n`)
    expect(await channel.receive('commit')).toEqual({ type: 'commit' })
    expect(await channel.receive('abort')).toMatchObject({ discard: true })
  })

  it('keeps the noise a login shell prints before the first message; a line that is not JSON after it fails the conversation', async () => {
    const { input, channel } = pair()
    input.write('Welcome to node17\n')
    input.write(`${JSON.stringify({ type: 'commit' })}\nnot json\n`)
    expect(await channel.receive('commit')).toEqual({ type: 'commit' })
    expect(channel.noise).toEqual(['Welcome to node17'])
    await expect(channel.receive('commit')).rejects.toMatchObject({ code: 'PROTOCOL_MISMATCH' })
  })

  it('the other end closing is CONNECTION_LOST, for a receive waiting and one after', async () => {
    const { input, channel } = pair()
    const waiting = channel.receive('commit')
    input.end()
    await expect(waiting).rejects.toMatchObject({ code: 'CONNECTION_LOST' })
    await expect(channel.receive('commit')).rejects.toMatchObject({ code: 'CONNECTION_LOST' })
    expect(channel.signal.aborted).toBe(true)
  })
})
