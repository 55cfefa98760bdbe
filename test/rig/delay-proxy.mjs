/**
 * A TCP proxy on loopback that holds every chunk of data for a chosen time
 * in each direction: network latency for a rig where `tc netem` is not
 * available. Run as its own process (`startDelayProxy`), never inside the
 * process that drives the tests: those block in spawnSync while the
 * programs they run wait on the proxy.
 *
 *   node delay-proxy.mjs <target port> <delay ms>
 *
 * prints the port it listens on (127.0.0.1) as its first line of stdout.
 * Bytes keep their order; a chunk is sent once it has been held `delay` ms,
 * to within the event loop's timer resolution (1 ms): the proxy counts how
 * long it really held each chunk and writes the mean on SIGUSR2 or at exit
 * to the file named by VIEWCTL_PROXY_STATS, so a bench can report the
 * latency it actually added.
 */
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import net from 'node:net'
import { fileURLToPath } from 'node:url'
import { atCleanup, reaped, stopProcessSync } from './cleanup.mjs'

const SELF = fileURLToPath(import.meta.url)

/** Start the proxy in a child process. Resolves to { port, pid, stats(), stop() } (stop returns a promise). */
export async function startDelayProxy(targetPort, delayMs, { statsFile } = {}) {
  const child = spawn(process.execPath, [SELF, String(targetPort), String(delayMs)], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, VIEWCTL_PROXY_STATS: statsFile ?? '' },
  })
  const stopNow = atCleanup(() => stopProcessSync(child.pid))
  let stderr = ''
  child.stderr.on('data', (d) => (stderr += d))
  const port = await new Promise((resolve, reject) => {
    let out = ''
    child.stdout.on('data', (d) => {
      out += d
      const nl = out.indexOf('\n')
      if (nl !== -1) resolve(Number(out.slice(0, nl)))
    })
    child.once('exit', (code) => reject(new Error(`delay proxy exited (${code}): ${stderr.trim()}`)))
  })
  child.stdout.unref?.()
  child.stderr.unref?.()
  child.unref()
  return {
    port,
    pid: child.pid,
    /** { chunks, meanHoldMs } held so far (needs statsFile). */
    stats() {
      if (!statsFile) return null
      try {
        fs.rmSync(statsFile, { force: true })
        process.kill(child.pid, 'SIGUSR2')
        // a busy machine may take a while to schedule the proxy
        for (let i = 0; i < 1500 && !fs.existsSync(statsFile); i++) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10)
        return JSON.parse(fs.readFileSync(statsFile, 'utf8'))
      } catch {
        return null
      }
    },
    async stop() {
      stopNow()
      await reaped(child)
    },
  }
}

// ---------------------------------------------------------------------------
// the proxy itself

function runProxy(targetPort, delayMs) {
  const stats = { chunks: 0, heldMs: 0 }
  const now = () => performance.now()

  /** Forward `from` to `to`, each chunk `delayMs` after it arrived, in order. */
  function delayed(from, to) {
    const queue = []
    let timer = null
    let ended = false
    const flush = () => {
      timer = null
      // within a quarter millisecond of its time is on time: the timers have 1 ms resolution
      const t = now() + 0.25
      while (queue.length > 0 && queue[0].due <= t) {
        const { chunk, at } = queue.shift()
        stats.chunks++
        stats.heldMs += now() - at
        to.write(chunk)
      }
      if (queue.length > 0) arm()
      else if (ended) to.end()
    }
    const arm = () => {
      if (timer !== null) return
      timer = setTimeout(flush, Math.max(1, Math.round(queue[0].due - now())))
    }
    from.on('data', (chunk) => {
      const at = now()
      queue.push({ chunk, at, due: at + delayMs })
      arm()
    })
    from.on('end', () => {
      ended = true
      if (queue.length === 0 && timer === null) to.end()
    })
  }

  const server = net.createServer((client) => {
    const upstream = net.connect(targetPort, '127.0.0.1')
    client.setNoDelay(true)
    upstream.setNoDelay(true)
    delayed(client, upstream)
    delayed(upstream, client)
    const close = () => {
      client.destroy()
      upstream.destroy()
    }
    client.on('error', close)
    upstream.on('error', close)
    client.on('close', () => upstream.end())
    upstream.on('close', () => client.end())
  })
  const writeStats = () => {
    const file = process.env.VIEWCTL_PROXY_STATS
    if (!file) return
    // whole or not at all: the reader polls for the name
    fs.writeFileSync(`${file}.tmp`, JSON.stringify({ chunks: stats.chunks, meanHoldMs: stats.chunks ? stats.heldMs / stats.chunks : null }))
    fs.renameSync(`${file}.tmp`, file)
  }
  process.on('SIGUSR2', writeStats)
  process.on('SIGTERM', () => {
    writeStats()
    process.exit(0)
  })
  server.listen(0, '127.0.0.1', () => process.stdout.write(`${server.address().port}\n`))
}

if (process.argv[1] === SELF) {
  const [target, delay] = process.argv.slice(2).map(Number)
  if (!Number.isInteger(target) || !(delay >= 0)) {
    process.stderr.write('usage: node delay-proxy.mjs <target port> <delay ms>\n')
    process.exit(2)
  }
  runProxy(target, delay)
}
