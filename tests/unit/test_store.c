/*  test_store.c: unit tests of the registry's SQLite store.

    Each test opens a store in a fresh temporary folder.  Tests that need
    another SQLite connection (to hold the write lock, or to edit the file
    behind the store's back) open one on the same file directly.
*/

#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "store.h"

#define BUSY_TIMEOUT_MS 100
#define COLLECT_MAX 16

#define COUNT_OF(array) ((uint32_t) (sizeof (array) / sizeof (array)[0]))

typedef struct {
    char dir[64];
    char path[128];
    store_t *store;
} fixture_t;

typedef struct {
    char ids[COLLECT_MAX][MSG_ID_MAX + 1];
    int count;
    int stop_after;             /* return 7 after this many; 0 never */
} ids_t;

typedef struct {
    store_event_t events[COLLECT_MAX];
    int count;
} events_t;

static store_t *
s_open (const char *path)
{
    char error[512];
    store_t *store = store_open (path, BUSY_TIMEOUT_MS, error, sizeof error);
    if (!store)
        print_error ("store_open: %s\n", error);
    return store;
}

static void
s_remove_dir (const char *dir)
{
    DIR *handle = opendir (dir);
    if (!handle)
        return;
    struct dirent *entry;
    char path[512];
    while ((entry = readdir (handle))) {
        if (strcmp (entry->d_name, ".") == 0
            || strcmp (entry->d_name, "..") == 0)
            continue;
        snprintf (path, sizeof path, "%s/%s", dir, entry->d_name);
        unlink (path);
    }
    closedir (handle);
    rmdir (dir);
}

static int
setup (void **state)
{
    fixture_t *fixture = calloc (1, sizeof *fixture);
    if (!fixture)
        return -1;
    snprintf (fixture->dir, sizeof fixture->dir, "/tmp/lapse-store-XXXXXX");
    if (!mkdtemp (fixture->dir)) {
        free (fixture);
        return -1;
    }
    snprintf (fixture->path, sizeof fixture->path, "%s/lapse.db",
              fixture->dir);
    fixture->store = s_open (fixture->path);
    *state = fixture;
    return fixture->store ? 0 : -1;
}

static int
teardown (void **state)
{
    fixture_t *fixture = *state;
    store_destroy (&fixture->store);
    s_remove_dir (fixture->dir);
    free (fixture);
    return 0;
}

static void
s_reopen (fixture_t *fixture)
{
    store_destroy (&fixture->store);
    assert_null (fixture->store);
    fixture->store = s_open (fixture->path);
    assert_non_null (fixture->store);
}

static void
s_register (store_t *store, const char *id, const char *node, int64_t now_ms)
{
    bool created;
    int rc = store_register (store, id, node, NULL, 0, 0, now_ms, &created);
    if (rc != 0)
        print_error ("store_register %s: %s\n", id, store_error (store));
    assert_int_equal (rc, 0);
    assert_true (created);
}

/*  A client a sweep decided to evict, given as the sweep has it: the id
    and the activity the sweep saw.  */
static store_candidate_t
s_decided (const char *id, int64_t activity_ms)
{
    store_candidate_t client = { .last_activity_ms = activity_ms };
    snprintf (client.id, sizeof client.id, "%s", id);
    return client;
}

/*  Applies a sweep that decided to evict evict[0 .. evict_count - 1] and
    checks that it succeeded and removed expected clients.  */
static void
s_apply_sweep (store_t *store, store_candidate_t *evict, uint32_t evict_count,
               uint64_t sweep, int64_t now_ms, store_event_t *events,
               uint32_t expected)
{
    uint32_t count = 99;
    int rc = store_apply_sweep (store, evict, evict_count, sweep, now_ms,
                                events, &count);
    if (rc != 0)
        print_error ("store_apply_sweep: %s\n", store_error (store));
    assert_int_equal (rc, 0);
    assert_int_equal (count, expected);
}

/*  Applies a sweep that must fail, and checks that it removed nothing
    and that the store's error contains error, when error is not NULL.  */
static void
s_apply_sweep_fails (store_t *store, store_candidate_t *evict,
                     uint32_t evict_count, int64_t now_ms,
                     store_event_t *events, const char *error)
{
    uint32_t count = 99;
    assert_int_equal (store_apply_sweep (store, evict, evict_count, 1,
                                         now_ms, events, &count),
                      -1);
    assert_int_equal (count, 0);
    if (error && !strstr (store_error (store), error))
        print_error ("expected \"%s\" in \"%s\"\n", error,
                     store_error (store));
    if (error)
        assert_non_null (strstr (store_error (store), error));
}

static int64_t
s_activity (store_t *store, const char *id)
{
    store_client_t client;
    assert_int_equal (store_get (store, id, &client), 0);
    return client.last_activity_ms;
}

static int
s_collect_id (const store_client_t *client, void *arg)
{
    ids_t *ids = arg;
    assert_true (ids->count < COLLECT_MAX);
    snprintf (ids->ids[ids->count], sizeof ids->ids[0], "%s", client->id);
    ids->count++;
    return ids->count == ids->stop_after ? 7 : 0;
}

static int
s_collect_event (const store_event_t *event, void *arg)
{
    events_t *events = arg;
    assert_true (events->count < COLLECT_MAX);
    events->events[events->count++] = *event;
    return 0;
}

static void
s_list (store_t *store, const char *after, const char *node, uint32_t limit,
        ids_t *ids)
{
    memset (ids, 0, sizeof *ids);
    assert_int_equal (store_list (store, after, node, limit, s_collect_id,
                                  ids), 0);
}

static void
s_events_since (store_t *store, uint64_t since, const char *node,
                events_t *events)
{
    memset (events, 0, sizeof *events);
    assert_int_equal (store_events_since (store, since, node, COLLECT_MAX,
                                          s_collect_event, events), 0);
}

static void
s_range (store_t *store, uint64_t first_expected, uint64_t last_expected)
{
    uint64_t first = 99, last = 99;
    assert_int_equal (store_event_range (store, &first, &last), 0);
    assert_int_equal (first, first_expected);
    assert_int_equal (last, last_expected);
}

static uint64_t
s_client_count (store_t *store)
{
    uint64_t count = 99;
    assert_int_equal (store_client_count (store, &count), 0);
    return count;
}

/*  Opens a second connection to path and runs sql on it.  */
static sqlite3 *
s_other_connection (const char *path, const char *sql)
{
    sqlite3 *db = NULL;
    assert_int_equal (sqlite3_open (path, &db), SQLITE_OK);
    assert_int_equal (sqlite3_exec (db, sql, NULL, NULL, NULL), SQLITE_OK);
    return db;
}

static void
s_exec (sqlite3 *db, const char *sql)
{
    assert_int_equal (sqlite3_exec (db, sql, NULL, NULL, NULL), SQLITE_OK);
}

/*  Adds a trigger that makes a statement fail halfway through a write,
    as a full disk or an I/O error would.  */
static void
s_inject_failure (const char *path, const char *trigger)
{
    sqlite3 *db = s_other_connection (path, trigger);
    sqlite3_close (db);
}

static void
s_remove_failure (const char *path)
{
    sqlite3 *db = s_other_connection (path, "DROP TRIGGER fail");
    sqlite3_close (db);
}

/*  Checks that the store left no write transaction open: another
    connection can take the write lock at once.  */
static void
s_assert_no_transaction (const char *path)
{
    sqlite3 *db = s_other_connection (path, "PRAGMA busy_timeout = 0");
    s_exec (db, "BEGIN IMMEDIATE");
    s_exec (db, "ROLLBACK");
    sqlite3_close (db);
}

/*  Tries to open path from a child process, which POSIX record locks
    treat as another owner.  Returns the child's error message in error
    and true when its open failed.  */
static bool
s_open_fails_in_child (const char *path, char *error, size_t size)
{
    int pipe_fds[2];
    assert_int_equal (pipe (pipe_fds), 0);
    pid_t child = fork ();
    assert_true (child >= 0);
    if (child == 0) {
        close (pipe_fds[0]);
        char message[512] = "";
        store_t *store = store_open (path, BUSY_TIMEOUT_MS, message,
                                     sizeof message);
        ssize_t written = write (pipe_fds[1], message, strlen (message));
        _exit (store == NULL && written >= 0 ? 0 : 1);
    }
    close (pipe_fds[1]);
    ssize_t length = read (pipe_fds[0], error, size - 1);
    close (pipe_fds[0]);
    error[length > 0 ? length : 0] = '\0';

    int status;
    assert_int_equal (waitpid (child, &status, 0), child);
    assert_true (WIFEXITED (status));
    return WEXITSTATUS (status) == 0;
}

/*  ------------------------------------------------------------------
    Opening.  */

static void
store_open_creates_empty_store (void **state)
{
    fixture_t *fixture = *state;
    assert_int_equal (s_client_count (fixture->store), 0);
    s_range (fixture->store, 0, 0);
    assert_int_equal (access (fixture->path, F_OK), 0);
}

static void
store_open_writes_pid_to_lock_file (void **state)
{
    fixture_t *fixture = *state;
    char lock_path[160], text[32] = "", expected[32];
    snprintf (lock_path, sizeof lock_path, "%s.lock", fixture->path);
    FILE *file = fopen (lock_path, "r");
    assert_non_null (file);
    assert_non_null (fgets (text, sizeof text, file));
    fclose (file);
    snprintf (expected, sizeof expected, "%ld\n", (long) getpid ());
    assert_string_equal (text, expected);
}

static void
store_reopen_keeps_clients (void **state)
{
    fixture_t *fixture = *state;
    bool created;
    assert_int_equal (store_register (fixture->store, "a", "n1", "xy", 2, 0,
                                      1000, &created), 0);
    s_reopen (fixture);

    store_client_t client;
    assert_int_equal (store_get (fixture->store, "a", &client), 0);
    assert_string_equal (client.id, "a");
    assert_string_equal (client.node, "n1");
    assert_int_equal (client.registered_ms, 1000);
    assert_int_equal (client.last_activity_ms, 1000);
    assert_int_equal (client.meta_len, 2);
    assert_memory_equal (client.meta, "xy", 2);
}

static void
store_open_rejects_second_open_in_process (void **state)
{
    fixture_t *fixture = *state;
    char error[512], pid[64];
    store_t *second = store_open (fixture->path, BUSY_TIMEOUT_MS, error,
                                  sizeof error);
    assert_null (second);
    snprintf (pid, sizeof pid, "in use by process %ld", (long) getpid ());
    assert_non_null (strstr (error, pid));
    assert_non_null (strstr (error, "lapse.db.lock"));
}

static void
store_open_rejects_other_process (void **state)
{
    fixture_t *fixture = *state;
    char error[512], pid[64];
    assert_true (s_open_fails_in_child (fixture->path, error, sizeof error));
    snprintf (pid, sizeof pid, "in use by process %ld", (long) getpid ());
    assert_non_null (strstr (error, pid));
}

/*  Closing any descriptor of a file drops the process's POSIX locks on
    it, so a rejected second open must not have closed one.  */
