/*  test_settings.c: settings, durations, logfmt logging and SIGHUP.

    Each test starts with no LAPSE_* variable set and no config file; a
    test that needs a file writes it into a temporary folder.
*/

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <regex.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "settings.h"
#include "signals.h"

#define SECOND 1000LL
#define MINUTE (60 * SECOND)
#define DAY (86400 * SECOND)

static const setting_def_t s_defs [] = {
    { "stale-after", SETTING_DURATION, "30m", SECOND, 30 * DAY, true,
      "Idle time after which a client is evicted." },
    { "tick-min-gap", SETTING_DURATION, "1s", 0, 0, true,
      "Minimum time between two sweeps." },
    { "sweep-batch", SETTING_UINT, "1000", 1, 100000, false,
      "Maximum clients removed per transaction." },
    { "store", SETTING_STRING, "lapse.db", 1, 16, false,
      "Path of the store." },
    { "id", SETTING_STRING, NULL, 0, 0, false, "Scheduler id." },
    { "commands", SETTING_ENDPOINT, "tcp://127.0.0.1:7710", 0, 0, false,
      "Endpoint of the command socket." },
    { "dry-run", SETTING_BOOL, "false", 0, 0, false,
      "Report what would be removed without removing it." },
    SETTING_END
};

static const char *s_env_names [] = {
    "LAPSE_STALE_AFTER", "LAPSE_TICK_MIN_GAP", "LAPSE_SWEEP_BATCH",
    "LAPSE_STORE", "LAPSE_ID", "LAPSE_COMMANDS", "LAPSE_DRY_RUN",
    "LAPSE_CONFIG"
};

static char s_folder [256];
static char s_config_path [512];
static char s_error [512];

/*  Loads s_defs for section "registry" from the given arguments, which
    end with NULL; argv [0] is the program name.  */
static settings_t *
s_load (const char *first, ...)
{
    char *argv [32] = { "lapse-test" };
    int argc = 1;
    va_list args;
    va_start (args, first);
    for (const char *arg = first; arg && argc < 31; arg = va_arg (args, char *))
        argv [argc++] = (char *) arg;
    va_end (args);

    s_error [0] = '\0';
    return settings_load ("lapse-test", "registry", s_defs, argc, argv,
                          s_error, sizeof s_error);
}

static void
s_write_config (const char *text)
{
    FILE *file = fopen (s_config_path, "w");
    assert_non_null (file);
    assert_int_equal (fputs (text, file) >= 0, 1);
    assert_int_equal (fclose (file), 0);
}

static void
s_assert_contains (const char *text, const char *part)
{
    if (strstr (text, part) == NULL)
        fail_msg ("\"%s\" does not contain \"%s\"", text, part);
}

/*  Redirects a file descriptor to a temporary file until
    s_capture_stop, which returns what was written.  */
typedef struct {
    int target;
    int saved;
    int file;
    char path [512];
    char text [16384];
} capture_t;

static void
s_capture_start (capture_t *capture, int target)
{
    fflush (stdout);
    fflush (stderr);
    capture->target = target;
    snprintf (capture->path, sizeof capture->path, "%s/capture-XXXXXX",
              s_folder);
    capture->file = mkstemp (capture->path);
    assert_true (capture->file >= 0);
    capture->saved = dup (target);
    assert_true (capture->saved >= 0);
    assert_int_equal (dup2 (capture->file, target), target);
}

static const char *
s_capture_stop (capture_t *capture)
{
    fflush (stdout);
    fflush (stderr);
    assert_int_equal (dup2 (capture->saved, capture->target),
                      capture->target);
    close (capture->saved);

    ssize_t length = pread (capture->file, capture->text,
                            sizeof capture->text - 1, 0);
    assert_true (length >= 0);
    capture->text [length] = '\0';
    close (capture->file);
    unlink (capture->path);
    return capture->text;
}

static int
s_group_setup (void **state)
{
    snprintf (s_folder, sizeof s_folder, "/tmp/lapse-test-settings-XXXXXX");
    if (mkdtemp (s_folder) == NULL)
        return -1;
    snprintf (s_config_path, sizeof s_config_path, "%s/lapse.conf",
              s_folder);
    log_init ("test");
    return 0;
}

static int
s_group_teardown (void **state)
{
    unlink (s_config_path);
    rmdir (s_folder);
    return 0;
}

static int
s_setup (void **state)
{
    for (size_t index = 0; index < sizeof s_env_names / sizeof *s_env_names;
         index++)
        unsetenv (s_env_names [index]);
    unlink (s_config_path);
    log_set_level (LOG_LEVEL_INFO);
    return 0;
}

/*  Durations  */

static void
duration_parses_every_unit (void **state)
{
    int64_t value = -1;
    assert_int_equal (settings_parse_duration ("500ms", &value), 0);
    assert_int_equal (value, 500);
    assert_int_equal (settings_parse_duration ("10s", &value), 0);
    assert_int_equal (value, 10 * SECOND);
    assert_int_equal (settings_parse_duration ("30m", &value), 0);
    assert_int_equal (value, 30 * MINUTE);
    assert_int_equal (settings_parse_duration ("1h", &value), 0);
    assert_int_equal (value, 60 * MINUTE);
    assert_int_equal (settings_parse_duration ("2d", &value), 0);
    assert_int_equal (value, 2 * DAY);
}

static void
duration_parses_zero (void **state)
{
    int64_t value = -1;
    assert_int_equal (settings_parse_duration ("0s", &value), 0);
    assert_int_equal (value, 0);
    value = -1;
    assert_int_equal (settings_parse_duration ("0ms", &value), 0);
    assert_int_equal (value, 0);
}

static void
duration_rejects_bad_unit (void **state)
{
    const char *cases [] = { "10x", "10sec", "10S", "10M", "1.5h", "10mss",
                             "5us" };
    int64_t value = 0;
    for (size_t index = 0; index < sizeof cases / sizeof *cases; index++) {
        if (settings_parse_duration (cases [index], &value) != -1)
            fail_msg ("\"%s\" was accepted", cases [index]);
    }
}

static void
duration_rejects_missing_unit (void **state)
{
    int64_t value = 0;
    assert_int_equal (settings_parse_duration ("10", &value), -1);
    assert_int_equal (settings_parse_duration ("0", &value), -1);
    assert_int_equal (settings_parse_duration ("ms", &value), -1);
}

static void
duration_rejects_negative (void **state)
{
    int64_t value = 0;
    assert_int_equal (settings_parse_duration ("-1s", &value), -1);
    assert_int_equal (settings_parse_duration ("+1s", &value), -1);
}

static void
duration_rejects_overflow (void **state)
{
    int64_t value = 0;
    assert_int_equal (
        settings_parse_duration ("9223372036854775807ms", &value), 0);
    assert_int_equal (value, INT64_MAX);
    assert_int_equal (
        settings_parse_duration ("9223372036854775808ms", &value), -1);
    assert_int_equal (settings_parse_duration ("106751991167d", &value), 0);
    assert_int_equal (value, 106751991167LL * DAY);
    assert_int_equal (settings_parse_duration ("106751991168d", &value), -1);
    assert_int_equal (
        settings_parse_duration ("99999999999999999999999s", &value), -1);
}

