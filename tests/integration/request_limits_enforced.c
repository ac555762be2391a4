/*  The registry's configurable request limits.  A registry started with
    lowered limits serves requests at each limit, rejects each one past
    it with limit_exceeded naming the setting, lets libzmq drop an
    oversized message, and goes on serving.  */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "harness.h"

typedef struct {
    harness_t *harness;
    proc_t *registry;
    lapse_t *client;
} world_t;

static int
s_setup (void **state)
{
    world_t *world = calloc (1, sizeof (world_t));
    *state = world;
    if (!world)
        return -1;

    world->harness = harness_new ("request_limits");
    if (!world->harness)
        return -1;
    world->registry = harness_start_registry (
        world->harness, "registry", NULL, "--max-touch-ids", "3",
        "--max-id-length", "10", "--max-meta-size", "4", "--max-page-size",
        "5", "--max-message-size", "4096", NULL);
    if (!world->registry)
        return -1;
    world->client = harness_client (world->harness, "node-a");
    return world->client ? 0 : -1;
}

static int
s_teardown (void **state)
{
    world_t *world = *state;
    lapse_destroy (&world->client);
    harness_destroy (&world->harness);
    free (world);
    return 0;
}

/*  Sends request and checks that it fails with limit_exceeded and a
    message naming setting.  */
static void
s_assert_rejected (lapse_t *client, msg_t *request, const char *setting)
{
    msg_t reply = { 0 };
    int rc = lapse_request (client, request, &reply);
    msg_release (&reply);

    assert_int_equal (rc, -1);
    assert_int_equal (lapse_error_code (client), MSG_ERR_LIMIT_EXCEEDED);
    assert_non_null (strstr (lapse_error (client), setting));
}

static void
s_assert_served (lapse_t *client, msg_t *request)
{
    msg_t reply = { 0 };
    int rc = lapse_request (client, request, &reply);
    if (rc != 0)
        print_error ("request failed: %s\n", lapse_error (client));
    assert_int_equal (rc, 0);
    assert_int_equal (reply.type, MSG_RESULT);
    msg_release (&reply);
}

static void
limits_reject_touch_over_ids (void **state)
{
    world_t *world = *state;
    msg_str_t ids[4] = { msg_str ("a"), msg_str ("b"), msg_str ("c"),
                         msg_str ("d") };
    msg_t request = { .type = MSG_TOUCH };
    request.u.touch.ids = ids;

    request.u.touch.count = 3;
    s_assert_served (world->client, &request);

    request.u.touch.count = 4;
    s_assert_rejected (world->client, &request, "max-touch-ids");
}

static void
limits_reject_long_id (void **state)
{
    world_t *world = *state;
    msg_t request = { .type = MSG_REGISTER };
    request.u.register_.node = msg_str ("node-a");

    request.u.register_.id = msg_str ("abcdefghij");
    s_assert_served (world->client, &request);

    request.u.register_.id = msg_str ("abcdefghijk");
    s_assert_rejected (world->client, &request, "max-id-length");

    msg_str_t ids[1] = { msg_str ("abcdefghijk") };
    msg_t touch = { .type = MSG_TOUCH };
    touch.u.touch.ids = ids;
    touch.u.touch.count = 1;
    s_assert_rejected (world->client, &touch, "max-id-length");
}

static void
limits_reject_large_meta (void **state)
{
    world_t *world = *state;
    msg_t request = { .type = MSG_REGISTER };
    request.u.register_.id = msg_str ("m1");
    request.u.register_.node = msg_str ("node-a");

    request.u.register_.meta = msg_str ("1234");
    s_assert_served (world->client, &request);

    request.u.register_.meta = msg_str ("12345");
    s_assert_rejected (world->client, &request, "max-meta-size");
}

static void
limits_reject_large_pages (void **state)
{
    world_t *world = *state;
    msg_t list = { .type = MSG_LIST };
    list.u.list.limit = 5;
    s_assert_served (world->client, &list);
    list.u.list.limit = 6;
    s_assert_rejected (world->client, &list, "max-page-size");

    msg_t events = { .type = MSG_EVENTS };
    events.u.events.limit = 5;
    s_assert_served (world->client, &events);
    events.u.events.limit = 6;
    s_assert_rejected (world->client, &events, "max-page-size");
}

static void
limits_drop_oversized_message (void **state)
{
    world_t *world = *state;
    zsock_t *raw = zsock_new_dealer (world->harness->commands);
    assert_non_null (raw);
    zsock_set_rcvtimeo (raw, 1000);

    //  libzmq closes the connection on a message over the socket's
    //  ZMQ_MAXMSGSIZE, so no reply comes back to this peer
    size_t size = 8192;
    char *body = calloc (1, size);
    assert_non_null (body);
    zmsg_t *out = zmsg_new ();
    zmsg_addmem (out, "", 0);
    zmsg_addmem (out, body, size);
    free (body);
    assert_int_equal (zmsg_send (&out, raw), 0);

    zmsg_t *reply = zmsg_recv (raw);
    assert_null (reply);
    zsock_destroy (&raw);

    msg_t stats = { .type = MSG_STATS };
    s_assert_served (world->client, &stats);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown (limits_reject_touch_over_ids,
                                         s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (limits_reject_long_id, s_setup,
                                         s_teardown),
        cmocka_unit_test_setup_teardown (limits_reject_large_meta, s_setup,
                                         s_teardown),
        cmocka_unit_test_setup_teardown (limits_reject_large_pages, s_setup,
                                         s_teardown),
        cmocka_unit_test_setup_teardown (limits_drop_oversized_message,
                                         s_setup, s_teardown),
    };
    return harness_finish (cmocka_run_group_tests (tests, NULL, NULL));
}
