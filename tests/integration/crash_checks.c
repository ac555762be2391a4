/*  crash_checks.c: fault timing, store and audit invariants, and the
    records of lapse-recording-node, for the crash-loop tests.  */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "crash_checks.h"

#define STORE_BUSY_TIMEOUT_MS 5000
#define JSON_LINE_MAX 2048

static uint64_t s_random_state;

int
crash_iterations (int max)
{
    const char *text = getenv ("LAPSE_CRASH_ITERATIONS");
    if (!text)
        return CRASH_ITERATIONS_DEFAULT;

    char *end = NULL;
    long iterations = strtol (text, &end, 10);
    if (*text == '\0' || *end != '\0' || iterations < 1 || iterations > max)
        fail_msg ("invalid LAPSE_CRASH_ITERATIONS \"%s\": expected a "
                  "number from 1 to %d", text, max);
    return (int) iterations;
}

void
crash_seed (const char *test_name)
{
    const char *text = getenv ("LAPSE_CRASH_SEED");
    uint64_t seed;
    if (text)
        seed = strtoull (text, NULL, 10);
    else
        seed = (uint64_t) time (NULL) * 1000003u + (uint64_t) getpid ();
    printf ("%s: seed=%llu (repeat with LAPSE_CRASH_SEED=%llu)\n", test_name,
            (unsigned long long) seed, (unsigned long long) seed);
    fflush (stdout);

    //  xorshift64* must not start from 0
    s_random_state = seed ? seed : 1;
}

int
crash_random (int low, int high)
{
    s_random_state ^= s_random_state >> 12;
    s_random_state ^= s_random_state << 25;
    s_random_state ^= s_random_state >> 27;
    uint64_t value = s_random_state * 0x2545F4914F6CDD1DULL;
    return low + (int) (value % (uint64_t) (high - low + 1));
}

static sqlite3 *
s_open_read_only (const char *path)
{
    sqlite3 *db = NULL;
    int rc = sqlite3_open_v2 (path, &db, SQLITE_OPEN_READONLY, NULL);
    if (rc != SQLITE_OK) {
        print_error ("opening %s read-only failed: %s\n", path,
                     db ? sqlite3_errmsg (db) : sqlite3_errstr (rc));
        sqlite3_close (db);
        fail ();
    }
    sqlite3_busy_timeout (db, STORE_BUSY_TIMEOUT_MS);
    return db;
}

