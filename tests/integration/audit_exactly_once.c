/*  lapse-audit writes every removal event exactly once, in seq order and
    without gaps, across its own stops (SIGTERM and SIGKILL) and a
    registry restart.  Each line is the registry's event as
    lapse_event_to_json prints it.  */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "harness.h"

#define CATCH_UP_MS 15000
#define JSON_LINE_MAX 2048

typedef struct {
    harness_t *harness;
    proc_t *registry;
    proc_t *audit;
    lapse_t *nodes[2];
    lapse_t *operator;
    char audit_file[HARNESS_FILE_MAX];
    int next_client;    /* numbers the clients made so far */
} world_t;

static int
s_setup (void **state)
{
    world_t *world = calloc (1, sizeof (world_t));
    *state = world;
    if (!world)
        return -1;
    world->harness = harness_new ("audit_exactly_once");
    if (!world->harness)
        return -1;
    harness_path (world->harness, "audit.jsonl", world->audit_file,
                  sizeof (world->audit_file));
    return 0;
}

static int
s_teardown (void **state)
{
    world_t *world = *state;
    lapse_destroy (&world->nodes[0]);
    lapse_destroy (&world->nodes[1]);
    lapse_destroy (&world->operator);
    harness_destroy (&world->harness);
    free (world);
    return 0;
}

static void
s_start_registry (world_t *world)
{
    world->registry = harness_start_registry (
        world->harness, "registry", NULL, "--stale-after", "1s",
        "--tick-min-gap", "0ms", NULL);
    assert_non_null (world->registry);
}

static void
s_start_audit (world_t *world)
{
    harness_t *harness = world->harness;
    world->audit = harness_spawnl (harness, "audit", LAPSE_AUDIT_BIN, NULL,
                                   "--commands", harness->commands,
                                   "--events", harness->events, "--file",
                                   world->audit_file, "--catchup-interval",
                                   "500ms", NULL);
    assert_non_null (world->audit);
    assert_eventually (proc_log_contains (world->audit,
                                          "msg=\"audit started\""),
                       10000);
}

/*  Counts complete lines in the audit file.  */
static int
s_audit_lines (world_t *world)
{
    char *text = harness_read_file (world->audit_file, NULL);
    if (!text)
        return 0;
    int lines = 0;
    for (char *at = text; *at; at++)
        lines += *at == '\n';
    free (text);
    return lines;
}

/*  Registers count clients and removes each at once, alternating
    deregistration and operator eviction, and between two nodes.  */
static void
s_make_removals (world_t *world, int count)
{
    for (int index = 0; index < count; index++) {
        int number = world->next_client++;
        lapse_t *node = world->nodes[number % 2];
        char id[32];
        snprintf (id, sizeof (id), "client-%03d", number);
        assert_int_equal (lapse_register (node, id, NULL, 0, NULL), 0);
        if (number % 3 == 0) {
            msg_t request = { .type = MSG_EVICT };
            request.u.client_ref.id = msg_str (id);
            msg_t reply = { 0 };
            assert_int_equal (lapse_request (world->operator, &request,
                                             &reply),
                              0);
            msg_release (&reply);
        }
        else
            assert_int_equal (lapse_deregister (node, id), 0);
    }
}

/*  Registers count clients without touching them, and sweeps them away
    once they are stale and the registry is past its grace.  */
static void
s_make_stale_removals (world_t *world, int count)
{
    for (int index = 0; index < count; index++) {
        char id[32];
        snprintf (id, sizeof (id), "quiet-%03d", world->next_client++);
        assert_int_equal (lapse_register (world->nodes[0], id, NULL, 0,
                                          NULL),
                          0);
    }
    harness_sleep_ms (1200);
    assert_int_equal (harness_wait_past_grace (world->operator, 10000), 0);
    uint64_t evicted = harness_stat (world->operator, "evicted");
    assert_int_equal (harness_sweep (world->harness, world->operator,
                                     10000),
                      0);
    assert_int_equal (harness_stat (world->operator, "evicted"),
                      evicted + (uint64_t) count);
}

