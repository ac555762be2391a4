/*  commands.c: the command socket.  One request in, one reply out.

    A request arrives from the ROUTER as [identity][empty][body], and
    the reply goes back as [identity][empty][body].  Every request gets
    a reply, whatever frames it came in: a result, or
    an error with a stable code and a message naming the offending field.
    Replies are sent without blocking; one to a peer that left or stopped
    reading is dropped and counted, never waited on.
*/
#include <time.h>

#include "log.h"
#include "registry.h"

/*  Warning lines per second for each kind of bad input a peer can send
    at will; the stats count every occurrence.  The limits are file
    statics because the registry runs one event loop on one thread.  */
#define PEER_WARNINGS_PER_SECOND 10
#define REQUESTS_PER_WAKEUP 64

/*  Writes queued for the store worker at most; past this, register,
    deregister and evict get busy.  Each queued registration takes about
    1.4 KiB, so the queue stays under about 14 MiB.  */
#define STORE_JOBS_MAX 10000
static log_limit_t s_bad_request_log;
static log_limit_t s_over_limit_log;
static log_limit_t s_reply_dropped_log;

/*  One request being served.  */
typedef struct {
    registry_t *registry;
    msg_t *request;
    zmsg_t *envelope;           /* NULL once a store job took the reply */
    msg_t reply;
    char error_text[MSG_TEXT_MAX];
    /* storage for results that the reply's views point into */
    store_client_t client;
    store_client_t *clients;
    uint32_t clients_count;
    size_t list_bytes;          /* estimated encoded size of the page */
    bool list_full;             /* the page reached the size limit */
    store_event_t *events;
    uint32_t events_count;
    msg_str_t *ids;
    uint32_t ids_count;
    msg_str_t *evicted;
    uint32_t evicted_count;
    store_tombstone_t *tombstones;
    uint32_t tombstones_count;
    msg_stat_t stats[MSG_STATS_MAX];
} request_t;

static void
s_set_error (request_t *request, msg_error_code_t code, const char *format,
             ...) __attribute__ ((format (printf, 3, 4)));

static void
s_set_error (request_t *request, msg_error_code_t code, const char *format,
             ...)
{
    va_list args;
    va_start (args, format);
    vsnprintf (request->error_text, sizeof (request->error_text), format,
               args);
    va_end (args);

    request->reply.type = MSG_ERROR;
    request->reply.u.error.code = code;
    request->reply.u.error.message = msg_str (request->error_text);
}

/*  Sets an error reply for a failed store call: busy when another
    connection holds the lock (the caller may retry), internal otherwise.  */
static void
s_set_failure (request_t *request, const char *what, const char *id,
               const char *error, bool busy)
{
    registry_t *self = request->registry;
    self->stats.store_errors++;
    log_error ("store operation failed", "op=%s id=%s error=%s", what,
               log_quote (id), log_quote (error));

    if (busy)
        s_set_error (request, MSG_ERR_BUSY,
                     "%s of client \"%s\" failed: the store is busy; retry",
                     what, id);
    else
        s_set_error (request, MSG_ERR_INTERNAL,
                     "%s of client \"%s\" failed in the store; see the "
                     "registry log",
                     what, id);
}

static void
s_set_store_error (request_t *request, const char *what, const char *id)
{
    store_t *store = request->registry->store;
    s_set_failure (request, what, id, store_error (store),
                   store_busy (store));
}

static void
s_request_release (request_t *request);

/*  Hands job to the store worker, taking the request's envelope with it
    for the reply that done sends.  Returns 0, or -1 with an error set
    (the job is freed).  */
static int
s_defer (request_t *request, job_t *job, job_done_fn *done)
{
    registry_t *self = request->registry;
    job->done = done;
    job->arg = self;
    job->reply_to = request->envelope;
    job->req = request->request->req;
    const char *reason = NULL;
    if (self->stopping)
        reason = "the registry is stopping";
    else if (storework_outstanding (self->writer) >= STORE_JOBS_MAX)
        reason = "the store worker has too many writes queued";
    else if (storework_submit (self->writer, job) != 0)
        reason = "the store worker took no job";
    if (reason) {
        free (job);
        s_set_error (request, MSG_ERR_BUSY, "%s: %s; retry",
                     msg_type_name (request->request->type), reason);
        return -1;
    }
    request->envelope = NULL;
    return 0;
}

