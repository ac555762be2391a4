/*  brake.c: the eviction brake.

    When a large share of the clients turns stale at once, the cause is
    more likely a fault around the registry (an API node that lost its
    link to the registry, a network partition, a clock problem) than that
    many clients quitting together.  So a sweep
    that would evict more than brake-share percent of all clients evicts
    only that many, oldest activity first, and logs a warning; the
    clients it leaves in place stay stale and the next sweep decides
    again.  Registries with fewer than brake-min-clients clients are
    exempt, because there a few clients already make a large share.

    The decision is made at every sweep start from the counts of that
    moment, so the brake lets go by itself once the stale share is back
    under the limit, and since every braked sweep still evicts its share,
    the stale share always comes down.  An operator can lift the brake
    for the next sweep or for a duration with the brake command.
*/
#include "log.h"
#include "registry.h"

/*  Returns the maximum number of clients one sweep may evict out of
    clients: the share rounded down, but at least 1 so that a braked
    registry still makes progress.  */
static uint64_t
s_limit (const brake_t *brake, uint64_t clients)
{
    if (clients == 0)
        return 0;
    uint64_t limit = clients / 100 * brake->share
                     + clients % 100 * brake->share / 100;
    return limit > 0 ? limit : 1;
}

static bool
s_released (brake_t *brake, int64_t now_mono)
{
    bool released = brake->release_next
                    || now_mono < brake->release_until_mono;
    brake->release_next = false;
    return released;
}

uint64_t
brake_decide (registry_t *self, uint64_t sweep, uint64_t stale)
{
    brake_t *brake = &self->brake;
    bool was_engaged = brake->engaged;

    //  The sweep counted the stale clients in memory, among these
    uint64_t clients = activity_count (self->activity);
    brake->clients = clients;
    brake->stale = stale;
    brake->limit = s_limit (brake, clients);
    brake->engaged = false;
    brake->held_back = 0;

    bool over = brake->enabled && clients >= brake->min_clients
                && stale > brake->limit;
    bool released = s_released (brake, zclock_mono ());
    if (!over) {
        if (was_engaged)
            log_info ("eviction brake cleared",
                      "sweep=%" PRIu64 " stale=%" PRIu64 " clients=%" PRIu64
                      " limit=%" PRIu64,
                      sweep, stale, clients, brake->limit);
        return UINT64_MAX;
    }
    if (released) {
        log_warn ("eviction brake released by operator",
                  "sweep=%" PRIu64 " stale=%" PRIu64 " clients=%" PRIu64
                  " limit=%" PRIu64,
                  sweep, stale, clients, brake->limit);
        return UINT64_MAX;
    }

    brake->engaged = true;
    brake->held_back = stale - brake->limit;
    self->stats.brake_sweeps++;
    log_warn ("eviction brake engaged",
              "sweep=%" PRIu64 " stale=%" PRIu64 " clients=%" PRIu64
              " limit=%" PRIu64 " held_back=%" PRIu64 " share_percent=%u",
              sweep, stale, clients, brake->limit, brake->held_back,
              brake->share);
    return brake->limit;
}

static void
s_release (registry_t *self, int64_t for_ms)
{
    brake_t *brake = &self->brake;
    self->stats.brake_releases++;
    if (for_ms == 0) {
        brake->release_next = true;
        log_warn ("eviction brake release requested",
                  "until=next_sweep engaged=%s held_back=%" PRIu64,
                  brake->engaged ? "true" : "false", brake->held_back);
        return;
    }
    brake->release_until_mono = zclock_mono () + for_ms;
    log_warn ("eviction brake release requested",
              "for_ms=%" PRId64 " engaged=%s held_back=%" PRIu64, for_ms,
              brake->engaged ? "true" : "false", brake->held_back);
}

void
brake_command (registry_t *self, const msg_brake_t *command,
               msg_brake_state_t *state)
{
    brake_t *brake = &self->brake;
    if (command->action == MSG_BRAKE_RELEASE)
        s_release (self, command->for_ms);

    int64_t left_ms = brake->release_until_mono - zclock_mono ();
    *state = (msg_brake_state_t) {
        .enabled = brake->enabled,
        .engaged = brake->engaged,
        .share = brake->share,
        .min_clients = brake->min_clients,
        .clients = brake->clients,
        .stale = brake->stale,
        .limit = brake->limit,
        .held_back = brake->held_back,
        .release_next = brake->release_next,
        .release_left_ms = left_ms > 0 ? (uint64_t) left_ms : 0,
    };
}
