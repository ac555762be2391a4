/*  sweep_store_faults.c: the registry's sweep and activity flush under
    storage faults, injected into lapse-registry-faulty through the
    control file of its faultvfs shim.

    Each case starts the faulty registry with STALE clients that are
    never touched and ACTIVE ones that a background thread keeps
    touching.  It then fails one step of the store's work: the activity
    flush before a batch, the batch's writes, each write of a sweep once
    in turn, a sync, a lock that stays busy, a full disk, or the
    periodic activity flush.  While the fault lasts, the registry must
    serve get, stats and touch with correct data, count the failure and
    log it with the sweep id.  Every removal so far must have exactly
    one event, with gapless seqs, and the file must pass PRAGMA
    integrity_check.  Once the fault is cleared, the next tick must
    complete the sweep.  After the registry stops, the test reads the
    store file itself.

    Usage: sweep_store_faults CASE.  CTest runs each case as a test of
    its own, so each gets its own process and timeout.
*/

#include <inttypes.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "harness.h"

#define STALE 8
#define ACTIVE 6
#define STALE_AFTER "3s"
#define STALE_AFTER_MS 3000
#define SWEEP_BATCH "3"
#define TOUCH_PERIOD_MS 100
#define SWEEP_DEADLINE_MS 15000
#define APPLY_DEADLINE_MS 5000
#define FLUSH_DEADLINE_MS 5000
#define REQUEST_TIMEOUT_MS 10000
#define TICK_MIN_GAP "300ms"
#define TICK_MIN_GAP_MS 300
#define TICK_RESEND_MS 1000

/*  More writes than any sweep of this fixture makes; the one-shot case
    fails if its sweep of fail-after values reaches it.  */
#define FAIL_AFTER_MAX 200

#define LOG_APPLIED "msg=\"fault control applied\""
#define LOG_INJECTED "msg=\"fault injected\""
#define LOG_BATCH_FAILED "msg=\"sweep batch failed\""
#define LOG_FLUSH_FAILED "msg=\"activity flush failed\""
#define LOG_SWEEP_FINISHED "msg=\"sweep finished\""

/*  A thread that touches every active client each TOUCH_PERIOD_MS over
    a connection of its own, as an API node would.  */
typedef struct {
    char endpoint[HARNESS_ENDPOINT_MAX];
    pthread_t thread;
    bool started;
    atomic_bool stop;
    atomic_uint_fast64_t rounds;        /* rounds the registry acknowledged */
    atomic_uint_fast64_t failures;      /* rounds with an error or unknown id */
    atomic_int_fast64_t last_sent_ms;   /* wall clock before the latest
                                           acknowledged round was sent */
} toucher_t;

typedef struct {
    harness_t *harness;
    proc_t *registry;
    lapse_t *node;
    char control[HARNESS_FILE_MAX];
    int64_t registered_ms;              /* wall clock after registration */
    int64_t sweep_seen_ms;              /* monotonic time the test saw the
                                           latest sweep start */
    toucher_t toucher;
} world_t;

/*  Counters that a fault must move, read before it is injected.  */
typedef struct {
    uint64_t batches_failed;
    uint64_t flushes_failed;
    uint64_t sweeps_failed;
    uint64_t store_errors;
    uint64_t flushes;
} counts_t;

static void
s_id (char *buffer, size_t size, const char *kind, int index)
{
    snprintf (buffer, size, "%s-%02d", kind, index);
}

/*  Returns N for an id "stale-N" with N below STALE, else -1.  */
static int
s_stale_index (const char *id)
{
    int index = -1;
    char rest;
    if (sscanf (id, "stale-%d%c", &index, &rest) != 1)
        return -1;
    return index >= 0 && index < STALE ? index : -1;
}

/*  ------------------------------------------------------------------
    The touching thread.  */

