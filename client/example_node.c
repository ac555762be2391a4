/*  lapse-node-sim: an example API node serving a simulated population.

    It registers its clients PREFIX1 .. PREFIXN, touches the busy ones
    (the first N minus the silent share) once per touch period, spread
    evenly over the period, and never touches the silent ones, so the
    registry's sweep evicts them.  It follows its own node's removals
    with a lapse_sub_t.  A stale eviction of a busy client is a false
    eviction, so it is logged as an error.  A busy client that a touch
    finds unknown, or evicted when the registry keeps tombstones, is
    registered again, and an evicted one is logged.
*/
#include <czmq.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lapse.h"
#include "log.h"
#include "protocol.h"
#include "settings.h"

#define PROGRAM "lapse-node-sim"

/*  Exit status for an invalid setting or argument.  */
#define EXIT_USAGE 2

#define SUMMARY_INTERVAL_MS 10000

/*  Maximum wait for events between two passes over the touch schedule,
    so that touches and the summary stay on time.  */
#define LOOP_WAIT_MAX_MS 100

/*  Attempts per registration when the registry replies busy.  */
#define REGISTER_ATTEMPTS 5
#define REGISTER_RETRY_MS 100

/*  Room for an id built from a prefix and a number, which is checked
    against MSG_ID_MAX at start.  */
#define ID_BUFFER_SIZE (MSG_ID_MAX + 12)

/*  Filled in at start with "node-<pid>" before the table is read.  */
static char s_default_node[MSG_NODE_MAX + 1];

static setting_def_t s_settings[] = {
    { "commands", SETTING_ENDPOINT, "tcp://127.0.0.1:7710", 0, 0, false,
      "registry command endpoint" },
    { "events", SETTING_ENDPOINT, "tcp://127.0.0.1:7711", 0, 0, false,
      "registry event endpoint" },
    { "node", SETTING_STRING, s_default_node, 1, MSG_NODE_MAX, false,
      "API node name that the clients are registered for" },
    { "clients", SETTING_UINT, "100", 1, 1000000, false,
      "clients in the population" },
    { "silent", SETTING_UINT, "20", 0, 100, false,
      "percent of the clients that are never touched" },
    { "touch-period", SETTING_DURATION, "5s", 100, 3600 * 1000, false,
      "time in which each busy client is touched once" },
    { "prefix", SETTING_STRING, NULL, 1, 100, false,
      "client id prefix, ids are PREFIX1 to PREFIXN (default NODE-c)" },
    { "duration", SETTING_DURATION, "0s", 0, 30LL * 86400 * 1000, false,
      "run time; 0 runs until SIGINT or SIGTERM" },
    { "log-level", SETTING_LOG_LEVEL, "info", 0, 0, false,
      "lowest level logged: debug, info, warn or error" },
    SETTING_END
};

typedef struct {
    uint64_t touches;           /* ids sent in touch requests */
    uint64_t touch_failures;    /* touch requests that failed */
    uint64_t evicted;           /* removals of this population's clients */
    uint64_t false_evictions;   /* stale evictions of busy clients */
    uint64_t reregistered;
    uint64_t touched_evicted;   /* touched ids the registry reported
                                   evicted */
    uint64_t lost_events;       /* events the registry no longer had */
    uint64_t sub_failures;
} sim_counters_t;

typedef struct {
    settings_t *settings;
    lapse_t *lapse;
    lapse_sub_t *sub;
    char node[MSG_NODE_MAX + 1];
    char prefix[MSG_ID_MAX + 1];
    uint32_t count;
    uint32_t busy_count;        /* clients 1 .. busy_count are busy */
    bool *registered;           /* as far as this process knows; [n - 1]
                                   is client n */
    int64_t *acked_ms;          /* wall-clock ms when the last touch or
                                   registration of client n that the
                                   registry acknowledged was sent */
    int64_t period_ms;
    int64_t touch_start;        /* monotonic ms when touching began */
    uint64_t touch_cursor;      /* touches scheduled since touch_start */
    uint32_t batch_count;
    uint32_t batch[MSG_TOUCH_IDS_MAX];  /* client numbers to touch */
    sim_counters_t counters;
} sim_t;

