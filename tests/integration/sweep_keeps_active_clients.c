/*  A sweep removes exactly the clients that went quiet.  Every stale
    client goes with one event of reason "stale" and every client that
    kept touching stays.  No sweep evicts anything during the start-up
    grace, even after a restart that found every stored client old.  */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "harness.h"

#define STALE_AFTER_MS 2000
#define CLIENTS_PER_KIND 30
#define TOUCH_PERIOD_MS 250
#define SWEEP_DEADLINE_MS 10000
#define NODES 2

static const char *s_nodes[NODES] = { "node-a", "node-b" };

typedef struct {
    harness_t *harness;
    lapse_t *nodes[NODES];
    lapse_t *operator;
    char active[CLIENTS_PER_KIND][MSG_ID_MAX + 1];
    char stale[CLIENTS_PER_KIND][MSG_ID_MAX + 1];
} world_t;

static int
s_setup (void **state)
{
    world_t *world = calloc (1, sizeof (world_t));
    *state = world;
    if (!world)
        return -1;
    world->harness = harness_new ("sweep_keeps_active");
    if (!world->harness)
        return -1;
    for (int index = 0; index < CLIENTS_PER_KIND; index++) {
        snprintf (world->active[index], MSG_ID_MAX + 1, "active-%02d",
                  index);
        snprintf (world->stale[index], MSG_ID_MAX + 1, "stale-%02d", index);
    }
    return 0;
}

static int
s_teardown (void **state)
{
    world_t *world = *state;
    for (int node = 0; node < NODES; node++)
        lapse_destroy (&world->nodes[node]);
    lapse_destroy (&world->operator);
    harness_destroy (&world->harness);
    free (world);
    return 0;
}

static proc_t *
s_start_registry (world_t *world)
{
    return harness_start_registry (world->harness, "registry", NULL,
                                   "--stale-after", "2s", "--tick-min-gap",
                                   "0ms", "--log-level", "debug", NULL);
}

static void
s_connect (world_t *world)
{
    for (int node = 0; node < NODES; node++) {
        lapse_destroy (&world->nodes[node]);
        world->nodes[node] = harness_client (world->harness, s_nodes[node]);
        assert_non_null (world->nodes[node]);
    }
    lapse_destroy (&world->operator);
    world->operator = harness_client (world->harness, NULL);
    assert_non_null (world->operator);
}

/*  Clients alternate between the nodes, so both topics carry events.  */
static lapse_t *
s_node_of (world_t *world, int index)
{
    return world->nodes[index % NODES];
}

static void
s_register_all (world_t *world)
{
    for (int index = 0; index < CLIENTS_PER_KIND; index++) {
        bool created = false;
        assert_int_equal (lapse_register (s_node_of (world, index),
                                          world->active[index], NULL, 0,
                                          &created),
                          0);
        assert_true (created);
        assert_int_equal (lapse_register (s_node_of (world, index),
                                          world->stale[index], "m", 1,
                                          &created),
                          0);
        assert_true (created);
    }
}

static void
s_touch_active (world_t *world)
{
    for (int index = 0; index < CLIENTS_PER_KIND; index++)
        assert_int_equal (lapse_touch (s_node_of (world, index),
                                       world->active[index]),
                          0);
    for (int node = 0; node < NODES; node++) {
        uint32_t unknown = 99;
        assert_int_equal (lapse_flush (world->nodes[node], &unknown), 0);
        assert_int_equal (unknown, 0);
    }
}

/*  Touches the active clients every TOUCH_PERIOD_MS until the registry
    is past its grace and at least until_ms of the monotonic clock.  */
static void
s_touch_until_stale (world_t *world, int64_t until_ms)
{
    int64_t deadline = harness_now_ms () + 4 * STALE_AFTER_MS + 5000;
    for (;;) {
        s_touch_active (world);
        uint64_t uptime = harness_stat (world->operator, "uptime_ms");
        if (harness_now_ms () >= until_ms && uptime != UINT64_MAX
            && uptime > STALE_AFTER_MS)
            return;
        assert_true (harness_now_ms () < deadline);
        harness_sleep_ms (TOUCH_PERIOD_MS);
    }
}

