/*  faultvfs.c: a pass-through SQLite VFS that fails chosen calls.

    A shim file is a fault_file_t followed in the same allocation by the
    wrapped VFS's own file object, which is why szOsFile is the sum of
    both sizes.  Every method counts its call, calls s_trip to decide
    whether this call fails, and otherwise forwards to the wrapped file
    or VFS.

    One mutex guards the fault table and the control file state, so the
    shim is safe with SQLite's threads; the registry uses one thread.
*/
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "faultvfs.h"

/*  Only this much of a control file is read.  Tests write one line.  */
#define CONTROL_FILE_MAX 4096
#define ERROR_MAX 256

/*  The WAL write lock is slot 0 of the wal-index locks (SQLite's wal.c,
    WAL_WRITE_LOCK).  */
#define WAL_WRITE_LOCK_SLOT 0

typedef struct {
    bool armed;
    bool persist;
    uint64_t remaining;         /* calls that still succeed before one fails */
    bool fired;                 /* failed a call since it was armed */
    uint64_t calls;
    uint64_t failures;
} fault_t;

typedef struct {
    sqlite3_file base;
    sqlite3_file *real;         /* the wrapped VFS's file, right after this */
} fault_file_t;

/*  What the control file looked like when it was last applied.  */
typedef struct {
    char *path;
    int64_t checked_ms;         /* monotonic time of the last stat */
    bool seen;
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime;
} control_t;

static const char *const s_kind_names[FAULTVFS_KIND_COUNT] = {
    [FAULTVFS_READ] = "read",
    [FAULTVFS_WRITE] = "write",
    [FAULTVFS_SYNC] = "sync",
    [FAULTVFS_TRUNCATE] = "truncate",
    [FAULTVFS_LOCK] = "lock",
    [FAULTVFS_FULL] = "full",
};

static pthread_mutex_t s_mutex = PTHREAD_MUTEX_INITIALIZER;
static fault_t s_faults[FAULTVFS_KIND_COUNT];
static control_t s_control;
static sqlite3_vfs *s_base;
static sqlite3_vfs s_vfs;

