/** A cheap checksum for files viewctl writes and reads back itself (the scan cache's index) and for keys. */

/**
 * A 64-bit hash of the bytes, as 16 hex digits: two 32-bit multiply-xor
 * lanes mixed at the end (the construction of cyrb53). Fast enough in
 * JavaScript for the index (tens of KiB); not a cryptographic digest.
 */
export function checksum(data: Uint8Array): string {
  let a = 0x9e3779b9
  let b = 0x85ebca6b
  for (let i = 0; i < data.length; i++) {
    const byte = data[i]!
    a = Math.imul(a ^ byte, 0x9e3779b1)
    b = Math.imul(b ^ byte, 0x5f356495)
  }
  a = Math.imul(a ^ (a >>> 16), 0x85ebca6b) ^ Math.imul(b ^ (b >>> 13), 0xc2b2ae35)
  b = Math.imul(b ^ (b >>> 16), 0x85ebca6b) ^ Math.imul(a ^ (a >>> 13), 0xc2b2ae35)
  return (b >>> 0).toString(16).padStart(8, '0') + (a >>> 0).toString(16).padStart(8, '0')
}
