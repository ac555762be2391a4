/*  log.c: logfmt lines on stderr, one write(2) per line.  */

#include "log.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/*  Maximum length of one line including the newline.  A longer line is
    cut and ends in "...".  */
#define LOG_LINE_MAX 8192

/*  Values longer than this many bytes are cut by log_quote.  Long
    enough for an error message that names two paths.  */
#define LOG_QUOTE_CUT 1024

#define LOG_QUOTE_BUFFERS 8

/*  Worst case of a quoted value: every byte escaped as \xNN, two quotes,
    "..." and the terminating NUL.  */
#define LOG_QUOTE_SIZE (LOG_QUOTE_CUT * 4 + 6)

static char s_proc [LOG_QUOTE_SIZE] = "lapse";
static atomic_int s_min_level = LOG_LEVEL_INFO;

static const char *s_level_names [] = { "debug", "info", "warn", "error" };

void
log_init (const char *proc)
{
    snprintf (s_proc, sizeof s_proc, "%s", log_quote (proc));
}

void
log_set_level (log_level_t level)
{
    atomic_store (&s_min_level, (int) level);
}

bool
log_enabled (log_level_t level)
{
    return (int) level >= atomic_load (&s_min_level);
}

int
log_level_parse (const char *name, log_level_t *level)
{
    for (int index = 0; index <= LOG_LEVEL_ERROR; index++) {
        if (name && strcmp (name, s_level_names [index]) == 0) {
            *level = (log_level_t) index;
            return 0;
        }
    }
    return -1;
}

/*  Returns true when c may appear in a logfmt value without quotes.  */
static bool
s_is_bare (unsigned char c)
{
    return c > ' ' && c < 0x7f && c != '"' && c != '\\' && c != '=';
}

/*  Returns the length of the well-formed UTF-8 sequence that starts at
    text and fits in available bytes, or 0 when there is none.  Overlong
    forms, surrogates and code points past U+10FFFF are not well-formed
    (RFC 3629).  */
static size_t
s_utf8_length (const unsigned char *text, size_t available)
{
    unsigned char lead = text [0];
    unsigned char low = 0x80;   /* range of the second byte */
    unsigned char high = 0xbf;
    size_t length;

    if (lead >= 0xc2 && lead <= 0xdf)
        length = 2;
    else
    if (lead >= 0xe0 && lead <= 0xef) {
        length = 3;
        low = lead == 0xe0 ? 0xa0 : low;
        high = lead == 0xed ? 0x9f : high;
    }
    else
    if (lead >= 0xf0 && lead <= 0xf4) {
        length = 4;
        low = lead == 0xf0 ? 0x90 : low;
        high = lead == 0xf4 ? 0x8f : high;
    }
    else
        return 0;

    if (available < length || text [1] < low || text [1] > high)
        return 0;
    for (size_t index = 2; index < length; index++)
        if (text [index] < 0x80 || text [index] > 0xbf)
            return 0;
    return length;
}

/*  Writes the escaped form of one byte, or of the UTF-8 sequence it
    starts, to out.  Returns the number of input bytes consumed and adds
    the number of bytes written to *written.  */
static size_t
s_escape_one (const unsigned char *text, size_t available, char *out,
              size_t *written)
{
    unsigned char c = text [0];
    char *cursor = out + *written;

    if (c == '"' || c == '\\') {
        cursor [0] = '\\';
        cursor [1] = (char) c;
        *written += 2;
        return 1;
    }
    char short_escape = '\0';
    if (c == '\n')
        short_escape = 'n';
    else
    if (c == '\r')
        short_escape = 'r';
    else
    if (c == '\t')
        short_escape = 't';
    if (short_escape) {
        cursor [0] = '\\';
        cursor [1] = short_escape;
        *written += 2;
        return 1;
    }
    size_t length = c >= 0x80 ? s_utf8_length (text, available) : 0;
    if (length > 0 || (c >= ' ' && c < 0x7f)) {
        length = length > 0 ? length : 1;
        memcpy (cursor, text, length);
        *written += length;
        return length;
    }
    /*  Control characters and bytes that are not UTF-8 are shown as hex,
        so that a hostile value cannot forge lines or break a parser.  */
    snprintf (cursor, 5, "\\x%02x", c);
    *written += 4;
    return 1;
}

/*  Writes value as a logfmt value to out, which has room for
    LOG_QUOTE_SIZE bytes, and returns its length.  always forces the
    quotes.  */
