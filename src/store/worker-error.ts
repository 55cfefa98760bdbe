/**
 * An error crossing a thread boundary: a worker (link-worker, rm-worker)
 * sends it as plain data (an Error's own fields do not survive
 * postMessage), and the main thread revives it as an Error with the errno
 * fields translateOsError reads.
 */
export interface WorkerError {
  message: string
  code?: string
  errno?: number
  syscall?: string
  path?: string
  dest?: string
  stack?: string
}

export function describeError(err: unknown): WorkerError {
  if (!(err instanceof Error)) return { message: String(err) }
  const e = err as NodeJS.ErrnoException & { dest?: string }
  return { message: e.message, code: e.code, errno: e.errno, syscall: e.syscall, path: e.path, dest: e.dest, stack: e.stack }
}

export function reviveError(e: WorkerError): Error {
  const err = new Error(e.message) as NodeJS.ErrnoException & { dest?: string }
  if (e.code !== undefined) err.code = e.code
  if (e.errno !== undefined) err.errno = e.errno
  if (e.syscall !== undefined) err.syscall = e.syscall
  if (e.path !== undefined) err.path = e.path
  if (e.dest !== undefined) err.dest = e.dest
  if (e.stack !== undefined) err.stack = e.stack
  return err
}
