/*  Two redundant schedulers are killed with SIGKILL at random moments,
    one or both at a time, and restarted.  Sweeps go on after every
    restart, even when both were killed.  Two sweeps never start closer
    together than the registry's minimum gap (half the tick interval),
    and no client is evicted sooner than stale-after after its last
    acknowledged activity.

    LAPSE_CRASH_ITERATIONS sets the number of kills (default 10) and
    LAPSE_CRASH_SEED repeats the timing of an earlier run.  */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "crash_checks.h"
#include "harness.h"

#define STALE_AFTER_MS 1000
#define SCHEDULER_COUNT 2
#define INTERVAL "300ms"
/*  Half the interval: the registry ignores a tick closer than this to
    the start of the last sweep.  */
#define MIN_GAP_MS 150
/*  Sweep ids are wall-clock and the gap is measured on the monotonic
    clock, each truncated to milliseconds.  */
#define CLOCK_SLACK_MS 2
#define UP_MIN_MS 50
#define UP_MAX_MS 1200
#define SWEEP_WAIT_MS 10000
#define SWEEPS_MAX 4096

/*  Processes started besides up to two schedulers per iteration.  */
#define FIXED_PROCS 6

typedef struct {
    harness_t *harness;
    proc_t *registry;
    proc_t *schedulers[SCHEDULER_COUNT];
    proc_t *node;
    lapse_t *operator;
} world_t;

static const char *const s_ids[SCHEDULER_COUNT] = { "sched-a", "sched-b" };

