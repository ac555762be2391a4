/*  test_store_faults.c: the store under injected I/O faults.

    Every store in this program runs on the faultvfs shim, registered as
    SQLite's default VFS before the first test.  A sweep of fail-after
    values fails each I/O call of one store write in turn (fail-after=0,
    1, 2, ...) until the write gets past its last call.  After every
    failure the test checks that the store is exactly as before, both
    through the store's own connection and through a separate read-only
    connection on the real VFS, and after the success that the write did
    all it should.

    Fixture: STALE clients with old activity, of which the sweep in these
    tests evicts the BATCH oldest, ACTIVE clients with recent activity,
    and two earlier removals, so the next event seq is 3 and each node
    already has a previous event.
*/

#include <dirent.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "faultvfs.h"
#include "store.h"

#define BUSY_TIMEOUT_MS 100
#define STALE 6
#define ACTIVE 3
#define BATCH 4
#define NOW_MS 1000000
#define SWEEP_ID 77
#define PRIOR_EVENTS 2

/*  More calls than any one store write makes; a sweep that reaches it
    means the write never got past the fault.  */
#define FAIL_AFTER_MAX 500

static const char *const s_nodes[] = { "node-a", "node-b" };

typedef struct {
    char dir[64];
    char path[128];
    store_t *store;
} fixture_t;

static store_t *
s_open (const char *path)
{
    char error[512];
    store_t *store = store_open (path, BUSY_TIMEOUT_MS, error, sizeof error);
    if (!store)
        print_error ("store_open: %s\n", error);
    return store;
}

static void
s_remove_dir (const char *dir)
{
    DIR *handle = opendir (dir);
    if (!handle)
        return;
    struct dirent *entry;
    char path[512];
    while ((entry = readdir (handle))) {
        if (strcmp (entry->d_name, ".") == 0
            || strcmp (entry->d_name, "..") == 0)
            continue;
        snprintf (path, sizeof path, "%s/%s", dir, entry->d_name);
        unlink (path);
    }
    closedir (handle);
    rmdir (dir);
}

static void
s_id (char *buffer, size_t size, const char *kind, int index)
{
    snprintf (buffer, size, "%s-%d", kind, index);
}

static int
s_register (store_t *store, const char *id, const char *node, int64_t now_ms)
{
    bool created;
    if (store_register (store, id, node, "m", 1, 0, now_ms, &created)
        != 0) {
        print_error ("store_register %s: %s\n", id, store_error (store));
        return -1;
    }
    return 0;
}

/*  Fills the store: stale clients oldest first by index, active ones,
    and PRIOR_EVENTS deregistrations, one per node.  */
static int
s_populate (store_t *store)
{
    char id[32];
    for (int index = 0; index < STALE; index++) {
        s_id (id, sizeof id, "stale", index);
        if (s_register (store, id, s_nodes[index % 2], 1000 + index) != 0)
            return -1;
    }
    for (int index = 0; index < ACTIVE; index++) {
        s_id (id, sizeof id, "active", index);
        if (s_register (store, id, s_nodes[index % 2], 900000 + index) != 0)
            return -1;
    }
    for (int index = 0; index < PRIOR_EVENTS; index++) {
        s_id (id, sizeof id, "gone", index);
        store_event_t event;
        if (s_register (store, id, s_nodes[index % 2], 2000) != 0
            || store_remove (store, id, MSG_REASON_DEREGISTERED, 3000,
                             &event) != 0)
            return -1;
    }
    return 0;
}

static int
setup (void **state)
{
    fixture_t *fixture = calloc (1, sizeof *fixture);
    if (!fixture)
        return -1;
    *state = fixture;
    snprintf (fixture->dir, sizeof fixture->dir, "/tmp/lapse-faults-XXXXXX");
    if (!mkdtemp (fixture->dir))
        return -1;
    snprintf (fixture->path, sizeof fixture->path, "%s/lapse.db",
              fixture->dir);
    faultvfs_clear_all ();
    fixture->store = s_open (fixture->path);
    if (!fixture->store)
        return -1;
    return s_populate (fixture->store);
}

static int
teardown (void **state)
{
    fixture_t *fixture = *state;
    faultvfs_clear_all ();
    faultvfs_watch (NULL);
    store_destroy (&fixture->store);
    if (fixture->dir[0])
        s_remove_dir (fixture->dir);
    free (fixture);
    return 0;
}

