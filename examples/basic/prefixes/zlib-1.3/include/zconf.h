/* zconf.h -- placeholder configuration header for the viewctl example prefix zlib-1.3 */
#ifndef ZCONF_H
#define ZCONF_H
#define MAX_WBITS 15
#endif /* ZCONF_H */
