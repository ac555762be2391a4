/*  test_client.c: liblapse against a fake registry run in this process.

    The fake is a ROUTER on an inproc:// endpoint, served by a zactor,
    that replies to commands with canned results built by msg_encode and
    serves "events" from an in-memory event table.  Subscription tests add
    an XPUB on another inproc:// endpoint, so that they can wait until
    the subscription has arrived before publishing.
*/
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <czmq.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lapse.h"

#define FAKE_EVENTS_MAX 4096
#define FAKE_RECORDS_MAX 256
#define WAIT_MS 5000            /* deadline for any condition awaited */

typedef struct {
    msg_event_t event;
    char id[MSG_ID_MAX + 1];
    char node[MSG_NODE_MAX + 1];
} stored_event_t;

/*  Fields above the lock line are set by the test before requests are
    made; the rest is shared with the actor under the lock.  */
typedef struct {
    char endpoint[64];
    zactor_t *actor;
    msg_error_code_t error_code;    /* reply with this error when set */
    bool hold_first;                /* reply to the first request late */
    bool created;                   /* "created" in register results */

    pthread_mutex_t lock;
    stored_event_t *events;         /* in seq order */
    size_t events_count;
    int requests;
    uint64_t reqs[FAKE_RECORDS_MAX];
    int touch_messages;
    uint32_t touch_sizes[FAKE_RECORDS_MAX];
    int events_requests;
    uint64_t events_since[FAKE_RECORDS_MAX];
    int64_t stale_after_ms;         /* of the last register request */

    zframe_t *held_identity;        /* actor only */
    uint64_t held_req;
} fake_registry_t;

static int s_endpoint_counter;

static void
s_endpoint (char *buffer, size_t size, const char *kind)
{
    snprintf (buffer, size, "inproc://test-client-%s-%d", kind,
              ++s_endpoint_counter);
}

static void
s_assert_contains (const char *text, const char *part)
{
    if (strstr (text, part) == NULL)
        fail_msg ("\"%s\" does not contain \"%s\"", text, part);
}

/*  Encodes reply and sends it to identity as [identity][empty][body].
    Runs in the actor, where a cmocka assertion cannot be used.  */
static void
s_fake_send (zsock_t *router, zframe_t *identity, const msg_t *reply)
{
    void *data;
    size_t size;
    msg_failure_t failure;

    if (msg_encode (reply, &data, &size, &failure) == -1) {
        fprintf (stderr, "fake registry cannot encode its reply: %s\n",
                 failure.message);
        abort ();
    }
    zmsg_t *message = zmsg_new ();
    zmsg_append (message, &(zframe_t *) { zframe_dup (identity) });
    zmsg_addmem (message, NULL, 0);
    zmsg_addmem (message, data, size);
    zmsg_send (&message, router);
    free (data);
}

/*  Sends a register result for req with created set to !fake->created,
    so that a test can tell it from the reply to the current request.  */
static void
s_fake_send_stale (fake_registry_t *fake, zsock_t *router,
                   zframe_t *identity, uint64_t req)
{
    msg_t reply = { .type = MSG_RESULT, .req = req };
    reply.u.result.cmd = MSG_REGISTER;
    reply.u.result.created = !fake->created;
    s_fake_send (router, identity, &reply);
}

static void
s_fake_touch (fake_registry_t *fake, const msg_t *request, msg_t *reply)
{
    msg_str_t *unknown = reply->u.result.unknown;
    msg_str_t *evicted = reply->u.result.evicted;
    const msg_touch_t *touch = &request->u.touch;

    for (uint32_t index = 0; index < touch->count; index++) {
        msg_str_t id = touch->ids[index];
        if (id.len >= 7 && memcmp (id.ptr, "unknown", 7) == 0)
            unknown[reply->u.result.unknown_count++] = id;
        else if (id.len >= 7 && memcmp (id.ptr, "evicted", 7) == 0)
            evicted[reply->u.result.evicted_count++] = id;
        else
            reply->u.result.touched++;
    }
    if (fake->touch_messages < FAKE_RECORDS_MAX)
        fake->touch_sizes[fake->touch_messages] = touch->count;
    fake->touch_messages++;
}

/*  Fills an events result from the event table, as the registry does:
    events after since, for the node when one is given, up to limit.  */
static void
s_fake_events (fake_registry_t *fake, const msg_t *request, msg_t *reply,
               msg_event_t *page)
{
    const msg_events_t *query = &request->u.events;
    msg_result_t *result = &reply->u.result;

    for (size_t index = 0; index < fake->events_count; index++) {
        const msg_event_t *event = &fake->events[index].event;
        if (event->seq <= query->since || result->events_count >= query->limit)
            continue;
        if (query->node.len > 0 && (event->node.len != query->node.len
                                    || memcmp (event->node.ptr, query->node.ptr,
                                               query->node.len) != 0))
            continue;
        page[result->events_count++] = *event;
    }
    result->events = page;
    if (fake->events_count > 0) {
        result->first_seq = fake->events[0].event.seq;
        result->last_seq = fake->events[fake->events_count - 1].event.seq;
    }
    if (fake->events_requests < FAKE_RECORDS_MAX)
        fake->events_since[fake->events_requests] = query->since;
    fake->events_requests++;
}