static void *
s_toucher_run (void *arg)
{
    toucher_t *toucher = arg;
    lapse_t *client = lapse_new (toucher->endpoint, "node-a");
    if (!client) {
        atomic_fetch_add (&toucher->failures, 1);
        return NULL;
    }
    lapse_set_timeout (client, REQUEST_TIMEOUT_MS);

    char id[32];
    while (!atomic_load (&toucher->stop)) {
        int64_t sent_ms = zclock_time ();
        bool acknowledged = true;
        for (int index = 0; index < ACTIVE && acknowledged; index++) {
            s_id (id, sizeof id, "active", index);
            acknowledged = lapse_touch (client, id) == 0;
        }
        uint32_t unknown = 0;
        acknowledged = acknowledged && lapse_flush (client, &unknown) == 0
                       && unknown == 0;
        if (acknowledged) {
            atomic_store (&toucher->last_sent_ms, sent_ms);
            atomic_fetch_add (&toucher->rounds, 1);
        }
        else
            atomic_fetch_add (&toucher->failures, 1);
        zclock_sleep (TOUCH_PERIOD_MS);
    }
    lapse_destroy (&client);
    return NULL;
}

static void
s_toucher_start (world_t *world)
{
    toucher_t *toucher = &world->toucher;
    snprintf (toucher->endpoint, sizeof toucher->endpoint, "%s",
              world->harness->commands);
    assert_int_equal (pthread_create (&toucher->thread, NULL, s_toucher_run,
                                      toucher), 0);
    toucher->started = true;
    assert_eventually (atomic_load (&toucher->rounds) >= 1, 5000);
}

static void
s_toucher_stop (world_t *world)
{
    toucher_t *toucher = &world->toucher;
    if (!toucher->started)
        return;
    atomic_store (&toucher->stop, true);
    pthread_join (toucher->thread, NULL);
    toucher->started = false;
}

/*  ------------------------------------------------------------------
    Set-up.  */

static int
s_setup (void **state)
{
    world_t *world = calloc (1, sizeof (world_t));
    *state = world;
    if (!world)
        return -1;
    world->harness = harness_new ("store_faults");
    return world->harness ? 0 : -1;
}

static int
s_teardown (void **state)
{
    world_t *world = *state;
    s_toucher_stop (world);
    lapse_destroy (&world->node);
    harness_destroy (&world->harness);
    free (world);
    return 0;
}

/*  Starts lapse-registry-faulty watching the control file "faults" and
    waits until it replies.  flush_interval and granularity are the
    registry's --flush-interval and --activity-granularity.  */
static void
s_start_registry (world_t *world, const char *flush_interval,
                  const char *granularity)
{
    harness_t *harness = world->harness;
    harness_path (harness, "faults", world->control, sizeof world->control);
    char control_env[HARNESS_FILE_MAX + 32];
    snprintf (control_env, sizeof control_env, "LAPSE_FAULT_CONTROL=%s",
              world->control);
    const char *env[] = { control_env, NULL };
    const char *args[] = {
        "--commands", harness->commands, "--events", harness->events,
        "--ticks", harness->ticks, "--store", harness->store,
        "--stale-after", STALE_AFTER, "--tick-min-gap", TICK_MIN_GAP,
        "--busy-timeout", "50ms", "--sweep-batch", SWEEP_BATCH,
        "--flush-interval", flush_interval,
        "--activity-granularity", granularity, NULL
    };
    world->registry = harness_spawn (harness, "registry",
                                     LAPSE_REGISTRY_FAULTY_BIN, args, env);
    assert_non_null (world->registry);
    world->node = harness_client (harness, "node-a");
    assert_non_null (world->node);

    //  The harness's 2 s request timeout is tight on a loaded machine
    //  with sanitizers, and a stats request that times out fails a case
    lapse_set_timeout (world->node, REQUEST_TIMEOUT_MS);

    uint64_t uptime = 0;
    assert_eventually (harness_stat_get (world->node, "uptime_ms", &uptime)
                       == 0
                       || !proc_running (world->registry), 10000);
    if (!proc_running (world->registry))
        fail_msg ("lapse-registry-faulty exited; see %s",
                  world->registry->err_path);
}

