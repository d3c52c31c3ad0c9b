#ifndef CTALLY_SQLITE_H
#define CTALLY_SQLITE_H

/// Turns off SQLite's memory statistics for this process: `sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0)`.
/// With them on (Debian's default), every SQLite allocation takes one process-wide mutex, and read
/// models rebuilt on several threads queue on it. Must run before SQLite is first used; afterwards it
/// changes nothing and returns SQLITE_MISUSE (21). Returns SQLite's result code.
int tally_sqlite_disable_memory_statistics(void);

#endif
