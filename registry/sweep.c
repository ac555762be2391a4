/*  sweep.c: ticks, the sweep state machine, and activity flushes.

    A sweep computes its cutoff once, then removes stale clients in
    batches of at most sweep_batch, one transaction each, returning to
    the event loop between batches so that touches and commands are
    served while a large sweep runs.  Before each batch the pending
    activity of every client that the batch could evict is written to
    the store, so the store's conditional delete sees every touch that
    was acknowledged.
*/
#include "log.h"
#include "registry.h"

static int
s_sweep_batch (zloop_t *loop, int timer_id, void *arg);

int
sweep_flush_activity (registry_t *self, int64_t cutoff_ms)
{
    size_t count = activity_collect (self->activity, self->granularity_ms,
                                     cutoff_ms, self->flush_buffer,
                                     self->flush_capacity);
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

    //  The buffer holds at most flush_capacity clients, so a backlog
    //  larger than that takes several rounds
    if (count == self->flush_capacity)
        return sweep_flush_activity (self, cutoff_ms);
    return 0;
}

static void
s_prune_events (registry_t *self)
{
    int64_t before_ms = zclock_time () - self->event_retention_ms;
    uint32_t deleted = 0;
    if (store_prune_events (self->store, before_ms, self->sweep_batch,
                            &deleted) != 0) {
        self->stats.store_errors++;
        log_error ("event pruning failed", "before_ms=%" PRId64 " error=%s",
                   before_ms, log_quote (store_error (self->store)));
        return;
    }
    self->stats.events_pruned += deleted;
}

int
sweep_handle_flush_timer (zloop_t *loop, int timer_id, void *arg)
{
    registry_t *self = arg;

    //  Outside a sweep no stored activity is at risk, so only clients
    //  whose activity moved at least the granularity are written
    if (self->sweep.state == SWEEP_IDLE) {
        sweep_flush_activity (self, INT64_MIN);
        s_prune_events (self);
    }
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
                  " batches=%u duration_ms=%" PRId64,
                  sweep->id, sweep->cutoff_ms, sweep->evicted,
                  sweep->batches, duration_ms);
    sweep->state = SWEEP_IDLE;
    sweep->timer_id = -1;
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

    if (sweep_flush_activity (self, sweep->cutoff_ms) != 0) {
        self->stats.batches_failed++;
        s_sweep_finish (self, true);
        return 0;
    }

    uint32_t count = 0;
    int rc = store_evict_batch (self->store, sweep->cutoff_ms,
                                self->sweep_batch, sweep->id, zclock_time (),
                                sweep->events, &count);
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
    if (count < self->sweep_batch || s_sweep_schedule (self) != 0)
        s_sweep_finish (self, false);
    return 0;
}

uint64_t
sweep_start (registry_t *self)
{
    sweep_t *sweep = &self->sweep;
    if (sweep->state == SWEEP_RUNNING)
        return 0;

    int64_t now_mono = zclock_mono ();
    sweep->id = (uint64_t) zclock_time ();
    sweep->started_mono = now_mono;
    sweep->last_start_mono = now_mono;
    sweep->cutoff_ms = zclock_time () - self->stale_after_ms;
    sweep->evicted = 0;
    sweep->batches = 0;
    self->stats.sweeps++;

    //  A registry that was down, or just started, has not seen the
    //  touches of the time it was away.  Every client therefore gets one
    //  full stale-after from the moment the registry began serving before
    //  any client can be evicted.
    int64_t serving_ms = now_mono - self->serving_since_mono;
    if (serving_ms < self->stale_after_ms) {
        self->stats.sweeps_in_grace++;
        log_info ("sweep skipped during start-up grace",
                  "sweep=%" PRIu64 " serving_ms=%" PRId64
                  " stale_after_ms=%" PRId64,
                  sweep->id, serving_ms, self->stale_after_ms);
        return sweep->id;
    }

    log_info ("sweep started", "sweep=%" PRIu64 " cutoff_ms=%" PRId64,
              sweep->id, sweep->cutoff_ms);
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
    bool valid = zmsg_size (in) == 2
                 && msg_decode (zframe_data (body), zframe_size (body), &msg,
                                &failure) == 0
                 && msg.type == MSG_TICK;
    if (!valid) {
        self->stats.ticks_malformed++;
        log_warn ("malformed tick dropped",
                  "frames=%zu topic_bytes=%zu error=%s", zmsg_size (in),
                  topic ? zframe_size (topic) : 0,
                  log_quote (failure.message[0] ? failure.message
                                                : "expected [tick][body]"));
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
