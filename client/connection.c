/*  connection.c: lapse_t, one API node's connection to the registry's
    command socket.

    Requests are synchronous: send, then wait for the reply with the same
    request id until the timeout.  Touched ids are copied into a queue
    and sent as one touch message when the batch is full or on
    lapse_flush.
*/
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "channel.h"
#include "lapse.h"
#include "event_json.h"

struct lapse_t {
    channel_t *channel;
    char node[MSG_NODE_MAX + 1];    /* empty when the connection has none */
    int timeout_ms;
    uint32_t touch_batch;
    char (*touch_ids)[MSG_ID_MAX + 1];  /* MSG_TOUCH_IDS_MAX slots */
    uint32_t touch_count;
    lapse_miss_fn *miss_fn;
    void *miss_arg;
    char (*miss_ids)[MSG_ID_MAX + 1];   /* MSG_TOUCH_IDS_MAX slots, while a
                                           handler is set */
    msg_error_code_t error_code;
    char error[MSG_TEXT_MAX];
    bool timed_out;                 /* the last request got no reply */
};

static void
s_set_error (lapse_t *self, msg_error_code_t code, const char *format, ...)
    __attribute__ ((format (printf, 3, 4)));

static void
s_set_error (lapse_t *self, msg_error_code_t code, const char *format, ...)
{
    va_list args;

    self->error_code = code;
    va_start (args, format);
    vsnprintf (self->error, sizeof self->error, format, args);
    va_end (args);
}

static void
s_clear_error (lapse_t *self)
{
    self->error_code = MSG_ERR_NONE;
    self->error[0] = '\0';
    self->timed_out = false;
}

lapse_t *
lapse_new (const char *commands_endpoint, const char *node)
{
    if (node && !msg_node_is_valid (msg_str (node)))
        return NULL;

    lapse_t *self = (lapse_t *) calloc (1, sizeof (lapse_t));
    if (!self)
        return NULL;
    self->touch_ids = calloc (MSG_TOUCH_IDS_MAX, sizeof *self->touch_ids);
    if (!self->touch_ids)
        goto fail_touch_ids;
    self->channel = channel_new (commands_endpoint);
    if (!self->channel)
        goto fail_channel;

    if (node)
        snprintf (self->node, sizeof self->node, "%s", node);
    self->timeout_ms = LAPSE_DEFAULT_TIMEOUT_MS;
    self->touch_batch = LAPSE_DEFAULT_TOUCH_BATCH;
    return self;

fail_channel:
    free (self->touch_ids);
fail_touch_ids:
    free (self);
    return NULL;
}

void
lapse_destroy (lapse_t **self_p)
{
    if (!self_p || !*self_p)
        return;

    lapse_t *self = *self_p;
    if (self->touch_count > 0)
        lapse_flush (self, NULL);
    channel_destroy (&self->channel);
    free (self->touch_ids);
    free (self->miss_ids);
    free (self);
    *self_p = NULL;
}

void
lapse_set_timeout (lapse_t *self, int timeout_ms)
{
    self->timeout_ms = timeout_ms < 1 ? 1 : timeout_ms;
}

void
lapse_set_touch_batch (lapse_t *self, uint32_t batch)
{
    if (batch < 1)
        batch = 1;
    if (batch > MSG_TOUCH_IDS_MAX)
        batch = MSG_TOUCH_IDS_MAX;
    self->touch_batch = batch;
}

const char *
lapse_error (lapse_t *self)
{
    return self->error;
}

msg_error_code_t
lapse_error_code (lapse_t *self)
{
    return self->error_code;
}

bool
lapse_timed_out (lapse_t *self)
{
    return self->timed_out;
}

/*  Waits for the reply to the request just sent.  On a timeout the
    socket is replaced, so that the late reply is never read.  */
