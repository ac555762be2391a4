/*  lapse-registry: owns the store, serves commands, sweeps on ticks and
    publishes removal events.

    Start-up reads as its steps: settings, store, in-memory activity,
    sockets, effective configuration, timers, loop, shutdown.
*/
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "lockfile.h"
#include "log.h"
#include "registry.h"
#include "signals.h"

#define FLUSH_BUFFER_CLIENTS 10000
#define SIGNAL_CHECK_MS 200
#define STOP_WAIT_MS 30000
#define EVENTS_SNDHWM 100000
#define COMMANDS_SNDHWM 1024

static const setting_def_t s_settings[] = {
    { "commands", SETTING_ENDPOINT, "tcp://127.0.0.1:7710", 0, 0, false,
      "endpoint the command socket (ROUTER) binds" },
    { "events", SETTING_ENDPOINT, "tcp://127.0.0.1:7711", 0, 0, false,
      "endpoint the event socket (PUB) binds" },
    { "ticks", SETTING_ENDPOINT, "tcp://127.0.0.1:7712", 0, 0, false,
      "endpoint the tick socket (SUB) binds; schedulers connect to it" },
    { "store", SETTING_STRING, "lapse.db", 1, 0, false,
      "path of the SQLite store" },
    { "stale-after", SETTING_DURATION, "30m", 1000, 365LL * 86400000, true,
      "evict clients with no activity for this long" },
    { "client-stale-after-min", SETTING_DURATION, "1m", 1000,
      365LL * 86400000, false,
      "smallest stale_after_ms a client may register with as its own "
      "threshold" },
    { "client-stale-after-max", SETTING_DURATION, "1d", 1000,
      365LL * 86400000, false,
      "largest stale_after_ms a client may register with as its own "
      "threshold" },
    { "tombstones", SETTING_BOOL, "off", 0, 0, false,
      "keep each removed client as a tombstone for tombstone-retention, "
      "so that get and touch report it as evicted" },
    { "tombstone-retention", SETTING_DURATION, "1d", 1000,
      3650LL * 86400000, false,
      "how long a tombstone is kept before it is purged" },
    { "tick-min-gap", SETTING_DURATION, "1s", 0, 86400000, false,
      "ignore ticks closer than this (or half the tick's interval, if "
      "more) to the last sweep" },
    { "sweep-batch", SETTING_UINT, "1000", 1, 100000, false,
      "clients removed per sweep transaction" },
    { "flush-interval", SETTING_DURATION, "1s", 10, 60000, false,
      "how often touched activity is written to the store" },
    { "activity-granularity", SETTING_DURATION, "1m", 0, 3600000, false,
      "a client's stored activity is rewritten only when it moved this "
      "much, unless a sweep needs it" },
    { "flush-batch", SETTING_UINT, "1000", 1, 100000, false,
      "clients whose activity one periodic flush writes at most, in one "
      "transaction" },
    { "event-retention", SETTING_DURATION, "7d", 60000, 3650LL * 86400000,
      false, "keep removal events this long for replay" },
    { "busy-timeout", SETTING_DURATION, "200ms", 0, 60000, false,
      "how long a store write waits for a lock held by another "
      "connection" },
    { "clock-jump-limit", SETTING_DURATION, "1m", 1000, 86400000, false,
      "a wall-clock step larger than this against the monotonic clock "
      "is a jump, which neither evicts active clients nor keeps silent "
      "ones" },
    { "brake", SETTING_BOOL, "on", 0, 0, true,
      "cap the clients one sweep may evict at brake-share" },
    { "brake-share", SETTING_UINT, "20", 1, 100, true,
      "percent of all clients one sweep may evict while the brake is "
      "on" },
    { "brake-min-clients", SETTING_UINT, "100", 0, 0, true,
      "registries with fewer clients than this are exempt from the "
      "brake" },
    { "log-level", SETTING_LOG_LEVEL, "info", 0, 0, false,
      "lowest level logged: debug, info, warn or error" },
    LIMITS_SETTINGS,
    SETTING_END
};

