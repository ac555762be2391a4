/*  A sweep that meets a store locked by another connection fails its
    batch, logs and counts it, and the registry keeps serving reads and
    touches.  Once the lock is gone the next tick evicts exactly the
    stale clients, with gapless events.  */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "harness.h"

#define STALE_AFTER_MS 2000
#define CLIENTS 10
#define TOUCH_PERIOD_MS 250
#define SWEEP_DEADLINE_MS 10000

typedef struct {
    harness_t *harness;
    proc_t *registry;
    lapse_t *node;
    sqlite3 *holder;    /* the test's own connection to the store */
} world_t;

static int
s_setup (void **state)
{
    world_t *world = calloc (1, sizeof (world_t));
    *state = world;
    if (!world)
        return -1;
    world->harness = harness_new ("store_fault");
    return world->harness ? 0 : -1;
}

static int
s_teardown (void **state)
{
    world_t *world = *state;
    if (world->holder) {
        sqlite3_exec (world->holder, "ROLLBACK", NULL, NULL, NULL);
        sqlite3_close (world->holder);
    }
    lapse_destroy (&world->node);
    harness_destroy (&world->harness);
    free (world);
    return 0;
}

static void
s_id (char *buffer, size_t size, const char *kind, int index)
{
    snprintf (buffer, size, "%s-%02d", kind, index);
}

static void
s_touch_active (world_t *world)
{
    char id[32];
    for (int index = 0; index < CLIENTS; index++) {
        s_id (id, sizeof (id), "active", index);
        assert_int_equal (lapse_touch (world->node, id), 0);
    }
    uint32_t unknown = 99;
    assert_int_equal (lapse_flush (world->node, &unknown), 0);
    assert_int_equal (unknown, 0);
}

/*  Takes the store's write lock from a connection of the test's own, as
    another writer or a backup tool would.  */
static void
s_lock_store (world_t *world)
{
    assert_int_equal (sqlite3_open (world->harness->store, &world->holder),
                      SQLITE_OK);
    sqlite3_busy_timeout (world->holder, 5000);
    char *error = NULL;
    int rc = sqlite3_exec (world->holder, "BEGIN EXCLUSIVE", NULL, NULL,
                           &error);
    if (rc != SQLITE_OK)
        print_error ("BEGIN EXCLUSIVE failed: %s\n", error);
    sqlite3_free (error);
    assert_int_equal (rc, SQLITE_OK);
}

static void
s_unlock_store (world_t *world)
{
    assert_int_equal (sqlite3_exec (world->holder, "ROLLBACK", NULL, NULL,
                                    NULL),
                      SQLITE_OK);
    assert_int_equal (sqlite3_close (world->holder), SQLITE_OK);
    world->holder = NULL;
}

static void
s_register_clients (world_t *world)
{
    char id[32];
    for (int index = 0; index < CLIENTS; index++) {
        s_id (id, sizeof (id), "active", index);
        assert_int_equal (lapse_register (world->node, id, NULL, 0, NULL), 0);
        s_id (id, sizeof (id), "stale", index);
        assert_int_equal (lapse_register (world->node, id, NULL, 0, NULL), 0);
    }
}

/*  Keeps the active clients touched until the stale ones are past
    stale-after and the registry past its grace.  */
static void
s_wait_until_stale (world_t *world, int64_t registered_at)
{
    int64_t until = registered_at + STALE_AFTER_MS + 300;
    int64_t deadline = harness_now_ms () + 5 * STALE_AFTER_MS;
    while (harness_now_ms () < until
           || harness_stat (world->node, "uptime_ms") <= STALE_AFTER_MS) {
        assert_true (harness_now_ms () < deadline);
        s_touch_active (world);
        harness_sleep_ms (TOUCH_PERIOD_MS);
    }
}

static void
s_check_clients_kept (world_t *world, const char *kind)
{
    char id[32];
    for (int index = 0; index < CLIENTS; index++) {
        s_id (id, sizeof (id), kind, index);
        assert_int_equal (harness_get (world->node, id, NULL), 0);
    }
}

