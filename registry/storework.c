/*  storework.c: the store worker thread, a czmq actor.

    Jobs travel as pointers over the actor's pipe, in both directions.
    Registrations that are already queued behind one another are written
    in one transaction (group commit): under a burst of registrations
    the worker pays one commit for many of them.  If that transaction
    fails for a reason other than a busy store, each registration is
    tried again alone, so that one failure is reported only to its own
    request.
*/
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "log.h"
#include "publish.h"
#include "storework.h"

/*  Registrations written in one transaction at most.  */
#define GROUP_COMMIT_MAX 256

/*  The worker's nice value above the loop's.  On a machine where every
    core is busy, the kernel then runs the event loop first whenever
    both are ready, so a long transaction delays the worker's next job
    rather than the loop's replies.  A build with
    -DWORKER_NICE_INCREMENT=0 in its C flags leaves the worker at the
    loop's priority, for comparing the two.  */
#ifndef WORKER_NICE_INCREMENT
#define WORKER_NICE_INCREMENT 5
#endif

struct storework_t {
    zactor_t *actor;
    size_t outstanding;
};

/*  What the worker thread owns.  */
typedef struct {
    store_t *store;
    zsock_t *events;
} s_worker_t;

/*  Publishes events[0 .. count - 1] and counts them into job.  */
static void
s_publish (s_worker_t *worker, job_t *job, const store_event_t *events,
           uint32_t count)
{
    for (uint32_t i = 0; i < count; i++)
        if (publish_event (worker->events, &events[i]) == 0)
            job->published++;
}

static void
s_record (store_t *store, job_t *job, int rc)
{
    job->rc = rc;
    job->busy = rc == -1 && store_busy (store);
    if (rc != 0)
        snprintf (job->error, sizeof job->error, "%s", store_error (store));
}

static int
s_register_one (store_t *store, job_registration_t *reg)
{
    return store_register (store, reg->id, reg->node, reg->meta,
                           reg->meta_len, reg->stale_after_ms, reg->now_ms,
                           &reg->created);
}

static void
s_run_registrations (store_t *store, job_t **jobs, size_t count)
{
    store_registration_t regs[GROUP_COMMIT_MAX];
    for (size_t i = 0; i < count; i++) {
        job_registration_t *reg = &jobs[i]->u.registration;
        regs[i] = (store_registration_t) {
            reg->id, reg->node, reg->meta, reg->meta_len,
            reg->stale_after_ms, reg->now_ms, false
        };
    }
    if (count > 1) {
        int rc = store_register_many (store, regs, count);
        for (size_t i = 0; rc == 0 && i < count; i++)
            jobs[i]->u.registration.created = regs[i].created;

        //  A lock held elsewhere would make each single retry wait the
        //  busy timeout again, so then every registration fails as busy
        if (rc == 0 || store_busy (store)) {
            for (size_t i = 0; i < count; i++)
                s_record (store, jobs[i], rc);
            return;
        }
    }
    for (size_t i = 0; i < count; i++)
        s_record (store, jobs[i],
                  s_register_one (store, &jobs[i]->u.registration));
}

/*  Runs the steps of a housekeeping turn until one fails.  */
static int
s_run_housekeeping (store_t *store, job_housekeeping_t *work)
{
    work->failed_step = "activity flush";
    if (store_write_activity (store, work->updates, work->count) != 0)
        return -1;

    work->failed_step = "event pruning";
    if (store_prune_events (store, work->prune_before_ms, work->max,
                            &work->pruned) != 0)
        return -1;

    work->failed_step = "tombstone purge";
    if (store_purge_tombstones (store, work->purge_before_ms, work->max,
                                &work->purged) != 0)
        return -1;

    work->failed_step = NULL;
    return 0;
}

static void
s_run (s_worker_t *worker, job_t *job)
{
    store_t *store = worker->store;
    job_sweep_t *sweep = &job->u.sweep;
    job->published = 0;
    int rc = -1;
    switch (job->kind) {
    case JOB_REGISTER:
        rc = s_register_one (store, &job->u.registration);
        break;
    case JOB_REMOVE:
        rc = store_remove (store, job->u.removal.id, job->u.removal.reason,
                           job->u.removal.now_ms, &job->u.removal.event);
        if (rc == 0)
            s_publish (worker, job, &job->u.removal.event, 1);
        break;
    case JOB_HOUSEKEEPING:
        rc = s_run_housekeeping (store, &job->u.housekeeping);
        break;
    case JOB_CALL:
        job->u.call.fn (job->u.call.arg);
        rc = 0;
        break;
    case JOB_SWEEP_BATCH:
        rc = store_apply_sweep (store, sweep->evict, sweep->evict_count,
                                sweep->sweep, sweep->now_ms, sweep->events,
                                &sweep->removed);
        if (rc == 0)
            s_publish (worker, job, sweep->events, sweep->removed);
        break;
    }
    s_record (store, job, rc);
}

