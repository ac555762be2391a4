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
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

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

/*  Whether a line at level would be written, so that a caller can skip
    preparing the fields of a line that would be dropped.  */
bool
log_enabled (log_level_t level);

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

/*  A rate limit for one kind of line that a peer can cause at will (a
    bad request, a malformed tick), so that a flood of bad input cannot
    flood the log.  Zero it before first use.  */
typedef struct {
    int64_t window_start_ms;    /* monotonic */
    uint32_t lines;             /* allowed in the current window */
    uint64_t suppressed;        /* refused since the last allowed line */
} log_limit_t;

/*  Returns true when one more line fits in limit, which allows at most
    per_second lines per second of the monotonic clock.  When it returns
    true, it sets *suppressed to the number of lines refused since the
    previous allowed one, for the caller to log with the line.  Lines
    refused after the last allowed one are counted only when a later
    line is allowed, so a program's own counters must hold the totals.  */
bool
log_limit_allow (log_limit_t *limit, uint32_t per_second,
                 uint64_t *suppressed);

/*  Returns value as a logfmt value: unchanged when it is a non-empty run
    of printable characters other than space, '"', '\\' and '=', else in
    double quotes with '"', '\\' and control characters escaped.  Values
    longer than 1024 bytes are cut and end in "...".  NULL gives "null".
    The result lives in one of 8 per-thread buffers that are reused in
    turn, so up to 8 results may be used in one log call.  */
const char *
log_quote (const char *value);

/*  Like log_quote for a counted byte string that need not be
    NUL-terminated.  */
const char *
log_quote_n (const char *value, size_t length);

#endif
