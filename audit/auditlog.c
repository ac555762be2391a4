/*  auditlog.c: the audit file.  See auditlog.h.
*/
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "auditlog.h"
#include "lapse.h"
#include "log.h"

/*  An event line is under 2 KiB even with every id and node byte
    escaped, so a longer last line was not written by lapse-audit.  */
#define AUDITLOG_LINE_MAX 4096
#define AUDITLOG_READ_CHUNK 4096

struct auditlog_t {
    char *path;
    int fd;
    off_t synced_size;          /* file size up to the last synced line */
    bool cut_needed;            /* a failed write may have left a part */
    uint64_t last_seq;          /* of the last synced record, or the
                                   seq given to auditlog_start_after */
    size_t truncated_bytes;
    char *buffer;               /* lines not yet synced */
    size_t buffer_length;
    size_t buffer_capacity;
    size_t buffered_lines;
    uint64_t buffered_seq;      /* of the last buffered record */
    uint64_t buffered_events;
    uint64_t buffered_gaps;
    uint64_t written_events;
    uint64_t written_gaps;
};

static void
s_error (char *error, size_t error_size, const char *format, ...)
    __attribute__ ((format (printf, 3, 4)));

static void
s_error (char *error, size_t error_size, const char *format, ...)
{
    va_list args;

    va_start (args, format);
    vsnprintf (error, error_size, format, args);
    va_end (args);
}

/*  Reads size bytes at offset, retrying short reads.  */
static int
s_read_at (int fd, char *data, size_t size, off_t offset)
{
    while (size > 0) {
        ssize_t count = pread (fd, data, size, offset);
        if (count == -1 && errno == EINTR)
            continue;
        if (count <= 0)
            return -1;
        data += count;
        size -= (size_t) count;
        offset += count;
    }
    return 0;
}

/*  Sets *position to the offset of the last '\n' before end, or -1
    when there is none.  Reads backwards one chunk at a time.  */
static int
s_find_newline (int fd, off_t end, off_t *position)
{
    char chunk[AUDITLOG_READ_CHUNK];

    while (end > 0) {
        off_t start = end > AUDITLOG_READ_CHUNK ? end - AUDITLOG_READ_CHUNK
                                                : 0;
        if (s_read_at (fd, chunk, (size_t) (end - start), start) == -1)
            return -1;
        for (off_t at = end - 1; at >= start; at--) {
            if (chunk[at - start] == '\n') {
                *position = at;
                return 0;
            }
        }
        end = start;
    }
    *position = -1;
    return 0;
}

/*  Parses a run of decimal digits at *cursor into *number.  */
static int
s_parse_number (const char **cursor, uint64_t *number)
{
    const char *text = *cursor;
    uint64_t value = 0;

    if (*text < '0' || *text > '9')
        return -1;
    for (; *text >= '0' && *text <= '9'; text++) {
        if (value > (UINT64_MAX - (uint64_t) (*text - '0')) / 10)
            return -1;
        value = value * 10 + (uint64_t) (*text - '0');
    }
    *cursor = text;
    *number = value;
    return 0;
}

/*  Returns the seq a record line ends at: an event's seq or a gap's
    last.  Both forms start with the key this file writes first.  */
static int
s_parse_record (const char *line, uint64_t *seq)
{
    static const char event_prefix[] = "{\"seq\":";
    static const char gap_prefix[] = "{\"gap\":{\"first\":";
    static const char gap_last[] = ",\"last\":";
    uint64_t first;

    if (strncmp (line, event_prefix, strlen (event_prefix)) == 0) {
        line += strlen (event_prefix);
        return s_parse_number (&line, seq);
    }
    if (strncmp (line, gap_prefix, strlen (gap_prefix)) != 0)
        return -1;
    line += strlen (gap_prefix);
    if (s_parse_number (&line, &first) == -1
        || strncmp (line, gap_last, strlen (gap_last)) != 0)
        return -1;
    line += strlen (gap_last);
    return s_parse_number (&line, seq);
}

/*  Cuts a last line that has no newline, and makes the cut durable
    before anything is appended after it.  */
static int
s_cut_torn_line (auditlog_t *self, off_t size, char *error,
                 size_t error_size)
{
    off_t newline;

    if (s_find_newline (self->fd, size, &newline) == -1) {
        s_error (error, error_size, "reading %s failed: %s", self->path,
                 strerror (errno));
        return -1;
    }
    off_t kept_size = newline + 1;
    if (ftruncate (self->fd, kept_size) == -1 || fdatasync (self->fd) == -1) {
        s_error (error, error_size,
                 "truncating the torn last line of %s failed: %s",
                 self->path, strerror (errno));
        return -1;
    }
    self->truncated_bytes = (size_t) (size - kept_size);
    self->synced_size = kept_size;
    return 0;
}

