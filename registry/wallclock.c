/*  wallclock.c: jump detection and the registry's two times.  See
    wallclock.h for the rules.  */

#include <stddef.h>

#include "wallclock.h"

void
wallclock_init (wallclock_t *self, int64_t jump_limit_ms, int64_t wall_ms,
                int64_t mono_ms)
{
    *self = (wallclock_t) {
        .jump_limit_ms = jump_limit_ms,
        .wall_ms = wall_ms,
        .mono_ms = mono_ms,
    };
}

static int64_t
s_min (int64_t a, int64_t b)
{
    return a < b ? a : b;
}

/*  Applies one jump of step_ms (wall progress minus monotonic progress)
    so that checked continues where it was.  */
static void
s_apply_jump (wallclock_t *self, int64_t step_ms, int64_t mono_ms)
{
    if (step_ms < 0) {
        //  A hold is the amount stamps run ahead of checked, so a step
        //  back first shrinks the hold.  The rest becomes offset, which
        //  keeps stamps from falling behind checked
        int64_t back = -step_ms;
        int64_t absorbed = s_min (back, self->hold_ms);
        self->hold_ms -= absorbed;
        self->offset_ms += back - absorbed;
        return;
    }

    //  A step forward first cancels an earlier step back
    int64_t absorbed = s_min (step_ms, self->offset_ms);
    self->offset_ms -= absorbed;
    if (step_ms > absorbed) {
        self->hold_ms += step_ms - absorbed;
        self->hold_since_mono = mono_ms;
    }
}

wallclock_change_t
wallclock_observe (wallclock_t *self, int64_t wall_ms, int64_t mono_ms,
                   int64_t stale_after_ms, wallclock_jump_t *jump)
{
    if (mono_ms < self->mono_ms)
        return WALLCLOCK_STEADY;

    int64_t wall_delta = wall_ms - self->wall_ms;
    int64_t mono_delta = mono_ms - self->mono_ms;
    int64_t step = wall_delta - mono_delta;
    self->wall_ms = wall_ms;
    self->mono_ms = mono_ms;

    if (step > self->jump_limit_ms || step < -self->jump_limit_ms) {
        s_apply_jump (self, step, mono_ms);
        self->jumps++;
        if (jump)
            *jump = (wallclock_jump_t) { wall_delta, mono_delta, step };
        return WALLCLOCK_JUMPED;
    }

    if (self->hold_ms > 0
        && mono_ms - self->hold_since_mono >= stale_after_ms) {
        self->hold_ms = 0;
        return WALLCLOCK_HOLD_ENDED;
    }
    return WALLCLOCK_STEADY;
}

int64_t
wallclock_now (const wallclock_t *self)
{
    return self->wall_ms + self->offset_ms;
}

int64_t
wallclock_checked (const wallclock_t *self)
{
    return wallclock_now (self) - self->hold_ms;
}
