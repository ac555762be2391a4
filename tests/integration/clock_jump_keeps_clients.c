/*  The registry under a stepped wall clock.  The registry runs with
    libfaketime preloaded (LAPSE_FAKETIME_LIB, from the faketime
    package), whose offset the test rewrites in FAKETIME_TIMESTAMP_FILE
    while a lapse-node-sim touches its clients.  FAKETIME_DONT_FAKE_
    MONOTONIC keeps the monotonic clock real, so only the wall clock
    steps.  A forward jump of hours evicts no client that was active
    before it.  A backward jump of hours still evicts the silent clients
    about stale-after of real time after their last activity.  */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "harness.h"

#define NODE "api-1"
#define CLIENTS 40
#define BUSY 20                 /* node-sim touches clients 1 to BUSY */
#define STALE_AFTER_MS 5000
#define JUMP "2h"
#define JUMP_MS (2 * 3600 * 1000LL)
#define SWEEP_DEADLINE_MS 15000

/*  The test sweeps every SWEEP_PERIOD_MS.  The population's activity
    is a little older than the moment the test detects the registration,
    so a
    right eviction may come somewhat before that moment plus
    stale-after, and on a loaded machine a sweep may start late.  A
    false eviction caused by a jump would come at once.  */
#define SWEEP_PERIOD_MS 250
#define EARLY_SLACK_MS 1000
#define LATE_SLACK_MS 4000

#define FAKETIME_FILE "faketime.rc"

typedef struct {
    harness_t *harness;
    proc_t *registry;
    proc_t *node;
    lapse_t *operator;
    int64_t registered_ms;      /* monotonic, when the population was */
} world_t;

