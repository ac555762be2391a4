/*  lapse-scheduler: publishes a tick every sweep interval.

    The scheduler connects a PUB socket to the registry's tick endpoint
    and sends [topic "tick"][body] once per interval, the first one a
    full interval after start.  It keeps no state beyond a per-process
    tick counter, so several schedulers may run at once for redundancy.
    The registry ignores ticks that come closer together than its minimum
    gap.  SIGHUP re-reads the interval, and SIGINT or SIGTERM stop it.
*/
#include <czmq.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "protocol.h"
#include "settings.h"
#include "signals.h"

#define PROGRAM "lapse-scheduler"

/*  How often the loop checks for SIGHUP.  */
#define RELOAD_CHECK_MS 200

/*  Exit status for an invalid setting or argument.  */
#define EXIT_USAGE 2

/*  Filled in at start with "<hostname>-<pid>" before the table is read.  */
static char s_default_id[MSG_SCHEDULER_MAX + 1];

static setting_def_t s_settings[] = {
    { "ticks", SETTING_ENDPOINT, "tcp://127.0.0.1:7712", 0, 0, false,
      "registry tick endpoint that the PUB socket connects to" },
    { "interval", SETTING_DURATION, "10m", 100, 24 * 3600 * 1000, true,
      "time between ticks" },
    { "id", SETTING_STRING, s_default_id, 1, MSG_SCHEDULER_MAX, false,
      "scheduler id carried by every tick, 1 to 64 bytes" },
    { "log-level", SETTING_LOG_LEVEL, "info", 0, 0, false,
      "lowest level logged: debug, info, warn or error" },
    SETTING_END
};

typedef struct {
    settings_t *settings;
    zsock_t *publisher;
    zloop_t *loop;
    char id[MSG_SCHEDULER_MAX + 1];
    int64_t interval_ms;
    int tick_timer;             /* zloop timer id, -1 when not armed */
    uint64_t seq;               /* ticks sent by this process */
    uint64_t send_failures;
} scheduler_t;

/*  Builds "<hostname>-<pid>", cutting the host name so that the id fits
    MSG_SCHEDULER_MAX bytes.  */
static void
s_default_id_fill (void)
{
    char host[256] = "host";
    char pid[24];

    if (gethostname (host, sizeof host) != 0 || host[0] == '\0')
        strcpy (host, "host");
    host[sizeof host - 1] = '\0';

    int pid_length = snprintf (pid, sizeof pid, "-%ld", (long) getpid ());
    int host_room = MSG_SCHEDULER_MAX - pid_length;
    snprintf (s_default_id, sizeof s_default_id, "%.*s%s", host_room, host,
              pid);
}

/*  Encodes one tick.  Returns 0 with a malloc'd body in *data, or -1
    with the reason in *failure.  */
static int
s_tick_encode (const char *id, uint64_t seq, int64_t interval_ms,
               void **data, size_t *size, msg_failure_t *failure)
{
    msg_t msg;
    memset (&msg, 0, sizeof msg);
    msg.type = MSG_TICK;
    msg.u.tick.scheduler = msg_str (id);
    msg.u.tick.seq = seq;
    msg.u.tick.sent_ms = zclock_time ();
    msg.u.tick.interval_ms = interval_ms;
    return msg_encode (&msg, data, size, failure);
}

/*  Checks what the settings table cannot: that the id is accepted by
    the protocol, and that no positional argument was given.  Returns 0,
    or -1 with a message in error.  */
static int
s_settings_check (settings_t *settings, char *error, size_t error_size)
{
    log_set_level (settings_log_level (settings, "log-level"));

    if (settings_positional_count (settings) > 0) {
        snprintf (error, error_size,
                  "%s: unexpected argument \"%s\": the scheduler takes "
                  "options only (see --help)",
                  PROGRAM, settings_positional (settings, 0));
        return -1;
    }

    /*  Encoding a sample tick applies the protocol's own id rules, so an
        id the registry would reject stops the scheduler at start.  */
    const char *id = settings_string (settings, "id");
    void *data = NULL;
    size_t size = 0;
    msg_failure_t failure;
    if (s_tick_encode (id, 1, settings_duration (settings, "interval"),
                       &data, &size, &failure) != 0) {
        snprintf (error, error_size, "%s: invalid id \"%.64s\": %.400s",
                  PROGRAM, id, failure.message);
        return -1;
    }
    free (data);
    return 0;
}

static int
s_on_tick (zloop_t *loop, int timer_id, void *arg)
{
    scheduler_t *self = (scheduler_t *) arg;
    void *data = NULL;
    size_t size = 0;
    msg_failure_t failure;

    uint64_t seq = self->seq + 1;
    if (s_tick_encode (self->id, seq, self->interval_ms, &data, &size,
                       &failure) != 0) {
        self->send_failures++;
        log_error ("tick encoding failed", "seq=%" PRIu64 " error=%s", seq,
                   log_quote (failure.message));
        return 0;
    }

    /*  A PUB socket drops a message that no subscriber can take instead
        of blocking (zmq_socket(3)), so a failed send means the socket
        itself failed.  */
    int rc = zsock_send (self->publisher, "sb", MSG_TOPIC_TICK, data, size);
    free (data);
    if (rc != 0) {
        self->send_failures++;
        log_error ("tick send failed", "seq=%" PRIu64 " error=%s", seq,
                   log_quote (zmq_strerror (zmq_errno ())));
        return 0;
    }
    self->seq = seq;
    log_debug ("tick sent", "seq=%" PRIu64 " interval_ms=%" PRId64, seq,
               self->interval_ms);
    return 0;
}

