/*
 * viewctl's link addon (src/store/build/native.ts): links made relative to
 * an open directory, a batch per call.
 *
 * Node has no *at calls: every fs.symlinkSync names its place by a path that
 * the kernel walks component by component, and every call crosses from
 * JavaScript into C++ and libuv with its own argument checks and strings. A
 * build makes a hundred thousand links into a few hundred directories; here
 * each directory is opened once (openDir), without following a symlink at
 * any component below the place it starts from, and a batch of links is made
 * into it with symlinkat() or linkat(), the kernel resolving one name per
 * link. Failures are reported per entry, as an errno, and the JavaScript
 * side turns them into the same errors fs.symlinkSync would throw.
 *
 * Every function is synchronous and keeps no state, so it may be called from
 * any thread (the link workers load it too). A descriptor openDir gives is
 * closed by closeDir: Node's fs.closeSync warns, in a worker thread, about a
 * descriptor it did not open itself.
 *
 *   openDir(path, rel)                      -> fd, or -errno
 *   closeDir(fd)                            -> 0, or -errno
 *   symlinks(dirfd, targets, names, errs)   -> number of failures
 *   links(dirfd, sources, names, errs[, fromfd]) -> number of failures
 *   sharedLinks(dirfd, targets, names, errs, fromfd) -> number of failures
 *
 * `targets`, `sources` and `names` hold one entry per slot of `errs` (an
 * Int32Array), joined by NUL; names are single components. A source is a
 * path as the process sees it (absolute, or relative to the working
 * directory), or relative to `fromfd`, a directory openDir opened (the base
 * tree's, when a build shares its entries). errs[i] is 0 or the errno of
 * entry i.
 *
 * sharedLinks links a symlink view's entries from the base tree (`fromfd`)
 * only where the base's entry is a symlink whose target is the one the plan
 * gives (`targets`): an entry of that tree changed by hand is not carried
 * into the new one. errs[i] is -1 for an entry there that is not that
 * symlink, to be made anew; otherwise 0, or the errno of readlinkat (an
 * entry missing there: ENOENT, as linkat would say) or of linkat.
 *
 * Built by scripts/build-native.mjs into prebuilds/<platform>-<arch>/.
 */
#define _GNU_SOURCE
#define NAPI_VERSION 8
#include <node_api.h>

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DIR_FLAGS (O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)

static void throw_type(napi_env env, const char *msg) {
  napi_throw_type_error(env, NULL, msg);
}

/* A JavaScript string as a malloc'ed UTF-8 C string (free it), or NULL after throwing. */
static char *utf8(napi_env env, napi_value v, size_t *length) {
  size_t len = 0;
  if (napi_get_value_string_utf8(env, v, NULL, 0, &len) != napi_ok) {
    throw_type(env, "expected a string");
    return NULL;
  }
  char *buf = malloc(len + 1);
  if (buf == NULL) {
    napi_throw_error(env, "ENOMEM", "out of memory");
    return NULL;
  }
  napi_get_value_string_utf8(env, v, buf, len + 1, &len);
  if (length != NULL) *length = len;
  return buf;
}

static napi_value int_value(napi_env env, int32_t n) {
  napi_value v;
  napi_create_int32(env, n, &v);
  return v;
}

/* Is `name` (len bytes) a component the containment rules allow: not empty, `.` or `..`? */
static int plain_component(const char *name, size_t len) {
  if (len == 0) return 0;
  if (name[0] == '.' && (len == 1 || (len == 2 && name[1] == '.'))) return 0;
  return 1;
}

/*
 * openDir(path, rel): open `path` as a directory (its last component not
 * followed if a symlink), then each `/`-separated component of `rel` below
 * it the same way, one openat() at a time. Returns the descriptor of the
 * last one, or -errno (ELOOP or ENOTDIR for a symlink met on the way).
 */
static napi_value open_dir(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 2) {
    throw_type(env, "openDir(path, rel)");
    return NULL;
  }
  char *base = utf8(env, argv[0], NULL);
  if (base == NULL) return NULL;
  size_t rlen = 0;
  char *rel = utf8(env, argv[1], &rlen);
  if (rel == NULL) {
    free(base);
    return NULL;
  }
  int fd = open(base, DIR_FLAGS);
  int result = fd < 0 ? -errno : fd;
  char *at = rel;
  char *end = rel + rlen;
  while (fd >= 0 && at < end) {
    char *slash = memchr(at, '/', (size_t)(end - at));
    char *stop = slash == NULL ? end : slash;
    *stop = 0;
    if (!plain_component(at, (size_t)(stop - at))) {
      close(fd);
      fd = -1;
      result = -EINVAL;
      break;
    }
    int next = openat(fd, at, DIR_FLAGS);
    int err = errno;
    close(fd);
    fd = next;
    result = next < 0 ? -err : next;
    at = stop + 1;
  }
  free(base);
  free(rel);
  return int_value(env, result);
}

