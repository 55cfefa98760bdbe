/*
 * The floor of a symlink farm (bench/run.mjs): `floor DEST PREFIX...` merges
 * every PREFIX into DEST as `cp -rs PREFIX/. ... DEST/` does, a symlink per
 * file whose target is the file's absolute path, but with the fewest and
 * cheapest system calls: each directory is listed once with its file types
 * (no stat), each directory of DEST is opened once per prefix, and every link
 * is a symlinkat() into that open directory, so the kernel resolves one name
 * per link. What a build costs above this is the tool's own work.
 *
 * Compiled by the bench into its work directory when `cc` is there.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char target[PATH_MAX];

static void die(const char *what, const char *name) {
  fprintf(stderr, "floor: %s %s: %s\n", what, name, strerror(errno));
  exit(1);
}

/* Link everything in `src` (an open directory, whose path is target[0..len)) into the open directory `dest`. */
static void merge(int src, int dest, size_t len) {
  int fd = dup(src);
  if (fd < 0) die("dup", target);
  DIR *dir = fdopendir(fd);
  if (dir == NULL) die("fdopendir", target);
  struct dirent *e;
  while ((e = readdir(dir)) != NULL) {
    const char *name = e->d_name;
    if (name[0] == '.' && (name[1] == 0 || (name[1] == '.' && name[2] == 0))) continue;
    size_t n = strlen(name);
    if (len + 1 + n >= sizeof target) {
      errno = ENAMETOOLONG;
      die("path", name);
    }
    target[len] = '/';
    memcpy(target + len + 1, name, n + 1);
    if (e->d_type == DT_DIR) {
      if (mkdirat(dest, name, 0777) != 0 && errno != EEXIST) die("mkdirat", name);
      int sub = openat(dest, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (sub < 0) die("openat", name);
      int from = openat(src, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (from < 0) die("openat", target);
      merge(from, sub, len + 1 + n);
      close(from);
      close(sub);
    } else if (symlinkat(target, dest, name) != 0) {
      die("symlinkat", target);
    }
    target[len] = 0;
  }
  closedir(dir);
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: floor DEST PREFIX...\n");
    return 2;
  }
  int dest = open(argv[1], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dest < 0) die("open", argv[1]);
  for (int i = 2; i < argc; i++) {
    size_t len = strlen(argv[i]);
    if (len >= sizeof target) {
      errno = ENAMETOOLONG;
      die("path", argv[i]);
    }
    memcpy(target, argv[i], len + 1);
    int src = open(argv[i], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (src < 0) die("open", argv[i]);
    merge(src, dest, len);
    close(src);
  }
  return 0;
}
