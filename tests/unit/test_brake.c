/*  test_brake.c: the eviction brake's decision at each sweep start and
    the brake command, on a registry state with only the parts the
    brake reads (settings, the in-memory client table, counters).  */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>

#include "registry.h"

typedef struct {
    registry_t registry;
    uint64_t sweep;             /* id of the next sweep to decide */
} world_t;

static void
s_add_clients (world_t *world, int count)
{
    size_t first = activity_count (world->registry.activity);
    for (int index = 0; index < count; index++) {
        char id[32];
        snprintf (id, sizeof (id), "c-%zu", first + (size_t) index);
        assert_int_equal (activity_add (world->registry.activity, id, 1), 0);
    }
}

/*  Removes count clients, as a sweep that evicted them would.  */
static void
s_remove_clients (world_t *world, uint64_t count)
{
    size_t total = activity_count (world->registry.activity);
    for (uint64_t index = 0; index < count; index++) {
        char id[32];
        snprintf (id, sizeof (id), "c-%zu", total - 1 - (size_t) index);
        activity_remove (world->registry.activity, id);
    }
}

static int
s_setup (void **state)
{
    world_t *world = calloc (1, sizeof (world_t));
    if (!world)
        return -1;
    world->registry.activity = activity_new ();
    if (!world->registry.activity)
        return -1;
    world->registry.brake.enabled = true;
    world->registry.brake.share = 20;
    world->registry.brake.min_clients = 100;
    world->sweep = 1;
    *state = world;
    return 0;
}

static int
s_teardown (void **state)
{
    world_t *world = *state;
    activity_destroy (&world->registry.activity);
    free (world);
    return 0;
}

static uint64_t
s_decide (world_t *world, uint64_t stale)
{
    return brake_decide (&world->registry, world->sweep++, stale);
}

static msg_brake_state_t
s_command (world_t *world, msg_brake_action_t action, int64_t for_ms)
{
    msg_brake_t command = { action, for_ms };
    msg_brake_state_t state;
    brake_command (&world->registry, &command, &state);
    return state;
}

static void
brake_engages_over_share (void **state)
{
    world_t *world = *state;
    s_add_clients (world, 200);

    assert_int_equal (s_decide (world, 100), 40);
    brake_t *brake = &world->registry.brake;
    assert_true (brake->engaged);
    assert_int_equal (brake->clients, 200);
    assert_int_equal (brake->stale, 100);
    assert_int_equal (brake->limit, 40);
    assert_int_equal (brake->held_back, 60);
    assert_int_equal (world->registry.stats.brake_sweeps, 1);
}

static void
brake_lets_share_pass (void **state)
{
    world_t *world = *state;
    s_add_clients (world, 200);

    assert_int_equal (s_decide (world, 40), UINT64_MAX);
    assert_false (world->registry.brake.engaged);
    assert_int_equal (world->registry.brake.held_back, 0);
    assert_int_equal (s_decide (world, 41), 40);
}

static void
brake_exempts_small_registry (void **state)
{
    world_t *world = *state;
    s_add_clients (world, 99);

    assert_int_equal (s_decide (world, 99), UINT64_MAX);
    assert_false (world->registry.brake.engaged);
    s_add_clients (world, 1);
    assert_int_equal (s_decide (world, 99), 20);
}

static void
brake_off_never_engages (void **state)
{
    world_t *world = *state;
    s_add_clients (world, 200);
    world->registry.brake.enabled = false;

    assert_int_equal (s_decide (world, 200), UINT64_MAX);
    assert_false (world->registry.brake.engaged);
    assert_int_equal (world->registry.stats.brake_sweeps, 0);
}

static void
brake_limit_is_at_least_one (void **state)
{
    world_t *world = *state;
    s_add_clients (world, 50);
    world->registry.brake.share = 1;
    world->registry.brake.min_clients = 0;

    assert_int_equal (s_decide (world, 10), 1);
    assert_int_equal (world->registry.brake.held_back, 9);
}