/*  Reads the last seq from the last complete line of the file.  */
static int
s_read_last_seq (auditlog_t *self, char *error, size_t error_size)
{
    off_t end = self->synced_size;
    off_t newline;
    char line[AUDITLOG_LINE_MAX + 1];

    if (end == 0)
        return 0;
    if (s_find_newline (self->fd, end - 1, &newline) == -1)
        goto fail_read;
    size_t length = (size_t) (end - 1 - (newline + 1));
    if (length > AUDITLOG_LINE_MAX) {
        s_error (error, error_size,
                 "invalid last line in %s: %zu bytes, longer than any "
                 "audit record; move the file aside to start a new one",
                 self->path, length);
        return -1;
    }
    if (s_read_at (self->fd, line, length, newline + 1) == -1)
        goto fail_read;
    line[length] = '\0';

    if (s_parse_record (line, &self->last_seq) == -1) {
        s_error (error, error_size,
                 "invalid last line in %s: %s is not an audit record; "
                 "move the file aside to start a new one",
                 self->path, log_quote (line));
        return -1;
    }
    return 0;

fail_read:
    s_error (error, error_size, "reading %s failed: %s", self->path,
             strerror (errno));
    return -1;
}

/*  Finds where the file ends, cutting a torn last line, and the last
    seq written.  */
static int
s_recover (auditlog_t *self, char *error, size_t error_size)
{
    struct stat status;
    char last_byte;

    if (fstat (self->fd, &status) == -1) {
        s_error (error, error_size, "reading %s failed: %s", self->path,
                 strerror (errno));
        return -1;
    }
    self->synced_size = status.st_size;
    if (status.st_size == 0)
        return 0;

    if (s_read_at (self->fd, &last_byte, 1, status.st_size - 1) == -1) {
        s_error (error, error_size, "reading %s failed: %s", self->path,
                 strerror (errno));
        return -1;
    }
    if (last_byte != '\n'
        && s_cut_torn_line (self, status.st_size, error, error_size) == -1)
        return -1;
    return s_read_last_seq (self, error, error_size);
}

/*  Returns the pid of the process holding the POSIX lock on the file,
    or 0 when none of another process is found.  */
static pid_t
s_lock_holder (int fd)
{
    struct flock lock = { .l_type = F_WRLCK, .l_whence = SEEK_SET };

    if (fcntl (fd, F_GETLK, &lock) == -1 || lock.l_type == F_UNLCK)
        return 0;
    return lock.l_pid;
}

/*  Reports the lock that another process holds, with its pid when
    known.  */
static void
s_report_locked (auditlog_t *self, int lock_errno, char *error,
                 size_t error_size)
{
    pid_t holder = s_lock_holder (self->fd);

    if (holder > 0)
        s_error (error, error_size,
                 "locking %s failed: process %ld (another lapse-audit) "
                 "holds the lock; stop it or use another file", self->path,
                 (long) holder);
    else
        s_error (error, error_size,
                 "locking %s failed: %s; is another lapse-audit writing "
                 "it?", self->path, strerror (lock_errno));
}

/*  Opens and locks the file.  The flock lock excludes a second writer,
    in this process too.  A POSIX lock is taken beside it only so that
    F_GETLK can name the holder's pid, which flock cannot.  That lock
    ends when any descriptor of the file in this process is closed.  */
static int
s_open_file (auditlog_t *self, char *error, size_t error_size)
{
    self->fd = open (self->path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC,
                     0644);
    if (self->fd == -1) {
        s_error (error, error_size, "opening %s failed: %s", self->path,
                 strerror (errno));
        return -1;
    }
    if (flock (self->fd, LOCK_EX | LOCK_NB) == -1) {
        s_report_locked (self, errno, error, error_size);
        close (self->fd);
        self->fd = -1;
        return -1;
    }

    struct flock lock = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
    if (fcntl (self->fd, F_SETLK, &lock) == -1)
        log_warn ("audit file pid lock failed", "file=%s error=%s",
                  log_quote (self->path), log_quote (strerror (errno)));
    return 0;
}

auditlog_t *
auditlog_open (const char *path, char *error, size_t error_size)
{
    auditlog_t *self = (auditlog_t *) calloc (1, sizeof (auditlog_t));
    if (!self) {
        s_error (error, error_size, "out of memory opening %s", path);
        return NULL;
    }
    self->fd = -1;
    self->path = strdup (path);
    if (!self->path) {
        s_error (error, error_size, "out of memory opening %s", path);
        goto fail;
    }
    if (s_open_file (self, error, error_size) == -1)
        goto fail;
    if (s_recover (self, error, error_size) == -1)
        goto fail;

    self->buffered_seq = self->last_seq;
    return self;

fail:
    auditlog_destroy (&self);
    return NULL;
}

void
auditlog_destroy (auditlog_t **self_p)
{
    if (!self_p || !*self_p)
        return;

    auditlog_t *self = *self_p;
    if (self->fd != -1)
        close (self->fd);
    free (self->buffer);
    free (self->path);
    free (self);
    *self_p = NULL;
}

