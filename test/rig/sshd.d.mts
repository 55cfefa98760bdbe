export declare const HOST_ALIAS: string
export declare function sshdUnavailable(): string | null
export declare function onPath(cmd: string): boolean
export declare function freePort(): Promise<number>
export interface Sshd {
  dir: string
  port: number
  /** Where sshd listens (127.0.0.1 unless started with another address). */
  address: string
  user: string
  identity: string
  sshConfig: string
  pid: number
  /** Arguments an ssh client needs to reach this sshd (optionally on another port, e.g. a proxy's); add the command. */
  sshArgs(port?: number): string[]
  log(): string
  stop(): Promise<void>
}
/**
 * `wrap`: a command that execs its arguments (sshd's command line), to run sshd in another
 * network or mount namespace; `address`: where it listens (default 127.0.0.1).
 */
export declare function startSshd(options?: { label?: string; wrap?: string[]; address?: string }): Promise<Sshd>
