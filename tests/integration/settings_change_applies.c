/*  A changed stale-after (registry) or interval (scheduler) takes effect
    after a restart with new flags and after SIGHUP with a rewritten
    config file.  A flag given at start wins over the reloaded file, and
    an invalid value in the reloaded file leaves the old value in force.  */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "harness.h"

#define SWEEP_DEADLINE_MS 10000
#define RELOAD_DEADLINE_MS 5000

typedef struct {
    harness_t *harness;
    lapse_t *client;
    char config[HARNESS_FILE_MAX];
    char config_env[HARNESS_FILE_MAX + 16];
} world_t;

static int
s_setup (void **state)
{
    world_t *world = calloc (1, sizeof (world_t));
    *state = world;
    if (!world)
        return -1;
    world->harness = harness_new ("settings_change");
    if (!world->harness)
        return -1;
    harness_path (world->harness, "lapse.conf", world->config,
                  sizeof (world->config));
    snprintf (world->config_env, sizeof (world->config_env),
              "LAPSE_CONFIG=%s", world->config);
    world->client = harness_client (world->harness, "node-a");
    return world->client ? 0 : -1;
}

static int
s_teardown (void **state)
{
    world_t *world = *state;
    lapse_destroy (&world->client);
    harness_destroy (&world->harness);
    free (world);
    return 0;
}

/*  Writes the config file with one setting in one section.  */
static void
s_write_config (world_t *world, const char *section, const char *key,
                const char *value)
{
    char text[256];
    snprintf (text, sizeof (text), "%s\n    %s = %s\n", section, key, value);
    assert_int_equal (harness_write_file (world->harness, "lapse.conf",
                                          text),
                      0);
}

/*  Sends SIGHUP and waits for the count-th line containing needle.  */
static void
s_reload (proc_t *proc, const char *needle, int count)
{
    assert_int_equal (proc_signal (proc, SIGHUP), 0);
    assert_eventually (proc_log_count (proc, needle) >= count,
                       RELOAD_DEADLINE_MS);
}

/*  Registers id, waits idle_ms without touching it, and sweeps past the
    grace.  Returns true when the sweep evicted it.  */
static bool
s_evicted_after_idle (world_t *world, const char *id, int idle_ms)
{
    assert_int_equal (lapse_register (world->client, id, NULL, 0, NULL), 0);
    harness_sleep_ms (idle_ms);
    assert_int_equal (harness_wait_past_grace (world->client, 10000), 0);
    assert_int_equal (harness_sweep (world->harness, world->client,
                                     SWEEP_DEADLINE_MS),
                      0);
    int rc = harness_get (world->client, id, NULL);
    assert_true (rc == 0 || rc == 1);
    return rc == 1;
}

static void
stale_after_changed_by_restart (void **state)
{
    world_t *world = *state;
    proc_t *registry = harness_start_registry (
        world->harness, "registry", NULL, "--stale-after", "5s",
        "--tick-min-gap", "0ms", NULL);
    assert_non_null (registry);
    assert_int_equal (harness_stat (world->client, "stale_after_ms"), 5000);
    assert_int_equal (lapse_register (world->client, "old", NULL, 0, NULL),
                      0);
    assert_int_equal (proc_stop (registry, HARNESS_STOP_MS), 0);

    registry = harness_start_registry (world->harness, "registry", NULL,
                                       "--stale-after", "1s",
                                       "--tick-min-gap", "0ms", NULL);
    assert_non_null (registry);
    assert_int_equal (harness_stat (world->client, "stale_after_ms"), 1000);
    assert_true (proc_log_contains (registry, "stale-after=1s"));

    //  "old" was stored more than 1 s ago, so the first sweep past the
    //  new, shorter grace removes it; a client touched just before stays
    assert_int_equal (lapse_register (world->client, "fresh", NULL, 0,
                                      NULL),
                      0);
    assert_int_equal (harness_wait_past_grace (world->client, 10000), 0);
    assert_int_equal (lapse_touch (world->client, "fresh"), 0);
    assert_int_equal (lapse_flush (world->client, NULL), 0);
    assert_int_equal (harness_sweep (world->harness, world->client,
                                     SWEEP_DEADLINE_MS),
                      0);
    assert_int_equal (harness_get (world->client, "old", NULL), 1);
    assert_int_equal (harness_get (world->client, "fresh", NULL), 0);
}

