/*  main.c: lapse-audit, which appends every removal event, once and in
    seq order, to a JSON Lines file.

    Start-up: load settings, open the file and find the last seq it
    holds, subscribe from there.  Then each pass takes every event that
    is ready without waiting, writes them and syncs once; an event counts
    as written only after that sync.  A restart resumes after the last
    seq in the file, so no event is written twice.  Events the registry
    no longer retains are recorded as a gap line in their place, also
    those before the oldest retained when a new file starts from seq 0.

    SIGHUP re-reads the configuration and reopens the file, for log
    rotation: after the file was moved aside, writing goes on in a new
    file at the same path from the seq already reached.

    A registry whose event seqs went back below the file's (its store
    was deleted or replaced) stops lapse-audit: see s_stop_backwards.
*/
#include <czmq.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "auditlog.h"
#include "lapse.h"
#include "log.h"
#include "settings.h"
#include "signals.h"

#define AUDIT_WAIT_MS 1000          /* wait for events when idle */
#define AUDIT_BATCH_MAX 1000        /* lines per sync at most */
#define AUDIT_RETRY_MS 1000         /* after a failed write */
#define AUDIT_REPEAT_LOG_MS 60000   /* between logs of one repeated error */

static const setting_def_t s_settings[] = {
    { "commands", SETTING_ENDPOINT, "tcp://127.0.0.1:7710", 0, 0, false,
      "registry command endpoint, used to replay missed events" },
    { "events", SETTING_ENDPOINT, "tcp://127.0.0.1:7711", 0, 0, false,
      "registry event endpoint to subscribe to" },
    { "file", SETTING_STRING, "lapse-audit.jsonl", 1, 4096, false,
      "audit file to append events to, one JSON object per line" },
    { "catchup-interval", SETTING_DURATION, "5s", 100, 3600000, true,
      "replay from the registry after this long without events, to find "
      "events the live stream lost" },
    { "start-after", SETTING_UINT, "0", 0, 0, false,
      "when the audit file is empty, take the events up to this seq as "
      "written elsewhere (a new file after a rotation while lapse-audit "
      "was down)" },
    { "log-level", SETTING_LOG_LEVEL, "info", 0, 0, false,
      "lowest log level written: debug, info, warn or error" },
    SETTING_END
};

typedef struct {
    settings_t *settings;
    auditlog_t *file;
    lapse_sub_t *sub;
    uint64_t rotated_events;        /* written to files before a reopen */
    uint64_t rotated_gaps;
    uint64_t skipped;               /* events at or below the last seq */
    uint64_t backwards;             /* registry seqs found gone back */
    char last_error[MSG_TEXT_MAX];  /* the replay error logged last */
    int64_t last_error_at;
    uint64_t error_repeats;         /* since last_error was logged */
} audit_t;

/*  Loads settings and applies the log level.  Returns 0, 1 after --help,
    or -1 with the message already on stderr.  */
static int
s_load_settings (int argc, char **argv, settings_t **settings)
{
    char error[512];

    *settings = settings_load ("lapse-audit", "audit", s_settings, argc,
                               argv, error, sizeof error);
    if (!*settings) {
        fprintf (stderr, "lapse-audit: %s\n", error);
        return -1;
    }
    if (settings_help_requested (*settings)) {
        settings_print_help (s_settings, "usage: lapse-audit [options]");
        return 1;
    }
    if (settings_positional_count (*settings) > 0) {
        fprintf (stderr, "lapse-audit: unexpected argument \"%s\": "
                 "lapse-audit takes options only (see --help)\n",
                 settings_positional (*settings, 0));
        return -1;
    }
    log_set_level (settings_log_level (*settings, "log-level"));
    return 0;
}

/*  Logs a failed replay, but one that repeats only once a minute with
    the number of repeats, since the subscription retries every second
    while the registry is away.  */
static void
s_log_replay_error (audit_t *audit)
{
    const char *error = lapse_sub_error (audit->sub);
    int64_t now = zclock_mono ();

    if (strcmp (error, audit->last_error) == 0
        && now - audit->last_error_at < AUDIT_REPEAT_LOG_MS) {
        audit->error_repeats++;
        return;
    }
    log_warn ("replay failed", "error=%s repeats=%" PRIu64,
              log_quote (error), audit->error_repeats);
    snprintf (audit->last_error, sizeof audit->last_error, "%s", error);
    audit->last_error_at = now;
    audit->error_repeats = 0;
}

static void
s_add_event (audit_t *audit, const msg_event_t *event)
{
    int rc = auditlog_add_event (audit->file, event);
    if (rc == 0) {
        audit->skipped++;
        log_debug ("event skipped", "seq=%" PRIu64 " last_seq=%" PRIu64,
                   event->seq, auditlog_last_seq (audit->file));
    }
    else
    if (rc == -1)
        log_error ("event not written", "seq=%" PRIu64
                   " error=\"cannot format or buffer the event\"",
                   event->seq);
}