static void
s_default_node_fill (void)
{
    snprintf (s_default_node, sizeof s_default_node, "node-%ld",
              (long) getpid ());
}

static char *
s_client_id (sim_t *self, uint32_t number, char *buffer, size_t size)
{
    snprintf (buffer, size, "%s%" PRIu32, self->prefix, number);
    return buffer;
}

/*  Returns the client number of id, or 0 when id is not PREFIXn with n
    in this population.  */
static uint32_t
s_client_number (sim_t *self, msg_str_t id)
{
    size_t prefix_length = strlen (self->prefix);
    if (id.len <= prefix_length || id.len - prefix_length > 10
        || memcmp (id.ptr, self->prefix, prefix_length) != 0)
        return 0;

    uint64_t number = 0;
    for (uint32_t index = (uint32_t) prefix_length; index < id.len;
         index++) {
        if (id.ptr[index] < '0' || id.ptr[index] > '9')
            return 0;
        number = number * 10 + (uint64_t) (id.ptr[index] - '0');
    }
    return number <= self->count ? (uint32_t) number : 0;
}

/*  Checks what the settings table cannot and fills in node and prefix.
    Returns 0, or -1 with a message in error.  */
static int
s_settings_check (sim_t *self, char *error, size_t error_size)
{
    log_set_level (settings_log_level (self->settings, "log-level"));
    if (settings_positional_count (self->settings) > 0) {
        snprintf (error, error_size, "%s: unexpected argument \"%s\": the "
                  "simulator takes options only (see --help)", PROGRAM,
                  settings_positional (self->settings, 0));
        return -1;
    }

    const char *node = settings_string (self->settings, "node");
    if (!msg_node_is_valid (msg_str (node))) {
        snprintf (error, error_size, "%s: invalid node \"%s\": expected 1 "
                  "to %d letters, digits or \"-_.:\"", PROGRAM, node,
                  MSG_NODE_MAX);
        return -1;
    }
    snprintf (self->node, sizeof self->node, "%s", node);
    const char *prefix = settings_string (self->settings, "prefix");
    snprintf (self->prefix, sizeof self->prefix, "%s-c", node);
    if (prefix)
        snprintf (self->prefix, sizeof self->prefix, "%s", prefix);

    /*  The longest id is the one with the highest number.  */
    char id[ID_BUFFER_SIZE];
    self->count = (uint32_t) settings_uint (self->settings, "clients");
    s_client_id (self, self->count, id, sizeof id);
    if (!msg_id_is_valid (msg_str (id))) {
        snprintf (error, error_size, "%s: invalid prefix \"%s\": client id "
                  "\"%s\" must be 1 to %d printable ASCII characters "
                  "without spaces", PROGRAM, self->prefix, id, MSG_ID_MAX);
        return -1;
    }
    return 0;
}

/*  Returns the newest event seq the registry retains, so that the
    subscription starts after it and reports only this run's removals.  */
static int
s_events_last_seq (sim_t *self, uint64_t *last_seq)
{
    msg_t request;
    msg_t reply;
    memset (&request, 0, sizeof request);
    memset (&reply, 0, sizeof reply);
    request.type = MSG_EVENTS;
    request.u.events.limit = 1;
    if (lapse_request (self->lapse, &request, &reply) != 0) {
        log_error ("event seq request failed", "code=%s error=%s",
                   msg_error_code_name (lapse_error_code (self->lapse)),
                   log_quote (lapse_error (self->lapse)));
        return -1;
    }
    *last_seq = reply.u.result.last_seq;
    msg_release (&reply);
    return 0;
}