/*  Replies to one decoded request.  Called with the lock held.  */
static void
s_fake_answer (fake_registry_t *fake, zsock_t *router, zframe_t *identity,
               const msg_t *request)
{
    msg_str_t unknown[MSG_TOUCH_IDS_MAX];
    msg_str_t evicted[MSG_TOUCH_IDS_MAX];
    msg_t reply = { .type = MSG_RESULT, .req = request->req };
    msg_event_t *page = NULL;

    if (fake->error_code != MSG_ERR_NONE) {
        reply.type = MSG_ERROR;
        reply.u.error.code = fake->error_code;
        reply.u.error.message = msg_str ("client \"ghost\" is not registered");
        s_fake_send (router, identity, &reply);
        return;
    }

    reply.u.result.cmd = request->type;
    reply.u.result.unknown = unknown;
    reply.u.result.evicted = evicted;
    switch (request->type) {
    case MSG_REGISTER:
        reply.u.result.created = fake->created;
        fake->stale_after_ms = request->u.register_.stale_after_ms;
        break;
    case MSG_TOUCH:
        s_fake_touch (fake, request, &reply);
        break;
    case MSG_DEREGISTER:
        reply.u.result.seq = 1;
        break;
    case MSG_EVENTS:
        page = calloc (MSG_PAGE_MAX, sizeof *page);
        s_fake_events (fake, request, &reply, page);
        break;
    default:
        reply.type = MSG_ERROR;
        reply.u.error.code = MSG_ERR_BAD_REQUEST;
        reply.u.error.message = msg_str ("command not served by the fake");
        break;
    }
    s_fake_send (router, identity, &reply);
    free (page);
}

/*  Handles one message from the ROUTER.  With hold_first, the first
    request gets no reply until the second arrives.  Its reply then goes
    to the socket that sent it, and also, as a stale reply, to the one
    that sent the second, ahead of the second's own reply.  */
static void
s_fake_handle (fake_registry_t *fake, zsock_t *router, zmsg_t *message)
{
    if (zmsg_size (message) != 3)
        return;
    zframe_t *identity = zmsg_first (message);
    zmsg_next (message);
    zframe_t *body = zmsg_next (message);
    msg_t request;
    msg_failure_t failure;
    if (msg_decode (zframe_data (body), zframe_size (body), &request,
                    &failure) == -1) {
        fprintf (stderr, "fake registry got an invalid request: %s\n",
                 failure.message);
        msg_release (&request);
        return;
    }

    pthread_mutex_lock (&fake->lock);
    if (fake->requests < FAKE_RECORDS_MAX)
        fake->reqs[fake->requests] = request.req;
    fake->requests++;
    if (fake->hold_first && fake->requests == 1) {
        fake->held_identity = zframe_dup (identity);
        fake->held_req = request.req;
    }
    else {
        if (fake->held_identity) {
            s_fake_send_stale (fake, router, fake->held_identity,
                               fake->held_req);
            s_fake_send_stale (fake, router, identity, fake->held_req);
            zframe_destroy (&fake->held_identity);
        }
        s_fake_answer (fake, router, identity, &request);
    }
    pthread_mutex_unlock (&fake->lock);
    msg_release (&request);
}

static void
s_fake_actor (zsock_t *pipe, void *args)
{
    fake_registry_t *fake = (fake_registry_t *) args;
    zsock_t *router = zsock_new (ZMQ_ROUTER);
    zsock_set_linger (router, 0);
    if (zsock_bind (router, "%s", fake->endpoint) == -1) {
        fprintf (stderr, "fake registry cannot bind %s\n", fake->endpoint);
        abort ();
    }
    zsock_signal (pipe, 0);

    zpoller_t *poller = zpoller_new (pipe, router, NULL);
    while (true) {
        void *ready = zpoller_wait (poller, -1);
        if (ready == router) {
            zmsg_t *message = zmsg_recv (router);
            s_fake_handle (fake, router, message);
            zmsg_destroy (&message);
        }
        else
            break;      /* $TERM from the pipe, or interrupted */
    }
    zframe_destroy (&fake->held_identity);
    zpoller_destroy (&poller);
    zsock_destroy (&router);
}

static fake_registry_t *
s_fake_new (void)
{
    fake_registry_t *fake = calloc (1, sizeof *fake);
    assert_non_null (fake);
    fake->events = calloc (FAKE_EVENTS_MAX, sizeof *fake->events);
    assert_non_null (fake->events);
    pthread_mutex_init (&fake->lock, NULL);
    s_endpoint (fake->endpoint, sizeof fake->endpoint, "commands");
    return fake;
}

static void
s_fake_start (fake_registry_t *fake)
{
    fake->actor = zactor_new (s_fake_actor, fake);
    assert_non_null (fake->actor);
}

static void
s_fake_destroy (fake_registry_t **fake_p)
{
    fake_registry_t *fake = *fake_p;
    zactor_destroy (&fake->actor);
    pthread_mutex_destroy (&fake->lock);
    free (fake->events);
    free (fake);
    *fake_p = NULL;
}

/*  Adds an event to the fake's table, as a commit in the registry
    would.  Events must be added in seq order.  */
static msg_event_t
s_fake_add_event (fake_registry_t *fake, uint64_t seq, uint64_t prev,
                  const char *node)
{
    pthread_mutex_lock (&fake->lock);
    assert_true (fake->events_count < FAKE_EVENTS_MAX);
    stored_event_t *stored = &fake->events[fake->events_count++];
    snprintf (stored->id, sizeof stored->id, "client-%" PRIu64, seq);
    snprintf (stored->node, sizeof stored->node, "%s", node);
    stored->event.seq = seq;
    stored->event.prev = prev;
    stored->event.id = msg_str (stored->id);
    stored->event.node = msg_str (stored->node);
    stored->event.reason = MSG_REASON_STALE;
    stored->event.last_activity_ms = 1700000000000;
    stored->event.removed_ms = 1700000000000 + (int64_t) seq;
    stored->event.sweep = 1;
    msg_event_t event = stored->event;
    pthread_mutex_unlock (&fake->lock);
    return event;
}

static int
s_fake_events_requests (fake_registry_t *fake)
{
    pthread_mutex_lock (&fake->lock);
    int count = fake->events_requests;
    pthread_mutex_unlock (&fake->lock);
    return count;
}