static void
s_add_gap (audit_t *audit)
{
    uint64_t first = 0;
    uint64_t last = 0;

    lapse_sub_gap (audit->sub, &first, &last);
    log_error ("events lost", "first=%" PRIu64 " last=%" PRIu64
               " count=%" PRIu64
               " error=\"the registry no longer retains them\"",
               first, last, last - first + 1);
    if (auditlog_add_gap (audit->file, first, last) == -1)
        log_error ("gap not written", "first=%" PRIu64 " last=%" PRIu64
                   " error=\"out of memory\"", first, last);
}

/*  Syncs the buffered lines, retrying a failed write until it succeeds
    or SIGINT or SIGTERM arrives.  Returns -1 when the file cannot be
    trusted any more (a failed sync) or the signal came first.  */
static int
s_sync (audit_t *audit)
{
    char error[512];
    bool retry;

    while (auditlog_sync (audit->file, &retry, error, sizeof error) == -1) {
        log_error ("audit file write failed", "lines=%zu error=%s",
                   auditlog_buffered (audit->file), log_quote (error));
        if (!retry || zsys_interrupted)
            return -1;
        zclock_sleep (AUDIT_RETRY_MS);
    }
    return 0;
}

/*  Handles a registry whose event sequence went backwards: its last_seq
    is below the seq this file reached, so its store was deleted or
    replaced, and the seqs it hands out now name other events than the
    file's.  Writes what is buffered (those lines came from the old
    sequence), logs what to do, and returns -1, so that lapse-audit
    exits with status 1.

    Stopping is chosen over running on without writing: a process that
    writes nothing looks healthy to its supervisor and to anyone who
    checks that it runs, while a failed exit is seen at once and, when
    the supervisor restarts it, repeats this line on every start.  The
    file cannot be continued in either case; only the operator can
    decide where the new sequence's events go, and the registry keeps
    them for event-retention meanwhile.  */
static int
s_stop_backwards (audit_t *audit)
{
    uint64_t registry_seq = 0;

    /*  A failed sync logs itself, and the result is -1 either way.  */
    s_sync (audit);
    lapse_sub_backwards (audit->sub, &registry_seq, NULL);
    audit->backwards++;
    log_error ("registry event sequence went backwards",
               "registry_last_seq=%" PRIu64 " audit_last_seq=%" PRIu64
               " file=%s action=%s", registry_seq,
               auditlog_last_seq (audit->file),
               log_quote (settings_string (audit->settings, "file")),
               log_quote ("the audit file belongs to the registry's "
                          "previous store: move it aside and start "
                          "lapse-audit again with --start-after 0"));
    return -1;
}

/*  Opens a new file at the configured path after the open one was moved
    aside, and goes on in it from the seq already reached, so that no
    event is in both files.  Whenever the new file cannot be used, the
    moved one stays open and in use.  Call with nothing buffered.  */
static void
s_reopen (audit_t *audit)
{
    char error[512];
    const char *path = settings_string (audit->settings, "file");
    uint64_t reached = auditlog_last_seq (audit->file);

    if (!auditlog_moved (audit->file)) {
        log_warn ("audit file reopen skipped", "file=%s last_seq=%" PRIu64
                  " reason=%s", log_quote (path), reached,
                  log_quote ("the path still names the open file; move "
                             "the file aside before SIGHUP"));
        return;
    }
    auditlog_t *file = auditlog_open (path, error, sizeof error);
    if (!file) {
        log_error ("audit file open failed", "file=%s error=%s action=%s",
                   log_quote (path), log_quote (error),
                   log_quote ("kept writing the moved file"));
        return;
    }

    /*  A file that was already there goes on after its own last seq,
        as at a restart, unless that would write events again.  */
    auditlog_start_after (file, reached);
    if (auditlog_last_seq (file) < reached) {
        log_error ("audit file open failed", "file=%s error=%s action=%s",
                   log_quote (path),
                   log_quote ("the file's records end below the seq "
                              "already written to the moved file"),
                   log_quote ("kept writing the moved file"));
        auditlog_destroy (&file);
        return;
    }

    uint64_t events = 0;
    uint64_t gaps = 0;
    auditlog_written (audit->file, &events, &gaps);
    audit->rotated_events += events;
    audit->rotated_gaps += gaps;
    auditlog_destroy (&audit->file);
    audit->file = file;
    log_info ("audit file reopened", "file=%s last_seq=%" PRIu64
              " previous_written=%" PRIu64, log_quote (path),
              auditlog_last_seq (file), events);
}

/*  Applies SIGHUP: re-reads the configuration, then reopens the file.
    The messages are the registry's, so that one search finds the
    reloads of every process.  */
