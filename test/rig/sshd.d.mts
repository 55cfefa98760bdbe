export declare const HOST_ALIAS: string
export declare function sshdUnavailable(): string | null
export declare function onPath(cmd: string): boolean
export declare function freePort(): Promise<number>
export interface Sshd {
  dir: string
  port: number
  user: string
  identity: string
  sshConfig: string
  pid: number
  /** Arguments an ssh client needs to reach this sshd (optionally on another port, e.g. a proxy's); add the command. */
  sshArgs(port?: number): string[]
  log(): string
  stop(): Promise<void>
}
export declare function startSshd(options?: { label?: string }): Promise<Sshd>
