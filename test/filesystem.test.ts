/**
 * What a store's filesystem means for the guards (src/store/guard/filesystem.ts):
 * mountinfo lines as NFS, Lustre, BeeGFS, GPFS, CIFS and FUSE clients write
 * them (none of those can be mounted on a test machine), and the real
 * filesystems here: the sshfs rig and a tmpfs.
 */
import fs from 'node:fs'
import path from 'node:path'
import { describe, expect, it } from 'vitest'
import { classifyMount, filesystemOf, parseMountinfo } from '../src/store/guard/filesystem.js'
import { mountTmpfs, requireMount } from './mounts.js'
import { requireSharedFs, useSharedFs } from './rig/vitest.js'

const rig = useSharedFs({ mounts: ['uncached'] })

function classify(line: string, files: Record<string, string> = {}) {
  const [entry] = parseMountinfo(line)
  expect(entry, line).toBeDefined()
  return classifyMount(entry!, (p) => {
    if (p in files) return files[p]!
    throw Object.assign(new Error(`ENOENT: ${p}`), { code: 'ENOENT' })
  })
}

describe('classifyMount', () => {
  it('local filesystems: kernel locks, fresh reads, not remote', () => {
    for (const line of [
      '27 1 254:0 / / rw,relatime - ext4 /dev/vda rw,discard',
      '30 25 0:27 / /dev/shm rw,relatime - tmpfs tmpfs rw,size=24683772k',
      '88 27 0:52 / /scratch rw,noatime - xfs /dev/nvme0n1 rw,attr2,inode64',
    ]) {
      expect(classify(line)).toMatchObject({ remote: false, locks: 'cluster', exclusive: true, staleBy: null })
    }
  })

  it('NFS: the lock manager reaches every client, unless nolock or local_lock=posix|all; nocto and long attribute caching are stale reads', () => {
    const nfs = (opts: string, type = 'nfs4') => classify(`101 27 0:60 / /opt/views rw,relatime shared:80 - ${type} fs1:/export/views rw,vers=4.2,${opts}`)
    expect(nfs('rsize=1048576,hard,proto=tcp,local_lock=none')).toMatchObject({ remote: true, locks: 'cluster', staleBy: null, exclusive: true })
    expect(nfs('nolock,proto=tcp', 'nfs')).toMatchObject({ locks: 'client', locksBy: 'nolock' })
    expect(nfs('local_lock=all')).toMatchObject({ locks: 'client', locksBy: 'local_lock=all' })
    expect(nfs('local_lock=posix')).toMatchObject({ locks: 'client', locksBy: 'local_lock=posix' })
    expect(nfs('local_lock=flock')).toMatchObject({ locks: 'cluster' }) // fcntl (POSIX) locks still go to the server
    expect(nfs('nocto')).toMatchObject({ staleBy: 'nocto' })
    expect(nfs('actimeo=600')).toMatchObject({ staleBy: 'actimeo=600' })
    expect(nfs('acregmax=60,acdirmax=120')).toMatchObject({ staleBy: 'acdirmax=120' })
    expect(nfs('actimeo=60')).toMatchObject({ staleBy: null })
    expect(classify('101 27 0:60 / /old rw - nfs fs1:/old rw,vers=2,nolock')).toMatchObject({ exclusive: false, locks: 'client' })
  })

  it('Lustre: flock reaches every client, localflock only this one, neither refuses fcntl', () => {
    const lustre = (opts: string) => classify(`120 27 0:70 / /lustre rw - lustre 10.0.0.1@o2ib:/scratch rw,${opts}`)
    expect(lustre('flock,lazystatfs')).toMatchObject({ remote: true, locks: 'cluster', locksBy: 'flock' })
    expect(lustre('localflock')).toMatchObject({ locks: 'client', locksBy: 'localflock' })
    expect(lustre('lazystatfs')).toMatchObject({ locks: 'none' })
    expect(lustre('noflock')).toMatchObject({ locks: 'none', locksBy: 'noflock' })
  })

  it('BeeGFS: global locks only with tuneUseGlobalFileLocks = true in the client configuration', () => {
    const line = '130 27 0:80 / /beegfs rw - beegfs beegfs_nodev rw,cfgFile=/etc/beegfs/client.conf'
    expect(classify(line)).toMatchObject({ remote: true, locks: 'client' })
    expect(classify(line, { '/etc/beegfs/client.conf': 'tuneUseGlobalFileLocks = false\n' })).toMatchObject({ locks: 'client' })
    expect(classify(line, { '/etc/beegfs/client.conf': 'sysMgmtdHost = m1\ntuneUseGlobalFileLocks   = true\n' })).toMatchObject({ locks: 'cluster' })
  })

  it('GPFS and CephFS lock across the cluster; CIFS unless nobrl; FUSE keeps locks on the client; object stores have no O_EXCL', () => {
    expect(classify('140 27 0:90 / /gpfs/fs1 rw - gpfs fs1 rw')).toMatchObject({ remote: true, locks: 'cluster' })
    expect(classify('141 27 0:91 / /ceph rw - ceph 10.0.0.1:/ rw,name=admin')).toMatchObject({ locks: 'cluster' })
    expect(classify('142 27 0:92 / /smb rw - cifs //srv/share rw,vers=3.1.1')).toMatchObject({ locks: 'cluster' })
    expect(classify('142 27 0:92 / /smb rw - cifs //srv/share rw,nobrl')).toMatchObject({ locks: 'client', locksBy: 'nobrl' })
    expect(classify('45 27 0:40 / /mnt/v rw,nosuid,nodev,relatime - fuse.sshfs host:/v rw,user_id=0,group_id=0')).toMatchObject({ remote: true, locks: 'client', exclusive: true })
    expect(classify('46 27 0:41 / /mnt/s3 rw - fuse.s3fs s3fs rw')).toMatchObject({ remote: true, exclusive: false })
  })

  it('reads mount points with escaped spaces', () => {
    const [m] = parseMountinfo('45 27 0:40 / /mnt/with\\040space rw - fuse.sshfs host:/v rw')
    expect(m!.mountPoint).toBe('/mnt/with space')
  })
})

describe('filesystemOf', () => {
  it('finds the sshfs mount of the rig from /proc/self/mountinfo', (ctx) => {
    requireSharedFs(ctx)
    const dir = fs.mkdtempSync(path.join(rig().export, 'fs-'))
    const seen = filesystemOf(rig().at('uncached', dir))
    expect(seen).toMatchObject({ type: 'fuse.sshfs', remote: true, locks: 'client', exclusive: true, mountPoint: rig().mounts.uncached!.path })
    expect(filesystemOf(dir)).toMatchObject({ remote: false })
  })

  it('finds a tmpfs mounted inside another filesystem', (ctx) => {
    requireMount(ctx)
    const dir = mountTmpfs('size=1m')
    fs.mkdirSync(path.join(dir, 'sub'))
    expect(filesystemOf(path.join(dir, 'sub'))).toMatchObject({ type: 'tmpfs', mountPoint: dir, remote: false })
  })
})