/*  An XPUB standing in for the registry's event socket.  */
static zsock_t *
s_publisher_new (char *endpoint, size_t size)
{
    s_endpoint (endpoint, size, "events");
    zsock_t *publisher = zsock_new (ZMQ_XPUB);
    assert_non_null (publisher);
    zsock_set_linger (publisher, 0);
    assert_int_equal (zsock_bind (publisher, "%s", endpoint), 0);
    return publisher;
}

/*  Waits until a subscriber's subscription reaches the publisher, so
    that what is published next is not lost to a late join.  */
static void
s_wait_subscribed (zsock_t *publisher, const char *topic)
{
    zpoller_t *poller = zpoller_new (publisher, NULL);
    assert_non_null (zpoller_wait (poller, WAIT_MS));
    zframe_t *frame = zframe_recv (publisher);
    zpoller_destroy (&poller);

    assert_non_null (frame);
    assert_int_equal (zframe_size (frame), 1 + strlen (topic));
    assert_int_equal (zframe_data (frame)[0], 1);
    assert_memory_equal (zframe_data (frame) + 1, topic, strlen (topic));
    zframe_destroy (&frame);
}

static void
s_publish (zsock_t *publisher, const msg_event_t *event)
{
    msg_t message = { .type = MSG_EVENT };
    message.u.event = *event;
    void *data;
    size_t size;
    msg_failure_t failure;
    assert_int_equal (msg_encode (&message, &data, &size, &failure), 0);

    char topic[sizeof MSG_TOPIC_EVICTED + MSG_NODE_MAX];
    snprintf (topic, sizeof topic, "%s%.*s", MSG_TOPIC_EVICTED,
              (int) event->node.len, event->node.ptr);
    zmsg_t *frames = zmsg_new ();
    zmsg_addstr (frames, topic);
    zmsg_addmem (frames, data, size);
    assert_int_equal (zmsg_send (&frames, publisher), 0);
    free (data);
}

/*  Calls lapse_sub_next until the fake has served count replays and one
    more short wait has let the subscription read the last reply.  No
    event may be delivered meanwhile.  */
static void
s_pump_until_replayed (lapse_sub_t *sub, fake_registry_t *fake, int count)
{
    msg_event_t event;
    int64_t deadline = zclock_mono () + WAIT_MS;

    while (s_fake_events_requests (fake) < count) {
        assert_true (zclock_mono () < deadline);
        assert_int_equal (lapse_sub_next (sub, &event, 20), 0);
    }
    assert_int_equal (lapse_sub_next (sub, &event, 100), 0);
}

/*  Collects delivered seqs until count have arrived or the deadline
    passes; gaps fail the test.  Returns how many arrived.  */
static int
s_collect (lapse_sub_t *sub, uint64_t *seqs, int count)
{
    msg_event_t event;
    int received = 0;
    int64_t deadline = zclock_mono () + WAIT_MS;

    while (received < count && zclock_mono () < deadline) {
        int rc = lapse_sub_next (sub, &event, 50);
        if (rc == 2)
            fail_msg ("unexpected gap reported");
        if (rc == 1)
            seqs[received++] = event.seq;
    }
    return received;
}

/*  Asserts that nothing more is delivered within a short wait.  */
static void
s_assert_quiet (lapse_sub_t *sub)
{
    msg_event_t event;
    int64_t deadline = zclock_mono () + 300;

    while (zclock_mono () < deadline) {
        int rc = lapse_sub_next (sub, &event, 50);
        if (rc == 1)
            fail_msg ("unexpected event delivered: seq %" PRIu64, event.seq);
        assert_int_equal (rc, 0);
    }
}

/*  ---- lapse_event_to_json ----  */

static msg_event_t
s_sample_event (const char *id)
{
    msg_event_t event = {
        .seq = 42,
        .prev = 7,
        .id = msg_str (id),
        .node = msg_str ("node-a"),
        .reason = MSG_REASON_STALE,
        .last_activity_ms = 1700000000000,
        .removed_ms = 1700000001000,
        .sweep = 9,
    };
    return event;
}

static void
event_json_writes_all_fields (void **state)
{
    msg_event_t event = s_sample_event ("client-1");
    char buffer[512];

    int length = lapse_event_to_json (&event, buffer, sizeof buffer);
    const char *expected =
        "{\"seq\":42,\"prev\":7,\"id\":\"client-1\",\"node\":\"node-a\","
        "\"reason\":\"stale\",\"last_activity_ms\":1700000000000,"
        "\"removed_ms\":1700000001000,\"sweep\":9}";
    assert_string_equal (buffer, expected);
    assert_int_equal (length, strlen (expected));
}

static void
event_json_names_each_reason (void **state)
{
    msg_event_t event = s_sample_event ("c");
    char buffer[512];

    event.reason = MSG_REASON_DEREGISTERED;
    assert_true (lapse_event_to_json (&event, buffer, sizeof buffer) > 0);
    s_assert_contains (buffer, "\"reason\":\"deregistered\"");
    event.reason = MSG_REASON_OPERATOR;
    assert_true (lapse_event_to_json (&event, buffer, sizeof buffer) > 0);
    s_assert_contains (buffer, "\"reason\":\"operator\"");
}

static void
event_json_escapes_strings (void **state)
{
    msg_event_t event = s_sample_event ("a\"b\\c");
    char buffer[512];

    assert_true (lapse_event_to_json (&event, buffer, sizeof buffer) > 0);
    s_assert_contains (buffer, "\"id\":\"a\\\"b\\\\c\",");

    event.id = msg_str ("x\ny\x01z\x7f");
    assert_true (lapse_event_to_json (&event, buffer, sizeof buffer) > 0);
    s_assert_contains (buffer, "\"id\":\"x\\ny\\u0001z\\u007f\",");
}