static void
store_rejected_second_open_keeps_lock (void **state)
{
    fixture_t *fixture = *state;
    char error[512];
    assert_null (store_open (fixture->path, BUSY_TIMEOUT_MS, error,
                             sizeof error));
    assert_true (s_open_fails_in_child (fixture->path, error, sizeof error));
}

/*  The lock on "<path>.lock" follows the path, so a store reached
    through a symlink or a hard link must be caught by the lock on the
    file itself.  */
static void
store_open_rejects_symlink_to_open_store (void **state)
{
    fixture_t *fixture = *state;
    char link_path[192], error[512];
    snprintf (link_path, sizeof link_path, "%s/alias.db", fixture->dir);
    assert_int_equal (symlink (fixture->path, link_path), 0);

    assert_true (s_open_fails_in_child (link_path, error, sizeof error));
    assert_non_null (strstr (error, "through another path"));
    assert_null (store_open (link_path, BUSY_TIMEOUT_MS, error,
                             sizeof error));
    assert_non_null (strstr (error, "through another path"));
}

static void
store_open_rejects_hard_link_to_open_store (void **state)
{
    fixture_t *fixture = *state;
    char link_path[192], error[512];
    snprintf (link_path, sizeof link_path, "%s/hard.db", fixture->dir);
    assert_int_equal (link (fixture->path, link_path), 0);

    assert_true (s_open_fails_in_child (link_path, error, sizeof error));
    assert_non_null (strstr (error, "through another path"));
}

static void
store_check_file_sees_deletion (void **state)
{
    fixture_t *fixture = *state;
    assert_int_equal (store_check_file (fixture->store), 0);

    assert_int_equal (unlink (fixture->path), 0);
    assert_int_equal (store_check_file (fixture->store), -1);
    assert_non_null (strstr (store_error (fixture->store), "deleted"));
}

static void
store_check_file_sees_replacement (void **state)
{
    fixture_t *fixture = *state;
    char other[192];
    snprintf (other, sizeof other, "%s/other.db", fixture->dir);
    FILE *file = fopen (other, "w");
    assert_non_null (file);
    fclose (file);

    assert_int_equal (rename (other, fixture->path), 0);
    assert_int_equal (store_check_file (fixture->store), -1);
    assert_non_null (strstr (store_error (fixture->store), "replaced"));
}

static void
store_destroy_releases_lock (void **state)
{
    fixture_t *fixture = *state;
    store_destroy (&fixture->store);
    fixture->store = s_open (fixture->path);
    assert_non_null (fixture->store);
}

static void
store_open_rejects_newer_schema (void **state)
{
    fixture_t *fixture = *state;
    store_destroy (&fixture->store);
    sqlite3 *db = s_other_connection (fixture->path,
                                      "UPDATE meta SET value = 4"
                                      " WHERE key = 'schema_version'");
    sqlite3_close (db);

    char error[512];
    assert_null (store_open (fixture->path, BUSY_TIMEOUT_MS, error,
                             sizeof error));
    assert_non_null (strstr (error, "schema version 4"));
    assert_non_null (strstr (error, "version 3, the newest"));
}

static void
store_open_rejects_foreign_database (void **state)
{
    fixture_t *fixture = *state;
    char path[160], error[512];
    snprintf (path, sizeof path, "%s/other.db", fixture->dir);
    sqlite3 *db = s_other_connection (path, "CREATE TABLE t (x)");
    sqlite3_close (db);

    assert_null (store_open (path, BUSY_TIMEOUT_MS, error, sizeof error));
    assert_non_null (strstr (error, "not a Lapse store"));
}

static void
store_open_rejects_non_database_file (void **state)
{
    fixture_t *fixture = *state;
    char path[160], error[512];
    snprintf (path, sizeof path, "%s/text.db", fixture->dir);
    FILE *file = fopen (path, "w");
    assert_non_null (file);
    fputs ("this is not an SQLite database, only some text in a file\n",
           file);
    fclose (file);

    assert_null (store_open (path, BUSY_TIMEOUT_MS, error, sizeof error));
    assert_non_null (strstr (error, "not a database"));
}

/*  ------------------------------------------------------------------
    Clients.  */

static void
store_register_creates_client (void **state)
{
    fixture_t *fixture = *state;
    bool created = false;
    assert_int_equal (store_register (fixture->store, "a", "n1", NULL, 0, 0,
                                      1000, &created), 0);
    assert_true (created);

    store_client_t client;
    assert_int_equal (store_get (fixture->store, "a", &client), 0);
    assert_string_equal (client.node, "n1");
    assert_int_equal (client.registered_ms, 1000);
    assert_int_equal (client.last_activity_ms, 1000);
    assert_int_equal (client.meta_len, 0);
}

static void
store_register_updates_existing_client (void **state)
{
    fixture_t *fixture = *state;
    bool created = true;
    s_register (fixture->store, "a", "n1", 1000);
    assert_int_equal (store_register (fixture->store, "a", "n2", "meta", 4,
                                      0, 2000, &created), 0);
    assert_false (created);

    store_client_t client;
    assert_int_equal (store_get (fixture->store, "a", &client), 0);
    assert_string_equal (client.node, "n2");
    assert_int_equal (client.registered_ms, 1000);
    assert_int_equal (client.last_activity_ms, 2000);
    assert_int_equal (client.meta_len, 4);
    assert_memory_equal (client.meta, "meta", 4);
    assert_int_equal (s_client_count (fixture->store), 1);
}

static void
store_register_never_lowers_activity (void **state)
{
    fixture_t *fixture = *state;
    bool created;
    s_register (fixture->store, "a", "n1", 5000);
    assert_int_equal (store_register (fixture->store, "a", "n1", NULL, 0, 0,
                                      3000, &created), 0);
    assert_int_equal (s_activity (fixture->store, "a"), 5000);
}

static void
store_register_rejects_long_id (void **state)
{
    fixture_t *fixture = *state;
    char id[MSG_ID_MAX + 2];
    memset (id, 'x', MSG_ID_MAX + 1);
    id[MSG_ID_MAX + 1] = '\0';
    bool created;
    assert_int_equal (store_register (fixture->store, id, "n1", NULL, 0, 0, 1,
                                      &created), -1);
    assert_non_null (strstr (store_error (fixture->store),
                             "id is 129 bytes, expected 1 to 128"));
    assert_false (store_busy (fixture->store));
    assert_int_equal (s_client_count (fixture->store), 0);
}

static void
store_get_returns_not_found (void **state)
{
    fixture_t *fixture = *state;
    store_client_t client;
    assert_int_equal (store_get (fixture->store, "missing", &client),
                      STORE_NOT_FOUND);
}

static void
store_list_pages_in_id_order (void **state)
{
    fixture_t *fixture = *state;
    const char *ids[] = {"c", "a", "e", "b", "d"};
    for (int i = 0; i < 5; i++)
        s_register (fixture->store, ids[i], "n1", 1000);

    ids_t page;
    s_list (fixture->store, NULL, NULL, 2, &page);
    assert_int_equal (page.count, 2);
    assert_string_equal (page.ids[0], "a");
    assert_string_equal (page.ids[1], "b");
    s_list (fixture->store, "b", NULL, 2, &page);
    assert_int_equal (page.count, 2);
    assert_string_equal (page.ids[0], "c");
    assert_string_equal (page.ids[1], "d");
    s_list (fixture->store, "d", NULL, 2, &page);
    assert_int_equal (page.count, 1);
    assert_string_equal (page.ids[0], "e");
    s_list (fixture->store, "e", NULL, 2, &page);
    assert_int_equal (page.count, 0);
}

static void
store_list_filters_by_node (void **state)
{
    fixture_t *fixture = *state;
    s_register (fixture->store, "d", "n1", 1000);
    s_register (fixture->store, "b", "n2", 1000);
    s_register (fixture->store, "a", "n1", 1000);
    s_register (fixture->store, "c", "n1", 1000);

    ids_t page;
    s_list (fixture->store, "", "n1", 2, &page);
    assert_int_equal (page.count, 2);
    assert_string_equal (page.ids[0], "a");
    assert_string_equal (page.ids[1], "c");
    s_list (fixture->store, "c", "n1", 2, &page);
    assert_int_equal (page.count, 1);
    assert_string_equal (page.ids[0], "d");
    s_list (fixture->store, NULL, "n3", 2, &page);
    assert_int_equal (page.count, 0);
}

static void
store_list_stops_when_callback_returns_nonzero (void **state)
{
    fixture_t *fixture = *state;
    s_register (fixture->store, "a", "n1", 1000);
    s_register (fixture->store, "b", "n1", 1000);

    ids_t ids = {.stop_after = 1};
    assert_int_equal (store_list (fixture->store, NULL, NULL, 10,
                                  s_collect_id, &ids), 7);
    assert_int_equal (ids.count, 1);
    /*  The statement was reset, so the next call starts over.  */
    s_list (fixture->store, NULL, NULL, 10, &ids);
    assert_int_equal (ids.count, 2);
}

static void
store_each_client_visits_every_client (void **state)
{
    fixture_t *fixture = *state;
    s_register (fixture->store, "a", "n1", 1000);
    s_register (fixture->store, "b", "n2", 1000);
    s_register (fixture->store, "c", "n1", 1000);

    ids_t ids = {0};
    assert_int_equal (store_each_client (fixture->store, s_collect_id, &ids),
                      0);
    assert_int_equal (ids.count, 3);
    assert_int_equal (s_client_count (fixture->store), 3);
}

static void
store_write_activity_raises_activity (void **state)
{
    fixture_t *fixture = *state;
    s_register (fixture->store, "a", "n1", 1000);
    s_register (fixture->store, "b", "n1", 1000);
    store_activity_t updates[] = {{"a", 2000}, {"b", 3000}};
    assert_int_equal (store_write_activity (fixture->store, updates, 2), 0);
    assert_int_equal (s_activity (fixture->store, "a"), 2000);
    assert_int_equal (s_activity (fixture->store, "b"), 3000);
}

static void
store_write_activity_never_lowers_activity (void **state)
{
    fixture_t *fixture = *state;
    s_register (fixture->store, "a", "n1", 5000);
    store_activity_t updates[] = {{"a", 4000}};
    assert_int_equal (store_write_activity (fixture->store, updates, 1), 0);
    assert_int_equal (s_activity (fixture->store, "a"), 5000);
}

static void
store_write_activity_rolls_back_on_failure (void **state)
{
    fixture_t *fixture = *state;
    s_register (fixture->store, "a", "n1", 1000);
    s_register (fixture->store, "b", "n1", 1000);
    s_inject_failure (fixture->path,
                      "CREATE TRIGGER fail BEFORE UPDATE ON clients"
                      " WHEN NEW.id = 'b'"
                      " BEGIN SELECT RAISE (ABORT, 'injected'); END");

    store_activity_t updates[] = {{"a", 2000}, {"b", 2000}};
    assert_int_equal (store_write_activity (fixture->store, updates, 2), -1);
    assert_non_null (strstr (store_error (fixture->store),
                             "write activity: injected"));
    assert_int_equal (s_activity (fixture->store, "a"), 1000);
    s_assert_no_transaction (fixture->path);
}

