#ifndef TALLY_CLMDB_SHIM_H
#define TALLY_CLMDB_SHIM_H
/* liblmdb from Debian's liblmdb-dev (0.9.24). Only Sources/TallyLMDB imports this module. */
#include <lmdb.h>
#endif
