/*  registry.h: the state of the lapse-registry process, shared by its
    modules (commands.c, sweep.c, removal.c, main.c).  Not a library
    interface: everything here runs on the one event-loop thread.
*/
#ifndef LAPSE_REGISTRY_H
#define LAPSE_REGISTRY_H

#include <czmq.h>

#include "activity.h"
#include "request_limits.h"
#include "protocol.h"
#include "settings.h"
#include "store.h"
#include "wallclock.h"

/*  Counters reported by the stats command.  Every one only grows except
    where marked.  */
typedef struct {
    uint64_t requests;
    uint64_t bad_requests;
    uint64_t replies_dropped;
    uint64_t registrations;
    uint64_t touches;
    uint64_t touches_unknown;
    uint64_t touches_evicted;   /* unknown ids that have a tombstone */
    uint64_t deregistrations;
    uint64_t operator_evictions;
    uint64_t evicted;
    uint64_t events_published;
    uint64_t ticks;
    uint64_t ticks_ignored;
    uint64_t ticks_malformed;
    uint64_t sweeps;
    uint64_t sweeps_failed;
    uint64_t sweeps_in_grace;
    uint64_t batches;
    uint64_t batches_failed;
    uint64_t flushes;
    uint64_t flushes_failed;
    uint64_t store_errors;
    uint64_t events_pruned;
    uint64_t tombstones_purged;
    uint64_t clock_jumps;
    uint64_t brake_sweeps;      /* sweeps the brake limited */
    uint64_t brake_releases;    /* release commands */
} registry_stats_t;

/*  The sweep's states:

        IDLE --tick or sweep request--> RUNNING --last batch--> IDLE
                                           |
                                           +--failed batch--> IDLE

    A RUNNING sweep removes one batch per turn of the event loop.  */
typedef enum {
    SWEEP_IDLE,
    SWEEP_RUNNING
} sweep_state_t;

typedef struct {
    sweep_state_t state;
    uint64_t id;                /* sweep id: its start, wall-clock ms */
    store_cutoff_t cutoff;      /* which clients are stale */
    int64_t started_mono;       /* monotonic ms, for duration and gaps */
    int64_t last_start_mono;    /* start of the latest sweep, or 0 */
    uint64_t evicted;
    uint64_t stale;             /* stale clients counted at the start */
    uint64_t evict_max;         /* the brake's cap, UINT64_MAX without */
    uint32_t batches;
    int timer_id;               /* zloop timer for the next batch, or -1 */
    store_event_t *events;      /* one batch worth of removed rows */
} sweep_t;

/*  The eviction brake: a sweep that would evict more than share percent
    of all clients evicts only that many, unless the registry has fewer
    than min_clients clients or an operator released the brake.  Each
    sweep decides anew, so the brake lets go by itself once the stale
    share is back under the limit.  */
typedef struct {
    bool enabled;               /* settings, reloadable */
    uint32_t share;
    uint64_t min_clients;
    bool engaged;               /* the latest sweep's decision */
    uint64_t clients;           /* counted by the latest sweep */
    uint64_t stale;
    uint64_t limit;
    uint64_t held_back;
    bool release_next;          /* the next sweep runs without the brake */
    int64_t release_until_mono; /* sweeps before this run without it */
} brake_t;

/*  The flush timer's store work: flushes, pruning, purging.  */
typedef struct {
    int64_t retry_mono;         /* no store work before this */
    int64_t backoff_ms;         /* the current pause after failures */
    uint64_t failures;          /* consecutive failed turns */
} housekeeping_t;

