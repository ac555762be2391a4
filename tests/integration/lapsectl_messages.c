/*  lapsectl as a new user meets it: touch needs no --node, a registry
    that does not reply is named as such, and an invalid --log-level is
    reported with its source like any other setting.  */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "harness.h"

typedef struct {
    harness_t *harness;
} world_t;

static int
s_setup (void **state)
{
    world_t *world = calloc (1, sizeof (world_t));
    *state = world;
    if (!world)
        return -1;
    world->harness = harness_new ("lapsectl_messages");
    return world->harness ? 0 : -1;
}

static int
s_teardown (void **state)
{
    world_t *world = *state;
    harness_destroy (&world->harness);
    free (world);
    return 0;
}

/*  Fails unless the file at path contains text.  */
static void
s_assert_file_contains (const char *path, const char *text)
{
    char *content = harness_read_file (path, NULL);
    assert_non_null (content);
    if (!strstr (content, text))
        print_error ("%s contains:\n%s\nbut not:\n%s\n", path,
                     content, text);
    bool found = strstr (content, text) != NULL;
    free (content);
    assert_true (found);
}

static void
touch_works_without_node (void **state)
{
    world_t *world = *state;
    proc_t *proc = NULL;
    assert_non_null (harness_start_registry (world->harness, "registry",
                                             NULL, NULL));

    assert_int_equal (harness_lapsectl (world->harness, &proc, "--node",
                                        "node-a", "register", "c-1", NULL),
                      0);
    assert_int_equal (harness_lapsectl (world->harness, &proc, "touch",
                                        "c-1", NULL),
                      0);
    s_assert_file_contains (proc->out_path, "touched 1 of 1 clients\n");

    //  --node is still accepted, and has no effect on a touch
    assert_int_equal (harness_lapsectl (world->harness, &proc, "--node",
                                        "node-b", "touch", "c-1", NULL),
                      0);
    s_assert_file_contains (proc->out_path, "touched 1 of 1 clients\n");
}

static void
no_reply_names_endpoint (void **state)
{
    world_t *world = *state;
    char endpoint[HARNESS_ENDPOINT_MAX + 16];
    char path[HARNESS_FILE_MAX];
    char expected[512];
    proc_t *proc = NULL;

    //  No registry is bound there, so the request can only time out
    snprintf (endpoint, sizeof (endpoint), "ipc://%s",
              harness_path (world->harness, "nobody", path, sizeof (path)));
    assert_int_equal (harness_lapsectl (world->harness, &proc, "--commands",
                                        endpoint, "--timeout", "300ms",
                                        "stats", NULL),
                      1);
    snprintf (expected, sizeof (expected),
              "lapsectl: stats: no reply from %s within 300 ms; is "
              "lapse-registry running there?\n", endpoint);
    s_assert_file_contains (proc->err_path, expected);
}

static void
invalid_log_level_names_source (void **state)
{
    world_t *world = *state;
    proc_t *proc = NULL;

    assert_int_equal (harness_lapsectl (world->harness, &proc,
                                        "--log-level", "loud", "stats",
                                        NULL),
                      2);
    s_assert_file_contains (proc->err_path,
                            "lapsectl: invalid value \"loud\" for log-level "
                            "(from flag --log-level): expected debug, info, "
                            "warn or error\n");
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown (touch_works_without_node, s_setup,
                                         s_teardown),
        cmocka_unit_test_setup_teardown (no_reply_names_endpoint, s_setup,
                                         s_teardown),
        cmocka_unit_test_setup_teardown (invalid_log_level_names_source,
                                         s_setup, s_teardown),
    };
    return harness_finish (cmocka_run_group_tests (tests, NULL, NULL));
}