static void
duration_rejects_spaces (void **state)
{
    int64_t value = 0;
    assert_int_equal (settings_parse_duration (" 1s", &value), -1);
    assert_int_equal (settings_parse_duration ("1s ", &value), -1);
    assert_int_equal (settings_parse_duration ("1 s", &value), -1);
}

static void
duration_rejects_empty (void **state)
{
    int64_t value = 0;
    assert_int_equal (settings_parse_duration ("", &value), -1);
    assert_int_equal (settings_parse_duration (NULL, &value), -1);
}

static void
duration_formats_largest_unit (void **state)
{
    char buffer [32];
    assert_string_equal (settings_format_duration (30 * MINUTE, buffer,
                                                   sizeof buffer), "30m");
    assert_string_equal (settings_format_duration (500, buffer,
                                                   sizeof buffer), "500ms");
    assert_string_equal (settings_format_duration (1500, buffer,
                                                   sizeof buffer), "1500ms");
    assert_string_equal (settings_format_duration (90 * SECOND, buffer,
                                                   sizeof buffer), "90s");
    assert_string_equal (settings_format_duration (2 * 60 * MINUTE, buffer,
                                                   sizeof buffer), "2h");
    assert_string_equal (settings_format_duration (7 * DAY, buffer,
                                                   sizeof buffer), "7d");
    assert_string_equal (settings_format_duration (0, buffer,
                                                   sizeof buffer), "0s");
}

static void
duration_format_round_trips (void **state)
{
    const int64_t cases [] = { 1, 999, 1000, 61 * SECOND, 25 * 60 * MINUTE,
                               30 * DAY, INT64_MAX };
    char buffer [32];
    for (size_t index = 0; index < sizeof cases / sizeof *cases; index++) {
        int64_t parsed = -1;
        settings_format_duration (cases [index], buffer, sizeof buffer);
        assert_int_equal (settings_parse_duration (buffer, &parsed), 0);
        assert_int_equal (parsed, cases [index]);
    }
}

/*  Validation by type  */

static void
defaults_apply_without_sources (void **state)
{
    settings_t *settings = s_load (NULL);
    assert_non_null (settings);
    assert_int_equal (settings_duration (settings, "stale-after"),
                      30 * MINUTE);
    assert_int_equal (settings_duration (settings, "tick-min-gap"), SECOND);
    assert_int_equal (settings_uint (settings, "sweep-batch"), 1000);
    assert_string_equal (settings_string (settings, "store"), "lapse.db");
    assert_string_equal (settings_string (settings, "commands"),
                         "tcp://127.0.0.1:7710");
    assert_false (settings_bool (settings, "dry-run"));
    assert_false (settings_help_requested (settings));
    assert_int_equal (settings_positional_count (settings), 0);
    settings_destroy (&settings);
    assert_null (settings);
}

/*  Returns 0 when --name=value loads, else -1.  */
static int
s_try (const char *name, const char *value)
{
    char flag [256];
    snprintf (flag, sizeof flag, "--%s=%s", name, value);
    settings_t *settings = s_load (flag, NULL);
    int rc = settings ? 0 : -1;
    settings_destroy (&settings);
    return rc;
}

static void
duration_setting_checks_range (void **state)
{
    assert_int_equal (s_try ("stale-after", "1s"), 0);
    assert_int_equal (s_try ("stale-after", "1000ms"), 0);
    assert_int_equal (s_try ("stale-after", "30d"), 0);
    assert_int_equal (s_try ("stale-after", "999ms"), -1);
    assert_int_equal (s_try ("stale-after", "0s"), -1);
    assert_int_equal (s_try ("stale-after", "31d"), -1);
    assert_int_equal (s_try ("stale-after", "2592000001ms"), -1);
    assert_int_equal (s_try ("tick-min-gap", "0s"), 0);
    assert_int_equal (s_try ("tick-min-gap", "100000d"), 0);
}

static void
uint_setting_checks_range (void **state)
{
    assert_int_equal (s_try ("sweep-batch", "1"), 0);
    assert_int_equal (s_try ("sweep-batch", "100000"), 0);
    assert_int_equal (s_try ("sweep-batch", "0"), -1);
    assert_int_equal (s_try ("sweep-batch", "100001"), -1);

    settings_t *settings = s_load ("--sweep-batch", "100000", NULL);
    assert_non_null (settings);
    assert_int_equal (settings_uint (settings, "sweep-batch"), 100000);
    settings_destroy (&settings);
}

static void
uint_setting_rejects_non_digits (void **state)
{
    const char *cases [] = { "", "-1", "+1", "12a", "1.0", " 1", "1 ", "0x10",
                             "18446744073709551616" };
    for (size_t index = 0; index < sizeof cases / sizeof *cases; index++) {
        if (s_try ("sweep-batch", cases [index]) != -1)
            fail_msg ("\"%s\" was accepted", cases [index]);
    }
}

static void
string_setting_checks_length (void **state)
{
    assert_int_equal (s_try ("store", "0123456789abcdef"), 0);
    assert_int_equal (s_try ("store", "x"), 0);
    assert_int_equal (s_try ("store", "0123456789abcdefg"), -1);
    s_assert_contains (s_error, "expected text of 1 to 16 bytes");

    /*  Without a minimum, empty text is a value like any other.  */
    assert_int_equal (s_try ("id", ""), 0);
}

static void
string_setting_checks_min_length (void **state)
{
    settings_t *settings = s_load ("--store", "", NULL);
    assert_null (settings);
    assert_string_equal (s_error, "invalid value \"\" for store (from flag "
                         "--store): expected text of 1 to 16 bytes");

    setenv ("LAPSE_STORE", "", 1);
    settings = s_load (NULL);
    assert_null (settings);
    s_assert_contains (s_error, "(from environment LAPSE_STORE)");
}

static void
string_without_default_is_null (void **state)
{
    settings_t *settings = s_load (NULL);
    assert_non_null (settings);
    assert_null (settings_string (settings, "id"));
    settings_destroy (&settings);

    settings = s_load ("--id", "host-42", NULL);
    assert_non_null (settings);
    assert_string_equal (settings_string (settings, "id"), "host-42");
    settings_destroy (&settings);
}

static void
endpoint_setting_checks_prefix (void **state)
{
    assert_int_equal (s_try ("commands", "tcp://127.0.0.1:9000"), 0);
    assert_int_equal (s_try ("commands", "ipc:///tmp/lapse.sock"), 0);
    assert_int_equal (s_try ("commands", "inproc://commands"), 0);
    assert_int_equal (s_try ("commands", "tcp://"), -1);
    assert_int_equal (s_try ("commands", "ipc://"), -1);
    assert_int_equal (s_try ("commands", "inproc://"), -1);
    assert_int_equal (s_try ("commands", "udp://127.0.0.1:9000"), -1);
    assert_int_equal (s_try ("commands", "127.0.0.1:9000"), -1);
    assert_int_equal (s_try ("commands", ""), -1);
    s_assert_contains (s_error, "tcp://, ipc:// or inproc://");
}

