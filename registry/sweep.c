/*  sweep.c: ticks, the sweep state machine, activity flushes, and the
    registry's clock.

    A sweep computes its cutoff once and lists the stale clients from
    memory, where every client's newest activity is, acknowledged
    touches included; the store's copy may lag by the flush granularity
    and decides nothing.  The eviction brake (brake.c) caps how many the
    sweep may evict.  Then the store worker removes them in batches of
    at most sweep_batch, one transaction each, while the loop goes on
    serving.  Each client is checked once more as its batch is formed,
    and taken out of memory then, so that a touch from that moment is
    refused instead of acknowledged and lost.  The store deletes a row
    only when its activity is no newer than what the sweep saw, so a
    client registered again in between keeps its row.

    Every time the registry stamps or sweeps with comes from sweep_now
    or sweep_cutoff, which watch the wall clock for jumps (wallclock.h).
*/
#include "log.h"
#include "registry.h"

/*  Warning lines per second for malformed ticks, which any peer that
    reaches the tick socket can send at will; ticks_malformed counts
    every one.  A file static because the registry runs one event loop
    on one thread.  */
#define MALFORMED_TICK_WARNINGS_PER_SECOND 10
static log_limit_t s_malformed_tick_log;

/*  The maximum pause of flushes, pruning and purging after failures.  */
#define HOUSEKEEPING_BACKOFF_MAX_MS 30000

/*  Slots of the activity table one step of a sweep's listing walks:
    about a millisecond's work, so that listing a million clients keeps
    the loop from requests for no more than that at a time.  */
#define LIST_SLOTS_PER_STEP 65536


int64_t
sweep_now (registry_t *self)
{
    wallclock_t *clock = &self->clock;
    wallclock_jump_t jump;
    wallclock_change_t change = wallclock_observe (
        clock, zclock_time (), zclock_mono (), self->stale_after_ms, &jump);

    if (change == WALLCLOCK_JUMPED) {
        self->stats.clock_jumps++;
        log_warn ("wall clock jumped",
                  "wall_delta_ms=%" PRId64 " mono_delta_ms=%" PRId64
                  " jump_ms=%" PRId64 " offset_ms=%" PRId64
                  " hold_ms=%" PRId64 " jump_limit_ms=%" PRId64,
                  jump.wall_delta_ms, jump.mono_delta_ms, jump.jump_ms,
                  clock->offset_ms, clock->hold_ms, clock->jump_limit_ms);
    }
    else if (change == WALLCLOCK_HOLD_ENDED)
        log_info ("clock jump hold ended",
                  "stale_after_ms=%" PRId64 " offset_ms=%" PRId64,
                  self->stale_after_ms, clock->offset_ms);
    return wallclock_now (clock);
}

void
sweep_cutoff (registry_t *self, sweep_cutoff_t *cutoff)
{
    sweep_now (self);
    int64_t checked = wallclock_checked (&self->clock);
    int64_t serving_ms = zclock_mono () - self->serving_since_mono;
    cutoff->cutoff_ms = checked - self->stale_after_ms;
    cutoff->now_ms = checked;
    cutoff->own_max_ms = serving_ms;

    //  A registry that was down, or just started, has not seen the
    //  touches of the time it was away.  So each client gets its full
    //  threshold from the moment the registry began serving.  own_max_ms
    //  keeps clients whose own threshold is longer than that, and
    //  clients on the default wait for stale-after
    if (serving_ms < self->stale_after_ms)
        cutoff->cutoff_ms = INT64_MIN;
}

bool
sweep_is_stale (const sweep_cutoff_t *cutoff, int64_t own_ms,
                int64_t activity_ms)
{
    if (own_ms == 0)
        return activity_ms < cutoff->cutoff_ms;
    return own_ms <= cutoff->own_max_ms
           && activity_ms + own_ms < cutoff->now_ms;
}

/*  ------------------------------------------------------------------
    Housekeeping: flush, prune, purge.  */

