/*  lapse-audit against a registry whose store was deleted: the restarted
    registry numbers its events from 1 again, so its seqs name other
    events than those in the audit file.  lapse-audit must say so and
    stop, leaving the file as it was, instead of skipping the new events
    as duplicates or appending them after the old ones.  Moving the file
    aside and starting again with start-after 0, as the log line says,
    records the new store's events in a new file.  */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

#define CATCH_UP_MS 15000
#define DETECT_MS 20000

typedef struct {
    harness_t *harness;
    lapse_t *node;
    char audit_file[HARNESS_FILE_MAX];
    char moved_file[HARNESS_FILE_MAX];
    int next_client;
} world_t;

static int
s_setup (void **state)
{
    world_t *world = calloc (1, sizeof (world_t));
    *state = world;
    if (!world)
        return -1;
    world->harness = harness_new ("audit_registry_reset");
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

static proc_t *
s_start_registry (world_t *world)
{
    proc_t *registry = harness_start_registry (world->harness, "registry",
                                               NULL, NULL);
    assert_non_null (registry);
    if (!world->node)
        world->node = harness_client (world->harness, "node-a");
    assert_non_null (world->node);
    return registry;
}

static proc_t *
s_start_audit (world_t *world)
{
    harness_t *harness = world->harness;
    proc_t *audit = harness_spawnl (harness, "audit", LAPSE_AUDIT_BIN, NULL,
                                    "--commands", harness->commands,
                                    "--events", harness->events, "--file",
                                    world->audit_file, "--catchup-interval",
                                    "500ms", "--start-after", "0", NULL);
    assert_non_null (audit);
    assert_eventually (proc_log_contains (audit, "msg=\"audit started\""),
                       10000);
    return audit;
}

/*  Registers count clients and evicts each with lapsectl, so that each
    makes one event.  */
static void
s_evict_new_clients (world_t *world, int count)
{
    for (int index = 0; index < count; index++) {
        char id[32];
        snprintf (id, sizeof (id), "client-%03d", world->next_client++);
        assert_int_equal (lapse_register (world->node, id, NULL, 0, NULL),
                          0);
        assert_int_equal (harness_lapsectl (world->harness, NULL, "evict",
                                            id, NULL),
                          0);
    }
}

/*  Returns the lines of the file at path, 0 when it is missing.  */
static int
s_count_lines (const char *path)
{
    char *text = harness_read_file (path, NULL);
    int count = 0;
    for (char *cursor = text; cursor && (cursor = strchr (cursor, '\n'));
         cursor++)
        count++;
    free (text);
    return count;
}

/*  Deletes the store of a stopped registry, with its WAL files.  */
static void
s_delete_store (world_t *world)
{
    const char *suffixes[] = { "", "-wal", "-shm" };
    for (size_t index = 0; index < 3; index++) {
        char path[HARNESS_FILE_MAX + 8];
        snprintf (path, sizeof (path), "%s%s", world->harness->store,
                  suffixes[index]);
        unlink (path);
    }
    assert_int_equal (access (world->harness->store, F_OK), -1);
}

static void
audit_stops_when_registry_seq_goes_backwards (void **state)
{
    world_t *world = *state;
    proc_t *registry = s_start_registry (world);
    proc_t *audit = s_start_audit (world);
    s_evict_new_clients (world, 3);
    assert_eventually (s_count_lines (world->audit_file) == 3, CATCH_UP_MS);
    char *before = harness_read_file (world->audit_file, NULL);
    assert_non_null (before);
    assert_non_null (strstr (before, "{\"seq\":3,"));

    //  The store goes, and the new one numbers its first event 1
    assert_int_equal (proc_stop (registry, HARNESS_STOP_MS), 0);
    s_delete_store (world);
    s_start_registry (world);
    s_evict_new_clients (world, 1);

    //  lapse-audit stops with an error naming both seqs and the remedy
    assert_int_equal (proc_wait (audit, DETECT_MS), 1);
    char line[1024];
    assert_int_equal (proc_log_line (audit, "msg=\"registry event sequence "
                                     "went backwards\"", line,
                                     sizeof (line)),
                      0);
    if (!strstr (line, "level=error")
        || (!strstr (line, " registry_last_seq=0 ")
            && !strstr (line, " registry_last_seq=1 "))
        || !strstr (line, " audit_last_seq=3 ")
        || !strstr (line, "start lapse-audit again with --start-after 0"))
        fail_msg ("unexpected line: %s", line);
    assert_true (proc_log_contains (audit, "msg=\"audit stopped\""));
    assert_true (proc_log_contains (audit, " backwards=1 "));
    assert_true (proc_log_contains (audit, "status=failed"));

    //  The file is exactly as it was: the new event 1 is in it neither
    //  skipped over nor appended
    char *after = harness_read_file (world->audit_file, NULL);
    assert_non_null (after);
    assert_string_equal (after, before);
    free (before);
    free (after);

    //  The remedy the line names: a new file, from seq 0
    assert_int_equal (rename (world->audit_file, world->moved_file), 0);
    audit = s_start_audit (world);
    assert_eventually (s_count_lines (world->audit_file) == 1, CATCH_UP_MS);
    char *fresh = harness_read_file (world->audit_file, NULL);
    assert_non_null (fresh);
    assert_non_null (strstr (fresh, "{\"seq\":1,"));
    assert_non_null (strstr (fresh, "\"id\":\"client-003\""));
    free (fresh);
    assert_int_equal (proc_stop (audit, HARNESS_STOP_MS), 0);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown (
            audit_stops_when_registry_seq_goes_backwards, s_setup,
            s_teardown),
    };
    return harness_finish (cmocka_run_group_tests (tests, NULL, NULL));
}