static void
endpoint_tcp_checks_port (void **state)
{
    const char *valid [] = { "tcp://127.0.0.1:1", "tcp://127.0.0.1:65535",
                             "tcp://*:7710", "tcp://127.0.0.1:*",
                             "tcp://[::1]:7710", "tcp://eth0:7710" };
    for (size_t index = 0; index < sizeof valid / sizeof *valid; index++)
        if (s_try ("commands", valid [index]) != 0)
            fail_msg ("\"%s\" was rejected: %s", valid [index], s_error);

    /*  libzmq would bind 99999 as 34463 and -1 as 65535.  */
    const char *invalid [] = { "tcp://127.0.0.1:99999", "tcp://127.0.0.1:-1",
                               "tcp://127.0.0.1:0", "tcp://127.0.0.1:65536",
                               "tcp://127.0.0.1:", "tcp://127.0.0.1",
                               "tcp://:7710", "tcp://127.0.0.1:77x",
                               "tcp://127.0.0.1: 7710", "tcp://127.0.0.1:+1",
                               "tcp://127.0.0.1:**" };
    for (size_t index = 0; index < sizeof invalid / sizeof *invalid; index++)
        if (s_try ("commands", invalid [index]) != -1)
            fail_msg ("\"%s\" was accepted", invalid [index]);

    assert_int_equal (s_try ("commands", "tcp://127.0.0.1:99999"), -1);
    assert_string_equal (s_error, "invalid value \"tcp://127.0.0.1:99999\" "
                         "for commands (from flag --commands): expected "
                         "tcp://HOST:PORT with a host and a port from 1 to "
                         "65535 or *, at most 4096 bytes in all");
}

static void
endpoint_ipc_checks_path_length (void **state)
{
    char endpoint [256] = "ipc:///";
    size_t length = strlen (endpoint);

    /*  A unix socket path holds 107 bytes and its NUL on Linux.  */
    while (length < strlen ("ipc://") + 107)
        endpoint [length++] = 'a';
    endpoint [length] = '\0';
    assert_int_equal (s_try ("commands", endpoint), 0);

    endpoint [length++] = 'a';
    endpoint [length] = '\0';
    setenv ("LAPSE_COMMANDS", endpoint, 1);
    settings_t *settings = s_load (NULL);
    assert_null (settings);
    s_assert_contains (s_error, "for commands (from environment "
                       "LAPSE_COMMANDS): expected ipc://PATH with a path "
                       "of 1 to 107 bytes, the most a unix socket path can "
                       "hold");
}

static void
endpoint_inproc_needs_name (void **state)
{
    assert_int_equal (s_try ("commands", "inproc://x"), 0);
    assert_int_equal (s_try ("commands", "inproc://"), -1);
    s_assert_contains (s_error, "expected inproc://NAME with a name of at "
                       "least 1 byte");
}

static void
bool_setting_accepts_every_word (void **state)
{
    const struct {
        const char *word;
        bool value;
    } cases [] = {
        { "true", true }, { "false", false }, { "yes", true },
        { "no", false }, { "on", true }, { "off", false }, { "1", true },
        { "0", false }, { "TRUE", true }, { "Off", false }
    };
    for (size_t index = 0; index < sizeof cases / sizeof *cases; index++) {
        char flag [64];
        snprintf (flag, sizeof flag, "--dry-run=%s", cases [index].word);
        settings_t *settings = s_load (flag, NULL);
        assert_non_null (settings);
        assert_int_equal (settings_bool (settings, "dry-run"),
                          cases [index].value);
        settings_destroy (&settings);
    }
    assert_int_equal (s_try ("dry-run", "maybe"), -1);
    assert_int_equal (s_try ("dry-run", ""), -1);
    assert_int_equal (s_try ("dry-run", "2"), -1);
}

static void
bool_bare_flag_means_true (void **state)
{
    settings_t *settings = s_load ("--dry-run", "list", NULL);
    assert_non_null (settings);
    assert_true (settings_bool (settings, "dry-run"));
    /*  A bare boolean flag never takes the next argument as its value.  */
    assert_int_equal (settings_positional_count (settings), 1);
    assert_string_equal (settings_positional (settings, 0), "list");
    settings_destroy (&settings);
}

/*  Precedence: default < file < environment < flag  */

static void
file_overrides_default (void **state)
{
    s_write_config ("registry\n    stale-after = 5m\n");
    settings_t *settings = s_load ("--config", s_config_path, NULL);
    assert_non_null (settings);
    assert_int_equal (settings_duration (settings, "stale-after"),
                      5 * MINUTE);
    assert_int_equal (settings_uint (settings, "sweep-batch"), 1000);
    settings_destroy (&settings);
}

static void
env_overrides_file (void **state)
{
    s_write_config ("registry\n    stale-after = 5m\n");
    setenv ("LAPSE_STALE_AFTER", "7m", 1);
    settings_t *settings = s_load ("--config", s_config_path, NULL);
    assert_non_null (settings);
    assert_int_equal (settings_duration (settings, "stale-after"),
                      7 * MINUTE);
    settings_destroy (&settings);
}

static void
flag_overrides_env (void **state)
{
    s_write_config ("registry\n    stale-after = 5m\n");
    setenv ("LAPSE_STALE_AFTER", "7m", 1);
    settings_t *settings = s_load ("--config", s_config_path,
                                   "--stale-after", "9m", NULL);
    assert_non_null (settings);
    assert_int_equal (settings_duration (settings, "stale-after"),
                      9 * MINUTE);
    settings_destroy (&settings);
}

static void
env_names_use_underscores (void **state)
{
    setenv ("LAPSE_TICK_MIN_GAP", "250ms", 1);
    setenv ("LAPSE_DRY_RUN", "yes", 1);
    settings_t *settings = s_load (NULL);
    assert_non_null (settings);
    assert_int_equal (settings_duration (settings, "tick-min-gap"), 250);
    assert_true (settings_bool (settings, "dry-run"));
    settings_destroy (&settings);
}

static void
config_env_names_file (void **state)
{
    s_write_config ("registry\n    sweep-batch = 42\n");
    setenv ("LAPSE_CONFIG", s_config_path, 1);
    settings_t *settings = s_load (NULL);
    assert_non_null (settings);
    assert_int_equal (settings_uint (settings, "sweep-batch"), 42);
    settings_destroy (&settings);
}

static void
config_flag_overrides_config_env (void **state)
{
    s_write_config ("registry\n    sweep-batch = 42\n");
    setenv ("LAPSE_CONFIG", "/nonexistent/lapse.conf", 1);
    settings_t *settings = s_load ("--config", s_config_path, NULL);
    assert_non_null (settings);
    assert_int_equal (settings_uint (settings, "sweep-batch"), 42);
    settings_destroy (&settings);
}

static void
config_ignores_other_sections (void **state)
{
    s_write_config ("# comment\n"
                    "scheduler\n    interval = 10m\n    stale-after = 1s\n"
                    "registry\n    store = \"a b.db\"    # quoted\n");
    settings_t *settings = s_load ("--config", s_config_path, NULL);
    assert_non_null (settings);
    assert_string_equal (settings_string (settings, "store"), "a b.db");
    assert_int_equal (settings_duration (settings, "stale-after"),
                      30 * MINUTE);
    settings_destroy (&settings);
}

static void
config_accepts_every_program_section (void **state)
{
    s_write_config ("registry\n    store = a.db\n"
                    "scheduler\n    interval = 1m\n"
                    "audit\n    file = a.jsonl\n"
                    "lapsectl\n    timeout = 1s\n"
                    "node-sim\n    clients = 5\n"
                    "loadgen\n    node = bench\n"
                    "etcdload\n    address = 127.0.0.1\n"
                    "sweepwatch\n    match = x\n");
    settings_t *settings = s_load ("--config", s_config_path, NULL);
    assert_non_null (settings);
    assert_string_equal (settings_string (settings, "store"), "a.db");
    settings_destroy (&settings);
}