/*  Sends the reply a store job waited for, and frees the job.  */
static void
s_reply_job (request_t *request, job_t *job)
{
    request->reply.req = job->req;
    commands_reply (request->registry, job->reply_to, &request->reply);
    s_request_release (request);
    free (job);
}

static msg_result_t *
s_result (request_t *request)
{
    request->reply.type = MSG_RESULT;
    request->reply.u.result.cmd = request->request->type;
    return &request->reply.u.result;
}

static void
s_client_to_msg (registry_t *self, const store_client_t *row,
                 msg_client_t *client)
{
    client->id = msg_str (row->id);
    client->node = msg_str (row->node);
    client->registered_ms = row->registered_ms;
    client->meta.ptr = (const char *) row->meta;
    client->meta.len = (uint32_t) row->meta_len;
    client->stale_after_ms = row->stale_after_ms;

    //  Memory is ahead of the store by up to one flush of touches
    int64_t activity = activity_get (self->activity, row->id);
    client->last_activity_ms = activity > row->last_activity_ms
                                   ? activity
                                   : row->last_activity_ms;
}

/*  Checks a client's own threshold against the configured bounds (0,
    the default, always passes).  Returns 0, or -1 with the error set.  */
static int
s_check_own_threshold (request_t *request, int64_t stale_after_ms)
{
    registry_t *self = request->registry;
    if (stale_after_ms == 0
        || (stale_after_ms >= self->client_min_ms
            && stale_after_ms <= self->client_max_ms))
        return 0;

    self->stats.bad_requests++;
    s_set_error (request, MSG_ERR_BAD_REQUEST,
                 "field \"stale_after_ms\": %" PRId64 " is outside the "
                 "allowed range %" PRId64 " to %" PRId64 " ms (registry "
                 "settings client-stale-after-min and "
                 "client-stale-after-max); leave it out to use the "
                 "default stale-after",
                 stale_after_ms, self->client_min_ms, self->client_max_ms);
    return -1;
}

static void
s_registered (void *arg, job_t *job)
{
    registry_t *self = arg;
    job_registration_t *reg = &job->u.registration;
    msg_t original = { .type = MSG_REGISTER };
    request_t request = { .registry = self, .request = &original };
    if (job->rc != 0)
        s_set_failure (&request, "register", reg->id, job->error,
                       job->busy);
    else if (activity_add (self->activity, reg->id, reg->now_ms) != 0
             || sweep_set_own_threshold (self, reg->id, reg->stale_after_ms)
                    != 0) {
        //  The row is in the store, but no sweep can find it until the
        //  registry restarts and loads it again
        log_error ("registered client not kept in memory",
                   "id=%s error=%s", log_quote (reg->id),
                   log_quote ("out of memory"));
        s_set_error (&request, MSG_ERR_INTERNAL,
                     "register of client \"%s\": out of memory", reg->id);
    }
    else {
        self->stats.registrations++;
        s_result (&request)->created = reg->created;
    }
    s_reply_job (&request, job);
}

static void
s_register (request_t *request)
{
    registry_t *self = request->registry;
    msg_register_t *body = &request->request->u.register_;
    if (s_check_own_threshold (request, body->stale_after_ms) != 0)
        return;

    job_t *job = calloc (1, sizeof *job);
    if (!job) {
        s_set_error (request, MSG_ERR_INTERNAL, "register: out of memory");
        return;
    }
    job->kind = JOB_REGISTER;
    job_registration_t *reg = &job->u.registration;
    msg_str_copy (body->id, reg->id, sizeof (reg->id));
    msg_str_copy (body->node, reg->node, sizeof (reg->node));
    if (body->meta.len > 0)
        memcpy (reg->meta, body->meta.ptr, body->meta.len);
    reg->meta_len = body->meta.len;
    reg->stale_after_ms = body->stale_after_ms;
    reg->now_ms = sweep_now (self);
    s_defer (request, job, s_registered);
}

/*  Moves the unknown ids of a touch that have a tombstone into the
    evicted list.  Only ids that are not registered reach the store here,
    so touches of registered clients still never wait on it.  An id whose
    lookup fails stays unknown: the touch itself succeeded.  */