static int
s_find (char ids[][MSG_ID_MAX + 1], const char *id)
{
    for (int index = 0; index < CLIENTS_PER_KIND; index++)
        if (strcmp (ids[index], id) == 0)
            return index;
    return -1;
}

static void
s_count_active (const char *id, void *arg)
{
    world_t *world = arg;
    if (s_find (world->active, id) < 0)
        fail_msg ("client %s is listed but is neither active nor expected",
                  id);
}

/*  Checks the store after the sweep: the active clients all listed, the
    stale ones unknown, one stale event each with gapless seqs.  */
static void
s_check_after_sweep (world_t *world, uint64_t first_seq)
{
    assert_int_equal (harness_list (world->operator, NULL, s_count_active,
                                    world),
                      CLIENTS_PER_KIND);
    for (int index = 0; index < CLIENTS_PER_KIND; index++) {
        assert_int_equal (harness_get (world->operator, world->active[index],
                                       NULL),
                          0);
        assert_int_equal (harness_get (world->operator, world->stale[index],
                                       NULL),
                          1);
    }

    harness_event_t *events = NULL;
    int count = harness_events (world->operator, first_seq - 1, &events);
    assert_int_equal (count, CLIENTS_PER_KIND);
    int seen[CLIENTS_PER_KIND] = { 0 };
    for (int index = 0; index < count; index++) {
        harness_event_t *event = &events[index];
        assert_int_equal (event->seq, first_seq + (uint64_t) index);
        assert_int_equal (event->reason, MSG_REASON_STALE);
        assert_int_not_equal (event->sweep, 0);
        assert_int_equal (event->sweep, events[0].sweep);
        int which = s_find (world->stale, event->id);
        assert_true (which >= 0);
        assert_string_equal (event->node, s_nodes[which % NODES]);
        seen[which]++;
    }
    for (int index = 0; index < CLIENTS_PER_KIND; index++)
        assert_int_equal (seen[index], 1);
    harness_events_free (&events);
}

/*  Reads the published events and checks there is one per stale client
    on its node's topic.  */
static void
s_check_published (world_t *world, zsock_t *subscriber)
{
    int seen[CLIENTS_PER_KIND] = { 0 };
    for (int index = 0; index < CLIENTS_PER_KIND; index++) {
        harness_event_t event;
        assert_int_equal (harness_event_receive (subscriber, &event, 3000),
                          1);
        assert_int_equal (event.reason, MSG_REASON_STALE);
        int which = s_find (world->stale, event.id);
        assert_true (which >= 0);
        seen[which]++;
    }
    for (int index = 0; index < CLIENTS_PER_KIND; index++)
        assert_int_equal (seen[index], 1);

    harness_event_t extra;
    assert_int_equal (harness_event_receive (subscriber, &extra, 300), 0);
}

/*  An operator sees the same through lapsectl: a dry run counts the
    stale clients before the sweep.  */
static void
s_check_dry_run_with_lapsectl (world_t *world)
{
    proc_t *ctl = NULL;
    assert_int_equal (harness_lapsectl (world->harness, &ctl, "--json",
                                        "sweep", "--dry-run", NULL),
                      0);
    char expected[64];
    snprintf (expected, sizeof (expected), "\"stale\":%d", CLIENTS_PER_KIND);
    assert_int_equal (harness_file_count (ctl->out_path, expected), 1);
    assert_int_equal (harness_file_count (ctl->out_path, "\"dry_run\":true"),
                      1);
    assert_int_equal (harness_stat (world->operator, "evicted"), 0);
}

/*  After the sweep lapsectl lists the active clients only, fails to get
    a stale one, and prints one stale event per stale client.  */
