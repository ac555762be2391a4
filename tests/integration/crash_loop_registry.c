/*  The registry is killed with SIGKILL at random moments and restarted
    each time.  Meanwhile two API nodes register, touch and deregister
    clients, a scheduler makes it sweep every 200 ms, and lapse-audit
    follows its events.  After every kill the store file passes
    integrity_check and its events are gapless.  At the end every
    acknowledged registration is still registered or has exactly one
    removal event, no client was evicted sooner than stale-after after
    its last acknowledged activity, and the audit file holds every
    event once, in order.

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
#define UP_MIN_MS 100
#define UP_MAX_MS 2500
#define DOWN_MAX_MS 300
#define SWEEP_WAIT_MS 15000
#define CATCH_UP_MS 30000

/*  Processes started besides one registry per iteration.  */
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
    world->harness = harness_new ("crash_loop_registry");
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

/*  Short flush and sweep batches make many small transactions, so that
    a kill often lands inside one.  */
static void
s_start_registry (world_t *world)
{
    world->registry = harness_start_registry (
        world->harness, "registry", NULL, "--stale-after", "1s",
        "--tick-min-gap", "0ms", "--sweep-batch", "4", "--flush-interval",
        "100ms", "--activity-granularity", "100ms", NULL);
    assert_non_null (world->registry);
}

static void
s_start_others (world_t *world)
{
    harness_t *harness = world->harness;
    world->scheduler = harness_spawnl (harness, "scheduler",
                                       LAPSE_SCHEDULER_BIN, NULL, "--ticks",
                                       harness->ticks, "--interval", "200ms",
                                       "--id", "crash-scheduler", NULL);
    assert_non_null (world->scheduler);
    world->audit = harness_spawnl (harness, "audit", LAPSE_AUDIT_BIN, NULL,
                                   "--commands", harness->commands,
                                   "--events", harness->events, "--file",
                                   world->audit_file, "--catchup-interval",
                                   "500ms", NULL);
    assert_non_null (world->audit);

    //  Every 2nd client is never touched, so sweeps evict it, and every
    //  7th is deregistered at once
    const char *names[NODE_COUNT] = { "node-a", "node-b" };
    for (int index = 0; index < NODE_COUNT; index++) {
        world->nodes[index] = harness_spawnl (
            harness, names[index], LAPSE_RECORDING_NODE_BIN, NULL,
            "--commands", harness->commands, "--node", names[index],
            "--clients", "1000000", "--register-interval", "40",
            "--touch-interval", "200", "--timeout", "500", "--quiet-every",
            "2", "--deregister-every", "7", NULL);
        assert_non_null (world->nodes[index]);
    }
}

static void
s_kill_registry (world_t *world)
{
    assert_int_equal (proc_signal (world->registry, SIGKILL), 0);
    assert_int_equal (proc_wait (world->registry, HARNESS_STOP_MS),
                      128 + SIGKILL);
}

/*  Waits until the running registry has evicted something, so that the
    last instance sweeps too.  */
static void
s_wait_for_eviction (world_t *world)
{
    assert_int_equal (harness_wait_past_grace (world->operator,
                                               SWEEP_WAIT_MS),
                      0);
    assert_eventually (harness_stat (world->operator, "evicted") > 0
                           && harness_stat (world->operator, "evicted")
                                  != UINT64_MAX,
                       SWEEP_WAIT_MS);
}

/*  Counts the events of each reason, and fails unless every reason that
    the nodes cause is there.  */
static void
s_check_reasons (world_t *world)
{
    harness_event_t *events = NULL;
    int count = harness_events (world->operator, 0, &events);
    assert_true (count > 0);
    int reasons[MSG_REASON_COUNT] = { 0 };
    for (int index = 0; index < count; index++)
        reasons[events[index].reason]++;
    harness_events_free (&events);
    printf ("crash_loop_registry: events=%d stale=%d deregistered=%d\n",
            count, reasons[MSG_REASON_STALE],
            reasons[MSG_REASON_DEREGISTERED]);
    assert_true (reasons[MSG_REASON_STALE] > 0);
    assert_true (reasons[MSG_REASON_DEREGISTERED] > 0);
}

static void
s_check_node (world_t *world, proc_t *node)
{
    node_records_t records;
    assert_int_equal (node_records_load (node->out_path, &records), 0);
    assert_true (records.finished);
    assert_true (records.count > 0);
    size_t removed = crash_check_acknowledged (world->harness->store,
                                               &records, STALE_AFTER_MS);
    printf ("crash_loop_registry: %s: acknowledged=%zu removed=%zu "
            "failed_requests=%llu\n",
            node->name, records.count, removed,
            (unsigned long long) records.errors);
    node_records_free (&records);
}

static void
s_finish (world_t *world)
{
    s_wait_for_eviction (world);
    for (int index = 0; index < NODE_COUNT; index++)
        assert_int_equal (proc_stop (world->nodes[index], HARNESS_STOP_MS),
                          0);

    //  With the nodes and the scheduler stopped nothing is removed any
    //  more once the running sweep ends
    assert_int_equal (proc_stop (world->scheduler, HARNESS_STOP_MS), 0);
    assert_eventually (harness_stat (world->operator, "sweep_running") == 0,
                       SWEEP_WAIT_MS);
    uint64_t last_seq = harness_stat (world->operator, "last_seq");
    assert_int_not_equal (last_seq, UINT64_MAX);
    assert_eventually (crash_count_lines (world->audit_file)
                           == (int) last_seq,
                       CATCH_UP_MS);
    crash_check_audit_file (world->operator, world->audit_file);
    s_check_reasons (world);
    assert_int_equal (crash_logs_count (world->harness, "audit",
                                        "msg=\"events lost\""),
                      0);

    assert_int_equal (proc_stop (world->audit, HARNESS_STOP_MS), 0);
    assert_int_equal (proc_stop (world->registry, HARNESS_STOP_MS), 0);
    crash_check_store (world->harness->store, NULL);
    for (int index = 0; index < NODE_COUNT; index++)
        s_check_node (world, world->nodes[index]);
}

static void
registry_kill_loses_nothing (void **state)
{
    world_t *world = *state;
    int iterations = crash_iterations (HARNESS_PROCS_MAX - FIXED_PROCS);
    crash_seed ("crash_loop_registry");
    s_start_registry (world);
    s_start_others (world);

    for (int iteration = 1; iteration <= iterations; iteration++) {
        int up_ms = crash_random (UP_MIN_MS, UP_MAX_MS);
        harness_sleep_ms (up_ms);
        s_kill_registry (world);

        store_summary_t summary;
        crash_check_store (world->harness->store, &summary);
        printf ("crash_loop_registry: kill %d/%d after %d ms: events=%llu "
                "clients=%llu\n",
                iteration, iterations, up_ms,
                (unsigned long long) summary.events,
                (unsigned long long) summary.clients);
        fflush (stdout);

        harness_sleep_ms (crash_random (0, DOWN_MAX_MS));
        s_start_registry (world);
    }
    s_finish (world);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown (registry_kill_loses_nothing,
                                         s_setup, s_teardown),
    };
    return harness_finish (cmocka_run_group_tests (tests, NULL, NULL));
}