static void
event_json_copies_counted_strings (void **state)
{
    msg_event_t event = s_sample_event ("client-1");
    char buffer[512];

    /*  Views need not be NUL-terminated: only len bytes count.  */
    event.id.len = 6;
    assert_true (lapse_event_to_json (&event, buffer, sizeof buffer) > 0);
    s_assert_contains (buffer, "\"id\":\"client\",");
}

static void
event_json_rejects_small_buffer (void **state)
{
    msg_event_t event = s_sample_event ("client-1");
    char buffer[512];

    int length = lapse_event_to_json (&event, buffer, sizeof buffer);
    assert_true (length > 0);
    assert_int_equal (lapse_event_to_json (&event, buffer, (size_t) length + 1),
                      length);
    assert_int_equal (lapse_event_to_json (&event, buffer, (size_t) length),
                      -1);
    assert_int_equal (lapse_event_to_json (&event, buffer, 0), -1);
}

/*  ---- lapse_t ----  */

static void
new_rejects_invalid_node (void **state)
{
    assert_null (lapse_new ("inproc://test-client-unused", "bad node"));
    assert_null (lapse_new ("inproc://test-client-unused", ""));
    assert_null (lapse_new (NULL, "node-a"));
    assert_null (lapse_new ("nowhere://x", "node-a"));
}

static void
register_returns_created (void **state)
{
    fake_registry_t *fake = s_fake_new ();
    fake->created = true;
    s_fake_start (fake);
    lapse_t *lapse = lapse_new (fake->endpoint, "node-a");
    assert_non_null (lapse);
    bool created = false;

    assert_int_equal (lapse_register (lapse, "client-1", "m", 1, &created), 0);
    assert_true (created);
    assert_int_equal (lapse_error_code (lapse), MSG_ERR_NONE);
    assert_int_equal (lapse_register (lapse, "client-2", NULL, 0, NULL), 0);

    pthread_mutex_lock (&fake->lock);
    assert_int_equal (fake->requests, 2);
    assert_true (fake->reqs[0] > 0);
    assert_true (fake->reqs[1] > fake->reqs[0]);
    pthread_mutex_unlock (&fake->lock);

    lapse_destroy (&lapse);
    assert_null (lapse);
    s_fake_destroy (&fake);
}

static void
register_needs_node (void **state)
{
    lapse_t *lapse = lapse_new ("inproc://test-client-unused", NULL);
    assert_non_null (lapse);

    assert_int_equal (lapse_register (lapse, "client-1", NULL, 0, NULL), -1);
    assert_int_equal (lapse_error_code (lapse), MSG_ERR_BAD_REQUEST);
    s_assert_contains (lapse_error (lapse), "node");
    lapse_destroy (&lapse);
}

static void
error_reply_sets_code (void **state)
{
    fake_registry_t *fake = s_fake_new ();
    fake->error_code = MSG_ERR_UNKNOWN_CLIENT;
    s_fake_start (fake);
    lapse_t *lapse = lapse_new (fake->endpoint, "node-a");
    assert_non_null (lapse);

    assert_int_equal (lapse_deregister (lapse, "ghost"), -1);
    assert_int_equal (lapse_error_code (lapse), MSG_ERR_UNKNOWN_CLIENT);
    s_assert_contains (lapse_error (lapse), "unknown_client");
    s_assert_contains (lapse_error (lapse), "client \"ghost\" is not registered");

    lapse_destroy (&lapse);
    s_fake_destroy (&fake);
}

static void
timeout_discards_late_reply (void **state)
{
    fake_registry_t *fake = s_fake_new ();
    fake->hold_first = true;
    fake->created = false;
    s_fake_start (fake);
    lapse_t *lapse = lapse_new (fake->endpoint, "node-a");
    assert_non_null (lapse);
    lapse_set_timeout (lapse, 200);
    bool created = true;

    int64_t started = zclock_mono ();
    assert_int_equal (lapse_register (lapse, "client-1", NULL, 0, &created),
                      -1);
    int64_t elapsed = zclock_mono () - started;
    assert_true (elapsed >= 190);
    assert_true (elapsed < 2000);
    assert_int_equal (lapse_error_code (lapse), MSG_ERR_INTERNAL);
    s_assert_contains (lapse_error (lapse), "timed out after 200 ms");
    assert_true (lapse_timed_out (lapse));

    /*  The fake now sends the first request's reply (created true) ahead
        of the second's (created false); only the second may be taken.  */
    assert_int_equal (lapse_register (lapse, "client-2", NULL, 0, &created),
                      0);
    assert_false (created);
    assert_false (lapse_timed_out (lapse));

    pthread_mutex_lock (&fake->lock);
    assert_int_equal (fake->requests, 2);
    assert_true (fake->reqs[1] != fake->reqs[0]);
    pthread_mutex_unlock (&fake->lock);
    lapse_destroy (&lapse);
    s_fake_destroy (&fake);
}

static void
touch_sends_one_message_per_batch (void **state)
{
    fake_registry_t *fake = s_fake_new ();
    s_fake_start (fake);
    lapse_t *lapse = lapse_new (fake->endpoint, "node-a");
    assert_non_null (lapse);
    lapse_set_touch_batch (lapse, 3);
    char id[32];

    for (int index = 0; index < 6; index++) {
        snprintf (id, sizeof id, "client-%d", index);
        assert_int_equal (lapse_touch (lapse, id), 0);
    }
    assert_int_equal (lapse_touch (lapse, "unknown-1"), 0);

    pthread_mutex_lock (&fake->lock);
    assert_int_equal (fake->touch_messages, 2);
    assert_int_equal (fake->touch_sizes[0], 3);
    assert_int_equal (fake->touch_sizes[1], 3);
    pthread_mutex_unlock (&fake->lock);

    uint32_t unknown = 99;
    assert_int_equal (lapse_flush (lapse, &unknown), 0);
    assert_int_equal (unknown, 1);
    assert_int_equal (lapse_flush (lapse, &unknown), 0);
    assert_int_equal (unknown, 0);

    pthread_mutex_lock (&fake->lock);
    assert_int_equal (fake->touch_messages, 3);
    assert_int_equal (fake->touch_sizes[2], 1);
    pthread_mutex_unlock (&fake->lock);
    lapse_destroy (&lapse);
    s_fake_destroy (&fake);
}