static void
store_fault_sweep_recovers (void **state)
{
    world_t *world = *state;
    //  Every write that meets the lock stalls the registry's loop for
    //  the busy timeout, so a short one keeps requests quick meanwhile
    world->registry = harness_start_registry (
        world->harness, "registry", NULL, "--stale-after", "2s",
        "--tick-min-gap", "0ms", "--busy-timeout", "50ms",
        "--flush-interval", "1s", "--activity-granularity", "0ms", NULL);
    assert_non_null (world->registry);
    world->node = harness_client (world->harness, "node-a");
    assert_non_null (world->node);
    lapse_t *node = world->node;

    s_register_clients (world);
    s_wait_until_stale (world, harness_now_ms ());

    //  With nothing pending, the sweep goes straight to its first batch,
    //  which needs the write lock the test holds
    s_touch_active (world);
    assert_eventually (harness_stat (node, "pending_activity") == 0, 3000);
    s_lock_store (world);
    assert_int_equal (harness_sweep (world->harness, node,
                                     SWEEP_DEADLINE_MS),
                      0);
    assert_true (harness_stat (node, "batches_failed") >= 1);
    assert_true (harness_stat (node, "sweeps_failed") >= 1);
    assert_true (harness_stat (node, "store_errors") >= 1);
    assert_int_equal (harness_stat (node, "evicted"), 0);
    assert_true (proc_log_contains (world->registry,
                                    "msg=\"sweep batch failed\""));

    //  Reads, stats and touches are still served; a write reports busy
    s_touch_active (world);
    s_check_clients_kept (world, "active");
    s_check_clients_kept (world, "stale");
    assert_int_equal (harness_stat (node, "clients"), 2 * CLIENTS);
    assert_int_equal (lapse_register (node, "late", NULL, 0, NULL), -1);
    assert_int_equal (lapse_error_code (node), MSG_ERR_BUSY);

    //  Touched clients are pending now, so this sweep's batch must write
    //  their activity along with its removals, and fails as a whole
    uint64_t failed = harness_stat (node, "sweeps_failed");
    uint64_t batches_failed = harness_stat (node, "batches_failed");
    assert_int_equal (harness_sweep (world->harness, node,
                                     SWEEP_DEADLINE_MS),
                      0);
    assert_true (harness_stat (node, "sweeps_failed") > failed);
    assert_true (harness_stat (node, "batches_failed") > batches_failed);
    assert_int_equal (harness_stat (node, "evicted"), 0);
    assert_true (proc_running (world->registry));

    //  Keep the lock past stale-after while the active clients are
    //  touched, so that their stored activity is stale by the time the
    //  lock goes: the next sweep must write their touches instead of
    //  evicting them
    int64_t locked_until = harness_now_ms () + STALE_AFTER_MS + 500;
    while (harness_now_ms () < locked_until) {
        s_touch_active (world);
        harness_sleep_ms (TOUCH_PERIOD_MS);
    }
    s_touch_active (world);
    s_unlock_store (world);
    assert_int_equal (harness_sweep (world->harness, node,
                                     SWEEP_DEADLINE_MS),
                      0);

    assert_int_equal (harness_stat (node, "evicted"), CLIENTS);
    assert_int_equal (harness_stat (node, "clients"), CLIENTS);
    s_check_clients_kept (world, "active");
    char id[32];
    for (int index = 0; index < CLIENTS; index++) {
        s_id (id, sizeof (id), "stale", index);
        assert_int_equal (harness_get (node, id, NULL), 1);
    }

    harness_event_t *events = NULL;
    assert_int_equal (harness_events (node, 0, &events), CLIENTS);
    for (int index = 0; index < CLIENTS; index++) {
        assert_int_equal (events[index].seq, (uint64_t) index + 1);
        assert_int_equal (events[index].reason, MSG_REASON_STALE);
        assert_non_null (strstr (events[index].id, "stale-"));
        for (int other = 0; other < index; other++)
            assert_string_not_equal (events[index].id, events[other].id);
    }
    harness_events_free (&events);
    assert_int_equal (harness_stat (node, "last_seq"), CLIENTS);

    //  The write that was busy works now
    assert_int_equal (lapse_register (node, "late", NULL, 0, NULL), 0);
}

/*  While another connection holds the store's lock, every flush the
    timer tries waits out the busy timeout on the event loop.  The timer
    must back off instead of trying at every interval, so that requests
    stay quick and the log does not fill with the same error.  */
static void
store_fault_flushes_back_off (void **state)
{
    world_t *world = *state;
    world->registry = harness_start_registry (
        world->harness, "registry", NULL, "--busy-timeout", "100ms",
        "--flush-interval", "100ms", "--activity-granularity", "0ms", NULL);
    assert_non_null (world->registry);
    world->node = harness_client (world->harness, "node-a");
    assert_non_null (world->node);
    s_register_clients (world);

    //  About 3 s of touches against a locked store: at every interval
    //  that would be about 30 failed flushes, and with the backoff
    //  (100, 200, 400, 800 and 1600 ms) at most 6
    s_lock_store (world);
    int64_t locked_until = harness_now_ms () + 3000;
    int64_t slowest_ms = 0;
    while (harness_now_ms () < locked_until) {
        int64_t started = harness_now_ms ();
        s_touch_active (world);
        int64_t took_ms = harness_now_ms () - started;
        if (took_ms > slowest_ms)
            slowest_ms = took_ms;
        harness_sleep_ms (50);
    }
    int paused = proc_log_count (world->registry,
                                 "msg=\"store housekeeping paused\"");
    int failed = proc_log_count (world->registry,
                                 "msg=\"activity flush failed\"");
    if (failed > 8)
        print_error ("%d failed flushes logged in 3 s\n", failed);
    assert_true (paused >= 1);
    assert_true (failed >= 1);
    assert_true (failed <= 8);
    assert_true (slowest_ms < 2000);

    //  Once the lock is gone the pending touches reach the store
    s_unlock_store (world);
    assert_eventually (harness_stat (world->node, "pending_activity") == 0,
                       40000);
    assert_true (proc_log_contains (world->registry,
                                    "msg=\"store housekeeping resumed\""));
}

/*  A registry whose store file is deleted under it would go on
    acknowledging writes that the next start cannot see, so it must stop
    with an error instead.  */
static void
store_deleted_stops_registry (void **state)
{
    world_t *world = *state;
    world->registry = harness_start_registry (
        world->harness, "registry", NULL, "--flush-interval", "100ms", NULL);
    assert_non_null (world->registry);
    world->node = harness_client (world->harness, "node-a");
    assert_non_null (world->node);
    assert_int_equal (lapse_register (world->node, "kept", NULL, 0, NULL),
                      0);

    assert_int_equal (unlink (world->harness->store), 0);
    int code = proc_wait (world->registry, 10000);
    assert_int_equal (code, 1);
    assert_true (proc_log_contains (world->registry,
                                    "msg=\"store file lost\""));
    assert_true (proc_log_contains (world->registry, "was deleted"));
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown (store_fault_sweep_recovers, s_setup,
                                         s_teardown),
        cmocka_unit_test_setup_teardown (store_fault_flushes_back_off,
                                         s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (store_deleted_stops_registry,
                                         s_setup, s_teardown),
    };
    return harness_finish (cmocka_run_group_tests (tests, NULL, NULL));
}