/*  Config file errors  */

static void
config_unknown_section_fails (void **state)
{
    s_write_config ("registy\n    stale-after = 5m\n");
    settings_t *settings = s_load ("--config", s_config_path, NULL);
    assert_null (settings);

    char expected [1024];
    snprintf (expected, sizeof expected,
              "unknown section \"registy\" in config file %s: expected one "
              "of registry, scheduler, audit, lapsectl, node-sim, loadgen, "
              "etcdload, sweepwatch", s_config_path);
    assert_string_equal (s_error, expected);

    /*  Another program's misspelt section is an error here too.  */
    s_write_config ("registry\n    stale-after = 5m\nschedular\n");
    settings = s_load ("--config", s_config_path, NULL);
    assert_null (settings);
    s_assert_contains (s_error, "unknown section \"schedular\"");
}

static void
config_key_outside_section_fails (void **state)
{
    s_write_config ("stale-after = 5m\nregistry\n    store = a.db\n");
    settings_t *settings = s_load ("--config", s_config_path, NULL);
    assert_null (settings);

    char expected [1024];
    snprintf (expected, sizeof expected,
              "key \"stale-after\" outside any section in config file %s: "
              "put it under one of the sections registry, scheduler, "
              "audit, lapsectl, node-sim, loadgen, etcdload, sweepwatch, "
              "indented by 4 spaces", s_config_path);
    assert_string_equal (s_error, expected);
}

static void
load_rejects_section_not_known (void **state)
{
    char *argv [] = { "lapse-test" };
    settings_t *settings = settings_load ("lapse-test", "registy", s_defs, 1,
                                          argv, s_error, sizeof s_error);
    assert_null (settings);
    s_assert_contains (s_error, "section registy of lapse-test is not "
                       "among the known sections");
}

/*  Loads --config path in a child process and returns what it wrote to
    s_error through a pipe, failing the test when the child has not
    finished within 5 s: opening a FIFO used to wait for a writer for
    good.  */
static void
s_load_in_child (const char *path, char *error, size_t size)
{
    int pipe_fds [2];
    assert_int_equal (pipe (pipe_fds), 0);
    pid_t child = fork ();
    assert_true (child >= 0);
    if (child == 0) {
        close (pipe_fds [0]);
        settings_t *settings = s_load ("--config", path, NULL);
        ssize_t written = write (pipe_fds [1], s_error, strlen (s_error));
        _exit (settings == NULL && written >= 0 ? 0 : 1);
    }
    close (pipe_fds [1]);

    int status = 0;
    pid_t done = 0;
    for (int wait = 0; wait < 500 && done == 0; wait++) {
        done = waitpid (child, &status, WNOHANG);
        if (done == 0)
            nanosleep (&(struct timespec) { 0, 10000000 }, NULL);
    }
    if (done == 0) {
        kill (child, SIGKILL);
        waitpid (child, &status, 0);
        close (pipe_fds [0]);
        fail_msg ("loading %s did not finish within 5 s", path);
    }
    ssize_t length = read (pipe_fds [0], error, size - 1);
    close (pipe_fds [0]);
    error [length > 0 ? length : 0] = '\0';
    assert_true (WIFEXITED (status));
    assert_int_equal (WEXITSTATUS (status), 0);
}

static void
config_fifo_fails_at_once (void **state)
{
    char path [512];
    char error [512];
    snprintf (path, sizeof path, "%s/lapse.fifo", s_folder);
    assert_int_equal (mkfifo (path, 0600), 0);
    s_load_in_child (path, error, sizeof error);
    unlink (path);

    char expected [1024];
    snprintf (expected, sizeof expected, "failed to read config file %s: "
              "not a regular file (a FIFO)", path);
    assert_string_equal (error, expected);
}

static void
config_device_fails (void **state)
{
    settings_t *settings = s_load ("--config", "/dev/zero", NULL);
    assert_null (settings);
    assert_string_equal (s_error, "failed to read config file /dev/zero: "
                         "not a regular file (a device)");
}

static void
config_too_large_fails (void **state)
{
    FILE *file = fopen (s_config_path, "w");
    assert_non_null (file);
    assert_int_equal (fputs ("registry\n    stale-after = 5m\n", file) >= 0,
                      1);
    while (ftell (file) <= 1024 * 1024)
        fputs ("# a comment line, one of many that make the file too large\n",
               file);
    assert_int_equal (fclose (file), 0);

    settings_t *settings = s_load ("--config", s_config_path, NULL);
    assert_null (settings);
    s_assert_contains (s_error, s_config_path);
    s_assert_contains (s_error, "more than the 1048576 (1 MiB) a config "
                       "file may have");
}

static void
config_missing_file_fails (void **state)
{
    settings_t *settings = s_load ("--config", s_config_path, NULL);
    assert_null (settings);
    s_assert_contains (s_error, "failed to read config file");
    s_assert_contains (s_error, s_config_path);
    s_assert_contains (s_error, "No such file or directory");
}

static void
config_folder_fails (void **state)
{
    settings_t *settings = s_load ("--config", s_folder, NULL);
    assert_null (settings);
    s_assert_contains (s_error, "not a regular file (a folder)");
}

static void
config_unknown_key_fails (void **state)
{
    s_write_config ("registry\n    stale-aftr = 5m\n");
    settings_t *settings = s_load ("--config", s_config_path, NULL);
    assert_null (settings);
    s_assert_contains (s_error, "unknown key \"stale-aftr\"");
    s_assert_contains (s_error, "section registry");
    s_assert_contains (s_error, s_config_path);
    s_assert_contains (s_error, "stale-after");
}

static void
config_nested_key_fails (void **state)
{
    s_write_config ("registry\n    stale-after = 5m\n        store = x\n");
    settings_t *settings = s_load ("--config", s_config_path, NULL);
    assert_null (settings);
    s_assert_contains (s_error, "registry/stale-after/store");
}

static void
config_duplicate_key_fails (void **state)
{
    s_write_config ("registry\n    stale-after = 5m\n    stale-after = 6m\n");
    settings_t *settings = s_load ("--config", s_config_path, NULL);
    assert_null (settings);
    s_assert_contains (s_error, "duplicate key registry/stale-after");

    s_write_config ("registry\n    stale-after = 5m\n"
                    "scheduler\n    interval = 1m\n"
                    "registry\n    store = a.db\n");
    settings = s_load ("--config", s_config_path, NULL);
    assert_null (settings);
    s_assert_contains (s_error, "duplicate section registry");
}

static void
config_invalid_zpl_fails (void **state)
{
    s_write_config ("registry\n   stale-after = 5m\n");
    capture_t capture;
    s_capture_start (&capture, STDERR_FILENO);
    settings_t *settings = s_load ("--config", s_config_path, NULL);
    s_capture_stop (&capture);
    assert_null (settings);
    s_assert_contains (s_error, "invalid config file");
    s_assert_contains (s_error, s_config_path);
}

/*  Command line  */

static void
unknown_flag_fails (void **state)
{
    settings_t *settings = s_load ("--stale-aftr=5m", NULL);
    assert_null (settings);
    assert_string_equal (s_error, "unknown flag --stale-aftr: run "
                         "\"lapse-test --help\" for the list of flags");
}

