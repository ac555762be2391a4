/*  channel.h: one DEALER to the registry's command socket, with request
    ids.  Internal to liblapse.

    A channel has at most one outstanding request, and each request gets
    a new request id.  A reply whose id is not the outstanding one (a
    late reply to a request that timed out) is discarded.  After a timeout the
    owner calls channel_reset, which replaces the socket so that late
    replies cannot queue up on it.
*/
#ifndef LAPSE_CHANNEL_H
#define LAPSE_CHANNEL_H

#include <czmq.h>

#include "protocol.h"

/*  ZMQ_MAXMSGSIZE on every liblapse socket: one encoded body plus room
    for the frame headers, so that a peer cannot make us buffer more.  */
#define CHANNEL_FRAME_MAX (MSG_SIZE_MAX + 4096)

typedef struct channel_t channel_t;

/*  Creates a DEALER connected to endpoint.  Returns NULL when the socket
    cannot be created or the endpoint is invalid.  */
channel_t *
channel_new (const char *endpoint);

/*  Closes the socket without lingering and sets *self_p to NULL.
    Accepts NULL.  */
void
channel_destroy (channel_t **self_p);

/*  Returns the socket to poll for replies.  It changes on channel_reset.  */
zsock_t *
channel_socket (channel_t *self);

/*  Returns the endpoint the channel connects to.  */
const char *
channel_endpoint (channel_t *self);

/*  Sets request->req to a new request id, encodes the request and sends
    it as [empty][body] without blocking.  The previous reply's buffer is
    freed.  Returns 0, or -1 with *failure filled in when the request
    breaks a protocol rule or the send queue is full.  */
int
channel_send (channel_t *self, msg_t *request, msg_failure_t *failure);

/*  Reads every message waiting on the socket, without blocking, until
    the reply to the outstanding request is found.  Returns 1 when it is
    found: *reply is a MSG_RESULT for the request's command whose strings
    point into a buffer kept until the next channel_send, and the caller
    calls msg_release (reply).  Returns 0 when no reply to the
    outstanding request has arrived.  Returns -1 with *failure filled in
    when the reply is an error (with the code it carried) or not a valid
    result (MSG_ERR_INTERNAL).  */
int
channel_receive (channel_t *self, msg_t *reply, msg_failure_t *failure);

/*  Returns true while a request is waiting for its reply.  */
bool
channel_waiting (channel_t *self);

/*  Abandons the outstanding request and replaces the socket with a new
    one, so that a late reply cannot arrive on it.  Returns 0, or -1 when
    the new socket cannot be created; the next channel_send then tries
    again.  */
int
channel_reset (channel_t *self);

#endif
