/*  test_wallclock.c: the registry's clock under wall-clock jumps.

    Each test drives the two clocks by hand.  A client "touched" at some
    moment carries the stamp wallclock_now returned then, and it is
    stale once its stamp is before wallclock_checked - STALE_AFTER_MS,
    the cutoff a sweep uses.  The tests check the two promises: a jump
    evicts no client that touched within stale-after of real (monotonic)
    time, and a silent client is stale after stale-after of real time.
*/

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>

#include "wallclock.h"

#define LIMIT_MS 60000
#define STALE_AFTER_MS (30 * 60000)
#define HOUR_MS (3600 * 1000LL)
#define START_WALL 1700000000000LL
#define START_MONO 5000

typedef struct {
    wallclock_t clock;
    int64_t wall;               /* the system's wall clock */
    int64_t mono;               /* the monotonic clock */
} world_t;

static void
s_init (world_t *world)
{
    world->wall = START_WALL;
    world->mono = START_MONO;
    wallclock_init (&world->clock, LIMIT_MS, world->wall, world->mono);
}

/*  Lets ms of real time pass on both clocks and observes them.  */
static wallclock_change_t
s_pass (world_t *world, int64_t ms)
{
    world->wall += ms;
    world->mono += ms;
    return wallclock_observe (&world->clock, world->wall, world->mono,
                              STALE_AFTER_MS, NULL);
}

/*  Steps the wall clock alone by ms and observes.  */
static wallclock_change_t
s_step (world_t *world, int64_t ms, wallclock_jump_t *jump)
{
    world->wall += ms;
    return wallclock_observe (&world->clock, world->wall, world->mono,
                              STALE_AFTER_MS, jump);
}

static int64_t
s_cutoff (const world_t *world)
{
    return wallclock_checked (&world->clock) - STALE_AFTER_MS;
}

static bool
s_is_stale (const world_t *world, int64_t stamp)
{
    return stamp < s_cutoff (world);
}

static void
wallclock_follows_steady_wall_clock (void **state)
{
    world_t world;
    s_init (&world);

    assert_int_equal (s_pass (&world, 1000), WALLCLOCK_STEADY);
    assert_int_equal (wallclock_now (&world.clock), world.wall);
    assert_int_equal (wallclock_checked (&world.clock), world.wall);
    assert_int_equal (world.clock.jumps, 0);
}

static void
wallclock_takes_step_within_limit (void **state)
{
    world_t world;
    s_init (&world);

    assert_int_equal (s_step (&world, LIMIT_MS, NULL), WALLCLOCK_STEADY);
    assert_int_equal (wallclock_now (&world.clock), world.wall);
    assert_int_equal (s_step (&world, -LIMIT_MS, NULL), WALLCLOCK_STEADY);
    assert_int_equal (wallclock_now (&world.clock), world.wall);
    assert_int_equal (world.clock.jumps, 0);
}

static void
wallclock_reports_forward_jump (void **state)
{
    world_t world;
    s_init (&world);
    world.mono += 1000;

    wallclock_jump_t jump;
    assert_int_equal (s_step (&world, 2 * HOUR_MS + 1000, &jump),
                      WALLCLOCK_JUMPED);
    assert_int_equal (jump.wall_delta_ms, 2 * HOUR_MS + 1000);
    assert_int_equal (jump.mono_delta_ms, 1000);
    assert_int_equal (jump.jump_ms, 2 * HOUR_MS);
    assert_int_equal (world.clock.jumps, 1);
    assert_int_equal (world.clock.hold_ms, 2 * HOUR_MS);
    assert_int_equal (world.clock.offset_ms, 0);
}

static void
wallclock_stamps_follow_forward_jump (void **state)
{
    world_t world;
    s_init (&world);
    s_step (&world, 2 * HOUR_MS, NULL);

    assert_int_equal (wallclock_now (&world.clock), world.wall);
    assert_int_equal (wallclock_checked (&world.clock),
                      world.wall - 2 * HOUR_MS);
}

