/*  lapse.h: the client library for API nodes and tools.

    A lapse_t is one connection to the registry's command socket on
    behalf of one API node.  Requests are synchronous with a timeout;
    touches are queued and sent in batches.  A lapse_sub_t follows the
    registry's eviction events, replaying from the registry whatever the
    live stream missed, so its caller sees every event once, in seq
    order.

    Functions returning int return 0 on success and -1 on failure, with
    the reason in lapse_error and lapse_error_code.  An error reply from
    the registry sets the code it carried (for example
    MSG_ERR_UNKNOWN_CLIENT).  A timeout or transport failure sets
    MSG_ERR_INTERNAL with a message naming which.  Neither object is
    thread-safe, so use one per thread.

    The library uses czmq, whose first socket installs handlers that
    turn SIGINT and SIGTERM into zsys_interrupted (czmq 4.2); a program
    that handles those signals itself calls zsys_handler_set (NULL)
    before its first lapse_new or lapse_sub_new.
*/
#ifndef LAPSE_CLIENT_H
#define LAPSE_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "protocol.h"

typedef struct lapse_t lapse_t;
typedef struct lapse_sub_t lapse_sub_t;

#define LAPSE_DEFAULT_TIMEOUT_MS 3000
#define LAPSE_DEFAULT_TOUCH_BATCH 100

/*  Connects to the registry's command endpoint for node (which may be
    NULL for tools that register nothing).  Returns NULL when the
    endpoint or node name is invalid.  Connecting is asynchronous in
    ZeroMQ: an absent registry shows as a timeout on the first request.  */
lapse_t *
lapse_new (const char *commands_endpoint, const char *node);

/*  Flushes queued touches (best effort), closes, sets *self_p to NULL.
    Accepts NULL.  */
void
lapse_destroy (lapse_t **self_p);

/*  Sets how long one request waits for its reply, in milliseconds.  */
void
lapse_set_timeout (lapse_t *self, int timeout_ms);

/*  Sets how many ids are queued before lapse_touch sends them, from 1
    to MSG_TOUCH_IDS_MAX.  */
void
lapse_set_touch_batch (lapse_t *self, uint32_t batch);

const char *
lapse_error (lapse_t *self);
msg_error_code_t
lapse_error_code (lapse_t *self);

/*  Returns true when the last call failed because no reply came within
    the timeout (see lapse_set_timeout), so that a caller can tell an
    absent or stuck registry from other MSG_ERR_INTERNAL failures.  The
    next call that sends or checks a request clears it.  */
bool
lapse_timed_out (lapse_t *self);

/*  Registers id for this node with optional metadata; registering an id
    again refreshes its activity, node and metadata.  Sets *created when
    created is not NULL.  */
int
lapse_register (lapse_t *self, const char *id, const void *meta,
                size_t meta_len, bool *created);

/*  Like lapse_register, and gives the client its own stale-after
    threshold in milliseconds, or 0 to follow the registry's default.
    The registry rejects a threshold outside its client-stale-after-min
    and client-stale-after-max settings with MSG_ERR_BAD_REQUEST.
    Registering again without one puts the client back on the default.  */
int
lapse_register_stale_after (lapse_t *self, const char *id, const void *meta,
                            size_t meta_len, int64_t stale_after_ms,
                            bool *created);

/*  Queues a touch of id and sends the batch when it is full.  A batch
    whose send timed out stays queued and is sent again first.  While it
    cannot be sent, lapse_touch fails without queuing id.  */
int
lapse_touch (lapse_t *self, const char *id);

/*  Sends the queued touches and waits for the reply.  Sets *unknown
    (when not NULL) to how many of them the registry did not record:
    unknown and evicted ids together, as before registries reported
    evicted ids apart.  lapse_flush_report counts the two apart, and a
    miss handler gets each id.  */
int
lapse_flush (lapse_t *self, uint32_t *unknown);

/*  Like lapse_flush, and sets *unknown and *evicted (each when not NULL)
    to how many ids the registry did not know at all and how many it
    keeps as tombstones of removed clients.  */
int
lapse_flush_report (lapse_t *self, uint32_t *unknown, uint32_t *evicted);

/*  Why the registry did not record a touched id.  */
typedef enum {
    LAPSE_MISS_UNKNOWN,         /* not registered */
    LAPSE_MISS_EVICTED          /* removed, and the registry keeps its
                                   tombstone (registry setting
                                   tombstones=on) */
} lapse_miss_t;

/*  Called once per touched id that the registry did not record.  id is
    valid only during the call.  */