static void
single_dash_flag_fails (void **state)
{
    settings_t *settings = s_load ("-x", NULL);
    assert_null (settings);
    s_assert_contains (s_error, "unknown flag -x:");
    s_assert_contains (s_error, "--help");
}

static void
missing_flag_value_fails (void **state)
{
    settings_t *settings = s_load ("--stale-after", NULL);
    assert_null (settings);
    s_assert_contains (s_error, "missing value for flag --stale-after");

    settings = s_load ("--store", "--dry-run", NULL);
    assert_null (settings);
    s_assert_contains (s_error, "missing value for flag --store");

    settings = s_load ("--config", NULL);
    assert_null (settings);
    s_assert_contains (s_error, "missing value for flag --config");
}

static void
equals_form_sets_value (void **state)
{
    settings_t *settings = s_load ("--stale-after=2h", "--store=a=b",
                                   "--id=", NULL);
    assert_non_null (settings);
    assert_int_equal (settings_duration (settings, "stale-after"),
                      120 * MINUTE);
    assert_string_equal (settings_string (settings, "store"), "a=b");
    assert_string_equal (settings_string (settings, "id"), "");
    settings_destroy (&settings);
}

static void
repeated_flag_uses_last (void **state)
{
    settings_t *settings = s_load ("--sweep-batch", "5", "--sweep-batch=6",
                                   NULL);
    assert_non_null (settings);
    assert_int_equal (settings_uint (settings, "sweep-batch"), 6);
    settings_destroy (&settings);
}

static void
positional_arguments_kept_in_order (void **state)
{
    settings_t *settings = s_load ("list", "--sweep-batch", "5", "node-1",
                                   "-", "--", "--not-a-flag", "-x", NULL);
    assert_non_null (settings);
    assert_int_equal (settings_uint (settings, "sweep-batch"), 5);
    assert_int_equal (settings_positional_count (settings), 5);
    assert_string_equal (settings_positional (settings, 0), "list");
    assert_string_equal (settings_positional (settings, 1), "node-1");
    assert_string_equal (settings_positional (settings, 2), "-");
    assert_string_equal (settings_positional (settings, 3), "--not-a-flag");
    assert_string_equal (settings_positional (settings, 4), "-x");
    assert_null (settings_positional (settings, 5));
    settings_destroy (&settings);
}

static void
help_flag_is_reported (void **state)
{
    settings_t *settings = s_load ("--help", NULL);
    assert_non_null (settings);
    assert_true (settings_help_requested (settings));
    settings_destroy (&settings);

    settings = s_load ("--help=yes", NULL);
    assert_null (settings);
    s_assert_contains (s_error, "--help takes no value");
}

static void
help_ignores_invalid_environment (void **state)
{
    setenv ("LAPSE_STALE_AFTER", "soon", 1);
    settings_t *settings = s_load ("--help", NULL);
    assert_non_null (settings);
    assert_true (settings_help_requested (settings));
    assert_int_equal (settings_duration (settings, "stale-after"),
                      30 * MINUTE);
    settings_destroy (&settings);
}

/*  Reload  */

static void
reload_changes_only_reloadable (void **state)
{
    s_write_config ("registry\n    stale-after = 5m\n    sweep-batch = 10\n");
    settings_t *settings = s_load ("--config", s_config_path, NULL);
    assert_non_null (settings);

    s_write_config ("registry\n    stale-after = 6m\n    sweep-batch = 20\n");
    assert_int_equal (settings_reload (settings, s_error, sizeof s_error), 1);
    assert_int_equal (settings_duration (settings, "stale-after"),
                      6 * MINUTE);
    assert_int_equal (settings_uint (settings, "sweep-batch"), 10);
    settings_destroy (&settings);
}

static void
reload_reports_no_change (void **state)
{
    s_write_config ("registry\n    stale-after = 5m\n");
    settings_t *settings = s_load ("--config", s_config_path, NULL);
    assert_non_null (settings);

    assert_int_equal (settings_reload (settings, s_error, sizeof s_error), 0);
    assert_int_equal (settings_duration (settings, "stale-after"),
                      5 * MINUTE);

    /*  The same duration written another way is no change.  */
    s_write_config ("registry\n    stale-after = 300s\n");
    assert_int_equal (settings_reload (settings, s_error, sizeof s_error), 0);
    settings_destroy (&settings);
}

static void
reload_keeps_flags (void **state)
{
    s_write_config ("registry\n    stale-after = 5m\n");
    settings_t *settings = s_load ("--config", s_config_path,
                                   "--stale-after", "9m", NULL);
    assert_non_null (settings);

    s_write_config ("registry\n    stale-after = 6m\n");
    setenv ("LAPSE_STALE_AFTER", "7m", 1);
    assert_int_equal (settings_reload (settings, s_error, sizeof s_error), 0);
    assert_int_equal (settings_duration (settings, "stale-after"),
                      9 * MINUTE);
    settings_destroy (&settings);
}

static void
reload_is_all_or_nothing (void **state)
{
    s_write_config ("registry\n    tick-min-gap = 2s\n"
                    "    stale-after = 5m\n");
    settings_t *settings = s_load ("--config", s_config_path, NULL);
    assert_non_null (settings);

    s_write_config ("registry\n    tick-min-gap = 3s\n"
                    "    stale-after = 5x\n");
    assert_int_equal (settings_reload (settings, s_error, sizeof s_error),
                      -1);
    s_assert_contains (s_error, "\"5x\" for stale-after");
    assert_int_equal (settings_duration (settings, "tick-min-gap"),
                      2 * SECOND);
    assert_int_equal (settings_duration (settings, "stale-after"),
                      5 * MINUTE);

    /*  Once the file is fixed, both values change together.  */
    s_write_config ("registry\n    tick-min-gap = 3s\n"
                    "    stale-after = 6m\n");
    assert_int_equal (settings_reload (settings, s_error, sizeof s_error), 1);
    assert_int_equal (settings_duration (settings, "tick-min-gap"),
                      3 * SECOND);
    assert_int_equal (settings_duration (settings, "stale-after"),
                      6 * MINUTE);
    settings_destroy (&settings);
}

static void
reload_rejects_invalid_value_not_reloadable (void **state)
{
    s_write_config ("registry\n    stale-after = 5m\n    sweep-batch = 10\n");
    settings_t *settings = s_load ("--config", s_config_path, NULL);
    assert_non_null (settings);

    /*  sweep-batch is read only at start, but a value that would stop
        the next start is reported now, and nothing is applied.  */
    s_write_config ("registry\n    stale-after = 6m\n    sweep-batch = 0\n");
    assert_int_equal (settings_reload (settings, s_error, sizeof s_error),
                      -1);
    char expected [1024];
    snprintf (expected, sizeof expected,
              "invalid value \"0\" for sweep-batch (from config %s "
              "registry/sweep-batch): expected a whole number between 1 "
              "and 100000", s_config_path);
    assert_string_equal (s_error, expected);
    assert_int_equal (settings_duration (settings, "stale-after"),
                      5 * MINUTE);
    assert_int_equal (settings_uint (settings, "sweep-batch"), 10);
    settings_destroy (&settings);
}

static void
reload_rejects_unknown_section (void **state)
{
    s_write_config ("registry\n    stale-after = 5m\n");
    settings_t *settings = s_load ("--config", s_config_path, NULL);
    assert_non_null (settings);

    s_write_config ("registry\n    stale-after = 6m\naudi\n");
    assert_int_equal (settings_reload (settings, s_error, sizeof s_error),
                      -1);
    s_assert_contains (s_error, "unknown section \"audi\"");
    assert_int_equal (settings_duration (settings, "stale-after"),
                      5 * MINUTE);
    settings_destroy (&settings);
}