/*  Registers client number, retrying while the registry is busy.  */
static int
s_client_register (sim_t *self, uint32_t number)
{
    char id[ID_BUFFER_SIZE];
    s_client_id (self, number, id, sizeof id);
    for (int attempt = 1; attempt <= REGISTER_ATTEMPTS; attempt++) {
        int64_t sent_ms = zclock_time ();
        if (lapse_register (self->lapse, id, NULL, 0, NULL) == 0) {
            self->registered[number - 1] = true;
            self->acked_ms[number - 1] = sent_ms;
            return 0;
        }
        if (lapse_error_code (self->lapse) != MSG_ERR_BUSY
            || zsys_interrupted)
            break;
        zclock_sleep (REGISTER_RETRY_MS);
    }
    log_error ("register failed", "client=%s code=%s error=%s",
               log_quote (id),
               msg_error_code_name (lapse_error_code (self->lapse)),
               log_quote (lapse_error (self->lapse)));
    return -1;
}

static int
s_population_register (sim_t *self)
{
    int64_t start = zclock_mono ();
    for (uint32_t number = 1; number <= self->count; number++) {
        if (zsys_interrupted)
            return -1;
        if (s_client_register (self, number) != 0)
            return -1;
    }
    log_info ("population registered", "clients=%" PRIu32
              " duration_ms=%" PRId64, self->count,
              zclock_mono () - start);
    return 0;
}

/*  Registers again each busy client in numbers, which a touch found
    unknown.  */
static void
s_clients_reregister (sim_t *self, const uint32_t *numbers, uint32_t count)
{
    for (uint32_t index = 0; index < count; index++) {
        char id[ID_BUFFER_SIZE];
        uint32_t number = numbers[index];
        self->registered[number - 1] = false;
        self->acked_ms[number - 1] = 0;
        if (number > self->busy_count)
            continue;
        if (s_client_register (self, number) != 0)
            continue;
        self->counters.reregistered++;
        log_info ("busy client re-registered", "client=%s",
                  log_quote (s_client_id (self, number, id, sizeof id)));
    }
}

/*  Adds the client numbers of the evicted ids of a touch result to
    numbers, logging each busy one: the registry removed a client this
    node still serves.  Returns the new count.  */
static uint32_t
s_evicted_collect (sim_t *self, const msg_result_t *result,
                   uint32_t *numbers, uint32_t count)
{
    for (uint32_t index = 0; index < result->evicted_count; index++) {
        uint32_t number = s_client_number (self, result->evicted[index]);
        if (number == 0)
            continue;
        self->counters.touched_evicted++;
        numbers[count++] = number;
        if (number > self->busy_count)
            continue;
        char id[ID_BUFFER_SIZE];
        log_warn ("touched client was evicted",
                  "client=%s acked_touch_ms=%" PRId64 " action=%s",
                  log_quote (msg_str_copy (result->evicted[index], id,
                                           sizeof id)),
                  self->acked_ms[number - 1], "register again");
    }
    return count;
}

/*  Sends the queued batch as one touch request.  lapse_request is used
    instead of lapse_touch because its result names the unknown and
    evicted ids.  */
