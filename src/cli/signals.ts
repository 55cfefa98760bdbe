/**
 * SIGINT, SIGTERM and SIGHUP during a writer command: the first one asks the
 * library to stop at its next safe point (it removes its staging directory
 * and leaves the view as it was); the command then exits with the
 * conventional 128 + signal number. A second signal exits at once; what it
 * leaves behind is cleared by the next writer.
 */
import os from 'node:os'

const HANDLED = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const
type HandledSignal = (typeof HANDLED)[number]

export interface Interruptible {
  signal: AbortSignal
  /** The exit status for the signal received, or null when none came. */
  exitStatus(): number | null
  dispose(): void
}

export function interruptible(): Interruptible {
  const controller = new AbortController()
  let received: HandledSignal | null = null
  const handler = (sig: HandledSignal) => {
    if (received) process.exit(128 + os.constants.signals[sig])
    received = sig
    controller.abort(sig)
  }
  for (const sig of HANDLED) process.on(sig, handler)
  return {
    signal: controller.signal,
    exitStatus: () => (received ? 128 + os.constants.signals[received] : null),
    dispose() {
      for (const sig of HANDLED) process.off(sig, handler)
    },
  }
}
