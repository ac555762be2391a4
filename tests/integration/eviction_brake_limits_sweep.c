/*  The eviction brake with real processes.  A lapse-node-sim serves 200
    clients and leaves half of them silent.  Each sweep then evicts at
    most 20 % of the clients, the brake lets go by itself once the stale
    share is under the limit, and lapsectl lifts it for the next sweep.
    A registry with fewer than brake-min-clients clients is exempt.  No
    busy client is ever evicted.  */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "harness.h"

#define NODE "api-1"
#define SWEEP_DEADLINE_MS 15000
#define STALE_DEADLINE_MS 20000

typedef struct {
    harness_t *harness;
    proc_t *registry;
    proc_t *node;
    lapse_t *operator;
} world_t;

static int
s_setup (void **state)
{
    world_t *world = calloc (1, sizeof (world_t));
    *state = world;
    if (!world)
        return -1;
    world->harness = harness_new ("eviction_brake");
    return world->harness ? 0 : -1;
}

static int
s_teardown (void **state)
{
    world_t *world = *state;
    lapse_destroy (&world->operator);
    harness_destroy (&world->harness);
    free (world);
    return 0;
}

/*  Starts the registry with the brake at its defaults (on, 20 %, 100
    clients) and a node-sim with clients of which silent percent are
    never touched, and waits until every client is registered.  */
static void
s_start (world_t *world, int clients, int silent)
{
    harness_t *harness = world->harness;
    world->registry = harness_start_registry (
        harness, "registry", NULL, "--stale-after", "3s", "--tick-min-gap",
        "0ms", NULL);
    assert_non_null (world->registry);
    world->operator = harness_client (harness, NULL);
    assert_non_null (world->operator);

    char count[16], share[16];
    snprintf (count, sizeof (count), "%d", clients);
    snprintf (share, sizeof (share), "%d", silent);
    world->node = harness_spawnl (
        harness, "node", LAPSE_NODE_SIM_BIN, NULL, "--commands",
        harness->commands, "--events", harness->events, "--node", NODE,
        "--clients", count, "--silent", share, "--touch-period", "500ms",
        NULL);
    assert_non_null (world->node);
    assert_eventually (proc_log_contains (world->node,
                                          "msg=\"population registered\""),
                       10000);
    assert_int_equal (harness_stat (world->operator, "clients"),
                      (uint64_t) clients);
}

/*  Returns how many clients a sweep would find stale now, or
    UINT64_MAX when the dry run failed.  */
static uint64_t
s_dry_run_stale (world_t *world)
{
    msg_t request = { .type = MSG_SWEEP };
    request.u.sweep.dry_run = true;
    msg_t reply = { 0 };
    uint64_t stale = UINT64_MAX;
    if (lapse_request (world->operator, &request, &reply) == 0)
        stale = reply.u.result.stale;
    msg_release (&reply);
    return stale;
}

/*  Waits until the grace is over and every silent client is stale.  */
static void
s_wait_stale (world_t *world, uint64_t silent)
{
    assert_int_equal (harness_wait_past_grace (world->operator,
                                               STALE_DEADLINE_MS),
                      0);
    assert_eventually (s_dry_run_stale (world) == silent, STALE_DEADLINE_MS);
}

static void
s_sweep (world_t *world)
{
    assert_int_equal (harness_sweep (world->harness, world->operator,
                                     SWEEP_DEADLINE_MS),
                      0);
}

/*  Checks that every event is a stale removal of a silent client: the
    node-sim touches clients 1 to busy.  */
static void
s_check_only_silent_evicted (world_t *world, int busy, int expected)
{
    harness_event_t *events = NULL;
    int count = harness_events (world->operator, 0, &events);
    assert_int_equal (count, expected);
    for (int index = 0; index < count; index++) {
        int number = 0;
        assert_int_equal (sscanf (events[index].id, NODE "-c%d", &number),
                          1);
        if (number <= busy)
            print_error ("busy client %s was evicted\n", events[index].id);
        assert_true (number > busy);
        assert_int_equal (events[index].reason, MSG_REASON_STALE);
    }
    harness_events_free (&events);
    assert_false (proc_log_contains (world->node, "busy client evicted"));
}

static void
s_lapsectl_output (world_t *world, char *output, size_t size,
                   const char *arg1, const char *arg2, const char *arg3,
                   const char *arg4)
{
    proc_t *proc = NULL;
    int rc = harness_lapsectl (world->harness, &proc, arg1, arg2, arg3, arg4,
                               NULL);
    assert_int_equal (rc, 0);
    char *text = harness_read_file (proc->out_path, NULL);
    assert_non_null (text);
    snprintf (output, size, "%s", text);
    free (text);
}