static void
stale_after_changed_by_sighup (void **state)
{
    world_t *world = *state;
    const char *env[] = { world->config_env, NULL };
    s_write_config (world, "registry", "stale-after", "1s");
    proc_t *registry = harness_start_registry (world->harness, "registry",
                                               env, "--tick-min-gap", "0ms",
                                               NULL);
    assert_non_null (registry);
    assert_int_equal (harness_stat (world->client, "stale_after_ms"), 1000);

    //  With 1 s, a client idle for 1.5 s goes
    assert_true (s_evicted_after_idle (world, "idle-1", 1500));

    s_write_config (world, "registry", "stale-after", "3s");
    s_reload (registry, "msg=\"configuration reloaded\"", 1);
    assert_int_equal (harness_stat (world->client, "stale_after_ms"), 3000);

    //  With 3 s, the same idle time is not enough, and 3 s more is
    assert_false (s_evicted_after_idle (world, "idle-2", 1500));
    assert_true (s_evicted_after_idle (world, "idle-3", 3200));

    //  An invalid value is rejected and the old one kept
    s_write_config (world, "registry", "stale-after", "soon");
    s_reload (registry, "msg=\"configuration reload failed\"", 1);
    assert_int_equal (harness_stat (world->client, "stale_after_ms"), 3000);
    assert_true (proc_running (registry));
}

static void
stale_after_flag_wins_over_reload (void **state)
{
    world_t *world = *state;
    const char *env[] = { world->config_env, NULL };
    s_write_config (world, "registry", "stale-after", "1s");
    proc_t *registry = harness_start_registry (world->harness, "registry",
                                               env, "--stale-after", "2s",
                                               NULL);
    assert_non_null (registry);
    assert_int_equal (harness_stat (world->client, "stale_after_ms"), 2000);

    s_write_config (world, "registry", "stale-after", "4s");
    s_reload (registry, "msg=\"configuration reloaded\"", 1);
    assert_int_equal (harness_stat (world->client, "stale_after_ms"), 2000);
}

/*  Counts the ticks the registry receives in window_ms.  */
static uint64_t
s_ticks_in (world_t *world, int window_ms)
{
    uint64_t before = harness_stat (world->client, "ticks");
    harness_sleep_ms (window_ms);
    uint64_t after = harness_stat (world->client, "ticks");
    assert_true (before != UINT64_MAX && after != UINT64_MAX);
    return after - before;
}

static proc_t *
s_start_scheduler (world_t *world, const char *const *env,
                   const char *interval)
{
    harness_t *harness = world->harness;
    proc_t *scheduler;
    if (interval)
        scheduler = harness_spawnl (harness, "scheduler",
                                    LAPSE_SCHEDULER_BIN, env, "--ticks",
                                    harness->ticks, "--interval", interval,
                                    NULL);
    else
        scheduler = harness_spawnl (harness, "scheduler",
                                    LAPSE_SCHEDULER_BIN, env, "--ticks",
                                    harness->ticks, NULL);
    assert_non_null (scheduler);

    //  The first ticks may go before the subscription arrives
    uint64_t ticks = harness_stat (world->client, "ticks");
    assert_eventually (harness_stat (world->client, "ticks") > ticks, 5000);
    return scheduler;
}

static void
interval_changed_by_restart_and_sighup (void **state)
{
    world_t *world = *state;
    const char *env[] = { world->config_env, NULL };
    proc_t *registry = harness_start_registry (world->harness, "registry",
                                               NULL, "--tick-min-gap", "0ms",
                                               NULL);
    assert_non_null (registry);

    //  From the config file: one tick a second
    s_write_config (world, "scheduler", "interval", "1s");
    proc_t *scheduler = s_start_scheduler (world, env, NULL);
    uint64_t slow = s_ticks_in (world, 2500);
    assert_in_range (slow, 1, 3);

    //  SIGHUP with 200 ms in the file: about five a second
    s_write_config (world, "scheduler", "interval", "200ms");
    s_reload (scheduler, "msg=\"configuration reloaded\" changed=true "
                         "interval=200ms previous_interval=1s", 1);
    uint64_t fast = s_ticks_in (world, 2000);
    assert_in_range (fast, 7, 12);

    //  A restart with the flag: the flag wins over the file's 200 ms,
    //  and a later SIGHUP does not change it
    assert_int_equal (proc_stop (scheduler, HARNESS_STOP_MS), 0);
    scheduler = s_start_scheduler (world, env, "1s");
    slow = s_ticks_in (world, 2500);
    assert_in_range (slow, 1, 3);
    s_reload (scheduler, "msg=\"configuration reloaded\" changed=false "
                         "interval=1s", 1);
    slow = s_ticks_in (world, 2500);
    assert_in_range (slow, 1, 3);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown (stale_after_changed_by_restart,
                                         s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (stale_after_changed_by_sighup,
                                         s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (stale_after_flag_wins_over_reload,
                                         s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (
            interval_changed_by_restart_and_sighup, s_setup, s_teardown),
    };
    return harness_finish (cmocka_run_group_tests (tests, NULL, NULL));
}
