/*  removal.c: what follows every committed removal, whatever its reason.

    The event row was written by the store in the same transaction as
    the delete; here the client leaves the in-memory table and the event
    goes out on the PUB socket.  PUB never blocks: a subscriber past its
    high-water mark loses the message and recovers it by replay, so the
    registry never waits on a subscriber.
*/
#include "log.h"
#include "registry.h"

void
removal_event_to_msg (const store_event_t *row, msg_event_t *event)
{
    event->seq = row->seq;
    event->prev = row->prev;
    event->id = msg_str (row->id);
    event->node = msg_str (row->node);
    event->reason = row->reason;
    event->last_activity_ms = row->last_activity_ms;
    event->removed_ms = row->removed_ms;
    event->sweep = row->sweep;
}

static void
s_publish (registry_t *self, const store_event_t *row)
{
    msg_t msg = { .type = MSG_EVENT };
    removal_event_to_msg (row, &msg.u.event);

    void *body = NULL;
    size_t size = 0;
    msg_failure_t failure;
    if (msg_encode (&msg, &body, &size, &failure) != 0) {
        log_error ("event encoding failed", "seq=%" PRIu64 " id=%s error=%s",
                   row->seq, log_quote (row->id),
                   log_quote (failure.message));
        return;
    }

    char topic[sizeof (MSG_TOPIC_EVICTED) + MSG_NODE_MAX];
    snprintf (topic, sizeof (topic), "%s%s", MSG_TOPIC_EVICTED, row->node);

    zmsg_t *out = zmsg_new ();
    zmsg_addstr (out, topic);
    zmsg_addmem (out, body, size);
    free (body);
    if (zmsg_send (&out, self->events) == 0)
        self->stats.events_published++;
    else
        zmsg_destroy (&out);
}

void
removal_publish (registry_t *self, const store_event_t *event)
{
    activity_remove (self->activity, event->id);

    switch (event->reason) {
    case MSG_REASON_STALE:
        self->stats.evicted++;
        break;
    case MSG_REASON_DEREGISTERED:
        self->stats.deregistrations++;
        break;
    case MSG_REASON_OPERATOR:
        self->stats.operator_evictions++;
        break;
    default:
        break;
    }

    //  A large sweep removes many thousands of clients, so stale ones are
    //  logged at debug level and summed up in the sweep's own line
    log_level_t level = event->reason == MSG_REASON_STALE ? LOG_LEVEL_DEBUG
                                                          : LOG_LEVEL_INFO;
    log_write (level, "client removed",
              "seq=%" PRIu64 " id=%s node=%s reason=%s sweep=%" PRIu64
              " last_activity_ms=%" PRId64,
              event->seq, log_quote (event->id), log_quote (event->node),
              msg_reason_name (event->reason), event->sweep,
              event->last_activity_ms);
    s_publish (self, event);
}
