/*  Settings the registry must reject rather than run with: an empty
    store path, a config file that is a FIFO, a tcp:// port out of range
    and a misspelt section stop it at start with status 2 and a message
    naming the cause.  An invalid value of a setting read only at start
    is reported on SIGHUP, and the registry keeps running.  */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

#define EXIT_DEADLINE_MS 10000
#define RELOAD_DEADLINE_MS 5000

typedef struct {
    harness_t *harness;
    char config[HARNESS_FILE_MAX];
} world_t;

static int
s_setup (void **state)
{
    world_t *world = calloc (1, sizeof (world_t));
    *state = world;
    if (!world)
        return -1;
    world->harness = harness_new ("settings_rejected");
    if (!world->harness)
        return -1;
    harness_path (world->harness, "lapse.conf", world->config,
                  sizeof (world->config));
    return 0;
}

static int
s_teardown (void **state)
{
    world_t *world = *state;
    harness_destroy (&world->harness);
    free (world);
    return 0;
}

/*  Starts lapse-registry on the harness endpoints with the given
    arguments (NULL-terminated), without waiting for it to serve.  */
static proc_t *
s_spawn_registry (world_t *world, const char *first, ...)
{
    harness_t *harness = world->harness;
    const char *args[16] = { "--commands", harness->commands, "--events",
                             harness->events, "--ticks", harness->ticks };
    size_t count = 6;
    va_list list;
    va_start (list, first);
    for (const char *arg = first; arg && count < 15;
         arg = va_arg (list, const char *))
        args[count++] = arg;
    va_end (list);
    args[count] = NULL;

    proc_t *registry = harness_spawn (harness, "registry",
                                      LAPSE_REGISTRY_BIN, args, NULL);
    assert_non_null (registry);
    return registry;
}

/*  Waits for the registry to stop with status 2 and checks that its
    stderr names the cause.  */
static void
s_assert_rejected (proc_t *registry, const char *cause)
{
    assert_int_equal (proc_wait (registry, EXIT_DEADLINE_MS), 2);
    char line[1024];
    if (proc_log_line (registry, cause, line, sizeof (line)) != 0) {
        char *text = harness_read_file (registry->err_path, NULL);
        fail_msg ("stderr does not contain \"%s\": %s", cause,
                  text ? text : "(unreadable)");
    }
}

static void
registry_rejects_empty_store (void **state)
{
    world_t *world = *state;

    //  The store path is relative to the working folder, and so would be
    //  the lock file of an empty one: run in the test's folder
    char cwd[PATH_MAX];
    assert_non_null (getcwd (cwd, sizeof (cwd)));
    assert_int_equal (chdir (world->harness->dir), 0);
    proc_t *registry = s_spawn_registry (world, "--store", "", NULL);
    int code = proc_wait (registry, EXIT_DEADLINE_MS);
    bool lock_left = access (".lock", F_OK) == 0;
    assert_int_equal (chdir (cwd), 0);

    assert_int_equal (code, 2);
    assert_false (lock_left);
    s_assert_rejected (registry, "invalid value \"\" for store (from flag "
                      "--store): expected text of 1 to");
}

static void
registry_rejects_config_fifo (void **state)
{
    world_t *world = *state;
    char fifo[HARNESS_FILE_MAX];
    harness_path (world->harness, "lapse.fifo", fifo, sizeof (fifo));
    assert_int_equal (mkfifo (fifo, 0600), 0);

    proc_t *registry = s_spawn_registry (world, "--config", fifo, NULL);
    s_assert_rejected (registry, "not a regular file (a FIFO)");
}

static void
registry_rejects_port_out_of_range (void **state)
{
    world_t *world = *state;
    proc_t *registry = s_spawn_registry (world, "--store",
                                         world->harness->store,
                                         "--commands",
                                         "tcp://127.0.0.1:99999", NULL);
    s_assert_rejected (registry, "invalid value \"tcp://127.0.0.1:99999\" "
                      "for commands (from flag --commands): expected "
                      "tcp://HOST:PORT with a host and a port from 1 to "
                      "65535 or *");
}

static void
registry_rejects_misspelt_section (void **state)
{
    world_t *world = *state;
    assert_int_equal (harness_write_file (world->harness, "lapse.conf",
                                          "registy\n    stale-after = 5m\n"),
                      0);
    proc_t *registry = s_spawn_registry (world, "--store",
                                         world->harness->store, "--config",
                                         world->config, NULL);
    s_assert_rejected (registry, "unknown section \"registy\" in config "
                      "file");
}

static void
reload_reports_invalid_value_needing_restart (void **state)
{
    world_t *world = *state;
    assert_int_equal (harness_write_file (world->harness, "lapse.conf",
                                          "registry\n"
                                          "    sweep-batch = 10\n"),
                      0);
    proc_t *registry = harness_start_registry (world->harness, "registry",
                                               NULL, "--config",
                                               world->config, NULL);
    assert_non_null (registry);

    assert_int_equal (harness_write_file (world->harness, "lapse.conf",
                                          "registry\n"
                                          "    sweep-batch = 0\n"),
                      0);
    assert_int_equal (proc_signal (registry, SIGHUP), 0);
    assert_eventually (proc_log_contains (registry, "msg=\"configuration "
                                          "reload failed\""),
                       RELOAD_DEADLINE_MS);
    char line[1024];
    assert_int_equal (proc_log_line (registry, "msg=\"configuration reload "
                                     "failed\"", line, sizeof (line)),
                      0);
    if (!strstr (line, "invalid value \\\"0\\\" for sweep-batch")
        || !strstr (line, "action=\"kept the old values\""))
        fail_msg ("unexpected line: %s", line);
    assert_true (proc_running (registry));
    assert_int_equal (proc_stop (registry, HARNESS_STOP_MS), 0);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown (registry_rejects_empty_store,
                                         s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (registry_rejects_config_fifo,
                                         s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (registry_rejects_port_out_of_range,
                                         s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (registry_rejects_misspelt_section,
                                         s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (
            reload_reports_invalid_value_needing_restart, s_setup,
            s_teardown),
    };
    return harness_finish (cmocka_run_group_tests (tests, NULL, NULL));
}