/*  Backs off after a failed housekeeping turn.  While the store keeps
    failing, the timer tries less and less often, up to
    HOUSEKEEPING_BACKOFF_MAX_MS apart, so that a broken store is not
    hammered and its errors do not flood the log.  A sweep still tries
    at every tick.  */
static void
s_housekeeping_result (registry_t *self, int rc, int64_t now_mono)
{
    housekeeping_t *housekeeping = &self->housekeeping;
    if (rc == 0) {
        if (housekeeping->failures > 0)
            log_info ("store housekeeping resumed", "failures=%" PRIu64,
                      housekeeping->failures);
        housekeeping->failures = 0;
        housekeeping->backoff_ms = 0;
        housekeeping->retry_mono = 0;
        return;
    }

    int64_t backoff_ms = housekeeping->backoff_ms * 2;
    if (backoff_ms < self->flush_interval_ms)
        backoff_ms = self->flush_interval_ms;
    if (backoff_ms > HOUSEKEEPING_BACKOFF_MAX_MS)
        backoff_ms = HOUSEKEEPING_BACKOFF_MAX_MS;
    housekeeping->failures++;
    housekeeping->backoff_ms = backoff_ms;
    housekeeping->retry_mono = now_mono + backoff_ms;
    log_warn ("store housekeeping paused",
              "failures=%" PRIu64 " retry_in_ms=%" PRId64,
              housekeeping->failures, backoff_ms);
}

/*  Fills work with up to max pending clients whose activity moved at
    least the granularity.  The ids are copied, because the worker reads
    them while the loop may remove the clients.  */
static void
s_collect (registry_t *self, job_housekeeping_t *work, size_t max)
{
    work->count = activity_collect (self->activity, self->granularity_ms,
                                    INT64_MIN, work->updates, max);
    for (size_t i = 0; i < work->count; i++) {
        snprintf (work->ids[i], sizeof work->ids[i], "%s",
                  work->updates[i].id);
        work->updates[i].id = work->ids[i];
    }
}

static void
s_housekeeping_done (void *arg, job_t *job)
{
    registry_t *self = arg;
    job_housekeeping_t *work = &job->u.housekeeping;
    self->housekeeping.running = false;

    if (job->rc == 0 || strcmp (work->failed_step, "activity flush") != 0)
        activity_mark_stored (self->activity, work->updates, work->count);
    self->stats.events_pruned += work->pruned;
    self->stats.tombstones_purged += work->purged;
    if (job->rc != 0) {
        self->stats.store_errors++;
        if (strcmp (work->failed_step, "activity flush") == 0) {
            self->stats.flushes_failed++;
            log_error ("activity flush failed", "clients=%zu error=%s",
                       work->count, log_quote (job->error));
        }
        else if (strcmp (work->failed_step, "event pruning") == 0)
            log_error ("event pruning failed", "before_ms=%" PRId64
                       " error=%s", work->prune_before_ms,
                       log_quote (job->error));
        else
            log_error ("tombstone purge failed", "before_ms=%" PRId64
                       " error=%s", work->purge_before_ms,
                       log_quote (job->error));
    }
    s_housekeeping_result (self, job->rc, zclock_mono ());
}

/*  Fills the housekeeping job for one turn and hands it to the worker.
    Outside a sweep no stored activity is at risk (the sweep weighs
    memory itself), so only clients whose activity moved at least the
    granularity are written, at most flush_batch of them.  Old events
    and tombstones go one batch per turn, so a backlog is worked off
    without one long transaction.  */
static void
s_housekeeping_start (registry_t *self)
{
    job_t *job = &self->housekeeping.job;
    job_housekeeping_t *work = &job->u.housekeeping;
    size_t max = self->flush_batch < work->capacity ? self->flush_batch
                                                     : work->capacity;
    s_collect (self, work, max);
    if (work->count > 0)
        self->stats.flushes++;

    int64_t now = sweep_now (self);
    work->prune_before_ms = now - self->event_retention_ms;
    //  Tombstones of any age go when tombstones are off, so that a
    //  registry restarted with them off drops what an earlier run kept
    work->purge_before_ms = self->tombstones
                                ? now - self->tombstone_retention_ms
                                : INT64_MAX;
    work->max = self->sweep_batch;
    work->pruned = 0;
    work->purged = 0;
    work->failed_step = NULL;
    job->kind = JOB_HOUSEKEEPING;
    job->done = s_housekeeping_done;
    job->arg = self;
    if (storework_submit (self->writer, job) == 0)
        self->housekeeping.running = true;
}

