/*  seeds.c: writes the seed corpus of every fuzz target, so that the
    seeds are built from the current encoder and never go stale.

    Usage: fuzz_seeds FOLDER.  Makes FOLDER/<target>/ for each target
    (commands, results, tick_event, message, auditlog, duration) and
    writes small valid inputs into it: every message type and every
    result variant through msg_encode, audit files as lapse-audit writes
    them (plus a torn one), and durations in every unit.  The message
    target gets the seeds of the three message families.

    With --check it then exits 1, naming what is missing, unless the
    message seeds cover every type, every command's result and every
    error code.  A test runs it, so that a message added to the protocol
    without a seed fails that test.
*/
#include "protocol.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char *s_root;

/*  What the message seeds cover, for --check.  */
static bool s_has_type[MSG_TYPE_COUNT];
static bool s_has_result[MSG_TYPE_COUNT];
static bool s_has_code[MSG_ERR_CODE_COUNT];

static void
s_die (const char *what, const char *detail)
{
    fprintf (stderr, "fuzz_seeds: %s: %s\n", what, detail);
    exit (1);
}

static void
s_make_folder (const char *path)
{
    if (mkdir (path, 0755) != 0 && errno != EEXIST)
        s_die (path, strerror (errno));
}

static void
s_write (const char *target, const char *name, const void *data,
         size_t size)
{
    char path[4096];
    snprintf (path, sizeof path, "%s/%s", s_root, target);
    s_make_folder (path);
    snprintf (path, sizeof path, "%s/%s/%s", s_root, target, name);

    FILE *file = fopen (path, "wb");
    if (!file)
        s_die (path, strerror (errno));
    if (fwrite (data, 1, size, file) != size || fclose (file) != 0)
        s_die (path, "write failed");
}

/*  Encodes msg into the folder of its family and into the message
    folder, which mixes every family.  */
static void
s_write_message (const char *family, const char *name, const msg_t *msg)
{
    void *data;
    size_t size;
    msg_failure_t failure;
    if (msg_encode (msg, &data, &size, &failure) != 0)
        s_die (name, failure.message);
    s_write (family, name, data, size);
    s_write ("message", name, data, size);
    free (data);

    s_has_type[msg->type] = true;
    if (msg->type == MSG_RESULT)
        s_has_result[msg->u.result.cmd] = true;
    if (msg->type == MSG_ERROR)
        s_has_code[msg->u.error.code] = true;
}

/*  Returns 0 when the seeds cover every message type, the result of
    every command and every error code, or 1 after naming what is
    missing.  */
static int
s_check_coverage (void)
{
    int rc = 0;
    for (int type = 0; type < MSG_TYPE_COUNT; type++) {
        if (!s_has_type[type]) {
            fprintf (stderr, "fuzz_seeds: no seed of type %s\n",
                     msg_type_name (type));
            rc = 1;
        }
        if (msg_type_is_command (type) && !s_has_result[type]) {
            fprintf (stderr, "fuzz_seeds: no seed of a %s result\n",
                     msg_type_name (type));
            rc = 1;
        }
    }
    for (int code = MSG_ERR_NONE + 1; code < MSG_ERR_CODE_COUNT; code++) {
        if (!s_has_code[code]) {
            fprintf (stderr, "fuzz_seeds: no seed of error %s\n",
                     msg_error_code_name (code));
            rc = 1;
        }
    }
    if (rc)
        fprintf (stderr, "fuzz_seeds: add the missing seeds to"
                 " tests/fuzz/seeds.c\n");
    return rc;
}