static void
store_write_activity_skips_unknown_id (void **state)
{
    fixture_t *fixture = *state;
    s_register (fixture->store, "a", "n1", 1000);
    store_activity_t updates[] = {{"gone", 2000}, {"a", 2000}};
    assert_int_equal (store_write_activity (fixture->store, updates, 2), 0);
    assert_int_equal (s_activity (fixture->store, "a"), 2000);
    assert_int_equal (s_client_count (fixture->store), 1);
}

/*  ------------------------------------------------------------------
    Sweeps and events.  */

/*  A batch removes in the order the sweep lists its clients, which need
    not be id order, and an empty batch writes nothing.  */
static void
store_apply_sweep_removes_in_given_order (void **state)
{
    fixture_t *fixture = *state;
    s_register (fixture->store, "a", "n1", 500);
    s_register (fixture->store, "b", "n1", 100);
    s_register (fixture->store, "c", "n1", 400);
    s_register (fixture->store, "d", "n1", 200);
    s_register (fixture->store, "e", "n1", 300);

    store_event_t events[2];
    store_candidate_t first[] = { s_decided ("b", 100), s_decided ("d", 200) };
    s_apply_sweep (fixture->store, first, COUNT_OF (first), 1, 2000, events,
                   2);
    assert_string_equal (events[0].id, "b");
    assert_int_equal (events[0].seq, 1);
    assert_string_equal (events[1].id, "d");
    assert_int_equal (events[1].seq, 2);

    store_candidate_t second[] = { s_decided ("e", 300), s_decided ("c", 400) };
    s_apply_sweep (fixture->store, second, COUNT_OF (second), 2, 2000, events,
                   2);
    assert_string_equal (events[0].id, "e");
    assert_int_equal (events[0].seq, 3);
    assert_string_equal (events[1].id, "c");
    assert_int_equal (events[1].seq, 4);
    assert_int_equal (s_client_count (fixture->store), 1);

    s_apply_sweep (fixture->store, NULL, 0, 3, 2000, NULL, 0);
    s_range (fixture->store, 1, 4);

    store_candidate_t last[] = { s_decided ("a", 500) };
    s_apply_sweep (fixture->store, last, COUNT_OF (last), 4, 2000, events, 1);
    assert_string_equal (events[0].id, "a");
    assert_int_equal (events[0].seq, 5);
    assert_int_equal (s_client_count (fixture->store), 0);
}

static void
store_apply_sweep_writes_gapless_events_with_node_prev (void **state)
{
    fixture_t *fixture = *state;
    s_register (fixture->store, "a", "n1", 100);
    s_register (fixture->store, "b", "n2", 200);
    s_register (fixture->store, "c", "n1", 300);
    s_register (fixture->store, "d", "n2", 400);
    s_register (fixture->store, "e", "n1", 500);

    store_event_t events[3];
    store_candidate_t first[] = {
        s_decided ("a", 100), s_decided ("b", 200), s_decided ("c", 300),
    };
    s_apply_sweep (fixture->store, first, COUNT_OF (first), 1, 2000, events,
                   3);
    store_candidate_t second[] = { s_decided ("d", 400), s_decided ("e", 500) };
    s_apply_sweep (fixture->store, second, COUNT_OF (second), 2, 3000, events,
                   2);

    /*  seq:  1 a n1, 2 b n2, 3 c n1, 4 d n2, 5 e n1.  */
    const uint64_t prev[] = {0, 0, 1, 2, 3};
    const char *const nodes[] = {"n1", "n2", "n1", "n2", "n1"};
    events_t all;
    s_events_since (fixture->store, 0, NULL, &all);
    assert_int_equal (all.count, 5);
    for (int i = 0; i < 5; i++) {
        assert_int_equal (all.events[i].seq, i + 1);
        assert_int_equal (all.events[i].prev, prev[i]);
        assert_string_equal (all.events[i].node, nodes[i]);
        assert_int_equal (all.events[i].reason, MSG_REASON_STALE);
        assert_int_equal (all.events[i].sweep, i < 3 ? 1 : 2);
        assert_int_equal (all.events[i].last_activity_ms, 100 * (i + 1));
        assert_int_equal (all.events[i].removed_ms, i < 3 ? 2000 : 3000);
    }
    assert_int_equal (events[1].seq, 5);
    assert_int_equal (events[1].prev, 3);
}

/*  One batch with five nodes interleaved: each event's prev is its own
    node's previous seq, also on a node whose previous event came from
    an earlier store_remove.  */
static void
store_apply_sweep_links_prev_across_many_nodes (void **state)
{
    fixture_t *fixture = *state;
    enum { CLIENTS = 12, NODES = 5 };
    char ids[CLIENTS][8], nodes[NODES][8];
    for (int node = 0; node < NODES; node++)
        snprintf (nodes[node], sizeof nodes[node], "n%d", node);
    for (int i = 0; i < CLIENTS; i++) {
        snprintf (ids[i], sizeof ids[i], "c%02d", i);
        s_register (fixture->store, ids[i], nodes[i % NODES], 100 + i);
    }

    //  An earlier removal on n3 gives that node seq 1
    s_register (fixture->store, "gone", "n3", 50);
    store_event_t event;
    assert_int_equal (store_remove (fixture->store, "gone",
                                    MSG_REASON_OPERATOR, 500, &event), 0);
    assert_int_equal (event.seq, 1);

    store_candidate_t evict[CLIENTS];
    for (int i = 0; i < CLIENTS; i++)
        evict[i] = s_decided (ids[i], 100 + i);
    store_event_t events[CLIENTS];
    s_apply_sweep (fixture->store, evict, CLIENTS, 9, 1000, events, CLIENTS);

    uint64_t node_last[NODES] = {0, 0, 0, 1, 0};
    for (int i = 0; i < CLIENTS; i++) {
        assert_string_equal (events[i].id, ids[i]);
        assert_string_equal (events[i].node, nodes[i % NODES]);
        assert_string_equal (evict[i].node, nodes[i % NODES]);
        assert_int_equal (events[i].seq, 2 + i);
        assert_int_equal (events[i].prev, node_last[i % NODES]);
        node_last[i % NODES] = events[i].seq;
    }

    //  The next removal on each node links to the newest seq of the batch
    for (int node = 0; node < NODES; node++) {
        char id[16];
        snprintf (id, sizeof id, "late-%d", node);
        s_register (fixture->store, id, nodes[node], 2000);
        assert_int_equal (store_remove (fixture->store, id,
                                        MSG_REASON_OPERATOR, 3000, &event),
                          0);
        assert_int_equal (event.prev, node_last[node]);
    }
}

/*  The store fills in each removed client's node from its row, since a
    sweep may know a client only by id.  */
static void
store_apply_sweep_takes_node_from_row (void **state)
{
    fixture_t *fixture = *state;
    s_register (fixture->store, "a", "n2", 100);

    store_candidate_t evict[] = { s_decided ("a", 100) };
    snprintf (evict[0].node, sizeof evict[0].node, "%s", "wrong");
    store_event_t events[1];
    s_apply_sweep (fixture->store, evict, COUNT_OF (evict), 1, 2000, events,
                   1);
    assert_string_equal (evict[0].node, "n2");
    assert_string_equal (events[0].node, "n2");

    events_t n2;
    s_events_since (fixture->store, 0, "n2", &n2);
    assert_int_equal (n2.count, 1);
    s_events_since (fixture->store, 0, "wrong", &n2);
    assert_int_equal (n2.count, 0);
}

static void
store_apply_sweep_fails_busy_and_leaves_store_unchanged (void **state)
{
    fixture_t *fixture = *state;
    s_register (fixture->store, "a", "n1", 100);
    s_register (fixture->store, "b", "n1", 200);
    sqlite3 *other = s_other_connection (fixture->path, "BEGIN IMMEDIATE");

    store_candidate_t evict[] = { s_decided ("a", 100), s_decided ("b", 200) };
    store_event_t events[2];
    s_apply_sweep_fails (fixture->store, evict, 2, 2000, events,
                         "evict batch: database is locked");
    assert_true (store_busy (fixture->store));
    assert_int_equal (s_client_count (fixture->store), 2);
    s_range (fixture->store, 0, 0);

    s_exec (other, "ROLLBACK");
    s_apply_sweep (fixture->store, evict, 2, 1, 2000, events, 2);
    assert_int_equal (events[0].seq, 1);
    assert_int_equal (events[1].seq, 2);
    sqlite3_close (other);
}

/*  A touch that commits while a sweep waits for the write lock is seen
    by that sweep, because the activity test runs inside its write
    transaction.  */
static void
store_apply_sweep_keeps_client_touched_before_it (void **state)
{
    fixture_t *fixture = *state;
    s_register (fixture->store, "a", "n1", 100);
    s_register (fixture->store, "b", "n1", 200);
    sqlite3 *other = s_other_connection (fixture->path, "BEGIN IMMEDIATE");
    s_exec (other, "UPDATE clients SET last_activity_ms = 900"
                   " WHERE id = 'a'");

    store_candidate_t evict[] = { s_decided ("a", 100), s_decided ("b", 200) };
    store_event_t events[2];
    s_apply_sweep_fails (fixture->store, evict, 2, 1000, events, NULL);
    assert_true (store_busy (fixture->store));

    s_exec (other, "COMMIT");
    sqlite3_close (other);
    s_apply_sweep (fixture->store, evict, 2, 1, 1000, events, 1);
    assert_string_equal (events[0].id, "b");
    assert_int_equal (events[0].seq, 1);
    assert_int_equal (s_activity (fixture->store, "a"), 900);
    s_range (fixture->store, 1, 1);
}

static void
store_apply_sweep_rolls_back_and_retries (void **state)
{
    fixture_t *fixture = *state;
    s_register (fixture->store, "a", "n1", 100);
    s_register (fixture->store, "b", "n1", 200);
    s_inject_failure (fixture->path,
                      "CREATE TRIGGER fail BEFORE INSERT ON events"
                      " WHEN NEW.seq = 2"
                      " BEGIN SELECT RAISE (ABORT, 'injected'); END");

    store_candidate_t evict[] = { s_decided ("a", 100), s_decided ("b", 200) };
    store_event_t events[2];
    s_apply_sweep_fails (fixture->store, evict, 2, 2000, events,
                         "evict batch: injected");
    assert_false (store_busy (fixture->store));
    assert_int_equal (s_client_count (fixture->store), 2);
    s_range (fixture->store, 0, 0);
    s_assert_no_transaction (fixture->path);

    //  The retry starts from the same seq and the same node prev
    s_remove_failure (fixture->path);
    s_apply_sweep (fixture->store, evict, 2, 1, 2000, events, 2);
    assert_int_equal (events[0].seq, 1);
    assert_int_equal (events[0].prev, 0);
    assert_int_equal (events[1].seq, 2);
    assert_int_equal (events[1].prev, 1);
}

/*  A failure in the last step, writing node_seq after every event, also
    rolls back the whole batch.  */
