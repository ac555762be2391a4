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

/*  Counters reported by the stats command.  Every one only grows except
    where marked.  */
typedef struct {
    uint64_t requests;
    uint64_t bad_requests;
    uint64_t replies_dropped;
    uint64_t registrations;
    uint64_t touches;
    uint64_t touches_unknown;
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
    int64_t cutoff_ms;          /* evict activity before this */
    int64_t started_mono;       /* monotonic ms, for duration and gaps */
    int64_t last_start_mono;    /* start of the latest sweep, or 0 */
    uint64_t evicted;
    uint32_t batches;
    int timer_id;               /* zloop timer for the next batch, or -1 */
    store_event_t *events;      /* one batch worth of removed rows */
} sweep_t;

typedef struct {
    settings_t *settings;
    store_t *store;
    activity_t *activity;
    zloop_t *loop;
    zsock_t *commands;          /* ROUTER */
    zsock_t *events;            /* PUB */
    zsock_t *ticks;             /* SUB */

    int64_t stale_after_ms;     /* reloadable */
    int64_t tick_min_gap_ms;
    int64_t flush_interval_ms;
    int64_t granularity_ms;
    int64_t event_retention_ms;
    uint32_t sweep_batch;
    limits_t limits;

    int64_t serving_since_mono; /* when the command socket opened */
    sweep_t sweep;
    store_activity_t *flush_buffer;
    size_t flush_capacity;
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

/*  removal.c: the one path every removal takes after its transaction
    committed: drop the client from memory, count it, publish its event.  */
void
removal_publish (registry_t *self, const store_event_t *event);

/*  Converts a store event row into a message view of the same row.  */
void
removal_event_to_msg (const store_event_t *row, msg_event_t *event);

#endif
