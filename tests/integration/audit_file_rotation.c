/*  lapse-audit and its file's life cycle: after the file is moved aside
    and SIGHUP, every event is in exactly one of the two files, in seq
    order.  A new file starts after start-after when given, and records
    the events that the registry pruned before it started as a gap.  */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "harness.h"

#define CATCH_UP_MS 15000
#define RECORDS_MAX 256

typedef struct {
    harness_t *harness;
    proc_t *registry;
    proc_t *audit;
    lapse_t *node;
    char audit_file[HARNESS_FILE_MAX];
    char moved_file[HARNESS_FILE_MAX];
    int next_client;
} world_t;

/*  One line of an audit file: an event (first == last == its seq) or a
    gap record.  */
typedef struct {
    bool gap;
    uint64_t first;
    uint64_t last;
} record_t;

static int
s_setup (void **state)
{
    world_t *world = calloc (1, sizeof (world_t));
    *state = world;
    if (!world)
        return -1;
    world->harness = harness_new ("audit_file_rotation");
    if (!world->harness)
        return -1;
    harness_path (world->harness, "audit.jsonl", world->audit_file,
                  sizeof (world->audit_file));
    harness_path (world->harness, "audit.jsonl.1", world->moved_file,
                  sizeof (world->moved_file));
    return 0;
}

static int
s_teardown (void **state)
{
    world_t *world = *state;
    lapse_destroy (&world->node);
    harness_destroy (&world->harness);
    free (world);
    return 0;
}

static void
s_start_registry (world_t *world)
{
    world->registry = harness_start_registry (world->harness, "registry",
                                              NULL, NULL);
    assert_non_null (world->registry);
    if (!world->node)
        world->node = harness_client (world->harness, "node-a");
    assert_non_null (world->node);
}

static void
s_start_audit (world_t *world, const char *start_after)
{
    harness_t *harness = world->harness;
    world->audit = harness_spawnl (harness, "audit", LAPSE_AUDIT_BIN, NULL,
                                   "--commands", harness->commands,
                                   "--events", harness->events, "--file",
                                   world->audit_file, "--catchup-interval",
                                   "500ms", "--start-after", start_after,
                                   NULL);
    assert_non_null (world->audit);
    assert_eventually (proc_log_contains (world->audit,
                                          "msg=\"audit started\""),
                       10000);
}

/*  Registers count clients and deregisters each at once, so that each
    makes one event.  */
static void
s_make_removals (world_t *world, int count)
{
    for (int index = 0; index < count; index++) {
        char id[32];
        snprintf (id, sizeof (id), "client-%03d", world->next_client++);
        assert_int_equal (lapse_register (world->node, id, NULL, 0, NULL),
                          0);
        assert_int_equal (lapse_deregister (world->node, id), 0);
    }
}

/*  Parses the audit file at path into records.  Returns the count, 0
    when the file is missing, or -1 on a line that is no audit record.  */
static int
s_read_records (const char *path, record_t *records, int size)
{
    char *text = harness_read_file (path, NULL);
    if (!text)
        return 0;

    int count = 0;
    char *line = text;
    char *end;
    while ((end = strchr (line, '\n')) && count < size) {
        *end = '\0';
        record_t *record = &records[count++];
        unsigned long long first = 0;
        unsigned long long last = 0;
        if (sscanf (line, "{\"gap\":{\"first\":%llu,\"last\":%llu}}",
                    &first, &last) == 2)
            record->gap = true;
        else
        if (sscanf (line, "{\"seq\":%llu,", &first) == 1) {
            record->gap = false;
            last = first;
        }
        else {
            print_error ("not an audit record in %s: %s\n", path, line);
            count = -1;
            break;
        }
        record->first = first;
        record->last = last;
        line = end + 1;
    }
    free (text);
    return count;
}

static int
s_count_records (const char *path)
{
    record_t records[RECORDS_MAX];
    return s_read_records (path, records, RECORDS_MAX);
}

/*  Checks that records are events only, with seqs first to last each
    once and in order.  */
static void
s_assert_events (const record_t *records, int count, uint64_t first,
                 uint64_t last)
{
    assert_int_equal (count, (int) (last - first + 1));
    for (int index = 0; index < count; index++) {
        assert_false (records[index].gap);
        assert_int_equal (records[index].first, first + (uint64_t) index);
    }
}