static void
s_reopen (fixture_t *fixture)
{
    store_destroy (&fixture->store);
    fixture->store = s_open (fixture->path);
    assert_non_null (fixture->store);
}

/*  ------------------------------------------------------------------
    Snapshots: the whole content as text, to compare before and after.  */

static int
s_append_client (const store_client_t *client, void *arg)
{
    //  SQLite's printf reads %z as a string to free, so no %zu here
    sqlite3_str_appendf (arg, "client %s %s %lld %lld %llu\n", client->id,
                         client->node, (long long) client->registered_ms,
                         (long long) client->last_activity_ms,
                         (unsigned long long) client->meta_len);
    return 0;
}

static int
s_append_event (const store_event_t *event, void *arg)
{
    sqlite3_str_appendf (arg, "event %llu %llu %s %s %d %lld %lld %llu\n",
                         (unsigned long long) event->seq,
                         (unsigned long long) event->prev, event->id,
                         event->node, (int) event->reason,
                         (long long) event->last_activity_ms,
                         (long long) event->removed_ms,
                         (unsigned long long) event->sweep);
    return 0;
}

/*  Reads everything through the store's own connection, the one that
    met the fault.  Returns a string to free with sqlite3_free.  */
static char *
s_snapshot_store (store_t *store)
{
    sqlite3_str *text = sqlite3_str_new (NULL);
    uint64_t first = 0, last = 0, count = 0;
    assert_int_equal (store_list (store, NULL, NULL, 1000, s_append_client,
                                  text), 0);
    assert_int_equal (store_events_since (store, 0, NULL, 1000,
                                          s_append_event, text), 0);
    assert_int_equal (store_event_range (store, &first, &last), 0);
    assert_int_equal (store_client_count (store, &count), 0);
    sqlite3_str_appendf (text, "range %llu %llu count %llu\n",
                         (unsigned long long) first,
                         (unsigned long long) last,
                         (unsigned long long) count);
    return sqlite3_str_finish (text);
}

static void
s_append_query (sqlite3 *db, const char *sql, sqlite3_str *text)
{
    sqlite3_stmt *stmt = NULL;
    assert_int_equal (sqlite3_prepare_v2 (db, sql, -1, &stmt, NULL),
                      SQLITE_OK);
    int rc;
    while ((rc = sqlite3_step (stmt)) == SQLITE_ROW) {
        for (int column = 0; column < sqlite3_column_count (stmt); column++)
            sqlite3_str_appendf (text, "%s%s", column ? " " : "",
                                 (const char *) sqlite3_column_text (stmt,
                                                                     column));
        sqlite3_str_appendchar (text, 1, '\n');
    }
    assert_int_equal (rc, SQLITE_DONE);
    sqlite3_finalize (stmt);
}

/*  Appends every row of every table, each table in the order of its
    first column.  */
static void
s_append_tables (sqlite3 *db, sqlite3_str *text)
{
    sqlite3_stmt *tables = NULL;
    assert_int_equal (sqlite3_prepare_v2 (db, "SELECT name FROM sqlite_master"
                                          " WHERE type = 'table'"
                                          " ORDER BY name", -1, &tables,
                                          NULL),
                      SQLITE_OK);
    while (sqlite3_step (tables) == SQLITE_ROW) {
        const char *name = (const char *) sqlite3_column_text (tables, 0);
        char *sql = sqlite3_mprintf ("SELECT * FROM \"%w\" ORDER BY 1",
                                     name);
        sqlite3_str_appendf (text, "table %s\n", name);
        s_append_query (db, sql, text);
        sqlite3_free (sql);
    }
    sqlite3_finalize (tables);
}

/*  Reads every table, as committed in the file, through a new read-only
    connection on the real VFS, so the shim neither counts nor fails its
    calls.  Returns a string to free with sqlite3_free.  */
static char *
s_snapshot_file (const char *path)
{
    sqlite3 *db = NULL;
    assert_int_equal (sqlite3_open_v2 (path, &db, SQLITE_OPEN_READONLY,
                                       "unix"),
                      SQLITE_OK);
    sqlite3_str *text = sqlite3_str_new (NULL);
    s_append_tables (db, text);
    s_append_query (db, "PRAGMA integrity_check", text);
    assert_int_equal (sqlite3_close (db), SQLITE_OK);
    return sqlite3_str_finish (text);
}

