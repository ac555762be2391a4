/*  wallclock.h: the registry's wall-clock time, kept safe from steps of
    the system clock.

    Persisted times are wall-clock milliseconds, and a sweep compares
    them with "now".  An administrator, NTP or a resumed virtual machine
    can step the wall clock, and then "now" moves by the step while the
    stored times of every client stay where they were.  Left alone, a
    forward step would evict active clients, and a backward step would
    keep silent clients for the length of the step.  The monotonic clock
    does not step, so each observation compares the progress of the two
    clocks since the previous one.  A difference larger than the jump
    limit is a jump.

    Two times come out of it:

      now:     the time the registry stamps activity, registrations and
               removals with.  It is the wall clock plus an offset that
               is 0 until the wall clock jumps backward.
      checked: the time a sweep judges staleness against, cutoff =
               checked - stale-after.  It is now minus a hold that is 0
               unless the wall clock jumped forward within the last
               stale-after.

    The rules:

      Backward jump by B: the offset grows by B, so now continues from
      where it was at the rate of the monotonic clock.  Stamps never go
      back, and a client that went silent before the jump is evicted
      stale-after of real time after its last activity, as without the
      jump.  The offset stays until a later forward jump uses it up or
      the registry restarts, so persisted times run ahead of the system
      clock by B meanwhile.

      Forward jump by F: a positive offset absorbs what it can; the rest
      (F') is added to the hold, and the hold restarts.  Stamps follow
      the new wall clock, but the cutoff stays at the time before the
      jump plus the monotonic time since.  A client active before the
      jump therefore keeps its full stale-after of real time.  Once
      stale-after of monotonic time has passed since the jump, every
      client active since the jump carries a stamp from the new clock,
      and every other one is already stale by the held cutoff, so the
      hold ends and the cutoff follows now again.

    checked advances with the monotonic clock through every jump and
    steps forward only when a hold ends.  A step smaller than the jump
    limit is taken as it is.  All functions take the clocks as arguments
    so that tests can drive them.
*/
#ifndef LAPSE_WALLCLOCK_H
#define LAPSE_WALLCLOCK_H

#include <stdint.h>

typedef struct {
    int64_t jump_limit_ms;      /* larger differences are jumps */
    int64_t wall_ms;            /* wall clock at the last observation */
    int64_t mono_ms;            /* monotonic clock at the same moment */
    int64_t offset_ms;          /* 0 or more, added to the wall clock */
    int64_t hold_ms;            /* 0 or more, now minus checked */
    int64_t hold_since_mono;    /* monotonic time of the latest forward
                                   jump, while hold_ms > 0 */
    uint64_t jumps;             /* jumps seen since wallclock_init */
} wallclock_t;

/*  What an observation found.  */
typedef enum {
    WALLCLOCK_STEADY,           /* no jump, no change of the hold */
    WALLCLOCK_JUMPED,           /* a jump in either direction */
    WALLCLOCK_HOLD_ENDED        /* stale-after passed since a forward
                                   jump; checked now equals now */
} wallclock_change_t;

/*  One observed jump.  jump_ms is wall_delta_ms - mono_delta_ms:
    positive when the wall clock stepped forward.  */
typedef struct {
    int64_t wall_delta_ms;
    int64_t mono_delta_ms;
    int64_t jump_ms;
} wallclock_jump_t;

/*  Starts with no offset and no hold, trusting the wall clock as it is
    now.  */
void
wallclock_init (wallclock_t *self, int64_t jump_limit_ms, int64_t wall_ms,
                int64_t mono_ms);

/*  Compares the clocks' progress since the last observation and applies
    the rules above.  stale_after_ms is the current threshold, which ends
    a hold.  Fills *jump (when not NULL) on WALLCLOCK_JUMPED.  A mono_ms
    older than the last observation is ignored.  */
wallclock_change_t
wallclock_observe (wallclock_t *self, int64_t wall_ms, int64_t mono_ms,
                   int64_t stale_after_ms, wallclock_jump_t *jump);

/*  Returns the time to stamp with, as of the last observation.  */
int64_t
wallclock_now (const wallclock_t *self);

/*  Returns the time to judge staleness against, as of the last
    observation: wallclock_now minus the hold.  */
int64_t
wallclock_checked (const wallclock_t *self);

#endif
