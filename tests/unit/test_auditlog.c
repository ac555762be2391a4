/*  test_auditlog.c: the audit file's recovery at open, appends and
    syncs.  Each test works on a file in its own temporary folder.
*/
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "auditlog.h"

static char s_folder[256];
static char s_path[512];
static char s_error[512];

static int
s_setup (void **state)
{
    snprintf (s_folder, sizeof s_folder, "/tmp/lapse-test-auditlog-XXXXXX");
    if (!mkdtemp (s_folder))
        return -1;
    snprintf (s_path, sizeof s_path, "%s/audit.jsonl", s_folder);
    s_error[0] = '\0';
    return 0;
}

static int
s_teardown (void **state)
{
    unlink (s_path);
    return rmdir (s_folder);
}

static void
s_write_file (const char *text)
{
    FILE *file = fopen (s_path, "w");
    assert_non_null (file);
    assert_int_equal (fwrite (text, 1, strlen (text), file), strlen (text));
    assert_int_equal (fclose (file), 0);
}

/*  Returns the file's content in a static buffer.  */
static const char *
s_read_file (void)
{
    static char text[8192];
    FILE *file = fopen (s_path, "r");
    assert_non_null (file);
    size_t length = fread (text, 1, sizeof text - 1, file);
    text[length] = '\0';
    fclose (file);
    return text;
}

static void
s_assert_contains (const char *text, const char *part)
{
    if (strstr (text, part) == NULL)
        fail_msg ("\"%s\" does not contain \"%s\"", text, part);
}

static msg_event_t
s_event (uint64_t seq)
{
    msg_event_t event = {
        .seq = seq,
        .prev = 0,
        .id = msg_str ("client-1"),
        .node = msg_str ("node-a"),
        .reason = MSG_REASON_STALE,
        .last_activity_ms = 1000,
        .removed_ms = 2000,
        .sweep = 3,
    };
    return event;
}

static void
open_creates_empty_file (void **state)
{
    auditlog_t *log = auditlog_open (s_path, s_error, sizeof s_error);
    assert_non_null (log);

    assert_int_equal (auditlog_last_seq (log), 0);
    assert_int_equal (auditlog_truncated_bytes (log), 0);
    assert_int_equal (access (s_path, F_OK), 0);
    auditlog_destroy (&log);
    assert_null (log);
}

static void
open_finds_last_event_seq (void **state)
{
    s_write_file ("{\"seq\":7,\"prev\":0}\n{\"seq\":8,\"prev\":7}\n");
    auditlog_t *log = auditlog_open (s_path, s_error, sizeof s_error);
    assert_non_null (log);

    assert_int_equal (auditlog_last_seq (log), 8);
    assert_int_equal (auditlog_truncated_bytes (log), 0);
    auditlog_destroy (&log);
}

static void
open_finds_last_gap_end (void **state)
{
    s_write_file ("{\"seq\":3,\"prev\":0}\n{\"gap\":{\"first\":4,\"last\":9}}\n");
    auditlog_t *log = auditlog_open (s_path, s_error, sizeof s_error);
    assert_non_null (log);

    assert_int_equal (auditlog_last_seq (log), 9);
    auditlog_destroy (&log);
}

static void
open_truncates_torn_line (void **state)
{
    const char *complete = "{\"seq\":1,\"prev\":0}\n{\"seq\":2,\"prev\":0}\n";
    const char *torn = "{\"seq\":3,\"pr";
    char text[256];
    snprintf (text, sizeof text, "%s%s", complete, torn);
    s_write_file (text);

    auditlog_t *log = auditlog_open (s_path, s_error, sizeof s_error);
    assert_non_null (log);
    assert_int_equal (auditlog_truncated_bytes (log), strlen (torn));
    assert_int_equal (auditlog_last_seq (log), 2);
    assert_string_equal (s_read_file (), complete);
    auditlog_destroy (&log);
}

static void
open_truncates_only_line_when_torn (void **state)
{
    s_write_file ("{\"seq\":1,\"pr");
    auditlog_t *log = auditlog_open (s_path, s_error, sizeof s_error);
    assert_non_null (log);

    assert_int_equal (auditlog_truncated_bytes (log), 12);
    assert_int_equal (auditlog_last_seq (log), 0);
    assert_string_equal (s_read_file (), "");
    auditlog_destroy (&log);
}

