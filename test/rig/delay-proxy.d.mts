export interface DelayProxy {
  port: number
  pid: number
  stats(): { chunks: number; meanHoldMs: number | null } | null
  stop(): Promise<void>
}
export declare function startDelayProxy(targetPort: number, delayMs: number, options?: { statsFile?: string }): Promise<DelayProxy>