static void
s_register (world_t *world, const char *kind, int count)
{
    char id[32];
    for (int index = 0; index < count; index++) {
        s_id (id, sizeof id, kind, index);
        if (lapse_register (world->node, id, NULL, 0, NULL) != 0)
            fail_msg ("register %s failed: %s", id,
                      lapse_error (world->node));
    }
}

/*  Registers every client, starts touching the active ones and waits
    until the others are stale and the registry past its start-up
    grace.  */
static void
s_populate (world_t *world)
{
    s_register (world, "stale", STALE);
    s_register (world, "active", ACTIVE);
    world->registered_ms = zclock_time ();
    s_toucher_start (world);

    int64_t stale_at = world->registered_ms + STALE_AFTER_MS + 300;
    assert_eventually (zclock_time () > stale_at, 3 * STALE_AFTER_MS);
    assert_int_equal (harness_wait_past_grace (world->node,
                                               3 * STALE_AFTER_MS), 0);
}

/*  Registers the active clients again, which stores their activity as
    now, so that a sweep within stale-after has no activity to flush
    first and its first write is the batch's.  */
static void
s_refresh_active (world_t *world)
{
    s_register (world, "active", ACTIVE);
}

/*  ------------------------------------------------------------------
    Fault control.  */

/*  Writes command as the control file and waits until the registry's
    shim applied it.  The shim looks at the file on its next file call,
    and every get opens a read transaction, which makes one.  */
static void
s_inject (world_t *world, const char *command)
{
    int applied = proc_log_count (world->registry, LOG_APPLIED);
    char text[256];
    snprintf (text, sizeof text, "%s\n", command);
    assert_int_equal (harness_write_file (world->harness, "faults", text),
                      0);
    assert_eventually (harness_get (world->node, "active-00", NULL) == 0
                       && proc_log_count (world->registry, LOG_APPLIED)
                              > applied,
                       APPLY_DEADLINE_MS);
}

static void
s_counts (world_t *world, counts_t *counts)
{
    lapse_t *node = world->node;
    counts->batches_failed = harness_stat (node, "batches_failed");
    counts->flushes_failed = harness_stat (node, "flushes_failed");
    counts->sweeps_failed = harness_stat (node, "sweeps_failed");
    counts->store_errors = harness_stat (node, "store_errors");
    counts->flushes = harness_stat (node, "flushes");
    assert_true (counts->batches_failed != UINT64_MAX);
    assert_true (counts->flushes_failed != UINT64_MAX);
    assert_true (counts->sweeps_failed != UINT64_MAX);
    assert_true (counts->store_errors != UINT64_MAX);
    assert_true (counts->flushes != UINT64_MAX);
}

/*  Makes the registry run exactly one sweep from a tick and waits until
    it finished.  harness_sweep resends its tick every 200 ms, and on a
    loaded machine a resent tick can arrive after the first one's sweep
    finished and start a second sweep while the test checks the first.
    Here the registry ignores ticks within TICK_MIN_GAP of a sweep start,
    and a tick is resent only after TICK_RESEND_MS, which is needed
    only when the tick socket lost the first tick of a new connection.  */
static void
s_sweep (world_t *world)
{
    lapse_t *node = world->node;
    int64_t ready_ms = world->sweep_seen_ms + TICK_MIN_GAP_MS
                       + HARNESS_POLL_MS;
    assert_eventually (harness_now_ms () > ready_ms, 2 * TICK_MIN_GAP_MS);
    uint64_t before = 0;
    assert_int_equal (harness_stat_get (node, "sweeps", &before), 0);

    int64_t end = harness_now_ms () + SWEEP_DEADLINE_MS;
    uint64_t sweeps = before;
    while (sweeps == before) {
        assert_true (harness_now_ms () < end);
        assert_int_equal (harness_tick (world->harness, 100), 0);
        int64_t resend = harness_now_ms () + TICK_RESEND_MS;
        while (sweeps == before && harness_now_ms () < resend) {
            harness_sleep_ms (HARNESS_POLL_MS);
            assert_int_equal (harness_stat_get (node, "sweeps", &sweeps), 0);
        }
    }
    world->sweep_seen_ms = harness_now_ms ();
    assert_int_equal (sweeps, before + 1);
    assert_eventually (harness_stat (node, "sweep_running") == 0,
                       SWEEP_DEADLINE_MS);
}

