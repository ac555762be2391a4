/*  Clients touched with a period close to stale-after are never evicted,
    while a real scheduler ticks many times a period; the silent ones all
    go.  Three lapse-node-sim processes are the API nodes.  */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "harness.h"

#define NODES 3
#define CLIENTS_PER_NODE 40
#define SILENT_PERCENT 25
#define SILENT_PER_NODE (CLIENTS_PER_NODE * SILENT_PERCENT / 100)
#define BUSY_PER_NODE (CLIENTS_PER_NODE - SILENT_PER_NODE)

/*  Sweeps that must finish after the first eviction: at 300 ms a tick,
    about 4.5 s of touches at a 1.5 s period near the 2 s threshold.  */
#define SWEEPS_AFTER_EVICTION 15

typedef struct {
    harness_t *harness;
    proc_t *registry;
    proc_t *scheduler;
    proc_t *nodes[NODES];
    lapse_t *operator;
} world_t;

static int
s_setup (void **state)
{
    world_t *world = calloc (1, sizeof (world_t));
    *state = world;
    if (!world)
        return -1;
    world->harness = harness_new ("touch_near_threshold");
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

static const char *
s_node_name (int node, char *buffer, size_t size)
{
    snprintf (buffer, size, "api-%d", node + 1);
    return buffer;
}

/*  lapse-node-sim names its clients NODE-c1 .. NODE-cN and touches the
    first N minus the silent share.  Returns the client's number on its
    node, or 0 when id is not a client of the population.  */
static int
s_client_number (const char *id, int *node)
{
    int node_number = 0, number = 0, length = 0;
    if (sscanf (id, "api-%d-c%d%n", &node_number, &number, &length) != 2
        || id[length] != '\0' || node_number < 1 || node_number > NODES
        || number < 1 || number > CLIENTS_PER_NODE)
        return 0;
    *node = node_number - 1;
    return number;
}

static void
s_start_nodes (world_t *world)
{
    harness_t *harness = world->harness;
    char clients[16], silent[16];
    snprintf (clients, sizeof (clients), "%d", CLIENTS_PER_NODE);
    snprintf (silent, sizeof (silent), "%d", SILENT_PERCENT);
    for (int node = 0; node < NODES; node++) {
        char name[32];
        s_node_name (node, name, sizeof (name));
        world->nodes[node] = harness_spawnl (
            harness, name, LAPSE_NODE_SIM_BIN, NULL, "--commands",
            harness->commands, "--events", harness->events, "--node", name,
            "--clients", clients, "--silent", silent, "--touch-period",
            "1500ms", NULL);
        assert_non_null (world->nodes[node]);
    }
    for (int node = 0; node < NODES; node++)
        assert_eventually (proc_log_contains (world->nodes[node],
                                              "msg=\"population "
                                              "registered\""),
                           10000);
}

/*  Checks every retained event: stale, of a silent client, one each.  */
static void
s_check_events (world_t *world)
{
    int seen[NODES][CLIENTS_PER_NODE + 1] = { { 0 } };
    harness_event_t *events = NULL;
    int count = harness_events (world->operator, 0, &events);
    assert_int_equal (count, NODES * SILENT_PER_NODE);

    for (int index = 0; index < count; index++) {
        int node = 0;
        int number = s_client_number (events[index].id, &node);
        if (number == 0 || number <= BUSY_PER_NODE)
            print_error ("busy or unknown client %s was removed (%s)\n",
                         events[index].id,
                         msg_reason_name (events[index].reason));
        assert_true (number > BUSY_PER_NODE);
        assert_int_equal (events[index].reason, MSG_REASON_STALE);
        assert_int_equal (events[index].seq, (uint64_t) index + 1);
        seen[node][number]++;
    }
    for (int node = 0; node < NODES; node++)
        for (int number = BUSY_PER_NODE + 1; number <= CLIENTS_PER_NODE;
             number++)
            assert_int_equal (seen[node][number], 1);
    harness_events_free (&events);
}

static void
busy_clients_survive_near_threshold (void **state)
{
    world_t *world = *state;
    harness_t *harness = world->harness;

    //  The tick gap must be below the interval, or most ticks are ignored
    world->registry = harness_start_registry (
        harness, "registry", NULL, "--stale-after", "2s", "--tick-min-gap",
        "100ms", NULL);
    assert_non_null (world->registry);
    world->operator = harness_client (harness, NULL);
    assert_non_null (world->operator);

    world->scheduler = harness_spawnl (harness, "scheduler",
                                       LAPSE_SCHEDULER_BIN, NULL, "--ticks",
                                       harness->ticks, "--interval", "300ms",
                                       "--id", "test-scheduler", NULL);
    assert_non_null (world->scheduler);
    s_start_nodes (world);
    assert_int_equal (harness_stat (world->operator, "clients"),
                      NODES * CLIENTS_PER_NODE);

    //  The silent clients go within a few sweeps past stale-after
    assert_eventually (harness_stat (world->operator, "evicted")
                           == NODES * SILENT_PER_NODE,
                       15000);
    uint64_t sweeps = harness_stat (world->operator, "sweeps");
    assert_eventually (harness_stat (world->operator, "sweeps")
                           >= sweeps + SWEEPS_AFTER_EVICTION,
                       15000);

    for (int node = 0; node < NODES; node++)
        assert_true (proc_running (world->nodes[node]));
    assert_int_equal (harness_stat (world->operator, "evicted"),
                      NODES * SILENT_PER_NODE);
    assert_int_equal (harness_stat (world->operator, "clients"),
                      NODES * BUSY_PER_NODE);
    assert_int_equal (harness_stat (world->operator, "sweeps_failed"), 0);
    s_check_events (world);

    //  Each node saw its own silent clients go through its subscription,
    //  and no busy one
    for (int node = 0; node < NODES; node++) {
        proc_t *sim = world->nodes[node];
        assert_eventually (proc_log_count (sim, "msg=\"client evicted\"")
                               == SILENT_PER_NODE,
                           5000);
        assert_false (proc_log_contains (sim, "msg=\"busy client evicted\""));
        assert_false (proc_log_contains (sim, "re-registered"));
        assert_int_equal (proc_stop (sim, HARNESS_STOP_MS), 0);
        assert_true (proc_log_contains (sim, "false_evictions=0"));
        assert_true (proc_log_contains (sim, "touch_failures=0"));
    }
    assert_true (proc_log_count (world->registry, "msg=\"sweep finished\"")
                 >= SWEEPS_AFTER_EVICTION);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown (busy_clients_survive_near_threshold,
                                         s_setup, s_teardown),
    };
    return harness_finish (cmocka_run_group_tests (tests, NULL, NULL));
}
