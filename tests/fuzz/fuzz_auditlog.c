/*  fuzz_auditlog.c: auditlog_open on any file content, which runs the
    recovery at start: cut a torn last line, then read the last seq from
    the last complete line.  The audit file is outside input because
    anything may have written it, a crash may have torn it, and an
    operator may have edited it.

    After an open that succeeded, the file must be the input cut after
    its last newline (or left whole), and one more event appended and
    synced must be the last seq of the next open.  See fuzz.h.  */

#include "fuzz.h"
#include "auditlog.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/*  The audit file: one path for the whole run, in a folder made on the
    first input.  tmpfs under /dev/shm, when there is one, makes the
    fdatasync of each open cheap.  */
static char s_folder[256];
static char s_path[300];

static void
s_remove_folder (void)
{
    unlink (s_path);
    rmdir (s_folder);
}

static void
s_make_folder (void)
{
    struct stat status;
    const char *parent = stat ("/dev/shm", &status) == 0
                                 && S_ISDIR (status.st_mode)
                             ? "/dev/shm"
                             : "/tmp";

    snprintf (s_folder, sizeof s_folder, "%s/lapse-fuzz-auditlog-XXXXXX",
              parent);
    if (!mkdtemp (s_folder))
        fuzz_fail ("mkdtemp %s failed: %s", s_folder, strerror (errno));
    snprintf (s_path, sizeof s_path, "%s/audit.jsonl", s_folder);
    atexit (s_remove_folder);
}

static void
s_write_file (const uint8_t *data, size_t size)
{
    int fd = open (s_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd == -1)
        fuzz_fail ("opening %s failed: %s", s_path, strerror (errno));
    while (size > 0) {
        ssize_t count = write (fd, data, size);
        if (count <= 0)
            fuzz_fail ("writing %s failed: %s", s_path, strerror (errno));
        data += count;
        size -= (size_t) count;
    }
    close (fd);
}

/*  Reads the whole file into a malloc'd buffer.  */
static uint8_t *
s_read_file (size_t *size)
{
    int fd = open (s_path, O_RDONLY);
    struct stat status;
    if (fd == -1 || fstat (fd, &status) == -1)
        fuzz_fail ("reading %s failed: %s", s_path, strerror (errno));

    *size = (size_t) status.st_size;
    uint8_t *data = malloc (*size + 1);
    if (!data || read (fd, data, *size) != (ssize_t) *size)
        fuzz_fail ("reading %zu bytes of %s failed", *size, s_path);
    close (fd);
    return data;
}

/*  Returns true when the last line of data, which ends with a newline,
    starts as an event or a gap record does.  */
static bool
s_ends_with_record (const uint8_t *data, size_t size)
{
    static const char *const prefixes[] = { "{\"seq\":",
                                            "{\"gap\":{\"first\":" };
    size_t start = size - 1;
    while (start > 0 && data[start - 1] != '\n')
        start--;

    for (size_t index = 0; index < 2; index++) {
        size_t length = strlen (prefixes[index]);
        if (size - 1 - start > length
            && memcmp (data + start, prefixes[index], length) == 0
            && data[start + length] >= '0' && data[start + length] <= '9')
            return true;
    }
    return false;
}

/*  Checks the file after an open that succeeded: what recovery cut, and
    that only a torn last line was cut.  */
static void
s_check_recovered (auditlog_t *log, const uint8_t *data, size_t size)
{
    size_t kept_size;
    uint8_t *kept = s_read_file (&kept_size);
    size_t cut = auditlog_truncated_bytes (log);

    if (kept_size + cut != size)
        fuzz_fail ("%zu bytes became %zu, but the open reports %zu cut",
                   size, kept_size, cut);
    if (memcmp (kept, data, kept_size) != 0)
        fuzz_fail ("the recovered file is not a prefix of the input");
    if (kept_size > 0 && kept[kept_size - 1] != '\n')
        fuzz_fail ("the recovered file does not end with a newline");
    if (cut > 0 && memchr (data + kept_size, '\n', cut))
        fuzz_fail ("the %zu bytes cut contain a newline", cut);
    if (kept_size == 0 && auditlog_last_seq (log) != 0)
        fuzz_fail ("an empty file has last seq %llu",
                   (unsigned long long) auditlog_last_seq (log));
    if (kept_size > 0 && !s_ends_with_record (kept, kept_size))
        fuzz_fail ("the open accepted a last line that is not a record");
    free (kept);
}

/*  Appends one event after the last seq and checks that a new open
    finds it as the last record.  */
static void
s_check_append (auditlog_t **log_p)
{
    uint64_t seq = auditlog_last_seq (*log_p) + 1;
    if (seq == 0)
        return;

    msg_event_t event = {
        .seq = seq,
        .id = msg_str ("client-1"),
        .node = msg_str ("node-a"),
        .reason = MSG_REASON_STALE,
        .last_activity_ms = 1000,
        .removed_ms = 2000,
    };
    char error[512];
    bool retry;
    if (auditlog_add_event (*log_p, &event) != 1
        || auditlog_sync (*log_p, &retry, error, sizeof error) != 0)
        fuzz_fail ("appending seq %llu failed", (unsigned long long) seq);
    auditlog_destroy (log_p);

    auditlog_t *again = auditlog_open (s_path, error, sizeof error);
    if (!again)
        fuzz_fail ("reopening after seq %llu failed: %s",
                   (unsigned long long) seq, error);
    if (auditlog_last_seq (again) != seq)
        fuzz_fail ("reopened with last seq %llu, expected %llu",
                   (unsigned long long) auditlog_last_seq (again),
                   (unsigned long long) seq);
    auditlog_destroy (&again);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    if (s_folder[0] == '\0')
        s_make_folder ();
    s_write_file (data, size);

    char error[512] = "";
    auditlog_t *log = auditlog_open (s_path, error, sizeof error);
    if (!log) {
        if (error[0] == '\0' || !memchr (error, '\0', sizeof error))
            fuzz_fail ("auditlog_open failed without a message");
        return 0;
    }
    s_check_recovered (log, data, size);
    s_check_append (&log);
    auditlog_destroy (&log);
    return 0;
}