/*  ------------------------------------------------------------------
    Checks.  */

/*  Returns true when one line of the registry's log contains every
    needle given (NULL-terminated).  */
static bool
s_log_has (world_t *world, ...)
{
    char *text = harness_read_file (world->registry->err_path, NULL);
    if (!text)
        return false;
    bool found = false;
    char *save = NULL;
    for (char *line = strtok_r (text, "\n", &save); line && !found;
         line = strtok_r (NULL, "\n", &save)) {
        va_list needles;
        va_start (needles, world);
        found = true;
        for (const char *needle = va_arg (needles, const char *); needle;
             needle = va_arg (needles, const char *))
            found = found && strstr (line, needle);
        va_end (needles);
    }
    free (text);
    return found;
}

/*  Fails unless one line of the registry's log has message (any
    message when NULL), the latest sweep's id and detail.  */
static void
s_check_sweep_failure_logged (world_t *world, const char *message,
                              const char *detail)
{
    uint64_t sweep = harness_stat (world->node, "last_sweep");
    char sweep_key[64];
    snprintf (sweep_key, sizeof sweep_key, "sweep=%" PRIu64 " ", sweep);
    bool logged = message
                      ? s_log_has (world, message, sweep_key, detail, NULL)
                      : s_log_has (world, sweep_key, detail, NULL);
    if (!logged)
        fail_msg ("no line with %s %s%s in %s", message ? message : "",
                  sweep_key, detail, world->registry->err_path);
}

/*  Checks the events against the clients that are gone.  There must be
    exactly one event per removed stale client and no other, with seqs 1
    to n and each prev the seq before, because all clients are on one
    node.  The stats must agree.  Returns n.  */
static int
s_check_events (world_t *world)
{
    lapse_t *node = world->node;
    bool removed[STALE];
    int removed_count = 0;
    char id[32];
    for (int index = 0; index < STALE; index++) {
        s_id (id, sizeof id, "stale", index);
        int rc = harness_get (node, id, NULL);
        assert_in_range (rc, 0, 1);
        removed[index] = rc == 1;
        removed_count += removed[index];
    }

    harness_event_t *events = NULL;
    int count = harness_events (node, 0, &events);
    assert_int_equal (count, removed_count);
    bool seen[STALE] = { false };
    for (int at = 0; at < count; at++) {
        assert_int_equal (events[at].seq, (uint64_t) at + 1);
        assert_int_equal (events[at].prev, (uint64_t) at);
        assert_int_equal (events[at].reason, MSG_REASON_STALE);
        int index = s_stale_index (events[at].id);
        if (index < 0 || !removed[index] || seen[index])
            fail_msg ("event %d is for \"%s\", which is not a removed stale "
                      "client without an earlier event", at + 1,
                      events[at].id);
        seen[index] = true;
    }
    harness_events_free (&events);

    assert_int_equal (harness_stat (node, "last_seq"), count);
    assert_int_equal (harness_stat (node, "evicted"), count);
    assert_int_equal (harness_stat (node, "clients"),
                      STALE + ACTIVE - count);
    return count;
}

/*  Checks that get, stats and touch are served with correct data: every
    active client is registered with activity no older than the latest
    acknowledged touch, and touches keep being acknowledged.  */
static void
s_check_serving (world_t *world)
{
    lapse_t *node = world->node;
    toucher_t *toucher = &world->toucher;
    int64_t touched_ms = atomic_load (&toucher->last_sent_ms);
    char id[32];
    for (int index = 0; index < ACTIVE; index++) {
        s_id (id, sizeof id, "active", index);
        int64_t activity = 0;
        assert_int_equal (harness_get (node, id, &activity), 0);
        if (activity < touched_ms)
            fail_msg ("%s has activity %" PRId64 ", older than its touch "
                      "sent at %" PRId64, id, activity, touched_ms);
    }

    assert_true (harness_stat (node, "uptime_ms") != UINT64_MAX);
    assert_int_equal (harness_stat (node, "sweep_running"), 0);

    uint64_t rounds = atomic_load (&toucher->rounds);
    assert_eventually (atomic_load (&toucher->rounds) >= rounds + 2, 5000);
    assert_int_equal (atomic_load (&toucher->failures), 0);
}