static void
store_apply_sweep_rolls_back_on_node_seq_failure (void **state)
{
    fixture_t *fixture = *state;
    s_register (fixture->store, "a", "n1", 100);
    s_register (fixture->store, "b", "n2", 200);
    s_inject_failure (fixture->path,
                      "CREATE TRIGGER fail BEFORE INSERT ON node_seq"
                      " WHEN NEW.node = 'n2'"
                      " BEGIN SELECT RAISE (ABORT, 'injected'); END");

    store_candidate_t evict[] = { s_decided ("a", 100), s_decided ("b", 200) };
    store_event_t events[2];
    s_apply_sweep_fails (fixture->store, evict, 2, 2000, events,
                         "evict batch: injected");
    assert_int_equal (s_client_count (fixture->store), 2);
    s_range (fixture->store, 0, 0);
    s_assert_no_transaction (fixture->path);

    s_remove_failure (fixture->path);
    s_apply_sweep (fixture->store, evict, 2, 1, 2000, events, 2);
    assert_int_equal (events[1].seq, 2);
    assert_int_equal (events[1].prev, 0);
}

static void
store_remove_writes_one_event (void **state)
{
    fixture_t *fixture = *state;
    s_register (fixture->store, "a", "n1", 100);
    store_event_t event;
    assert_int_equal (store_remove (fixture->store, "a",
                                    MSG_REASON_DEREGISTERED, 500, &event),
                      0);
    assert_int_equal (event.seq, 1);
    assert_int_equal (event.prev, 0);
    assert_string_equal (event.id, "a");
    assert_string_equal (event.node, "n1");
    assert_int_equal (event.reason, MSG_REASON_DEREGISTERED);
    assert_int_equal (event.last_activity_ms, 100);
    assert_int_equal (event.removed_ms, 500);
    assert_int_equal (event.sweep, 0);

    events_t all;
    s_events_since (fixture->store, 0, NULL, &all);
    assert_int_equal (all.count, 1);
    assert_int_equal (all.events[0].reason, MSG_REASON_DEREGISTERED);
    assert_int_equal (s_client_count (fixture->store), 0);
}

static void
store_remove_returns_not_found (void **state)
{
    fixture_t *fixture = *state;
    store_event_t event;
    assert_int_equal (store_remove (fixture->store, "missing",
                                    MSG_REASON_OPERATOR, 500, &event),
                      STORE_NOT_FOUND);
    s_range (fixture->store, 0, 0);
}

static void
store_remove_rolls_back_on_failure (void **state)
{
    fixture_t *fixture = *state;
    s_register (fixture->store, "a", "n1", 100);
    s_inject_failure (fixture->path,
                      "CREATE TRIGGER fail BEFORE INSERT ON node_seq"
                      " BEGIN SELECT RAISE (ABORT, 'injected'); END");

    store_event_t event;
    assert_int_equal (store_remove (fixture->store, "a", MSG_REASON_OPERATOR,
                                    500, &event), -1);
    assert_non_null (strstr (store_error (fixture->store),
                             "remove: injected"));
    assert_int_equal (s_client_count (fixture->store), 1);
    s_range (fixture->store, 0, 0);
    s_assert_no_transaction (fixture->path);
}

static void
store_remove_rejects_stale_reason (void **state)
{
    fixture_t *fixture = *state;
    s_register (fixture->store, "a", "n1", 100);
    store_event_t event;
    assert_int_equal (store_remove (fixture->store, "a", MSG_REASON_STALE,
                                    500, &event), -1);
    assert_non_null (strstr (store_error (fixture->store),
                             "expected deregistered or operator"));
    assert_int_equal (s_client_count (fixture->store), 1);
}

static void
store_event_range_reports_first_and_last (void **state)
{
    fixture_t *fixture = *state;
    s_register (fixture->store, "a", "n1", 100);
    s_register (fixture->store, "b", "n1", 200);
    s_register (fixture->store, "c", "n1", 300);
    store_candidate_t evict[] = {
        s_decided ("a", 100), s_decided ("b", 200), s_decided ("c", 300),
    };
    store_event_t events[3];
    s_apply_sweep (fixture->store, evict, COUNT_OF (evict), 1, 2000, events,
                   3);
    s_range (fixture->store, 1, 3);

    uint32_t deleted;
    assert_int_equal (store_prune_events (fixture->store, 5000, 1, &deleted),
                      0);
    assert_int_equal (deleted, 1);
    s_range (fixture->store, 2, 3);
}

static void
store_events_since_filters_by_node (void **state)
{
    fixture_t *fixture = *state;
    s_register (fixture->store, "a", "n1", 100);
    s_register (fixture->store, "b", "n2", 200);
    s_register (fixture->store, "c", "n1", 300);
    s_register (fixture->store, "d", "n1", 400);
    store_candidate_t evict[] = {
        s_decided ("a", 100), s_decided ("b", 200), s_decided ("c", 300),
        s_decided ("d", 400),
    };
    store_event_t events[4];
    s_apply_sweep (fixture->store, evict, COUNT_OF (evict), 1, 2000, events,
                   4);

    events_t n1;
    s_events_since (fixture->store, 0, "n1", &n1);
    assert_int_equal (n1.count, 3);
    assert_int_equal (n1.events[0].seq, 1);
    assert_int_equal (n1.events[1].seq, 3);
    assert_int_equal (n1.events[2].seq, 4);
    s_events_since (fixture->store, 3, "n1", &n1);
    assert_int_equal (n1.count, 1);
    assert_string_equal (n1.events[0].id, "d");
    s_events_since (fixture->store, 0, "n2", &n1);
    assert_int_equal (n1.count, 1);
    assert_string_equal (n1.events[0].id, "b");
}

static void
store_events_since_stops_at_limit (void **state)
{
    fixture_t *fixture = *state;
    s_register (fixture->store, "a", "n1", 100);
    s_register (fixture->store, "b", "n1", 200);
    s_register (fixture->store, "c", "n1", 300);
    store_candidate_t evict[] = {
        s_decided ("a", 100), s_decided ("b", 200), s_decided ("c", 300),
    };
    store_event_t events[3];
    s_apply_sweep (fixture->store, evict, COUNT_OF (evict), 1, 2000, events,
                   3);

    events_t some = {0};
    assert_int_equal (store_events_since (fixture->store, 1, NULL, 1,
                                          s_collect_event, &some), 0);
    assert_int_equal (some.count, 1);
    assert_int_equal (some.events[0].seq, 2);
}

static void
store_prune_keeps_newest_event (void **state)
{
    fixture_t *fixture = *state;
    s_register (fixture->store, "a", "n1", 100);
    s_register (fixture->store, "b", "n1", 200);
    s_register (fixture->store, "c", "n1", 300);
    store_candidate_t evict[] = {
        s_decided ("a", 100), s_decided ("b", 200), s_decided ("c", 300),
    };
    store_event_t events[3];
    s_apply_sweep (fixture->store, evict, COUNT_OF (evict), 1, 2000, events,
                   3);

    uint32_t deleted = 99;
    assert_int_equal (store_prune_events (fixture->store, 9000, 100,
                                          &deleted), 0);
    assert_int_equal (deleted, 2);
    s_range (fixture->store, 3, 3);
    assert_int_equal (store_prune_events (fixture->store, 9000, 100,
                                          &deleted), 0);
    assert_int_equal (deleted, 0);
    s_range (fixture->store, 3, 3);
}

static void
store_prune_keeps_recent_events (void **state)
{
    fixture_t *fixture = *state;
    s_register (fixture->store, "a", "n1", 100);
    s_register (fixture->store, "b", "n1", 200);
    s_register (fixture->store, "c", "n1", 300);
    store_candidate_t evict[] = {
        s_decided ("a", 100), s_decided ("b", 200), s_decided ("c", 300),
    };
    store_event_t events[1];
    s_apply_sweep (fixture->store, &evict[0], 1, 1, 2000, events, 1);
    s_apply_sweep (fixture->store, &evict[1], 1, 2, 4000, events, 1);
    s_apply_sweep (fixture->store, &evict[2], 1, 3, 6000, events, 1);

    uint32_t deleted = 99;
    assert_int_equal (store_prune_events (fixture->store, 3000, 100,
                                          &deleted), 0);
    assert_int_equal (deleted, 1);
    s_range (fixture->store, 2, 3);
}

static void
store_prune_rolls_back_on_failure (void **state)
{
    fixture_t *fixture = *state;
    s_register (fixture->store, "a", "n1", 100);
    s_register (fixture->store, "b", "n1", 200);
    s_register (fixture->store, "c", "n1", 300);
    store_candidate_t evict[] = {
        s_decided ("a", 100), s_decided ("b", 200), s_decided ("c", 300),
    };
    store_event_t events[3];
    s_apply_sweep (fixture->store, evict, COUNT_OF (evict), 1, 2000, events,
                   3);
    s_inject_failure (fixture->path,
                      "CREATE TRIGGER fail BEFORE DELETE ON events"
                      " WHEN OLD.seq = 2"
                      " BEGIN SELECT RAISE (ABORT, 'injected'); END");

    uint32_t deleted = 99;
    assert_int_equal (store_prune_events (fixture->store, 9000, 100,
                                          &deleted), -1);
    assert_int_equal (deleted, 0);
    assert_non_null (strstr (store_error (fixture->store),
                             "prune events: injected"));
    s_range (fixture->store, 1, 3);
    s_assert_no_transaction (fixture->path);
}

/*  Pruning every event but the newest keeps seq and each node's prev
    going: the next event continues from the last seq, and a node whose
    events were all pruned still gets its last seq as prev.  */
static void
store_prune_keeps_seq_and_prev_going (void **state)
{
    fixture_t *fixture = *state;
    s_register (fixture->store, "a", "n1", 100);
    s_register (fixture->store, "b", "n2", 200);
    s_register (fixture->store, "c", "n2", 300);
    store_candidate_t evict[] = {
        s_decided ("a", 100), s_decided ("b", 200), s_decided ("c", 300),
    };
    store_event_t events[3];
    s_apply_sweep (fixture->store, evict, COUNT_OF (evict), 1, 2000, events,
                   3);
    uint32_t deleted;
    assert_int_equal (store_prune_events (fixture->store, 9000, 100,
                                          &deleted), 0);
    assert_int_equal (deleted, 2);

    s_register (fixture->store, "d", "n1", 400);
    store_candidate_t late[] = { s_decided ("d", 400) };
    s_apply_sweep (fixture->store, late, COUNT_OF (late), 2, 9000, events, 1);
    assert_string_equal (events[0].node, "n1");
    assert_int_equal (events[0].seq, 4);
    assert_int_equal (events[0].prev, 1);
    s_range (fixture->store, 3, 4);
}

static void
store_last_seq_survives_reopen (void **state)
{
    fixture_t *fixture = *state;
    s_register (fixture->store, "a", "n1", 100);
    s_register (fixture->store, "b", "n1", 200);
    store_candidate_t evict[] = { s_decided ("a", 100), s_decided ("b", 200) };
    store_event_t events[2];
    s_apply_sweep (fixture->store, evict, COUNT_OF (evict), 1, 2000, events,
                   2);
    s_reopen (fixture);
    s_range (fixture->store, 1, 2);

    s_register (fixture->store, "c", "n1", 300);
    store_candidate_t late[] = { s_decided ("c", 300) };
    s_apply_sweep (fixture->store, late, COUNT_OF (late), 2, 3000, events, 1);
    assert_int_equal (events[0].seq, 3);
    assert_int_equal (events[0].prev, 2);
}

