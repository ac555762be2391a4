/*  A client registered with a short threshold of its own is evicted while
    clients on the long default stay.  With tombstones on, a late touch
    and a get of the evicted client report "evicted" rather than unknown,
    until registering it again revives it.  After a restart the client
    gets its whole threshold from the moment the registry serves again.
    With tombstones off a removed client is simply unknown.  */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "harness.h"

#define SHORT_MS 2000           /* the short client's own threshold */
#define SWEEP_DEADLINE_MS 10000
#define EVICT_DEADLINE_MS 20000

typedef struct {
    harness_t *harness;
    lapse_t *node;              /* node "node-a" */
} world_t;

static int
s_setup (void **state)
{
    world_t *world = calloc (1, sizeof (world_t));
    *state = world;
    if (!world)
        return -1;
    world->harness = harness_new ("own_threshold_tombstones");
    if (!world->harness)
        return -1;
    world->node = harness_client (world->harness, "node-a");
    return world->node ? 0 : -1;
}

static int
s_teardown (void **state)
{
    world_t *world = *state;
    lapse_destroy (&world->node);
    harness_destroy (&world->harness);
    free (world);
    return 0;
}

/*  Starts a registry whose default is far beyond the test, so that only
    clients with their own threshold can be evicted.  tombstones is the
    whole flag, because a bare boolean flag means true.  */
static proc_t *
s_start_registry (world_t *world, const char *tombstones)
{
    return harness_start_registry (world->harness, "registry", NULL,
                                   "--stale-after", "1h",
                                   "--client-stale-after-min", "1s",
                                   "--client-stale-after-max", "1h",
                                   tombstones, "--tick-min-gap", "0ms",
                                   NULL);
}

/*  Gets id and returns the error code of the reply, MSG_ERR_NONE on a
    result, whose threshold goes into *stale_after_ms (when not NULL).  */
static msg_error_code_t
s_get_code (world_t *world, const char *id, int64_t *stale_after_ms)
{
    msg_t request = { .type = MSG_GET };
    request.u.client_ref.id = msg_str (id);
    msg_t reply = { 0 };
    int rc = lapse_request (world->node, &request, &reply);
    if (rc == 0 && stale_after_ms)
        *stale_after_ms = reply.u.result.client.stale_after_ms;
    msg_release (&reply);
    return rc == 0 ? MSG_ERR_NONE : lapse_error_code (world->node);
}

/*  Runs one sweep and returns true once the registry counts an eviction.
    Each call sweeps, so assert_eventually keeps sweeping until the short
    client is past both its threshold and the start-up grace.  */
static bool
s_sweep_evicted (world_t *world)
{
    if (harness_sweep (world->harness, world->node, SWEEP_DEADLINE_MS) != 0)
        return false;
    return harness_stat (world->node, "evicted") >= 1;
}

/*  Touches "short", "long" and "nobody" in one request and checks that
    the reply sorts them into touched, evicted and unknown.  */
static void
s_check_late_touch (world_t *world, bool tombstones)
{
    msg_str_t ids[] = { msg_str ("short"), msg_str ("long"),
                        msg_str ("nobody") };
    msg_t request = { .type = MSG_TOUCH };
    request.u.touch.ids = ids;
    request.u.touch.count = 3;
    msg_t reply = { 0 };
    assert_int_equal (lapse_request (world->node, &request, &reply), 0);

    const msg_result_t *result = &reply.u.result;
    assert_int_equal (result->touched, 1);
    if (tombstones) {
        assert_int_equal (result->evicted_count, 1);
        assert_true (msg_str_eq (result->evicted[0], "short"));
        assert_int_equal (result->unknown_count, 1);
        assert_true (msg_str_eq (result->unknown[0], "nobody"));
    }
    else {
        assert_int_equal (result->evicted_count, 0);
        assert_int_equal (result->unknown_count, 2);
        assert_true (msg_str_eq (result->unknown[0], "short"));
    }
    msg_release (&reply);
}

/*  Registers "short" with its own threshold, "long" and "default" on the
    default, and checks the threshold's bounds and that get returns it.  */
static void
s_register_clients (world_t *world)
{
    assert_int_equal (lapse_register_stale_after (world->node, "short", NULL,
                                                  0, SHORT_MS, NULL),
                      0);
    assert_int_equal (lapse_register (world->node, "long", NULL, 0, NULL),
                      0);
    assert_int_equal (lapse_register (world->node, "default", NULL, 0, NULL),
                      0);

    assert_int_equal (lapse_register_stale_after (world->node, "tiny", NULL,
                                                  0, 500, NULL),
                      -1);
    assert_int_equal (lapse_error_code (world->node), MSG_ERR_BAD_REQUEST);
    const char *error = lapse_error (world->node);
    assert_non_null (strstr (error, "\"stale_after_ms\": 500 is outside"));
    assert_non_null (strstr (error, "range 1000 to 3600000 ms"));

    int64_t stale_after_ms = -1;
    assert_int_equal (s_get_code (world, "short", &stale_after_ms),
                      MSG_ERR_NONE);
    assert_int_equal (stale_after_ms, SHORT_MS);
    assert_int_equal (s_get_code (world, "long", &stale_after_ms),
                      MSG_ERR_NONE);
    assert_int_equal (stale_after_ms, 0);
}

