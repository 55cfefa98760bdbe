import type { DelayProxy } from './delay-proxy.mjs'
import type { Sshd } from './sshd.mjs'

export type MountName = 'uncached' | 'stale' | 'delayed'
export declare const UNCACHED: string[]
export declare function sharedFsUnavailable(): string | null
export declare function isMounted(dir: string): boolean
export declare function unmount(dir: string): void
export interface SshfsMount {
  path: string
  options: string[]
  pid: number
  unmount(): Promise<void>
}
export declare function mountSshfs(sshd: Sshd, remoteDir: string, mountpoint: string, options?: { port?: number; options?: string[] }): Promise<SshfsMount>
export interface SharedFs {
  root: string
  export: string
  sshd: Sshd
  proxy: DelayProxy | null
  delayMs: number
  mounts: Partial<Record<MountName, SshfsMount>>
  /** The same path as `serverPath` (inside the export), seen through a mount. */
  at(mount: MountName, serverPath: string): string
  stop(): Promise<void>
}
export declare function startSharedFs(options?: { delayMs?: number; mounts?: MountName[]; staleOptions?: string[]; label?: string }): Promise<SharedFs>