static void
s_write_commands (void)
{
    msg_t msg = { .type = MSG_REGISTER, .req = 1 };
    msg.u.register_.id = msg_str ("client-1");
    msg.u.register_.node = msg_str ("node-a");
    s_write_message ("commands", "register", &msg);
    msg.u.register_.meta = msg_str ("\x01plan=pro");
    s_write_message ("commands", "register-meta", &msg);
    msg.u.register_.stale_after_ms = 120000;
    s_write_message ("commands", "register-stale-after", &msg);

    msg_str_t ids[] = { msg_str ("client-1"), msg_str ("client-2"),
                        msg_str ("c~3") };
    msg = (msg_t) { .type = MSG_TOUCH, .req = 2 };
    msg.u.touch = (msg_touch_t) { ids, 3 };
    s_write_message ("commands", "touch", &msg);

    msg_type_t refs[] = { MSG_DEREGISTER, MSG_EVICT, MSG_GET };
    for (size_t index = 0; index < 3; index++) {
        msg = (msg_t) { .type = refs[index] };
        msg.u.client_ref.id = msg_str ("client-1");
        s_write_message ("commands", msg_type_name (refs[index]), &msg);
    }

    msg = (msg_t) { .type = MSG_LIST, .req = 3 };
    msg.u.list = (msg_list_t) { 100, msg_str ("client-1"),
                                msg_str ("node-a") };
    s_write_message ("commands", "list", &msg);
    msg.u.list = (msg_list_t) { .limit = 1000 };
    s_write_message ("commands", "list-first-page", &msg);

    msg = (msg_t) { .type = MSG_STATS, .req = UINT64_MAX };
    s_write_message ("commands", "stats", &msg);

    msg = (msg_t) { .type = MSG_SWEEP };
    msg.u.sweep.dry_run = true;
    s_write_message ("commands", "sweep", &msg);

    msg = (msg_t) { .type = MSG_EVENTS, .req = 4 };
    msg.u.events = (msg_events_t) { 41, 10, msg_str ("node-a") };
    s_write_message ("commands", "events", &msg);

    msg = (msg_t) { .type = MSG_TOMBSTONES, .req = 7 };
    msg.u.tombstones = (msg_list_t) { 100, msg_str ("client-1"),
                                      msg_str ("node-a") };
    s_write_message ("commands", "tombstones", &msg);

    msg = (msg_t) { .type = MSG_BRAKE, .req = 8 };
    msg.u.brake = (msg_brake_t) { MSG_BRAKE_RELEASE, 600000 };
    s_write_message ("commands", "brake", &msg);
}

static msg_event_t
s_event (uint64_t seq, msg_reason_t reason)
{
    return (msg_event_t) {
        .seq = seq,
        .prev = seq - 1,
        .id = msg_str ("client-1"),
        .node = msg_str ("node-a"),
        .reason = reason,
        .last_activity_ms = 1700000000000,
        .removed_ms = 1700001800000,
        .sweep = reason == MSG_REASON_STALE ? 7 : 0,
    };
}

static void
s_write_published (void)
{
    msg_t msg = { .type = MSG_TICK };
    msg.u.tick = (msg_tick_t) { msg_str ("scheduler-a"), 12, 1700000000000,
                                600000 };
    s_write_message ("tick_event", "tick", &msg);

    for (int reason = 0; reason < MSG_REASON_COUNT; reason++) {
        char name[64];
        msg = (msg_t) { .type = MSG_EVENT };
        msg.u.event = s_event (3, reason);
        snprintf (name, sizeof name, "event-%s", msg_reason_name (reason));
        s_write_message ("tick_event", name, &msg);
    }
}

static void
s_write_result (const char *name, msg_type_t cmd, msg_result_t result)
{
    msg_t msg = { .type = MSG_RESULT, .req = 5 };
    msg.u.result = result;
    msg.u.result.cmd = cmd;
    s_write_message ("results", name, &msg);
}

static void
s_write_lists (void)
{
    msg_client_t clients[2] = {
        { msg_str ("client-1"), msg_str ("node-a"), 1700000000000,
          1700000060000, msg_str ("plan=pro"), 0 },
        { msg_str ("client-2"), msg_str ("node-b"), 1700000000000,
          1700000000000, { 0 }, 90000 },
    };
    s_write_result ("result-get", MSG_GET,
                    (msg_result_t) { .client = clients[0] });
    s_write_result ("result-list", MSG_LIST,
                    (msg_result_t) { .clients = clients, .clients_count = 2,
                                     .next = msg_str ("client-2") });

    msg_stat_t stats[3] = { { msg_str ("uptime_ms"), 5000 },
                            { msg_str ("clients"), 2 },
                            { msg_str ("sweeps"), 0 } };
    s_write_result ("result-stats", MSG_STATS,
                    (msg_result_t) { .stats = stats, .stats_count = 3 });

    msg_event_t events[2] = { s_event (8, MSG_REASON_STALE),
                              s_event (9, MSG_REASON_OPERATOR) };
    s_write_result ("result-events", MSG_EVENTS,
                    (msg_result_t) { .events = events, .events_count = 2,
                                     .first_seq = 1, .last_seq = 9 });

    msg_tombstone_t tombstones[1] = {
        { msg_str ("client-3"), msg_str ("node-a"), MSG_REASON_STALE,
          1700000000000, 1700001800000, 8 },
    };
    s_write_result ("result-tombstones", MSG_TOMBSTONES,
                    (msg_result_t) { .tombstones = tombstones,
                                     .tombstones_count = 1,
                                     .next = msg_str ("client-3") });
}

