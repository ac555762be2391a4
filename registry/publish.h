/*  publish.h: removal events on the PUB socket.

    Events are published by the store worker, right after the
    transaction that wrote them committed, so they go out in sequence
    order and their encoding takes no time from the event loop.  A send
    on PUB does not block: a subscriber past its high-water mark loses
    the message and recovers it by replay, so nothing waits on a
    subscriber.
*/
#ifndef LAPSE_PUBLISH_H
#define LAPSE_PUBLISH_H

#include <czmq.h>

#include "protocol.h"
#include "store.h"

/*  Converts a store event row into a message view of the same row.  */
void
publish_event_to_msg (const store_event_t *row, msg_event_t *event);

/*  Sends one event on events, under the topic of its node.  Returns 0,
    or -1 when it could not be encoded (logged) or sent.  */
int
publish_event (zsock_t *events, const store_event_t *row);

#endif
