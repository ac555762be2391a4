/*  lapse-sweepwatch: times a sweep from its tick to its last event.

    Steps: follow the registry's removal events with liblapse's
    lapse_sub_t (live stream plus replay, as an API node would), note
    the audit file's length, send one tick to the registry's tick socket,
    then count events and audit lines until each reaches --expect or the
    timeout passes.  Prints one line of key=value fields: milliseconds
    from the tick to the first event, to the last one a subscriber
    needed, and to the last line in the audit file.

    The tick goes out on an XPUB socket, which hears the registry's
    subscription arrive; sending only after that is what makes the one
    tick certain to be delivered (a plain PUB drops what it sends before
    the subscriber is connected).

    --lines instead counts the lines of standard input that contain
    --match, for timing the notifications of Redis and etcd with the
    same clock: milliseconds from --since-ms (the moment the keys or
    leases were due to expire) to the last expected line.
*/
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "lapse.h"
#include "log.h"
#include "protocol.h"
#include "settings.h"

#define PROGRAM "lapse-sweepwatch"
#define EXIT_USAGE 2
#define AUDIT_CHECK_MS 5
#define WARM_UP_MS 500

static const setting_def_t s_settings[] = {
    { "commands", SETTING_ENDPOINT, "tcp://127.0.0.1:7710", 0, 0, false,
      "registry command endpoint, for replays" },
    { "events", SETTING_ENDPOINT, "tcp://127.0.0.1:7711", 0, 0, false,
      "registry event endpoint" },
    { "ticks", SETTING_ENDPOINT, "tcp://127.0.0.1:7712", 0, 0, false,
      "registry tick endpoint that the tick is sent to" },
    { "expect", SETTING_UINT, "1", 1, 0, false,
      "events (or matching lines) to wait for" },
    { "audit-file", SETTING_STRING, NULL, 0, 0, false,
      "also time the lines appended to this audit file" },
    { "tick", SETTING_BOOL, "on", 0, 0, false,
      "send the tick; off only watches" },
    { "timeout", SETTING_DURATION, "30s", 1, 0, false,
      "give up this long after the tick (or after --since-ms)" },
    { "lines", SETTING_BOOL, "off", 0, 0, false,
      "count matching lines of standard input instead of events" },
    { "match", SETTING_STRING, "", 0, 0, false,
      "lines: count only lines containing this text" },
    { "since-ms", SETTING_UINT, "0", 0, 0, false,
      "lines: wall-clock ms (Unix epoch) that times count from; 0 "
      "counts from the start" },
    { "log-level", SETTING_LOG_LEVEL, "warn", 0, 0, false,
      "lowest level logged: debug, info, warn or error" },
    SETTING_END
};

/*  Progress of one count towards the expected total.  */
typedef struct {
    uint64_t count;
    int64_t first_ms;           /* since the origin, -1 until the first */
    int64_t done_ms;            /* since the origin, -1 until expect */
} progress_t;