static int64_t
s_mono_ms (void)
{
    struct timespec now;
    clock_gettime (CLOCK_MONOTONIC, &now);
    return (int64_t) now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

/*  ------------------------------------------------------------------
    Commands.  */

static int
s_kind_parse (const char *name, faultvfs_kind_t *kind)
{
    for (int index = 0; index < FAULTVFS_KIND_COUNT; index++) {
        if (strcmp (name, s_kind_names[index]) == 0) {
            *kind = (faultvfs_kind_t) index;
            return 0;
        }
    }
    return -1;
}

static void
s_arm_locked (faultvfs_kind_t kind, uint64_t fail_after, bool persist)
{
    fault_t *fault = &s_faults[kind];
    fault->armed = true;
    fault->persist = persist;
    fault->remaining = fail_after;
    fault->fired = false;
}

/*  Parses "fail-after=N" or "persist=0|1" into the two values.  */
static int
s_option_parse (const char *token, uint64_t *fail_after, bool *persist,
                char *error, size_t error_size)
{
    const char *value = strchr (token, '=');
    size_t key_len = value ? (size_t) (value - token) : strlen (token);
    value = value ? value + 1 : "";

    if (key_len == 10 && strncmp (token, "fail-after", key_len) == 0) {
        char *end = NULL;
        errno = 0;
        unsigned long long number = strtoull (value, &end, 10);
        if (value[0] < '0' || value[0] > '9' || *end != '\0' || errno) {
            snprintf (error, error_size, "invalid fail-after \"%s\", "
                      "expected a whole number of calls", value);
            return -1;
        }
        *fail_after = (uint64_t) number;
        return 0;
    }
    if (key_len == 7 && strncmp (token, "persist", key_len) == 0) {
        if (strcmp (value, "0") != 0 && strcmp (value, "1") != 0) {
            snprintf (error, error_size, "invalid persist \"%s\", "
                      "expected 0 or 1", value);
            return -1;
        }
        *persist = value[0] == '1';
        return 0;
    }
    snprintf (error, error_size, "unknown option \"%s\", expected "
              "fail-after=N or persist=0|1", token);
    return -1;
}

static int
s_unknown_kind (const char *name, char *error, size_t error_size)
{
    snprintf (error, error_size, "unknown fault kind \"%s\", expected "
              "read, write, sync, truncate, lock, full or clear", name);
    return -1;
}

/*  Applies one command held in words[0 .. count - 1].  */
static int
s_command_words_locked (char **words, int count, char *error,
                        size_t error_size)
{
    faultvfs_kind_t kind = FAULTVFS_KIND_COUNT;
    if (strcmp (words[0], "clear") == 0) {
        if (count > 2) {
            snprintf (error, error_size, "clear takes at most one kind, "
                      "got %d words", count - 1);
            return -1;
        }
        if (count == 2 && s_kind_parse (words[1], &kind) != 0)
            return s_unknown_kind (words[1], error, error_size);
        for (int index = 0; index < FAULTVFS_KIND_COUNT; index++)
            if (count == 1 || index == (int) kind)
                s_faults[index].armed = false;
        return 0;
    }

    if (s_kind_parse (words[0], &kind) != 0)
        return s_unknown_kind (words[0], error, error_size);
    uint64_t fail_after = 0;
    bool persist = false;
    for (int index = 1; index < count; index++)
        if (s_option_parse (words[index], &fail_after, &persist, error,
                            error_size) != 0)
            return -1;
    s_arm_locked (kind, fail_after, persist);
    return 0;
}

#define WORDS_MAX 8

static int
s_command_locked (const char *line, char *error, size_t error_size)
{
    char copy[CONTROL_FILE_MAX];
    if (strlen (line) >= sizeof copy) {
        snprintf (error, error_size, "command is %zu bytes, expected at "
                  "most %zu", strlen (line), sizeof copy - 1);
        return -1;
    }
    strcpy (copy, line);

    char *words[WORDS_MAX];
    int count = 0;
    char *save = NULL;
    for (char *word = strtok_r (copy, " \t\r\n", &save); word;
         word = strtok_r (NULL, " \t\r\n", &save)) {
        if (count == 0 && word[0] == '#')
            return 0;
        if (count == WORDS_MAX) {
            snprintf (error, error_size, "command has more than %d words",
                      WORDS_MAX);
            return -1;
        }
        words[count++] = word;
    }
    if (count == 0)
        return 0;
    return s_command_words_locked (words, count, error, error_size);
}

/*  ------------------------------------------------------------------
    The control file.  */

/*  Writes text to stderr as a logfmt quoted value, with quotes and
    backslashes escaped and line breaks shown as "; ".  */
static void
s_print_quoted (const char *text)
{
    fputc ('"', stderr);
    for (const char *at = text; *at; at++) {
        if (*at == '\n')
            fputs ("; ", stderr);
        else if (*at == '"' || *at == '\\')
            fprintf (stderr, "\\%c", *at);
        else if (*at != '\r')
            fputc (*at, stderr);
    }
    fputc ('"', stderr);
}

/*  Applies every line of text, reporting invalid ones, then reports the
    file as applied.  */
static void
s_control_apply_locked (char *text)
{
    char *save = NULL;
    int number = 0;
    for (char *line = strtok_r (text, "\n", &save); line;
         line = strtok_r (NULL, "\n", &save)) {
        number++;
        char error[ERROR_MAX];
        if (s_command_locked (line, error, sizeof error) == 0)
            continue;
        fprintf (stderr, "level=error proc=faultvfs pid=%ld "
                 "msg=\"fault control line invalid\" file=", (long) getpid ());
        s_print_quoted (s_control.path);
        fprintf (stderr, " line=%d error=", number);
        s_print_quoted (error);
        fputc ('\n', stderr);
    }
}

static void
s_control_read_locked (void)
{
    FILE *file = fopen (s_control.path, "r");
    if (!file)
        return;
    char text[CONTROL_FILE_MAX + 1];
    size_t size = fread (text, 1, CONTROL_FILE_MAX, file);
    fclose (file);
    text[size] = '\0';

    fprintf (stderr, "level=warn proc=faultvfs pid=%ld "
             "msg=\"fault control applied\" file=", (long) getpid ());
    s_print_quoted (s_control.path);
    fputs (" commands=", stderr);
    s_print_quoted (text);
    fputc ('\n', stderr);
    s_control_apply_locked (text);
}

/*  Re-reads the control file when its inode, size or modification time
    changed, looking at most every FAULTVFS_POLL_MS.  */
static void
s_control_poll_locked (void)
{
    if (!s_control.path)
        return;
    int64_t now_ms = s_mono_ms ();
    if (now_ms - s_control.checked_ms < FAULTVFS_POLL_MS)
        return;
    s_control.checked_ms = now_ms;

    struct stat status;
    if (stat (s_control.path, &status) != 0)
        return;
    bool same = s_control.seen && status.st_dev == s_control.dev
                && status.st_ino == s_control.ino
                && status.st_size == s_control.size
                && status.st_mtim.tv_sec == s_control.mtime.tv_sec
                && status.st_mtim.tv_nsec == s_control.mtime.tv_nsec;
    if (same)
        return;

    s_control.seen = true;
    s_control.dev = status.st_dev;
    s_control.ino = status.st_ino;
    s_control.size = status.st_size;
    s_control.mtime = status.st_mtim;
    s_control_read_locked ();
}

/*  Reports the first failure of an armed fault, so that a test driving
    another process through the control file can tell that it fired.  A
    persistent fault is reported once, not on every call it fails.  */
static void
s_report_fired_locked (faultvfs_kind_t kind)
{
    fault_t *fault = &s_faults[kind];
    if (!s_control.path || fault->fired)
        return;
    fprintf (stderr, "level=warn proc=faultvfs pid=%ld msg=\"fault injected\""
             " kind=%s call=%" PRIu64 " persist=%d\n", (long) getpid (),
             s_kind_names[kind], fault->calls, fault->persist ? 1 : 0);
}

/*  Counts one call of kind and returns true when it must fail.  */
static bool
s_trip (faultvfs_kind_t kind)
{
    pthread_mutex_lock (&s_mutex);
    s_control_poll_locked ();
    fault_t *fault = &s_faults[kind];
    fault->calls++;
    bool fail = false;
    if (fault->armed) {
        if (fault->remaining > 0)
            fault->remaining--;
        else {
            fail = true;
            s_report_fired_locked (kind);
            fault->fired = true;
            fault->failures++;
            fault->armed = fault->persist;
        }
    }
    pthread_mutex_unlock (&s_mutex);
    return fail;
}

static void
s_poll (void)
{
    pthread_mutex_lock (&s_mutex);
    s_control_poll_locked ();
    pthread_mutex_unlock (&s_mutex);
}

/*  ------------------------------------------------------------------
    File methods.  */

static sqlite3_file *
s_real (sqlite3_file *file)
{
    return ((fault_file_t *) file)->real;
}

static int
s_close (sqlite3_file *file)
{
    sqlite3_file *real = s_real (file);
    return real->pMethods->xClose (real);
}

static int
s_read (sqlite3_file *file, void *buffer, int amount, sqlite3_int64 offset)
{
    if (s_trip (FAULTVFS_READ))
        return SQLITE_IOERR_READ;
    sqlite3_file *real = s_real (file);
    return real->pMethods->xRead (real, buffer, amount, offset);
}

static int
s_write (sqlite3_file *file, const void *buffer, int amount,
         sqlite3_int64 offset)
{
    //  Both kinds count every write, so their counts stay comparable
    bool full = s_trip (FAULTVFS_FULL);
    bool failed = s_trip (FAULTVFS_WRITE);
    if (full)
        return SQLITE_FULL;
    if (failed)
        return SQLITE_IOERR_WRITE;
    sqlite3_file *real = s_real (file);
    return real->pMethods->xWrite (real, buffer, amount, offset);
}

static int
s_truncate (sqlite3_file *file, sqlite3_int64 size)
{
    if (s_trip (FAULTVFS_TRUNCATE))
        return SQLITE_IOERR_TRUNCATE;
    sqlite3_file *real = s_real (file);
    return real->pMethods->xTruncate (real, size);
}

static int
s_sync (sqlite3_file *file, int flags)
{
    if (s_trip (FAULTVFS_SYNC))
        return SQLITE_IOERR_FSYNC;
    sqlite3_file *real = s_real (file);
    return real->pMethods->xSync (real, flags);
}

static int
s_file_size (sqlite3_file *file, sqlite3_int64 *size)
{
    s_poll ();
    sqlite3_file *real = s_real (file);
    return real->pMethods->xFileSize (real, size);
}

static int
s_lock (sqlite3_file *file, int level)
{
    if (s_trip (FAULTVFS_LOCK))
        return SQLITE_BUSY;
    sqlite3_file *real = s_real (file);
    return real->pMethods->xLock (real, level);
}

static int
s_unlock (sqlite3_file *file, int level)
{
    sqlite3_file *real = s_real (file);
    return real->pMethods->xUnlock (real, level);
}

static int
s_check_reserved_lock (sqlite3_file *file, int *reserved)
{
    sqlite3_file *real = s_real (file);
    return real->pMethods->xCheckReservedLock (real, reserved);
}

static int
s_file_control (sqlite3_file *file, int op, void *arg)
{
    sqlite3_file *real = s_real (file);
    return real->pMethods->xFileControl (real, op, arg);
}

static int
s_sector_size (sqlite3_file *file)
{
    sqlite3_file *real = s_real (file);
    return real->pMethods->xSectorSize (real);
}

static int
s_device_characteristics (sqlite3_file *file)
{
    sqlite3_file *real = s_real (file);
    return real->pMethods->xDeviceCharacteristics (real);
}

static int
s_shm_map (sqlite3_file *file, int region, int size, int extend,
           void volatile **memory)
{
    sqlite3_file *real = s_real (file);
    return real->pMethods->xShmMap (real, region, size, extend, memory);
}

static int
s_shm_lock (sqlite3_file *file, int offset, int count, int flags)
{
    //  Every read transaction takes a wal-index lock, so this is also
    //  where an idle registry notices a new control file
    bool write_lock = flags == (SQLITE_SHM_LOCK | SQLITE_SHM_EXCLUSIVE)
                      && offset == WAL_WRITE_LOCK_SLOT;
    if (write_lock && s_trip (FAULTVFS_LOCK))
        return SQLITE_BUSY;
    if (!write_lock)
        s_poll ();
    sqlite3_file *real = s_real (file);
    return real->pMethods->xShmLock (real, offset, count, flags);
}

static void
s_shm_barrier (sqlite3_file *file)
{
    sqlite3_file *real = s_real (file);
    real->pMethods->xShmBarrier (real);
}

static int
s_shm_unmap (sqlite3_file *file, int delete_flag)
{
    sqlite3_file *real = s_real (file);
    return real->pMethods->xShmUnmap (real, delete_flag);
}

/*  Version 1 for files whose VFS has no shared memory, version 2 for
    the others.  Version 3 (xFetch) is left out on purpose: memory-mapped
    reads would bypass xRead.  */
static const sqlite3_io_methods s_io_methods_v1 = {
    1, s_close, s_read, s_write, s_truncate, s_sync, s_file_size, s_lock,
    s_unlock, s_check_reserved_lock, s_file_control, s_sector_size,
    s_device_characteristics, NULL, NULL, NULL, NULL, NULL, NULL
};

static const sqlite3_io_methods s_io_methods_v2 = {
    2, s_close, s_read, s_write, s_truncate, s_sync, s_file_size, s_lock,
    s_unlock, s_check_reserved_lock, s_file_control, s_sector_size,
    s_device_characteristics, s_shm_map, s_shm_lock, s_shm_barrier,
    s_shm_unmap, NULL, NULL
};

/*  ------------------------------------------------------------------
    VFS methods: all but xOpen forward to the wrapped VFS.  */

static int
s_open (sqlite3_vfs *vfs, sqlite3_filename name, sqlite3_file *file,
        int flags, int *out_flags)
{
    s_poll ();
    fault_file_t *self = (fault_file_t *) file;
    self->real = (sqlite3_file *) (self + 1);
    int rc = s_base->xOpen (s_base, name, self->real, flags, out_flags);

    //  SQLite calls xClose after a failed open whenever pMethods is set,
    //  so the shim's methods are set exactly when the real ones are
    const sqlite3_io_methods *methods = self->real->pMethods;
    if (!methods)
        file->pMethods = NULL;
    else if (methods->iVersion >= 2)
        file->pMethods = &s_io_methods_v2;
    else
        file->pMethods = &s_io_methods_v1;
    return rc;
}

static int
s_delete (sqlite3_vfs *vfs, const char *name, int sync_dir)
{
    return s_base->xDelete (s_base, name, sync_dir);
}

static int
s_access (sqlite3_vfs *vfs, const char *name, int flags, int *result)
{
    return s_base->xAccess (s_base, name, flags, result);
}

static int
s_full_pathname (sqlite3_vfs *vfs, const char *name, int size, char *out)
{
    return s_base->xFullPathname (s_base, name, size, out);
}

static void *
s_dl_open (sqlite3_vfs *vfs, const char *name)
{
    return s_base->xDlOpen (s_base, name);
}

static void
s_dl_error (sqlite3_vfs *vfs, int size, char *message)
{
    s_base->xDlError (s_base, size, message);
}

static void (*s_dl_sym (sqlite3_vfs *vfs, void *library,
                        const char *symbol)) (void)
{
    return s_base->xDlSym (s_base, library, symbol);
}

static void
s_dl_close (sqlite3_vfs *vfs, void *library)
{
    s_base->xDlClose (s_base, library);
}

static int
s_randomness (sqlite3_vfs *vfs, int size, char *out)
{
    return s_base->xRandomness (s_base, size, out);
}

static int
s_sleep (sqlite3_vfs *vfs, int microseconds)
{
    return s_base->xSleep (s_base, microseconds);
}

static int
s_current_time (sqlite3_vfs *vfs, double *now)
{
    return s_base->xCurrentTime (s_base, now);
}

static int
s_get_last_error (sqlite3_vfs *vfs, int size, char *message)
{
    return s_base->xGetLastError (s_base, size, message);
}

static int
s_current_time_int64 (sqlite3_vfs *vfs, sqlite3_int64 *now)
{
    return s_base->xCurrentTimeInt64 (s_base, now);
}

/*  ------------------------------------------------------------------
    Public functions.  */

int
faultvfs_register (bool make_default)
{
    pthread_mutex_lock (&s_mutex);
    if (s_base) {
        pthread_mutex_unlock (&s_mutex);
        return 0;
    }
    sqlite3_vfs *base = sqlite3_vfs_find (NULL);
    if (!base) {
        pthread_mutex_unlock (&s_mutex);
        return -1;
    }

    s_vfs = (sqlite3_vfs) {
        .iVersion = base->iVersion >= 2 ? 2 : 1,
        .szOsFile = (int) sizeof (fault_file_t) + base->szOsFile,
        .mxPathname = base->mxPathname,
        .zName = FAULTVFS_NAME,
        .xOpen = s_open,
        .xDelete = s_delete,
        .xAccess = s_access,
        .xFullPathname = s_full_pathname,
        .xDlOpen = s_dl_open,
        .xDlError = s_dl_error,
        .xDlSym = s_dl_sym,
        .xDlClose = s_dl_close,
        .xRandomness = s_randomness,
        .xSleep = s_sleep,
        .xCurrentTime = s_current_time,
        .xGetLastError = s_get_last_error,
        .xCurrentTimeInt64 = base->iVersion >= 2 ? s_current_time_int64
                                                 : NULL,
    };
    s_base = base;
    int rc = sqlite3_vfs_register (&s_vfs, make_default ? 1 : 0);
    if (rc != SQLITE_OK)
        s_base = NULL;
    pthread_mutex_unlock (&s_mutex);
    return rc == SQLITE_OK ? 0 : -1;
}

void
faultvfs_set (faultvfs_kind_t kind, uint64_t fail_after, bool persist)
{
    pthread_mutex_lock (&s_mutex);
    s_arm_locked (kind, fail_after, persist);
    pthread_mutex_unlock (&s_mutex);
}

void
faultvfs_clear (faultvfs_kind_t kind)
{
    pthread_mutex_lock (&s_mutex);
    s_faults[kind].armed = false;
    pthread_mutex_unlock (&s_mutex);
}

void
faultvfs_clear_all (void)
{
    pthread_mutex_lock (&s_mutex);
    for (int index = 0; index < FAULTVFS_KIND_COUNT; index++)
        s_faults[index].armed = false;
    pthread_mutex_unlock (&s_mutex);
}

bool
faultvfs_armed (faultvfs_kind_t kind)
{
    pthread_mutex_lock (&s_mutex);
    bool armed = s_faults[kind].armed;
    pthread_mutex_unlock (&s_mutex);
    return armed;
}

uint64_t
faultvfs_calls (faultvfs_kind_t kind)
{
    pthread_mutex_lock (&s_mutex);
    uint64_t calls = s_faults[kind].calls;
    pthread_mutex_unlock (&s_mutex);
    return calls;
}

uint64_t
faultvfs_failures (faultvfs_kind_t kind)
{
    pthread_mutex_lock (&s_mutex);
    uint64_t failures = s_faults[kind].failures;
    pthread_mutex_unlock (&s_mutex);
    return failures;
}

const char *
faultvfs_kind_name (faultvfs_kind_t kind)
{
    return kind < FAULTVFS_KIND_COUNT ? s_kind_names[kind] : "unknown";
}

int
faultvfs_command (const char *line, char *error, size_t error_size)
{
    pthread_mutex_lock (&s_mutex);
    int rc = s_command_locked (line, error, error_size);
    pthread_mutex_unlock (&s_mutex);
    return rc;
}

void
faultvfs_watch (const char *path)
{
    pthread_mutex_lock (&s_mutex);
    free (s_control.path);
    s_control = (control_t) { .path = path ? strdup (path) : NULL };
    pthread_mutex_unlock (&s_mutex);
}