int
sweep_handle_flush_timer (zloop_t *loop, int timer_id, void *arg)
{
    registry_t *self = arg;

    //  Observing the clocks every flush interval dates a jump to within
    //  one interval even while no command or tick arrives
    sweep_now (self);

    //  A registry writing into a deleted or replaced file would
    //  acknowledge registrations and removals that the next start
    //  cannot see, so it stops instead, for a supervisor to restart it
    if (store_check_file (self->store) != 0) {
        log_error ("store file lost", "error=%s action=%s",
                   log_quote (store_error (self->store)),
                   log_quote ("stopping"));
        self->exit_code = 1;
        return -1;
    }

    if (self->sweep.state != SWEEP_IDLE || self->housekeeping.running
        || self->stopping || zclock_mono () < self->housekeeping.retry_mono)
        return 0;
    s_housekeeping_start (self);
    return 0;
}

int
sweep_flush_all (registry_t *self)
{
    job_housekeeping_t *work = &self->housekeeping.job.u.housekeeping;
    size_t count;
    while ((count = activity_collect (self->activity, 0, INT64_MAX,
                                      work->updates, work->capacity))
           > 0) {
        if (store_write_activity (self->store, work->updates, count) != 0) {
            log_error ("activity flush failed", "clients=%zu error=%s",
                       count, log_quote (store_error (self->store)));
            return -1;
        }
        activity_mark_stored (self->activity, work->updates, count);
    }
    return 0;
}

/*  ------------------------------------------------------------------
    The list of stale clients.  */

int
sweep_set_own_threshold (registry_t *self, const char *id, int64_t own_ms)
{
    if (own_ms == 0) {
        zhashx_delete (self->own_thresholds, id);
        return 0;
    }
    //  The table keeps the threshold itself in the value pointer
    void *value = (void *) (intptr_t) own_ms;
    if (zhashx_insert (self->own_thresholds, id, value) == 0)
        return 0;
    zhashx_update (self->own_thresholds, id, value);
    return 0;
}

static int64_t
s_own_threshold (registry_t *self, const char *id)
{
    if (zhashx_size (self->own_thresholds) == 0)
        return 0;
    return (int64_t) (intptr_t) zhashx_lookup (self->own_thresholds, id);
}

static void
s_list_add (sweep_list_t *list, const char *id, int64_t due_ms)
{
    if (list->failed)
        return;

    size_t id_size = strlen (id) + 1;
    if (list->count == list->capacity) {
        size_t capacity = list->capacity ? list->capacity * 2 : 1024;
        sweep_item_t *items = realloc (list->items,
                                       capacity * sizeof *items);
        if (!items) {
            list->failed = true;
            return;
        }
        list->items = items;
        list->capacity = capacity;
    }
    if (list->ids_used + id_size > list->ids_capacity) {
        size_t capacity = list->ids_capacity ? list->ids_capacity * 2
                                             : 64 * 1024;
        while (capacity < list->ids_used + id_size)
            capacity *= 2;
        char *ids = realloc (list->ids, capacity);
        if (!ids) {
            list->failed = true;
            return;
        }
        list->ids = ids;
        list->ids_capacity = capacity;
    }

    memcpy (list->ids + list->ids_used, id, id_size);
    list->items[list->count++] = (sweep_item_t) {
        .due_ms = due_ms, .id_offset = list->ids_used
    };
    list->ids_used += id_size;
}