/*  Opens the store read-only on a connection of the test's own, which
    is allowed while the registry runs because only the registry
    writes.  */
static sqlite3 *
s_open_file (world_t *world)
{
    sqlite3 *db = NULL;
    int rc = sqlite3_open_v2 (world->harness->store, &db,
                              SQLITE_OPEN_READONLY, NULL);
    if (rc != SQLITE_OK)
        fail_msg ("opening %s read-only failed: %s", world->harness->store,
                  sqlite3_errmsg (db));
    sqlite3_busy_timeout (db, 2000);
    return db;
}

static int64_t
s_query (sqlite3 *db, const char *sql)
{
    sqlite3_stmt *stmt = NULL;
    assert_int_equal (sqlite3_prepare_v2 (db, sql, -1, &stmt, NULL),
                      SQLITE_OK);
    int rc = sqlite3_step (stmt);
    if (rc != SQLITE_ROW)
        fail_msg ("%s: %s", sql, sqlite3_errmsg (db));
    int64_t value = sqlite3_column_int64 (stmt, 0);
    sqlite3_finalize (stmt);
    return value;
}

/*  Runs PRAGMA integrity_check on the store file.  */
static void
s_check_integrity (world_t *world)
{
    sqlite3 *db = s_open_file (world);
    sqlite3_stmt *stmt = NULL;
    assert_int_equal (sqlite3_prepare_v2 (db, "PRAGMA integrity_check", -1,
                                          &stmt, NULL),
                      SQLITE_OK);
    assert_int_equal (sqlite3_step (stmt), SQLITE_ROW);
    assert_string_equal ((const char *) sqlite3_column_text (stmt, 0), "ok");
    assert_int_equal (sqlite3_step (stmt), SQLITE_DONE);
    sqlite3_finalize (stmt);
    assert_int_equal (sqlite3_close (db), SQLITE_OK);
}

/*  Checks everything a fault must leave intact while it lasts.  Returns
    the number of clients removed so far.  */
static int
s_check_during_fault (world_t *world)
{
    s_check_serving (world);
    s_check_integrity (world);
    assert_true (proc_running (world->registry));
    return s_check_events (world);
}

/*  Clears every fault and checks that the next tick completes the sweep:
    every stale client gone with one event each, every active one kept.  */
static void
s_check_recovers (world_t *world)
{
    s_inject (world, "clear");
    uint64_t sweeps_failed = harness_stat (world->node, "sweeps_failed");
    s_sweep (world);
    assert_int_equal (harness_stat (world->node, "sweeps_failed"),
                      sweeps_failed);

    uint64_t sweep = harness_stat (world->node, "last_sweep");
    char sweep_key[64];
    snprintf (sweep_key, sizeof sweep_key, "sweep=%" PRIu64 " ", sweep);
    assert_true (s_log_has (world, LOG_SWEEP_FINISHED, sweep_key, NULL));
    assert_int_equal (s_check_events (world), STALE);
    s_check_serving (world);
}

/*  Stops the touching and the registry, then reads the file: intact,
    one event row per stale client, the active clients with the
    activity of their last acknowledged touch, which the registry
    writes when it stops.  */
