/*  storework.h: the thread that writes the registry's store.

    A SQLite write transaction takes from a fraction of a millisecond to
    tens of milliseconds, and the event loop must reply to a touch in
    well under one.  So every write runs on this thread, on a connection of
    its own (store_open_peer), while the loop keeps the primary
    connection for reads, which WAL mode lets run beside a write.

    The loop submits jobs and gets each one back, completed, on the
    worker's socket.  The worker runs jobs one at a time in the order
    they were submitted, so writes commit in that order and their
    results come back in commit order.  It publishes the event of each
    removal it commits itself, right after the commit, so events go out
    in sequence order too.  Jobs are owned by the loop; the worker only
    fills in their results.
*/
#ifndef LAPSE_STOREWORK_H
#define LAPSE_STOREWORK_H

#include <czmq.h>

#include "store.h"

#define STOREWORK_ERROR_MAX 512

typedef enum {
    JOB_REGISTER,       /* u.registration */
    JOB_REMOVE,         /* u.removal */
    JOB_HOUSEKEEPING,   /* u.housekeeping */
    JOB_SWEEP_BATCH,    /* u.sweep */
    JOB_CALL            /* u.call: other work kept off the loop */
} job_kind_t;

typedef struct job_t job_t;

/*  Called on the loop thread with a completed job.  */
typedef void (job_done_fn) (void *arg, job_t *job);

typedef struct {
    char id[MSG_ID_MAX + 1];
    char node[MSG_NODE_MAX + 1];
    uint8_t meta[MSG_META_MAX];
    size_t meta_len;
    int64_t stale_after_ms;
    int64_t now_ms;
    bool created;               /* result */
} job_registration_t;

typedef struct {
    char id[MSG_ID_MAX + 1];
    msg_reason_t reason;
    int64_t now_ms;
    store_event_t event;        /* result */
} job_removal_t;

/*  Flush pending activity, then prune old events, then purge old
    tombstones, stopping at the first step that fails.  */
typedef struct {
    store_activity_t *updates;  /* ids point into ids */
    char (*ids)[MSG_ID_MAX + 1];
    size_t count;
    size_t capacity;
    int64_t prune_before_ms;
    int64_t purge_before_ms;
    uint32_t max;               /* events or tombstones per turn */
    const char *failed_step;    /* result: NULL, or the step that failed */
    uint32_t pruned;            /* result */
    uint32_t purged;            /* result */
} job_housekeeping_t;

/*  One batch of a sweep: the clients it decided to evict.  */
typedef struct {
    uint64_t sweep;
    int64_t now_ms;
    store_candidate_t *evict;   /* the worker fills in each node */
    uint32_t evict_count;
    store_event_t *events;      /* result, room for evict_count */
    uint32_t removed;           /* result */
} job_sweep_t;

/*  A function the worker runs on arg, whose data the loop leaves alone
    until the job is back.  */
typedef struct {
    void (*fn) (void *arg);
    void *arg;
} job_call_t;

struct job_t {
    job_kind_t kind;
    job_done_fn *done;
    void *arg;
    zmsg_t *reply_to;           /* the envelope of a deferred reply */
    uint64_t req;
    int rc;                     /* result: 0, STORE_NOT_FOUND or -1 */
    uint32_t published;         /* result: events sent on the socket */
    bool busy;                  /* result: another connection held a lock */
    char error[STOREWORK_ERROR_MAX];
    union {
        job_registration_t registration;
        job_removal_t removal;
        job_housekeeping_t housekeeping;
        job_sweep_t sweep;
        job_call_t call;
    } u;
};

typedef struct storework_t storework_t;

/*  Starts the worker thread on store and on the bound PUB socket events,
    which it owns from now on and closes when it stops: the worker
    publishes the event of every removal it commits.  Returns NULL when
    the thread could not start; both are then closed.  */
storework_t *
storework_new (store_t *store, zsock_t *events);

/*  Stops the worker.  Call only when no job is outstanding
    (storework_outstanding is 0), so that no completed job is lost.  */
void
storework_destroy (storework_t **self_p);

/*  Hands job to the worker.  Returns 0, or -1 when it could not be sent
    (the job stays the caller's).  */
int
storework_submit (storework_t *self, job_t *job);

/*  The socket completed jobs arrive on, for a zloop reader.  */
zsock_t *
storework_socket (storework_t *self);

/*  Receives every completed job that has arrived and calls its done
    function.  A zloop reader.  */
int
storework_handle (zloop_t *loop, zsock_t *socket, void *arg);

/*  Waits for one completed job, up to timeout_ms, and calls its done
    function.  Returns 0, or -1 on timeout or interruption.  */
int
storework_wait (storework_t *self, int timeout_ms);

/*  Jobs submitted and not yet completed.  */
size_t
storework_outstanding (storework_t *self);

#endif