static void
s_batch_send (sim_t *self)
{
    static char ids[MSG_TOUCH_IDS_MAX][ID_BUFFER_SIZE];
    msg_str_t views[MSG_TOUCH_IDS_MAX];
    uint32_t unknown[MSG_TOUCH_IDS_MAX];
    uint32_t unknown_count = 0;
    msg_t request;
    msg_t reply;

    for (uint32_t index = 0; index < self->batch_count; index++)
        views[index] = msg_str (s_client_id (self, self->batch[index],
                                             ids[index], sizeof ids[index]));
    memset (&request, 0, sizeof request);
    memset (&reply, 0, sizeof reply);
    request.type = MSG_TOUCH;
    request.u.touch.ids = views;
    request.u.touch.count = self->batch_count;
    uint32_t count = self->batch_count;
    self->batch_count = 0;
    int64_t sent_ms = zclock_time ();
    if (lapse_request (self->lapse, &request, &reply) != 0) {
        /*  SIGINT or SIGTERM cut the request short; the loop stops next.  */
        if (zsys_interrupted)
            return;
        self->counters.touch_failures++;
        log_error ("touch failed", "ids=%" PRIu32 " code=%s error=%s",
                   count,
                   msg_error_code_name (lapse_error_code (self->lapse)),
                   log_quote (lapse_error (self->lapse)));
        return;
    }

    /*  Reply strings live only until the next request, so the unknown
        and evicted ids are turned into numbers before registering any of
        them.  */
    self->counters.touches += count;
    const msg_result_t *result = &reply.u.result;
    unknown_count = s_evicted_collect (self, result, unknown, unknown_count);
    for (uint32_t index = 0; index < count; index++)
        self->acked_ms[self->batch[index] - 1] = sent_ms;
    for (uint32_t index = 0; index < result->unknown_count; index++) {
        uint32_t number = s_client_number (self, result->unknown[index]);
        if (number)
            unknown[unknown_count++] = number;
    }
    msg_release (&reply);
    s_clients_reregister (self, unknown, unknown_count);
}

/*  Touches every busy client whose turn came since the last call.  Touch
    k is due k * period / busy after touch_start, so each busy client is
    touched once per period and the touches are spread evenly.  */
static void
s_touches_send (sim_t *self, int64_t now)
{
    if (self->busy_count == 0)
        return;
    uint64_t elapsed = (uint64_t) (now - self->touch_start);
    uint64_t due = elapsed * self->busy_count / (uint64_t) self->period_ms
                   + 1;

    /*  After a stall, one touch per client covers everything missed.  */
    if (due - self->touch_cursor > self->busy_count)
        self->touch_cursor = due - self->busy_count;
    for (; self->touch_cursor < due; self->touch_cursor++) {
        uint32_t number
            = (uint32_t) (self->touch_cursor % self->busy_count) + 1;
        self->batch[self->batch_count++] = number;
        self->registered[number - 1] = true;
        if (self->batch_count == MSG_TOUCH_IDS_MAX)
            s_batch_send (self);
    }
    if (self->batch_count > 0)
        s_batch_send (self);
}

/*  Returns the monotonic time at which the next touch is due.  */
static int64_t
s_next_touch_at (sim_t *self)
{
    if (self->busy_count == 0)
        return INT64_MAX;
    uint64_t offset = (self->touch_cursor * (uint64_t) self->period_ms
                       + self->busy_count - 1)
                      / self->busy_count;
    return self->touch_start + (int64_t) offset;
}

static void
s_event_handle (sim_t *self, const msg_event_t *event)
{
    char id[ID_BUFFER_SIZE];
    msg_str_copy (event->id, id, sizeof id);
    if (!msg_str_eq (event->node, self->node))
        return;
    log_info ("client evicted", "client=%s reason=%s seq=%" PRIu64
              " sweep=%" PRIu64, log_quote (id),
              msg_reason_name (event->reason), event->seq, event->sweep);

    uint32_t number = s_client_number (self, event->id);
    if (number == 0)
        return;
    self->counters.evicted++;
    self->registered[number - 1] = false;
    if (number > self->busy_count)
        return;
    /*  acked_touch_ms later than the event's last_activity_ms means the
        registry lost an acknowledged touch.  */
    if (event->reason == MSG_REASON_STALE) {
        self->counters.false_evictions++;
        log_error ("busy client evicted", "client=%s seq=%" PRIu64
                   " sweep=%" PRIu64 " last_activity_ms=%" PRId64
                   " acked_touch_ms=%" PRId64 " removed_ms=%" PRId64,
                   log_quote (id), event->seq, event->sweep,
                   event->last_activity_ms, self->acked_ms[number - 1],
                   event->removed_ms);
    }
    else
        log_warn ("busy client removed", "client=%s reason=%s seq=%" PRIu64,
                  log_quote (id), msg_reason_name (event->reason),
                  event->seq);
}