static void
s_reload (audit_t *audit)
{
    char error[512];
    int changed = settings_reload (audit->settings, error, sizeof error);

    if (changed == -1)
        log_error ("configuration reload failed", "error=%s action=%s",
                   log_quote (error), log_quote ("kept the old values"));
    else {
        int64_t interval_ms = settings_duration (audit->settings,
                                                 "catchup-interval");
        lapse_sub_set_replay_interval (audit->sub, (int) interval_ms);
        log_info ("configuration reloaded", "changed=%s "
                  "catchup_interval_ms=%" PRId64, changed ? "true" : "false",
                  interval_ms);
    }
    s_reopen (audit);
}

/*  Writes events until SIGINT or SIGTERM.  Returns 0, or -1 when the
    audit file failed.  */
static int
s_run (audit_t *audit)
{
    msg_event_t event;

    while (!zsys_interrupted) {
        /*  The buffered lines belong to the file being rotated out.  */
        if (signals_take_reload ()) {
            if (s_sync (audit) == -1)
                return -1;
            s_reload (audit);
        }

        size_t buffered = auditlog_buffered (audit->file);
        int rc = lapse_sub_next (audit->sub, &event,
                                 buffered > 0 ? 0 : AUDIT_WAIT_MS);
        if (rc == 1)
            s_add_event (audit, &event);
        else
        if (rc == 2)
            s_add_gap (audit);
        else
        if (rc == -1 && lapse_sub_backwards (audit->sub, NULL, NULL))
            return s_stop_backwards (audit);
        else
        if (rc == -1 && !zsys_interrupted)
            s_log_replay_error (audit);

        /*  Sync once nothing more is ready, so one sync covers a burst.  */
        bool ready = rc == 1 || rc == 2;
        if ((!ready || auditlog_buffered (audit->file) >= AUDIT_BATCH_MAX)
            && s_sync (audit) == -1)
            return -1;
    }
    return 0;
}

static void
s_log_stop (audit_t *audit, int rc)
{
    uint64_t events = 0;
    uint64_t gaps = 0;

    auditlog_written (audit->file, &events, &gaps);
    log_info ("audit stopped", "written=%" PRIu64 " gaps=%" PRIu64
              " skipped=%" PRIu64 " backwards=%" PRIu64 " unwritten=%zu"
              " last_seq=%" PRIu64 " status=%s",
              audit->rotated_events + events, audit->rotated_gaps + gaps,
              audit->skipped, audit->backwards,
              auditlog_buffered (audit->file),
              auditlog_last_seq (audit->file), rc == 0 ? "ok" : "failed");
}

/*  Opens the audit file and subscribes after its last seq, or after
    start-after when the file is empty.  */
static int
s_start (audit_t *audit, settings_t *settings)
{
    char error[512];
    const char *path = settings_string (settings, "file");
    uint64_t start_after = settings_uint (settings, "start-after");

    audit->file = auditlog_open (path, error, sizeof error);
    if (!audit->file) {
        log_error ("audit file open failed", "file=%s error=%s",
                   log_quote (path), log_quote (error));
        return -1;
    }
    if (auditlog_truncated_bytes (audit->file) > 0)
        log_warn ("torn last line truncated", "file=%s bytes=%zu",
                  log_quote (path), auditlog_truncated_bytes (audit->file));

    auditlog_start_after (audit->file, start_after);
    uint64_t last_seq = auditlog_last_seq (audit->file);
    audit->sub = lapse_sub_new (settings_string (settings, "commands"),
                                settings_string (settings, "events"), NULL,
                                last_seq);
    if (!audit->sub) {
        log_error ("subscribe failed", "commands=%s events=%s",
                   settings_string (settings, "commands"),
                   settings_string (settings, "events"));
        return -1;
    }
    lapse_sub_set_replay_interval (
        audit->sub, (int) settings_duration (settings, "catchup-interval"));

    /*  A new file must show the events the registry pruned before it
        started as a gap, or a reader could not tell they are missing.  */
    lapse_sub_set_gap_from_start (audit->sub, true);
    log_info ("audit started", "file=%s last_seq=%" PRIu64 " start_after=%"
              PRIu64 " pid=%ld", log_quote (path), last_seq, start_after,
              (long) getpid ());
    return 0;
}

int
main (int argc, char **argv)
{
    settings_t *settings = NULL;
    audit_t audit = { 0 };

    log_init ("audit");
    int rc = s_load_settings (argc, argv, &settings);
    if (rc != 0) {
        settings_destroy (&settings);
        return rc == 1 ? 0 : 2;
    }
    zsys_init ();
    signals_init ();
    settings_log (settings);

    audit.settings = settings;
    rc = s_start (&audit, settings);
    if (rc == 0) {
        rc = s_run (&audit);
        if (rc == 0)
            rc = s_sync (&audit);
        s_log_stop (&audit, rc);
    }

    lapse_sub_destroy (&audit.sub);
    auditlog_destroy (&audit.file);
    settings_destroy (&settings);
    return rc == 0 ? 0 : 1;
}