uint64_t
auditlog_last_seq (auditlog_t *self)
{
    return self->last_seq;
}

int
auditlog_start_after (auditlog_t *self, uint64_t seq)
{
    if (self->synced_size > 0 || self->buffered_lines > 0)
        return 0;
    self->last_seq = seq;
    self->buffered_seq = seq;
    return 1;
}

bool
auditlog_moved (auditlog_t *self)
{
    struct stat open_file;
    struct stat named_file;

    if (stat (self->path, &named_file) == -1
        || fstat (self->fd, &open_file) == -1)
        return true;
    return named_file.st_dev != open_file.st_dev
           || named_file.st_ino != open_file.st_ino;
}

size_t
auditlog_truncated_bytes (auditlog_t *self)
{
    return self->truncated_bytes;
}

size_t
auditlog_buffered (auditlog_t *self)
{
    return self->buffered_lines;
}

void
auditlog_written (auditlog_t *self, uint64_t *events, uint64_t *gaps)
{
    if (events)
        *events = self->written_events;
    if (gaps)
        *gaps = self->written_gaps;
}

/*  Appends one line and its newline to the buffer.  */
static int
s_buffer_line (auditlog_t *self, const char *line, size_t length)
{
    size_t needed = self->buffer_length + length + 1;
    if (needed > self->buffer_capacity) {
        size_t capacity = self->buffer_capacity ? self->buffer_capacity : 4096;
        while (capacity < needed)
            capacity *= 2;
        char *buffer = realloc (self->buffer, capacity);
        if (!buffer)
            return -1;
        self->buffer = buffer;
        self->buffer_capacity = capacity;
    }
    memcpy (self->buffer + self->buffer_length, line, length);
    self->buffer[self->buffer_length + length] = '\n';
    self->buffer_length = needed;
    self->buffered_lines++;
    return 0;
}

int
auditlog_add_event (auditlog_t *self, const msg_event_t *event)
{
    char line[AUDITLOG_LINE_MAX];

    if (event->seq <= self->buffered_seq)
        return 0;
    int length = lapse_event_to_json (event, line, sizeof line);
    if (length < 0 || s_buffer_line (self, line, (size_t) length) == -1)
        return -1;
    self->buffered_seq = event->seq;
    self->buffered_events++;
    return 1;
}

int
auditlog_add_gap (auditlog_t *self, uint64_t first, uint64_t last)
{
    char line[128];

    if (last <= self->buffered_seq)
        return 0;
    if (first <= self->buffered_seq)
        first = self->buffered_seq + 1;
    int length = snprintf (line, sizeof line,
                           "{\"gap\":{\"first\":%" PRIu64 ",\"last\":%" PRIu64
                           "}}",
                           first, last);
    if (s_buffer_line (self, line, (size_t) length) == -1)
        return -1;
    self->buffered_seq = last;
    self->buffered_gaps++;
    return 1;
}

/*  Writes the whole buffer, retrying short writes.  */
static int
s_write_all (int fd, const char *data, size_t size)
{
    while (size > 0) {
        ssize_t count = write (fd, data, size);
        if (count == -1 && errno == EINTR)
            continue;
        if (count == -1)
            return -1;
        data += count;
        size -= (size_t) count;
    }
    return 0;
}

/*  Marks the buffered lines as written.  */
static void
s_commit (auditlog_t *self)
{
    self->synced_size += (off_t) self->buffer_length;
    self->last_seq = self->buffered_seq;
    self->written_events += self->buffered_events;
    self->written_gaps += self->buffered_gaps;
    self->buffer_length = 0;
    self->buffered_lines = 0;
    self->buffered_events = 0;
    self->buffered_gaps = 0;
}

int
auditlog_sync (auditlog_t *self, bool *retry, char *error,
               size_t error_size)
{
    *retry = true;
    if (self->buffered_lines == 0)
        return 0;

    /*  A part of a line from a failed write must go before more lines
        follow it, or the file would hold a broken line in the middle.  */
    if (self->cut_needed) {
        if (ftruncate (self->fd, self->synced_size) == -1) {
            s_error (error, error_size, "truncating %s failed: %s",
                     self->path, strerror (errno));
            return -1;
        }
        self->cut_needed = false;
    }

    if (s_write_all (self->fd, self->buffer, self->buffer_length) == -1) {
        s_error (error, error_size, "writing %zu lines to %s failed: %s",
                 self->buffered_lines, self->path, strerror (errno));
        self->cut_needed = true;
        return -1;
    }
    if (fdatasync (self->fd) == -1) {
        s_error (error, error_size, "fdatasync of %s failed: %s",
                 self->path, strerror (errno));
        *retry = false;
        return -1;
    }
    s_commit (self);
    return 0;
}