typedef struct {
    char *store;
    char *file;
} snapshot_t;

static void
s_snapshot (fixture_t *fixture, snapshot_t *snapshot)
{
    snapshot->store = s_snapshot_store (fixture->store);
    snapshot->file = s_snapshot_file (fixture->path);
}

static void
s_snapshot_free (snapshot_t *snapshot)
{
    sqlite3_free (snapshot->store);
    sqlite3_free (snapshot->file);
    snapshot->store = snapshot->file = NULL;
}

/*  Fails the test unless the store reads as in before, through both
    connections, and passes its integrity check.  */
static void
s_check_unchanged (fixture_t *fixture, const snapshot_t *before,
                   uint64_t fail_after)
{
    snapshot_t now;
    s_snapshot (fixture, &now);
    if (strcmp (now.store, before->store) != 0)
        print_error ("fail-after=%" PRIu64 ": the store's connection reads"
                     "\n%s\nexpected\n%s\n", fail_after, now.store,
                     before->store);
    if (strcmp (now.file, before->file) != 0)
        print_error ("fail-after=%" PRIu64 ": the file reads\n%s\n"
                     "expected\n%s\n", fail_after, now.file, before->file);
    assert_string_equal (now.store, before->store);
    assert_string_equal (now.file, before->file);
    s_snapshot_free (&now);

    char result[256];
    assert_int_equal (store_integrity_check (fixture->store, result,
                                             sizeof result), 0);
    assert_string_equal (result, "ok");
}

/*  ------------------------------------------------------------------
    The fail-after sweep.  */

typedef int (write_fn) (fixture_t *fixture, void *arg);

/*  How a store write runs in the fail-after sweep.  */
typedef struct {
    write_fn *write;
    void *arg;
    bool cold;          /* reopen the store first, emptying its cache */
} run_t;

typedef struct {
    store_candidate_t evict[BATCH];
    store_event_t events[BATCH];
    uint32_t count;
} batch_t;

/*  Applies the sweep that decided, from memory, to evict the BATCH
    oldest stale clients at the activity they were registered with.  The
    candidates carry no node, so the store fills it in.  */
static int
s_evict (fixture_t *fixture, void *arg)
{
    batch_t *batch = arg;
    memset (batch->evict, 0, sizeof batch->evict);
    for (int index = 0; index < BATCH; index++) {
        s_id (batch->evict[index].id, sizeof batch->evict[index].id, "stale",
              index);
        batch->evict[index].last_activity_ms = 1000 + index;
    }
    batch->count = 99;
    return store_apply_sweep (fixture->store, batch->evict, BATCH, SWEEP_ID,
                              NOW_MS, batch->events, &batch->count);
}

/*  Runs the write with the call numbered fail_after (from 0) of kind
    failing once.  Returns the write's result and sets *fired to whether
    the fault was reached.  */
static int
s_run_failing (fixture_t *fixture, faultvfs_kind_t kind, uint64_t fail_after,
               const run_t *run, bool *fired)
{
    if (run->cold)
        s_reopen (fixture);
    uint64_t failures = faultvfs_failures (kind);
    faultvfs_set (kind, fail_after, false);
    int rc = run->write (fixture, run->arg);
    *fired = faultvfs_failures (kind) > failures;
    faultvfs_clear (kind);
    return rc;
}

/*  Fails each call of kind that the write makes, in turn, and checks
    after every failure that the write returned -1 with expected_error in
    the store's message and left the store unchanged.  Returns how many
    calls failed; the last run of the write succeeded.  */
static uint64_t
s_fail_each_call (fixture_t *fixture, faultvfs_kind_t kind,
                  const char *expected_error, const run_t *run)
{
    snapshot_t before;
    s_snapshot (fixture, &before);

    uint64_t fail_after = 0;
    for (;; fail_after++) {
        assert_true (fail_after < FAIL_AFTER_MAX);
        bool fired;
        int rc = s_run_failing (fixture, kind, fail_after, run, &fired);
        if (!fired) {
            if (rc != 0)
                print_error ("no %s fault left, yet the write failed: %s\n",
                             faultvfs_kind_name (kind),
                             store_error (fixture->store));
            assert_int_equal (rc, 0);
            break;
        }
        if (rc != -1)
            print_error ("%s fail-after=%" PRIu64 " fired, yet the write "
                         "returned %d\n", faultvfs_kind_name (kind),
                         fail_after, rc);
        assert_int_equal (rc, -1);
        const char *error = store_error (fixture->store);
        if (!strstr (error, expected_error))
            print_error ("%s fail-after=%" PRIu64 ": error \"%s\", expected"
                         " it to contain \"%s\"\n", faultvfs_kind_name (kind),
                         fail_after, error, expected_error);
        assert_non_null (strstr (error, expected_error));
        assert_false (store_busy (fixture->store));
        s_check_unchanged (fixture, &before, fail_after);
    }
    s_snapshot_free (&before);
    return fail_after;
}