static int
s_wait_reply (lapse_t *self, msg_t *request, msg_t *reply)
{
    msg_failure_t failure;
    int64_t deadline = zclock_mono () + self->timeout_ms;

    while (true) {
        int rc = channel_receive (self->channel, reply, &failure);
        if (rc == 1)
            return 0;
        if (rc == -1) {
            s_set_error (self, failure.code, "%s", failure.message);
            return -1;
        }

        int64_t remaining = deadline - zclock_mono ();
        if (remaining <= 0)
            break;
        zmq_pollitem_t item = {
            zsock_resolve (channel_socket (self->channel)), 0, ZMQ_POLLIN, 0
        };
        if (zmq_poll (&item, 1, (long) remaining) == -1 && zsys_interrupted) {
            s_set_error (self, MSG_ERR_INTERNAL,
                         "%s request to %s interrupted by a signal",
                         msg_type_name (request->type),
                         channel_endpoint (self->channel));
            channel_reset (self->channel);
            return -1;
        }
    }

    s_set_error (self, MSG_ERR_INTERNAL,
                 "%s request to %s timed out after %d ms",
                 msg_type_name (request->type),
                 channel_endpoint (self->channel), self->timeout_ms);
    self->timed_out = true;
    channel_reset (self->channel);
    return -1;
}

int
lapse_request (lapse_t *self, msg_t *request, msg_t *reply)
{
    msg_failure_t failure;

    memset (reply, 0, sizeof *reply);
    s_clear_error (self);
    if (!msg_type_is_command (request->type)) {
        s_set_error (self, MSG_ERR_BAD_REQUEST,
                     "invalid request type %s: expected a command",
                     msg_type_name (request->type));
        return -1;
    }
    if (channel_send (self->channel, request, &failure) == -1) {
        s_set_error (self, failure.code, "%s", failure.message);
        return -1;
    }
    return s_wait_reply (self, request, reply);
}

/*  Checks id as a client id and sets the error naming it when invalid.  */
static int
s_check_id (lapse_t *self, const char *id)
{
    char quoted[JSON_QUOTED_MAX];

    if (id && msg_id_is_valid (msg_str (id)))
        return 0;
    s_set_error (self, MSG_ERR_BAD_REQUEST,
                 "invalid client id %s: expected 1 to %d bytes of printable "
                 "ASCII without spaces",
                 json_quote (id, quoted, sizeof quoted), MSG_ID_MAX);
    return -1;
}

int
lapse_register (lapse_t *self, const char *id, const void *meta,
                size_t meta_len, bool *created)
{
    return lapse_register_stale_after (self, id, meta, meta_len, 0,
                                       created);
}

int
lapse_register_stale_after (lapse_t *self, const char *id, const void *meta,
                            size_t meta_len, int64_t stale_after_ms,
                            bool *created)
{
    s_clear_error (self);
    if (self->node[0] == '\0') {
        s_set_error (self, MSG_ERR_BAD_REQUEST,
                     "register needs a node: this connection was created "
                     "without one");
        return -1;
    }
    if (s_check_id (self, id) == -1)
        return -1;
    if (meta_len > MSG_META_MAX || (meta_len > 0 && !meta)) {
        s_set_error (self, MSG_ERR_LIMIT_EXCEEDED,
                     "invalid metadata for client %s: %zu bytes, expected "
                     "0 to %d", id, meta_len, MSG_META_MAX);
        return -1;
    }
    if (stale_after_ms < 0) {
        s_set_error (self, MSG_ERR_BAD_REQUEST,
                     "invalid stale_after_ms for client %s: %lld, expected "
                     "0 (the registry's default) or more", id,
                     (long long) stale_after_ms);
        return -1;
    }

    msg_t request = { .type = MSG_REGISTER };
    request.u.register_.id = msg_str (id);
    request.u.register_.node = msg_str (self->node);
    request.u.register_.meta.ptr = (const char *) meta;
    request.u.register_.meta.len = (uint32_t) meta_len;
    request.u.register_.stale_after_ms = stale_after_ms;
    msg_t reply;
    if (lapse_request (self, &request, &reply) == -1)
        return -1;

    if (created)
        *created = reply.u.result.created;
    msg_release (&reply);
    return 0;
}

int
lapse_deregister (lapse_t *self, const char *id)
{
    s_clear_error (self);
    if (s_check_id (self, id) == -1)
        return -1;

    msg_t request = { .type = MSG_DEREGISTER };
    request.u.client_ref.id = msg_str (id);
    msg_t reply;
    if (lapse_request (self, &request, &reply) == -1)
        return -1;
    msg_release (&reply);
    return 0;
}