static void
s_split_evicted (request_t *request)
{
    registry_t *self = request->registry;
    uint32_t unknown = 0;
    for (uint32_t index = 0; index < request->ids_count; index++) {
        msg_str_t view = request->ids[index];
        char id[MSG_ID_MAX + 1];
        store_tombstone_t tombstone;
        int rc = store_get_tombstone (self->store,
                                      msg_str_copy (view, id, sizeof (id)),
                                      &tombstone);
        if (rc == 0)
            request->evicted[request->evicted_count++] = view;
        else
            request->ids[unknown++] = view;
        if (rc < 0) {
            self->stats.store_errors++;
            log_error ("tombstone lookup failed", "id=%s error=%s",
                       log_quote (id), log_quote (store_error (self->store)));
        }
    }
    request->ids_count = unknown;
}

static void
s_touch (request_t *request)
{
    registry_t *self = request->registry;
    msg_touch_t *body = &request->request->u.touch;
    int64_t now_ms = sweep_now (self);

    request->ids = malloc (body->count * sizeof (msg_str_t));
    request->evicted = malloc (body->count * sizeof (msg_str_t));
    if (!request->ids || !request->evicted) {
        s_set_error (request, MSG_ERR_INTERNAL, "touch: out of memory");
        return;
    }

    uint32_t touched = 0;
    for (uint32_t index = 0; index < body->count; index++) {
        msg_str_t id = body->ids[index];
        if (activity_touch (self->activity, id.ptr, id.len, now_ms) == 0)
            touched++;
        else
            request->ids[request->ids_count++] = id;
    }
    if (self->tombstones && request->ids_count > 0)
        s_split_evicted (request);
    self->stats.touches += touched;
    self->stats.touches_unknown += request->ids_count;
    self->stats.touches_evicted += request->evicted_count;

    msg_result_t *result = s_result (request);
    result->touched = touched;
    result->unknown = request->ids;
    result->unknown_count = request->ids_count;
    result->evicted = request->evicted;
    result->evicted_count = request->evicted_count;
}