/*  What the activity table's walk needs to list default clients.  */
typedef struct {
    registry_t *registry;
    sweep_list_t *list;
    int64_t stale_after_ms;
} s_lister_t;

static void
s_list_default (const char *id, int64_t activity_ms, void *arg)
{
    s_lister_t *lister = arg;

    //  A client with its own threshold is listed by its own test
    if (s_own_threshold (lister->registry, id) != 0)
        return;
    s_list_add (lister->list, id, activity_ms + lister->stale_after_ms);
}

/*  Orders a list by id.  Consecutive removals then fall on the same
    pages of the store's id index, which makes a batch's transaction
    several times smaller than one of ids in hash order.  */
static int
s_id_compare (const void *left, const void *right, void *arg)
{
    const char *ids = arg;
    const sweep_item_t *a = left;
    const sweep_item_t *b = right;
    return strcmp (ids + a->id_offset, ids + b->id_offset);
}

/*  Orders a list by when each client turned stale, oldest first.  */
static int
s_due_compare (const void *left, const void *right, void *arg)
{
    (void) arg;
    const sweep_item_t *a = left;
    const sweep_item_t *b = right;
    return (a->due_ms > b->due_ms) - (a->due_ms < b->due_ms);
}

static void
s_list_sort (sweep_list_t *list, bool by_due)
{
    if (list->count < 2)
        return;
    qsort_r (list->items, list->count, sizeof *list->items,
             by_due ? s_due_compare : s_id_compare, list->ids);
}

/*  Adds the clients with their own threshold that are stale by cutoff.
    They are few, and found through their own table.  */
static void
s_list_own (registry_t *self, const sweep_cutoff_t *cutoff,
            sweep_list_t *list)
{
    for (void *value = zhashx_first (self->own_thresholds); value;
         value = zhashx_next (self->own_thresholds)) {
        const char *id = zhashx_cursor (self->own_thresholds);
        int64_t own_ms = (int64_t) (intptr_t) value;
        int64_t activity_ms = activity_get (self->activity, id);
        if (activity_ms >= 0 && sweep_is_stale (cutoff, own_ms, activity_ms))
            s_list_add (list, id, activity_ms + own_ms);
    }
}

static void
s_list_reset (sweep_list_t *list)
{
    list->count = 0;
    list->ids_used = 0;
    list->failed = false;
}

void
sweep_list_stale (registry_t *self, const sweep_cutoff_t *cutoff,
                  sweep_list_t *list, bool sorted)
{
    //  Memory has every client's newest activity, acknowledged touches
    //  included, so a client stale here is stale.  The store's activity
    //  may lag by the flush granularity, so it is not consulted
    s_list_reset (list);
    s_lister_t lister = { self, list, self->stale_after_ms };
    if (cutoff->cutoff_ms != INT64_MIN)
        activity_walk (self->activity, 0, SIZE_MAX, cutoff->cutoff_ms,
                       s_list_default, &lister);
    s_list_own (self, cutoff, list);
    if (sorted && !list->failed)
        s_list_sort (list, true);
}

void
sweep_list_free (sweep_list_t *list)
{
    free (list->items);
    free (list->ids);
    memset (list, 0, sizeof *list);
}

/*  ------------------------------------------------------------------
    The sweep.  */

static void
s_sweep_finish (registry_t *self, bool failed)
{
    sweep_t *sweep = &self->sweep;
    if (sweep->state == SWEEP_IDLE)
        return;

    int64_t duration_ms = zclock_mono () - sweep->started_mono;

    if (failed) {
        self->stats.sweeps_failed++;
        log_warn ("sweep stopped after a failed batch",
                  "sweep=%" PRIu64 " evicted=%" PRIu64
                  " batches=%u duration_ms=%" PRId64,
                  sweep->id, sweep->evicted, sweep->batches, duration_ms);
    }
    else
        log_info ("sweep finished",
                  "sweep=%" PRIu64 " cutoff_ms=%" PRId64 " evicted=%" PRIu64
                  " held_back=%" PRIu64 " batches=%u duration_ms=%" PRId64,
                  sweep->id, sweep->cutoff.cutoff_ms, sweep->evicted,
                  self->brake.held_back, sweep->batches, duration_ms);
    sweep->state = SWEEP_IDLE;

    //  A large list is not kept between sweeps, ten minutes apart
    sweep_list_free (&sweep->list);
}