/*  Follows a registry whose event sequence went backwards (its store
    was replaced) from the start of its new log.  The old subscription
    delivers nothing more.  This node's clients are registered again as
    their touches come back unknown.  */
static void
s_resubscribe (sim_t *self)
{
    uint64_t registry_seq = 0;
    lapse_sub_backwards (self->sub, &registry_seq, NULL);
    lapse_sub_t *sub = lapse_sub_new (
        settings_string (self->settings, "commands"),
        settings_string (self->settings, "events"), self->node, 0);
    if (!sub)
        return;
    lapse_sub_destroy (&self->sub);
    self->sub = sub;
    log_warn ("registry event sequence went backwards",
              "registry_last_seq=%" PRIu64 " action=%s", registry_seq,
              log_quote ("subscribed again from the start of its log"));
}

/*  Waits up to wait_ms for removal events and handles every one that is
    ready.  */
static void
s_events_receive (sim_t *self, int wait_ms)
{
    msg_event_t event;
    uint64_t first = 0;
    uint64_t last = 0;
    int rc = lapse_sub_next (self->sub, &event, wait_ms);
    while (rc == 1 || rc == 2) {
        if (rc == 1)
            s_event_handle (self, &event);
        else if (lapse_sub_gap (self->sub, &first, &last)) {
            self->counters.lost_events += last - first + 1;
            log_warn ("events lost", "first=%" PRIu64 " last=%" PRIu64,
                      first, last);
        }
        rc = lapse_sub_next (self->sub, &event, 0);
    }
    if (rc == -1 && lapse_sub_backwards (self->sub, NULL, NULL))
        s_resubscribe (self);
    else
    if (rc == -1 && !zsys_interrupted) {
        self->counters.sub_failures++;
        log_error ("subscription failed", "error=%s failures=%" PRIu64,
                   log_quote (lapse_sub_error (self->sub)),
                   self->counters.sub_failures);
        /*  Waiting out the slot keeps a persistent failure from
            spinning the loop.  */
        zclock_sleep (wait_ms);
    }
}

static void
s_summary_log (sim_t *self, const char *msg)
{
    uint32_t registered = 0;
    for (uint32_t index = 0; index < self->count; index++)
        registered += self->registered[index];
    const sim_counters_t *counters = &self->counters;
    log_info (msg, "node=%s registered=%" PRIu32 " busy=%" PRIu32
              " silent=%" PRIu32 " evicted=%" PRIu64
              " false_evictions=%" PRIu64 " reregistered=%" PRIu64
              " touched_evicted=%" PRIu64 " touches=%" PRIu64
              " touch_failures=%" PRIu64 " lost_events=%" PRIu64,
              self->node, registered, self->busy_count,
              self->count - self->busy_count, counters->evicted,
              counters->false_evictions, counters->reregistered,
              counters->touched_evicted, counters->touches,
              counters->touch_failures, counters->lost_events);
}

static int64_t
s_min (int64_t a, int64_t b)
{
    return a < b ? a : b;
}

/*  Touches, receives events and logs a summary every 10 s until SIGINT,
    SIGTERM or the end of the run time.  */
static void
s_sim_loop (sim_t *self)
{
    int64_t duration = settings_duration (self->settings, "duration");
    int64_t start = zclock_mono ();
    int64_t deadline = duration > 0 ? start + duration : INT64_MAX;
    int64_t next_summary = start + SUMMARY_INTERVAL_MS;
    self->touch_start = start;

    while (!zsys_interrupted) {
        int64_t now = zclock_mono ();
        if (now >= deadline)
            break;
        s_touches_send (self, now);
        if (now >= next_summary) {
            s_summary_log (self, "simulation summary");
            next_summary += SUMMARY_INTERVAL_MS;
        }

        int64_t until = s_min (s_next_touch_at (self), deadline);
        until = s_min (until, next_summary);
        until = s_min (until, now + LOOP_WAIT_MAX_MS);
        int64_t wait = until - zclock_mono ();
        s_events_receive (self, wait > 0 ? (int) wait : 1);
    }
}