/*  What a miss handler was called with.  */
typedef struct {
    lapse_t *lapse;
    int calls;
    char ids[4][MSG_ID_MAX + 1];
    lapse_miss_t misses[4];
    int registered;             /* lapse_register calls that succeeded */
} misses_t;

static void
s_record_miss (const char *id, lapse_miss_t miss, void *arg)
{
    misses_t *misses = arg;
    if (misses->calls < 4) {
        snprintf (misses->ids[misses->calls], sizeof misses->ids[0], "%s",
                  id);
        misses->misses[misses->calls] = miss;
    }
    misses->calls++;

    //  Registering again from the handler is what a node does
    if (lapse_register (misses->lapse, id, NULL, 0, NULL) == 0)
        misses->registered++;
}

static void
flush_reports_evicted_apart_from_unknown (void **state)
{
    fake_registry_t *fake = s_fake_new ();
    s_fake_start (fake);
    lapse_t *lapse = lapse_new (fake->endpoint, "node-a");
    assert_non_null (lapse);
    misses_t misses = { .lapse = lapse };
    assert_int_equal (lapse_set_miss_handler (lapse, s_record_miss, &misses),
                      0);

    //  The batch fills on the third id, so lapse_touch flushes it and
    //  only the handler gets the ids it missed
    lapse_set_touch_batch (lapse, 3);
    assert_int_equal (lapse_touch (lapse, "evicted-1"), 0);
    assert_int_equal (lapse_touch (lapse, "client-1"), 0);
    assert_int_equal (lapse_touch (lapse, "unknown-1"), 0);
    assert_int_equal (misses.calls, 2);
    assert_string_equal (misses.ids[0], "unknown-1");
    assert_int_equal (misses.misses[0], LAPSE_MISS_UNKNOWN);
    assert_string_equal (misses.ids[1], "evicted-1");
    assert_int_equal (misses.misses[1], LAPSE_MISS_EVICTED);
    assert_int_equal (misses.registered, 2);

    uint32_t unknown = 99;
    uint32_t evicted = 99;
    assert_int_equal (lapse_touch (lapse, "evicted-2"), 0);
    assert_int_equal (lapse_flush_report (lapse, &unknown, &evicted), 0);
    assert_int_equal (unknown, 0);
    assert_int_equal (evicted, 1);
    assert_int_equal (misses.calls, 3);

    //  lapse_flush counts both, as it did before evicted ids existed
    assert_int_equal (lapse_set_miss_handler (lapse, NULL, NULL), 0);
    assert_int_equal (lapse_touch (lapse, "evicted-3"), 0);
    assert_int_equal (lapse_touch (lapse, "unknown-2"), 0);
    assert_int_equal (lapse_flush (lapse, &unknown), 0);
    assert_int_equal (unknown, 2);
    assert_int_equal (misses.calls, 3);
    lapse_destroy (&lapse);
    s_fake_destroy (&fake);
}

static void
register_sends_own_threshold (void **state)
{
    fake_registry_t *fake = s_fake_new ();
    s_fake_start (fake);
    lapse_t *lapse = lapse_new (fake->endpoint, "node-a");
    assert_non_null (lapse);

    assert_int_equal (lapse_register_stale_after (lapse, "client-1", NULL, 0,
                                                  120000, NULL),
                      0);
    pthread_mutex_lock (&fake->lock);
    assert_int_equal (fake->stale_after_ms, 120000);
    pthread_mutex_unlock (&fake->lock);

    assert_int_equal (lapse_register (lapse, "client-1", NULL, 0, NULL), 0);
    pthread_mutex_lock (&fake->lock);
    assert_int_equal (fake->stale_after_ms, 0);
    pthread_mutex_unlock (&fake->lock);

    assert_int_equal (lapse_register_stale_after (lapse, "client-1", NULL, 0,
                                                  -1, NULL),
                      -1);
    assert_int_equal (lapse_error_code (lapse), MSG_ERR_BAD_REQUEST);
    s_assert_contains (lapse_error (lapse), "stale_after_ms");
    lapse_destroy (&lapse);
    s_fake_destroy (&fake);
}

static void
touch_rejects_invalid_id (void **state)
{
    fake_registry_t *fake = s_fake_new ();
    s_fake_start (fake);
    lapse_t *lapse = lapse_new (fake->endpoint, "node-a");
    assert_non_null (lapse);
    lapse_set_touch_batch (lapse, 1);

    assert_int_equal (lapse_touch (lapse, "has space"), -1);
    assert_int_equal (lapse_error_code (lapse), MSG_ERR_BAD_REQUEST);
    s_assert_contains (lapse_error (lapse), "\"has space\"");
    assert_int_equal (lapse_touch (lapse, ""), -1);
    assert_int_equal (lapse_touch (lapse, NULL), -1);
    s_assert_contains (lapse_error (lapse), "null");
    assert_int_equal (lapse_deregister (lapse, "tab\there"), -1);
    s_assert_contains (lapse_error (lapse), "\"tab\\there\"");

    pthread_mutex_lock (&fake->lock);
    assert_int_equal (fake->requests, 0);
    pthread_mutex_unlock (&fake->lock);
    lapse_destroy (&lapse);
    s_fake_destroy (&fake);
}