static void
rotation_writes_each_event_once (void **state)
{
    world_t *world = *state;
    s_start_registry (world);
    s_start_audit (world, "0");
    s_make_removals (world, 10);
    assert_eventually (s_count_records (world->audit_file) == 10,
                       CATCH_UP_MS);

    //  Events between the move and SIGHUP still go to the moved file
    assert_int_equal (rename (world->audit_file, world->moved_file), 0);
    s_make_removals (world, 5);
    assert_eventually (s_count_records (world->moved_file) == 15,
                       CATCH_UP_MS);
    assert_int_equal (proc_signal (world->audit, SIGHUP), 0);
    assert_eventually (proc_log_contains (world->audit,
                                          "msg=\"audit file reopened\""),
                       10000);
    assert_true (proc_log_contains (world->audit, "last_seq=15 "
                                                  "previous_written=15"));

    //  Removals after the reopen go to the new file
    s_make_removals (world, 10);
    assert_eventually (s_count_records (world->audit_file) == 10,
                       CATCH_UP_MS);

    record_t moved[RECORDS_MAX];
    record_t fresh[RECORDS_MAX];
    int moved_count = s_read_records (world->moved_file, moved,
                                      RECORDS_MAX);
    int fresh_count = s_read_records (world->audit_file, fresh,
                                      RECORDS_MAX);
    s_assert_events (moved, moved_count, 1, 15);
    s_assert_events (fresh, fresh_count, 16, 25);

    //  A second SIGHUP without a move keeps writing the same file
    assert_int_equal (proc_signal (world->audit, SIGHUP), 0);
    assert_eventually (proc_log_contains (world->audit,
                                          "msg=\"audit file reopen "
                                          "skipped\""),
                       10000);
    s_make_removals (world, 2);
    assert_eventually (s_count_records (world->audit_file) == 12,
                       CATCH_UP_MS);
    assert_int_equal (s_count_records (world->moved_file), 15);

    assert_true (proc_running (world->audit));
    assert_int_equal (proc_stop (world->audit, HARNESS_STOP_MS), 0);
    assert_true (proc_log_contains (world->audit, "written=27 gaps=0"));
    assert_false (proc_log_contains (world->audit, "msg=\"events lost\""));
}

static void
start_after_skips_events_written_elsewhere (void **state)
{
    world_t *world = *state;
    s_start_registry (world);
    s_make_removals (world, 6);

    s_start_audit (world, "4");
    assert_eventually (s_count_records (world->audit_file) == 2,
                       CATCH_UP_MS);
    s_make_removals (world, 1);
    assert_eventually (s_count_records (world->audit_file) == 3,
                       CATCH_UP_MS);

    record_t records[RECORDS_MAX];
    int count = s_read_records (world->audit_file, records, RECORDS_MAX);
    s_assert_events (records, count, 5, 7);
    assert_true (proc_log_contains (world->audit, "last_seq=4 "
                                                  "start_after=4"));
    assert_int_equal (proc_stop (world->audit, HARNESS_STOP_MS), 0);
}

/*  Deletes the events up to seq from the stopped registry's store, as
    pruning after event-retention would.  */
static void
s_prune_events (world_t *world, int seq)
{
    sqlite3 *db = NULL;
    char sql[64];
    snprintf (sql, sizeof (sql), "DELETE FROM events WHERE seq <= %d", seq);
    assert_int_equal (sqlite3_open (world->harness->store, &db), SQLITE_OK);
    int rc = sqlite3_exec (db, sql, NULL, NULL, NULL);
    if (rc != SQLITE_OK)
        print_error ("%s: %s\n", sql, sqlite3_errmsg (db));
    sqlite3_close (db);
    assert_int_equal (rc, SQLITE_OK);
}

static void
new_file_records_pruned_events_as_gap (void **state)
{
    world_t *world = *state;
    s_start_registry (world);
    s_make_removals (world, 6);
    assert_int_equal (proc_stop (world->registry, HARNESS_STOP_MS), 0);
    s_prune_events (world, 4);
    s_start_registry (world);

    s_start_audit (world, "0");
    assert_eventually (s_count_records (world->audit_file) == 3,
                       CATCH_UP_MS);

    record_t records[RECORDS_MAX];
    int count = s_read_records (world->audit_file, records, RECORDS_MAX);
    assert_int_equal (count, 3);
    assert_true (records[0].gap);
    assert_int_equal (records[0].first, 1);
    assert_int_equal (records[0].last, 4);
    s_assert_events (records + 1, count - 1, 5, 6);
    assert_true (proc_log_contains (world->audit, "msg=\"events lost\" "
                                                  "first=1 last=4"));
    assert_int_equal (proc_stop (world->audit, HARNESS_STOP_MS), 0);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown (rotation_writes_each_event_once,
                                         s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (
            start_after_skips_events_written_elsewhere, s_setup,
            s_teardown),
        cmocka_unit_test_setup_teardown (
            new_file_records_pruned_events_as_gap, s_setup, s_teardown),
    };
    return harness_finish (cmocka_run_group_tests (tests, NULL, NULL));
}