/*  Checks that the batch removed the BATCH oldest stale clients, with
    gapless seqs after the prior events, prev linking each node's events
    and each node taken from the removed row, and that everything else
    is still there.  */
static void
s_check_evicted (fixture_t *fixture, const batch_t *batch)
{
    store_t *store = fixture->store;
    assert_int_equal (batch->count, BATCH);

    //  The prior events are seq 1 (node-a) and 2 (node-b)
    uint64_t node_last[2] = { 1, 2 };
    char id[32];
    for (int index = 0; index < BATCH; index++) {
        const store_event_t *event = &batch->events[index];
        s_id (id, sizeof id, "stale", index);
        assert_string_equal (event->id, id);
        assert_string_equal (event->node, s_nodes[index % 2]);
        assert_string_equal (batch->evict[index].node, s_nodes[index % 2]);
        assert_int_equal (event->seq, PRIOR_EVENTS + 1 + index);
        assert_int_equal (event->prev, node_last[index % 2]);
        node_last[index % 2] = event->seq;
        assert_int_equal (event->reason, MSG_REASON_STALE);
        assert_int_equal (event->sweep, SWEEP_ID);
        assert_int_equal (event->last_activity_ms, 1000 + index);
    }

    store_client_t client;
    for (int index = 0; index < STALE; index++) {
        s_id (id, sizeof id, "stale", index);
        assert_int_equal (store_get (store, id, &client),
                          index < BATCH ? STORE_NOT_FOUND : 0);
    }
    for (int index = 0; index < ACTIVE; index++) {
        s_id (id, sizeof id, "active", index);
        assert_int_equal (store_get (store, id, &client), 0);
    }
    uint64_t first = 0, last = 0, count = 0;
    assert_int_equal (store_event_range (store, &first, &last), 0);
    assert_int_equal (first, 1);
    assert_int_equal (last, PRIOR_EVENTS + BATCH);
    assert_int_equal (store_client_count (store, &count), 0);
    assert_int_equal (count, STALE - BATCH + ACTIVE);
}

/*  Checks the file through a connection of its own: one event row per
    removal, seqs gapless, last_seq matching.  */
static void
s_check_file_events (fixture_t *fixture)
{
    sqlite3 *db = NULL;
    assert_int_equal (sqlite3_open_v2 (fixture->path, &db,
                                       SQLITE_OPEN_READONLY, "unix"),
                      SQLITE_OK);
    sqlite3_stmt *stmt = NULL;
    assert_int_equal (sqlite3_prepare_v2 (db,
        "SELECT count(*), min(seq), max(seq), count(DISTINCT id),"
        " (SELECT value FROM meta WHERE key = 'last_seq') FROM events",
        -1, &stmt, NULL), SQLITE_OK);
    assert_int_equal (sqlite3_step (stmt), SQLITE_ROW);
    assert_int_equal (sqlite3_column_int64 (stmt, 0), PRIOR_EVENTS + BATCH);
    assert_int_equal (sqlite3_column_int64 (stmt, 1), 1);
    assert_int_equal (sqlite3_column_int64 (stmt, 2), PRIOR_EVENTS + BATCH);
    assert_int_equal (sqlite3_column_int64 (stmt, 3), PRIOR_EVENTS + BATCH);
    assert_int_equal (sqlite3_column_int64 (stmt, 4), PRIOR_EVENTS + BATCH);
    sqlite3_finalize (stmt);
    assert_int_equal (sqlite3_close (db), SQLITE_OK);
}

static void
s_check_batch_done (fixture_t *fixture, const batch_t *batch)
{
    s_check_evicted (fixture, batch);
    s_check_file_events (fixture);

    //  A fresh connection recovers the file from the WAL alone
    s_reopen (fixture);
    s_check_evicted (fixture, batch);
    char result[256];
    assert_int_equal (store_integrity_check (fixture->store, result,
                                             sizeof result), 0);
}