static void
store_integrity_check_reports_ok (void **state)
{
    fixture_t *fixture = *state;
    s_register (fixture->store, "a", "n1", 100);
    char result[256];
    assert_int_equal (store_integrity_check (fixture->store, result,
                                             sizeof result), 0);
    assert_string_equal (result, "ok");
}

/*  ------------------------------------------------------------------
    Schema versions and migration.  */

/*  The tables of schema version 1, as s_schema_v1 in store.c creates
    them, without its meta rows.  */
#define SCHEMA_V1_TABLES                                                      \
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);"       \
    "CREATE TABLE clients (id TEXT PRIMARY KEY, node TEXT NOT NULL,"          \
    "    registered_ms INTEGER NOT NULL,"                                     \
    "    last_activity_ms INTEGER NOT NULL, meta BLOB);"                      \
    "CREATE INDEX clients_activity ON clients (last_activity_ms);"            \
    "CREATE INDEX clients_node ON clients (node, id);"                        \
    "CREATE TABLE events (seq INTEGER PRIMARY KEY,"                           \
    "    prev INTEGER NOT NULL, id TEXT NOT NULL, node TEXT NOT NULL,"        \
    "    reason TEXT NOT NULL"                                                \
    "        CHECK (reason IN ('stale', 'deregistered', 'operator')),"        \
    "    last_activity_ms INTEGER NOT NULL,"                                  \
    "    removed_ms INTEGER NOT NULL, sweep INTEGER NOT NULL);"               \
    "CREATE INDEX events_node ON events (node, seq);"                         \
    "CREATE TABLE node_seq (node TEXT PRIMARY KEY, seq INTEGER NOT NULL);"

/*  The step from version 1 to version 2, as s_schema_v2 in store.c
    applies it: own thresholds, their partial indexes, and tombstones.  */
#define SCHEMA_V2_STEP                                                        \
    "ALTER TABLE clients ADD COLUMN stale_after_ms INTEGER"                   \
    "    CHECK (stale_after_ms IS NULL OR stale_after_ms > 0);"               \
    "DROP INDEX clients_activity;"                                            \
    "CREATE INDEX clients_activity ON clients (last_activity_ms)"             \
    "    WHERE stale_after_ms IS NULL;"                                       \
    "CREATE INDEX clients_deadline"                                           \
    "    ON clients (last_activity_ms + stale_after_ms, stale_after_ms)"      \
    "    WHERE stale_after_ms IS NOT NULL;"                                   \
    "CREATE TABLE tombstones (id TEXT PRIMARY KEY, node TEXT NOT NULL,"       \
    "    reason TEXT NOT NULL"                                                \
    "        CHECK (reason IN ('stale', 'deregistered', 'operator')),"        \
    "    last_activity_ms INTEGER NOT NULL,"                                  \
    "    removed_ms INTEGER NOT NULL, seq INTEGER NOT NULL);"                 \
    "CREATE INDEX tombstones_node ON tombstones (node, id);"                  \
    "CREATE INDEX tombstones_removed ON tombstones (removed_ms);"

/*  A store file as version 1 of the schema left it: clients without
    stale_after_ms, no tombstones table, one event.  */
static const char s_version_1_file[] =
    SCHEMA_V1_TABLES
    "INSERT INTO meta (key, value) VALUES ('last_seq', 1);"
    "INSERT INTO meta (key, value) VALUES ('schema_version', 1);"
    "INSERT INTO clients VALUES ('old', 'n1', 100, 100, x'6d');"
    "INSERT INTO clients VALUES ('new', 'n1', 100, 900, NULL);"
    "INSERT INTO events VALUES (1, 0, 'gone', 'n1', 'stale', 50, 60, 1);"
    "INSERT INTO node_seq VALUES ('n1', 1);";

/*  A store file as version 2 of the schema left it: clients in a rowid
    table with both activity indexes, clients with and without their own
    threshold and meta, two events on two nodes, and one tombstone.  */
static const char s_version_2_file[] =
    SCHEMA_V1_TABLES
    SCHEMA_V2_STEP
    "INSERT INTO meta (key, value) VALUES ('last_seq', 2);"
    "INSERT INTO meta (key, value) VALUES ('schema_version', 2);"
    "INSERT INTO clients (id, node, registered_ms, last_activity_ms, meta,"
    "    stale_after_ms) VALUES"
    "    ('plain', 'n1', 100, 700, x'6d65', NULL),"
    "    ('own', 'n2', 200, 800, x'00ff10', 90000),"
    "    ('bare', 'n1', 300, 300, NULL, NULL),"
    "    ('own-bare', 'n2', 400, 950, NULL, 60000);"
    "INSERT INTO events VALUES (1, 0, 'gone', 'n1', 'operator', 50, 60, 0);"
    "INSERT INTO events VALUES (2, 0, 'lost', 'n2', 'stale', 70, 80, 4);"
    "INSERT INTO node_seq VALUES ('n1', 1), ('n2', 2);"
    "INSERT INTO tombstones VALUES ('gone', 'n1', 'operator', 50, 60, 1);";

/*  Runs a query that returns one integer on a second connection.  */
static int64_t
s_query_other (const char *path, const char *sql)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *stmt = NULL;
    assert_int_equal (sqlite3_open (path, &db), SQLITE_OK);
    assert_int_equal (sqlite3_prepare_v2 (db, sql, -1, &stmt, NULL),
                      SQLITE_OK);
    assert_int_equal (sqlite3_step (stmt), SQLITE_ROW);
    int64_t value = sqlite3_column_int64 (stmt, 0);
    sqlite3_finalize (stmt);
    sqlite3_close (db);
    return value;
}

/*  Writes a file at dir/name with the tables and rows of sql, and sets
    path to it.  */
static void
s_write_old_file (const char *dir, const char *name, const char *sql,
                  char *path, size_t size)
{
    snprintf (path, size, "%s/%s", dir, name);
    sqlite3 *db = s_other_connection (path, sql);
    assert_int_equal (sqlite3_close (db), SQLITE_OK);
}

static int64_t
s_schema_version_of (const char *path)
{
    return s_query_other (path, "SELECT value FROM meta"
                          " WHERE key = 'schema_version'");
}

/*  Checks that the file at path has the clients table of version 3: no
    rowid, and clients_node as its only index besides the primary key,
    which a WITHOUT ROWID table keeps in the table itself.  */
static void
s_assert_version_3_clients (const char *path)
{
    assert_int_equal (s_query_other (path, "SELECT count(*) FROM sqlite_master"
                                     " WHERE type = 'table'"
                                     " AND name = 'clients'"
                                     " AND sql LIKE '%WITHOUT ROWID'"),
                      1);
    assert_int_equal (s_query_other (path, "SELECT count(*) FROM sqlite_master"
                                     " WHERE name = 'clients_v3'"),
                      0);

    sqlite3 *db = NULL;
    sqlite3_stmt *stmt = NULL;
    assert_int_equal (sqlite3_open (path, &db), SQLITE_OK);
    assert_int_equal (sqlite3_prepare_v2 (db, "SELECT rowid FROM clients",
                                          -1, &stmt, NULL),
                      SQLITE_ERROR);
    assert_null (stmt);
    assert_string_equal (sqlite3_errmsg (db), "no such column: rowid");
    sqlite3_close (db);

    //  A rowid table with a TEXT primary key would also list its
    //  sqlite_autoindex_clients_1 here
    assert_int_equal (s_query_other (path, "SELECT count(*) FROM sqlite_master"
                                     " WHERE type = 'index'"
                                     " AND tbl_name = 'clients'"),
                      1);
    assert_int_equal (s_query_other (path, "SELECT count(*) FROM sqlite_master"
                                     " WHERE type = 'index'"
                                     " AND name = 'clients_node'"
                                     " AND sql LIKE '%(node, id)'"),
                      1);
    assert_int_equal (s_query_other (path, "SELECT count(*) FROM sqlite_master"
                                     " WHERE name IN ('clients_activity',"
                                     " 'clients_deadline')"),
                      0);
}

static void
store_open_creates_version_3_schema (void **state)
{
    fixture_t *fixture = *state;
    assert_int_equal (s_schema_version_of (fixture->path), 3);
    s_assert_version_3_clients (fixture->path);
    assert_int_equal (s_query_other (fixture->path, "SELECT count(*) FROM"
                                     " sqlite_master WHERE name IN"
                                     " ('tombstones', 'tombstones_node',"
                                     " 'tombstones_removed', 'events_node',"
                                     " 'node_seq')"),
                      5);

    //  The clustered table still serves every client call
    s_register (fixture->store, "b", "n2", 200);
    s_register (fixture->store, "a", "n1", 100);
    ids_t page;
    s_list (fixture->store, NULL, NULL, 10, &page);
    assert_int_equal (page.count, 2);
    assert_string_equal (page.ids[0], "a");
    assert_string_equal (page.ids[1], "b");
    s_list (fixture->store, NULL, "n2", 10, &page);
    assert_int_equal (page.count, 1);
    assert_string_equal (page.ids[0], "b");
}

static void
store_migrates_version_1_file (void **state)
{
    fixture_t *fixture = *state;
    char path[160];
    s_write_old_file (fixture->dir, "v1.db", s_version_1_file, path,
                      sizeof path);

    store_destroy (&fixture->store);
    fixture->store = s_open (path);
    assert_non_null (fixture->store);
    assert_int_equal (s_schema_version_of (path), 3);
    assert_int_equal (s_query_other (path, "SELECT count(*) FROM"
                                     " sqlite_master WHERE name IN"
                                     " ('tombstones', 'tombstones_removed')"),
                      2);
    s_assert_version_3_clients (path);

    //  Rows, seq and prev carry over, and both clients follow the default
    store_client_t client;
    assert_int_equal (store_get (fixture->store, "old", &client), 0);
    assert_int_equal (client.last_activity_ms, 100);
    assert_int_equal (client.stale_after_ms, 0);
    assert_int_equal (client.meta_len, 1);
    assert_memory_equal (client.meta, "m", 1);
    assert_int_equal (store_get (fixture->store, "new", &client), 0);
    assert_string_equal (client.node, "n1");
    assert_int_equal (client.registered_ms, 100);
    assert_int_equal (client.last_activity_ms, 900);
    assert_int_equal (client.meta_len, 0);
    s_range (fixture->store, 1, 1);
    store_candidate_t evict[] = { s_decided ("old", 100) };
    store_event_t events[1];
    s_apply_sweep (fixture->store, evict, COUNT_OF (evict), 2, 2000, events,
                   1);
    assert_string_equal (events[0].id, "old");
    assert_int_equal (events[0].seq, 2);
    assert_int_equal (events[0].prev, 1);

    //  The new column and table work on the migrated file
    bool created;
    assert_int_equal (store_register (fixture->store, "own", "n1", NULL, 0,
                                      300, 100, &created), 0);
    assert_true (created);
    assert_int_equal (store_get (fixture->store, "own", &client), 0);
    assert_int_equal (client.stale_after_ms, 300);
    store_set_tombstones (fixture->store, true);
    store_candidate_t own[] = { s_decided ("own", 100) };
    s_apply_sweep (fixture->store, own, COUNT_OF (own), 3, 3000, events, 1);
    store_tombstone_t tombstone;
    assert_int_equal (store_get_tombstone (fixture->store, "own",
                                           &tombstone), 0);
    assert_int_equal (tombstone.seq, 3);
}