static void
s_read_settings (registry_t *self)
{
    settings_t *settings = self->settings;
    self->stale_after_ms = settings_duration (settings, "stale-after");
    self->client_min_ms = settings_duration (settings,
                                             "client-stale-after-min");
    self->client_max_ms = settings_duration (settings,
                                             "client-stale-after-max");
    self->tombstones = settings_bool (settings, "tombstones");
    self->tombstone_retention_ms = settings_duration (settings,
                                                      "tombstone-retention");
    self->tick_min_gap_ms = settings_duration (settings, "tick-min-gap");
    self->flush_interval_ms = settings_duration (settings, "flush-interval");
    self->granularity_ms = settings_duration (settings,
                                              "activity-granularity");
    self->event_retention_ms = settings_duration (settings,
                                                  "event-retention");
    self->sweep_batch = (uint32_t) settings_uint (settings, "sweep-batch");
    self->flush_batch = (size_t) settings_uint (settings, "flush-batch");
    limits_read (&self->limits, settings);
    self->brake.enabled = settings_bool (settings, "brake");
    self->brake.share = (uint32_t) settings_uint (settings, "brake-share");
    self->brake.min_clients = settings_uint (settings, "brake-min-clients");
}

/*  Stops the process when the bounds of a client's own threshold
    contradict each other.  */
static void
s_check_client_bounds (registry_t *self)
{
    if (self->client_min_ms <= self->client_max_ms)
        return;

    char min[32], max[32];
    fprintf (stderr,
             "lapse-registry: invalid settings: client-stale-after-min (%s) "
             "is larger than client-stale-after-max (%s); expected min at "
             "most max\n",
             settings_format_duration (self->client_min_ms, min, sizeof min),
             settings_format_duration (self->client_max_ms, max,
                                       sizeof max));
    exit (2);
}

/*  Tells the store whether to keep tombstones and finds the smallest own
    threshold any client can have, which a client registered under
    earlier settings may have put below client-stale-after-min.  */
static void
s_configure_store (registry_t *self)
{
    store_set_tombstones (self->store, self->tombstones);

    int64_t stored_min = 0;
    if (store_min_stale_after (self->store, &stored_min) != 0)
        log_fatal ("reading client thresholds failed", "error=%s",
                   log_quote (store_error (self->store)));
    self->own_floor_ms = self->client_min_ms;
    if (stored_min > 0 && stored_min < self->own_floor_ms) {
        self->own_floor_ms = stored_min;
        log_warn ("client threshold below client-stale-after-min",
                  "stale_after_ms=%" PRId64 " client_stale_after_min_ms=%"
                  PRId64, stored_min, self->client_min_ms);
    }
}

static int
s_load_client (const store_client_t *client, void *arg)
{
    registry_t *self = arg;
    if (activity_add (self->activity, client->id, client->last_activity_ms)
        != 0)
        return -1;
    return sweep_set_own_threshold (self, client->id,
                                    client->stale_after_ms);
}

/*  Takes "<path>.lock" for an ipc:// endpoint.  Binding an ipc:// path
    replaces the socket file of any process bound there before, which
    would cut that process off from new peers without telling it, so
    a second registry on the same endpoint must stop instead.  The lock
    is held until the process ends.  */
static void
s_lock_ipc_endpoint (const char *endpoint, const char *name)
{
    if (strncmp (endpoint, "ipc://", 6) != 0)
        return;

    char path[PATH_MAX];
    snprintf (path, sizeof (path), "%s.lock", endpoint + 6);
    pid_t holder = 0;
    if (lockfile_acquire (path, &holder) >= 0)
        return;

    if (errno == EAGAIN)
        log_fatal ("bind failed",
                   "socket=%s endpoint=%s error=%s holder_pid=%ld hint=%s",
                   name, log_quote (endpoint),
                   log_quote ("endpoint is in use by another process"),
                   (long) holder,
                   log_quote ("stop that registry or choose another "
                              "endpoint"));
    log_fatal ("bind failed", "socket=%s endpoint=%s lock=%s error=%s", name,
               log_quote (endpoint), log_quote (path),
               log_quote (strerror (errno)));
}

/*  Creates and binds one socket.  sndhwm is the send high-water mark in
    messages per peer, or 0 for ZeroMQ's default.  */
static zsock_t *
s_bind (int type, const char *endpoint, const char *name,
        uint32_t max_message_size, int sndhwm)
{
    s_lock_ipc_endpoint (endpoint, name);
    zsock_t *socket = zsock_new (type);
    if (!socket)
        log_fatal ("socket creation failed", "socket=%s", name);

    //  libzmq drops a frame over this size, so a peer cannot make the
    //  registry allocate without bound.  The margin leaves room for the
    //  two envelope frames that ride along with each body.
    zsock_set_maxmsgsize (socket, (int) max_message_size + 1024);
    zsock_set_linger (socket, 100);

    //  A bound socket gives each peer that connects the options it had
    //  at bind time, so a high-water mark set after zsock_bind would
    //  leave every subscriber on ZeroMQ's default of 1000
    if (sndhwm > 0)
        zsock_set_sndhwm (socket, sndhwm);
    if (zsock_bind (socket, "%s", endpoint) < 0) {
        int error = errno;
        zsock_destroy (&socket);
        log_fatal ("bind failed",
                   "socket=%s endpoint=%s error=%s hint=%s", name,
                   log_quote (endpoint), log_quote (zmq_strerror (error)),
                   log_quote ("is another registry running, or is the "
                              "address wrong?"));
    }
    return socket;
}