static void
s_stop_and_check_file (world_t *world)
{
    s_toucher_stop (world);
    int64_t touched_ms = atomic_load (&world->toucher.last_sent_ms);
    assert_int_equal (atomic_load (&world->toucher.failures), 0);
    assert_int_equal (proc_stop (world->registry, HARNESS_STOP_MS), 0);

    s_check_integrity (world);
    sqlite3 *db = s_open_file (world);
    assert_int_equal (s_query (db, "SELECT count(*) FROM events"), STALE);
    assert_int_equal (s_query (db, "SELECT count(DISTINCT id) FROM events"
                                   " WHERE id LIKE 'stale-%'"),
                      STALE);
    assert_int_equal (s_query (db, "SELECT min(seq) FROM events"), 1);
    assert_int_equal (s_query (db, "SELECT max(seq) FROM events"), STALE);
    assert_int_equal (s_query (db, "SELECT value FROM meta"
                                   " WHERE key = 'last_seq'"),
                      STALE);
    assert_int_equal (s_query (db, "SELECT count(*) FROM clients"
                                   " WHERE id LIKE 'stale-%'"),
                      0);
    assert_int_equal (s_query (db, "SELECT count(*) FROM clients"
                                   " WHERE id LIKE 'active-%'"),
                      ACTIVE);
    int64_t stored_ms = s_query (db, "SELECT min(last_activity_ms)"
                                     " FROM clients");
    if (stored_ms < touched_ms)
        fail_msg ("stored activity %" PRId64 " is older than the last "
                  "acknowledged touch, sent at %" PRId64, stored_ms,
                  touched_ms);
    assert_int_equal (sqlite3_close (db), SQLITE_OK);
}

/*  Injects command, runs a sweep that it fails, and checks the common
    outcome: the sweep and a store error are counted, a log line with
    message names the sweep and contains detail, nothing was removed,
    and the registry serves on.  Fills *before with the counters read
    before the sweep.  */
static void
s_sweep_fails (world_t *world, const char *command, const char *message,
               const char *detail, counts_t *before)
{
    s_inject (world, command);
    s_counts (world, before);
    s_sweep (world);

    lapse_t *node = world->node;
    assert_true (harness_stat (node, "sweeps_failed")
                 > before->sweeps_failed);
    assert_true (harness_stat (node, "store_errors") > before->store_errors);
    s_check_sweep_failure_logged (world, message, detail);
    assert_int_equal (s_check_during_fault (world), 0);
}

/*  ------------------------------------------------------------------
    Cases.  */

/*  The active clients' stored activity dates from their registration,
    so a sweep past stale-after finds them among its candidates and must
    write their newer activity, in the same transaction as its removals.
    That batch is what fails, and nothing is removed.  */
static void
sweep_refresh_write_fails (void **state)
{
    world_t *world = *state;
    s_start_registry (world, "60s", "1h");
    s_populate (world);

    counts_t before;
    s_sweep_fails (world, "write fail-after=0 persist=1", LOG_BATCH_FAILED,
                   "disk I/O error", &before);
    assert_true (harness_stat (world->node, "batches_failed")
                 > before.batches_failed);
    assert_int_equal (harness_stat (world->node, "evicted"), 0);

    //  The next tick tries again and fails again while the fault lasts
    s_sweep_fails (world, "write fail-after=0 persist=1", LOG_BATCH_FAILED,
                   "disk I/O error", &before);
    assert_true (harness_stat (world->node, "batches_failed")
                 > before.batches_failed);

    s_check_recovers (world);
    s_stop_and_check_file (world);
}

static void
sweep_batch_write_fails (void **state)
{
    world_t *world = *state;
    s_start_registry (world, "60s", "1h");
    s_populate (world);
    s_refresh_active (world);

    counts_t before;
    s_sweep_fails (world, "write fail-after=0 persist=1", LOG_BATCH_FAILED,
                   "disk I/O error", &before);
    assert_true (harness_stat (world->node, "batches_failed")
                 > before.batches_failed);
    assert_int_equal (harness_stat (world->node, "flushes_failed"),
                      before.flushes_failed);

    s_check_recovers (world);
    s_stop_and_check_file (world);
}

/*  Fails the sweep's writes once each, in turn: fail-after=0, 1, 2, ...
    until a sweep gets past every write.  In WAL mode a transaction's
    writes all happen at its commit, the frame that marks the commit
    last, so this fails each commit at every point.  Every batch writes
    the active clients' newer activity and removes stale clients in one
    transaction, so the later sweeps fail after earlier batches of the
    same sweep committed.  */