/*  What a version 2 file held, client by client, as store_get reads it
    after the migration.  */
static const struct {
    const char *id;
    const char *node;
    int64_t registered_ms;
    int64_t last_activity_ms;
    const char *meta;
    size_t meta_len;
    int64_t stale_after_ms;
} s_version_2_clients[] = {
    { "bare", "n1", 300, 300, "", 0, 0 },
    { "own", "n2", 200, 800, "\x00\xff\x10", 3, 90000 },
    { "own-bare", "n2", 400, 950, "", 0, 60000 },
    { "plain", "n1", 100, 700, "me", 2, 0 },
};

static void
store_migrates_version_2_file (void **state)
{
    fixture_t *fixture = *state;
    char path[160];
    s_write_old_file (fixture->dir, "v2.db", s_version_2_file, path,
                      sizeof path);
    assert_int_equal (s_query_other (path, "SELECT count(*) FROM clients"
                                     " WHERE rowid > 0"),
                      4);

    store_destroy (&fixture->store);
    fixture->store = s_open (path);
    assert_non_null (fixture->store);
    assert_int_equal (s_schema_version_of (path), 3);
    s_assert_version_3_clients (path);

    //  Every field of every client survives the copy
    size_t clients = sizeof s_version_2_clients / sizeof s_version_2_clients[0];
    assert_int_equal (s_client_count (fixture->store), clients);
    for (size_t i = 0; i < clients; i++) {
        store_client_t client;
        memset (&client, 0xa5, sizeof client);
        assert_int_equal (store_get (fixture->store,
                                     s_version_2_clients[i].id, &client), 0);
        assert_string_equal (client.id, s_version_2_clients[i].id);
        assert_string_equal (client.node, s_version_2_clients[i].node);
        assert_int_equal (client.registered_ms,
                          s_version_2_clients[i].registered_ms);
        assert_int_equal (client.last_activity_ms,
                          s_version_2_clients[i].last_activity_ms);
        assert_int_equal (client.meta_len, s_version_2_clients[i].meta_len);
        assert_memory_equal (client.meta, s_version_2_clients[i].meta,
                             s_version_2_clients[i].meta_len);
        assert_int_equal (client.stale_after_ms,
                          s_version_2_clients[i].stale_after_ms);
    }
    int64_t min = 0;
    assert_int_equal (store_min_stale_after (fixture->store, &min), 0);
    assert_int_equal (min, 60000);

    //  The rebuilt clients_node serves listing by node in id order
    ids_t page;
    s_list (fixture->store, NULL, "n2", 10, &page);
    assert_int_equal (page.count, 2);
    assert_string_equal (page.ids[0], "own");
    assert_string_equal (page.ids[1], "own-bare");

    //  Events, node seqs and tombstones were not touched
    s_range (fixture->store, 1, 2);
    store_tombstone_t tombstone;
    assert_int_equal (store_get_tombstone (fixture->store, "gone",
                                           &tombstone), 0);
    assert_int_equal (tombstone.reason, MSG_REASON_OPERATOR);
    assert_int_equal (tombstone.seq, 1);
    store_candidate_t evict[] = { s_decided ("own", 800) };
    store_event_t events[1];
    s_apply_sweep (fixture->store, evict, COUNT_OF (evict), 5, 2000, events,
                   1);
    assert_int_equal (events[0].seq, 3);
    assert_int_equal (events[0].prev, 2);
    assert_string_equal (events[0].node, "n2");

    char result[256];
    assert_int_equal (store_integrity_check (fixture->store, result,
                                             sizeof result), 0);
    assert_string_equal (result, "ok");
}

/*  The migration runs in one transaction, so a step that fails leaves
    the file as version 2 with its rowid table and every client.  A table
    left under the copy's name makes the copy's CREATE TABLE fail.  */
static void
store_failed_migration_keeps_version_2_file (void **state)
{
    fixture_t *fixture = *state;
    char path[160];
    s_write_old_file (fixture->dir, "v2.db", s_version_2_file, path,
                      sizeof path);
    sqlite3 *db = s_other_connection (path, "CREATE TABLE clients_v3 (x)");
    sqlite3_close (db);

    char error[512];
    store_t *store = store_open (path, BUSY_TIMEOUT_MS, error, sizeof error);
    assert_null (store);
    if (!strstr (error, "clients_v3 already exists"))
        print_error ("store_open: %s\n", error);
    assert_non_null (strstr (error, "create schema"));
    assert_non_null (strstr (error, "clients_v3 already exists"));

    assert_int_equal (s_schema_version_of (path), 2);
    assert_int_equal (s_query_other (path, "SELECT count(*) FROM clients"
                                     " WHERE rowid > 0"),
                      4);
    assert_int_equal (s_query_other (path, "SELECT count(*) FROM sqlite_master"
                                     " WHERE name IN ('clients_activity',"
                                     " 'clients_deadline')"),
                      2);
    assert_int_equal (s_query_other (path, "SELECT count(*) FROM clients_v3"),
                      0);
}

/*  Reopening a file of the current version runs no migration again.  */
static void
store_reopen_keeps_version_3 (void **state)
{
    fixture_t *fixture = *state;
    bool created;
    assert_int_equal (store_register (fixture->store, "a", "n1", "x", 1,
                                      90000, 1000, &created), 0);
    s_reopen (fixture);
    assert_int_equal (s_schema_version_of (fixture->path), 3);
    s_assert_version_3_clients (fixture->path);
    store_client_t client;
    assert_int_equal (store_get (fixture->store, "a", &client), 0);
    assert_int_equal (client.stale_after_ms, 90000);
    assert_int_equal (client.meta_len, 1);
}

static void
s_assert_plan_has (const char *plan, const char *line)
{
    if (!strstr (plan, line))
        print_error ("expected \"%s\" in the plan:\n%s\n", line, plan);
    assert_non_null (strstr (plan, line));
}

/*  Purging reads only the tombstones it deletes, oldest first, only if
    SQLite picks tombstones_removed.  A full scan would still delete the
    right rows, so only the plan shows it.  */
static void
store_tombstone_purge_searches_index (void **state)
{
    fixture_t *fixture = *state;
    char plan[2048];
    assert_int_equal (store_explain (fixture->store, plan, sizeof plan), 0);

    s_assert_plan_has (plan, "tombstone purge: SEARCH tombstones USING");
    s_assert_plan_has (plan, "INDEX tombstones_removed (removed_ms<?)");
    if (strstr (plan, "SCAN"))
        print_error ("a full scan in the plan:\n%s\n", plan);
    assert_null (strstr (plan, "SCAN"));
    assert_null (strstr (plan, "TEMP B-TREE"));

    //  Every line of the plan is the purge's
    for (const char *line = plan; line && *line;) {
        assert_int_equal (strncmp (line, "tombstone purge: ", 17), 0);
        line = strchr (line, '\n');
        if (line)
            line++;
    }
}

/*  ------------------------------------------------------------------
    Own thresholds.  */

static void
s_register_own (store_t *store, const char *id, int64_t stale_after_ms,
                int64_t now_ms)
{
    bool created;
    int rc = store_register (store, id, "n1", NULL, 0, stale_after_ms,
                             now_ms, &created);
    if (rc != 0)
        print_error ("store_register %s: %s\n", id, store_error (store));
    assert_int_equal (rc, 0);
}

static void
store_register_sets_and_clears_own_threshold (void **state)
{
    fixture_t *fixture = *state;
    s_register_own (fixture->store, "a", 120000, 1000);
    store_client_t client;
    assert_int_equal (store_get (fixture->store, "a", &client), 0);
    assert_int_equal (client.stale_after_ms, 120000);

    //  A registration states the whole client, so one without a
    //  threshold puts the client back on the default
    s_register_own (fixture->store, "a", 0, 2000);
    assert_int_equal (store_get (fixture->store, "a", &client), 0);
    assert_int_equal (client.stale_after_ms, 0);
    assert_int_equal (client.last_activity_ms, 2000);
}

static void
store_register_rejects_negative_threshold (void **state)
{
    fixture_t *fixture = *state;
    bool created;
    assert_int_equal (store_register (fixture->store, "a", "n1", NULL, 0, -5,
                                      1000, &created), -1);
    assert_non_null (strstr (store_error (fixture->store),
                             "stale_after_ms of client \"a\" is -5,"
                             " expected 0 (the default) or more"));
    assert_int_equal (s_client_count (fixture->store), 0);
}

static void
store_min_stale_after_finds_smallest (void **state)
{
    fixture_t *fixture = *state;
    int64_t min = 99;
    assert_int_equal (store_min_stale_after (fixture->store, &min), 0);
    assert_int_equal (min, 0);

    s_register (fixture->store, "d", "n1", 100);
    s_register_own (fixture->store, "a", 70000, 100);
    s_register_own (fixture->store, "b", 65000, 100);
    assert_int_equal (store_min_stale_after (fixture->store, &min), 0);
    assert_int_equal (min, 65000);
}

/*  A client on its own threshold is kept by the same activity test
    inside the deleting transaction: a touch committed while the sweep
    waits for the write lock keeps it.  */
static void
store_apply_sweep_keeps_own_client_touched_before_it (void **state)
{
    fixture_t *fixture = *state;
    s_register_own (fixture->store, "a", 500, 100);
    s_register_own (fixture->store, "b", 500, 100);
    sqlite3 *other = s_other_connection (fixture->path, "BEGIN IMMEDIATE");
    s_exec (other, "UPDATE clients SET last_activity_ms = 900"
                   " WHERE id = 'a'");

    store_candidate_t evict[] = { s_decided ("a", 100), s_decided ("b", 100) };
    store_event_t events[2];
    s_apply_sweep_fails (fixture->store, evict, 2, 1000, events, NULL);
    assert_true (store_busy (fixture->store));
    s_exec (other, "COMMIT");
    sqlite3_close (other);
    s_apply_sweep (fixture->store, evict, 2, 1, 1000, events, 1);
    assert_string_equal (events[0].id, "b");
    assert_int_equal (s_activity (fixture->store, "a"), 900);
    store_client_t client;
    assert_int_equal (store_get (fixture->store, "a", &client), 0);
    assert_int_equal (client.stale_after_ms, 500);
}

/*  ------------------------------------------------------------------
    Tombstones.  */

static void
s_assert_tombstone (store_t *store, const store_event_t *event)
{
    store_tombstone_t tombstone;
    assert_int_equal (store_get_tombstone (store, event->id, &tombstone), 0);
    assert_string_equal (tombstone.id, event->id);
    assert_string_equal (tombstone.node, event->node);
    assert_int_equal (tombstone.reason, event->reason);
    assert_int_equal (tombstone.last_activity_ms, event->last_activity_ms);
    assert_int_equal (tombstone.removed_ms, event->removed_ms);
    assert_int_equal (tombstone.seq, event->seq);
}