/*  ------------------------------------------------------------------
    Tests.  */

static void
apply_sweep_survives_each_failed_write (void **state)
{
    fixture_t *fixture = *state;
    batch_t batch;
    run_t run = { .write = s_evict, .arg = &batch };
    uint64_t failed = s_fail_each_call (fixture, FAULTVFS_WRITE,
                                        "disk I/O error", &run);
    //  A WAL commit writes each changed page as a frame header and the
    //  page itself, and the batch changes several pages
    assert_true (failed >= 4);
    s_check_batch_done (fixture, &batch);
}

/*  The same with a new connection for every run, so each failure's
    leftovers in the WAL meet the close's checkpoint and a fresh open.  */
static void
apply_sweep_survives_failed_write_reopened (void **state)
{
    fixture_t *fixture = *state;
    batch_t batch;
    run_t run = { .write = s_evict, .arg = &batch, .cold = true };
    uint64_t failed = s_fail_each_call (fixture, FAULTVFS_WRITE,
                                        "disk I/O error", &run);
    assert_true (failed >= 4);
    s_check_batch_done (fixture, &batch);
}

/*  With tombstones on, each removal also writes a tombstone in the same
    transaction, so a failure must leave none behind.  The store stays
    open across the runs, because reopening turns tombstones off.  */
static void
apply_sweep_with_tombstones_survives_each_failed_write (void **state)
{
    fixture_t *fixture = *state;
    store_set_tombstones (fixture->store, true);
    batch_t batch;
    run_t run = { .write = s_evict, .arg = &batch };
    uint64_t failed = s_fail_each_call (fixture, FAULTVFS_WRITE,
                                        "disk I/O error", &run);
    assert_true (failed >= 4);
    s_check_batch_done (fixture, &batch);

    char id[32];
    store_tombstone_t tombstone;
    for (int index = 0; index < STALE; index++) {
        s_id (id, sizeof id, "stale", index);
        int found = store_get_tombstone (fixture->store, id, &tombstone);
        if (index >= BATCH) {
            assert_int_equal (found, STORE_NOT_FOUND);
            continue;
        }
        assert_int_equal (found, 0);
        assert_int_equal (tombstone.seq, PRIOR_EVENTS + 1 + index);
        assert_string_equal (tombstone.node, s_nodes[index % 2]);
        assert_int_equal (tombstone.reason, MSG_REASON_STALE);
        assert_int_equal (tombstone.last_activity_ms, 1000 + index);
        assert_int_equal (tombstone.removed_ms, NOW_MS);
    }
}

static void
apply_sweep_survives_disk_full (void **state)
{
    fixture_t *fixture = *state;
    batch_t batch;
    run_t run = { .write = s_evict, .arg = &batch };
    uint64_t failed = s_fail_each_call (fixture, FAULTVFS_FULL,
                                        "database or disk is full", &run);
    assert_true (failed >= 4);
    s_check_batch_done (fixture, &batch);
}

static void
apply_sweep_survives_each_failed_read (void **state)
{
    fixture_t *fixture = *state;

    //  A warm page cache serves the batch without a read, so each run
    //  starts on a new connection
    batch_t batch;
    run_t run = { .write = s_evict, .arg = &batch, .cold = true };
    uint64_t failed = s_fail_each_call (fixture, FAULTVFS_READ,
                                        "disk I/O error", &run);
    assert_true (failed >= 4);
    s_check_batch_done (fixture, &batch);
}

static void
apply_sweep_reports_busy_lock (void **state)
{
    fixture_t *fixture = *state;
    snapshot_t before;
    s_snapshot (fixture, &before);

    faultvfs_set (FAULTVFS_LOCK, 0, true);
    batch_t batch;
    uint64_t failures = faultvfs_failures (FAULTVFS_LOCK);
    assert_int_equal (s_evict (fixture, &batch), -1);
    assert_int_equal (batch.count, 0);
    assert_true (store_busy (fixture->store));
    //  The busy handler retried the lock until the busy timeout
    assert_true (faultvfs_failures (FAULTVFS_LOCK) > failures + 1);
    faultvfs_clear (FAULTVFS_LOCK);

    s_check_unchanged (fixture, &before, 0);
    s_snapshot_free (&before);
    assert_int_equal (s_evict (fixture, &batch), 0);
    s_check_batch_done (fixture, &batch);
}