static void
reload_reads_environment (void **state)
{
    settings_t *settings = s_load (NULL);
    assert_non_null (settings);

    setenv ("LAPSE_STALE_AFTER", "8m", 1);
    setenv ("LAPSE_SWEEP_BATCH", "7", 1);
    assert_int_equal (settings_reload (settings, s_error, sizeof s_error), 1);
    assert_int_equal (settings_duration (settings, "stale-after"),
                      8 * MINUTE);
    assert_int_equal (settings_uint (settings, "sweep-batch"), 1000);
    settings_destroy (&settings);
}

static void
reload_fails_on_missing_file (void **state)
{
    s_write_config ("registry\n    stale-after = 5m\n");
    settings_t *settings = s_load ("--config", s_config_path, NULL);
    assert_non_null (settings);

    unlink (s_config_path);
    assert_int_equal (settings_reload (settings, s_error, sizeof s_error),
                      -1);
    s_assert_contains (s_error, "failed to read config file");
    assert_int_equal (settings_duration (settings, "stale-after"),
                      5 * MINUTE);
    settings_destroy (&settings);
}

static void
reload_rejects_unknown_key (void **state)
{
    s_write_config ("registry\n    stale-after = 5m\n");
    settings_t *settings = s_load ("--config", s_config_path, NULL);
    assert_non_null (settings);

    s_write_config ("registry\n    stale-after = 6m\n    stale-aftr = 1m\n");
    assert_int_equal (settings_reload (settings, s_error, sizeof s_error),
                      -1);
    s_assert_contains (s_error, "unknown key \"stale-aftr\"");
    assert_int_equal (settings_duration (settings, "stale-after"),
                      5 * MINUTE);
    settings_destroy (&settings);
}

static void
reload_warns_when_flag_overrides_file (void **state)
{
    s_write_config ("registry\n    stale-after = 5m\n");
    settings_t *settings = s_load ("--config", s_config_path,
                                   "--stale-after", "9m", NULL);
    assert_non_null (settings);

    s_write_config ("registry\n    stale-after = 6m\n");
    capture_t capture;
    s_capture_start (&capture, STDERR_FILENO);
    int rc = settings_reload (settings, s_error, sizeof s_error);
    const char *text = s_capture_stop (&capture);
    settings_destroy (&settings);

    assert_int_equal (rc, 0);
    s_assert_contains (text, "level=warn proc=test msg=\"configuration "
                       "value overridden\" setting=stale-after "
                       "file_value=6m source=\"flag --stale-after\"\n");
}

static void
reload_warns_when_environment_overrides_file (void **state)
{
    s_write_config ("registry\n    stale-after = 5m\n");
    setenv ("LAPSE_STALE_AFTER", "7m", 1);
    settings_t *settings = s_load ("--config", s_config_path, NULL);
    assert_non_null (settings);

    s_write_config ("registry\n    stale-after = 6m\n");
    capture_t capture;
    s_capture_start (&capture, STDERR_FILENO);
    int rc = settings_reload (settings, s_error, sizeof s_error);
    const char *text = s_capture_stop (&capture);
    settings_destroy (&settings);

    assert_int_equal (rc, 0);
    s_assert_contains (text, "msg=\"configuration value overridden\" "
                       "setting=stale-after file_value=6m "
                       "source=\"environment LAPSE_STALE_AFTER\"\n");
}

static void
reload_warns_when_restart_needed (void **state)
{
    s_write_config ("registry\n    sweep-batch = 10\n");
    settings_t *settings = s_load ("--config", s_config_path, NULL);
    assert_non_null (settings);

    s_write_config ("registry\n    sweep-batch = 20\n");
    capture_t capture;
    s_capture_start (&capture, STDERR_FILENO);
    int rc = settings_reload (settings, s_error, sizeof s_error);
    const char *text = s_capture_stop (&capture);

    assert_int_equal (rc, 0);
    assert_int_equal (settings_uint (settings, "sweep-batch"), 10);
    settings_destroy (&settings);
    s_assert_contains (text, "level=warn proc=test msg=\"configuration "
                       "value needs a restart\" setting=sweep-batch "
                       "file_value=20\n");
}

static void
reload_quiet_when_file_unchanged (void **state)
{
    s_write_config ("registry\n    stale-after = 5m\n"
                    "    sweep-batch = 10\n");
    settings_t *settings = s_load ("--config", s_config_path,
                                   "--stale-after", "9m", NULL);
    assert_non_null (settings);

    /*  Only a value that the file changed is reported, once.  */
    s_write_config ("registry\n    stale-after = 6m\n"
                    "    sweep-batch = 10\n");
    capture_t capture;
    s_capture_start (&capture, STDERR_FILENO);
    assert_int_equal (settings_reload (settings, s_error, sizeof s_error), 0);
    assert_int_equal (settings_reload (settings, s_error, sizeof s_error), 0);
    const char *text = s_capture_stop (&capture);
    settings_destroy (&settings);

    const char *first = strstr (text, "msg=\"configuration value");
    assert_non_null (first);
    assert_null (strstr (first + 1, "msg=\"configuration value"));
    assert_null (strstr (text, "setting=sweep-batch"));
}

/*  Log levels  */

static const setting_def_t s_level_defs [] = {
    { "log-level", SETTING_LOG_LEVEL, "info", 0, 0, false,
      "Lowest level logged." },
    SETTING_END
};

static settings_t *
s_load_level (const char *flag)
{
    char *argv [] = { "lapse-test", (char *) flag, NULL };
    return settings_load ("lapse-test", "registry", s_level_defs,
                          flag ? 2 : 1, argv, s_error, sizeof s_error);
}

static void
log_level_setting_reads_names (void **state)
{
    settings_t *settings = s_load_level (NULL);
    assert_non_null (settings);
    assert_int_equal (settings_log_level (settings, "log-level"),
                      LOG_LEVEL_INFO);
    settings_destroy (&settings);

    settings = s_load_level ("--log-level=warn");
    assert_non_null (settings);
    assert_int_equal (settings_log_level (settings, "log-level"),
                      LOG_LEVEL_WARN);

    capture_t capture;
    s_capture_start (&capture, STDERR_FILENO);
    settings_log (settings);
    const char *line = s_capture_stop (&capture);
    settings_destroy (&settings);
    s_assert_contains (line, " log-level=warn\n");
}

static void
log_level_error_names_source (void **state)
{
    settings_t *settings = s_load_level ("--log-level=loud");
    assert_null (settings);
    assert_string_equal (s_error,
                         "invalid value \"loud\" for log-level (from flag "
                         "--log-level): expected debug, info, warn or "
                         "error");
}

/*  Error messages  */

static void
error_names_flag_source (void **state)
{
    settings_t *settings = s_load ("--stale-after", "30x", NULL);
    assert_null (settings);
    assert_string_equal (s_error,
                         "invalid value \"30x\" for stale-after (from flag "
                         "--stale-after): expected a duration with a unit "
                         "(ms, s, m, h, d) between 1s and 30d");
}

