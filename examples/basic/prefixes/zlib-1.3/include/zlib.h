/* zlib.h -- placeholder header for the viewctl example prefix zlib-1.3 */
#ifndef ZLIB_H
#define ZLIB_H
#include "zconf.h"
#define ZLIB_VERSION "1.3"
#define ZLIB_VERNUM 0x1300
const char *zlibVersion(void);
#endif /* ZLIB_H */