/*  Runs a query that returns one integer.  */
static int64_t
s_query_int (sqlite3 *db, const char *sql)
{
    sqlite3_stmt *stmt = NULL;
    int rc = sqlite3_prepare_v2 (db, sql, -1, &stmt, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_step (stmt);
    if (rc != SQLITE_ROW) {
        print_error ("query failed: %s: %s\n", sql, sqlite3_errmsg (db));
        sqlite3_finalize (stmt);
        fail ();
    }
    int64_t value = sqlite3_column_int64 (stmt, 0);
    sqlite3_finalize (stmt);
    return value;
}

static void
s_check_integrity (sqlite3 *db, const char *path)
{
    sqlite3_stmt *stmt = NULL;
    assert_int_equal (sqlite3_prepare_v2 (db, "PRAGMA integrity_check", -1,
                                          &stmt, NULL),
                      SQLITE_OK);
    assert_int_equal (sqlite3_step (stmt), SQLITE_ROW);
    const char *result = (const char *) sqlite3_column_text (stmt, 0);
    char copy[512];
    snprintf (copy, sizeof (copy), "%s", result ? result : "(null)");
    bool more = sqlite3_step (stmt) == SQLITE_ROW;
    sqlite3_finalize (stmt);
    if (strcmp (copy, "ok") != 0 || more)
        print_error ("integrity_check of %s: %s%s\n", path, copy,
                     more ? " (and more)" : "");
    assert_string_equal (copy, "ok");
    assert_false (more);
}

void
crash_check_store (const char *path, store_summary_t *summary)
{
    sqlite3 *db = s_open_read_only (path);
    s_check_integrity (db, path);

    //  One read transaction, so that a running registry cannot commit
    //  between the queries
    assert_int_equal (sqlite3_exec (db, "BEGIN", NULL, NULL, NULL),
                      SQLITE_OK);
    int64_t events = s_query_int (db, "SELECT count(*) FROM events");
    int64_t first = s_query_int (db, "SELECT ifnull(min(seq), 0) "
                                     "FROM events");
    int64_t last = s_query_int (db, "SELECT ifnull(max(seq), 0) "
                                    "FROM events");
    int64_t counter = s_query_int (db, "SELECT value FROM meta "
                                       "WHERE key = 'last_seq'");
    int64_t twice = s_query_int (
        db, "SELECT count(*) FROM (SELECT id FROM events GROUP BY id "
            "HAVING count(*) > 1)");
    int64_t both = s_query_int (
        db, "SELECT count(*) FROM clients WHERE id IN "
            "(SELECT id FROM events)");
    int64_t bad_prev = s_query_int (
        db, "SELECT count(*) FROM events e WHERE prev != ifnull("
            "(SELECT max(seq) FROM events p WHERE p.node = e.node "
            "AND p.seq < e.seq), 0)");
    int64_t clients = s_query_int (db, "SELECT count(*) FROM clients");
    sqlite3_exec (db, "COMMIT", NULL, NULL, NULL);
    sqlite3_close (db);

    if (events > 0)
        assert_int_equal (first, 1);
    assert_int_equal (last, events);
    assert_int_equal (counter, last);
    assert_int_equal (twice, 0);
    assert_int_equal (both, 0);
    assert_int_equal (bad_prev, 0);
    if (summary) {
        summary->events = (uint64_t) events;
        summary->last_seq = (uint64_t) last;
        summary->clients = (uint64_t) clients;
    }
}

int
crash_logs_count (harness_t *harness, const char *prefix,
                  const char *needle)
{
    int count = 0;
    for (size_t index = 0; index < harness->proc_count; index++) {
        proc_t *proc = &harness->procs[index];
        if (strncmp (proc->name, prefix, strlen (prefix)) == 0
            && proc_log_contains (proc, needle))
            count++;
    }
    return count;
}

int
crash_count_lines (const char *path)
{
    char *text = harness_read_file (path, NULL);
    if (!text)
        return 0;
    int lines = 0;
    for (char *at = text; *at; at++)
        lines += *at == '\n';
    free (text);
    return lines;
}

int
crash_check_audit_prefix (const char *audit_file)
{
    char *text = harness_read_file (audit_file, NULL);
    if (!text)
        return 0;

    int lines = 0;
    char *line = text;
    char *end;
    while ((end = strchr (line, '\n'))) {
        *end = '\0';
        unsigned long long seq = 0;
        int matched = sscanf (line, "{\"seq\":%llu,", &seq);
        if (matched != 1 || seq != (unsigned long long) lines + 1)
            print_error ("audit line %d: expected seq %d, got: %.200s\n",
                         lines + 1, lines + 1, line);
        assert_int_equal (matched, 1);
        assert_int_equal (seq, (unsigned long long) lines + 1);
        lines++;
        line = end + 1;
    }
    free (text);
    return lines;
}

static void
s_event_json (const harness_event_t *row, char *json, size_t size)
{
    msg_event_t event = {
        .seq = row->seq, .prev = row->prev, .id = msg_str (row->id),
        .node = msg_str (row->node), .reason = row->reason,
        .last_activity_ms = row->last_activity_ms,
        .removed_ms = row->removed_ms, .sweep = row->sweep
    };
    assert_true (lapse_event_to_json (&event, json, size) > 0);
}

void
crash_check_audit_file (lapse_t *client, const char *audit_file)
{
    harness_event_t *events = NULL;
    int count = harness_events (client, 0, &events);
    assert_true (count >= 0);
    assert_int_equal (harness_stat (client, "last_seq"), (uint64_t) count);

    char *text = harness_read_file (audit_file, NULL);
    assert_non_null (text);
    char *line = text;
    for (int index = 0; index < count; index++) {
        char *end = strchr (line, '\n');
        if (!end)
            print_error ("audit file ends after %d of %d events\n", index,
                         count);
        assert_non_null (end);
        *end = '\0';

        char json[JSON_LINE_MAX];
        s_event_json (&events[index], json, sizeof (json));
        if (strcmp (line, json) != 0)
            print_error ("audit line %d: %s\nregistry event: %s\n",
                         index + 1, line, json);
        assert_string_equal (line, json);
        line = end + 1;
    }
    if (*line)
        print_error ("audit file continues after the last event: %.200s\n",
                     line);
    assert_string_equal (line, "");
    free (text);
    harness_events_free (&events);
}

/*  Parsing state: the records, their capacity, and an index of id to
    position + 1 in records->clients.  */
typedef struct {
    node_records_t *records;
    size_t capacity;
    zhashx_t *positions;
} parser_t;

/*  Finds or adds the client id.  */
static node_client_t *
s_client (parser_t *parser, const char *id)
{
    node_records_t *records = parser->records;
    uintptr_t position = (uintptr_t) zhashx_lookup (parser->positions, id);
    if (position > 0)
        return &records->clients[position - 1];

    if (records->count == parser->capacity) {
        parser->capacity = parser->capacity ? parser->capacity * 2 : 256;
        node_client_t *bigger = realloc (records->clients,
                                         parser->capacity
                                             * sizeof (node_client_t));
        assert_non_null (bigger);
        records->clients = bigger;
    }
    node_client_t *client = &records->clients[records->count++];
    memset (client, 0, sizeof (node_client_t));
    snprintf (client->id, sizeof (client->id), "%s", id);
    zhashx_insert (parser->positions, id, (void *) (uintptr_t) records->count);
    return client;
}

static void
s_parse_record (parser_t *parser, char *line)
{
    char kind[16], id[MSG_ID_MAX + 1];
    long long ms = 0;
    int fields = sscanf (line, "%15s %128s %lld", kind, id, &ms);
    if (fields >= 1 && strcmp (kind, "error") == 0)
        parser->records->errors++;
    else if (fields >= 1 && strcmp (kind, "summary") == 0)
        parser->records->finished = true;
    else if (fields == 3 && strcmp (kind, "registered") == 0)
        s_client (parser, id)->registered_ms = ms;
    else if (fields == 3 && strcmp (kind, "deregistered") == 0)
        s_client (parser, id)->deregistered = true;
    else if (fields == 3 && strcmp (kind, "acked") == 0)
        s_client (parser, id)->acked_ms = ms;
}

int
node_records_load (const char *path, node_records_t *records)
{
    memset (records, 0, sizeof (node_records_t));
    char *text = harness_read_file (path, NULL);
    if (!text)
        return -1;

    parser_t parser = { .records = records, .positions = zhashx_new () };
    assert_non_null (parser.positions);
    for (char *line = strtok (text, "\n"); line; line = strtok (NULL, "\n"))
        s_parse_record (&parser, line);
    zhashx_destroy (&parser.positions);
    free (text);
    return 0;
}

void
node_records_free (node_records_t *records)
{
    free (records->clients);
    records->clients = NULL;
    records->count = 0;
}

/*  The events of one client id.  */
typedef struct {
    int count;
    char reason[16];
    int64_t removed_ms;
} removal_t;

static void
s_removal_destroy (void **item)
{
    free (*item);
    *item = NULL;
}

/*  Reads every event into a table of id to removal_t, and every
    registered id into a set, because events has no index on id.  */
static void
s_load_store (const char *path, zhashx_t *removals, zhashx_t *registered)
{
    sqlite3 *db = s_open_read_only (path);
    sqlite3_stmt *stmt = NULL;
    assert_int_equal (sqlite3_prepare_v2 (db, "SELECT id, reason, "
                                          "removed_ms FROM events",
                                          -1, &stmt, NULL),
                      SQLITE_OK);
    while (sqlite3_step (stmt) == SQLITE_ROW) {
        const char *id = (const char *) sqlite3_column_text (stmt, 0);
        removal_t *removal = zhashx_lookup (removals, id);
        if (!removal) {
            removal = calloc (1, sizeof (removal_t));
            assert_non_null (removal);
            zhashx_insert (removals, id, removal);
        }
        removal->count++;
        snprintf (removal->reason, sizeof (removal->reason), "%s",
                  (const char *) sqlite3_column_text (stmt, 1));
        removal->removed_ms = sqlite3_column_int64 (stmt, 2);
    }
    sqlite3_finalize (stmt);

    assert_int_equal (sqlite3_prepare_v2 (db, "SELECT id FROM clients", -1,
                                          &stmt, NULL),
                      SQLITE_OK);
    while (sqlite3_step (stmt) == SQLITE_ROW)
        zhashx_insert (registered,
                       (const char *) sqlite3_column_text (stmt, 0), "");
    sqlite3_finalize (stmt);
    sqlite3_close (db);
}

/*  Checks one acknowledged client.  Returns true when it was removed.  */
static bool
s_check_client (zhashx_t *removals, zhashx_t *registered,
                const node_client_t *client, int64_t stale_after_ms)
{
    bool present = zhashx_lookup (registered, client->id) != NULL;
    removal_t none = { 0 };
    removal_t *removal = zhashx_lookup (removals, client->id);
    if (!removal)
        removal = &none;

    if (present == (removal->count == 1) || removal->count > 1)
        print_error ("client %s: registered=%d events=%d\n", client->id,
                     present, removal->count);
    assert_true (present || removal->count == 1);
    assert_false (present && removal->count > 0);
    if (client->deregistered) {
        if (strcmp (removal->reason, "deregistered") != 0)
            print_error ("client %s: deregistration acknowledged, but the "
                         "event's reason is \"%s\"\n", client->id,
                         removal->reason);
        assert_string_equal (removal->reason, "deregistered");
    }

    bool stale = strcmp (removal->reason, "stale") == 0;
    if (stale && removal->removed_ms < client->acked_ms + stale_after_ms)
        print_error ("client %s: evicted as stale at %lld, but activity "
                     "acknowledged at %lld and stale-after is %lld ms\n",
                     client->id, (long long) removal->removed_ms,
                     (long long) client->acked_ms,
                     (long long) stale_after_ms);
    if (stale)
        assert_true (removal->removed_ms
                     >= client->acked_ms + stale_after_ms);
    return removal->count == 1;
}

size_t
crash_check_acknowledged (const char *store_path,
                          const node_records_t *records,
                          int64_t stale_after_ms)
{
    zhashx_t *removals = zhashx_new ();
    zhashx_t *registered = zhashx_new ();
    assert_non_null (removals);
    assert_non_null (registered);
    zhashx_set_destructor (removals, s_removal_destroy);
    s_load_store (store_path, removals, registered);

    size_t removed = 0;
    for (size_t index = 0; index < records->count; index++) {
        const node_client_t *client = &records->clients[index];
        if (client->registered_ms == 0)
            continue;
        removed += s_check_client (removals, registered, client,
                                   stale_after_ms);
    }
    zhashx_destroy (&removals);
    zhashx_destroy (&registered);
    return removed;
}