/*  Connects, subscribes, registers the population and runs the loop.
    Returns 0 on a clean stop, -1 when start-up failed.  */
static int
s_sim_run (sim_t *self)
{
    const char *commands = settings_string (self->settings, "commands");
    const char *events = settings_string (self->settings, "events");
    uint64_t since = 0;
    self->lapse = lapse_new (commands, self->node);
    if (!self->lapse) {
        log_error ("connection creation failed", "commands=%s node=%s",
                   log_quote (commands), log_quote (self->node));
        return -1;
    }
    if (s_events_last_seq (self, &since) != 0)
        return -1;
    self->sub = lapse_sub_new (commands, events, self->node, since);
    if (!self->sub) {
        log_error ("subscription creation failed", "events=%s node=%s",
                   log_quote (events), log_quote (self->node));
        return -1;
    }

    char period[32];
    log_info ("node-sim started", "node=%s prefix=%s clients=%" PRIu32
              " busy=%" PRIu32 " silent=%" PRIu32 " touch_period=%s"
              " since=%" PRIu64, self->node, log_quote (self->prefix),
              self->count, self->busy_count, self->count - self->busy_count,
              settings_format_duration (self->period_ms, period,
                                        sizeof period), since);
    if (s_population_register (self) != 0)
        return zsys_interrupted ? 0 : -1;
    s_sim_loop (self);
    return 0;
}

static void
s_usage_print (void)
{
    settings_print_help (s_settings, "usage: " PROGRAM " [options]");
    printf ("\nRegisters PREFIX1 .. PREFIXN for the node, touches the busy "
            "ones\n(the first N minus the silent percent) once per touch "
            "period, and\nlogs every removal of its clients.  A stale "
            "eviction of a busy client\nis logged as msg=\"busy client "
            "evicted\" at level error.\n");
}

/*  Loads and checks the settings.  Returns 0 to go on, or the exit status
    in *status: 0 after --help, EXIT_USAGE on an invalid setting.  */
static int
s_sim_configure (sim_t *self, int argc, char **argv, int *status)
{
    char error[512];
    s_default_node_fill ();
    self->settings = settings_load (PROGRAM, "node-sim", s_settings, argc,
                                    argv, error, sizeof error);
    *status = EXIT_USAGE;
    if (!self->settings) {
        fprintf (stderr, "%s: %s\n", PROGRAM, error);
        return -1;
    }
    if (settings_help_requested (self->settings)) {
        s_usage_print ();
        *status = 0;
        return -1;
    }
    if (s_settings_check (self, error, sizeof error) != 0) {
        fprintf (stderr, "%s\n", error);
        return -1;
    }

    uint64_t silent = settings_uint (self->settings, "silent");
    uint64_t silent_count = (self->count * silent + 50) / 100;
    self->busy_count = self->count - (uint32_t) silent_count;
    self->period_ms = settings_duration (self->settings, "touch-period");
    self->registered = (bool *) calloc (self->count, sizeof (bool));
    self->acked_ms = (int64_t *) calloc (self->count, sizeof (int64_t));
    if (!self->registered || !self->acked_ms) {
        fprintf (stderr, "%s: out of memory for %" PRIu32 " clients\n",
                 PROGRAM, self->count);
        *status = 1;
        return -1;
    }
    return 0;
}

int
main (int argc, char **argv)
{
    sim_t *self = (sim_t *) calloc (1, sizeof (sim_t));
    int status = 1;
    if (!self)
        return 1;

    log_init ("node-sim");
    if (s_sim_configure (self, argc, argv, &status) == 0) {
        zsys_init ();
        settings_log (self->settings);
        status = s_sim_run (self) == 0 ? 0 : 1;
        s_summary_log (self, "node-sim stopped");
    }

    lapse_sub_destroy (&self->sub);
    lapse_destroy (&self->lapse);
    settings_destroy (&self->settings);
    free (self->registered);
    free (self->acked_ms);
    free (self);
    return status;
}
