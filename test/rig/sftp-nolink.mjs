#!/usr/bin/env node
/**
 * An SFTP server that has no hard links: OpenSSH's sftp-server, with every
 * `hardlink@openssh.com` request answered SSH_FX_OP_UNSUPPORTED instead of
 * being passed on, the answer an SFTP server gives for an operation its
 * filesystem cannot do. sshfs turns that answer into EOPNOTSUPP, and the
 * kernel hands it to the caller of link(2) on the mount: the ENOTSUP a
 * filesystem without hard links gives.
 *
 * sshfs starts it in place of ssh (`-o ssh_command=node …/sftp-nolink.mjs`)
 * and speaks SFTP over its stdin and stdout; the arguments sshfs passes for
 * ssh are ignored. Nothing goes over a network.
 *
 * The SFTP stream is packets of `uint32 length` then that many bytes, the
 * first being the type; an extended request (type 200) carries
 * `uint32 id, string name, …`. Both directions are cut into packets, so an
 * answer made here never lands inside one of the server's.
 */
import { spawn } from 'node:child_process'
import fs from 'node:fs'

const SSH_FXP_STATUS = 101
const SSH_FXP_EXTENDED = 200
const SSH_FX_OP_UNSUPPORTED = 8

const serverPath = ['/usr/lib/openssh/sftp-server', '/usr/lib/sftp-server', '/usr/libexec/sftp-server'].find((p) => fs.existsSync(p))
if (serverPath === undefined) {
  process.stderr.write('sftp-nolink: no sftp-server found (apt-get install openssh-server)\n')
  process.exit(1)
}
const server = spawn(serverPath, [], { stdio: ['pipe', 'pipe', 'inherit'] })

function packets(onPacket) {
  let buffered = Buffer.alloc(0)
  return (chunk) => {
    buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk])
    while (buffered.length >= 4) {
      const length = buffered.readUInt32BE(0)
      if (buffered.length < 4 + length) break
      onPacket(buffered.subarray(0, 4 + length))
      buffered = buffered.subarray(4 + length)
    }
  }
}

function unsupported(id) {
  const message = Buffer.from('hard links are not supported by this server')
  const body = Buffer.alloc(1 + 4 + 4 + 4 + message.length + 4)
  let at = body.writeUInt8(SSH_FXP_STATUS, 0)
  at = body.writeUInt32BE(id, at)
  at = body.writeUInt32BE(SSH_FX_OP_UNSUPPORTED, at)
  at = body.writeUInt32BE(message.length, at)
  at += message.copy(body, at)
  body.writeUInt32BE(0, at) // language tag: empty
  const head = Buffer.alloc(4)
  head.writeUInt32BE(body.length)
  return Buffer.concat([head, body])
}

server.stdout.on('data', packets((p) => process.stdout.write(p)))
process.stdin.on(
  'data',
  packets((p) => {
    if (p[4] === SSH_FXP_EXTENDED) {
      const id = p.readUInt32BE(5)
      const nameLength = p.readUInt32BE(9)
      if (p.subarray(13, 13 + nameLength).toString() === 'hardlink@openssh.com') {
        process.stdout.write(unsupported(id))
        return
      }
    }
    server.stdin.write(p)
  }),
)
process.stdin.on('end', () => server.stdin.end())
server.on('exit', (code) => process.exit(code ?? 0))