/*  In WAL mode with synchronous=NORMAL a commit does not sync; only a
    checkpoint does, and SQLite ignores a failed automatic checkpoint.
    So a failing fsync cannot fail a batch, and what the batch committed
    must survive a close whose checkpoint fails.  */
static void
apply_sweep_kept_when_sync_fails (void **state)
{
    fixture_t *fixture = *state;
    faultvfs_set (FAULTVFS_SYNC, 0, true);
    batch_t batch;
    assert_int_equal (s_evict (fixture, &batch), 0);
    assert_int_equal (batch.count, BATCH);

    uint64_t failures = faultvfs_failures (FAULTVFS_SYNC);
    store_destroy (&fixture->store);
    assert_true (faultvfs_failures (FAULTVFS_SYNC) > failures);
    faultvfs_clear (FAULTVFS_SYNC);

    fixture->store = s_open (fixture->path);
    assert_non_null (fixture->store);
    s_check_batch_done (fixture, &batch);
}

typedef struct {
    store_activity_t updates[ACTIVE + 1];
    char ids[ACTIVE + 1][32];
} activity_batch_t;

static int
s_write_activity (fixture_t *fixture, void *arg)
{
    activity_batch_t *batch = arg;
    return store_write_activity (fixture->store, batch->updates, ACTIVE + 1);
}

static void
write_activity_survives_each_failed_write (void **state)
{
    fixture_t *fixture = *state;

    //  Every active client plus the oldest stale one, raised to now, as
    //  a sweep's flush before its batch would write them
    activity_batch_t batch;
    for (int index = 0; index <= ACTIVE; index++) {
        s_id (batch.ids[index], sizeof batch.ids[index],
              index < ACTIVE ? "active" : "stale", index < ACTIVE ? index : 0);
        batch.updates[index].id = batch.ids[index];
        batch.updates[index].last_activity_ms = NOW_MS + index;
    }
    run_t run = { .write = s_write_activity, .arg = &batch };
    uint64_t failed = s_fail_each_call (fixture, FAULTVFS_WRITE,
                                        "disk I/O error", &run);
    assert_true (failed >= 2);

    store_client_t client;
    for (int index = 0; index <= ACTIVE; index++) {
        assert_int_equal (store_get (fixture->store, batch.ids[index],
                                     &client), 0);
        assert_int_equal (client.last_activity_ms, NOW_MS + index);
    }

    //  A sweep that decided on stale-0 before the write keeps it, since
    //  its stored activity is now newer than the one the sweep saw
    batch_t evicted;
    assert_int_equal (s_evict (fixture, &evicted), 0);
    assert_int_equal (evicted.count, BATCH - 1);
    assert_string_equal (evicted.events[0].id, "stale-1");
    assert_int_equal (evicted.events[0].seq, PRIOR_EVENTS + 1);
    assert_int_equal (store_get (fixture->store, "stale-0", &client), 0);
    assert_int_equal (client.last_activity_ms, NOW_MS + ACTIVE);
}

static int
s_remove_active (fixture_t *fixture, void *arg)
{
    return store_remove (fixture->store, "active-0", MSG_REASON_OPERATOR,
                         NOW_MS, arg);
}

static void
remove_survives_each_failed_write (void **state)
{
    fixture_t *fixture = *state;
    store_event_t event;
    run_t run = { .write = s_remove_active, .arg = &event };
    uint64_t failed = s_fail_each_call (fixture, FAULTVFS_WRITE,
                                        "disk I/O error", &run);
    assert_true (failed >= 4);

    //  active-0 is on node-a, whose previous event is seq 1
    assert_int_equal (event.seq, PRIOR_EVENTS + 1);
    assert_int_equal (event.prev, 1);
    assert_string_equal (event.id, "active-0");
    assert_int_equal (event.reason, MSG_REASON_OPERATOR);
    store_client_t client;
    assert_int_equal (store_get (fixture->store, "active-0", &client),
                      STORE_NOT_FOUND);
    uint64_t first = 0, last = 0;
    assert_int_equal (store_event_range (fixture->store, &first, &last), 0);
    assert_int_equal (last, PRIOR_EVENTS + 1);
}