static void
s_write_results (void)
{
    s_write_result ("result-register", MSG_REGISTER,
                    (msg_result_t) { .created = true });

    msg_str_t unknown[1] = { msg_str ("client-9") };
    s_write_result ("result-touch", MSG_TOUCH,
                    (msg_result_t) { .touched = 2, .unknown = unknown,
                                     .unknown_count = 1 });
    msg_str_t evicted[1] = { msg_str ("client-8") };
    s_write_result ("result-touch-evicted", MSG_TOUCH,
                    (msg_result_t) { .touched = 1, .unknown = unknown,
                                     .unknown_count = 1, .evicted = evicted,
                                     .evicted_count = 1 });
    s_write_result ("result-deregister", MSG_DEREGISTER,
                    (msg_result_t) { .seq = 10 });
    s_write_result ("result-evict", MSG_EVICT,
                    (msg_result_t) { .seq = 11 });

    msg_str_t stale[2] = { msg_str ("client-3"), msg_str ("client-4") };
    s_write_result ("result-sweep-dry-run", MSG_SWEEP,
                    (msg_result_t) { .dry_run = true, .stale = 2,
                                     .ids = stale, .ids_count = 2 });
    s_write_result ("result-sweep", MSG_SWEEP,
                    (msg_result_t) { .sweep = 4, .stale = 2 });
    s_write_result ("result-brake", MSG_BRAKE,
                    (msg_result_t) { .brake = {
                        .enabled = true, .engaged = true, .share = 20,
                        .min_clients = 100, .clients = 200, .stale = 100,
                        .limit = 40, .held_back = 60 } });
    s_write_lists ();

    for (int code = MSG_ERR_NONE + 1; code < MSG_ERR_CODE_COUNT; code++) {
        char name[64];
        msg_t msg = { .type = MSG_ERROR, .req = 6 };
        msg.u.error = (msg_error_t) {
            code, msg_str ("field \"id\": expected a string of 1 to 128"
                           " bytes, got 0 bytes") };
        snprintf (name, sizeof name, "error-%s", msg_error_code_name (code));
        s_write_message ("results", name, &msg);
    }
}

static void
s_write_text (const char *target, const char *name, const char *text)
{
    s_write (target, name, text, strlen (text));
}

static void
s_write_audit_files (void)
{
    static const char event[] =
        "{\"seq\":3,\"prev\":0,\"id\":\"client-1\",\"node\":\"node-a\","
        "\"reason\":\"stale\",\"last_activity_ms\":1700000000000,"
        "\"removed_ms\":1700001800000,\"sweep\":7}\n";
    static const char gap[] = "{\"gap\":{\"first\":4,\"last\":9}}\n";
    char text[1024];

    s_write_text ("auditlog", "empty", "");
    s_write_text ("auditlog", "event", event);
    snprintf (text, sizeof text, "%s%s", event, gap);
    s_write_text ("auditlog", "event-then-gap", text);
    snprintf (text, sizeof text, "%s%.40s", event, event);
    s_write_text ("auditlog", "torn-last-line", text);
    s_write_text ("auditlog", "not-a-record", "{\"note\":1}\n");
}

static void
s_write_durations (void)
{
    static const char *const durations[] = {
        "500ms", "10s", "30m", "1h", "2d", "0s", "9223372036854775807ms"
    };
    for (size_t index = 0; index < sizeof durations / sizeof *durations;
         index++) {
        char name[32];
        snprintf (name, sizeof name, "duration-%zu", index);
        s_write_text ("duration", name, durations[index]);
    }
}

int
main (int argc, char *argv[])
{
    bool check = argc == 3 && strcmp (argv[1], "--check") == 0;
    if (argc != 2 && !check) {
        fprintf (stderr, "usage: fuzz_seeds [--check] FOLDER\n");
        return 2;
    }
    s_root = argv[argc - 1];
    s_make_folder (s_root);

    s_write_commands ();
    s_write_published ();
    s_write_results ();
    s_write_audit_files ();
    s_write_durations ();
    return check ? s_check_coverage () : 0;
}
