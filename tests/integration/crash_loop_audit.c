/*  lapse-audit is killed with SIGKILL at random moments while the
    registry evicts thousands of clients a second, and is restarted each
    time.  After every kill the audit file contains events 1 to N in
    order with none twice.  At the end it contains every event of the
    registry exactly once, in order, and the store is intact.

    LAPSE_CRASH_ITERATIONS sets the number of kills (default 10) and
    LAPSE_CRASH_SEED repeats the timing of an earlier run.  */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "crash_checks.h"
#include "harness.h"

#define STALE_AFTER_MS 1000
#define NODE_COUNT 2
#define UP_MIN_MS 50
#define UP_MAX_MS 1500
#define DOWN_MAX_MS 800
#define AFTER_SWEEP_MAX_MS 30
#define START_MS 10000
#define DRAIN_MS 30000
#define CATCH_UP_MS 30000

/*  Processes started besides one lapse-audit per iteration.  */
#define FIXED_PROCS 8

typedef struct {
    harness_t *harness;
    proc_t *registry;
    proc_t *scheduler;
    proc_t *audit;
    proc_t *nodes[NODE_COUNT];
    lapse_t *operator;
    char audit_file[HARNESS_FILE_MAX];
} world_t;

static int
s_setup (void **state)
{
    world_t *world = calloc (1, sizeof (world_t));
    *state = world;
    if (!world)
        return -1;
    world->harness = harness_new ("crash_loop_audit");
    if (!world->harness)
        return -1;
    harness_path (world->harness, "audit.jsonl", world->audit_file,
                  sizeof (world->audit_file));
    world->operator = harness_client (world->harness, NULL);
    return world->operator ? 0 : -1;
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

static void
s_start_audit (world_t *world)
{
    harness_t *harness = world->harness;
    world->audit = harness_spawnl (harness, "audit", LAPSE_AUDIT_BIN, NULL,
                                   "--commands", harness->commands,
                                   "--events", harness->events, "--file",
                                   world->audit_file, "--catchup-interval",
                                   "500ms", NULL);
    assert_non_null (world->audit);
}

/*  Nodes register clients as fast as the registry takes them and never
    touch one, so every client is evicted about a second after its
    registration: a steady stream of sweeps, each removing hundreds.
    Most of the clients are stale at any moment, so the eviction brake
    is off.  */
static void
s_start_world (world_t *world)
{
    harness_t *harness = world->harness;
    world->registry = harness_start_registry (
        harness, "registry", NULL, "--stale-after", "1s", "--tick-min-gap",
        "0ms", "--sweep-batch", "10", "--brake=off", NULL);
    assert_non_null (world->registry);
    world->scheduler = harness_spawnl (harness, "scheduler",
                                       LAPSE_SCHEDULER_BIN, NULL, "--ticks",
                                       harness->ticks, "--interval", "200ms",
                                       NULL);
    assert_non_null (world->scheduler);

    const char *names[NODE_COUNT] = { "node-a", "node-b" };
    for (int index = 0; index < NODE_COUNT; index++) {
        world->nodes[index] = harness_spawnl (
            harness, names[index], LAPSE_RECORDING_NODE_BIN, NULL,
            "--commands", harness->commands, "--node", names[index],
            "--clients", "1000000", "--register-interval", "1",
            "--touch-interval", "1000", "--quiet-every", "1", NULL);
        assert_non_null (world->nodes[index]);
    }
    s_start_audit (world);

    //  Kills only count once evictions are flowing
    assert_int_equal (harness_wait_past_grace (world->operator, START_MS),
                      0);
    assert_eventually (harness_stat (world->operator, "evicted") > 0
                           && harness_stat (world->operator, "evicted")
                                  != UINT64_MAX,
                       START_MS);
}

static void
s_kill_audit (world_t *world, int iteration, int iterations, int up_ms)
{
    assert_int_equal (proc_signal (world->audit, SIGKILL), 0);
    assert_int_equal (proc_wait (world->audit, HARNESS_STOP_MS),
                      128 + SIGKILL);
    int lines = crash_check_audit_prefix (world->audit_file);
    printf ("crash_loop_audit: kill %d/%d after %d ms: audit_lines=%d "
            "last_seq=%llu\n",
            iteration, iterations, up_ms, lines,
            (unsigned long long) harness_stat (world->operator,
                                               "last_seq"));
    fflush (stdout);
}

/*  Stops the nodes, lets the sweeps remove every client left, stops the
    scheduler and waits until the audit has every event.  */
static void
s_drain (world_t *world)
{
    for (int index = 0; index < NODE_COUNT; index++)
        assert_int_equal (proc_stop (world->nodes[index], HARNESS_STOP_MS),
                          0);
    assert_eventually (harness_stat (world->operator, "clients") == 0,
                       DRAIN_MS);
    assert_int_equal (proc_stop (world->scheduler, HARNESS_STOP_MS), 0);
    assert_eventually (harness_stat (world->operator, "sweep_running") == 0,
                       DRAIN_MS);

    uint64_t last_seq = harness_stat (world->operator, "last_seq");
    assert_int_not_equal (last_seq, UINT64_MAX);
    assert_eventually (crash_count_lines (world->audit_file)
                           == (int) last_seq,
                       CATCH_UP_MS);
    printf ("crash_loop_audit: events=%llu\n",
            (unsigned long long) last_seq);
}

static void
s_check_nodes (world_t *world)
{
    for (int index = 0; index < NODE_COUNT; index++) {
        node_records_t records;
        assert_int_equal (node_records_load (world->nodes[index]->out_path,
                                             &records),
                          0);
        assert_true (records.finished);
        size_t removed = crash_check_acknowledged (world->harness->store,
                                                   &records, STALE_AFTER_MS);
        assert_int_equal (removed, records.count);
        node_records_free (&records);
    }
}

static void
audit_kill_loses_nothing (void **state)
{
    world_t *world = *state;
    int iterations = crash_iterations (HARNESS_PROCS_MAX - FIXED_PROCS);
    crash_seed ("crash_loop_audit");
    s_start_world (world);

    for (int iteration = 1; iteration <= iterations; iteration++) {
        int up_ms = crash_random (UP_MIN_MS, UP_MAX_MS);
        harness_sleep_ms (up_ms);

        //  Every other kill lands just after a sweep started, while its
        //  events are being published and written
        if (iteration % 2 == 0) {
            uint64_t sweeps = harness_stat (world->operator, "sweeps");
            assert_eventually (harness_stat (world->operator, "sweeps")
                                   > sweeps,
                               START_MS);
            harness_sleep_ms (crash_random (0, AFTER_SWEEP_MAX_MS));
        }
        s_kill_audit (world, iteration, iterations, up_ms);

        //  A longer stop leaves a backlog that the restart replays
        harness_sleep_ms (crash_random (0, DOWN_MAX_MS));
        s_start_audit (world);
    }

    s_drain (world);
    harness_sleep_ms (500);
    crash_check_audit_file (world->operator, world->audit_file);
    assert_int_equal (crash_logs_count (world->harness, "audit",
                                        "msg=\"events lost\""),
                      0);
    assert_int_equal (proc_stop (world->audit, HARNESS_STOP_MS), 0);
    assert_int_equal (proc_stop (world->registry, HARNESS_STOP_MS), 0);
    crash_check_store (world->harness->store, NULL);
    s_check_nodes (world);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown (audit_kill_loses_nothing, s_setup,
                                         s_teardown),
    };
    return harness_finish (cmocka_run_group_tests (tests, NULL, NULL));
}