static int
s_register_new (fixture_t *fixture, void *arg)
{
    return store_register (fixture->store, "new-0", "node-c", "m", 1, 0,
                           NOW_MS, arg);
}

static void
register_survives_each_failed_write (void **state)
{
    fixture_t *fixture = *state;
    bool created = false;
    run_t run = { .write = s_register_new, .arg = &created };
    uint64_t failed = s_fail_each_call (fixture, FAULTVFS_WRITE,
                                        "disk I/O error", &run);
    assert_true (failed >= 2);
    assert_true (created);

    store_client_t client;
    assert_int_equal (store_get (fixture->store, "new-0", &client), 0);
    assert_string_equal (client.node, "node-c");
    assert_int_equal (client.last_activity_ms, NOW_MS);
}

/*  ------------------------------------------------------------------
    The shim's own controls.  */

static void
faultvfs_command_arms_and_clears (void **state)
{
    char error[256];
    assert_int_equal (faultvfs_command ("sync fail-after=3 persist=1", error,
                                        sizeof error), 0);
    assert_true (faultvfs_armed (FAULTVFS_SYNC));
    assert_int_equal (faultvfs_command ("  # a comment", error,
                                        sizeof error), 0);
    assert_int_equal (faultvfs_command ("", error, sizeof error), 0);
    assert_int_equal (faultvfs_command ("truncate", error, sizeof error), 0);
    assert_true (faultvfs_armed (FAULTVFS_TRUNCATE));
    assert_int_equal (faultvfs_command ("clear sync", error, sizeof error),
                      0);
    assert_false (faultvfs_armed (FAULTVFS_SYNC));
    assert_true (faultvfs_armed (FAULTVFS_TRUNCATE));
    assert_int_equal (faultvfs_command ("clear", error, sizeof error), 0);
    assert_false (faultvfs_armed (FAULTVFS_TRUNCATE));
}

static void
faultvfs_command_rejects_invalid (void **state)
{
    static const struct {
        const char *line;
        const char *error;
    } cases[] = {
        { "wirte", "unknown fault kind \"wirte\"" },
        { "write fail-after=-1", "invalid fail-after \"-1\"" },
        { "write fail-after=", "invalid fail-after \"\"" },
        { "write fail-after=2x", "invalid fail-after \"2x\"" },
        { "write persist=yes", "invalid persist \"yes\"" },
        { "write after=2", "unknown option \"after=2\"" },
        { "clear write read", "clear takes at most one kind" },
        { "clear disk", "unknown fault kind \"disk\"" },
    };
    for (size_t index = 0; index < sizeof cases / sizeof cases[0]; index++) {
        char error[256] = "";
        assert_int_equal (faultvfs_command (cases[index].line, error,
                                            sizeof error), -1);
        if (!strstr (error, cases[index].error))
            print_error ("\"%s\": error \"%s\", expected \"%s\"\n",
                         cases[index].line, error, cases[index].error);
        assert_non_null (strstr (error, cases[index].error));
        assert_false (faultvfs_armed (FAULTVFS_WRITE));
    }
}

static void
s_write_control (const char *path, const char *text)
{
    char temporary[256];
    snprintf (temporary, sizeof temporary, "%s.new", path);
    FILE *file = fopen (temporary, "w");
    assert_non_null (file);
    assert_int_equal (fputs (text, file) >= 0, 1);
    assert_int_equal (fclose (file), 0);
    assert_int_equal (rename (temporary, path), 0);
}

/*  Reads clients until the shim has looked at the control file again,
    which it does on a file call at most every FAULTVFS_POLL_MS.  */
static void
s_poke_until (fixture_t *fixture, faultvfs_kind_t kind, bool armed)
{
    for (int attempt = 0; attempt < 1000; attempt++) {
        uint64_t count;
        assert_int_equal (store_client_count (fixture->store, &count), 0);
        if (faultvfs_armed (kind) == armed)
            return;
        usleep (1000);
    }
    fail_msg ("the shim did not apply the control file within 1 s");
}

