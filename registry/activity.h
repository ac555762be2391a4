/*  activity.h: every registered client's last activity, in memory.

    Touches are far more frequent than SQLite can absorb row by row, so
    a touch only raises a client's activity here and marks it pending.
    activity_collect picks the pending clients that must reach the store
    now and activity_mark_stored records that they did.  A client's
    activity in memory is never lower than in the store.
*/
#ifndef LAPSE_ACTIVITY_H
#define LAPSE_ACTIVITY_H

#include <stddef.h>
#include <stdint.h>

#include "store.h"

typedef struct activity_t activity_t;

activity_t *
activity_new (void);

void
activity_destroy (activity_t **self_p);

/*  Adds id with its activity as stored, or raises an existing entry's
    stored activity to stored_ms.  Returns 0, or -1 when out of memory.  */
int
activity_add (activity_t *self, const char *id, int64_t stored_ms);

/*  Removes id; does nothing when it is absent.  */
void
activity_remove (activity_t *self, const char *id);

/*  Raises id's activity to now_ms.  Returns 0, or -1 when id is not
    registered.  */
int
activity_touch (activity_t *self, const char *id, size_t id_len,
                int64_t now_ms);

/*  Returns id's activity in memory, or -1 when it is not registered.  */
int64_t
activity_get (activity_t *self, const char *id);

size_t
activity_count (activity_t *self);

/*  Called by activity_walk for each client it finds.  */
typedef void (activity_fn) (const char *id, int64_t activity_ms, void *arg);

/*  Calls fn for every client whose activity is before before_ms among
    up to slots slots of the table from slot from on, in no particular
    order, and returns where the next step starts, 0 once the walk
    reached the end.  fn must not add or remove clients.  A walk in
    several steps visits every client that stays in the table
    throughout, provided that activity_layout returns the same value
    before the first step and after the last.  A removal or a growth in
    between moves clients between slots.  */
size_t
activity_walk (activity_t *self, size_t from, size_t slots,
               int64_t before_ms, activity_fn *fn, void *arg);

/*  Returns a number that changes whenever clients move between slots.  */
uint64_t
activity_layout (activity_t *self);

/*  Returns how many clients have activity not yet in the store.  */
size_t
activity_pending_count (activity_t *self);

/*  Fills updates with up to max pending clients that must be written
    now: those whose activity moved at least granularity_ms past the
    stored one, and those whose stored activity is before cutoff_ms.
    Pass INT64_MIN as cutoff_ms for the first kind only, INT64_MAX for
    every pending client.  The ids point into the table and stay valid
    until the entry is removed.  Returns the number filled.  */
size_t
activity_collect (activity_t *self, int64_t granularity_ms,
                  int64_t cutoff_ms, store_activity_t *updates, size_t max);

/*  Records that updates[0 .. count - 1] reached the store; entries
    touched again since collection stay pending.  */
void
activity_mark_stored (activity_t *self, const store_activity_t *updates,
                      size_t count);

#endif