static void
open_rejects_foreign_last_line (void **state)
{
    s_write_file ("{\"seq\":1}\nhello\n");
    auditlog_t *log = auditlog_open (s_path, s_error, sizeof s_error);

    assert_null (log);
    s_assert_contains (s_error, s_path);
    s_assert_contains (s_error, "hello");
    s_assert_contains (s_error, "not an audit record");
}

static void
open_rejects_second_writer (void **state)
{
    auditlog_t *first = auditlog_open (s_path, s_error, sizeof s_error);
    assert_non_null (first);

    auditlog_t *second = auditlog_open (s_path, s_error, sizeof s_error);
    assert_null (second);
    s_assert_contains (s_error, "another lapse-audit");
    auditlog_destroy (&first);
}

static void
open_names_pid_of_holder (void **state)
{
    int ready[2];
    int release[2];
    assert_int_equal (pipe (ready), 0);
    assert_int_equal (pipe (release), 0);

    /*  The lock must be held by another process for F_GETLK to name it.  */
    pid_t child = fork ();
    assert_true (child >= 0);
    if (child == 0) {
        char byte = 0;
        close (release[1]);
        auditlog_t *log = auditlog_open (s_path, s_error, sizeof s_error);
        if (write (ready[1], log ? "y" : "n", 1) != 1)
            _exit (1);
        if (read (release[0], &byte, 1) < 0)
            _exit (1);
        _exit (log ? 0 : 1);
    }
    char opened = 0;
    assert_int_equal (read (ready[0], &opened, 1), 1);
    assert_int_equal (opened, 'y');

    auditlog_t *second = auditlog_open (s_path, s_error, sizeof s_error);
    char expected[64];
    snprintf (expected, sizeof expected, "process %ld (another lapse-audit)",
              (long) child);

    close (release[1]);
    int status = 0;
    assert_int_equal (waitpid (child, &status, 0), child);
    close (ready[0]);
    close (ready[1]);
    close (release[0]);
    assert_null (second);
    s_assert_contains (s_error, expected);
    assert_true (WIFEXITED (status));
    assert_int_equal (WEXITSTATUS (status), 0);
}

static void
start_after_applies_to_empty_file (void **state)
{
    auditlog_t *log = auditlog_open (s_path, s_error, sizeof s_error);
    assert_non_null (log);
    msg_event_t written_elsewhere = s_event (5);
    msg_event_t next = s_event (6);
    bool retry = false;

    assert_int_equal (auditlog_start_after (log, 5), 1);
    assert_int_equal (auditlog_last_seq (log), 5);
    assert_int_equal (auditlog_add_event (log, &written_elsewhere), 0);
    assert_int_equal (auditlog_add_event (log, &next), 1);
    assert_int_equal (auditlog_start_after (log, 9), 0);
    assert_int_equal (auditlog_sync (log, &retry, s_error, sizeof s_error),
                      0);
    assert_int_equal (auditlog_last_seq (log), 6);
    assert_memory_equal (s_read_file (), "{\"seq\":6,", 9);
    assert_null (strstr (s_read_file (), "\"seq\":5"));
    auditlog_destroy (&log);
}

static void
start_after_ignored_with_records (void **state)
{
    s_write_file ("{\"seq\":3,\"prev\":0}\n");
    auditlog_t *log = auditlog_open (s_path, s_error, sizeof s_error);
    assert_non_null (log);

    assert_int_equal (auditlog_start_after (log, 10), 0);
    assert_int_equal (auditlog_last_seq (log), 3);
    auditlog_destroy (&log);
}

static void
moved_after_rename (void **state)
{
    char moved_path[600];
    snprintf (moved_path, sizeof moved_path, "%s.1", s_path);
    auditlog_t *log = auditlog_open (s_path, s_error, sizeof s_error);
    assert_non_null (log);
    assert_false (auditlog_moved (log));

    assert_int_equal (rename (s_path, moved_path), 0);
    bool moved_away = auditlog_moved (log);
    s_write_file ("");
    bool replaced = auditlog_moved (log);
    auditlog_destroy (&log);
    unlink (moved_path);

    assert_true (moved_away);
    assert_true (replaced);
}