typedef void (lapse_miss_fn) (const char *id, lapse_miss_t miss, void *arg);

/*  Sets fn (NULL for none) to be called for each id that a flush of
    touches did not record: lapse_flush, lapse_flush_report, and the
    flush that lapse_touch makes when the batch is full, whose counts
    are otherwise lost.  A node usually registers such an id again.  fn
    runs after the flush finished, so it may call lapse_register and
    lapse_request on this connection, but not lapse_touch or lapse_flush.
    Returns 0, or -1 when out of memory.  */
int
lapse_set_miss_handler (lapse_t *self, lapse_miss_fn *fn, void *arg);

/*  Removes id; the registry writes a "deregistered" event.  */
int
lapse_deregister (lapse_t *self, const char *id);

/*  Sends any command and waits for its reply.  request->req is set by
    the library.  On success *reply contains a MSG_RESULT whose strings
    point into a buffer the library keeps until the next request on this
    connection or lapse_destroy.  The caller calls msg_release (reply).
    An error reply fails with its code and message.  */
int
lapse_request (lapse_t *self, msg_t *request, msg_t *reply);

/*  Follows removal events from events_endpoint, replaying missed ones
    through commands_endpoint.  node NULL follows every node; otherwise
    only that node's.  Delivery starts after seq since (0 for all
    retained).  Returns NULL on an invalid endpoint or node.  */
lapse_sub_t *
lapse_sub_new (const char *commands_endpoint, const char *events_endpoint,
               const char *node, uint64_t since);

void
lapse_sub_destroy (lapse_sub_t **self_p);

/*  Sets how long the subscription may go without any event or replay
    before it replays, in milliseconds (default 2000).  That replay
    finds events lost at the tail of the live stream, which no later
    event reveals.  */
void
lapse_sub_set_replay_interval (lapse_sub_t *self, int interval_ms);

/*  Sets whether a subscription from seq 0 reports the events that the
    registry no longer retains (seqs 1 to its oldest retained seq minus
    1) as a gap, as a subscription from a later seq always does.  Off by
    default, so that seq 0 means "from the oldest event retained".  Call
    before the first lapse_sub_next.  */
void
lapse_sub_set_gap_from_start (lapse_sub_t *self, bool report);

/*  Waits up to timeout_ms for the next event in seq order and copies it
    into *event, whose strings point into storage owned by the
    subscription until the next call.  Returns 1 with an event, 0 on
    timeout, -1 on a failure, or 2 when the registry no longer retains
    events the caller has not seen.  After a 2, lapse_sub_gap gives the
    lost range, and the next call goes on after it.  A failure is a replay
    that timed out or was rejected, or a signal (zsys_interrupted);
    lapse_sub_error says which, and the subscription stays usable and
    retries the replay on later calls.  The one failure that lasts is a
    registry whose event sequence went backwards (see
    lapse_sub_backwards): then every call returns -1 at once.  */
int
lapse_sub_next (lapse_sub_t *self, msg_event_t *event, int timeout_ms);

/*  After lapse_sub_next returned 2: sets *first and *last to the range
    of seqs that were lost because the registry no longer retains them.
    Returns true when a gap was reported.  */
bool
lapse_sub_gap (lapse_sub_t *self, uint64_t *first, uint64_t *last);

/*  Returns true once a replay showed that the registry's newest seq is
    below the seq this subscription had reached (its since, or the last
    event delivered or known): the registry's store was deleted,
    replaced or restored from an older copy, and it numbers new events
    with seqs already delivered for other events.  Sets
    *registry_last_seq and *reached_seq (each when not NULL) to the two
    seqs.  The subscription then delivers nothing more, since its
    events could not be told apart from those delivered before; follow
    the registry again with a new subscription.  A registry that has
    already numbered past the seq reached when the next replay runs
    (every replay interval, or at once when it restarted while a replay
    was failing) cannot be told apart this way.  */
bool
lapse_sub_backwards (lapse_sub_t *self, uint64_t *registry_last_seq,
                     uint64_t *reached_seq);

/*  Returns the seq of the last event delivered.  */
uint64_t
lapse_sub_last_seq (lapse_sub_t *self);

const char *
lapse_sub_error (lapse_sub_t *self);

/*  Writes event as one JSON object, without a newline, into buffer.
    Returns the length, or -1 when buffer is too small.  Used by
    lapse-audit and lapsectl so both print events alike.  */
int
lapse_event_to_json (const msg_event_t *event, char *buffer, size_t size);

#endif
