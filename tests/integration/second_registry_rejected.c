/*  A second lapse-registry on a store or an ipc:// endpoint that a
    running registry holds exits non-zero, names the process holding the
    lock, and leaves the first one serving.  */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "harness.h"

#define EXIT_DEADLINE_MS 10000

/*  Returns true when text contains number as a whole run of digits.  */
static bool
s_contains_number (const char *text, long number)
{
    char digits[32];
    snprintf (digits, sizeof (digits), "%ld", number);
    size_t length = strlen (digits);
    for (const char *at = strstr (text, digits); at;
         at = strstr (at + 1, digits)) {
        bool starts = at == text || at[-1] < '0' || at[-1] > '9';
        bool ends = at[length] < '0' || at[length] > '9';
        if (starts && ends)
            return true;
    }
    return false;
}

static int
s_setup (void **state)
{
    harness_t *harness = harness_new ("second_registry");
    *state = harness;
    return harness ? 0 : -1;
}

static int
s_teardown (void **state)
{
    harness_t *harness = *state;
    harness_destroy (&harness);
    return 0;
}

static void
second_registry_rejected (void **state)
{
    harness_t *harness = *state;
    proc_t *first = harness_start_registry (harness, "registry", NULL, NULL);
    assert_non_null (first);
    long first_pid = (long) first->pid;

    lapse_t *client = harness_client (harness, "node-a");
    assert_non_null (client);
    assert_int_equal (lapse_register (client, "before", NULL, 0, NULL), 0);

    //  Other endpoints, so that only the store can stop the second one
    char commands[HARNESS_ENDPOINT_MAX], events[HARNESS_ENDPOINT_MAX],
        ticks[HARNESS_ENDPOINT_MAX];
    snprintf (commands, sizeof (commands), "ipc://%s/commands-2.ipc",
              harness->dir);
    snprintf (events, sizeof (events), "ipc://%s/events-2.ipc",
              harness->dir);
    snprintf (ticks, sizeof (ticks), "ipc://%s/ticks-2.ipc", harness->dir);
    proc_t *second = harness_spawnl (
        harness, "registry-second", LAPSE_REGISTRY_BIN, NULL, "--commands",
        commands, "--events", events, "--ticks", ticks, "--store",
        harness->store, NULL);
    assert_non_null (second);

    int code = proc_wait (second, EXIT_DEADLINE_MS);
    assert_int_not_equal (code, -1);
    assert_int_not_equal (code, 0);

    char *output = harness_read_file (second->err_path, NULL);
    assert_non_null (output);
    if (!s_contains_number (output, first_pid)
        || !strstr (output, "lapse.db.lock"))
        print_error ("second registry's stderr: %s\n", output);
    assert_true (s_contains_number (output, first_pid));
    assert_non_null (strstr (output, "lapse.db.lock"));
    free (output);

    //  The first registry goes on serving and writing
    assert_true (proc_running (first));
    assert_int_equal (lapse_register (client, "after", NULL, 0, NULL), 0);
    assert_int_equal (harness_get (client, "before", NULL), 0);
    assert_int_equal (harness_get (client, "after", NULL), 0);
    assert_int_equal (harness_stat (client, "clients"), 2);

    //  Once the first stops cleanly, the lock is free for a new one,
    //  which finds what the first stored
    assert_int_equal (proc_stop (first, HARNESS_STOP_MS), 0);
    proc_t *third = harness_start_registry (harness, "registry", NULL, NULL);
    assert_non_null (third);
    assert_int_equal (harness_get (client, "before", NULL), 0);
    assert_int_equal (harness_get (client, "after", NULL), 0);
    lapse_destroy (&client);
}

/*  A registry killed with SIGKILL leaves the lock file behind; the lock
    itself must die with the process, so the next registry starts.  */
static void
lock_released_by_killed_registry (void **state)
{
    harness_t *harness = *state;
    proc_t *first = harness_start_registry (harness, "registry", NULL, NULL);
    assert_non_null (first);
    lapse_t *client = harness_client (harness, "node-a");
    assert_non_null (client);
    assert_int_equal (lapse_register (client, "survivor", NULL, 0, NULL), 0);

    assert_int_equal (proc_signal (first, SIGKILL), 0);
    assert_int_equal (proc_wait (first, EXIT_DEADLINE_MS), 128 + SIGKILL);

    proc_t *next = harness_start_registry (harness, "registry", NULL, NULL);
    assert_non_null (next);
    assert_int_equal (harness_get (client, "survivor", NULL), 0);
    lapse_destroy (&client);
}

/*  A second registry on another store but the same ipc:// endpoints
    must stop: binding would replace the first one's socket files and
    cut it off from new peers.  */
static void
second_registry_endpoint_rejected (void **state)
{
    harness_t *harness = *state;
    proc_t *first = harness_start_registry (harness, "registry", NULL, NULL);
    assert_non_null (first);
    long first_pid = (long) first->pid;

    char other_store[HARNESS_FILE_MAX];
    harness_path (harness, "other.db", other_store, sizeof (other_store));
    proc_t *second = harness_spawnl (
        harness, "registry-second", LAPSE_REGISTRY_BIN, NULL, "--commands",
        harness->commands, "--events", harness->events, "--ticks",
        harness->ticks, "--store", other_store, NULL);
    assert_non_null (second);

    int code = proc_wait (second, EXIT_DEADLINE_MS);
    assert_int_not_equal (code, -1);
    assert_int_not_equal (code, 0);

    char *output = harness_read_file (second->err_path, NULL);
    assert_non_null (output);
    if (!s_contains_number (output, first_pid))
        print_error ("second registry's stderr: %s\n", output);
    assert_true (s_contains_number (output, first_pid));
    assert_non_null (strstr (output, "endpoint is in use"));
    free (output);

    //  A new connection still reaches the first registry
    lapse_t *client = harness_client (harness, "node-a");
    assert_non_null (client);
    assert_int_equal (lapse_register (client, "reachable", NULL, 0, NULL),
                      0);
    assert_int_equal (harness_stat (client, "clients"), 1);
    lapse_destroy (&client);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown (second_registry_rejected, s_setup,
                                         s_teardown),
        cmocka_unit_test_setup_teardown (lock_released_by_killed_registry,
                                         s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (second_registry_endpoint_rejected,
                                         s_setup, s_teardown),
    };
    return harness_finish (cmocka_run_group_tests (tests, NULL, NULL));
}