static void
s_assert_contains (const char *text, const char *fragment)
{
    if (!strstr (text, fragment))
        print_error ("expected \"%s\" in:\n%s\n", fragment, text);
    assert_non_null (strstr (text, fragment));
}

static void
brake_caps_sweep_and_lapsectl_releases (void **state)
{
    world_t *world = *state;
    s_start (world, 200, 50);
    s_wait_stale (world, 100);

    s_sweep (world);
    assert_int_equal (harness_stat (world->operator, "evicted"), 40);
    assert_int_equal (harness_stat (world->operator, "brake_engaged"), 1);
    assert_int_equal (harness_stat (world->operator, "brake_held_back"), 60);
    assert_true (proc_log_contains (world->registry,
                                    "msg=\"eviction brake engaged\""));
    assert_true (proc_log_contains (world->registry,
                                    "stale=100 clients=200 limit=40"));

    //  The next sweep decides again from 160 clients, 60 of them stale
    s_sweep (world);
    assert_int_equal (harness_stat (world->operator, "evicted"), 72);
    assert_int_equal (harness_stat (world->operator, "brake_held_back"), 28);

    char output[2048];
    s_lapsectl_output (world, output, sizeof (output), "brake", "status",
                       "--json", NULL);
    s_assert_contains (output, "\"engaged\":true");
    s_assert_contains (output, "\"clients\":160,\"stale\":60,\"limit\":32,"
                               "\"held_back\":28");

    s_lapsectl_output (world, output, sizeof (output), "brake", "release",
                       NULL, NULL);
    s_assert_contains (output, "released: for the next sweep");
    s_sweep (world);
    assert_int_equal (harness_stat (world->operator, "evicted"), 100);
    assert_int_equal (harness_stat (world->operator, "clients"), 100);
    assert_int_equal (harness_stat (world->operator, "brake_engaged"), 0);
    assert_int_equal (harness_stat (world->operator, "brake_releases"), 1);
    assert_true (proc_log_contains (
        world->registry, "msg=\"eviction brake released by operator\""));

    //  A timed release is reported with the time left
    s_lapsectl_output (world, output, sizeof (output), "brake", "release",
                       "--for", "10m");
    s_assert_contains (output, "released: for 600 s more");

    s_check_only_silent_evicted (world, 100, 100);
}

static void
brake_lets_go_when_share_falls (void **state)
{
    world_t *world = *state;
    s_start (world, 200, 50);
    s_wait_stale (world, 100);

    //  200 clients, 100 stale: 40, then 32 of 160, then 25 of 128
    static const uint64_t evicted[] = { 40, 72, 97 };
    for (size_t sweep = 0; sweep < 3; sweep++) {
        s_sweep (world);
        assert_int_equal (harness_stat (world->operator, "evicted"),
                          evicted[sweep]);
        assert_int_equal (harness_stat (world->operator, "brake_engaged"),
                          1);
    }

    //  3 stale of 103 is under 20 %, so the brake lets go by itself
    s_sweep (world);
    assert_int_equal (harness_stat (world->operator, "evicted"), 100);
    assert_int_equal (harness_stat (world->operator, "brake_engaged"), 0);
    assert_int_equal (harness_stat (world->operator, "brake_held_back"), 0);
    assert_int_equal (harness_stat (world->operator, "brake_sweeps"), 3);
    assert_true (proc_log_contains (world->registry,
                                    "msg=\"eviction brake cleared\""));
    s_check_only_silent_evicted (world, 100, 100);
}

static void
brake_exempts_small_registry (void **state)
{
    world_t *world = *state;
    s_start (world, 50, 50);
    s_wait_stale (world, 25);

    s_sweep (world);
    assert_int_equal (harness_stat (world->operator, "evicted"), 25);
    assert_int_equal (harness_stat (world->operator, "brake_engaged"), 0);
    assert_int_equal (harness_stat (world->operator, "brake_sweeps"), 0);
    assert_false (proc_log_contains (world->registry,
                                     "msg=\"eviction brake engaged\""));
    s_check_only_silent_evicted (world, 25, 25);
}

#define TEST(function) \
    cmocka_unit_test_setup_teardown (function, s_setup, s_teardown)

int
main (void)
{
    const struct CMUnitTest tests[] = {
        TEST (brake_caps_sweep_and_lapsectl_releases),
        TEST (brake_lets_go_when_share_falls),
        TEST (brake_exempts_small_registry),
    };
    int failed = cmocka_run_group_tests_name ("eviction_brake", tests, NULL,
                                              NULL);
    return harness_finish (failed);
}
