/*  publish.c: removal events on the PUB socket.  */
#include "log.h"
#include "publish.h"

void
publish_event_to_msg (const store_event_t *row, msg_event_t *event)
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

int
publish_event (zsock_t *events, const store_event_t *row)
{
    msg_t msg = { .type = MSG_EVENT };
    publish_event_to_msg (row, &msg.u.event);

    void *body = NULL;
    size_t size = 0;
    msg_failure_t failure;
    if (msg_encode (&msg, &body, &size, &failure) != 0) {
        log_error ("event encoding failed", "seq=%" PRIu64 " id=%s error=%s",
                   row->seq, log_quote (row->id),
                   log_quote (failure.message));
        return -1;
    }

    //  Two frames straight from the buffers, with no message object to
    //  allocate: a large sweep publishes a hundred thousand events a
    //  second
    char topic[sizeof (MSG_TOPIC_EVICTED) + MSG_NODE_MAX];
    int topic_len = snprintf (topic, sizeof (topic), "%s%s",
                              MSG_TOPIC_EVICTED, row->node);
    void *handle = zsock_resolve (events);
    int rc = zmq_send (handle, topic, (size_t) topic_len, ZMQ_SNDMORE) >= 0
                     && zmq_send (handle, body, size, 0) >= 0
                 ? 0
                 : -1;
    free (body);
    return rc;
}