static int
s_setup (void **state)
{
    world_t *world = calloc (1, sizeof (world_t));
    *state = world;
    if (!world)
        return -1;
    world->harness = harness_new ("crash_loop_scheduler");
    if (!world->harness)
        return -1;
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
s_start_scheduler (world_t *world, int index)
{
    harness_t *harness = world->harness;
    world->schedulers[index] = harness_spawnl (
        harness, s_ids[index], LAPSE_SCHEDULER_BIN, NULL, "--ticks",
        harness->ticks, "--interval", INTERVAL, "--id", s_ids[index], NULL);
    assert_non_null (world->schedulers[index]);
}

/*  tick-min-gap 0 leaves the gap to the ticks' own interval.  Every 2nd
    client of the node is never touched, so each sweep has work.  */
static void
s_start_world (world_t *world)
{
    harness_t *harness = world->harness;
    world->registry = harness_start_registry (
        harness, "registry", NULL, "--stale-after", "1s", "--tick-min-gap",
        "0ms", NULL);
    assert_non_null (world->registry);
    world->node = harness_spawnl (
        harness, "node", LAPSE_RECORDING_NODE_BIN, NULL, "--commands",
        harness->commands, "--node", "node-a", "--clients", "1000000",
        "--register-interval", "20", "--touch-interval", "200",
        "--quiet-every", "2", NULL);
    assert_non_null (world->node);
    for (int index = 0; index < SCHEDULER_COUNT; index++)
        s_start_scheduler (world, index);
    assert_int_equal (harness_wait_past_grace (world->operator,
                                               SWEEP_WAIT_MS),
                      0);
}

static void
s_kill_scheduler (world_t *world, int index)
{
    assert_int_equal (proc_signal (world->schedulers[index], SIGKILL), 0);
    assert_int_equal (proc_wait (world->schedulers[index], HARNESS_STOP_MS),
                      128 + SIGKILL);
}

/*  Reads the ids of every sweep the registry started, in log order,
    those skipped during the start-up grace included.  */
static size_t
s_sweep_ids (proc_t *registry, uint64_t *ids, size_t max)
{
    char *text = harness_read_file (registry->err_path, NULL);
    assert_non_null (text);
    size_t count = 0;
    for (char *line = strtok (text, "\n"); line && count < max;
         line = strtok (NULL, "\n")) {
        if (!strstr (line, "msg=\"sweep started\"")
            && !strstr (line, "msg=\"sweep skipped during start-up grace\""))
            continue;
        char *field = strstr (line, " sweep=");
        assert_non_null (field);
        ids[count++] = strtoull (field + strlen (" sweep="), NULL, 10);
    }
    free (text);
    return count;
}

static void
s_check_sweep_gaps (world_t *world)
{
    static uint64_t ids[SWEEPS_MAX];
    size_t count = s_sweep_ids (world->registry, ids, SWEEPS_MAX);
    assert_true (count > 1);

    uint64_t closest = UINT64_MAX;
    for (size_t index = 1; index < count; index++) {
        uint64_t gap = ids[index] - ids[index - 1];
        if (ids[index] < ids[index - 1] + MIN_GAP_MS - CLOCK_SLACK_MS)
            print_error ("sweeps %llu and %llu started %lld ms apart; the "
                         "minimum gap is %d ms\n",
                         (unsigned long long) ids[index - 1],
                         (unsigned long long) ids[index],
                         (long long) (ids[index] - ids[index - 1]),
                         MIN_GAP_MS);
        assert_true (ids[index] + CLOCK_SLACK_MS
                     >= ids[index - 1] + MIN_GAP_MS);
        closest = gap < closest ? gap : closest;
    }
    uint64_t ignored = harness_stat (world->operator, "ticks_ignored");
    printf ("crash_loop_scheduler: sweeps=%zu closest_ms=%llu "
            "ticks_ignored=%llu\n",
            count, (unsigned long long) closest,
            (unsigned long long) ignored);

    //  Two schedulers on one interval: about every other tick is ignored
    assert_true (ignored > 0 && ignored != UINT64_MAX);
}

static void
s_check_evictions (world_t *world)
{
    store_summary_t summary;
    crash_check_store (world->harness->store, &summary);
    node_records_t records;
    assert_int_equal (node_records_load (world->node->out_path, &records),
                      0);
    assert_true (records.finished);
    size_t removed = crash_check_acknowledged (world->harness->store,
                                               &records, STALE_AFTER_MS);
    printf ("crash_loop_scheduler: acknowledged=%zu removed=%zu "
            "events=%llu\n",
            records.count, removed, (unsigned long long) summary.events);
    assert_true (removed > 0);
    node_records_free (&records);
}

static void
scheduler_kill_keeps_sweeping (void **state)
{
    world_t *world = *state;
    int iterations = crash_iterations ((HARNESS_PROCS_MAX - FIXED_PROCS)
                                       / SCHEDULER_COUNT);
    crash_seed ("crash_loop_scheduler");
    s_start_world (world);

    for (int iteration = 1; iteration <= iterations; iteration++) {
        harness_sleep_ms (crash_random (UP_MIN_MS, UP_MAX_MS));

        //  Every third kill takes both, so that only the restarted
        //  schedulers can make the next sweep happen
        bool both = iteration % 3 == 0;
        int only = crash_random (0, SCHEDULER_COUNT - 1);
        for (int index = 0; index < SCHEDULER_COUNT; index++)
            if (both || index == only)
                s_kill_scheduler (world, index);

        //  A tick sent just before the kill may still be on its way
        harness_sleep_ms (50);
        uint64_t sweeps = harness_stat (world->operator, "sweeps");
        assert_int_not_equal (sweeps, UINT64_MAX);
        for (int index = 0; index < SCHEDULER_COUNT; index++)
            if (both || index == only)
                s_start_scheduler (world, index);

        assert_eventually (harness_stat (world->operator, "sweeps") > sweeps
                               && harness_stat (world->operator, "sweeps")
                                      != UINT64_MAX,
                           SWEEP_WAIT_MS);
        printf ("crash_loop_scheduler: kill %d/%d: %s, sweeps=%llu\n",
                iteration, iterations, both ? "both" : s_ids[only],
                (unsigned long long) harness_stat (world->operator,
                                                   "sweeps"));
        fflush (stdout);
    }

    assert_int_equal (proc_stop (world->node, HARNESS_STOP_MS), 0);
    for (int index = 0; index < SCHEDULER_COUNT; index++)
        assert_int_equal (proc_stop (world->schedulers[index],
                                     HARNESS_STOP_MS),
                          0);
    s_check_sweep_gaps (world);
    assert_int_equal (proc_stop (world->registry, HARNESS_STOP_MS), 0);
    s_check_evictions (world);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown (scheduler_kill_keeps_sweeping,
                                         s_setup, s_teardown),
    };
    return harness_finish (cmocka_run_group_tests (tests, NULL, NULL));
}