static void
error_names_environment_source (void **state)
{
    setenv ("LAPSE_SWEEP_BATCH", "0", 1);
    settings_t *settings = s_load (NULL);
    assert_null (settings);
    assert_string_equal (s_error,
                         "invalid value \"0\" for sweep-batch (from "
                         "environment LAPSE_SWEEP_BATCH): expected a whole "
                         "number between 1 and 100000");
}

static void
error_names_config_source (void **state)
{
    s_write_config ("registry\n    commands = udp://x\n");
    settings_t *settings = s_load ("--config", s_config_path, NULL);
    assert_null (settings);

    char expected [1024];
    snprintf (expected, sizeof expected,
              "invalid value \"udp://x\" for commands (from config %s "
              "registry/commands): expected tcp://, ipc:// or inproc:// "
              "followed by an address, at most 4096 bytes in all",
              s_config_path);
    assert_string_equal (s_error, expected);
}

static void
error_escapes_control_characters (void **state)
{
    settings_t *settings = s_load ("--sweep-batch", "1\n2", NULL);
    assert_null (settings);
    s_assert_contains (s_error, "invalid value \"1\\n2\" for sweep-batch");
}

static void
error_fits_small_buffer (void **state)
{
    char error [16];
    memset (error, 'z', sizeof error);
    char *argv [] = { "lapse-test", "--stale-after", "30x" };
    settings_t *settings = settings_load ("lapse-test", "registry", s_defs,
                                          3, argv, error, sizeof error);
    assert_null (settings);
    assert_int_equal (strlen (error), sizeof error - 1);
    assert_string_equal (error, "invalid value \"");
}

/*  Logging  */

static void
log_quote_leaves_plain_values (void **state)
{
    assert_string_equal (log_quote ("abc"), "abc");
    assert_string_equal (log_quote ("tcp://127.0.0.1:7710"),
                         "tcp://127.0.0.1:7710");
    assert_string_equal (log_quote (NULL), "null");
}

static void
log_quote_escapes_specials (void **state)
{
    assert_string_equal (log_quote (""), "\"\"");
    assert_string_equal (log_quote ("a b"), "\"a b\"");
    assert_string_equal (log_quote ("a\"b"), "\"a\\\"b\"");
    assert_string_equal (log_quote ("a\\b"), "\"a\\\\b\"");
    assert_string_equal (log_quote ("a=b"), "\"a=b\"");
    assert_string_equal (log_quote ("a\nb\tc\rd"), "\"a\\nb\\tc\\rd\"");
    assert_string_equal (log_quote ("\x01\x7f"), "\"\\x01\\x7f\"");
    assert_string_equal (log_quote_n ("a\0b", 3), "\"a\\x00b\"");
    assert_string_equal (log_quote_n ("abcdef", 3), "abc");
}

static void
log_quote_handles_utf8 (void **state)
{
    assert_string_equal (log_quote ("caf\xc3\xa9"), "\"caf\xc3\xa9\"");
    assert_string_equal (log_quote ("a\xff"), "\"a\\xff\"");
    /*  A sequence cut short is not UTF-8.  */
    assert_string_equal (log_quote ("\xc3"), "\"\\xc3\"");
}

static void
log_quote_cuts_long_values (void **state)
{
    char value [1301];
    memset (value, 'a', 1300);
    value [1300] = '\0';
    char expected [1040];
    memset (expected, 'a', 1024);
    strcpy (expected + 1024, "...");
    assert_string_equal (log_quote (value), expected);

    /*  A space forces quotes, and "..." goes inside them.  */
    value [0] = ' ';
    snprintf (expected, sizeof expected, "\" %.1023s...\"", value + 1);
    assert_string_equal (log_quote (value), expected);

    memset (value, 'a', 1024);
    value [1024] = '\0';
    assert_int_equal (strlen (log_quote (value)), 1024);
}

static void
log_quote_rotates_eight_buffers (void **state)
{
    const char *results [8];
    char inputs [8][16];
    for (int index = 0; index < 8; index++) {
        snprintf (inputs [index], sizeof inputs [index], "value %d", index);
        results [index] = log_quote (inputs [index]);
    }
    for (int index = 0; index < 8; index++) {
        char expected [32];
        snprintf (expected, sizeof expected, "\"value %d\"", index);
        assert_string_equal (results [index], expected);
    }
}

static void
log_line_has_logfmt_format (void **state)
{
    capture_t capture;
    s_capture_start (&capture, STDERR_FILENO);
    log_info ("sweep finished", "sweep=%d evicted=%d node=%s", 42, 17,
              log_quote ("node 1"));
    const char *line = s_capture_stop (&capture);

    regex_t pattern;
    assert_int_equal (
        regcomp (&pattern,
                 "^ts=[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}"
                 "\\.[0-9]{3}Z level=info proc=test msg=\"sweep finished\" "
                 "sweep=42 evicted=17 node=\"node 1\"\n$",
                 REG_EXTENDED | REG_NOSUB),
        0);
    int rc = regexec (&pattern, line, 0, NULL, 0);
    regfree (&pattern);
    if (rc != 0)
        fail_msg ("unexpected line: %s", line);

    /*  The time stamp is UTC wall-clock time.  */
    struct tm stamp;
    memset (&stamp, 0, sizeof stamp);
    assert_non_null (strptime (line + 3, "%Y-%m-%dT%H:%M:%S", &stamp));
    long long skew = (long long) (timegm (&stamp) - time (NULL));
    assert_in_range (llabs (skew), 0, 5);
}

static void
log_line_without_fields (void **state)
{
    capture_t capture;
    s_capture_start (&capture, STDERR_FILENO);
    log_warn ("store busy", NULL);
    const char *line = s_capture_stop (&capture);
    s_assert_contains (line, " level=warn proc=test msg=\"store busy\"\n");
    assert_ptr_equal (strchr (line, '\n'), line + strlen (line) - 1);
}

static void
log_level_filters_lines (void **state)
{
    capture_t capture;
    s_capture_start (&capture, STDERR_FILENO);
    log_set_level (LOG_LEVEL_WARN);
    log_debug ("hidden debug", NULL);
    log_info ("hidden info", NULL);
    log_warn ("shown warn", NULL);
    log_error ("shown error", "code=%d", 3);
    log_set_level (LOG_LEVEL_INFO);
    const char *text = s_capture_stop (&capture);

    assert_null (strstr (text, "hidden"));
    s_assert_contains (text, "level=warn proc=test msg=\"shown warn\"\n");
    s_assert_contains (text,
                       "level=error proc=test msg=\"shown error\" code=3\n");
}

static void
log_level_parse_names (void **state)
{
    log_level_t level = LOG_LEVEL_ERROR;
    assert_int_equal (log_level_parse ("debug", &level), 0);
    assert_int_equal (level, LOG_LEVEL_DEBUG);
    assert_int_equal (log_level_parse ("info", &level), 0);
    assert_int_equal (level, LOG_LEVEL_INFO);
    assert_int_equal (log_level_parse ("warn", &level), 0);
    assert_int_equal (level, LOG_LEVEL_WARN);
    assert_int_equal (log_level_parse ("error", &level), 0);
    assert_int_equal (level, LOG_LEVEL_ERROR);
    assert_int_equal (log_level_parse ("warning", &level), -1);
    assert_int_equal (log_level_parse ("", &level), -1);
    assert_int_equal (log_level_parse (NULL, &level), -1);
}

