declare module 'fs-native-extensions' {
  interface LockOptions { shared?: boolean }
  /** fcntl(F_OFD_SETLK) on Linux: true when taken, false when another description holds a conflicting lock. */
  export function tryLock(fd: number, offset?: number | LockOptions, length?: number | LockOptions, opts?: LockOptions): boolean
  export function waitForLock(fd: number, offset?: number | LockOptions, length?: number | LockOptions, opts?: LockOptions): Promise<void>
  export function unlock(fd: number, offset?: number, length?: number): void
  const fsx: {
    tryLock: typeof tryLock
    waitForLock: typeof waitForLock
    unlock: typeof unlock
  }
  export default fsx
}