static int64_t
s_now_ms (clockid_t clock)
{
    struct timespec now;
    clock_gettime (clock, &now);
    return (int64_t) now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

static void
s_progress_add (progress_t *self, uint64_t count, uint64_t expect,
                int64_t elapsed_ms)
{
    if (count == 0)
        return;
    if (self->count == 0)
        self->first_ms = elapsed_ms;
    self->count += count;
    if (self->count >= expect && self->done_ms < 0)
        self->done_ms = elapsed_ms;
}

/*  Counts the lines appended to an audit file since the last call.  */
typedef struct {
    int fd;
    uint64_t lines;
} audit_t;

static uint64_t
s_audit_read (audit_t *self)
{
    char buffer[65536];
    uint64_t lines = 0;
    ssize_t size;
    while ((size = read (self->fd, buffer, sizeof buffer)) > 0)
        for (ssize_t index = 0; index < size; index++)
            lines += buffer[index] == '\n';
    self->lines += lines;
    return lines;
}

/*  Sends one tick through an XPUB socket once the registry's tick
    subscription has reached it.  Returns 0, or -1 on a failure.  */
static int
s_send_tick (void *context, const char *endpoint, int64_t *sent_mono_ms)
{
    void *socket = zmq_socket (context, ZMQ_XPUB);
    int linger = 1000;
    int wait_ms = 5000;
    zmq_setsockopt (socket, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt (socket, ZMQ_RCVTIMEO, &wait_ms, sizeof wait_ms);
    char subscription[64];
    int rc = zmq_connect (socket, endpoint);
    if (rc == 0)
        rc = zmq_recv (socket, subscription, sizeof subscription, 0) > 0
                 ? 0
                 : -1;

    void *data = NULL;
    size_t size = 0;
    msg_failure_t failure;
    msg_t tick = { .type = MSG_TICK };
    tick.u.tick.scheduler = msg_str ("sweepwatch");
    tick.u.tick.seq = 1;
    tick.u.tick.sent_ms = s_now_ms (CLOCK_REALTIME);
    tick.u.tick.interval_ms = 1000;
    if (rc == 0)
        rc = msg_encode (&tick, &data, &size, &failure);
    *sent_mono_ms = s_now_ms (CLOCK_MONOTONIC);
    if (rc == 0
        && (zmq_send (socket, MSG_TOPIC_TICK, strlen (MSG_TOPIC_TICK),
                      ZMQ_SNDMORE) < 0
            || zmq_send (socket, data, size, 0) < 0))
        rc = -1;
    free (data);
    zmq_close (socket);
    if (rc != 0)
        log_error ("tick not sent", "endpoint=%s error=%s",
                   log_quote (endpoint),
                   log_quote (zmq_strerror (zmq_errno ())));
    return rc;
}

/*  Reads events until expect arrived or the deadline passed, checking
    the audit file (when open) every AUDIT_CHECK_MS.  */
static void
s_watch (lapse_sub_t *sub, audit_t *audit, uint64_t expect,
         int64_t origin_ms, int64_t deadline_ms, progress_t *events,
         progress_t *lines)
{
    int64_t next_check = 0;
    uint64_t gaps = 0;
    while (s_now_ms (CLOCK_MONOTONIC) < deadline_ms) {
        bool events_done = events->done_ms >= 0;
        bool audit_done = audit->fd < 0 || lines->done_ms >= 0;
        if (events_done && audit_done)
            break;

        msg_event_t event;
        int rc = events_done ? 0
                             : lapse_sub_next (sub, &event, AUDIT_CHECK_MS);
        int64_t now = s_now_ms (CLOCK_MONOTONIC);
        if (rc == 1)
            s_progress_add (events, 1, expect, now - origin_ms);
        else if (rc == 2 && gaps++ < 10)
            log_warn ("events lost", "error=%s",
                      log_quote ("the registry no longer retains them"));
        else if (rc < 0)
            log_warn ("subscription failed", "error=%s",
                      log_quote (lapse_sub_error (sub)));
        if (events_done)
            usleep (AUDIT_CHECK_MS * 1000);
        if (audit->fd >= 0 && now >= next_check) {
            s_progress_add (lines, s_audit_read (audit), expect,
                            now - origin_ms);
            next_check = now + AUDIT_CHECK_MS;
        }
    }
}

static int
s_run_sweep (settings_t *settings)
{
    uint64_t expect = settings_uint (settings, "expect");
    const char *path = settings_string (settings, "audit-file");
    audit_t audit = { .fd = -1 };
    if (path) {
        audit.fd = open (path, O_RDONLY | O_CREAT, 0644);
        if (audit.fd < 0) {
            fprintf (stderr, "%s: cannot read %s: %s\n", PROGRAM, path,
                     strerror (errno));
            return -1;
        }
        s_audit_read (&audit);          /* what was there before */
    }

    lapse_sub_t *sub = lapse_sub_new (settings_string (settings, "commands"),
                                      settings_string (settings, "events"),
                                      NULL, 0);
    void *context = zmq_ctx_new ();
    if (!sub || !context)
        return -1;

    //  Lets the subscription connect and replay what is retained, so
    //  the tick finds it live
    msg_event_t event;
    int64_t warm_until = s_now_ms (CLOCK_MONOTONIC) + WARM_UP_MS;
    while (s_now_ms (CLOCK_MONOTONIC) < warm_until)
        lapse_sub_next (sub, &event, 50);
    uint64_t before = lapse_sub_last_seq (sub);
    uint64_t audit_before = audit.lines;

    int64_t origin = s_now_ms (CLOCK_MONOTONIC);
    int rc = 0;
    if (settings_bool (settings, "tick"))
        rc = s_send_tick (context, settings_string (settings, "ticks"),
                          &origin);
    progress_t events = { 0, -1, -1 };
    progress_t lines = { 0, -1, -1 };
    if (rc == 0)
        s_watch (sub, &audit, expect, origin,
                 origin + settings_duration (settings, "timeout"), &events,
                 &lines);

    printf ("mode=sweep expect=%" PRIu64 " seq_before=%" PRIu64
            " audit_lines_before=%" PRIu64 " events=%" PRIu64
            " first_ms=%" PRId64 " subscriber_ms=%" PRId64
            " audit_lines=%" PRIu64 " audit_ms=%" PRId64 "\n",
            expect, before, audit_before, events.count, events.first_ms,
            events.done_ms, lines.count, lines.done_ms);
    lapse_sub_destroy (&sub);
    zmq_ctx_term (context);
    if (audit.fd >= 0)
        close (audit.fd);
    return rc;
}

/*  Counts the lines of standard input containing match.  */
static int
s_run_lines (settings_t *settings)
{
    uint64_t expect = settings_uint (settings, "expect");
    const char *match = settings_string (settings, "match");
    int64_t origin = (int64_t) settings_uint (settings, "since-ms");
    if (origin == 0)
        origin = s_now_ms (CLOCK_REALTIME);
    int64_t deadline = origin + settings_duration (settings, "timeout");

    progress_t lines = { 0, -1, -1 };
    int64_t started = s_now_ms (CLOCK_REALTIME);
    static char line[65536];
    size_t used = 0;
    bool open_input = true;
    while (open_input && lines.done_ms < 0) {
        int64_t now = s_now_ms (CLOCK_REALTIME);
        if (now >= deadline)
            break;
        struct pollfd input = { .fd = 0, .events = POLLIN };
        if (poll (&input, 1, (int) (deadline - now)) <= 0)
            continue;
        ssize_t size = read (0, line + used, sizeof line - used - 1);
        if (size <= 0) {
            open_input = false;
            break;
        }
        used += (size_t) size;
        line[used] = '\0';

        //  Count every complete line, keep a partial one for later
        char *start = line;
        char *end;
        uint64_t matched = 0;
        while ((end = memchr (start, '\n', used - (size_t) (start - line)))) {
            *end = '\0';
            matched += strstr (start, match) != NULL;
            start = end + 1;
        }
        used -= (size_t) (start - line);
        memmove (line, start, used);
        if (used == sizeof line - 1)
            used = 0;                   /* a line too long to be ours */
        s_progress_add (&lines, matched, expect,
                        s_now_ms (CLOCK_REALTIME) - origin);
    }
    printf ("mode=lines expect=%" PRIu64 " matched=%" PRIu64
            " first_ms=%" PRId64 " done_ms=%" PRId64 " started_wall_ms=%"
            PRId64 " first_wall_ms=%" PRId64 " done_wall_ms=%" PRId64 "\n",
            expect, lines.count, lines.first_ms, lines.done_ms, started,
            lines.first_ms < 0 ? -1 : origin + lines.first_ms,
            lines.done_ms < 0 ? -1 : origin + lines.done_ms);
    return 0;
}

int
main (int argc, char **argv)
{
    log_init ("sweepwatch");
    char error[1024];
    settings_t *settings = settings_load (PROGRAM, "sweepwatch", s_settings,
                                          argc, argv, error, sizeof error);
    if (!settings) {
        fprintf (stderr, "%s: %s\n", PROGRAM, error);
        return EXIT_USAGE;
    }
    if (settings_help_requested (settings)) {
        settings_print_help (s_settings, "usage: " PROGRAM " [options]");
        settings_destroy (&settings);
        return 0;
    }
    log_set_level (settings_log_level (settings, "log-level"));

    int rc = settings_bool (settings, "lines") ? s_run_lines (settings)
                                               : s_run_sweep (settings);
    settings_destroy (&settings);
    return rc == 0 ? 0 : 1;
}