static void
wallclock_forward_jump_keeps_active_client (void **state)
{
    world_t world;
    s_init (&world);
    s_pass (&world, STALE_AFTER_MS);
    int64_t touched = wallclock_now (&world.clock);

    s_step (&world, 2 * HOUR_MS, NULL);
    assert_false (s_is_stale (&world, touched));

    //  Just short of stale-after of real time since the touch
    s_pass (&world, STALE_AFTER_MS - 1);
    assert_false (s_is_stale (&world, touched));
    s_pass (&world, 2);
    assert_true (s_is_stale (&world, touched));
}

static void
wallclock_hold_ends_after_stale_after (void **state)
{
    world_t world;
    s_init (&world);
    s_step (&world, 2 * HOUR_MS, NULL);

    assert_int_equal (s_pass (&world, STALE_AFTER_MS - 1),
                      WALLCLOCK_STEADY);
    assert_int_equal (world.clock.hold_ms, 2 * HOUR_MS);
    assert_int_equal (s_pass (&world, 1), WALLCLOCK_HOLD_ENDED);
    assert_int_equal (world.clock.hold_ms, 0);
    assert_int_equal (wallclock_checked (&world.clock), world.wall);
}

/*  A client touched after a forward jump carries a new-clock stamp, so
    the end of the hold must not make it stale.  */
static void
wallclock_hold_end_keeps_new_stamps (void **state)
{
    world_t world;
    s_init (&world);
    s_step (&world, 2 * HOUR_MS, NULL);
    s_pass (&world, STALE_AFTER_MS / 2);
    int64_t touched = wallclock_now (&world.clock);

    assert_int_equal (s_pass (&world, STALE_AFTER_MS / 2),
                      WALLCLOCK_HOLD_ENDED);
    assert_false (s_is_stale (&world, touched));
    s_pass (&world, STALE_AFTER_MS / 2 - 1);
    assert_false (s_is_stale (&world, touched));
    s_pass (&world, 2);
    assert_true (s_is_stale (&world, touched));
}

/*  A second forward jump restarts the hold with both jumps in it.  A
    client touched between the jumps is then evicted late, at the end of
    the hold, but never early.  */
static void
wallclock_second_forward_jump_restarts_hold (void **state)
{
    world_t world;
    s_init (&world);
    s_step (&world, HOUR_MS, NULL);
    s_pass (&world, STALE_AFTER_MS / 2);
    int64_t touched = wallclock_now (&world.clock);
    s_step (&world, HOUR_MS, NULL);

    assert_int_equal (world.clock.hold_ms, 2 * HOUR_MS);
    assert_int_equal (s_pass (&world, STALE_AFTER_MS - 1),
                      WALLCLOCK_STEADY);
    assert_false (s_is_stale (&world, touched));
    assert_int_equal (s_pass (&world, 1), WALLCLOCK_HOLD_ENDED);
    assert_true (s_is_stale (&world, touched));
}

static void
wallclock_continues_through_backward_jump (void **state)
{
    world_t world;
    s_init (&world);
    s_pass (&world, 1000);
    int64_t before = wallclock_now (&world.clock);

    wallclock_jump_t jump;
    world.mono += 500;
    assert_int_equal (s_step (&world, 500 - 3 * HOUR_MS, &jump),
                      WALLCLOCK_JUMPED);
    assert_int_equal (jump.jump_ms, -3 * HOUR_MS);
    assert_int_equal (world.clock.offset_ms, 3 * HOUR_MS);
    assert_int_equal (wallclock_now (&world.clock), before + 500);
    assert_int_equal (wallclock_checked (&world.clock), before + 500);
}

/*  The registry's stamps only rise, so touches after a backward jump
    keep raising a client's activity.  */
static void
wallclock_backward_jump_never_lowers_stamps (void **state)
{
    world_t world;
    s_init (&world);
    int64_t previous = wallclock_now (&world.clock);

    s_step (&world, -3 * HOUR_MS, NULL);
    for (int round = 0; round < 10; round++) {
        s_pass (&world, 1000);
        int64_t stamp = wallclock_now (&world.clock);
        assert_true (stamp > previous);
        previous = stamp;
    }
}