static size_t
s_quote_into (char *out, const char *value, size_t length, bool always)
{
    const unsigned char *text = (const unsigned char *) value;
    bool cut = length > LOG_QUOTE_CUT;
    size_t limit = cut ? LOG_QUOTE_CUT : length;
    bool quote = always || limit == 0;
    size_t written = 0;

    for (size_t index = 0; index < limit && !quote; index++)
        quote = !s_is_bare (text [index]);

    if (!quote) {
        memcpy (out, text, limit);
        written = limit;
    }
    else {
        out [written++] = '"';
        for (size_t index = 0; index < limit;)
            index += s_escape_one (text + index, limit - index, out,
                                   &written);
    }
    if (cut) {
        memcpy (out + written, "...", 3);
        written += 3;
    }
    if (quote)
        out [written++] = '"';
    out [written] = '\0';
    return written;
}

const char *
log_quote_n (const char *value, size_t length)
{
    static _Thread_local char buffers [LOG_QUOTE_BUFFERS][LOG_QUOTE_SIZE];
    static _Thread_local unsigned next;

    if (value == NULL)
        return "null";
    char *buffer = buffers [next];
    next = (next + 1) % LOG_QUOTE_BUFFERS;
    s_quote_into (buffer, value, length, false);
    return buffer;
}

const char *
log_quote (const char *value)
{
    /*  Only the first bytes matter, so a huge value is not measured.  */
    size_t length = value ? strnlen (value, LOG_QUOTE_CUT + 1) : 0;
    return log_quote_n (value, length);
}

/*  Writes "ts=... level=... proc=... msg=..." to line, which has room
    for at least 2 * LOG_QUOTE_SIZE + 128 bytes.  Returns its length.  */
static size_t
s_format_prefix (char *line, log_level_t level, const char *msg)
{
    struct timespec now;
    struct tm utc;
    clock_gettime (CLOCK_REALTIME, &now);
    gmtime_r (&now.tv_sec, &utc);

    size_t length = strftime (line, 64, "ts=%Y-%m-%dT%H:%M:%S", &utc);
    bool known = (int) level >= 0 && (int) level <= LOG_LEVEL_ERROR;
    const char *level_name = known ? s_level_names [level] : "unknown";
    length += (size_t) snprintf (line + length, 64, ".%03ldZ level=%s proc=",
                                 now.tv_nsec / 1000000, level_name);

    /*  proc is already in logfmt form, and at most LOG_QUOTE_SIZE.  */
    size_t proc_length = strlen (s_proc);
    memcpy (line + length, s_proc, proc_length);
    length += proc_length;

    memcpy (line + length, " msg=", 5);
    length += 5;
    const char *text = msg ? msg : "";
    length += s_quote_into (line + length, text,
                            strnlen (text, LOG_QUOTE_CUT + 1), true);
    return length;
}

/*  Writes all of line to stderr.  A partial write, which a pipe or
    terminal may return under memory pressure, is continued.  */
static void
s_write_line (const char *line, size_t length)
{
    while (length > 0) {
        ssize_t written = write (STDERR_FILENO, line, length);
        if (written < 0 && errno == EINTR)
            continue;
        if (written <= 0)
            return;
        line += written;
        length -= (size_t) written;
    }
}

void
log_vwrite (log_level_t level, const char *msg, const char *fields,
            va_list args)
{
    if ((int) level < atomic_load (&s_min_level))
        return;

    /*  Callers often log right after a failed call and then test errno,
        so the write must not change it.  */
    int saved_errno = errno;
    char line [LOG_LINE_MAX];
    size_t length = s_format_prefix (line, level, msg);

    if (fields && *fields) {
        line [length++] = ' ';
        size_t room = sizeof line - length - 1;   /* keep the newline */
        int rc = vsnprintf (line + length, room + 1, fields, args);
        if (rc < 0)
            rc = 0;
        if ((size_t) rc > room) {
            memcpy (line + length + room - 3, "...", 3);
            rc = (int) room;
        }
        length += (size_t) rc;
    }
    line [length++] = '\n';

    s_write_line (line, length);
    errno = saved_errno;
}

void
log_write (log_level_t level, const char *msg, const char *fields, ...)
{
    va_list args;
    va_start (args, fields);
    log_vwrite (level, msg, fields, args);
    va_end (args);
}

void
log_fatal (const char *msg, const char *fields, ...)
{
    va_list args;
    va_start (args, fields);
    log_vwrite (LOG_LEVEL_ERROR, msg, fields, args);
    va_end (args);
    exit (1);
}

bool
log_limit_allow (log_limit_t *limit, uint32_t per_second,
                 uint64_t *suppressed)
{
    struct timespec now;
    clock_gettime (CLOCK_MONOTONIC, &now);
    int64_t now_ms = (int64_t) now.tv_sec * 1000 + now.tv_nsec / 1000000;

    if (now_ms - limit->window_start_ms >= 1000) {
        limit->window_start_ms = now_ms;
        limit->lines = 0;
    }
    if (limit->lines >= per_second) {
        limit->suppressed++;
        return false;
    }
    limit->lines++;
    *suppressed = limit->suppressed;
    limit->suppressed = 0;
    return true;
}
