/**
 * Undo what a rig started, also when the process ends early. Every helper
 * that starts a process or mounts something registers a synchronous undo
 * step here; `runCleanups` runs them newest first, once each. They also run
 * when the process exits (normally, by an uncaught error, or by SIGINT,
 * SIGTERM or SIGHUP), so a failing test or an interrupted bench leaves no
 * sshd, no proxy and no mount behind.
 */
import { readFileSync } from 'node:fs'

const steps = new Map()
let next = 0
let installed = false

/** Register `fn` (synchronous, must not throw); returns a function that runs it now and unregisters it. */
export function atCleanup(fn) {
  install()
  const id = next++
  steps.set(id, fn)
  return () => {
    if (!steps.delete(id)) return
    safely(fn)
  }
}

/** Run every registered step, newest first. */
export function runCleanups() {
  const pending = [...steps.entries()].reverse()
  steps.clear()
  for (const [, fn] of pending) safely(fn)
}

function safely(fn) {
  try {
    fn()
  } catch (err) {
    process.stderr.write(`rig cleanup: ${err?.stack ?? err}\n`)
  }
}

function install() {
  if (installed) return
  installed = true
  process.once('exit', runCleanups)
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
    const onSignal = () => {
      runCleanups()
      // die of the same signal, as if this handler had not been here
      process.removeListener(signal, onSignal)
      process.kill(process.pid, signal)
    }
    process.on(signal, onSignal)
  }
}

/** Sleep without returning to the event loop (cleanup steps run inside 'exit', where nothing async runs). */
export function sleepSync(ms) {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms)
}

/** Gone, or a zombie (ended, not yet reaped by its parent: this process, whose event loop may not run again). */
export function processGone(pid) {
  try {
    const stat = readStat(pid)
    // the state is the first field after the command name, which is in parentheses and may hold spaces
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) === 'Z'
  } catch {
    return true
  }
}

/** SIGTERM, wait up to `graceMs` for it to end, then SIGKILL. By pid only. */
export function stopProcessSync(pid, graceMs = 3000) {
  if (!pid || processGone(pid)) return
  try {
    process.kill(pid, 'SIGTERM')
  } catch {
    return
  }
  const deadline = Date.now() + graceMs
  while (Date.now() < deadline) {
    if (processGone(pid)) return
    sleepSync(20)
  }
  try {
    process.kill(pid, 'SIGKILL')
  } catch {
    // ended meanwhile
  }
}

function readStat(pid) {
  return readFileSync(`/proc/${pid}/stat`, 'utf8')
}

/**
 * A promise that settles when `child` has ended and been reaped (its 'exit'
 * event), or after `timeoutMs`; the timer keeps the event loop alive for
 * that long even when the child was unref()'d.
 */
export function reaped(child, timeoutMs = 5000) {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve()
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, timeoutMs)
    child.once('exit', () => {
      clearTimeout(timer)
      resolve()
    })
  })
}