typedef struct {
    settings_t *settings;
    store_t *store;
    activity_t *activity;
    zloop_t *loop;
    zsock_t *commands;          /* ROUTER */
    zsock_t *events;            /* PUB */
    zsock_t *ticks;             /* SUB */

    int64_t stale_after_ms;     /* reloadable */
    int64_t client_min_ms;      /* bounds of a client's own threshold */
    int64_t client_max_ms;
    int64_t own_floor_ms;       /* no client's own threshold is below this:
                                   client_min_ms or a smaller one stored
                                   under earlier settings */
    bool tombstones;
    int64_t tombstone_retention_ms;
    int64_t tick_min_gap_ms;
    int64_t flush_interval_ms;
    int64_t granularity_ms;
    int64_t event_retention_ms;
    uint32_t sweep_batch;
    limits_t limits;

    int64_t serving_since_mono; /* when the command socket opened */
    wallclock_t clock;          /* stamps and cutoffs, see wallclock.h */
    brake_t brake;
    sweep_t sweep;
    housekeeping_t housekeeping;
    int exit_code;              /* the process's, set when a fault stops it */
    store_activity_t *flush_buffer;
    size_t flush_capacity;
    size_t flush_batch;         /* maximum clients per periodic flush */
    registry_stats_t stats;
} registry_t;

/*  commands.c: reads one request from the command socket, runs it and
    sends the reply.  A zloop reader.  */
int
commands_handle (zloop_t *loop, zsock_t *socket, void *arg);

/*  sweep.c: reads one tick and starts a sweep unless one ran within the
    minimum gap.  A zloop reader.  */
int
sweep_handle_tick (zloop_t *loop, zsock_t *socket, void *arg);

/*  Starts a sweep now unless one is running.  Returns the sweep id, or
    0 when one was already running (its id is in self->sweep.id).  */
uint64_t
sweep_start (registry_t *self);

/*  Checks the clocks for a jump (logging and counting one) and returns
    the wall-clock time to stamp activity, registrations and removals
    with.  Call it for every stamp, so that no stamp predates a jump's
    detection.  */
int64_t
sweep_now (registry_t *self);

/*  Checks the clocks like sweep_now and fills *cutoff for a sweep or a
    dry run that starts now.  Staleness is judged against the checked
    time of wallclock.h, which lags sweep_now by a forward jump for
    stale-after after it: the default cutoff is the checked time minus
    stale-after, and a client's own threshold is enforced only up to
    the time the registry has served.  Until stale-after has passed since
    serving began, no client on the default is stale (INT64_MIN).  */
void
sweep_cutoff (registry_t *self, store_cutoff_t *cutoff);

/*  Returns the activity cutoff for the flush that must precede a sweep
    batch or dry run by cutoff: every pending client whose stored
    activity is before it could be stale.  Clients with their own
    threshold are assumed to have the smallest one allowed
    (own_floor_ms), so no acknowledged touch is missed.  */
int64_t
sweep_flush_cutoff (registry_t *self, const store_cutoff_t *cutoff);

/*  Frees the sweep's batch buffer.  */
void
sweep_destroy (registry_t *self);

/*  Writes pending activity to the store: every pending client whose
    stored activity is before cutoff_ms, and the others whose activity
    moved at least the granularity.  Returns 0, or -1 when the write
    failed (logged and counted; the activity stays pending).  */
int
sweep_flush_activity (registry_t *self, int64_t cutoff_ms);

/*  A zloop timer: flushes activity and prunes old events.  */
int
sweep_handle_flush_timer (zloop_t *loop, int timer_id, void *arg);

/*  brake.c: decides how many of the stale clients the sweep that is
    starting may evict, records the decision in self->brake and logs it.
    Returns the cap, UINT64_MAX when the brake does not hold the sweep
    back.  Consumes a release for the next sweep.  */
uint64_t
brake_decide (registry_t *self, uint64_t sweep, uint64_t stale);

/*  Applies a brake command: a release for the next sweep (for_ms 0) or
    for for_ms of monotonic time, or nothing for status.  Fills *state
    with the brake's state afterwards.  */
void
brake_command (registry_t *self, const msg_brake_t *command,
               msg_brake_state_t *state);

/*  removal.c: the one path every removal takes after its transaction
    committed: drop the client from memory, count it, publish its event.  */
void
removal_publish (registry_t *self, const store_event_t *event);

/*  Converts a store event row into a message view of the same row.  */
void
removal_event_to_msg (const store_event_t *row, msg_event_t *event);

#endif
