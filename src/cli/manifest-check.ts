import { isManifestPath } from '../manifest/target.js'

/**
 * The view a target names, for status and verify. Given a manifest, they
 * refuse what regenerate would refuse in it (a bad `env:` entry, an unknown
 * key), but not a missing prefix; the view path the check found is what they
 * are then given, so the manifest is read and parsed once. The checker and
 * its YAML parser load only when a manifest is given.
 */
export async function checkedTarget(target: string): Promise<string> {
  if (!isManifestPath(target)) return target
  const { checkManifest } = await import('../manifest/load.js')
  return checkManifest(target)
}
