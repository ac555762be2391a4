/*  sweep.c: ticks, the sweep state machine, activity flushes, and the
    registry's clock.

    A sweep computes its cutoff once, counts the stale clients, and lets
    the eviction brake (brake.c) cap how many it may evict.  Then it
    removes stale clients in batches of at most sweep_batch, one
    transaction each.  It returns to the event loop between batches, so
    touches and commands are served while a large sweep runs.  Before
    the count and before each batch, the pending activity of every
    client that the sweep could evict is written to the store, so the
    store's count and conditional delete see every acknowledged touch.

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

static int
s_sweep_batch (zloop_t *loop, int timer_id, void *arg);

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
sweep_cutoff (registry_t *self, store_cutoff_t *cutoff)
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

int64_t
sweep_flush_cutoff (registry_t *self, const store_cutoff_t *cutoff)
{
    //  The activity table does not record which clients have their own
    //  threshold, so a pending client counts as at risk when even the
    //  smallest threshold any client can have would make it stale
    int64_t at_risk = cutoff->cutoff_ms;
    if (cutoff->own_max_ms >= self->own_floor_ms
        && cutoff->now_ms - self->own_floor_ms > at_risk)
        at_risk = cutoff->now_ms - self->own_floor_ms;
    return at_risk;
}

int
sweep_flush_activity (registry_t *self, int64_t cutoff_ms)
{
    //  A periodic flush (no cutoff) writes one bounded transaction per
    //  turn, because the loop serves nothing while it runs; what is left
    //  stays pending for the next turn.  A flush for a cutoff must write
    //  every client at risk before the sweep goes on, so it takes as
    //  many rounds as that needs.
    bool periodic = cutoff_ms == INT64_MIN;
    size_t max = periodic && self->flush_batch < self->flush_capacity
                     ? self->flush_batch
                     : self->flush_capacity;
    size_t count = activity_collect (self->activity, self->granularity_ms,
                                     cutoff_ms, self->flush_buffer, max);
    if (count == 0)
        return 0;

    self->stats.flushes++;
    if (store_write_activity (self->store, self->flush_buffer, count) != 0) {
        self->stats.flushes_failed++;
        self->stats.store_errors++;
        log_error ("activity flush failed", "clients=%zu error=%s", count,
                   log_quote (store_error (self->store)));
        return -1;
    }
    activity_mark_stored (self->activity, self->flush_buffer, count);

    if (!periodic && count == self->flush_capacity)
        return sweep_flush_activity (self, cutoff_ms);
    return 0;
}

/*  Deletes one batch of events older than the retention.  Returns 0,
    or -1 on failure.  */
static int
s_prune_events (registry_t *self)
{
    int64_t before_ms = sweep_now (self) - self->event_retention_ms;
    uint32_t deleted = 0;
    if (store_prune_events (self->store, before_ms, self->sweep_batch,
                            &deleted) != 0) {
        self->stats.store_errors++;
        log_error ("event pruning failed", "before_ms=%" PRId64 " error=%s",
                   before_ms, log_quote (store_error (self->store)));
        return -1;
    }
    self->stats.events_pruned += deleted;
    return 0;
}

/*  Deletes one batch of tombstones older than the retention, or of any
    age when tombstones are off, so that a registry restarted with them
    off drops what an earlier run kept.  Returns 0, or -1 on failure.  */
static int
s_purge_tombstones (registry_t *self)
{
    int64_t before_ms = self->tombstones
                            ? sweep_now (self) - self->tombstone_retention_ms
                            : INT64_MAX;
    uint32_t deleted = 0;
    if (store_purge_tombstones (self->store, before_ms, self->sweep_batch,
                                &deleted) != 0) {
        self->stats.store_errors++;
        log_error ("tombstone purge failed", "before_ms=%" PRId64
                   " error=%s", before_ms,
                   log_quote (store_error (self->store)));
        return -1;
    }
    self->stats.tombstones_purged += deleted;
    return 0;
}

/*  Backs off after a failed flush, prune or purge.  Each attempt may
    wait busy-timeout for a lock another connection holds, and that wait
    stalls the event loop, so while the store keeps failing the timer
    tries less and less often, up to HOUSEKEEPING_BACKOFF_MAX_MS apart.
    A sweep still tries at every tick.  */
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

    int64_t now_mono = zclock_mono ();
    if (self->sweep.state != SWEEP_IDLE
        || now_mono < self->housekeeping.retry_mono)
        return 0;

    //  Outside a sweep no stored activity is at risk, so only clients
    //  whose activity moved at least the granularity are written
    //  Old events and tombstones go one batch per turn, so a backlog is
    //  worked off without one long transaction
    int rc = sweep_flush_activity (self, INT64_MIN);
    if (rc == 0)
        rc = s_prune_events (self);
    if (rc == 0)
        rc = s_purge_tombstones (self);
    s_housekeeping_result (self, rc, now_mono);
    return 0;
}

static void
s_sweep_finish (registry_t *self, bool failed)
{
    sweep_t *sweep = &self->sweep;
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
    sweep->timer_id = -1;
}

/*  Logs a failed flush before batch (0 before the first, when the sweep
    counts the stale clients) with the sweep id.  sweep_flush_activity
    logged the error already, but without the sweep it belongs to.  */
static void
s_log_flush_failed (registry_t *self, uint32_t batch)
{
    log_error ("sweep activity flush failed",
               "sweep=%" PRIu64 " batch=%u busy=%s error=%s", self->sweep.id,
               batch, store_busy (self->store) ? "true" : "false",
               log_quote (store_error (self->store)));
}