static int
s_collect_tombstone_id (const store_tombstone_t *tombstone, void *arg)
{
    ids_t *ids = arg;
    assert_true (ids->count < COLLECT_MAX);
    snprintf (ids->ids[ids->count], sizeof ids->ids[0], "%s",
              tombstone->id);
    ids->count++;
    return 0;
}

static void
s_list_tombstones (store_t *store, const char *after, const char *node,
                   uint32_t limit, ids_t *ids)
{
    memset (ids, 0, sizeof *ids);
    assert_int_equal (store_list_tombstones (store, after, node, limit,
                                             s_collect_tombstone_id, ids),
                      0);
}

static void
store_removals_write_tombstones_when_on (void **state)
{
    fixture_t *fixture = *state;
    store_set_tombstones (fixture->store, true);
    s_register (fixture->store, "a", "n1", 100);
    s_register (fixture->store, "b", "n2", 200);
    s_register_own (fixture->store, "c", 300, 100);

    store_event_t event;
    assert_int_equal (store_remove (fixture->store, "a",
                                    MSG_REASON_DEREGISTERED, 500, &event),
                      0);
    s_assert_tombstone (fixture->store, &event);

    store_candidate_t evict[] = { s_decided ("b", 200), s_decided ("c", 100) };
    store_event_t events[2];
    s_apply_sweep (fixture->store, evict, COUNT_OF (evict), 1, 5000, events,
                   2);
    s_assert_tombstone (fixture->store, &events[0]);
    s_assert_tombstone (fixture->store, &events[1]);
    assert_int_equal (events[1].reason, MSG_REASON_STALE);
    assert_int_equal (events[1].removed_ms, 5000);

    assert_string_equal (events[1].node, "n1");
    assert_int_equal (events[1].last_activity_ms, 100);

    ids_t ids;
    s_list_tombstones (fixture->store, NULL, NULL, 10, &ids);
    assert_int_equal (ids.count, 3);
    assert_string_equal (ids.ids[0], "a");
    assert_string_equal (ids.ids[2], "c");
}

/*  A client the sweep leaves alone gets no tombstone, and one removed
    before the sweep keeps the tombstone of that removal.  */
static void
store_apply_sweep_tombstones_only_removed_clients (void **state)
{
    fixture_t *fixture = *state;
    store_set_tombstones (fixture->store, true);
    s_register (fixture->store, "gone", "n1", 100);
    s_register (fixture->store, "kept", "n1", 100);
    s_register (fixture->store, "stale", "n2", 100);
    store_event_t removal;
    assert_int_equal (store_remove (fixture->store, "gone",
                                    MSG_REASON_DEREGISTERED, 500, &removal),
                      0);
    store_activity_t touch[] = {{"kept", 700}};
    assert_int_equal (store_write_activity (fixture->store, touch, 1), 0);

    store_candidate_t evict[] = {
        s_decided ("gone", 100), s_decided ("kept", 100),
        s_decided ("stale", 100),
    };
    store_event_t events[3];
    s_apply_sweep (fixture->store, evict, COUNT_OF (evict), 1, 2000, events,
                   1);
    assert_string_equal (events[0].id, "stale");
    s_assert_tombstone (fixture->store, &events[0]);
    s_assert_tombstone (fixture->store, &removal);
    store_tombstone_t tombstone;
    assert_int_equal (store_get_tombstone (fixture->store, "kept",
                                           &tombstone), STORE_NOT_FOUND);
    assert_int_equal (s_activity (fixture->store, "kept"), 700);
}

static void
store_removals_write_no_tombstone_when_off (void **state)
{
    fixture_t *fixture = *state;
    s_register (fixture->store, "a", "n1", 100);
    s_register (fixture->store, "b", "n1", 100);
    store_event_t events[4];
    assert_int_equal (store_remove (fixture->store, "a",
                                    MSG_REASON_OPERATOR, 500, &events[0]),
                      0);
    store_candidate_t evict[] = { s_decided ("b", 100) };
    s_apply_sweep (fixture->store, evict, COUNT_OF (evict), 1, 2000, events,
                   1);

    store_tombstone_t tombstone;
    assert_int_equal (store_get_tombstone (fixture->store, "a", &tombstone),
                      STORE_NOT_FOUND);
    assert_int_equal (store_get_tombstone (fixture->store, "b", &tombstone),
                      STORE_NOT_FOUND);
}

/*  The tombstone is part of the removal's transaction: when writing it
    fails, the client stays and no event is written, and when writing
    the event fails, no tombstone is left.  */
static void
store_tombstone_rolls_back_with_removal (void **state)
{
    fixture_t *fixture = *state;
    store_set_tombstones (fixture->store, true);
    s_register (fixture->store, "a", "n1", 100);
    s_register (fixture->store, "b", "n1", 100);
    s_inject_failure (fixture->path,
                      "CREATE TRIGGER fail BEFORE INSERT ON tombstones"
                      " BEGIN SELECT RAISE (ABORT, 'injected'); END");

    store_event_t event;
    assert_int_equal (store_remove (fixture->store, "a", MSG_REASON_OPERATOR,
                                    500, &event), -1);
    assert_non_null (strstr (store_error (fixture->store),
                             "remove: injected"));
    store_candidate_t evict[] = { s_decided ("a", 100), s_decided ("b", 100) };
    store_event_t events[2];
    s_apply_sweep_fails (fixture->store, evict, 2, 2000, events,
                         "evict batch: injected");
    assert_int_equal (s_client_count (fixture->store), 2);
    s_range (fixture->store, 0, 0);
    s_assert_no_transaction (fixture->path);
    s_remove_failure (fixture->path);

    s_inject_failure (fixture->path,
                      "CREATE TRIGGER fail BEFORE INSERT ON events"
                      " BEGIN SELECT RAISE (ABORT, 'injected'); END");
    assert_int_equal (store_remove (fixture->store, "a", MSG_REASON_OPERATOR,
                                    500, &event), -1);
    store_tombstone_t tombstone;
    assert_int_equal (store_get_tombstone (fixture->store, "a", &tombstone),
                      STORE_NOT_FOUND);
    s_apply_sweep_fails (fixture->store, evict, 2, 2000, events, NULL);
    assert_int_equal (store_get_tombstone (fixture->store, "a", &tombstone),
                      STORE_NOT_FOUND);
    assert_int_equal (store_get_tombstone (fixture->store, "b", &tombstone),
                      STORE_NOT_FOUND);
    assert_int_equal (s_client_count (fixture->store), 2);
    s_remove_failure (fixture->path);

    assert_int_equal (store_remove (fixture->store, "a", MSG_REASON_OPERATOR,
                                    500, &event), 0);
    assert_int_equal (event.seq, 1);
    s_assert_tombstone (fixture->store, &event);
}

static void
store_register_revives_tombstoned_client (void **state)
{
    fixture_t *fixture = *state;
    store_set_tombstones (fixture->store, true);
    s_register (fixture->store, "a", "n1", 100);
    store_event_t event;
    assert_int_equal (store_remove (fixture->store, "a", MSG_REASON_OPERATOR,
                                    500, &event), 0);

    s_register (fixture->store, "a", "n2", 900);
    store_tombstone_t tombstone;
    assert_int_equal (store_get_tombstone (fixture->store, "a", &tombstone),
                      STORE_NOT_FOUND);
    store_client_t client;
    assert_int_equal (store_get (fixture->store, "a", &client), 0);
    assert_string_equal (client.node, "n2");
    assert_int_equal (client.registered_ms, 900);
}

/*  A revival whose insert fails keeps the tombstone.  */
static void
store_failed_revival_keeps_tombstone (void **state)
{
    fixture_t *fixture = *state;
    store_set_tombstones (fixture->store, true);
    s_register (fixture->store, "a", "n1", 100);
    store_event_t event;
    assert_int_equal (store_remove (fixture->store, "a", MSG_REASON_OPERATOR,
                                    500, &event), 0);
    s_inject_failure (fixture->path,
                      "CREATE TRIGGER fail AFTER DELETE ON tombstones"
                      " BEGIN SELECT RAISE (ABORT, 'injected'); END");

    bool created;
    assert_int_equal (store_register (fixture->store, "a", "n1", NULL, 0, 0,
                                      900, &created), -1);
    s_remove_failure (fixture->path);
    store_tombstone_t tombstone;
    assert_int_equal (store_get_tombstone (fixture->store, "a", &tombstone),
                      0);
    assert_int_equal (s_client_count (fixture->store), 0);
}

static void
store_list_tombstones_pages_and_filters (void **state)
{
    fixture_t *fixture = *state;
    store_set_tombstones (fixture->store, true);
    const char *ids[] = {"c", "a", "e", "b", "d"};
    for (int i = 0; i < 5; i++)
        s_register (fixture->store, ids[i], i % 2 ? "n2" : "n1", 100);
    store_candidate_t evict[5];
    for (int i = 0; i < 5; i++)
        evict[i] = s_decided (ids[i], 100);
    store_event_t events[5];
    s_apply_sweep (fixture->store, evict, COUNT_OF (evict), 1, 2000, events,
                   5);

    ids_t page;
    s_list_tombstones (fixture->store, NULL, NULL, 2, &page);
    assert_int_equal (page.count, 2);
    assert_string_equal (page.ids[0], "a");
    assert_string_equal (page.ids[1], "b");
    s_list_tombstones (fixture->store, "d", NULL, 2, &page);
    assert_int_equal (page.count, 1);
    assert_string_equal (page.ids[0], "e");
    s_list_tombstones (fixture->store, "", "n1", 10, &page);
    assert_int_equal (page.count, 3);
    assert_string_equal (page.ids[0], "c");
    assert_string_equal (page.ids[1], "d");
    assert_string_equal (page.ids[2], "e");
}

static void
store_purge_tombstones_oldest_first (void **state)
{
    fixture_t *fixture = *state;
    store_set_tombstones (fixture->store, true);
    s_register (fixture->store, "a", "n1", 100);
    s_register (fixture->store, "b", "n1", 100);
    s_register (fixture->store, "c", "n1", 100);
    store_event_t event;
    assert_int_equal (store_remove (fixture->store, "c", MSG_REASON_OPERATOR,
                                    1000, &event), 0);
    assert_int_equal (store_remove (fixture->store, "a", MSG_REASON_OPERATOR,
                                    2000, &event), 0);
    assert_int_equal (store_remove (fixture->store, "b", MSG_REASON_OPERATOR,
                                    3000, &event), 0);

    uint32_t deleted = 99;
    assert_int_equal (store_purge_tombstones (fixture->store, 2500, 1,
                                              &deleted), 0);
    assert_int_equal (deleted, 1);
    store_tombstone_t tombstone;
    assert_int_equal (store_get_tombstone (fixture->store, "c", &tombstone),
                      STORE_NOT_FOUND);
    assert_int_equal (store_purge_tombstones (fixture->store, 2500, 10,
                                              &deleted), 0);
    assert_int_equal (deleted, 1);
    assert_int_equal (store_get_tombstone (fixture->store, "b", &tombstone),
                      0);
    assert_int_equal (store_purge_tombstones (fixture->store, 2500, 10,
                                              &deleted), 0);
    assert_int_equal (deleted, 0);

    //  Purging touches no event
    s_range (fixture->store, 1, 3);
}