static void
sweep_each_write_fails_once (void **state)
{
    world_t *world = *state;
    s_start_registry (world, "60s", "1h");
    s_populate (world);
    lapse_t *node = world->node;

    uint64_t fail_after = 0;
    for (;; fail_after++) {
        assert_true (fail_after < FAIL_AFTER_MAX);
        char command[64];
        snprintf (command, sizeof command,
                  "write fail-after=%" PRIu64 " persist=0", fail_after);
        s_inject (world, command);
        int injected = proc_log_count (world->registry, LOG_INJECTED);
        counts_t before;
        s_counts (world, &before);

        s_sweep (world);
        if (proc_log_count (world->registry, LOG_INJECTED) == injected)
            break;

        if (harness_stat (node, "sweeps_failed") != before.sweeps_failed + 1)
            fail_msg ("write fail-after=%" PRIu64 " fired, yet the sweep "
                      "was not counted as failed", fail_after);
        assert_true (harness_stat (node, "store_errors")
                     > before.store_errors);
        s_check_sweep_failure_logged (world, LOG_BATCH_FAILED,
                                      "disk I/O error");
        s_check_during_fault (world);
    }

    //  At least the first write of the first batch failed once
    assert_true (fail_after > 0);
    assert_int_equal (s_check_events (world), STALE);
    s_check_serving (world);

    //  The last fault is still armed, and whether the checkpoint at stop
    //  reaches it depends on how many frames the WAL contains
    s_inject (world, "clear");
    s_stop_and_check_file (world);
}

/*  With synchronous=NORMAL a WAL commit does not sync, so a failing sync
    may not even be reached by a sweep.  Whichever way, a sweep that met
    it must be counted and logged as failed, and what was committed must
    survive the registry's stop, whose checkpoint syncs and fails too.  */
static void
sweep_sync_fails (void **state)
{
    world_t *world = *state;
    s_start_registry (world, "60s", "1h");
    s_populate (world);

    s_inject (world, "sync fail-after=0 persist=1");
    counts_t before;
    s_counts (world, &before);
    s_sweep (world);

    if (proc_log_contains (world->registry, LOG_INJECTED)) {
        assert_true (harness_stat (world->node, "sweeps_failed")
                     > before.sweeps_failed);
        s_check_sweep_failure_logged (world, NULL, "error=");
        s_check_during_fault (world);
        s_check_recovers (world);
        s_inject (world, "sync fail-after=0 persist=1");
    }
    else {
        assert_int_equal (harness_stat (world->node, "sweeps_failed"),
                          before.sweeps_failed);
        assert_int_equal (s_check_events (world), STALE);
        s_check_serving (world);
        s_check_integrity (world);
    }
    s_stop_and_check_file (world);
}

static void
sweep_lock_stays_busy (void **state)
{
    world_t *world = *state;
    s_start_registry (world, "60s", "1h");
    s_populate (world);
    s_refresh_active (world);

    counts_t before;
    s_sweep_fails (world, "lock fail-after=0 persist=1", LOG_BATCH_FAILED,
                   "busy=true", &before);
    assert_true (harness_stat (world->node, "batches_failed")
                 > before.batches_failed);
    assert_int_equal (harness_stat (world->node, "flushes_failed"),
                      before.flushes_failed);

    //  Other writes report busy, so a caller knows to retry
    assert_int_equal (lapse_register (world->node, "late", NULL, 0, NULL),
                      -1);
    assert_int_equal (lapse_error_code (world->node), MSG_ERR_BUSY);

    s_check_recovers (world);
    assert_int_equal (lapse_register (world->node, "late", NULL, 0, NULL),
                      0);
    assert_int_equal (lapse_deregister (world->node, "late"), 0);

    //  The deregistration is one more event, so check the file by hand
    s_toucher_stop (world);
    assert_int_equal (proc_stop (world->registry, HARNESS_STOP_MS), 0);
    s_check_integrity (world);
    sqlite3 *db = s_open_file (world);
    assert_int_equal (s_query (db, "SELECT count(*) FROM events"),
                      STALE + 1);
    assert_int_equal (s_query (db, "SELECT max(seq) - min(seq) + 1"
                                   " FROM events"),
                      STALE + 1);
    assert_int_equal (s_query (db, "SELECT count(*) FROM clients"), ACTIVE);
    assert_int_equal (sqlite3_close (db), SQLITE_OK);
}