/*  Each braked sweep evicts its share, the next one decides again, and
    the brake lets go once the stale share is under the limit.  */
static void
brake_releases_itself_as_share_falls (void **state)
{
    world_t *world = *state;
    s_add_clients (world, 200);
    uint64_t stale = 100;
    int sweeps = 0;

    for (;;) {
        uint64_t clients = activity_count (world->registry.activity);
        uint64_t cap = s_decide (world, stale);
        sweeps++;
        if (cap == UINT64_MAX)
            break;
        assert_true (cap * 5 <= clients);
        assert_true (cap < stale);
        s_remove_clients (world, cap);
        stale -= cap;
        assert_true (sweeps < 10);
    }
    assert_false (world->registry.brake.engaged);
    assert_int_equal (world->registry.brake.held_back, 0);
    assert_true (stale * 5 <= activity_count (world->registry.activity));
    assert_int_equal (world->registry.stats.brake_sweeps,
                      (uint64_t) sweeps - 1);
}

static void
brake_release_lasts_one_sweep (void **state)
{
    world_t *world = *state;
    s_add_clients (world, 200);
    assert_int_equal (s_decide (world, 100), 40);

    msg_brake_state_t status = s_command (world, MSG_BRAKE_RELEASE, 0);
    assert_true (status.release_next);
    assert_int_equal (status.release_left_ms, 0);
    assert_int_equal (world->registry.stats.brake_releases, 1);

    assert_int_equal (s_decide (world, 100), UINT64_MAX);
    assert_false (world->registry.brake.engaged);
    assert_false (world->registry.brake.release_next);
    assert_int_equal (s_decide (world, 100), 40);
}

static void
brake_release_for_duration (void **state)
{
    world_t *world = *state;
    s_add_clients (world, 200);

    msg_brake_state_t status = s_command (world, MSG_BRAKE_RELEASE, 60000);
    assert_false (status.release_next);
    assert_true (status.release_left_ms > 50000);
    assert_true (status.release_left_ms <= 60000);
    assert_int_equal (s_decide (world, 100), UINT64_MAX);
    assert_int_equal (s_decide (world, 100), UINT64_MAX);

    //  Once the release ran out, the brake engages again
    world->registry.brake.release_until_mono = zclock_mono () - 1;
    assert_int_equal (s_decide (world, 100), 40);
    status = s_command (world, MSG_BRAKE_STATUS, 0);
    assert_int_equal (status.release_left_ms, 0);
}

static void
brake_status_reports_latest_sweep (void **state)
{
    world_t *world = *state;
    s_add_clients (world, 200);
    s_decide (world, 100);

    msg_brake_state_t status = s_command (world, MSG_BRAKE_STATUS, 0);
    assert_true (status.enabled);
    assert_true (status.engaged);
    assert_int_equal (status.share, 20);
    assert_int_equal (status.min_clients, 100);
    assert_int_equal (status.clients, 200);
    assert_int_equal (status.stale, 100);
    assert_int_equal (status.limit, 40);
    assert_int_equal (status.held_back, 60);
    assert_false (status.release_next);
    assert_int_equal (status.release_left_ms, 0);
    assert_int_equal (world->registry.stats.brake_releases, 0);
}

#define TEST(function) \
    cmocka_unit_test_setup_teardown (function, s_setup, s_teardown)

int
main (void)
{
    const struct CMUnitTest tests[] = {
        TEST (brake_engages_over_share),
        TEST (brake_lets_share_pass),
        TEST (brake_exempts_small_registry),
        TEST (brake_off_never_engages),
        TEST (brake_limit_is_at_least_one),
        TEST (brake_releases_itself_as_share_falls),
        TEST (brake_release_lasts_one_sweep),
        TEST (brake_release_for_duration),
        TEST (brake_status_reports_latest_sweep),
    };
    return cmocka_run_group_tests_name ("brake", tests, NULL, NULL);
}