static void
wallclock_backward_jump_evicts_silent_client (void **state)
{
    world_t world;
    s_init (&world);
    s_pass (&world, 1000);
    int64_t touched = wallclock_now (&world.clock);

    s_step (&world, -3 * HOUR_MS, NULL);
    s_pass (&world, STALE_AFTER_MS);
    assert_false (s_is_stale (&world, touched));
    s_pass (&world, 1);
    assert_true (s_is_stale (&world, touched));
}

static void
wallclock_backward_jump_keeps_active_client (void **state)
{
    world_t world;
    s_init (&world);
    s_step (&world, -3 * HOUR_MS, NULL);
    s_pass (&world, STALE_AFTER_MS);
    int64_t touched = wallclock_now (&world.clock);

    s_pass (&world, STALE_AFTER_MS);
    assert_false (s_is_stale (&world, touched));
}

static void
wallclock_forward_jump_cancels_backward_offset (void **state)
{
    world_t world;
    s_init (&world);
    s_step (&world, -3 * HOUR_MS, NULL);
    int64_t before = wallclock_now (&world.clock);

    assert_int_equal (s_step (&world, 3 * HOUR_MS, NULL), WALLCLOCK_JUMPED);
    assert_int_equal (world.clock.offset_ms, 0);
    assert_int_equal (world.clock.hold_ms, 0);
    assert_int_equal (wallclock_now (&world.clock), before);
    assert_int_equal (wallclock_now (&world.clock), world.wall);

    //  What is left over after the offset is held
    s_step (&world, -HOUR_MS, NULL);
    s_step (&world, 3 * HOUR_MS, NULL);
    assert_int_equal (world.clock.offset_ms, 0);
    assert_int_equal (world.clock.hold_ms, 2 * HOUR_MS);
    assert_int_equal (world.clock.jumps, 4);
}

static void
wallclock_backward_jump_shrinks_hold (void **state)
{
    world_t world;
    s_init (&world);
    s_step (&world, 3 * HOUR_MS, NULL);
    int64_t checked = wallclock_checked (&world.clock);

    s_step (&world, -HOUR_MS, NULL);
    assert_int_equal (world.clock.hold_ms, 2 * HOUR_MS);
    assert_int_equal (world.clock.offset_ms, 0);
    assert_int_equal (wallclock_checked (&world.clock), checked);

    s_step (&world, -3 * HOUR_MS, NULL);
    assert_int_equal (world.clock.hold_ms, 0);
    assert_int_equal (world.clock.offset_ms, HOUR_MS);
    assert_int_equal (wallclock_checked (&world.clock), checked);
}

static void
wallclock_ignores_monotonic_going_back (void **state)
{
    world_t world;
    s_init (&world);
    s_pass (&world, 1000);

    assert_int_equal (wallclock_observe (&world.clock, world.wall + HOUR_MS,
                                         world.mono - 1, STALE_AFTER_MS,
                                         NULL),
                      WALLCLOCK_STEADY);
    assert_int_equal (wallclock_now (&world.clock), world.wall);
    assert_int_equal (world.clock.jumps, 0);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (wallclock_follows_steady_wall_clock),
        cmocka_unit_test (wallclock_takes_step_within_limit),
        cmocka_unit_test (wallclock_reports_forward_jump),
        cmocka_unit_test (wallclock_stamps_follow_forward_jump),
        cmocka_unit_test (wallclock_forward_jump_keeps_active_client),
        cmocka_unit_test (wallclock_hold_ends_after_stale_after),
        cmocka_unit_test (wallclock_hold_end_keeps_new_stamps),
        cmocka_unit_test (wallclock_second_forward_jump_restarts_hold),
        cmocka_unit_test (wallclock_continues_through_backward_jump),
        cmocka_unit_test (wallclock_backward_jump_never_lowers_stamps),
        cmocka_unit_test (wallclock_backward_jump_evicts_silent_client),
        cmocka_unit_test (wallclock_backward_jump_keeps_active_client),
        cmocka_unit_test (wallclock_forward_jump_cancels_backward_offset),
        cmocka_unit_test (wallclock_backward_jump_shrinks_hold),
        cmocka_unit_test (wallclock_ignores_monotonic_going_back),
    };
    return cmocka_run_group_tests_name ("wallclock", tests, NULL, NULL);
}