/*  Arms the tick timer for the current interval, replacing any armed
    one, so that the next tick comes one full interval from now.  */
static int
s_tick_timer_arm (scheduler_t *self)
{
    if (self->tick_timer != -1)
        zloop_timer_end (self->loop, self->tick_timer);
    self->tick_timer = zloop_timer (self->loop, (size_t) self->interval_ms,
                                    0, s_on_tick, self);
    if (self->tick_timer == -1) {
        log_error ("timer creation failed", "interval_ms=%" PRId64,
                   self->interval_ms);
        return -1;
    }
    return 0;
}

/*  Applies SIGHUP.  The messages are the registry's, so that one search
    finds the reloads of every process.  */
static void
s_settings_reload (scheduler_t *self)
{
    char error[512];
    char old_text[32];
    char new_text[32];

    int changed = settings_reload (self->settings, error, sizeof error);
    if (changed == -1) {
        log_error ("configuration reload failed",
                   "error=%s kept_interval_ms=%" PRId64, log_quote (error),
                   self->interval_ms);
        return;
    }

    int64_t interval_ms = settings_duration (self->settings, "interval");
    log_info ("configuration reloaded",
              "changed=%s interval=%s previous_interval=%s",
              changed ? "true" : "false",
              settings_format_duration (interval_ms, new_text,
                                        sizeof new_text),
              settings_format_duration (self->interval_ms, old_text,
                                        sizeof old_text));
    if (interval_ms == self->interval_ms)
        return;
    self->interval_ms = interval_ms;
    s_tick_timer_arm (self);
}

/*  SIGHUP only sets a flag (see signals.h), so the loop polls it here.  */
static int
s_on_reload_check (zloop_t *loop, int timer_id, void *arg)
{
    if (signals_take_reload ())
        s_settings_reload ((scheduler_t *) arg);
    return 0;
}

/*  Connects the socket, arms both timers and runs the loop until
    SIGINT or SIGTERM.  Returns 0 on a clean stop, -1 when start-up
    failed.  */
static int
s_scheduler_run (scheduler_t *self)
{
    const char *endpoint = settings_string (self->settings, "ticks");
    self->publisher = zsock_new (ZMQ_PUB);
    if (!self->publisher) {
        log_error ("socket creation failed", "error=%s",
                   log_quote (zmq_strerror (zmq_errno ())));
        return -1;
    }
    if (zsock_connect (self->publisher, "%s", endpoint) != 0) {
        log_error ("connect failed", "endpoint=%s error=%s",
                   log_quote (endpoint),
                   log_quote (zmq_strerror (zmq_errno ())));
        return -1;
    }

    self->loop = zloop_new ();
    if (!self->loop)
        return -1;
    if (s_tick_timer_arm (self) != 0)
        return -1;
    if (zloop_timer (self->loop, RELOAD_CHECK_MS, 0, s_on_reload_check,
                     self) == -1)
        return -1;

    char interval_text[32];
    log_info ("scheduler started", "id=%s ticks=%s interval=%s pid=%ld",
              log_quote (self->id), log_quote (endpoint),
              settings_format_duration (self->interval_ms, interval_text,
                                        sizeof interval_text),
              (long) getpid ());

    /*  zloop_start returns when czmq's SIGINT/SIGTERM handler sets
        zsys_interrupted; no handler here returns -1.  */
    zloop_start (self->loop);
    return 0;
}

static void
s_usage_print (void)
{
    settings_print_help (s_settings, "usage: " PROGRAM " [options]");
    printf ("\nPublishes a tick to the registry every interval; the first "
            "tick\ngoes out one interval after start.  SIGHUP re-reads "
            "the interval.\n");
}

int
main (int argc, char **argv)
{
    char error[512];
    scheduler_t self;
    memset (&self, 0, sizeof self);
    self.tick_timer = -1;

    log_init ("scheduler");
    s_default_id_fill ();
    self.settings = settings_load (PROGRAM, "scheduler", s_settings, argc,
                                   argv, error, sizeof error);
    if (!self.settings) {
        fprintf (stderr, "%s: %s\n", PROGRAM, error);
        return EXIT_USAGE;
    }
    if (settings_help_requested (self.settings)) {
        s_usage_print ();
        settings_destroy (&self.settings);
        return 0;
    }
    if (s_settings_check (self.settings, error, sizeof error) != 0) {
        fprintf (stderr, "%s\n", error);
        settings_destroy (&self.settings);
        return EXIT_USAGE;
    }

    snprintf (self.id, sizeof self.id, "%s",
              settings_string (self.settings, "id"));
    self.interval_ms = settings_duration (self.settings, "interval");
    zsys_init ();
    signals_init ();
    settings_log (self.settings);

    int rc = s_scheduler_run (&self);
    log_info ("scheduler stopped", "id=%s ticks=%" PRIu64
              " send_failures=%" PRIu64, log_quote (self.id), self.seq,
              self.send_failures);

    zloop_destroy (&self.loop);
    zsock_destroy (&self.publisher);
    settings_destroy (&self.settings);
    return rc == 0 ? 0 : 1;
}