static void
s_connect (world_t *world)
{
    world->nodes[0] = harness_client (world->harness, "node-a");
    world->nodes[1] = harness_client (world->harness, "node-b");
    world->operator = harness_client (world->harness, NULL);
    assert_non_null (world->nodes[0]);
    assert_non_null (world->nodes[1]);
    assert_non_null (world->operator);
}

/*  Compares the audit file with the registry's events line by line.  */
static void
s_check_audit_file (world_t *world, int expected)
{
    harness_event_t *events = NULL;
    assert_int_equal (harness_events (world->operator, 0, &events),
                      expected);
    assert_int_equal (harness_stat (world->operator, "last_seq"),
                      (uint64_t) expected);

    char *text = harness_read_file (world->audit_file, NULL);
    assert_non_null (text);
    char *line = text;
    for (int index = 0; index < expected; index++) {
        char *end = strchr (line, '\n');
        assert_non_null (end);
        *end = '\0';

        harness_event_t *row = &events[index];
        assert_int_equal (row->seq, (uint64_t) index + 1);
        msg_event_t event = {
            .seq = row->seq, .prev = row->prev, .id = msg_str (row->id),
            .node = msg_str (row->node), .reason = row->reason,
            .last_activity_ms = row->last_activity_ms,
            .removed_ms = row->removed_ms, .sweep = row->sweep
        };
        char json[JSON_LINE_MAX];
        assert_true (lapse_event_to_json (&event, json, sizeof (json)) > 0);
        if (strcmp (line, json) != 0)
            print_error ("audit line %d: %s\nregistry event: %s\n",
                         index + 1, line, json);
        assert_string_equal (line, json);
        line = end + 1;
    }
    assert_string_equal (line, "");
    free (text);
    harness_events_free (&events);
}

static void
audit_writes_each_event_once (void **state)
{
    world_t *world = *state;
    s_start_registry (world);
    s_connect (world);
    s_start_audit (world);

    s_make_removals (world, 10);
    assert_eventually (s_audit_lines (world) == 10, CATCH_UP_MS);

    //  A clean stop, then removals the audit must replay on restart
    assert_int_equal (proc_stop (world->audit, HARNESS_STOP_MS), 0);
    s_make_removals (world, 10);
    s_start_audit (world);
    assert_eventually (s_audit_lines (world) == 20, CATCH_UP_MS);

    //  Killed while events are flowing: lines not yet synced are lost
    //  with it and must come back from the registry, once each
    s_make_removals (world, 8);
    assert_int_equal (proc_signal (world->audit, SIGKILL), 0);
    assert_int_equal (proc_wait (world->audit, HARNESS_STOP_MS),
                      128 + SIGKILL);
    s_make_removals (world, 22);
    s_start_audit (world);
    assert_eventually (s_audit_lines (world) == 50, CATCH_UP_MS);

    //  The registry restarts under the running audit; removals of every
    //  reason follow, stale ones by a sweep past the new grace
    assert_int_equal (proc_stop (world->registry, HARNESS_STOP_MS), 0);
    s_start_registry (world);
    s_make_removals (world, 10);
    s_make_stale_removals (world, 5);
    assert_eventually (s_audit_lines (world) == 65, CATCH_UP_MS);

    //  Nothing more arrives later, and every line matches the registry
    harness_sleep_ms (1000);
    assert_int_equal (s_audit_lines (world), 65);
    assert_true (proc_running (world->audit));
    s_check_audit_file (world, 65);
    assert_false (proc_log_contains (world->audit, "msg=\"events lost\""));
    assert_int_equal (proc_stop (world->audit, HARNESS_STOP_MS), 0);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown (audit_writes_each_event_once,
                                         s_setup, s_teardown),
    };
    return harness_finish (cmocka_run_group_tests (tests, NULL, NULL));
}