/* closeDir(fd) */
static napi_value close_dir(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int32_t fd;
  if (argc < 1 || napi_get_value_int32(env, argv[0], &fd) != napi_ok) {
    throw_type(env, "closeDir(fd)");
    return NULL;
  }
  return int_value(env, close(fd) == 0 ? 0 : -errno);
}

typedef int (*link_fn)(int fromfd, const char *from, int dirfd, const char *name);

static int make_symlink(int fromfd, const char *target, int dirfd, const char *name) {
  (void)fromfd;
  return symlinkat(target, dirfd, name);
}

static int make_link(int fromfd, const char *source, int dirfd, const char *name) {
  return linkat(fromfd, source, dirfd, name, 0);
}

/* The batch calls: (dirfd, froms, names, errs[, fromfd]) -> failures. */
static napi_value batch(napi_env env, napi_callback_info info, link_fn make) {
  size_t argc = 5;
  napi_value argv[5];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 4) {
    throw_type(env, "(dirfd, froms, names, errs[, fromfd])");
    return NULL;
  }
  int32_t dirfd;
  if (napi_get_value_int32(env, argv[0], &dirfd) != napi_ok) {
    throw_type(env, "dirfd must be a number");
    return NULL;
  }
  int32_t fromfd = AT_FDCWD;
  napi_valuetype fromType = napi_undefined;
  if (argc >= 5) napi_typeof(env, argv[4], &fromType);
  if (fromType != napi_undefined && napi_get_value_int32(env, argv[4], &fromfd) != napi_ok) {
    throw_type(env, "fromfd must be a number");
    return NULL;
  }
  napi_typedarray_type type;
  size_t count;
  void *data;
  bool is_typed = false;
  napi_is_typedarray(env, argv[3], &is_typed);
  if (!is_typed || napi_get_typedarray_info(env, argv[3], &type, &count, &data, NULL, NULL) != napi_ok || type != napi_int32_array) {
    throw_type(env, "errs must be an Int32Array");
    return NULL;
  }
  int32_t *errs = data;
  size_t flen = 0, nlen = 0;
  char *froms = utf8(env, argv[1], &flen);
  if (froms == NULL) return NULL;
  char *names = utf8(env, argv[2], &nlen);
  if (names == NULL) {
    free(froms);
    return NULL;
  }
  /* one entry per slot of errs: count - 1 NULs in each string */
  size_t nuls_f = 0, nuls_n = 0;
  for (size_t i = 0; i < flen; i++) nuls_f += froms[i] == 0;
  for (size_t i = 0; i < nlen; i++) nuls_n += names[i] == 0;
  if (count == 0 || nuls_f != count - 1 || nuls_n != count - 1) {
    free(froms);
    free(names);
    throw_type(env, "froms and names must hold one entry per slot of errs");
    return NULL;
  }
  int32_t failures = 0;
  const char *f = froms;
  const char *n = names;
  for (size_t i = 0; i < count; i++) {
    size_t nl = strlen(n);
    if (memchr(n, '/', nl) != NULL || !plain_component(n, nl)) errs[i] = EINVAL;
    else if (make(fromfd, f, dirfd, n) == 0) errs[i] = 0;
    else errs[i] = errno == 0 ? -1 : errno; /* -1: the base's entry differs (sharedLinks) */
    if (errs[i] != 0) failures++;
    f += strlen(f) + 1;
    n += nl + 1;
  }
  free(froms);
  free(names);
  return int_value(env, failures);
}

static napi_value symlinks(napi_env env, napi_callback_info info) {
  return batch(env, info, make_symlink);
}

static napi_value links(napi_env env, napi_callback_info info) {
  return batch(env, info, make_link);
}

/* Link the base's entry `name` into dirfd only if it is a symlink to `target`; -1 with errno 0 when it is another entry. */
static int make_checked_link(int fromfd, const char *target, int dirfd, const char *name) {
  char buf[4096];
  size_t tlen = strlen(target);
  ssize_t got = readlinkat(fromfd, name, buf, sizeof buf);
  if (got < 0 && errno != EINVAL) return -1;
  if (got < 0 || (size_t)got >= sizeof buf || (size_t)got != tlen || memcmp(buf, target, tlen) != 0) {
    errno = 0;
    return -1;
  }
  return linkat(fromfd, name, dirfd, name, 0);
}

static napi_value shared_links(napi_env env, napi_callback_info info) {
  return batch(env, info, make_checked_link);
}

NAPI_MODULE_INIT() {
  napi_property_descriptor props[] = {
    { "openDir", NULL, open_dir, NULL, NULL, NULL, napi_enumerable, NULL },
    { "closeDir", NULL, close_dir, NULL, NULL, NULL, napi_enumerable, NULL },
    { "symlinks", NULL, symlinks, NULL, NULL, NULL, napi_enumerable, NULL },
    { "links", NULL, links, NULL, NULL, NULL, napi_enumerable, NULL },
    { "sharedLinks", NULL, shared_links, NULL, NULL, NULL, napi_enumerable, NULL },
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}
