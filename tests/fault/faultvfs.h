/*  faultvfs.h: a SQLite VFS for tests that fails chosen I/O calls.

    The shim wraps the VFS that was the default when it was registered
    (on Linux the "unix" VFS) and passes every call through.  On command
    it fails the calls of one kind instead, the way SQLite's own test
    suite injects faults:

        kind      calls counted                    failure returned
        read      xRead                            SQLITE_IOERR_READ
        write     xWrite                           SQLITE_IOERR_WRITE
        sync      xSync                            SQLITE_IOERR_FSYNC
        truncate  xTruncate                        SQLITE_IOERR_TRUNCATE
        lock      xLock, and xShmLock requests     SQLITE_BUSY
                  for the exclusive WAL write lock
        full      xWrite                           SQLITE_FULL

    In WAL mode a write transaction takes its lock through xShmLock, not
    xLock, which is why the lock kind also covers the WAL write lock.
    The shim presents version 2 file methods, so SQLite never memory-maps
    a file and every page read goes through xRead.

    A fault is armed per kind: after fail_after more calls of that kind
    succeed, the next one fails, and with persist every one after it too,
    until the kind is cleared.  Arming a kind again restarts its count.

    Control is in-process through the functions below, or from another
    process through a control file (see faultvfs_watch).  The shim is for
    tests only: it is never linked into an installed program.
*/
#ifndef LAPSE_FAULTVFS_H
#define LAPSE_FAULTVFS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*  The VFS name the shim registers under.  */
#define FAULTVFS_NAME "faultvfs"

/*  The minimum time between two stat calls on the control file.  */
#define FAULTVFS_POLL_MS 2

typedef enum {
    FAULTVFS_READ,
    FAULTVFS_WRITE,
    FAULTVFS_SYNC,
    FAULTVFS_TRUNCATE,
    FAULTVFS_LOCK,
    FAULTVFS_FULL,
    FAULTVFS_KIND_COUNT
} faultvfs_kind_t;

/*  Registers the shim around the current default VFS, as the new default
    when make_default is true.  Calling it again does nothing.  Returns 0,
    or -1 when SQLite has no default VFS or refused the registration.  */
int
faultvfs_register (bool make_default);

/*  Arms kind: the next fail_after calls of it succeed, the one after
    fails, and with persist so does every later one until cleared.  */
void
faultvfs_set (faultvfs_kind_t kind, uint64_t fail_after, bool persist);

/*  Disarms kind.  Its counts stay.  */
void
faultvfs_clear (faultvfs_kind_t kind);

/*  Disarms every kind.  */
void
faultvfs_clear_all (void);

/*  Returns true while kind is armed.  A one-shot fault disarms itself
    when it fires.  */
bool
faultvfs_armed (faultvfs_kind_t kind);

/*  Returns how many calls of kind the shim has seen since it was
    registered.  */
uint64_t
faultvfs_calls (faultvfs_kind_t kind);

/*  Returns how many calls of kind the shim has failed since it was
    registered.  */
uint64_t
faultvfs_failures (faultvfs_kind_t kind);

/*  Returns the kind's name as the control commands spell it: "read",
    "write", "sync", "truncate", "lock" or "full".  */
const char *
faultvfs_kind_name (faultvfs_kind_t kind);

/*  Applies one control command, the same text as a control file line:

        KIND fail-after=N persist=0|1   arm KIND (both keys optional:
                                        fail-after defaults to 0,
                                        persist to 0)
        clear                           disarm every kind
        clear KIND                      disarm KIND

    A blank line or one starting with '#' does nothing.  Returns 0, or -1
    with a message in error when the command is invalid, in which case
    nothing changes.  */
int
faultvfs_command (const char *line, char *error, size_t error_size);

/*  Makes the shim watch the control file at path (NULL stops watching).
    At most every FAULTVFS_POLL_MS, on the next file call, the shim looks
    at the file's inode, size and modification time, and when any of
    them changed it applies every line of the file in order, skipping
    invalid lines.  Writing the file by rename therefore always counts as
    a change.  A file that is missing or unreadable leaves the faults as
    they are.  While a file is watched the shim reports on stderr, one
    logfmt line each: every read of the file (msg="fault control applied"
    with the commands), every invalid line (msg="fault control line
    invalid"), and the first failure of each armed fault (msg="fault
    injected" with the kind and the call's number).  */
void
faultvfs_watch (const char *path);

#endif