/*  Checks lapsectl's view of the evicted client: get fails with the
    evicted code naming the reason, and tombstones lists it.  */
static void
s_check_lapsectl (world_t *world)
{
    proc_t *ctl = NULL;
    assert_int_equal (harness_lapsectl (world->harness, &ctl, "get", "short",
                                        NULL),
                      1);
    assert_true (proc_log_contains (ctl, "evicted: client \"short\" was "
                                         "removed at"));
    assert_true (proc_log_contains (ctl, "reason stale"));

    assert_int_equal (harness_lapsectl (world->harness, &ctl, "tombstones",
                                        "--json", NULL),
                      0);
    assert_int_equal (harness_file_count (ctl->out_path,
                                          "\"id\":\"short\",\"node\":"
                                          "\"node-a\",\"reason\":\"stale\""),
                      1);
    assert_int_equal (harness_file_count (ctl->out_path, "\"id\""), 1);
}

static void
own_threshold_evicts_alone_then_tombstone (void **state)
{
    world_t *world = *state;
    assert_non_null (s_start_registry (world, "--tombstones=on"));
    int64_t registered_at = harness_now_ms ();
    s_register_clients (world);

    //  "long" is touched now and then, "default" never: the default of
    //  1 h keeps both
    assert_eventually (lapse_touch (world->node, "long") == 0
                           && lapse_flush (world->node, NULL) == 0
                           && s_sweep_evicted (world),
                       EVICT_DEADLINE_MS);
    assert_true (harness_now_ms () - registered_at >= SHORT_MS);
    assert_int_equal (harness_stat (world->node, "evicted"), 1);
    assert_int_equal (s_get_code (world, "short", NULL), MSG_ERR_EVICTED);
    assert_int_equal (s_get_code (world, "long", NULL), MSG_ERR_NONE);
    assert_int_equal (s_get_code (world, "default", NULL), MSG_ERR_NONE);

    harness_event_t *events = NULL;
    assert_int_equal (harness_events (world->node, 0, &events), 1);
    assert_string_equal (events[0].id, "short");
    assert_int_equal (events[0].reason, MSG_REASON_STALE);
    harness_events_free (&events);

    s_check_late_touch (world, true);
    assert_int_equal (harness_stat (world->node, "touches_evicted"), 1);
    s_check_lapsectl (world);

    //  Registering it again revives it and drops the tombstone
    bool created = false;
    assert_int_equal (lapse_register (world->node, "short", NULL, 0,
                                      &created),
                      0);
    assert_true (created);
    assert_int_equal (s_get_code (world, "short", NULL), MSG_ERR_NONE);
    proc_t *ctl = NULL;
    assert_int_equal (harness_lapsectl (world->harness, &ctl, "tombstones",
                                        "--json", NULL),
                      0);
    assert_int_equal (harness_file_count (ctl->out_path, "\"id\""), 0);
}

/*  After a restart a client with its own threshold T gets T from the
    moment the registry serves again, even when its stored activity is
    older than T, because the touches of the downtime were never seen.  */
static void
restart_gives_own_threshold_from_serving (void **state)
{
    world_t *world = *state;
    proc_t *registry = s_start_registry (world, "--tombstones=on");
    assert_non_null (registry);
    assert_int_equal (lapse_register_stale_after (world->node, "short", NULL,
                                                  0, SHORT_MS, NULL),
                      0);
    assert_int_equal (proc_stop (registry, HARNESS_STOP_MS), 0);
    harness_sleep_ms (SHORT_MS + 500);

    int64_t restarted_at = harness_now_ms ();
    registry = s_start_registry (world, "--tombstones=on");
    assert_non_null (registry);
    assert_int_equal (harness_sweep (world->harness, world->node,
                                     SWEEP_DEADLINE_MS),
                      0);
    assert_int_equal (s_get_code (world, "short", NULL), MSG_ERR_NONE);

    assert_eventually (s_sweep_evicted (world), EVICT_DEADLINE_MS);
    assert_true (harness_now_ms () - restarted_at >= SHORT_MS);
    assert_int_equal (s_get_code (world, "short", NULL), MSG_ERR_EVICTED);
}

static void
removed_client_unknown_without_tombstones (void **state)
{
    world_t *world = *state;
    assert_non_null (s_start_registry (world, "--tombstones=off"));
    s_register_clients (world);
    assert_int_equal (harness_lapsectl (world->harness, NULL, "evict",
                                        "short", NULL),
                      0);

    s_check_late_touch (world, false);
    assert_int_equal (s_get_code (world, "short", NULL),
                      MSG_ERR_UNKNOWN_CLIENT);

    proc_t *ctl = NULL;
    assert_int_equal (harness_lapsectl (world->harness, &ctl, "tombstones",
                                        NULL),
                      1);
    assert_true (proc_log_contains (ctl, "tombstones are off"));
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown (
            own_threshold_evicts_alone_then_tombstone, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (
            restart_gives_own_threshold_from_serving, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (
            removed_client_unknown_without_tombstones, s_setup, s_teardown),
    };
    return harness_finish (cmocka_run_group_tests (tests, NULL, NULL));
}