static void
sweep_disk_full (void **state)
{
    world_t *world = *state;
    s_start_registry (world, "60s", "1h");
    s_populate (world);
    s_refresh_active (world);

    counts_t before;
    s_sweep_fails (world, "full fail-after=0 persist=1", LOG_BATCH_FAILED,
                   "database or disk is full", &before);
    assert_true (harness_stat (world->node, "batches_failed")
                 > before.batches_failed);

    s_check_recovers (world);
    s_stop_and_check_file (world);
}

/*  The periodic flush writes every touched client (granularity 0) and
    fails while the fault lasts.  Touches stay acknowledged and readable
    from memory, and the first flush after the fault writes them all.  */
static void
touch_flush_write_fails (void **state)
{
    world_t *world = *state;
    s_start_registry (world, "200ms", "0ms");
    lapse_t *node = world->node;
    s_register (world, "stale", STALE);
    s_register (world, "active", ACTIVE);
    world->registered_ms = zclock_time ();
    s_toucher_start (world);

    s_inject (world, "write fail-after=0 persist=1");
    counts_t before;
    s_counts (world, &before);
    assert_eventually (harness_stat (node, "flushes_failed")
                       >= before.flushes_failed + 2, FLUSH_DEADLINE_MS);
    assert_true (harness_stat (node, "store_errors")
                 >= before.store_errors + 2);
    assert_true (s_log_has (world, LOG_FLUSH_FAILED, "disk I/O error",
                            NULL));
    assert_true (harness_stat (node, "pending_activity") > 0);
    assert_int_equal (s_check_during_fault (world), 0);

    //  A sweep in the meantime fails at its batch, which must write the
    //  activity the flushes could not
    int64_t stale_at = world->registered_ms + STALE_AFTER_MS + 300;
    assert_eventually (zclock_time () > stale_at, 3 * STALE_AFTER_MS);
    assert_int_equal (harness_wait_past_grace (node, 3 * STALE_AFTER_MS), 0);
    s_sweep_fails (world, "write fail-after=0 persist=1", LOG_BATCH_FAILED,
                   "disk I/O error", &before);

    //  Flushes succeed again once the fault is gone
    s_inject (world, "clear");
    s_counts (world, &before);
    assert_eventually (harness_stat (node, "flushes") >= before.flushes + 2,
                       FLUSH_DEADLINE_MS);
    assert_int_equal (harness_stat (node, "flushes_failed"),
                      before.flushes_failed);

    s_check_recovers (world);
    s_stop_and_check_file (world);
}

int
main (int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown (sweep_refresh_write_fails, s_setup,
                                         s_teardown),
        cmocka_unit_test_setup_teardown (sweep_batch_write_fails, s_setup,
                                         s_teardown),
        cmocka_unit_test_setup_teardown (sweep_each_write_fails_once,
                                         s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (sweep_sync_fails, s_setup,
                                         s_teardown),
        cmocka_unit_test_setup_teardown (sweep_lock_stays_busy, s_setup,
                                         s_teardown),
        cmocka_unit_test_setup_teardown (sweep_disk_full, s_setup,
                                         s_teardown),
        cmocka_unit_test_setup_teardown (touch_flush_write_fails, s_setup,
                                         s_teardown),
    };
    size_t count = sizeof tests / sizeof tests[0];

    //  A filter that matches no case would pass with nothing run
    if (argc > 1) {
        bool known = false;
        for (size_t index = 0; index < count; index++)
            known = known || strcmp (argv[1], tests[index].name) == 0;
        if (!known) {
            fprintf (stderr, "sweep_store_faults: unknown case \"%s\"\n",
                     argv[1]);
            return 2;
        }
        cmocka_set_test_filter (argv[1]);
    }
    return harness_finish (cmocka_run_group_tests (tests, NULL, NULL));
}
