/*  registry.h: the state of the lapse-registry process, shared by its
    modules (commands.c, sweep.c, removal.c, brake.c, main.c).  Not a
    library interface: everything here runs on the one event-loop
    thread, except the store writes that storework.c runs on its own.
*/
#ifndef LAPSE_REGISTRY_H
#define LAPSE_REGISTRY_H

#include <czmq.h>

#include "activity.h"
#include "request_limits.h"
#include "protocol.h"
#include "publish.h"
#include "settings.h"
#include "store.h"
#include "storework.h"
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

/*  Which clients a sweep treats as stale.  A client on the default
    threshold is stale when its last activity is before cutoff_ms.  A
    client with its own threshold T is stale when its last activity plus
    T is before now_ms and T is at most own_max_ms.  That upper bound
    lets a registry that just started give each such client T from the
    start before evicting it.  INT64_MIN as cutoff_ms and 0 as
    own_max_ms turn either kind off.  */
typedef struct {
    int64_t cutoff_ms;
    int64_t now_ms;
    int64_t own_max_ms;
} sweep_cutoff_t;

/*  The sweep's states:

        IDLE --tick or sweep request--> LISTING --> SORTING --> EVICTING
         ^                                                        |
         +------------------ last batch, or a failed one ---------+

    A sweep lists the stale clients from memory, in steps between which
    the loop serves requests; the store worker sorts the list; then the
    worker removes them one batch per job, with two jobs out so that it
    always has the next batch queued.  */
#define SWEEP_JOBS 2

typedef enum {
    SWEEP_IDLE,
    SWEEP_LISTING,
    SWEEP_SORTING,
    SWEEP_EVICTING
} sweep_state_t;

/*  A client the sweep found stale.  */
typedef struct {
    int64_t due_ms;             /* when it turned stale */
    size_t id_offset;           /* in the sweep's ids */
} sweep_item_t;

/*  The stale clients, listed from memory.  */
typedef struct {
    sweep_item_t *items;
    size_t count;
    size_t capacity;
    char *ids;                  /* NUL-terminated, one after another */
    size_t ids_used;
    size_t ids_capacity;
    bool failed;                /* out of memory while listing */
} sweep_list_t;

typedef struct {
    sweep_state_t state;
    uint64_t id;                /* sweep id: its start, wall-clock ms */
    sweep_cutoff_t cutoff;      /* which clients are stale */
    int64_t started_mono;       /* monotonic ms, for duration and gaps */
    int64_t last_start_mono;    /* start of the latest sweep, or 0 */
    uint64_t evicted;
    uint64_t stale;             /* stale clients at the start */
    uint64_t evict_max;         /* the brake's cap, UINT64_MAX without */
    uint64_t decided;           /* clients handed to batches so far */
    uint32_t batches;
    bool ending;                /* no new batch; ends when jobs_out is 0 */
    bool failed;
    uint32_t jobs_out;          /* the sweep's jobs out at the worker */
    sweep_list_t list;
    size_t walk_cursor;         /* the next slot the listing walks */
    uint64_t walk_layout;       /* the table's layout when listing began */
    int timer_id;               /* the next listing step, or -1 */
    zmsg_t *reply_to;           /* a sweep request waiting for the count */
    uint64_t reply_req;
    size_t next_item;           /* the first item no batch has taken */
    job_t sort_job;
    job_t jobs[SWEEP_JOBS];
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

/*  The flush timer's store work: flushes, pruning, purging, one job
    per turn.  */
typedef struct {
    int64_t retry_mono;         /* no store work before this */
    int64_t backoff_ms;         /* the current pause after failures */
    uint64_t failures;          /* consecutive failed turns */
    bool running;               /* job is out */
    job_t job;
} housekeeping_t;

typedef struct {
    settings_t *settings;
    store_t *store;             /* reads, on the loop thread */
    storework_t *writer;        /* every write, on its own thread */
    zhashx_t *own_thresholds;   /* id to own threshold, for clients with
                                   one; activity does not keep them */
    bool stopping;              /* no new store jobs */
    activity_t *activity;
    zloop_t *loop;
    zsock_t *commands;          /* ROUTER */
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
    size_t flush_batch;         /* maximum clients per periodic flush */
    registry_stats_t stats;
} registry_t;

/*  commands.c: reads one request from the command socket, runs it and
    sends the reply.  A zloop reader.  */
int
commands_handle (zloop_t *loop, zsock_t *socket, void *arg);

/*  commands.c: sends reply along envelope, which the call consumes,
    without blocking.  For a reply that waited on other work.  */
void
commands_reply (registry_t *self, zmsg_t *envelope, const msg_t *reply);

/*  sweep.c: reads one tick and starts a sweep unless one ran within the
    minimum gap.  A zloop reader.  */
int
sweep_handle_tick (zloop_t *loop, zsock_t *socket, void *arg);

/*  Starts a sweep now unless one is running.  Returns the sweep id, or
    0 when one was already running (its id is in self->sweep.id).  When
    *reply_to is not NULL and the sweep starts listing, the sweep takes
    the envelope and replies with its id and stale count once it has
    counted (*reply_to becomes NULL); otherwise the caller replies.  */
uint64_t
sweep_start (registry_t *self, zmsg_t **reply_to, uint64_t req);

/*  Lists into list every client stale by cutoff, by its activity in
    memory, and sorts the list by when each turned stale, oldest first,
    when sorted is set.  Sets list->failed when out of memory.  */
void
sweep_list_stale (registry_t *self, const sweep_cutoff_t *cutoff,
                  sweep_list_t *list, bool sorted);

/*  Frees a list's buffers.  */
void
sweep_list_free (sweep_list_t *list);

/*  Records id's own threshold, 0 for the default, where the sweep finds
    it.  Returns 0, or -1 when out of memory.  */
int
sweep_set_own_threshold (registry_t *self, const char *id, int64_t own_ms);

/*  Whether a client with own threshold own_ms (0 for the default) and
    last activity activity_ms is stale by cutoff.  The same test as the
    store's stale selects.  */
bool
sweep_is_stale (const sweep_cutoff_t *cutoff, int64_t own_ms,
                int64_t activity_ms);

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
sweep_cutoff (registry_t *self, sweep_cutoff_t *cutoff);

/*  Frees the sweep's buffers.  */
void
sweep_destroy (registry_t *self);

/*  Writes every pending activity through the primary connection, for a
    clean stop after the worker has stopped.  Returns 0, or -1 when the
    write failed (logged).  */
int
sweep_flush_all (registry_t *self);

/*  A zloop timer: checks the store file and hands the worker a
    housekeeping job: flush activity, prune old events, purge old
    tombstones.  */
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
    committed and the worker published its event: drop the client from
    memory, count it, log it.  */
void
removal_committed (registry_t *self, const store_event_t *event);

#endif