static void
faultvfs_watch_applies_control_file (void **state)
{
    fixture_t *fixture = *state;
    char path[256];
    snprintf (path, sizeof path, "%s/faults", fixture->dir);
    faultvfs_watch (path);

    s_write_control (path, "# armed by the test\nwrite fail-after=0 "
                     "persist=1\n");
    s_poke_until (fixture, FAULTVFS_WRITE, true);
    batch_t batch;
    assert_int_equal (s_evict (fixture, &batch), -1);
    assert_int_equal (s_evict (fixture, &batch), -1);

    s_write_control (path, "clear\n");
    s_poke_until (fixture, FAULTVFS_WRITE, false);
    assert_int_equal (s_evict (fixture, &batch), 0);
    assert_int_equal (batch.count, BATCH);
    unlink (path);
}

/*  Runs sql on db and returns SQLite's extended result code.  */
static int
s_exec (sqlite3 *db, const char *sql)
{
    sqlite3_exec (db, sql, NULL, NULL, NULL);
    return sqlite3_extended_errcode (db);
}

/*  Each kind fails with the code faultvfs.h lists, on a connection of
    the test's own where the store never makes such a call: a commit
    that syncs (synchronous=FULL), a WAL checkpoint that truncates, and
    a rollback-journal transaction that takes its lock through xLock.  */
static void
faultvfs_fails_each_kind (void **state)
{
    fixture_t *fixture = *state;
    char path[256];
    snprintf (path, sizeof path, "%s/kinds.db", fixture->dir);
    sqlite3 *db = NULL;
    assert_int_equal (sqlite3_open (path, &db), SQLITE_OK);
    sqlite3_extended_result_codes (db, 1);
    assert_int_equal (s_exec (db, "PRAGMA journal_mode=WAL;"
                                  " PRAGMA synchronous=FULL;"
                                  " CREATE TABLE t (x)"), SQLITE_OK);

    faultvfs_set (FAULTVFS_SYNC, 0, false);
    assert_int_equal (s_exec (db, "INSERT INTO t VALUES (1)"),
                      SQLITE_IOERR_FSYNC);
    assert_int_equal (s_exec (db, "INSERT INTO t VALUES (1)"), SQLITE_OK);

    faultvfs_set (FAULTVFS_TRUNCATE, 0, false);
    assert_int_equal (s_exec (db, "PRAGMA wal_checkpoint(TRUNCATE)"),
                      SQLITE_IOERR_TRUNCATE);
    assert_false (faultvfs_armed (FAULTVFS_TRUNCATE));

    assert_int_equal (s_exec (db, "PRAGMA journal_mode=DELETE"), SQLITE_OK);
    faultvfs_set (FAULTVFS_LOCK, 0, true);
    assert_int_equal (s_exec (db, "BEGIN IMMEDIATE"), SQLITE_BUSY);
    faultvfs_clear (FAULTVFS_LOCK);
    assert_int_equal (s_exec (db, "BEGIN IMMEDIATE; INSERT INTO t VALUES (2);"
                                  " COMMIT"), SQLITE_OK);

    faultvfs_set (FAULTVFS_FULL, 0, true);
    assert_int_equal (s_exec (db, "INSERT INTO t VALUES (3)"), SQLITE_FULL);
    faultvfs_clear (FAULTVFS_FULL);
    assert_int_equal (sqlite3_close (db), SQLITE_OK);
}

#define FAULT_TEST(name) cmocka_unit_test_setup_teardown (name, setup, teardown)

int
main (void)
{
    if (faultvfs_register (true) != 0) {
        fprintf (stderr, "registering the %s VFS failed\n", FAULTVFS_NAME);
        return 1;
    }
    const struct CMUnitTest tests[] = {
        FAULT_TEST (apply_sweep_survives_each_failed_write),
        FAULT_TEST (apply_sweep_survives_failed_write_reopened),
        FAULT_TEST (apply_sweep_with_tombstones_survives_each_failed_write),
        FAULT_TEST (apply_sweep_survives_disk_full),
        FAULT_TEST (apply_sweep_survives_each_failed_read),
        FAULT_TEST (apply_sweep_reports_busy_lock),
        FAULT_TEST (apply_sweep_kept_when_sync_fails),
        FAULT_TEST (write_activity_survives_each_failed_write),
        FAULT_TEST (remove_survives_each_failed_write),
        FAULT_TEST (register_survives_each_failed_write),
        FAULT_TEST (faultvfs_fails_each_kind),
        FAULT_TEST (faultvfs_command_arms_and_clears),
        FAULT_TEST (faultvfs_command_rejects_invalid),
        FAULT_TEST (faultvfs_watch_applies_control_file),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
