/*  channel.c: one DEALER to the registry's command socket, with request
    ids.  See channel.h.
*/
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "channel.h"

struct channel_t {
    char *endpoint;
    zsock_t *dealer;
    uint64_t last_req;          /* the id given to the latest request */
    uint64_t waiting_req;       /* the id awaited, 0 when none */
    msg_type_t waiting_type;    /* the command of the awaited request */
    zframe_t *reply_body;       /* the buffer the last reply points into */
};

static void
s_fail (msg_failure_t *failure, msg_error_code_t code, const char *format,
        ...) __attribute__ ((format (printf, 3, 4)));

static void
s_fail (msg_failure_t *failure, msg_error_code_t code, const char *format,
        ...)
{
    va_list args;

    failure->code = code;
    va_start (args, format);
    vsnprintf (failure->message, sizeof failure->message, format, args);
    va_end (args);
}

/*  Creates a DEALER that never lingers on close, so that destroying a
    channel whose registry is gone returns at once.  */
static zsock_t *
s_dealer_new (const char *endpoint)
{
    zsock_t *dealer = zsock_new (ZMQ_DEALER);
    if (!dealer)
        return NULL;

    zsock_set_linger (dealer, 0);
    zsock_set_maxmsgsize (dealer, CHANNEL_FRAME_MAX);
    zsock_set_sndtimeo (dealer, 0);
    if (zsock_connect (dealer, "%s", endpoint) == -1) {
        zsock_destroy (&dealer);
        return NULL;
    }
    return dealer;
}

channel_t *
channel_new (const char *endpoint)
{
    if (!endpoint)
        return NULL;

    channel_t *self = (channel_t *) calloc (1, sizeof (channel_t));
    if (!self)
        return NULL;
    self->endpoint = strdup (endpoint);
    if (!self->endpoint)
        goto fail_endpoint;
    self->dealer = s_dealer_new (endpoint);
    if (!self->dealer)
        goto fail_dealer;
    return self;

fail_dealer:
    free (self->endpoint);
fail_endpoint:
    free (self);
    return NULL;
}

void
channel_destroy (channel_t **self_p)
{
    if (!self_p || !*self_p)
        return;

    channel_t *self = *self_p;
    zsock_destroy (&self->dealer);
    zframe_destroy (&self->reply_body);
    free (self->endpoint);
    free (self);
    *self_p = NULL;
}

zsock_t *
channel_socket (channel_t *self)
{
    return self->dealer;
}

const char *
channel_endpoint (channel_t *self)
{
    return self->endpoint;
}

bool
channel_waiting (channel_t *self)
{
    return self->waiting_req != 0;
}

int
channel_reset (channel_t *self)
{
    self->waiting_req = 0;
    zsock_destroy (&self->dealer);
    self->dealer = s_dealer_new (self->endpoint);
    return self->dealer ? 0 : -1;
}

int
channel_send (channel_t *self, msg_t *request, msg_failure_t *failure)
{
    zframe_destroy (&self->reply_body);
    self->waiting_req = 0;
    if (!self->dealer && channel_reset (self) == -1) {
        s_fail (failure, MSG_ERR_INTERNAL,
                "cannot create a socket for endpoint %s", self->endpoint);
        return -1;
    }

    request->req = ++self->last_req;
    void *data;
    size_t size;
    if (msg_encode (request, &data, &size, failure) == -1)
        return -1;

    zmsg_t *message = zmsg_new ();
    zmsg_addmem (message, NULL, 0);
    zmsg_addmem (message, data, size);
    free (data);
    if (zmsg_send (&message, self->dealer) == -1) {
        s_fail (failure, MSG_ERR_INTERNAL,
                "sending %s to %s failed: %s", msg_type_name (request->type),
                self->endpoint, zmq_strerror (errno));
        zmsg_destroy (&message);
        return -1;
    }

    self->waiting_req = request->req;
    self->waiting_type = request->type;
    return 0;
}

/*  Turns a decoded reply to the awaited request into the return value of
    channel_receive.  */
static int
s_check_reply (channel_t *self, msg_t *reply, msg_failure_t *failure)
{
    if (reply->type == MSG_ERROR) {
        msg_str_t text = reply->u.error.message;
        s_fail (failure, reply->u.error.code, "registry returned %s: %.*s",
                msg_error_code_name (reply->u.error.code), (int) text.len,
                text.ptr);
        return -1;
    }
    if (reply->type != MSG_RESULT
        || reply->u.result.cmd != self->waiting_type) {
        s_fail (failure, MSG_ERR_INTERNAL,
                "invalid reply from %s: expected a %s result, got %s",
                self->endpoint, msg_type_name (self->waiting_type),
                reply->type == MSG_RESULT
                    ? msg_type_name (reply->u.result.cmd)
                    : msg_type_name (reply->type));
        return -1;
    }
    return 1;
}

/*  Decodes one received message.  Returns 0 when it is not the reply to
    the awaited request, otherwise what channel_receive returns.  */
static int
s_accept (channel_t *self, zmsg_t *message, msg_t *reply,
          msg_failure_t *failure)
{
    if (zmsg_size (message) != 2 || zframe_size (zmsg_first (message)) != 0)
        return 0;

    zframe_t *body = zmsg_next (message);
    msg_failure_t decode_failure;
    int rc = msg_decode (zframe_data (body), zframe_size (body), reply,
                         &decode_failure);
    if (reply->req != self->waiting_req) {
        msg_release (reply);
        return 0;
    }

    self->waiting_req = 0;
    if (rc == -1) {
        s_fail (failure, MSG_ERR_INTERNAL, "invalid reply from %s: %s",
                self->endpoint, decode_failure.message);
        msg_release (reply);
        return -1;
    }
    rc = s_check_reply (self, reply, failure);
    if (rc == -1) {
        msg_release (reply);
        return -1;
    }

    zmsg_remove (message, body);
    self->reply_body = body;
    return 1;
}

int
channel_receive (channel_t *self, msg_t *reply, msg_failure_t *failure)
{
    memset (reply, 0, sizeof *reply);
    while (self->waiting_req && self->dealer
           && (zsock_events (self->dealer) & ZMQ_POLLIN)) {
        zmsg_t *message = zmsg_recv (self->dealer);
        if (!message)
            break;

        int rc = s_accept (self, message, reply, failure);
        zmsg_destroy (&message);
        if (rc != 0)
            return rc;
    }
    return 0;
}
