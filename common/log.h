/*  log.h: logfmt lines on stderr, one per event.

    Every line reads
        ts=2026-12-04T16:40:00.123Z level=info proc=registry msg="..." k=v ...
    The message is a fixed phrase so that it can be searched for; the
    variable parts go in the key=value fields after it.  Values that may
    contain spaces, quotes or control characters go through log_quote.
*/
#ifndef LAPSE_LOG_H
#define LAPSE_LOG_H

#include <stdarg.h>
#include <stddef.h>

typedef enum {
    LOG_LEVEL_DEBUG,
    LOG_LEVEL_INFO,
    LOG_LEVEL_WARN,
    LOG_LEVEL_ERROR
} log_level_t;

/*  Sets the process name written as proc= on every line.  The name is
    copied.  Call once at start, before any other log function.  */
void
log_init (const char *proc);

/*  Sets the lowest level that is written; lower levels are dropped.  */
void
log_set_level (log_level_t level);

/*  Parses "debug", "info", "warn" or "error".  Returns 0 and sets *level,
    or -1 when the name is none of those.  */
int
log_level_parse (const char *name, log_level_t *level);

/*  Writes one line at the given level.  msg is the fixed phrase; fields
    is a printf format producing space-separated key=value pairs, or NULL
    for none.  The line is written with one write(2) so that lines from
    several threads or processes sharing stderr do not interleave.  */
void
log_write (log_level_t level, const char *msg, const char *fields, ...)
    __attribute__ ((format (printf, 3, 4)));

void
log_vwrite (log_level_t level, const char *msg, const char *fields,
            va_list args) __attribute__ ((format (printf, 3, 0)));

#define log_debug(msg, ...) log_write (LOG_LEVEL_DEBUG, msg, __VA_ARGS__)
#define log_info(msg, ...) log_write (LOG_LEVEL_INFO, msg, __VA_ARGS__)
#define log_warn(msg, ...) log_write (LOG_LEVEL_WARN, msg, __VA_ARGS__)
#define log_error(msg, ...) log_write (LOG_LEVEL_ERROR, msg, __VA_ARGS__)

/*  Writes an error line with the given fields and then exits the process
    with status 1.  For start-up failures only: a running daemon logs and
    carries on.  */
void
log_fatal (const char *msg, const char *fields, ...)
    __attribute__ ((format (printf, 2, 3), noreturn));

/*  Returns value as a logfmt value: unchanged when it is a non-empty run
    of printable characters other than space, '"', '\\' and '=', else in
    double quotes with '"', '\\' and control characters escaped.  Values
    longer than 200 bytes are cut and end in "...".  NULL gives "null".
    The result lives in one of 8 per-thread buffers that are reused in
    turn, so up to 8 results may be used in one log call.  */
const char *
log_quote (const char *value);

/*  Like log_quote for a counted byte string that need not be
    NUL-terminated.  */
const char *
log_quote_n (const char *value, size_t length);

#endif
