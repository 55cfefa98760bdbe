export declare function atCleanup(fn: () => void): () => void
export declare function runCleanups(): void
export declare function sleepSync(ms: number): void
export declare function processGone(pid: number): boolean
export declare function stopProcessSync(pid: number, graceMs?: number): void
export declare function reaped(child: import('node:child_process').ChildProcess, timeoutMs?: number): Promise<void>