int
lapse_touch (lapse_t *self, const char *id)
{
    s_clear_error (self);
    if (s_check_id (self, id) == -1)
        return -1;

    /*  A batch whose send failed stays queued and goes first.  While it
        cannot be sent, no more ids are taken.  */
    if (self->touch_count >= self->touch_batch
        && lapse_flush (self, NULL) == -1)
        return -1;

    snprintf (self->touch_ids[self->touch_count],
              sizeof self->touch_ids[0], "%s", id);
    self->touch_count++;
    if (self->touch_count >= self->touch_batch)
        return lapse_flush (self, NULL);
    return 0;
}

int
lapse_set_miss_handler (lapse_t *self, lapse_miss_fn *fn, void *arg)
{
    if (fn && !self->miss_ids) {
        self->miss_ids = calloc (MSG_TOUCH_IDS_MAX, sizeof *self->miss_ids);
        if (!self->miss_ids)
            return -1;
    }
    self->miss_fn = fn;
    self->miss_arg = arg;
    return 0;
}

/*  Copies the ids of a touch result that were not recorded, unknown ones
    first, into miss_ids, so that they outlive the reply.  */
static void
s_misses_copy (lapse_t *self, const msg_result_t *result)
{
    uint32_t slot = 0;
    for (uint32_t index = 0; index < result->unknown_count; index++)
        msg_str_copy (result->unknown[index], self->miss_ids[slot++],
                      sizeof self->miss_ids[0]);
    for (uint32_t index = 0; index < result->evicted_count; index++)
        msg_str_copy (result->evicted[index], self->miss_ids[slot++],
                      sizeof self->miss_ids[0]);
}

/*  Calls the miss handler for the ids s_misses_copy kept.  */
static void
s_misses_report (lapse_t *self, uint32_t unknown, uint32_t evicted)
{
    for (uint32_t slot = 0; slot < unknown + evicted; slot++)
        self->miss_fn (self->miss_ids[slot],
                       slot < unknown ? LAPSE_MISS_UNKNOWN
                                      : LAPSE_MISS_EVICTED,
                       self->miss_arg);
}

int
lapse_flush (lapse_t *self, uint32_t *unknown)
{
    uint32_t not_known = 0;
    uint32_t evicted = 0;
    int rc = lapse_flush_report (self, &not_known, &evicted);
    if (unknown)
        *unknown = not_known + evicted;
    return rc;
}

int
lapse_flush_report (lapse_t *self, uint32_t *unknown, uint32_t *evicted)
{
    s_clear_error (self);
    if (unknown)
        *unknown = 0;
    if (evicted)
        *evicted = 0;
    if (self->touch_count == 0)
        return 0;

    msg_str_t ids[MSG_TOUCH_IDS_MAX];
    for (uint32_t index = 0; index < self->touch_count; index++)
        ids[index] = msg_str (self->touch_ids[index]);
    msg_t request = { .type = MSG_TOUCH };
    request.u.touch.ids = ids;
    request.u.touch.count = self->touch_count;
    msg_t reply;
    if (lapse_request (self, &request, &reply) == -1) {
        /*  An error reply rejects the batch for good, so it is dropped.
            After a timeout or a failed send it is kept for the next
            flush, because touching an id twice does no harm.  */
        if (self->error_code != MSG_ERR_INTERNAL
            && self->error_code != MSG_ERR_BUSY)
            self->touch_count = 0;
        return -1;
    }

    /*  The decoder checked that the counts add up to at most
        MSG_TOUCH_IDS_MAX, the room in miss_ids.  */
    uint32_t unknown_count = reply.u.result.unknown_count;
    uint32_t evicted_count = reply.u.result.evicted_count;
    lapse_miss_fn *miss_fn = self->miss_fn;
    if (miss_fn)
        s_misses_copy (self, &reply.u.result);
    if (unknown)
        *unknown = unknown_count;
    if (evicted)
        *evicted = evicted_count;
    self->touch_count = 0;
    msg_release (&reply);
    if (miss_fn)
        s_misses_report (self, unknown_count, evicted_count);
    return 0;
}