/*  Ends the sweep once none of its jobs is out.  Until then the sweep
    keeps its state, so that no new sweep reuses a job the worker has.  */
static void
s_sweep_end (registry_t *self, bool failed)
{
    sweep_t *sweep = &self->sweep;
    sweep->ending = true;
    sweep->failed = sweep->failed || failed;
    if (sweep->jobs_out == 0)
        s_sweep_finish (self, sweep->failed);
}

static void
s_log_batch_failed (registry_t *self, const job_t *job)
{
    self->stats.batches_failed++;
    self->stats.store_errors++;
    log_error ("sweep batch failed",
               "sweep=%" PRIu64 " batch=%u busy=%s error=%s", self->sweep.id,
               self->sweep.batches + 1, job->busy ? "true" : "false",
               log_quote (job->error));
}

/*  Puts back into memory the clients a failed batch was to evict.  The
    batch rolled back, but a deregistration or an operator eviction
    queued before it may have removed some of them, so only those the
    store still has go back, with their own thresholds.  Their stored
    activity is not known here, so each is marked as not yet written,
    and the next flush writes it.  */
static void
s_restore_evict (registry_t *self, const job_sweep_t *work)
{
    for (uint32_t i = 0; i < work->evict_count; i++) {
        const store_candidate_t *client = &work->evict[i];
        store_client_t row;
        int rc = store_get (self->store, client->id, &row);
        if (rc == STORE_NOT_FOUND)
            continue;

        //  When the read fails too, keeping a client that may be gone is
        //  safer than losing one that is not: a later sweep removes it
        int64_t own_ms = rc == 0 ? row.stale_after_ms : client->stale_after_ms;
        if (activity_add (self->activity, client->id, 0) != 0
            || sweep_set_own_threshold (self, client->id, own_ms) != 0)
            log_error ("client not put back in memory", "id=%s error=%s",
                       log_quote (client->id), log_quote ("out of memory"));
        activity_touch (self->activity, client->id, strlen (client->id),
                        client->last_activity_ms);
    }
}

static void
s_applied (void *arg, job_t *job);

/*  Fills job with the next batch from the list and hands it to the
    worker.  Each client is checked again against memory, which may
    have changed since the list was made: one touched since, or removed,
    is left out.  One that goes is taken out of memory now, so a touch
    from here on gets unknown_client instead of an acknowledgement that
    the removal would make void.  Returns false when the list held no
    more clients to evict (or the brake's cap was reached).  */
static bool
s_next_batch (registry_t *self, job_t *job)
{
    sweep_t *sweep = &self->sweep;
    job_sweep_t *work = &job->u.sweep;
    sweep_list_t *list = &sweep->list;
    work->evict_count = 0;
    while (work->evict_count < self->sweep_batch
           && sweep->next_item < list->count
           && sweep->decided < sweep->evict_max) {
        const sweep_item_t *item = &list->items[sweep->next_item++];
        const char *id = list->ids + item->id_offset;
        int64_t activity_ms = activity_get (self->activity, id);
        int64_t own_ms = s_own_threshold (self, id);
        if (activity_ms < 0
            || !sweep_is_stale (&sweep->cutoff, own_ms, activity_ms))
            continue;

        store_candidate_t *client = &work->evict[work->evict_count++];
        memcpy (client->id, id, strlen (id) + 1);
        client->node[0] = '\0';
        client->last_activity_ms = activity_ms;
        client->stale_after_ms = own_ms;
        activity_remove (self->activity, id);
        sweep->decided++;
    }
    if (work->evict_count == 0)
        return false;

    work->sweep = sweep->id;
    work->now_ms = sweep_now (self);
    work->removed = 0;
    job->kind = JOB_SWEEP_BATCH;
    job->done = s_applied;
    job->arg = self;
    job->rc = 0;
    job->error[0] = '\0';
    if (storework_submit (self->writer, job) != 0) {
        snprintf (job->error, sizeof job->error,
                  "the store worker took no job");
        s_restore_evict (self, work);
        s_log_batch_failed (self, job);
        s_sweep_end (self, true);
        return false;
    }
    sweep->jobs_out++;
    return true;
}

