/*  removal.c: what follows every committed removal, whatever its reason.

    The event row was written by the store in the same transaction as
    the delete, and the store worker published it after the commit;
    here the client leaves the in-memory tables and the removal is
    counted and logged.
*/
#include "log.h"
#include "registry.h"

void
removal_committed (registry_t *self, const store_event_t *event)
{
    activity_remove (self->activity, event->id);
    sweep_set_own_threshold (self, event->id, 0);

    switch (event->reason) {
    case MSG_REASON_STALE:
        self->stats.evicted++;
        break;
    case MSG_REASON_DEREGISTERED:
        self->stats.deregistrations++;
        break;
    case MSG_REASON_OPERATOR:
        self->stats.operator_evictions++;
        break;
    default:
        break;
    }

    //  A large sweep removes many thousands of clients, so stale ones are
    //  logged at debug level and summed up in the sweep's own line
    log_level_t level = event->reason == MSG_REASON_STALE ? LOG_LEVEL_DEBUG
                                                          : LOG_LEVEL_INFO;
    if (log_enabled (level))
        log_write (level, "client removed",
                   "seq=%" PRIu64 " id=%s node=%s reason=%s sweep=%" PRIu64
                   " last_activity_ms=%" PRId64,
                   event->seq, log_quote (event->id),
                   log_quote (event->node), msg_reason_name (event->reason),
                   event->sweep, event->last_activity_ms);
}