/*  Formats wall-clock milliseconds as UTC ISO-8601.  */
static char *
s_time_format (int64_t ms, char *buffer, size_t size)
{
    time_t seconds = (time_t) (ms / 1000);
    struct tm tm;
    gmtime_r (&seconds, &tm);
    size_t length = strftime (buffer, size, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf (buffer + length, size - length, ".%03dZ", (int) (ms % 1000));
    return buffer;
}

/*  Sets the error for an id that is not registered: evicted when it has
    a tombstone, naming when and why it was removed, else
    unknown_client.  */
static void
s_set_not_registered (request_t *request, const char *id)
{
    registry_t *self = request->registry;
    store_tombstone_t tombstone;
    int rc = self->tombstones
                 ? store_get_tombstone (self->store, id, &tombstone)
                 : STORE_NOT_FOUND;
    if (rc == 0) {
        char removed[40];
        s_set_error (request, MSG_ERR_EVICTED,
                     "client \"%s\" was removed at %s (removed_ms %" PRId64
                     "), reason %s, event seq %" PRIu64 "; register it "
                     "again to revive it",
                     id, s_time_format (tombstone.removed_ms, removed,
                                        sizeof (removed)),
                     tombstone.removed_ms, msg_reason_name (tombstone.reason),
                     tombstone.seq);
        return;
    }
    if (rc < 0) {
        self->stats.store_errors++;
        log_error ("tombstone lookup failed", "id=%s error=%s",
                   log_quote (id), log_quote (store_error (self->store)));
    }
    s_set_error (request, MSG_ERR_UNKNOWN_CLIENT,
                 "client \"%s\" is not registered", id);
}

static void
s_removed (void *arg, job_t *job)
{
    registry_t *self = arg;
    job_removal_t *removal = &job->u.removal;
    msg_t original = { .type = removal->reason == MSG_REASON_OPERATOR
                                   ? MSG_EVICT
                                   : MSG_DEREGISTER };
    request_t request = { .registry = self, .request = &original };
    if (job->rc == STORE_NOT_FOUND)
        s_set_not_registered (&request, removal->id);
    else if (job->rc != 0)
        s_set_failure (&request, msg_reason_name (removal->reason),
                       removal->id, job->error, job->busy);
    else {
        self->stats.events_published += job->published;
        removal_committed (self, &removal->event);
        s_result (&request)->seq = removal->event.seq;
    }
    s_reply_job (&request, job);
}

static void
s_remove (request_t *request, msg_reason_t reason)
{
    job_t *job = calloc (1, sizeof *job);
    if (!job) {
        s_set_error (request, MSG_ERR_INTERNAL, "%s: out of memory",
                     msg_reason_name (reason));
        return;
    }
    job->kind = JOB_REMOVE;
    msg_str_copy (request->request->u.client_ref.id, job->u.removal.id,
                  sizeof (job->u.removal.id));
    job->u.removal.reason = reason;
    job->u.removal.now_ms = sweep_now (request->registry);
    s_defer (request, job, s_removed);
}

static void
s_get (request_t *request)
{
    registry_t *self = request->registry;
    char id[MSG_ID_MAX + 1];
    msg_str_copy (request->request->u.client_ref.id, id, sizeof (id));

    int rc = store_get (self->store, id, &request->client);
    if (rc == STORE_NOT_FOUND) {
        s_set_not_registered (request, id);
        return;
    }
    if (rc != 0) {
        s_set_store_error (request, "get", id);
        return;
    }
    s_client_to_msg (self, &request->client, &s_result (request)->client);
}

/*  Room for one client map's keys and numbers besides its strings.  */
#define LIST_CLIENT_OVERHEAD 96
/*  Room for the result's own keys.  */
#define LIST_RESULT_OVERHEAD 256

static int
s_collect_client (const store_client_t *client, void *arg)
{
    request_t *request = arg;

    //  A full page of clients with long ids and metadata would pass
    //  MSG_SIZE_MAX, so the page also ends where the reply would.  The
    //  one row read past the limit only shows that a next page exists.
    size_t bytes = strlen (client->id) + strlen (client->node)
                   + client->meta_len + LIST_CLIENT_OVERHEAD;
    if (request->list_bytes + bytes > MSG_SIZE_MAX - LIST_RESULT_OVERHEAD)
        request->list_full = true;
    if (!request->list_full)
        request->list_bytes += bytes;
    request->clients[request->clients_count++] = *client;
    return request->list_full ? 1 : 0;
}

static void
s_list (request_t *request)
{
    registry_t *self = request->registry;
    msg_list_t *body = &request->request->u.list;
    char after[MSG_ID_MAX + 1];
    char node[MSG_NODE_MAX + 1];
    msg_str_copy (body->after, after, sizeof (after));
    msg_str_copy (body->node, node, sizeof (node));

    //  One more than the page, to learn whether another page follows
    uint32_t limit = body->limit + 1;
    request->clients = calloc (limit, sizeof (store_client_t));
    if (!request->clients) {
        s_set_error (request, MSG_ERR_INTERNAL, "list: out of memory");
        return;
    }
    if (store_list (self->store, after, body->node.len ? node : NULL, limit,
                    s_collect_client, request) < 0) {
        s_set_store_error (request, "list", after);
        return;
    }

    //  The last row collected is past the page: past the limit, or the
    //  one that would have made the reply too large
    msg_result_t *result = s_result (request);
    uint32_t page = request->list_full ? request->clients_count - 1
                                       : body->limit;
    bool more = request->clients_count > page;
    if (more)
        request->clients_count = page;
    result->clients = calloc (request->clients_count + 1,
                              sizeof (msg_client_t));
    if (!result->clients) {
        s_set_error (request, MSG_ERR_INTERNAL, "list: out of memory");
        return;
    }
    for (uint32_t index = 0; index < request->clients_count; index++)
        s_client_to_msg (self, &request->clients[index],
                         &result->clients[index]);
    result->clients_count = request->clients_count;
    if (more && page > 0)
        result->next = msg_str (request->clients[page - 1].id);
}

static void
s_add_stat (request_t *request, const char *name, uint64_t value)
{
    msg_result_t *result = &request->reply.u.result;
    if (result->stats_count == MSG_STATS_MAX)
        return;
    request->stats[result->stats_count].name = msg_str (name);
    request->stats[result->stats_count].value = value;
    result->stats_count++;
}

static void
s_stats (request_t *request)
{
    registry_t *self = request->registry;
    registry_stats_t *stats = &self->stats;
    msg_result_t *result = s_result (request);
    result->stats = request->stats;

    uint64_t first_seq = 0, last_seq = 0;
    store_event_range (self->store, &first_seq, &last_seq);

    s_add_stat (request, "clients", activity_count (self->activity));
    s_add_stat (request, "pending_activity",
                activity_pending_count (self->activity));
    s_add_stat (request, "first_seq", first_seq);
    s_add_stat (request, "last_seq", last_seq);
    s_add_stat (request, "stale_after_ms", (uint64_t) self->stale_after_ms);
    s_add_stat (request, "uptime_ms",
                (uint64_t) (zclock_mono () - self->serving_since_mono));
    s_add_stat (request, "sweep_running",
                self->sweep.state != SWEEP_IDLE);
    s_add_stat (request, "last_sweep", self->sweep.id);
    s_add_stat (request, "requests", stats->requests);
    s_add_stat (request, "bad_requests", stats->bad_requests);
    s_add_stat (request, "replies_dropped", stats->replies_dropped);
    s_add_stat (request, "registrations", stats->registrations);
    s_add_stat (request, "touches", stats->touches);
    s_add_stat (request, "touches_unknown", stats->touches_unknown);
    s_add_stat (request, "touches_evicted", stats->touches_evicted);
    s_add_stat (request, "deregistrations", stats->deregistrations);
    s_add_stat (request, "operator_evictions", stats->operator_evictions);
    s_add_stat (request, "evicted", stats->evicted);
    s_add_stat (request, "events_published", stats->events_published);
    s_add_stat (request, "events_pruned", stats->events_pruned);
    s_add_stat (request, "tombstones_purged", stats->tombstones_purged);
    s_add_stat (request, "ticks", stats->ticks);
    s_add_stat (request, "ticks_ignored", stats->ticks_ignored);
    s_add_stat (request, "ticks_malformed", stats->ticks_malformed);
    s_add_stat (request, "sweeps", stats->sweeps);
    s_add_stat (request, "sweeps_failed", stats->sweeps_failed);
    s_add_stat (request, "sweeps_in_grace", stats->sweeps_in_grace);
    s_add_stat (request, "batches", stats->batches);
    s_add_stat (request, "batches_failed", stats->batches_failed);
    s_add_stat (request, "flushes", stats->flushes);
    s_add_stat (request, "flushes_failed", stats->flushes_failed);
    s_add_stat (request, "store_errors", stats->store_errors);
    s_add_stat (request, "clock_jumps", stats->clock_jumps);
    s_add_stat (request, "clock_offset_ms",
                (uint64_t) self->clock.offset_ms);
    s_add_stat (request, "clock_hold_ms", (uint64_t) self->clock.hold_ms);
    s_add_stat (request, "brake_engaged", self->brake.engaged);
    s_add_stat (request, "brake_held_back", self->brake.held_back);
    s_add_stat (request, "brake_sweeps", stats->brake_sweeps);
    s_add_stat (request, "brake_releases", stats->brake_releases);
}

/*  Reports what a sweep starting now would evict, listed the way a
    sweep lists it, oldest first.  NOTE: unlike a sweep, it walks and
    sorts on the loop in one go, which delays requests by an estimated
    100 ms at a million clients (not timed).  */
static void
s_sweep_dry_run (request_t *request)
{
    registry_t *self = request->registry;
    sweep_cutoff_t cutoff;
    sweep_cutoff (self, &cutoff);

    sweep_list_t list = { 0 };
    sweep_list_stale (self, &cutoff, &list, true);
    uint32_t listed = list.count < MSG_PAGE_MAX ? (uint32_t) list.count
                                               : MSG_PAGE_MAX;
    request->clients = calloc (listed + 1, sizeof (store_client_t));
    request->ids = calloc (listed + 1, sizeof (msg_str_t));
    if (list.failed || !request->clients || !request->ids) {
        sweep_list_free (&list);
        s_set_error (request, MSG_ERR_INTERNAL, "sweep: out of memory");
        return;
    }

    //  The reply's views point into request->clients, which outlives
    //  the list
    for (uint32_t index = 0; index < listed; index++) {
        store_client_t *client = &request->clients[index];
        snprintf (client->id, sizeof client->id, "%s",
                  list.ids + list.items[index].id_offset);
        request->ids[request->ids_count++] = msg_str (client->id);
    }
    msg_result_t *result = s_result (request);
    result->dry_run = true;
    result->stale = list.count;
    result->ids = request->ids;
    result->ids_count = request->ids_count;
    sweep_list_free (&list);
}

static void
s_sweep (request_t *request)
{
    registry_t *self = request->registry;
    if (request->request->u.sweep.dry_run) {
        s_sweep_dry_run (request);
        return;
    }

    //  A sweep that starts replies once it has counted the stale clients
    uint64_t started = sweep_start (self, &request->envelope,
                                    request->request->req);
    msg_result_t *result = s_result (request);
    result->sweep = started ? started : self->sweep.id;
    result->stale = self->sweep.stale;
}

static int
s_collect_event (const store_event_t *event, void *arg)
{
    request_t *request = arg;
    request->events[request->events_count++] = *event;
    return 0;
}

static void
s_events (request_t *request)
{
    registry_t *self = request->registry;
    msg_events_t *body = &request->request->u.events;
    char node[MSG_NODE_MAX + 1];
    msg_str_copy (body->node, node, sizeof (node));

    request->events = calloc (body->limit, sizeof (store_event_t));
    if (!request->events) {
        s_set_error (request, MSG_ERR_INTERNAL, "events: out of memory");
        return;
    }

    uint64_t first_seq = 0, last_seq = 0;
    if (store_event_range (self->store, &first_seq, &last_seq) != 0
        || store_events_since (self->store, body->since,
                               body->node.len ? node : NULL, body->limit,
                               s_collect_event, request) != 0) {
        s_set_store_error (request, "events", "*");
        return;
    }

    msg_result_t *result = s_result (request);
    result->first_seq = first_seq;
    result->last_seq = last_seq;
    result->events = calloc (request->events_count + 1, sizeof (msg_event_t));
    if (!result->events) {
        s_set_error (request, MSG_ERR_INTERNAL, "events: out of memory");
        return;
    }
    for (uint32_t index = 0; index < request->events_count; index++)
        publish_event_to_msg (&request->events[index],
                              &result->events[index]);
    result->events_count = request->events_count;
}

static int
s_collect_tombstone (const store_tombstone_t *tombstone, void *arg)
{
    request_t *request = arg;
    request->tombstones[request->tombstones_count++] = *tombstone;
    return 0;
}

static void
s_tombstone_to_msg (const store_tombstone_t *row, msg_tombstone_t *tombstone)
{
    tombstone->id = msg_str (row->id);
    tombstone->node = msg_str (row->node);
    tombstone->reason = row->reason;
    tombstone->last_activity_ms = row->last_activity_ms;
    tombstone->removed_ms = row->removed_ms;
    tombstone->seq = row->seq;
}

/*  Fills the reply from request->tombstones.  The one past limit, if
    read, only shows that another page follows.  */
static void
s_tombstones_reply (request_t *request, uint32_t limit)
{
    msg_result_t *result = s_result (request);
    bool more = request->tombstones_count > limit;
    if (more)
        request->tombstones_count = limit;
    result->tombstones = calloc (request->tombstones_count + 1,
                                 sizeof (msg_tombstone_t));
    if (!result->tombstones) {
        s_set_error (request, MSG_ERR_INTERNAL, "tombstones: out of memory");
        return;
    }
    for (uint32_t index = 0; index < request->tombstones_count; index++)
        s_tombstone_to_msg (&request->tombstones[index],
                            &result->tombstones[index]);
    result->tombstones_count = request->tombstones_count;
    if (more)
        result->next = msg_str (request->tombstones[limit - 1].id);
}

static void
s_tombstones (request_t *request)
{
    registry_t *self = request->registry;
    msg_list_t *body = &request->request->u.tombstones;
    if (!self->tombstones) {
        s_set_error (request, MSG_ERR_BAD_REQUEST,
                     "tombstones are off in this registry: it keeps no "
                     "removed clients; start it with tombstones=on");
        return;
    }

    char after[MSG_ID_MAX + 1];
    char node[MSG_NODE_MAX + 1];
    msg_str_copy (body->after, after, sizeof (after));
    msg_str_copy (body->node, node, sizeof (node));
    uint32_t limit = body->limit + 1;
    request->tombstones = calloc (limit, sizeof (store_tombstone_t));
    if (!request->tombstones) {
        s_set_error (request, MSG_ERR_INTERNAL, "tombstones: out of memory");
        return;
    }
    if (store_list_tombstones (self->store, after,
                               body->node.len ? node : NULL, limit,
                               s_collect_tombstone, request) != 0) {
        s_set_store_error (request, "tombstones", after);
        return;
    }
    s_tombstones_reply (request, body->limit);
}

static void
s_dispatch (request_t *request)
{
    switch (request->request->type) {
    case MSG_REGISTER:
        s_register (request);
        break;
    case MSG_TOUCH:
        s_touch (request);
        break;
    case MSG_DEREGISTER:
        s_remove (request, MSG_REASON_DEREGISTERED);
        break;
    case MSG_EVICT:
        s_remove (request, MSG_REASON_OPERATOR);
        break;
    case MSG_GET:
        s_get (request);
        break;
    case MSG_LIST:
        s_list (request);
        break;
    case MSG_STATS:
        s_stats (request);
        break;
    case MSG_SWEEP:
        s_sweep (request);
        break;
    case MSG_EVENTS:
        s_events (request);
        break;
    case MSG_TOMBSTONES:
        s_tombstones (request);
        break;
    case MSG_BRAKE:
        brake_command (request->registry, &request->request->u.brake,
                       &s_result (request)->brake);
        break;
    default:
        s_set_error (request, MSG_ERR_BAD_REQUEST,
                     "message type \"%s\" is not a command; send one of "
                     "register, touch, deregister, evict, get, list, stats, "
                     "sweep, events, tombstones, brake",
                     msg_type_name (request->request->type));
        break;
    }
}

static void
s_request_release (request_t *request)
{
    if (request->reply.type == MSG_RESULT) {
        free (request->reply.u.result.clients);
        free (request->reply.u.result.events);
        free (request->reply.u.result.tombstones);
    }
    free (request->clients);
    free (request->events);
    free (request->ids);
    free (request->evicted);
    free (request->tombstones);
}

void
commands_reply (registry_t *self, zmsg_t *envelope, const msg_t *reply)
{
    void *body = NULL;
    size_t size = 0;
    msg_failure_t failure;
    if (msg_encode (reply, &body, &size, &failure) != 0) {
        //  A reply we cannot encode is a bug; the client still gets one
        log_error ("reply encoding failed", "type=%s error=%s",
                   msg_type_name (reply->type), log_quote (failure.message));
        msg_t internal = { .type = MSG_ERROR, .req = reply->req };
        internal.u.error.code = MSG_ERR_INTERNAL;
        internal.u.error.message = msg_str ("reply encoding failed");
        if (msg_encode (&internal, &body, &size, &failure) != 0) {
            zmsg_destroy (&envelope);
            return;
        }
    }

    zmsg_addmem (envelope, body, size);
    free (body);

    //  ZMQ_ROUTER_MANDATORY makes a send to a peer that left fail with
    //  EHOSTUNREACH instead of vanishing; ZMQ_DONTWAIT keeps a peer
    //  that stopped reading from stalling the loop
    void *handle = zsock_resolve (self->commands);
    size_t frames = zmsg_size (envelope);
    bool sent = true;
    for (size_t index = 0; index < frames && sent; index++) {
        zframe_t *frame = zmsg_pop (envelope);
        int flags = ZMQ_DONTWAIT | (index + 1 < frames ? ZMQ_SNDMORE : 0);
        sent = zmq_send (handle, zframe_data (frame), zframe_size (frame),
                         flags) >= 0;
        zframe_destroy (&frame);
    }
    if (!sent) {
        self->stats.replies_dropped++;
        uint64_t suppressed;
        if (log_limit_allow (&s_reply_dropped_log, PEER_WARNINGS_PER_SECOND,
                             &suppressed))
            log_warn ("reply dropped",
                      "type=%s req=%" PRIu64 " error=%s suppressed=%" PRIu64,
                      msg_type_name (reply->type), reply->req,
                      log_quote (zmq_strerror (zmq_errno ())), suppressed);
    }
    zmsg_destroy (&envelope);
}

static void
s_log_bad_request (uint64_t req, msg_error_code_t code, const char *error)
{
    uint64_t suppressed;
    if (log_limit_allow (&s_bad_request_log, PEER_WARNINGS_PER_SECOND,
                         &suppressed))
        log_warn ("bad request",
                  "req=%" PRIu64 " code=%s error=%s suppressed=%" PRIu64, req,
                  msg_error_code_name (code), log_quote (error), suppressed);
}

/*  Serves one request that has arrived on socket.  */
static void
s_serve (registry_t *self, zsock_t *socket)
{
    zmsg_t *in = zmsg_recv (socket);
    if (!in)
        return;
    self->stats.requests++;

    //  A request is [identity][empty][body].  The reply goes back on a
    //  fresh [identity][empty] envelope, never on the peer's own frames,
    //  so a peer that sends a thousand large frames cannot make the
    //  registry send them all back
    zframe_t *identity = zmsg_pop (in);
    size_t frames = zmsg_size (in);
    zframe_t *body = zmsg_last (in);
    bool framed = frames == 2 && zframe_size (zmsg_first (in)) == 0;
    zmsg_t *envelope = zmsg_new ();
    zmsg_append (envelope, &identity);
    zmsg_addmem (envelope, "", 0);

    msg_t request = { 0 };
    request_t serving = { .registry = self, .request = &request,
                          .envelope = envelope };
    msg_failure_t failure = { 0 };
    char limit_error[MSG_TEXT_MAX];
    if (!framed) {
        self->stats.bad_requests++;
        s_set_error (&serving, MSG_ERR_BAD_REQUEST,
                     "expected 2 frames, an empty one and the body; got "
                     "%zu frame%s",
                     frames, frames == 1 ? "" : "s");
        uint64_t suppressed;
        if (log_limit_allow (&s_bad_request_log, PEER_WARNINGS_PER_SECOND,
                             &suppressed))
            log_warn ("bad request",
                      "frames=%zu code=%s error=%s suppressed=%" PRIu64,
                      frames, msg_error_code_name (MSG_ERR_BAD_REQUEST),
                      log_quote (serving.error_text), suppressed);
    }
    else if (msg_decode (zframe_data (body), zframe_size (body), &request,
                         &failure) != 0) {
        self->stats.bad_requests++;
        s_set_error (&serving, failure.code, "%s", failure.message);
        s_log_bad_request (request.req, failure.code, failure.message);
    }
    else if (!msg_type_is_command (request.type)) {
        self->stats.bad_requests++;
        s_dispatch (&serving);
        s_log_bad_request (request.req, MSG_ERR_BAD_REQUEST,
                           serving.error_text);
    }
    else if (limits_check (&self->limits, &request, limit_error,
                           sizeof (limit_error)) != 0) {
        self->stats.bad_requests++;
        s_set_error (&serving, MSG_ERR_LIMIT_EXCEEDED, "%s", limit_error);
        uint64_t suppressed;
        if (log_limit_allow (&s_over_limit_log, PEER_WARNINGS_PER_SECOND,
                             &suppressed))
            log_warn ("request over a limit",
                      "req=%" PRIu64 " type=%s error=%s suppressed=%" PRIu64,
                      request.req, msg_type_name (request.type),
                      log_quote (limit_error), suppressed);
    }
    else
        s_dispatch (&serving);

    serving.reply.req = request.req;
    if (serving.envelope)
        commands_reply (self, serving.envelope, &serving.reply);

    s_request_release (&serving);
    msg_release (&request);
    zmsg_destroy (&in);
}

int
commands_handle (zloop_t *loop, zsock_t *socket, void *arg)
{
    //  Serving every request that has arrived, up to a bound, before
    //  polling again saves a poll per request under load.  The bound
    //  lets ticks, timers and the store worker's results in between
    registry_t *self = arg;
    s_serve (self, socket);
    for (int served = 1; served < REQUESTS_PER_WAKEUP
                         && (zsock_events (socket) & ZMQ_POLLIN);
         served++)
        s_serve (self, socket);
    return 0;
}
