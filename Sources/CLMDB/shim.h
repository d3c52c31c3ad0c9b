#ifndef TALLY_CLMDB_SHIM_H
#define TALLY_CLMDB_SHIM_H
/* liblmdb from Debian's liblmdb-dev (0.9.24). Only Sources/TallyLMDB imports this module. */
#include <lmdb.h>

/* A hint that the bytes at `address` will be read soon; no effect on what the program does. */
static inline void tally_prefetch(const void *address) { __builtin_prefetch(address, 0, 3); }
#endif