static void
s_applied (void *arg, job_t *job)
{
    registry_t *self = arg;
    sweep_t *sweep = &self->sweep;
    job_sweep_t *work = &job->u.sweep;
    sweep->jobs_out--;
    if (job->rc != 0) {
        s_restore_evict (self, work);
        s_log_batch_failed (self, job);
        s_sweep_end (self, true);
        return;
    }

    //  What committed is published even when the sweep is ending
    sweep->batches++;
    self->stats.batches++;
    sweep->evicted += work->removed;
    self->stats.events_published += job->published;
    for (uint32_t index = 0; index < work->removed; index++)
        removal_committed (self, &work->events[index]);

    if (sweep->ending || self->stopping || !s_next_batch (self, job))
        s_sweep_end (self, false);
}

/*  Sends the reply to the sweep request that started this sweep, if
    any: the sweep and its stale count, or the error given.  */
static void
s_reply_started (registry_t *self, msg_error_code_t code, const char *error)
{
    sweep_t *sweep = &self->sweep;
    if (!sweep->reply_to)
        return;

    msg_t reply = { .type = MSG_RESULT, .req = sweep->reply_req };
    if (error) {
        reply.type = MSG_ERROR;
        reply.u.error.code = code;
        reply.u.error.message = msg_str (error);
    }
    else {
        reply.u.result.cmd = MSG_SWEEP;
        reply.u.result.sweep = sweep->id;
        reply.u.result.stale = sweep->stale;
    }
    commands_reply (self, sweep->reply_to, &reply);
    sweep->reply_to = NULL;
}

static void
s_sorted (void *arg, job_t *job)
{
    registry_t *self = arg;
    sweep_t *sweep = &self->sweep;
    sweep->jobs_out--;
    if (self->stopping) {
        s_sweep_end (self, false);
        return;
    }

    sweep->state = SWEEP_EVICTING;
    for (size_t i = 0; i < SWEEP_JOBS; i++)
        if (!s_next_batch (self, &sweep->jobs[i]))
            break;
    if (sweep->jobs_out == 0)
        s_sweep_end (self, sweep->failed);
}

static void
s_sort_list (void *arg)
{
    sweep_t *sweep = arg;
    s_list_sort (&sweep->list, sweep->evict_max < sweep->stale);
}

/*  The list is complete: counts it, lets the brake decide, and hands
    the sort to the worker.  A capped sweep must evict the clients that
    went silent first, so its list goes by time; any other by id.  */
static void
s_listed (registry_t *self)
{
    sweep_t *sweep = &self->sweep;
    s_list_own (self, &sweep->cutoff, &sweep->list);
    if (sweep->list.failed) {
        self->stats.sweeps_failed++;
        log_error ("sweep stopped before its first batch",
                   "sweep=%" PRIu64 " error=%s", sweep->id,
                   log_quote ("out of memory listing the stale clients"));
        s_reply_started (self, MSG_ERR_INTERNAL,
                         "sweep: out of memory listing the stale clients; "
                         "see the registry log");
        s_sweep_end (self, false);
        return;
    }

    sweep->stale = sweep->list.count;
    sweep->evict_max = brake_decide (self, sweep->id, sweep->stale);
    s_reply_started (self, MSG_ERR_INTERNAL, NULL);
    log_info ("sweep started",
              "sweep=%" PRIu64 " cutoff_ms=%" PRId64 " stale=%" PRIu64,
              sweep->id, sweep->cutoff.cutoff_ms, sweep->stale);
    if (sweep->stale == 0 || self->stopping) {
        s_sweep_end (self, false);
        return;
    }

    sweep->state = SWEEP_SORTING;
    job_t *job = &sweep->sort_job;
    job->kind = JOB_CALL;
    job->done = s_sorted;
    job->arg = self;
    job->u.call.fn = s_sort_list;
    job->u.call.arg = sweep;
    sweep->jobs_out++;
    if (storework_submit (self->writer, job) != 0) {
        //  Unsorted, the batches are slower but just as correct
        s_sort_list (sweep);
        s_sorted (self, job);
    }
}