static void
request_rejects_non_command (void **state)
{
    lapse_t *lapse = lapse_new ("inproc://test-client-unused", NULL);
    assert_non_null (lapse);
    msg_t request = { .type = MSG_EVENT };
    msg_t reply;

    assert_int_equal (lapse_request (lapse, &request, &reply), -1);
    assert_int_equal (lapse_error_code (lapse), MSG_ERR_BAD_REQUEST);
    s_assert_contains (lapse_error (lapse), "event");
    lapse_destroy (&lapse);
}

static void
absent_registry_times_out (void **state)
{
    char endpoint[64];
    s_endpoint (endpoint, sizeof endpoint, "absent");
    lapse_t *lapse = lapse_new (endpoint, "node-a");
    assert_non_null (lapse);
    lapse_set_timeout (lapse, 100);

    assert_int_equal (lapse_touch (lapse, "client-1"), 0);
    assert_int_equal (lapse_flush (lapse, NULL), -1);
    s_assert_contains (lapse_error (lapse), "timed out");

    /*  The batch stays queued, and destroy's last flush is bounded by
        the timeout.  */
    int64_t started = zclock_mono ();
    lapse_destroy (&lapse);
    assert_true (zclock_mono () - started < 2000);
}

/*  ---- lapse_sub_t ----  */

static void
sub_new_rejects_invalid_node (void **state)
{
    assert_null (lapse_sub_new ("inproc://a", "inproc://b", "bad node", 0));
    assert_null (lapse_sub_new ("inproc://a", NULL, NULL, 0));
    assert_null (lapse_sub_new ("inproc://a", "nowhere://b", NULL, 0));
}

static void
sub_delivers_live_events_once_in_order (void **state)
{
    fake_registry_t *fake = s_fake_new ();
    s_fake_start (fake);
    char events[64];
    zsock_t *publisher = s_publisher_new (events, sizeof events);
    lapse_sub_t *sub = lapse_sub_new (fake->endpoint, events, NULL, 0);
    assert_non_null (sub);
    s_wait_subscribed (publisher, "evicted.");
    s_pump_until_replayed (sub, fake, 1);

    /*  Out of order, duplicated, and without 4, which only a replay can
        supply.  */
    msg_event_t table[6];
    for (uint64_t seq = 1; seq <= 5; seq++)
        table[seq] = s_fake_add_event (fake, seq, 0, "node-a");
    s_publish (publisher, &table[2]);
    s_publish (publisher, &table[1]);
    s_publish (publisher, &table[1]);
    s_publish (publisher, &table[3]);
    s_publish (publisher, &table[2]);
    s_publish (publisher, &table[5]);

    uint64_t seqs[5];
    assert_int_equal (s_collect (sub, seqs, 5), 5);
    for (int index = 0; index < 5; index++)
        assert_int_equal (seqs[index], index + 1);
    s_publish (publisher, &table[5]);
    s_publish (publisher, &table[3]);
    s_assert_quiet (sub);
    assert_int_equal (lapse_sub_last_seq (sub), 5);

    lapse_sub_destroy (&sub);
    assert_null (sub);
    zsock_destroy (&publisher);
    s_fake_destroy (&fake);
}

static void
sub_delivers_live_without_replay (void **state)
{
    /*  No registry answers, so only the live stream can deliver.  */
    char commands[64];
    char events[64];
    s_endpoint (commands, sizeof commands, "absent");
    zsock_t *publisher = s_publisher_new (events, sizeof events);
    lapse_sub_t *sub = lapse_sub_new (commands, events, NULL, 10);
    assert_non_null (sub);
    s_wait_subscribed (publisher, "evicted.");

    fake_registry_t *table = s_fake_new ();
    for (uint64_t seq = 11; seq <= 13; seq++) {
        msg_event_t event = s_fake_add_event (table, seq, 0, "node-a");
        s_publish (publisher, &event);
    }

    uint64_t seqs[3];
    assert_int_equal (s_collect (sub, seqs, 3), 3);
    assert_int_equal (seqs[0], 11);
    assert_int_equal (seqs[1], 12);
    assert_int_equal (seqs[2], 13);

    lapse_sub_destroy (&sub);
    zsock_destroy (&publisher);
    s_fake_destroy (&table);
}

static void
sub_node_filter_drops_other_nodes (void **state)
{
    fake_registry_t *fake = s_fake_new ();
    s_fake_start (fake);
    char events[64];
    zsock_t *publisher = s_publisher_new (events, sizeof events);
    lapse_sub_t *sub = lapse_sub_new (fake->endpoint, events, "a", 0);
    assert_non_null (sub);
    s_wait_subscribed (publisher, "evicted.a");
    s_pump_until_replayed (sub, fake, 1);

    /*  "evicted.ab" matches the prefix "evicted.a", so the body decides.  */
    msg_event_t table[6];
    table[1] = s_fake_add_event (fake, 1, 0, "a");
    table[2] = s_fake_add_event (fake, 2, 0, "ab");
    table[3] = s_fake_add_event (fake, 3, 0, "b");
    table[4] = s_fake_add_event (fake, 4, 1, "a");
    table[5] = s_fake_add_event (fake, 5, 2, "ab");
    for (int seq = 1; seq <= 5; seq++)
        s_publish (publisher, &table[seq]);

    uint64_t seqs[2];
    assert_int_equal (s_collect (sub, seqs, 2), 2);
    assert_int_equal (seqs[0], 1);
    assert_int_equal (seqs[1], 4);
    s_assert_quiet (sub);

    lapse_sub_destroy (&sub);
    zsock_destroy (&publisher);
    s_fake_destroy (&fake);
}

