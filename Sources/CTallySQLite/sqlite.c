// sqlite3_config is variadic, which Swift cannot call: this is its one use, as a plain function.
#include <sqlite3.h>
#include "CTallySQLite.h"

int tally_sqlite_disable_memory_statistics(void) {
    return sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
}