/*  ------------------------------------------------------------------
    Sweeps that decide from memory.  */

static void
store_apply_sweep_removes_with_events_and_nodes (void **state)
{
    fixture_t *fixture = *state;
    s_register (fixture->store, "a", "n1", 100);
    s_register (fixture->store, "b", "n2", 200);
    s_register (fixture->store, "c", "n1", 300);

    //  The sweep saw newer activity for a than the store has
    store_candidate_t evict[] = { s_decided ("a", 150), s_decided ("c", 300) };
    store_event_t events[2];
    s_apply_sweep (fixture->store, evict, 2, 7, 6000, events, 2);
    assert_string_equal (evict[0].node, "n1");
    assert_string_equal (events[0].id, "a");
    assert_string_equal (events[0].node, "n1");
    assert_int_equal (events[0].seq, 1);
    assert_int_equal (events[0].prev, 0);
    assert_int_equal (events[0].last_activity_ms, 150);
    assert_int_equal (events[0].removed_ms, 6000);
    assert_int_equal (events[0].sweep, 7);
    assert_int_equal (events[0].reason, MSG_REASON_STALE);
    assert_string_equal (events[1].id, "c");
    assert_int_equal (events[1].seq, 2);
    assert_int_equal (events[1].prev, 1);

    store_client_t client;
    assert_int_equal (store_get (fixture->store, "a", &client),
                      STORE_NOT_FOUND);
    assert_int_equal (s_activity (fixture->store, "b"), 200);
    assert_int_equal (s_client_count (fixture->store), 1);
    s_range (fixture->store, 1, 2);
}

static void
store_apply_sweep_keeps_client_registered_again (void **state)
{
    fixture_t *fixture = *state;
    s_register (fixture->store, "a", "n1", 100);

    //  Registered again after the sweep decided: newer than it saw
    bool created = true;
    assert_int_equal (store_register (fixture->store, "a", "n1", NULL, 0, 0,
                                      2000, &created), 0);
    assert_false (created);

    store_candidate_t evict[] = { s_decided ("a", 100) };
    store_event_t events[1];
    s_apply_sweep (fixture->store, evict, 1, 1, 3000, events, 0);
    assert_int_equal (s_activity (fixture->store, "a"), 2000);
    s_range (fixture->store, 0, 0);
}

static void
store_apply_sweep_skips_client_removed_since (void **state)
{
    fixture_t *fixture = *state;
    s_register (fixture->store, "a", "n1", 100);
    s_register (fixture->store, "b", "n1", 200);

    store_event_t event;
    assert_int_equal (store_remove (fixture->store, "a",
                                    MSG_REASON_DEREGISTERED, 1500, &event),
                      0);
    assert_int_equal (event.seq, 1);

    store_candidate_t evict[] = { s_decided ("a", 100), s_decided ("b", 200) };
    store_event_t events[2];
    s_apply_sweep (fixture->store, evict, 2, 1, 3000, events, 1);
    assert_string_equal (events[0].id, "b");
    assert_int_equal (events[0].seq, 2);
    assert_int_equal (events[0].prev, 1);
    s_range (fixture->store, 1, 2);
    assert_int_equal (s_client_count (fixture->store), 0);
}

static void
store_apply_sweep_rolls_back_on_failure (void **state)
{
    fixture_t *fixture = *state;
    s_register (fixture->store, "a", "n1", 100);
    s_register (fixture->store, "b", "n1", 200);
    s_inject_failure (fixture->path,
                      "CREATE TRIGGER fail BEFORE INSERT ON events"
                      " WHEN NEW.id = 'b'"
                      " BEGIN SELECT RAISE (ABORT, 'injected'); END");

    store_candidate_t evict[] = { s_decided ("a", 100), s_decided ("b", 200) };
    store_event_t events[2];
    s_apply_sweep_fails (fixture->store, evict, 2, 3000, events, "injected");
    assert_int_equal (s_activity (fixture->store, "a"), 100);
    assert_int_equal (s_activity (fixture->store, "b"), 200);
    s_range (fixture->store, 0, 0);
    s_assert_no_transaction (fixture->path);
}

/*  ------------------------------------------------------------------
    Group commit and the second connection.  */

static void
store_register_many_writes_every_registration (void **state)
{
    fixture_t *fixture = *state;
    s_register (fixture->store, "old", "n1", 100);
    store_registration_t regs[] = {
        { "old", "n2", NULL, 0, 0, 2000, false },
        { "new", "n1", "m", 1, 60000, 2000, false },
    };
    assert_int_equal (store_register_many (fixture->store, regs, 2), 0);
    assert_false (regs[0].created);
    assert_true (regs[1].created);

    store_client_t client;
    assert_int_equal (store_get (fixture->store, "old", &client), 0);
    assert_string_equal (client.node, "n2");
    assert_int_equal (client.last_activity_ms, 2000);
    assert_int_equal (store_get (fixture->store, "new", &client), 0);
    assert_int_equal (client.stale_after_ms, 60000);
    assert_int_equal (client.meta_len, 1);
}

static void
store_register_many_writes_none_when_one_is_invalid (void **state)
{
    fixture_t *fixture = *state;
    store_registration_t regs[] = {
        { "fine", "n1", NULL, 0, 0, 2000, false },
        { "", "n1", NULL, 0, 0, 2000, false },
    };
    assert_int_equal (store_register_many (fixture->store, regs, 2), -1);
    assert_non_null (strstr (store_error (fixture->store), "id is 0 bytes"));
    assert_int_equal (s_client_count (fixture->store), 0);
}

static void
store_open_peer_shares_the_file_not_the_lock (void **state)
{
    fixture_t *fixture = *state;
    char error[512];
    store_t *peer = store_open_peer (fixture->store, error, sizeof error);
    if (!peer)
        print_error ("store_open_peer: %s\n", error);
    assert_non_null (peer);

    //  A write on one connection is read on the other
    s_register (peer, "a", "n1", 100);
    assert_int_equal (s_activity (fixture->store, "a"), 100);

    //  Closing the peer leaves the primary's lock in place
    store_destroy (&peer);
    assert_true (s_open_fails_in_child (fixture->path, error, sizeof error));
    assert_non_null (strstr (error, "in use by process"));
    assert_int_equal (s_activity (fixture->store, "a"), 100);
}

#define STORE_TEST(name) cmocka_unit_test_setup_teardown (name, setup, teardown)

int
main (void)
{
    const struct CMUnitTest tests[] = {
        STORE_TEST (store_apply_sweep_removes_with_events_and_nodes),
        STORE_TEST (store_apply_sweep_keeps_client_registered_again),
        STORE_TEST (store_apply_sweep_skips_client_removed_since),
        STORE_TEST (store_apply_sweep_rolls_back_on_failure),
        STORE_TEST (store_register_many_writes_every_registration),
        STORE_TEST (store_register_many_writes_none_when_one_is_invalid),
        STORE_TEST (store_open_peer_shares_the_file_not_the_lock),
        STORE_TEST (store_open_creates_empty_store),
        STORE_TEST (store_open_writes_pid_to_lock_file),
        STORE_TEST (store_reopen_keeps_clients),
        STORE_TEST (store_open_rejects_second_open_in_process),
        STORE_TEST (store_open_rejects_other_process),
        STORE_TEST (store_rejected_second_open_keeps_lock),
        STORE_TEST (store_destroy_releases_lock),
        STORE_TEST (store_open_rejects_symlink_to_open_store),
        STORE_TEST (store_open_rejects_hard_link_to_open_store),
        STORE_TEST (store_check_file_sees_deletion),
        STORE_TEST (store_check_file_sees_replacement),
        STORE_TEST (store_open_rejects_newer_schema),
        STORE_TEST (store_open_rejects_foreign_database),
        STORE_TEST (store_open_rejects_non_database_file),
        STORE_TEST (store_register_creates_client),
        STORE_TEST (store_register_updates_existing_client),
        STORE_TEST (store_register_never_lowers_activity),
        STORE_TEST (store_register_rejects_long_id),
        STORE_TEST (store_get_returns_not_found),
        STORE_TEST (store_list_pages_in_id_order),
        STORE_TEST (store_list_filters_by_node),
        STORE_TEST (store_list_stops_when_callback_returns_nonzero),
        STORE_TEST (store_each_client_visits_every_client),
        STORE_TEST (store_write_activity_raises_activity),
        STORE_TEST (store_write_activity_never_lowers_activity),
        STORE_TEST (store_write_activity_rolls_back_on_failure),
        STORE_TEST (store_write_activity_skips_unknown_id),
        STORE_TEST (store_apply_sweep_removes_in_given_order),
        STORE_TEST (store_apply_sweep_writes_gapless_events_with_node_prev),
        STORE_TEST (store_apply_sweep_links_prev_across_many_nodes),
        STORE_TEST (store_apply_sweep_takes_node_from_row),
        STORE_TEST (store_apply_sweep_fails_busy_and_leaves_store_unchanged),
        STORE_TEST (store_apply_sweep_keeps_client_touched_before_it),
        STORE_TEST (store_apply_sweep_rolls_back_and_retries),
        STORE_TEST (store_apply_sweep_rolls_back_on_node_seq_failure),
        STORE_TEST (store_remove_writes_one_event),
        STORE_TEST (store_remove_returns_not_found),
        STORE_TEST (store_remove_rolls_back_on_failure),
        STORE_TEST (store_remove_rejects_stale_reason),
        STORE_TEST (store_event_range_reports_first_and_last),
        STORE_TEST (store_events_since_filters_by_node),
        STORE_TEST (store_events_since_stops_at_limit),
        STORE_TEST (store_prune_keeps_newest_event),
        STORE_TEST (store_prune_keeps_recent_events),
        STORE_TEST (store_prune_rolls_back_on_failure),
        STORE_TEST (store_prune_keeps_seq_and_prev_going),
        STORE_TEST (store_last_seq_survives_reopen),
        STORE_TEST (store_integrity_check_reports_ok),
        STORE_TEST (store_open_creates_version_3_schema),
        STORE_TEST (store_migrates_version_1_file),
        STORE_TEST (store_migrates_version_2_file),
        STORE_TEST (store_failed_migration_keeps_version_2_file),
        STORE_TEST (store_reopen_keeps_version_3),
        STORE_TEST (store_tombstone_purge_searches_index),
        STORE_TEST (store_register_sets_and_clears_own_threshold),
        STORE_TEST (store_register_rejects_negative_threshold),
        STORE_TEST (store_min_stale_after_finds_smallest),
        STORE_TEST (store_apply_sweep_keeps_own_client_touched_before_it),
        STORE_TEST (store_removals_write_tombstones_when_on),
        STORE_TEST (store_removals_write_no_tombstone_when_off),
        STORE_TEST (store_apply_sweep_tombstones_only_removed_clients),
        STORE_TEST (store_tombstone_rolls_back_with_removal),
        STORE_TEST (store_register_revives_tombstoned_client),
        STORE_TEST (store_failed_revival_keeps_tombstone),
        STORE_TEST (store_list_tombstones_pages_and_filters),
        STORE_TEST (store_purge_tombstones_oldest_first),
    };
    return cmocka_run_group_tests_name ("store", tests, NULL, NULL);
}