/*  Binds the command and tick sockets into self, and returns the bound
    event socket.  */
static zsock_t *
s_open_sockets (registry_t *self)
{
    settings_t *settings = self->settings;

    //  Replies queue per peer up to COMMANDS_SNDHWM, and past it a reply
    //  is dropped and counted.  A peer that sends requests and never
    //  reads the replies therefore ties up a bounded amount of memory.
    //  The bound is four times a window of 256 requests in flight: at
    //  256, replies to such a window were dropped when a group commit
    //  completed many registrations at once.
    self->commands = s_bind (ZMQ_ROUTER,
                             settings_string (settings, "commands"),
                             "commands", self->limits.message_size,
                             COMMANDS_SNDHWM);
    zsock_set_router_mandatory (self->commands, 1);

    zsock_t *events = s_bind (ZMQ_PUB, settings_string (settings, "events"),
                              "events", self->limits.message_size,
                              EVENTS_SNDHWM);

    self->ticks = s_bind (ZMQ_SUB, settings_string (settings, "ticks"),
                          "ticks", self->limits.message_size, 0);
    zsock_set_subscribe (self->ticks, MSG_TOPIC_TICK);
    return events;
}

static int
s_handle_signal_timer (zloop_t *loop, int timer_id, void *arg)
{
    registry_t *self = arg;
    if (!signals_take_reload ())
        return 0;

    char error[512];
    int64_t old_ms = self->stale_after_ms;
    int rc = settings_reload (self->settings, error, sizeof (error));
    if (rc < 0) {
        log_error ("configuration reload failed", "error=%s action=%s",
                   log_quote (error), log_quote ("kept the old values"));
        return 0;
    }

    s_read_settings (self);
    log_info ("configuration reloaded",
              "stale_after_ms=%" PRId64 " previous_stale_after_ms=%" PRId64
              " brake=%s brake_share=%u brake_min_clients=%" PRIu64,
              self->stale_after_ms, old_ms,
              self->brake.enabled ? "on" : "off", self->brake.share,
              self->brake.min_clients);
    return 0;
}

/*  Allocates the buffers of the sweep's and the housekeeping's store
    jobs, which are reused from turn to turn.  */
static void
s_allocate_jobs (registry_t *self)
{
    size_t batch = self->sweep_batch;
    bool allocated = true;
    for (size_t i = 0; i < SWEEP_JOBS; i++) {
        job_sweep_t *sweep = &self->sweep.jobs[i].u.sweep;
        sweep->evict = calloc (batch, sizeof (store_candidate_t));
        sweep->events = calloc (batch, sizeof (store_event_t));
        allocated = allocated && sweep->evict && sweep->events;
    }

    job_housekeeping_t *housekeeping = &self->housekeeping.job.u.housekeeping;
    housekeeping->capacity = FLUSH_BUFFER_CLIENTS;
    housekeeping->updates = calloc (FLUSH_BUFFER_CLIENTS,
                                    sizeof (store_activity_t));
    housekeeping->ids = calloc (FLUSH_BUFFER_CLIENTS,
                                sizeof (*housekeeping->ids));
    allocated = allocated && housekeeping->updates && housekeeping->ids;
    if (!allocated)
        log_fatal ("out of memory", "sweep_batch=%u flush_buffer=%d",
                   self->sweep_batch, FLUSH_BUFFER_CLIENTS);
}