static void
sub_node_filter_replays_missed_event (void **state)
{
    fake_registry_t *fake = s_fake_new ();
    s_fake_start (fake);
    char events[64];
    zsock_t *publisher = s_publisher_new (events, sizeof events);
    lapse_sub_t *sub = lapse_sub_new (fake->endpoint, events, "a", 0);
    assert_non_null (sub);
    s_wait_subscribed (publisher, "evicted.a");
    s_pump_until_replayed (sub, fake, 1);

    /*  Event 2 is never published; event 3's prev reveals it.  */
    msg_event_t first = s_fake_add_event (fake, 1, 0, "a");
    s_fake_add_event (fake, 2, 1, "a");
    msg_event_t third = s_fake_add_event (fake, 3, 2, "a");
    s_publish (publisher, &first);
    s_publish (publisher, &third);

    uint64_t seqs[3];
    assert_int_equal (s_collect (sub, seqs, 3), 3);
    assert_int_equal (seqs[0], 1);
    assert_int_equal (seqs[1], 2);
    assert_int_equal (seqs[2], 3);

    lapse_sub_destroy (&sub);
    zsock_destroy (&publisher);
    s_fake_destroy (&fake);
}

static void
sub_reports_gap_beyond_retention (void **state)
{
    fake_registry_t *fake = s_fake_new ();
    for (uint64_t seq = 10; seq <= 12; seq++)
        s_fake_add_event (fake, seq, 0, "node-a");
    s_fake_start (fake);
    char events[64];
    zsock_t *publisher = s_publisher_new (events, sizeof events);
    lapse_sub_t *sub = lapse_sub_new (fake->endpoint, events, NULL, 5);
    assert_non_null (sub);
    msg_event_t event;
    uint64_t first = 0;
    uint64_t last = 0;

    int64_t deadline = zclock_mono () + WAIT_MS;
    int rc = 0;
    while (rc == 0 && zclock_mono () < deadline)
        rc = lapse_sub_next (sub, &event, 50);
    assert_int_equal (rc, 2);
    assert_true (lapse_sub_gap (sub, &first, &last));
    assert_int_equal (first, 6);
    assert_int_equal (last, 9);
    assert_int_equal (lapse_sub_last_seq (sub), 9);

    uint64_t seqs[3];
    assert_int_equal (s_collect (sub, seqs, 3), 3);
    assert_false (lapse_sub_gap (sub, &first, &last));
    assert_int_equal (seqs[0], 10);
    assert_int_equal (seqs[2], 12);
    s_assert_quiet (sub);

    lapse_sub_destroy (&sub);
    zsock_destroy (&publisher);
    s_fake_destroy (&fake);
}

static void
sub_node_gap_uses_prev (void **state)
{
    /*  Retention dropped 1 to 9, but event 10's prev (3) is at or below
        since, so node "a" lost nothing.  Event 12 follows from 10.  */
    fake_registry_t *fake = s_fake_new ();
    s_fake_add_event (fake, 10, 3, "a");
    s_fake_add_event (fake, 11, 0, "b");
    s_fake_add_event (fake, 12, 10, "a");
    s_fake_start (fake);
    char events[64];
    zsock_t *publisher = s_publisher_new (events, sizeof events);
    lapse_sub_t *sub = lapse_sub_new (fake->endpoint, events, "a", 5);
    assert_non_null (sub);

    uint64_t seqs[2];
    assert_int_equal (s_collect (sub, seqs, 2), 2);
    assert_int_equal (seqs[0], 10);
    assert_int_equal (seqs[1], 12);

    lapse_sub_destroy (&sub);
    zsock_destroy (&publisher);
    s_fake_destroy (&fake);
}

static void
sub_pages_until_caught_up (void **state)
{
    fake_registry_t *fake = s_fake_new ();
    for (uint64_t seq = 1; seq <= 2500; seq++)
        s_fake_add_event (fake, seq, 0, "node-a");
    s_fake_start (fake);
    char events[64];
    zsock_t *publisher = s_publisher_new (events, sizeof events);
    lapse_sub_t *sub = lapse_sub_new (fake->endpoint, events, NULL, 0);
    assert_non_null (sub);
    static uint64_t seqs[2500];

    assert_int_equal (s_collect (sub, seqs, 2500), 2500);
    for (int index = 0; index < 2500; index++)
        assert_int_equal (seqs[index], index + 1);

    pthread_mutex_lock (&fake->lock);
    assert_true (fake->events_requests >= 3);
    assert_int_equal (fake->events_since[0], 0);
    assert_int_equal (fake->events_since[1], MSG_PAGE_MAX);
    assert_int_equal (fake->events_since[2], 2 * MSG_PAGE_MAX);
    pthread_mutex_unlock (&fake->lock);

    lapse_sub_destroy (&sub);
    zsock_destroy (&publisher);
    s_fake_destroy (&fake);
}

static void
sub_replays_when_idle (void **state)
{
    fake_registry_t *fake = s_fake_new ();
    s_fake_start (fake);
    char events[64];
    zsock_t *publisher = s_publisher_new (events, sizeof events);
    lapse_sub_t *sub = lapse_sub_new (fake->endpoint, events, NULL, 0);
    assert_non_null (sub);
    lapse_sub_set_replay_interval (sub, 200);
    s_pump_until_replayed (sub, fake, 1);

    /*  An event lost at the tail of the live stream: never published,
        and no later event reveals it.  */
    s_fake_add_event (fake, 1, 0, "node-a");
    uint64_t seqs[1];
    assert_int_equal (s_collect (sub, seqs, 1), 1);
    assert_int_equal (seqs[0], 1);

    lapse_sub_destroy (&sub);
    zsock_destroy (&publisher);
    s_fake_destroy (&fake);
}