static void
log_long_line_is_cut (void **state)
{
    char value [10000];
    memset (value, 'v', sizeof value - 1);
    value [sizeof value - 1] = '\0';

    capture_t capture;
    s_capture_start (&capture, STDERR_FILENO);
    log_info ("long line", "value=%s", value);
    const char *line = s_capture_stop (&capture);

    assert_int_equal (strlen (line), 8192);
    assert_memory_equal (line + 8192 - 4, "...\n", 4);
}

static void
log_fatal_exits_with_1 (void **state)
{
    pid_t child = fork ();
    assert_true (child >= 0);
    if (child == 0) {
        int null = open ("/dev/null", O_WRONLY);
        dup2 (null, STDERR_FILENO);
        log_fatal ("cannot start", "reason=%s", "test");
    }
    int status = 0;
    assert_int_equal (waitpid (child, &status, 0), child);
    assert_true (WIFEXITED (status));
    assert_int_equal (WEXITSTATUS (status), 1);
}

static void
settings_log_lists_every_setting (void **state)
{
    settings_t *settings = s_load ("--store", "my store.db", NULL);
    assert_non_null (settings);

    capture_t capture;
    s_capture_start (&capture, STDERR_FILENO);
    settings_log (settings);
    const char *line = s_capture_stop (&capture);
    settings_destroy (&settings);

    s_assert_contains (line, " level=info proc=test msg=\"effective "
                       "configuration\" config=null stale-after=30m "
                       "tick-min-gap=1s sweep-batch=1000 "
                       "store=\"my store.db\" id=null "
                       "commands=tcp://127.0.0.1:7710 dry-run=false\n");
}

static void
print_help_lists_settings (void **state)
{
    capture_t capture;
    s_capture_start (&capture, STDOUT_FILENO);
    settings_print_help (s_defs, "usage: lapse-test [options]");
    const char *text = s_capture_stop (&capture);

    assert_memory_equal (text, "usage: lapse-test [options]\n", 28);
    s_assert_contains (text, "  --stale-after DURATION  (default 30m, "
                       "between 1s and 30d)\n      Idle time after which a "
                       "client is evicted. (reloaded on SIGHUP)\n");
    s_assert_contains (text, "  --sweep-batch NUMBER  (default 1000, "
                       "between 1 and 100000)\n");
    s_assert_contains (text, "  --id TEXT  (no default)\n");
    s_assert_contains (text, "  --dry-run[=BOOL]  (default false)\n");
    s_assert_contains (text, "  --commands ENDPOINT  (default "
                       "tcp://127.0.0.1:7710)\n");
    s_assert_contains (text, "  --config PATH\n");
    s_assert_contains (text, "  --help\n");
    assert_null (strstr (text, "Maximum clients removed per transaction. "
                         "(reloaded"));
}

/*  Signals  */

static void
signals_take_reload_after_sighup (void **state)
{
    signals_init ();
    assert_false (signals_take_reload ());

    for (int round = 0; round < 2; round++) {
        assert_int_equal (kill (getpid (), SIGHUP), 0);
        bool reload_taken = false;
        time_t deadline = time (NULL) + 10;
        while (!reload_taken && time (NULL) < deadline) {
            reload_taken = signals_take_reload ();
            if (!reload_taken)
                nanosleep (&(struct timespec) { 0, 1000000 }, NULL);
        }
        assert_true (reload_taken);
        assert_false (signals_take_reload ());
    }
}

#define TEST(name) cmocka_unit_test_setup (name, s_setup)

int
main (void)
{
    const struct CMUnitTest tests [] = {
        TEST (duration_parses_every_unit),
        TEST (duration_parses_zero),
        TEST (duration_rejects_bad_unit),
        TEST (duration_rejects_missing_unit),
        TEST (duration_rejects_negative),
        TEST (duration_rejects_overflow),
        TEST (duration_rejects_spaces),
        TEST (duration_rejects_empty),
        TEST (duration_formats_largest_unit),
        TEST (duration_format_round_trips),
        TEST (defaults_apply_without_sources),
        TEST (duration_setting_checks_range),
        TEST (uint_setting_checks_range),
        TEST (uint_setting_rejects_non_digits),
        TEST (string_setting_checks_length),
        TEST (string_setting_checks_min_length),
        TEST (string_without_default_is_null),
        TEST (endpoint_setting_checks_prefix),
        TEST (endpoint_tcp_checks_port),
        TEST (endpoint_ipc_checks_path_length),
        TEST (endpoint_inproc_needs_name),
        TEST (bool_setting_accepts_every_word),
        TEST (bool_bare_flag_means_true),
        TEST (file_overrides_default),
        TEST (env_overrides_file),
        TEST (flag_overrides_env),
        TEST (env_names_use_underscores),
        TEST (config_env_names_file),
        TEST (config_flag_overrides_config_env),
        TEST (config_ignores_other_sections),
        TEST (config_accepts_every_program_section),
        TEST (config_unknown_section_fails),
        TEST (config_key_outside_section_fails),
        TEST (load_rejects_section_not_known),
        TEST (config_missing_file_fails),
        TEST (config_folder_fails),
        TEST (config_fifo_fails_at_once),
        TEST (config_device_fails),
        TEST (config_too_large_fails),
        TEST (config_unknown_key_fails),
        TEST (config_nested_key_fails),
        TEST (config_duplicate_key_fails),
        TEST (config_invalid_zpl_fails),
        TEST (unknown_flag_fails),
        TEST (single_dash_flag_fails),
        TEST (missing_flag_value_fails),
        TEST (equals_form_sets_value),
        TEST (repeated_flag_uses_last),
        TEST (positional_arguments_kept_in_order),
        TEST (help_flag_is_reported),
        TEST (help_ignores_invalid_environment),
        TEST (reload_changes_only_reloadable),
        TEST (reload_reports_no_change),
        TEST (reload_keeps_flags),
        TEST (reload_is_all_or_nothing),
        TEST (reload_rejects_invalid_value_not_reloadable),
        TEST (reload_rejects_unknown_section),
        TEST (reload_reads_environment),
        TEST (reload_fails_on_missing_file),
        TEST (reload_rejects_unknown_key),
        TEST (reload_warns_when_flag_overrides_file),
        TEST (reload_warns_when_environment_overrides_file),
        TEST (reload_warns_when_restart_needed),
        TEST (reload_quiet_when_file_unchanged),
        TEST (log_level_setting_reads_names),
        TEST (log_level_error_names_source),
        TEST (error_names_flag_source),
        TEST (error_names_environment_source),
        TEST (error_names_config_source),
        TEST (error_escapes_control_characters),
        TEST (error_fits_small_buffer),
        TEST (log_quote_leaves_plain_values),
        TEST (log_quote_escapes_specials),
        TEST (log_quote_handles_utf8),
        TEST (log_quote_cuts_long_values),
        TEST (log_quote_rotates_eight_buffers),
        TEST (log_line_has_logfmt_format),
        TEST (log_line_without_fields),
        TEST (log_level_filters_lines),
        TEST (log_level_parse_names),
        TEST (log_long_line_is_cut),
        TEST (log_fatal_exits_with_1),
        TEST (settings_log_lists_every_setting),
        TEST (print_help_lists_settings),
        /*  Last, because it blocks SIGHUP in this thread for good.  */
        TEST (signals_take_reload_after_sighup),
    };
    return cmocka_run_group_tests (tests, s_group_setup, s_group_teardown);
}