static void
s_check_after_sweep_with_lapsectl (world_t *world)
{
    proc_t *ctl = NULL;
    assert_int_equal (harness_lapsectl (world->harness, &ctl, "--json",
                                        "--all", "list", NULL),
                      0);
    assert_int_equal (harness_file_count (ctl->out_path, "\"id\":\"active-"),
                      CLIENTS_PER_KIND);
    assert_int_equal (harness_file_count (ctl->out_path, "\"id\":\"stale-"),
                      0);

    assert_int_equal (harness_lapsectl (world->harness, &ctl, "--json",
                                        "--all", "events", NULL),
                      0);
    assert_int_equal (harness_file_count (ctl->out_path,
                                          "\"reason\":\"stale\""),
                      CLIENTS_PER_KIND);

    assert_int_equal (harness_lapsectl (world->harness, &ctl, "get",
                                        world->active[0], NULL),
                      0);
    assert_int_equal (harness_lapsectl (world->harness, &ctl, "get",
                                        world->stale[0], NULL),
                      1);
    assert_int_equal (harness_lapsectl (world->harness, &ctl, "frobnicate",
                                        NULL),
                      2);
}

static void
sweep_keeps_active_clients (void **state)
{
    world_t *world = *state;
    assert_non_null (s_start_registry (world));
    s_connect (world);
    zsock_t *subscriber = harness_event_socket (world->harness);
    assert_non_null (subscriber);

    s_register_all (world);
    int64_t registered_at = harness_now_ms ();
    assert_int_equal (harness_stat (world->operator, "clients"),
                      2 * CLIENTS_PER_KIND);

    //  A sweep inside the grace evicts nothing
    s_touch_active (world);
    assert_int_equal (harness_sweep (world->harness, world->operator,
                                     SWEEP_DEADLINE_MS),
                      0);
    assert_true (harness_stat (world->operator, "sweeps_in_grace") >= 1);
    assert_int_equal (harness_stat (world->operator, "evicted"), 0);

    s_touch_until_stale (world, registered_at + STALE_AFTER_MS + 300);
    s_check_dry_run_with_lapsectl (world);
    assert_int_equal (harness_sweep (world->harness, world->operator,
                                     SWEEP_DEADLINE_MS),
                      0);

    assert_int_equal (harness_stat (world->operator, "evicted"),
                      CLIENTS_PER_KIND);
    assert_int_equal (harness_stat (world->operator, "clients"),
                      CLIENTS_PER_KIND);
    assert_int_equal (harness_stat (world->operator, "batches_failed"), 0);
    s_check_after_sweep (world, 1);
    s_check_published (world, subscriber);
    zsock_destroy (&subscriber);
    s_check_after_sweep_with_lapsectl (world);
}

/*  After a crash and restart every stored activity is older than
    stale-after, yet no client is evicted during the grace.  After it,
    only the clients not touched since the restart are evicted.  */
static void
restart_grace_spares_old_clients (void **state)
{
    world_t *world = *state;
    proc_t *registry = s_start_registry (world);
    assert_non_null (registry);
    s_connect (world);
    s_register_all (world);

    //  A crash, so that nothing is flushed on the way down
    assert_int_equal (proc_signal (registry, SIGKILL), 0);
    assert_int_equal (proc_wait (registry, HARNESS_STOP_MS), 128 + SIGKILL);
    harness_sleep_ms (STALE_AFTER_MS + 200);
    registry = s_start_registry (world);
    assert_non_null (registry);
    assert_int_equal (harness_stat (world->operator, "clients"),
                      2 * CLIENTS_PER_KIND);

    s_touch_active (world);
    int64_t restarted_at = harness_now_ms ();
    assert_int_equal (harness_sweep (world->harness, world->operator,
                                     SWEEP_DEADLINE_MS),
                      0);
    assert_true (harness_stat (world->operator, "sweeps_in_grace") >= 1);
    assert_int_equal (harness_stat (world->operator, "evicted"), 0);
    assert_int_equal (harness_stat (world->operator, "clients"),
                      2 * CLIENTS_PER_KIND);
    assert_true (proc_log_contains (registry,
                                    "msg=\"sweep skipped during start-up "
                                    "grace\""));

    s_touch_until_stale (world, restarted_at);
    assert_int_equal (harness_sweep (world->harness, world->operator,
                                     SWEEP_DEADLINE_MS),
                      0);
    assert_int_equal (harness_stat (world->operator, "evicted"),
                      CLIENTS_PER_KIND);
    s_check_after_sweep (world, 1);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown (sweep_keeps_active_clients,
                                         s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (restart_grace_spares_old_clients,
                                         s_setup, s_teardown),
    };
    return harness_finish (cmocka_run_group_tests (tests, NULL, NULL));
}