/*  Receives the next job: waits for one when wait is set, else returns
    NULL at once when none has arrived.  Any message that is not a job
    ($TERM, or a receive interrupted) returns NULL and sets *stop.  */
static job_t *
s_receive (zsock_t *pipe, bool wait, bool *stop)
{
    if (!wait && !(zsock_events (pipe) & ZMQ_POLLIN))
        return NULL;

    zmsg_t *msg = zmsg_recv (pipe);
    job_t *job = NULL;
    zframe_t *frame = msg ? zmsg_first (msg) : NULL;
    if (frame && zmsg_size (msg) == 1 && zframe_size (frame) == sizeof job)
        memcpy (&job, zframe_data (frame), sizeof job);
    else
        *stop = true;
    zmsg_destroy (&msg);
    return job;
}

static void
s_complete (zsock_t *pipe, job_t *job)
{
    zframe_t *frame = zframe_new (&job, sizeof job);
    zframe_send (&frame, pipe, 0);
}

static void
s_actor (zsock_t *pipe, void *args)
{
    s_worker_t *worker = args;
    store_t *store = worker->store;

    //  On Linux a nice value is per thread, so this leaves the loop's
    pid_t tid = (pid_t) syscall (SYS_gettid);
    errno = 0;
    int nice = getpriority (PRIO_PROCESS, (id_t) tid);
    if (errno != 0
        || setpriority (PRIO_PROCESS, (id_t) tid,
                        nice + WORKER_NICE_INCREMENT) != 0)
        log_warn ("store worker priority unchanged", "error=%s",
                  log_quote (strerror (errno)));
    zsock_signal (pipe, 0);

    //  $TERM is the only message that is not a job.  A job that ends a
    //  group of registrations is held for the next turn
    job_t *next = NULL;
    bool stop = false;
    while (!stop || next) {
        job_t *job = next ? next : s_receive (pipe, true, &stop);
        next = NULL;
        if (!job)
            continue;

        if (job->kind != JOB_REGISTER) {
            s_run (worker, job);
            s_complete (pipe, job);
            continue;
        }

        job_t *group[GROUP_COMMIT_MAX] = { job };
        size_t count = 1;
        while (count < GROUP_COMMIT_MAX
               && (next = s_receive (pipe, false, &stop))
               && next->kind == JOB_REGISTER) {
            group[count++] = next;
            next = NULL;
        }
        s_run_registrations (store, group, count);
        for (size_t i = 0; i < count; i++)
            s_complete (pipe, group[i]);
    }
    store_destroy (&worker->store);
    zsock_destroy (&worker->events);
    free (worker);
}

storework_t *
storework_new (store_t *store, zsock_t *events)
{
    storework_t *self = calloc (1, sizeof *self);
    s_worker_t *worker = calloc (1, sizeof *worker);
    if (self && worker) {
        //  A pipe with no high-water mark (0 means none), so that a
        //  submit does not wait for room.  commands.c bounds the writes
        //  it queues (STORE_JOBS_MAX) instead.
        size_t pipe_hwm = zsys_pipehwm ();
        zsys_set_pipehwm (0);
        *worker = (s_worker_t) { store, events };
        self->actor = zactor_new (s_actor, worker);
        zsys_set_pipehwm (pipe_hwm);
    }
    if (!self || !worker || !self->actor) {
        free (self);
        free (worker);
        store_destroy (&store);
        zsock_destroy (&events);
        return NULL;
    }
    return self;
}

void
storework_destroy (storework_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    storework_t *self = *self_p;
    zactor_destroy (&self->actor);
    free (self);
    *self_p = NULL;
}

int
storework_submit (storework_t *self, job_t *job)
{
    zframe_t *frame = zframe_new (&job, sizeof job);
    if (zframe_send (&frame, zactor_sock (self->actor), 0) != 0) {
        zframe_destroy (&frame);
        return -1;
    }
    self->outstanding++;
    return 0;
}

zsock_t *
storework_socket (storework_t *self)
{
    return zactor_sock (self->actor);
}

static int
s_dispatch (storework_t *self, job_t *job)
{
    if (!job)
        return -1;
    self->outstanding--;
    job->done (job->arg, job);
    return 0;
}

int
storework_handle (zloop_t *loop, zsock_t *socket, void *arg)
{
    storework_t *self = arg;
    job_t *job;
    bool stop = false;
    while ((job = s_receive (socket, false, &stop)))
        s_dispatch (self, job);
    return 0;
}

int
storework_wait (storework_t *self, int timeout_ms)
{
    zsock_t *socket = zactor_sock (self->actor);
    zsock_set_rcvtimeo (socket, timeout_ms);
    bool stop = false;
    job_t *job = s_receive (socket, true, &stop);
    zsock_set_rcvtimeo (socket, -1);
    return s_dispatch (self, job);
}

size_t
storework_outstanding (storework_t *self)
{
    return self->outstanding;
}