static int
s_setup (void **state)
{
    world_t *world = calloc (1, sizeof (world_t));
    *state = world;
    if (!world)
        return -1;
    world->harness = harness_new ("clock_jump");
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

/*  Sets the offset of the registry's wall clock, for example "+2h".  */
static void
s_clock_set (world_t *world, const char *offset)
{
    char line[32];
    snprintf (line, sizeof (line), "%s\n", offset);
    assert_int_equal (harness_write_file (world->harness, FAKETIME_FILE,
                                          line),
                      0);
}

/*  A registry built with AddressSanitizer refuses to start when another
    library is preloaded before the sanitizer's runtime, unless its
    options turn that check off.  The spawned programs inherit the test's
    environment, so the option goes there.  */
static void
s_allow_preload_under_asan (void)
{
    const char *option = "verify_asan_link_order=0";
    const char *options = getenv ("ASAN_OPTIONS");
    if (options && strstr (options, option))
        return;

    char value[1024];
    if (options && *options)
        snprintf (value, sizeof (value), "%s:%s", options, option);
    else
        snprintf (value, sizeof (value), "%s", option);
    assert_int_equal (setenv ("ASAN_OPTIONS", value, 1), 0);
}

/*  Starts the registry under faketime at offset 0 and waits past its
    start-up grace, so that a sweep may evict from then on.  */
static void
s_start_registry (world_t *world)
{
    harness_t *harness = world->harness;
    s_clock_set (world, "+0");
    s_allow_preload_under_asan ();

    char file[HARNESS_FILE_MAX];
    char preload[HARNESS_FILE_MAX + 16];
    char timestamp_file[HARNESS_FILE_MAX + 32];
    harness_path (harness, FAKETIME_FILE, file, sizeof (file));
    snprintf (preload, sizeof (preload), "LD_PRELOAD=%s", LAPSE_FAKETIME_LIB);
    snprintf (timestamp_file, sizeof (timestamp_file),
              "FAKETIME_TIMESTAMP_FILE=%s", file);
    const char *env[] = {
        preload, timestamp_file, "FAKETIME_NO_CACHE=1",
        "FAKETIME_DONT_FAKE_MONOTONIC=1", NULL
    };

    char stale_after[16];
    snprintf (stale_after, sizeof (stale_after), "%dms", STALE_AFTER_MS);
    world->registry = harness_start_registry (
        harness, "registry", env, "--stale-after", stale_after,
        "--tick-min-gap", "0ms", NULL);
    assert_non_null (world->registry);
    world->operator = harness_client (harness, NULL);
    assert_non_null (world->operator);
    assert_int_equal (harness_wait_past_grace (world->operator,
                                               STALE_AFTER_MS + 10000),
                      0);
}

/*  Starts a node-sim whose clients BUSY + 1 to CLIENTS stay silent from
    their registration on, and notes when they were registered.  */
static void
s_start_node (world_t *world)
{
    harness_t *harness = world->harness;
    char clients[16];
    snprintf (clients, sizeof (clients), "%d", CLIENTS);
    world->node = harness_spawnl (
        harness, "node", LAPSE_NODE_SIM_BIN, NULL, "--commands",
        harness->commands, "--events", harness->events, "--node", NODE,
        "--clients", clients, "--silent", "50", "--touch-period", "500ms",
        NULL);
    assert_non_null (world->node);
    assert_eventually (proc_log_contains (world->node,
                                          "msg=\"population registered\""),
                       10000);
    world->registered_ms = harness_now_ms ();
    assert_int_equal (harness_stat (world->operator, "clients"), CLIENTS);
}

static void
s_sweep (world_t *world)
{
    assert_int_equal (harness_sweep (world->harness, world->operator,
                                     SWEEP_DEADLINE_MS),
                      0);
}

/*  Sweeps every SWEEP_PERIOD_MS until the silent clients are gone.
    Fails when a sweep evicts anything before the silent clients had
    been silent for about stale-after, or when they are not gone
    LATE_SLACK_MS after that.  */
static void
s_sweep_until_silent_evicted (world_t *world)
{
    int64_t due = world->registered_ms + STALE_AFTER_MS;
    for (;;) {
        int64_t started = harness_now_ms ();
        s_sweep (world);
        uint64_t evicted = harness_stat (world->operator, "evicted");
        if (evicted == CLIENTS - BUSY)
            return;
        if (evicted != 0 && started < due - EARLY_SLACK_MS) {
            print_error ("%llu clients evicted %lld ms before due\n",
                         (unsigned long long) evicted,
                         (long long) (due - started));
            fail ();
        }
        assert_true (harness_now_ms () < due + LATE_SLACK_MS);
        harness_sleep_ms (SWEEP_PERIOD_MS);
    }
}

/*  Checks the registry's jump line: one jump of about expected_ms.  */
static void
s_check_jump_logged (world_t *world, int64_t expected_ms)
{
    char line[1024];
    assert_int_equal (proc_log_line (world->registry,
                                     "msg=\"wall clock jumped\"", line,
                                     sizeof (line)),
                      0);
    long long wall_delta = 0, mono_delta = 0, jump = 0;
    char *fields = strstr (line, "wall_delta_ms=");
    assert_non_null (fields);
    assert_int_equal (sscanf (fields,
                              "wall_delta_ms=%lld mono_delta_ms=%lld"
                              " jump_ms=%lld",
                              &wall_delta, &mono_delta, &jump),
                      3);
    if (llabs (jump - expected_ms) > 1000)
        print_error ("jump_ms %lld, expected about %lld\n", jump,
                     (long long) expected_ms);
    assert_true (llabs (jump - expected_ms) <= 1000);
    assert_int_equal (jump, wall_delta - mono_delta);
    assert_int_equal (proc_log_count (world->registry,
                                      "msg=\"wall clock jumped\""),
                      1);
}

/*  Checks that only silent clients were evicted and every busy client
    is still registered.  */
static void
s_check_busy_kept (world_t *world)
{
    harness_event_t *events = NULL;
    int count = harness_events (world->operator, 0, &events);
    assert_int_equal (count, CLIENTS - BUSY);
    for (int index = 0; index < count; index++) {
        int number = 0;
        assert_int_equal (sscanf (events[index].id, NODE "-c%d", &number),
                          1);
        assert_true (number > BUSY);
        assert_int_equal (events[index].reason, MSG_REASON_STALE);
    }
    harness_events_free (&events);

    for (int number = 1; number <= BUSY; number++) {
        char id[32];
        snprintf (id, sizeof (id), NODE "-c%d", number);
        assert_int_equal (harness_get (world->operator, id, NULL), 0);
    }
    assert_false (proc_log_contains (world->node, "busy client evicted"));
}

static void
s_assert_log (world_t *world, const char *fragment)
{
    if (!proc_log_contains (world->registry, fragment))
        print_error ("no registry log line contains \"%s\"; see %s\n",
                     fragment, world->registry->err_path);
    assert_true (proc_log_contains (world->registry, fragment));
}

static void
forward_jump_evicts_no_active_client (void **state)
{
    world_t *world = *state;
    s_start_registry (world);
    s_start_node (world);

    //  Every client was active a moment ago; after the jump, each one's
    //  activity is two hours old by the registry's wall clock
    s_clock_set (world, "+" JUMP);
    assert_eventually (harness_stat (world->operator, "clock_jumps") == 1,
                       5000);
    s_check_jump_logged (world, JUMP_MS);
    assert_true (harness_stat (world->operator, "clock_hold_ms")
                 >= JUMP_MS - 1000);

    //  The silent clients go once they were silent for stale-after of
    //  real time, not at once
    s_sweep_until_silent_evicted (world);
    s_check_busy_kept (world);

    //  After stale-after the cutoff follows the new clock again, and the
    //  busy clients, touched since the jump, stay
    assert_eventually (harness_stat (world->operator, "clock_hold_ms") == 0,
                       STALE_AFTER_MS + 5000);
    s_assert_log (world, "msg=\"clock jump hold ended\"");
    s_sweep (world);
    s_check_busy_kept (world);
}

static void
backward_jump_still_evicts_silent_clients (void **state)
{
    world_t *world = *state;
    s_start_registry (world);
    s_start_node (world);
    int64_t real_before_ms = zclock_time ();

    s_clock_set (world, "-" JUMP);
    assert_eventually (harness_stat (world->operator, "clock_jumps") == 1,
                       5000);
    s_check_jump_logged (world, -JUMP_MS);
    assert_true (harness_stat (world->operator, "clock_offset_ms")
                 >= JUMP_MS - 1000);

    //  Without the offset the silent clients would stay for two hours
    s_sweep_until_silent_evicted (world);
    s_check_busy_kept (world);

    //  Touches after the jump keep being stamped with the registry's
    //  continuous time, close to the real clock, not two hours back
    int64_t activity = 0;
    assert_int_equal (harness_get (world->operator, NODE "-c1", &activity),
                      0);
    assert_true (activity >= real_before_ms);
    assert_true (activity < zclock_time () + 60000);
}

#define TEST(function) \
    cmocka_unit_test_setup_teardown (function, s_setup, s_teardown)

int
main (void)
{
    const struct CMUnitTest tests[] = {
        TEST (forward_jump_evicts_no_active_client),
        TEST (backward_jump_still_evicts_silent_clients),
    };
    int failed = cmocka_run_group_tests_name ("clock_jump", tests, NULL,
                                              NULL);
    return harness_finish (failed);
}
