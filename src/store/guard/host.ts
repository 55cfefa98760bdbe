/**
 * Who a process is, in a form another process can check later: the host, the
 * kernel's boot id (a hostname outlives a reboot, a boot id does not) and the
 * process's start time in clock ticks since boot (a pid can be reused, a pid
 * with its start time cannot). From /proc on Linux; elsewhere the boot id and
 * start time are empty and only the pid is checked.
 */
import fs from 'node:fs'
import os from 'node:os'

export interface ProcessId {
  host: string
  boot: string
  pid: number
  /** Start time in clock ticks since boot ('' where /proc is missing). */
  start: string
}

let bootIdCache: string | undefined

export function bootId(): string {
  if (bootIdCache === undefined) {
    try {
      bootIdCache = fs.readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim()
    } catch {
      bootIdCache = ''
    }
  }
  return bootIdCache
}

/** Field 22 of /proc/<pid>/stat, after the command name (which may hold spaces and parentheses). */
export function processStart(pid: number): string | null {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8')
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return fields[19] ?? null
  } catch {
    return null
  }
}

export function thisProcess(): ProcessId {
  return { host: os.hostname(), boot: bootId(), pid: process.pid, start: processStart(process.pid) ?? '' }
}

/** Is `id` a process of this machine, since its last boot? Only then can its life be checked here. */
export function onThisBoot(id: Pick<ProcessId, 'host' | 'boot'>): boolean {
  return id.host === os.hostname() && (id.boot === '' || bootId() === '' || id.boot === bootId())
}

/** Same host and boot: false only when the process is certainly gone (or its pid now belongs to another). */
export function stillRuns(id: Pick<ProcessId, 'pid' | 'start'>): boolean {
  try {
    process.kill(id.pid, 0)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false
  }
  if (!id.start) return true
  const start = processStart(id.pid)
  return start === null || start === id.start
}

/** Same host, other boot: the process died with the reboot. Same boot: stillRuns. Another host: unknown (null). */
export function provablyDead(id: ProcessId): boolean | null {
  if (id.host !== os.hostname()) return null
  if (id.boot !== '' && bootId() !== '' && id.boot !== bootId()) return true
  return !stillRuns(id)
}