static void
sub_stops_when_registry_seq_goes_backwards (void **state)
{
    fake_registry_t *fake = s_fake_new ();
    for (uint64_t seq = 1; seq <= 5; seq++)
        s_fake_add_event (fake, seq, 0, "node-a");
    s_fake_start (fake);
    char events[64];
    zsock_t *publisher = s_publisher_new (events, sizeof events);
    lapse_sub_t *sub = lapse_sub_new (fake->endpoint, events, NULL, 5);
    assert_non_null (sub);
    lapse_sub_set_replay_interval (sub, 200);
    s_wait_subscribed (publisher, "evicted.");
    s_pump_until_replayed (sub, fake, 1);

    /*  The registry's store is replaced, and its new log numbers two
        other events 1 and 2.  They are published again and again, so
        that the live stream never goes quiet: seqs already delivered
        must not put off the replay that finds out.  */
    pthread_mutex_lock (&fake->lock);
    fake->events_count = 0;
    pthread_mutex_unlock (&fake->lock);
    msg_event_t one = s_fake_add_event (fake, 1, 0, "node-b");
    msg_event_t two = s_fake_add_event (fake, 2, 0, "node-b");

    msg_event_t event;
    int rc = 0;
    int64_t deadline = zclock_mono () + WAIT_MS;
    while (rc == 0 && zclock_mono () < deadline) {
        s_publish (publisher, &one);
        s_publish (publisher, &two);
        rc = lapse_sub_next (sub, &event, 50);
    }
    assert_int_equal (rc, -1);
    uint64_t registry_seq = 0;
    uint64_t reached = 0;
    assert_true (lapse_sub_backwards (sub, &registry_seq, &reached));
    assert_int_equal (registry_seq, 2);
    assert_int_equal (reached, 5);
    s_assert_contains (lapse_sub_error (sub), "event sequence went "
                       "backwards");

    /*  The new log's events past 5 would pass for the old log's: none
        is delivered, and every call fails at once.  */
    for (uint64_t seq = 3; seq <= 7; seq++) {
        msg_event_t later = s_fake_add_event (fake, seq, 0, "node-b");
        s_publish (publisher, &later);
    }
    for (int call = 0; call < 5; call++)
        assert_int_equal (lapse_sub_next (sub, &event, 50), -1);
    assert_int_equal (lapse_sub_last_seq (sub), 5);

    lapse_sub_destroy (&sub);
    zsock_destroy (&publisher);
    s_fake_destroy (&fake);
}

static void
sub_returns_on_time_without_registry (void **state)
{
    char commands[64];
    char events[64];
    s_endpoint (commands, sizeof commands, "absent");
    s_endpoint (events, sizeof events, "absent");
    lapse_sub_t *sub = lapse_sub_new (commands, events, NULL, 0);
    assert_non_null (sub);
    msg_event_t event;

    for (int call = 0; call < 3; call++) {
        int64_t started = zclock_mono ();
        assert_int_equal (lapse_sub_next (sub, &event, 100), 0);
        int64_t elapsed = zclock_mono () - started;
        assert_true (elapsed >= 90);
        assert_true (elapsed < 1000);
    }

    /*  The replay times out after LAPSE_DEFAULT_TIMEOUT_MS.  The call
        during which it times out fails and names it, and later calls go
        on.  */
    int64_t deadline = zclock_mono () + LAPSE_DEFAULT_TIMEOUT_MS + WAIT_MS;
    int rc = 0;
    while (rc == 0 && zclock_mono () < deadline)
        rc = lapse_sub_next (sub, &event, 200);
    assert_int_equal (rc, -1);
    s_assert_contains (lapse_sub_error (sub), "timed out");
    assert_int_equal (lapse_sub_next (sub, &event, 100), 0);

    int64_t started = zclock_mono ();
    lapse_sub_destroy (&sub);
    assert_true (zclock_mono () - started < 1000);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (event_json_writes_all_fields),
        cmocka_unit_test (event_json_names_each_reason),
        cmocka_unit_test (event_json_escapes_strings),
        cmocka_unit_test (event_json_copies_counted_strings),
        cmocka_unit_test (event_json_rejects_small_buffer),
        cmocka_unit_test (new_rejects_invalid_node),
        cmocka_unit_test (register_returns_created),
        cmocka_unit_test (register_needs_node),
        cmocka_unit_test (error_reply_sets_code),
        cmocka_unit_test (timeout_discards_late_reply),
        cmocka_unit_test (touch_sends_one_message_per_batch),
        cmocka_unit_test (touch_rejects_invalid_id),
        cmocka_unit_test (flush_reports_evicted_apart_from_unknown),
        cmocka_unit_test (register_sends_own_threshold),
        cmocka_unit_test (request_rejects_non_command),
        cmocka_unit_test (absent_registry_times_out),
        cmocka_unit_test (sub_new_rejects_invalid_node),
        cmocka_unit_test (sub_delivers_live_events_once_in_order),
        cmocka_unit_test (sub_delivers_live_without_replay),
        cmocka_unit_test (sub_node_filter_drops_other_nodes),
        cmocka_unit_test (sub_node_filter_replays_missed_event),
        cmocka_unit_test (sub_reports_gap_beyond_retention),
        cmocka_unit_test (sub_node_gap_uses_prev),
        cmocka_unit_test (sub_pages_until_caught_up),
        cmocka_unit_test (sub_replays_when_idle),
        cmocka_unit_test (sub_returns_on_time_without_registry),
        cmocka_unit_test (sub_stops_when_registry_seq_goes_backwards),
    };

    zsys_init ();
    zsys_handler_set (NULL);
    return cmocka_run_group_tests (tests, NULL, NULL);
}