static void
sync_writes_buffered_lines (void **state)
{
    auditlog_t *log = auditlog_open (s_path, s_error, sizeof s_error);
    assert_non_null (log);
    msg_event_t event = s_event (5);
    bool retry = false;

    assert_int_equal (auditlog_add_event (log, &event), 1);
    assert_int_equal (auditlog_add_gap (log, 6, 7), 1);
    assert_int_equal (auditlog_buffered (log), 2);
    assert_string_equal (s_read_file (), "");
    assert_int_equal (auditlog_last_seq (log), 0);

    assert_int_equal (auditlog_sync (log, &retry, s_error, sizeof s_error),
                      0);
    assert_int_equal (auditlog_buffered (log), 0);
    assert_int_equal (auditlog_last_seq (log), 7);
    assert_string_equal (s_read_file (),
                         "{\"seq\":5,\"prev\":0,\"id\":\"client-1\","
                         "\"node\":\"node-a\",\"reason\":\"stale\","
                         "\"last_activity_ms\":1000,\"removed_ms\":2000,"
                         "\"sweep\":3}\n"
                         "{\"gap\":{\"first\":6,\"last\":7}}\n");
    uint64_t events = 0;
    uint64_t gaps = 0;
    auditlog_written (log, &events, &gaps);
    assert_int_equal (events, 1);
    assert_int_equal (gaps, 1);
    auditlog_destroy (&log);
}

static void
add_skips_seqs_already_written (void **state)
{
    s_write_file ("{\"seq\":10,\"prev\":0}\n");
    auditlog_t *log = auditlog_open (s_path, s_error, sizeof s_error);
    assert_non_null (log);
    msg_event_t old_event = s_event (10);
    msg_event_t new_event = s_event (11);

    assert_int_equal (auditlog_add_event (log, &old_event), 0);
    assert_int_equal (auditlog_add_event (log, &new_event), 1);
    assert_int_equal (auditlog_add_event (log, &new_event), 0);
    assert_int_equal (auditlog_add_gap (log, 5, 11), 0);
    assert_int_equal (auditlog_add_gap (log, 5, 13), 1);
    assert_int_equal (auditlog_buffered (log), 2);

    bool retry = false;
    assert_int_equal (auditlog_sync (log, &retry, s_error, sizeof s_error),
                      0);
    s_assert_contains (s_read_file (), "{\"gap\":{\"first\":12,\"last\":13}}\n");
    auditlog_destroy (&log);
}

static void
reopen_resumes_after_last_sync (void **state)
{
    auditlog_t *log = auditlog_open (s_path, s_error, sizeof s_error);
    assert_non_null (log);
    bool retry = false;
    for (uint64_t seq = 1; seq <= 3; seq++) {
        msg_event_t event = s_event (seq);
        assert_int_equal (auditlog_add_event (log, &event), 1);
    }
    assert_int_equal (auditlog_sync (log, &retry, s_error, sizeof s_error),
                      0);
    msg_event_t unsynced = s_event (4);
    assert_int_equal (auditlog_add_event (log, &unsynced), 1);
    auditlog_destroy (&log);

    log = auditlog_open (s_path, s_error, sizeof s_error);
    assert_non_null (log);
    assert_int_equal (auditlog_last_seq (log), 3);
    auditlog_destroy (&log);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown (open_creates_empty_file, s_setup,
                                         s_teardown),
        cmocka_unit_test_setup_teardown (open_finds_last_event_seq, s_setup,
                                         s_teardown),
        cmocka_unit_test_setup_teardown (open_finds_last_gap_end, s_setup,
                                         s_teardown),
        cmocka_unit_test_setup_teardown (open_truncates_torn_line, s_setup,
                                         s_teardown),
        cmocka_unit_test_setup_teardown (open_truncates_only_line_when_torn,
                                         s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (open_rejects_foreign_last_line,
                                         s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (open_rejects_second_writer, s_setup,
                                         s_teardown),
        cmocka_unit_test_setup_teardown (open_names_pid_of_holder, s_setup,
                                         s_teardown),
        cmocka_unit_test_setup_teardown (start_after_applies_to_empty_file,
                                         s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (start_after_ignored_with_records,
                                         s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (moved_after_rename, s_setup,
                                         s_teardown),
        cmocka_unit_test_setup_teardown (sync_writes_buffered_lines, s_setup,
                                         s_teardown),
        cmocka_unit_test_setup_teardown (add_skips_seqs_already_written,
                                         s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (reopen_resumes_after_last_sync,
                                         s_setup, s_teardown),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