static int
s_list_timer (zloop_t *loop, int timer_id, void *arg);

/*  Walks the next part of the activity table.  The walk goes in steps
    so that the loop serves requests in between.  A client removed or a
    table grown meanwhile may have moved clients between slots, so then
    the list is made again in one go.  */
static void
s_list_step (registry_t *self)
{
    sweep_t *sweep = &self->sweep;
    sweep->timer_id = -1;
    s_lister_t lister = { self, &sweep->list, self->stale_after_ms };
    if (sweep->cutoff.cutoff_ms != INT64_MIN)
        sweep->walk_cursor = activity_walk (
            self->activity, sweep->walk_cursor, LIST_SLOTS_PER_STEP,
            sweep->cutoff.cutoff_ms, s_list_default, &lister);
    else
        sweep->walk_cursor = 0;

    if (sweep->walk_cursor != 0 && !self->stopping) {
        sweep->timer_id = zloop_timer (self->loop, 1, 1, s_list_timer, self);
        if (sweep->timer_id >= 0)
            return;
    }
    if (sweep->walk_cursor != 0
        || activity_layout (self->activity) != sweep->walk_layout) {
        s_list_reset (&sweep->list);
        if (sweep->cutoff.cutoff_ms != INT64_MIN)
            activity_walk (self->activity, 0, SIZE_MAX,
                           sweep->cutoff.cutoff_ms, s_list_default,
                           &lister);
    }
    s_listed (self);
}

static int
s_list_timer (zloop_t *loop, int timer_id, void *arg)
{
    s_list_step (arg);
    return 0;
}

uint64_t
sweep_start (registry_t *self, zmsg_t **reply_to, uint64_t req)
{
    sweep_t *sweep = &self->sweep;
    if (sweep->state != SWEEP_IDLE || self->stopping)
        return 0;

    int64_t now_mono = zclock_mono ();
    sweep->id = (uint64_t) sweep_now (self);
    sweep->started_mono = now_mono;
    sweep->last_start_mono = now_mono;
    sweep_cutoff (self, &sweep->cutoff);
    sweep->evicted = 0;
    sweep->stale = 0;
    sweep->evict_max = UINT64_MAX;
    sweep->decided = 0;
    sweep->batches = 0;
    sweep->ending = false;
    sweep->failed = false;
    sweep->next_item = 0;
    self->stats.sweeps++;

    //  Until the smallest threshold any client can have has passed
    //  since serving began, sweep_cutoff keeps every client (the
    //  start-up grace), so the sweep is skipped
    int64_t serving_ms = now_mono - self->serving_since_mono;
    int64_t grace_ms = self->stale_after_ms < self->own_floor_ms
                           ? self->stale_after_ms
                           : self->own_floor_ms;
    if (serving_ms < grace_ms) {
        self->stats.sweeps_in_grace++;
        log_info ("sweep skipped during start-up grace",
                  "sweep=%" PRIu64 " serving_ms=%" PRId64
                  " stale_after_ms=%" PRId64 " own_floor_ms=%" PRId64,
                  sweep->id, serving_ms, self->stale_after_ms,
                  self->own_floor_ms);
        return sweep->id;
    }

    sweep->state = SWEEP_LISTING;
    if (reply_to && *reply_to) {
        sweep->reply_to = *reply_to;
        sweep->reply_req = req;
        *reply_to = NULL;
    }
    s_list_reset (&sweep->list);
    sweep->walk_cursor = 0;
    sweep->walk_layout = activity_layout (self->activity);
    s_list_step (self);
    return sweep->id;
}