static void
s_start (registry_t *self, int argc, char **argv)
{
    char error[1024];
    self->settings = settings_load ("lapse-registry", "registry", s_settings,
                                    argc, argv, error, sizeof (error));
    if (!self->settings) {
        fprintf (stderr, "lapse-registry: %s\n", error);
        exit (2);
    }
    if (settings_help_requested (self->settings)) {
        settings_print_help (s_settings, "usage: lapse-registry [options]");
        exit (0);
    }

    //  A boolean flag given as "--brake off" reads as "--brake" followed
    //  by the argument "off", which would leave the brake on in silence
    if (settings_positional_count (self->settings) > 0) {
        fprintf (stderr,
                 "lapse-registry: unexpected argument \"%s\": the "
                 "registry takes options only, and a boolean option takes "
                 "its value after \"=\", as in --brake=off (see --help)\n",
                 settings_positional (self->settings, 0));
        exit (2);
    }

    log_set_level (settings_log_level (self->settings, "log-level"));
    s_read_settings (self);
    s_check_client_bounds (self);
    wallclock_init (&self->clock,
                    settings_duration (self->settings, "clock-jump-limit"),
                    zclock_time (), zclock_mono ());

    const char *path = settings_string (self->settings, "store");
    int busy_ms = (int) settings_duration (self->settings, "busy-timeout");
    self->store = store_open (path, busy_ms, error, sizeof (error));
    if (!self->store)
        log_fatal ("store open failed", "store=%s error=%s",
                   log_quote (path), log_quote (error));
    s_configure_store (self);

    self->activity = activity_new ();
    self->own_thresholds = zhashx_new ();
    int64_t load_started = zclock_mono ();
    if (!self->activity || !self->own_thresholds
        || store_each_client (self->store, s_load_client, self) != 0)
        log_fatal ("loading clients failed", "store=%s error=%s",
                   log_quote (path), log_quote (store_error (self->store)));
    log_info ("clients loaded", "clients=%zu duration_ms=%" PRId64,
              activity_count (self->activity),
              zclock_mono () - load_started);

    s_allocate_jobs (self);
    self->sweep.timer_id = -1;
    store_t *writer = store_open_peer (self->store, error, sizeof (error));
    if (!writer)
        log_fatal ("store open failed", "store=%s error=%s",
                   log_quote (path), log_quote (error));

    //  The worker publishes the events it commits, so it takes the PUB
    //  socket, and the loop never touches that socket again
    zsock_t *events = s_open_sockets (self);
    self->writer = storework_new (writer, events);
    if (!self->writer)
        log_fatal ("store worker start failed", "store=%s",
                   log_quote (path));

    self->serving_since_mono = zclock_mono ();
    settings_log (self->settings);
}

static void
s_run (registry_t *self)
{
    self->loop = zloop_new ();
    if (!self->loop)
        log_fatal ("event loop creation failed", NULL);

    zloop_reader (self->loop, self->commands, commands_handle, self);
    zloop_reader (self->loop, self->ticks, sweep_handle_tick, self);
    zloop_reader (self->loop, storework_socket (self->writer),
                  storework_handle, self->writer);
    zloop_timer (self->loop, (size_t) self->flush_interval_ms, 0,
                 sweep_handle_flush_timer, self);
    zloop_timer (self->loop, SIGNAL_CHECK_MS, 0, s_handle_signal_timer,
                 self);

    log_info ("registry started", "pid=%d clients=%zu", getpid (),
              activity_count (self->activity));
    zloop_start (self->loop);
}

/*  Stops between transactions: the worker finishes the jobs it was
    given, each one transaction, and takes no more, so stopping never
    leaves one half applied.  Their results are still handled, so every
    request that waited on one gets its reply.  Then the pending
    activity is written, so that a clean stop loses no touch.  */
static void
s_stop (registry_t *self)
{
    self->stopping = true;
    while (storework_outstanding (self->writer) > 0)
        if (storework_wait (self->writer, STOP_WAIT_MS) != 0) {
            //  The worker may still be using the job buffers and the
            //  sockets, so nothing is freed or closed: the process ends
            //  here, and the next start loads what was committed
            log_error ("store worker did not finish",
                       "outstanding=%zu wait_ms=%d action=%s",
                       storework_outstanding (self->writer), STOP_WAIT_MS,
                       log_quote ("exiting without the final flush"));
            _exit (1);
        }
    storework_destroy (&self->writer);
    int rc = sweep_flush_all (self);

    log_info ("registry stopped",
              "clients=%zu requests=%" PRIu64 " evicted=%" PRIu64
              " final_flush=%s",
              activity_count (self->activity), self->stats.requests,
              self->stats.evicted, rc == 0 ? "ok" : "failed");

    sweep_destroy (self);
    zloop_destroy (&self->loop);
    zsock_destroy (&self->commands);
    zsock_destroy (&self->ticks);
    activity_destroy (&self->activity);
    zhashx_destroy (&self->own_thresholds);
    store_destroy (&self->store);
    settings_destroy (&self->settings);
}

int
main (int argc, char **argv)
{
    zsys_init ();
    log_init ("registry");
    signals_init ();

    registry_t registry = { 0 };
    s_start (&registry, argc, argv);
    s_run (&registry);
    s_stop (&registry);
    return registry.exit_code;
}