/*  Arms a one-shot timer for the next batch, so that the loop polls its
    sockets in between.  */
static int
s_sweep_schedule (registry_t *self)
{
    self->sweep.timer_id = zloop_timer (self->loop, 1, 1, s_sweep_batch,
                                        self);
    return self->sweep.timer_id < 0 ? -1 : 0;
}

static int
s_sweep_batch (zloop_t *loop, int timer_id, void *arg)
{
    registry_t *self = arg;
    sweep_t *sweep = &self->sweep;
    sweep->timer_id = -1;
    if (sweep->state != SWEEP_RUNNING)
        return 0;

    if (sweep_flush_activity (self,
                              sweep_flush_cutoff (self, &sweep->cutoff))
        != 0) {
        self->stats.batches_failed++;
        s_log_flush_failed (self, sweep->batches + 1);
        s_sweep_finish (self, true);
        return 0;
    }

    //  The brake's cap counts across batches
    uint32_t max = self->sweep_batch;
    if (sweep->evict_max - sweep->evicted < max)
        max = (uint32_t) (sweep->evict_max - sweep->evicted);

    uint32_t count = 0;
    int rc = store_evict_batch (self->store, &sweep->cutoff, max, sweep->id,
                                sweep_now (self), sweep->events, &count);
    if (rc != 0) {
        self->stats.batches_failed++;
        self->stats.store_errors++;
        log_error ("sweep batch failed",
                   "sweep=%" PRIu64 " batch=%u busy=%s error=%s", sweep->id,
                   sweep->batches + 1,
                   store_busy (self->store) ? "true" : "false",
                   log_quote (store_error (self->store)));
        s_sweep_finish (self, true);
        return 0;
    }

    sweep->batches++;
    self->stats.batches++;
    sweep->evicted += count;
    for (uint32_t index = 0; index < count; index++)
        removal_publish (self, &sweep->events[index]);

    //  A short batch means no stale client is left below the cutoff
    bool done = count < max || sweep->evicted >= sweep->evict_max;
    if (done || s_sweep_schedule (self) != 0)
        s_sweep_finish (self, false);
    return 0;
}

/*  Counts the stale clients and asks the brake for the sweep's cap.
    Returns 0, or -1 when the flush or the count failed (logged).  */
static int
s_sweep_plan (registry_t *self)
{
    sweep_t *sweep = &self->sweep;
    if (sweep_flush_activity (self,
                              sweep_flush_cutoff (self, &sweep->cutoff))
        != 0) {
        s_log_flush_failed (self, 0);
        return -1;
    }

    //  The count reads the activity index, not the rows, so it stays
    //  cheap however many clients are stale
    if (store_stale (self->store, &sweep->cutoff, 0, NULL, NULL,
                     &sweep->stale) != 0) {
        self->stats.store_errors++;
        log_error ("stale count failed", "sweep=%" PRIu64 " error=%s",
                   sweep->id, log_quote (store_error (self->store)));
        return -1;
    }
    sweep->evict_max = brake_decide (self, sweep->id, sweep->stale);
    return 0;
}

uint64_t
sweep_start (registry_t *self)
{
    sweep_t *sweep = &self->sweep;
    if (sweep->state == SWEEP_RUNNING)
        return 0;

    int64_t now_mono = zclock_mono ();
    sweep->id = (uint64_t) sweep_now (self);
    sweep->started_mono = now_mono;
    sweep->last_start_mono = now_mono;
    sweep_cutoff (self, &sweep->cutoff);
    sweep->evicted = 0;
    sweep->stale = 0;
    sweep->evict_max = UINT64_MAX;
    sweep->batches = 0;
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

    if (s_sweep_plan (self) != 0) {
        self->stats.sweeps_failed++;
        log_warn ("sweep stopped before its first batch",
                  "sweep=%" PRIu64, sweep->id);
        return sweep->id;
    }

    log_info ("sweep started",
              "sweep=%" PRIu64 " cutoff_ms=%" PRId64 " stale=%" PRIu64,
              sweep->id, sweep->cutoff.cutoff_ms, sweep->stale);
    sweep->state = SWEEP_RUNNING;
    if (s_sweep_schedule (self) != 0) {
        log_error ("sweep timer failed", "sweep=%" PRIu64, sweep->id);
        s_sweep_finish (self, true);
    }
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
    if (too_soon || self->sweep.state == SWEEP_RUNNING) {
        self->stats.ticks_ignored++;
        log_debug ("tick ignored",
                   "scheduler=%s tick=%" PRIu64 " since_last_sweep_ms=%" PRId64
                   " min_gap_ms=%" PRId64 " running=%s",
                   log_quote (scheduler), msg.u.tick.seq, since_ms, gap_ms,
                   self->sweep.state == SWEEP_RUNNING ? "true" : "false");
    }
    else {
        log_debug ("tick received", "scheduler=%s tick=%" PRIu64,
                   log_quote (scheduler), msg.u.tick.seq);
        sweep_start (self);
    }
    msg_release (&msg);
    zmsg_destroy (&in);
    return 0;
}

void
sweep_destroy (registry_t *self)
{
    if (self->sweep.timer_id >= 0 && self->loop)
        zloop_timer_end (self->loop, self->sweep.timer_id);
    self->sweep.timer_id = -1;
    free (self->sweep.events);
    self->sweep.events = NULL;
}