int
sweep_handle_tick (zloop_t *loop, zsock_t *socket, void *arg)
{
    registry_t *self = arg;
    zmsg_t *in = zmsg_recv (socket);
    if (!in)
        return 0;

    zframe_t *topic = zmsg_first (in);
    zframe_t *body = zmsg_next (in);
    msg_t msg = { 0 };
    msg_failure_t failure = { 0 };
    //  SUB matches topics by prefix, so "tickle" would pass the
    //  subscription; only the exact topic is a tick
    bool valid = zmsg_size (in) == 2 && zframe_streq (topic, MSG_TOPIC_TICK)
                 && msg_decode (zframe_data (body), zframe_size (body), &msg,
                                &failure) == 0
                 && msg.type == MSG_TICK;
    if (!valid) {
        self->stats.ticks_malformed++;
        uint64_t suppressed;
        if (log_limit_allow (&s_malformed_tick_log,
                             MALFORMED_TICK_WARNINGS_PER_SECOND, &suppressed))
            log_warn ("malformed tick dropped",
                      "frames=%zu topic_bytes=%zu error=%s suppressed=%" PRIu64,
                      zmsg_size (in), topic ? zframe_size (topic) : 0,
                      log_quote (failure.message[0] ? failure.message
                                                    : "expected [tick][body]"),
                      suppressed);
        msg_release (&msg);
        zmsg_destroy (&in);
        return 0;
    }
    self->stats.ticks++;

    //  Redundant schedulers each send a tick per interval, in any phase.
    //  Ignoring ticks within half an interval of the last sweep start
    //  gives one sweep per interval however many schedulers run.
    int64_t gap_ms = msg.u.tick.interval_ms / 2;
    if (gap_ms < self->tick_min_gap_ms)
        gap_ms = self->tick_min_gap_ms;
    int64_t since_ms = zclock_mono () - self->sweep.last_start_mono;
    bool too_soon = self->sweep.last_start_mono != 0 && since_ms < gap_ms;

    char scheduler[MSG_SCHEDULER_MAX + 1];
    msg_str_copy (msg.u.tick.scheduler, scheduler, sizeof (scheduler));
    if (too_soon || self->sweep.state != SWEEP_IDLE) {
        self->stats.ticks_ignored++;
        log_debug ("tick ignored",
                   "scheduler=%s tick=%" PRIu64 " since_last_sweep_ms=%" PRId64
                   " min_gap_ms=%" PRId64 " running=%s",
                   log_quote (scheduler), msg.u.tick.seq, since_ms, gap_ms,
                   self->sweep.state != SWEEP_IDLE ? "true" : "false");
    }
    else {
        log_debug ("tick received", "scheduler=%s tick=%" PRIu64,
                   log_quote (scheduler), msg.u.tick.seq);
        sweep_start (self, NULL, 0);
    }
    msg_release (&msg);
    zmsg_destroy (&in);
    return 0;
}

void
sweep_destroy (registry_t *self)
{
    sweep_t *sweep = &self->sweep;
    if (sweep->timer_id >= 0 && self->loop)
        zloop_timer_end (self->loop, sweep->timer_id);
    sweep->timer_id = -1;
    s_reply_started (self, MSG_ERR_BUSY,
                     "sweep: the registry stopped before the sweep counted "
                     "its stale clients; retry");
    sweep_list_free (&sweep->list);
    for (size_t i = 0; i < SWEEP_JOBS; i++) {
        job_sweep_t *work = &sweep->jobs[i].u.sweep;
        free (work->evict);
        free (work->events);
        work->evict = NULL;
        work->events = NULL;
    }

    job_housekeeping_t *housekeeping = &self->housekeeping.job.u.housekeeping;
    free (housekeeping->updates);
    free (housekeeping->ids);
    housekeeping->updates = NULL;
    housekeeping->ids = NULL;
}
