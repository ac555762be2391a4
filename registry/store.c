/*  store.c: the registry's SQLite store.

    Every write runs in its own BEGIN IMMEDIATE transaction, which takes
    SQLite's write lock before the first read, so what a write reads cannot
    change under it.  A write that fails rolls back before it returns, so
    no transaction stays open between calls.  Statements are prepared once
    at open and reset after every use, because a statement left unreset
    keeps its read snapshot open and blocks WAL checkpoints.
*/

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "lockfile.h"
#include "store.h"

#define STORE_ERROR_MAX 512
/*  A client row as s_read_client reads it, meta from its own table.  */
#define CLIENT_SELECT                                                         \
    "SELECT c.id, c.node, c.registered_ms, c.last_activity_ms, m.meta,"      \
    " c.stale_after_ms FROM clients AS c"                                    \
    " LEFT JOIN client_meta AS m ON m.id = c.id"
#define EVENT_COLUMNS                                                         \
    "seq, prev, id, node, reason, last_activity_ms, removed_ms, sweep"
#define TOMBSTONE_COLUMNS "id, node, reason, last_activity_ms, removed_ms, seq"

/*  Schema version 1.

    clients is an ordinary rowid table.  WITHOUT ROWID would save the
    second B-tree search of a lookup by id, but it keeps whole rows in its
    interior pages, so rows with large meta cut its fan-out.  In a quick
    measurement (100,000 clients, SQLite 3.40 through Python's sqlite3
    module, a 2-core VM) it was no faster for touch updates with empty
    meta.  With 1000 bytes of meta per client it was over twice as slow
    and three times as large.

    clients_activity lets a sweep read only stale rows, oldest first.
    clients_node is on (node, id), so listing one node's clients in id
    order is a range scan with no sort.  An index on node alone would
    order each node's entries by rowid.

    events_node serves replay filtered by node.  Pruning needs no index on
    removed_ms: it deletes a prefix in seq order (see store_prune_events).
    Event reasons are stored by name, so the file stays readable without
    the enum's numbering.  */
static const char s_schema_v1[] =
    "CREATE TABLE meta ("
    "    key TEXT PRIMARY KEY,"
    "    value INTEGER NOT NULL);"
    "INSERT INTO meta (key, value) VALUES ('last_seq', 0);"
    "CREATE TABLE clients ("
    "    id TEXT PRIMARY KEY,"
    "    node TEXT NOT NULL,"
    "    registered_ms INTEGER NOT NULL,"
    "    last_activity_ms INTEGER NOT NULL,"
    "    meta BLOB);"
    "CREATE INDEX clients_activity ON clients (last_activity_ms);"
    "CREATE INDEX clients_node ON clients (node, id);"
    "CREATE TABLE events ("
    "    seq INTEGER PRIMARY KEY,"
    "    prev INTEGER NOT NULL,"
    "    id TEXT NOT NULL,"
    "    node TEXT NOT NULL,"
    "    reason TEXT NOT NULL"
    "        CHECK (reason IN ('stale', 'deregistered', 'operator')),"
    "    last_activity_ms INTEGER NOT NULL,"
    "    removed_ms INTEGER NOT NULL,"
    "    sweep INTEGER NOT NULL);"
    "CREATE INDEX events_node ON events (node, seq);"
    "CREATE TABLE node_seq ("
    "    node TEXT PRIMARY KEY,"
    "    seq INTEGER NOT NULL);";

/*  Schema version 2: per-client thresholds and tombstones.

    A client's own threshold is stale_after_ms, NULL for clients on the
    default.  The two kinds are found stale by different tests, so each
    has a partial index that holds only its own rows.  clients_activity
    now covers the default clients only.  clients_deadline orders the
    others by the time they turn stale, last_activity_ms + stale_after_ms
    (SQLite uses an index on an expression only for a query that writes
    the same expression).  stale_after_ms is its second column so that
    the start-up grace test (stale_after_ms <= ?) reads the index entry
    and not the row.

    tombstones keeps one row per removed client while tombstones are on.
    tombstones_node serves listing one node's tombstones in id order and
    tombstones_removed lets purging read the oldest first.  */
static const char s_schema_v2[] =
    "ALTER TABLE clients ADD COLUMN stale_after_ms INTEGER"
    "    CHECK (stale_after_ms IS NULL OR stale_after_ms > 0);"
    "DROP INDEX clients_activity;"
    "CREATE INDEX clients_activity ON clients (last_activity_ms)"
    "    WHERE stale_after_ms IS NULL;"
    "CREATE INDEX clients_deadline"
    "    ON clients (last_activity_ms + stale_after_ms, stale_after_ms)"
    "    WHERE stale_after_ms IS NOT NULL;"
    "CREATE TABLE tombstones ("
    "    id TEXT PRIMARY KEY,"
    "    node TEXT NOT NULL,"
    "    reason TEXT NOT NULL"
    "        CHECK (reason IN ('stale', 'deregistered', 'operator')),"
    "    last_activity_ms INTEGER NOT NULL,"
    "    removed_ms INTEGER NOT NULL,"
    "    seq INTEGER NOT NULL);"
    "CREATE INDEX tombstones_node ON tombstones (node, id);"
    "CREATE INDEX tombstones_removed ON tombstones (removed_ms);";

/*  Schema version 3: clients clustered by id, and no activity indexes.

    The registry finds stale clients in memory, where every touch is,
    so the store no longer searches by activity, and the two activity
    indexes only cost every flush and every removal a write.  Without
    a rowid, the table itself is the id index: a removal or an activity
    write changes one tree less, and a sweep, which removes in id order,
    finds consecutive rows on the same pages.  A WITHOUT ROWID table
    keeps whole rows in its interior pages, so large rows make it slow.
    Meta (up to 1 KiB) therefore moves to client_meta, an ordinary table
    with a row only for clients that have meta.  Measured with SQLite
    3.40 on 200,000 clients with random ids, removals in id order ran
    2.4 times as fast with the rows clustered.  With 1000 bytes of meta
    kept in the row, they ran slower than before and the file grew
    threefold.  SQLite cannot change a table to WITHOUT ROWID in place,
    so it is copied.  */
static const char s_schema_v3[] =
    "CREATE TABLE clients_v3 ("
    "    id TEXT PRIMARY KEY,"
    "    node TEXT NOT NULL,"
    "    registered_ms INTEGER NOT NULL,"
    "    last_activity_ms INTEGER NOT NULL,"
    "    stale_after_ms INTEGER"
    "        CHECK (stale_after_ms IS NULL OR stale_after_ms > 0))"
    "    WITHOUT ROWID;"
    "CREATE TABLE client_meta ("
    "    id TEXT PRIMARY KEY,"
    "    meta BLOB NOT NULL);"
    "INSERT INTO clients_v3"
    "    (id, node, registered_ms, last_activity_ms, stale_after_ms)"
    "    SELECT id, node, registered_ms, last_activity_ms, stale_after_ms"
    "    FROM clients;"
    "INSERT INTO client_meta (id, meta)"
    "    SELECT id, meta FROM clients WHERE length (meta) > 0;"
    "DROP TABLE clients;"
    "ALTER TABLE clients_v3 RENAME TO clients;"
    "CREATE INDEX clients_node ON clients (node, id);";

/*  Schema steps, in version order.  Each script turns a file of the
    previous version into one of its own version.  s_migrate runs the
    steps newer than the file in one transaction and records the version
    after each.  A new version adds its script here and raises
    STORE_SCHEMA_VERSION.  */
static const struct {
    int version;
    const char *sql;
} s_migrations[] = {
    {1, s_schema_v1},
    {2, s_schema_v2},
    {3, s_schema_v3},
};

/*  Reason names as stored, indexed by msg_reason_t.  */
static const char *const s_reason_names[MSG_REASON_COUNT] = {
    [MSG_REASON_STALE] = "stale",
    [MSG_REASON_DEREGISTERED] = "deregistered",
    [MSG_REASON_OPERATOR] = "operator",
};

typedef enum {
    STMT_BEGIN,
    STMT_COMMIT,
    STMT_ROLLBACK,
    STMT_META_GET,
    STMT_META_SET,
    STMT_CLIENT_UPDATE,
    STMT_CLIENT_INSERT,
    STMT_CLIENT_META_SET,
    STMT_CLIENT_META_DELETE,
    STMT_CLIENT_RAISE,
    STMT_CLIENT_GET,
    STMT_CLIENT_LIST,
    STMT_CLIENT_LIST_NODE,
    STMT_CLIENT_EACH,
    STMT_CLIENT_COUNT,
    STMT_CLIENT_DELETE,
    STMT_CLIENT_DELETE_UNTOUCHED,
    STMT_CLIENT_MIN_STALE_AFTER,
    STMT_TOMBSTONE_SET,
    STMT_TOMBSTONE_GET,
    STMT_TOMBSTONE_DELETE,
    STMT_TOMBSTONE_LIST,
    STMT_TOMBSTONE_LIST_NODE,
    STMT_TOMBSTONE_PURGE,
    STMT_NODE_SEQ_GET,
    STMT_NODE_SEQ_SET,
    STMT_EVENT_INSERT,
    STMT_EVENTS_SINCE,
    STMT_EVENTS_SINCE_NODE,
    STMT_EVENT_FIRST,
    STMT_EVENT_PRUNABLE,
    STMT_EVENT_DELETE_THROUGH,
    STMT_INTEGRITY_CHECK,
    STMT_COUNT
} stmt_id_t;

static const char *const s_sql[STMT_COUNT] = {
    [STMT_BEGIN] = "BEGIN IMMEDIATE",
    [STMT_COMMIT] = "COMMIT",
    [STMT_ROLLBACK] = "ROLLBACK",
    [STMT_META_GET] = "SELECT value FROM meta WHERE key = ?1",
    [STMT_META_SET] = "INSERT INTO meta (key, value) VALUES (?1, ?2)"
                      " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
    [STMT_CLIENT_UPDATE] =
        "UPDATE clients SET node = ?2, stale_after_ms = ?4,"
        " last_activity_ms = max(last_activity_ms, ?3) WHERE id = ?1",
    [STMT_CLIENT_INSERT] =
        "INSERT INTO clients"
        " (id, node, registered_ms, last_activity_ms, stale_after_ms)"
        " VALUES (?1, ?2, ?3, ?3, ?4)",
    [STMT_CLIENT_META_SET] = "INSERT INTO client_meta (id, meta)"
                             " VALUES (?1, ?2) ON CONFLICT (id)"
                             " DO UPDATE SET meta = excluded.meta",
    [STMT_CLIENT_META_DELETE] = "DELETE FROM client_meta WHERE id = ?1",
    /*  Same effect as SET last_activity_ms = max(last_activity_ms, ?2),
        but a row that would not change is not written at all.  */
    [STMT_CLIENT_RAISE] = "UPDATE clients SET last_activity_ms = ?2"
                          " WHERE id = ?1 AND last_activity_ms < ?2",
    [STMT_CLIENT_GET] = CLIENT_SELECT " WHERE c.id = ?1",
    [STMT_CLIENT_LIST] = CLIENT_SELECT " WHERE c.id > ?1 ORDER BY c.id"
                                       " LIMIT ?2",
    [STMT_CLIENT_LIST_NODE] = CLIENT_SELECT " WHERE c.node = ?1"
                                            " AND c.id > ?2"
                                            " ORDER BY c.id LIMIT ?3",
    /*  For loading the registry's memory, which keeps no meta.  */
    [STMT_CLIENT_EACH] = "SELECT id, node, registered_ms, last_activity_ms,"
                         " NULL, stale_after_ms FROM clients",
    [STMT_CLIENT_COUNT] = "SELECT count(*) FROM clients",
    [STMT_CLIENT_DELETE] = "DELETE FROM clients WHERE id = ?1",
    /*  A sweep decided on the activity it saw, and a registration
        since then raised the row past it and keeps it.  The sweep has
        only the client's id, so the node comes back for its event.  */
    [STMT_CLIENT_DELETE_UNTOUCHED] =
        "DELETE FROM clients WHERE id = ?1 AND last_activity_ms <= ?2"
        " RETURNING node",
    [STMT_CLIENT_MIN_STALE_AFTER] =
        "SELECT min(stale_after_ms) FROM clients"
        " WHERE stale_after_ms IS NOT NULL",
    [STMT_TOMBSTONE_SET] = "INSERT OR REPLACE INTO tombstones"
                           " (" TOMBSTONE_COLUMNS ")"
                           " VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    [STMT_TOMBSTONE_GET] = "SELECT " TOMBSTONE_COLUMNS " FROM tombstones"
                           " WHERE id = ?1",
    [STMT_TOMBSTONE_DELETE] = "DELETE FROM tombstones WHERE id = ?1",
    [STMT_TOMBSTONE_LIST] = "SELECT " TOMBSTONE_COLUMNS " FROM tombstones"
                            " WHERE id > ?1 ORDER BY id LIMIT ?2",
    [STMT_TOMBSTONE_LIST_NODE] = "SELECT " TOMBSTONE_COLUMNS
                                 " FROM tombstones"
                                 " WHERE node = ?1 AND id > ?2"
                                 " ORDER BY id LIMIT ?3",
    [STMT_TOMBSTONE_PURGE] = "DELETE FROM tombstones WHERE id IN"
                             " (SELECT id FROM tombstones"
                             " WHERE removed_ms < ?1"
                             " ORDER BY removed_ms LIMIT ?2)",
    [STMT_NODE_SEQ_GET] = "SELECT seq FROM node_seq WHERE node = ?1",
    [STMT_NODE_SEQ_SET] = "INSERT INTO node_seq (node, seq) VALUES (?1, ?2)"
                          " ON CONFLICT (node)"
                          " DO UPDATE SET seq = excluded.seq",
    [STMT_EVENT_INSERT] = "INSERT INTO events (" EVENT_COLUMNS ")"
                          " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    [STMT_EVENTS_SINCE] = "SELECT " EVENT_COLUMNS " FROM events"
                          " WHERE seq > ?1 ORDER BY seq LIMIT ?2",
    [STMT_EVENTS_SINCE_NODE] = "SELECT " EVENT_COLUMNS " FROM events"
                               " WHERE node = ?1 AND seq > ?2"
                               " ORDER BY seq LIMIT ?3",
    [STMT_EVENT_FIRST] = "SELECT min(seq) FROM events",
    [STMT_EVENT_PRUNABLE] = "SELECT seq, removed_ms FROM events"
                            " WHERE seq < (SELECT max(seq) FROM events)"
                            " ORDER BY seq LIMIT ?1",
    [STMT_EVENT_DELETE_THROUGH] = "DELETE FROM events WHERE seq <= ?1",
    [STMT_INTEGRITY_CHECK] = "PRAGMA integrity_check",
};

struct store_t {
    sqlite3 *db;
    sqlite3_stmt *stmt[STMT_COUNT];
    char *path;
    char *lock_path;
    int lock_fd;
    int file_fd;                /* the database file, for its identity */
    bool locked;                /* holds the lock, listed in s_open_stores */
    pid_t owner;                /* process that took the lock */
    dev_t lock_dev;
    ino_t lock_ino;
    store_t *next_open;
    bool tombstones;            /* removals write tombstones */
    int bind_rc;                /* first failed bind since the last step */
    int code;                   /* SQLite result code of the last failure */
    int busy_timeout_ms;
    char error[STORE_ERROR_MAX];
};

/*  Stores open in this process.  POSIX record locks do not conflict
    within one process.  Closing any descriptor of the lock file drops all
    of the process's locks on it, so a second open of the same store in
    this process must be caught here, before it opens the lock file.  */
static store_t *s_open_stores;
static pthread_mutex_t s_open_mutex = PTHREAD_MUTEX_INITIALIZER;

static void
s_failf (store_t *self, const char *format, ...)
    __attribute__ ((format (printf, 2, 3)));

static void
s_failf (store_t *self, const char *format, ...)
{
    va_list args;
    va_start (args, format);
    vsnprintf (self->error, sizeof self->error, format, args);
    va_end (args);
    self->code = SQLITE_ERROR;
}

/*  Records an SQLite failure of operation op, with the connection's
    message, which must be read before any other call on the connection
    replaces it.  */
static void
s_fail (store_t *self, const char *op, int rc)
{
    const char *message = self->db ? sqlite3_errmsg (self->db)
                                   : sqlite3_errstr (rc);
    snprintf (self->error, sizeof self->error, "%s: %s", op, message);
    self->code = rc;
}

static void
s_bind_check (store_t *self, int rc)
{
    if (rc != SQLITE_OK && self->bind_rc == SQLITE_OK)
        self->bind_rc = rc;
}

/*  The bind helpers record a failure for s_step to report, so a caller
    binds all parameters and checks once.  Text and blobs are bound
    SQLITE_STATIC because every statement is reset before its caller
    returns.  */
static void
s_bind_text (store_t *self, sqlite3_stmt *stmt, int index, const char *text)
{
    s_bind_check (self,
                  sqlite3_bind_text (stmt, index, text, -1, SQLITE_STATIC));
}

static void
s_bind_int64 (store_t *self, sqlite3_stmt *stmt, int index, int64_t value)
{
    s_bind_check (self, sqlite3_bind_int64 (stmt, index, value));
}

static void
s_bind_blob (store_t *self, sqlite3_stmt *stmt, int index, const void *data,
             size_t size)
{
    if (size == 0)
        s_bind_check (self, sqlite3_bind_null (stmt, index));
    else
        s_bind_check (self, sqlite3_bind_blob (stmt, index, data, (int) size,
                                               SQLITE_STATIC));
}

/*  Binds an own threshold: NULL for 0, the default.  */
static void
s_bind_threshold (store_t *self, sqlite3_stmt *stmt, int index,
                  int64_t stale_after_ms)
{
    if (stale_after_ms == 0)
        s_bind_check (self, sqlite3_bind_null (stmt, index));
    else
        s_bind_int64 (self, stmt, index, stale_after_ms);
}

static void
s_reset (sqlite3_stmt *stmt)
{
    sqlite3_reset (stmt);
    sqlite3_clear_bindings (stmt);
}

/*  Steps stmt once.  Returns SQLITE_ROW or SQLITE_DONE, or records the
    failure of op and returns SQLite's error code.  */
static int
s_step (store_t *self, sqlite3_stmt *stmt, const char *op)
{
    if (self->bind_rc != SQLITE_OK) {
        int rc = self->bind_rc;
        self->bind_rc = SQLITE_OK;
        snprintf (self->error, sizeof self->error, "%s: bind: %s", op,
                  sqlite3_errstr (rc));
        self->code = rc;
        return rc;
    }
    int rc = sqlite3_step (stmt);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        s_fail (self, op, rc);
    return rc;
}

/*  Runs a statement that returns no rows and resets it.  */
static int
s_exec (store_t *self, stmt_id_t id, const char *op)
{
    sqlite3_stmt *stmt = self->stmt[id];
    int rc = s_step (self, stmt, op);
    s_reset (stmt);
    return rc == SQLITE_DONE ? 0 : -1;
}

/*  Runs a statement that returns one integer (NULL reads as 0).  */
static int
s_query_int64 (store_t *self, stmt_id_t id, const char *op, int64_t *value)
{
    sqlite3_stmt *stmt = self->stmt[id];
    int rc = s_step (self, stmt, op);
    *value = rc == SQLITE_ROW ? sqlite3_column_int64 (stmt, 0) : 0;
    s_reset (stmt);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : -1;
}

static int
s_begin (store_t *self, const char *op)
{
    return s_exec (self, STMT_BEGIN, op);
}

static int
s_commit (store_t *self, const char *op)
{
    return s_exec (self, STMT_COMMIT, op);
}

/*  Rolls back the open transaction, if any, keeping the error of the
    failure that led here.  A failed COMMIT may already have rolled back,
    which sqlite3_get_autocommit reports.  */
static void
s_rollback (store_t *self)
{
    if (sqlite3_get_autocommit (self->db))
        return;

    sqlite3_stmt *stmt = self->stmt[STMT_ROLLBACK];
    int rc = sqlite3_step (stmt);
    sqlite3_reset (stmt);
    if (rc != SQLITE_DONE) {
        size_t used = strlen (self->error);
        snprintf (self->error + used, sizeof self->error - used,
                  "; rollback failed: %s", sqlite3_errstr (rc));
    }
}

/*  Copies a text column into buffer, failing when it does not fit.  */
static int
s_column_text (store_t *self, sqlite3_stmt *stmt, int column, char *buffer,
               size_t size, const char *op)
{
    const unsigned char *text = sqlite3_column_text (stmt, column);
    size_t bytes = (size_t) sqlite3_column_bytes (stmt, column);
    if (!text || bytes >= size) {
        s_failf (self, "%s: stored %s is %zu bytes, expected 1 to %zu", op,
                 sqlite3_column_name (stmt, column), bytes, size - 1);
        return -1;
    }
    memcpy (buffer, text, bytes);
    buffer[bytes] = '\0';
    return 0;
}

/*  Reads a row of CLIENT_SELECT.  */
static int
s_read_client (store_t *self, sqlite3_stmt *stmt, const char *op,
               store_client_t *client)
{
    if (s_column_text (self, stmt, 0, client->id, sizeof client->id, op)
        || s_column_text (self, stmt, 1, client->node, sizeof client->node,
                          op))
        return -1;
    client->registered_ms = sqlite3_column_int64 (stmt, 2);
    client->last_activity_ms = sqlite3_column_int64 (stmt, 3);

    const void *meta = sqlite3_column_blob (stmt, 4);
    size_t meta_len = (size_t) sqlite3_column_bytes (stmt, 4);
    if (meta_len > sizeof client->meta) {
        s_failf (self, "%s: stored meta of client \"%s\" is %zu bytes,"
                 " expected at most %zu", op, client->id, meta_len,
                 sizeof client->meta);
        return -1;
    }
    if (meta_len > 0)
        memcpy (client->meta, meta, meta_len);
    client->meta_len = meta_len;

    //  NULL reads as 0, the default threshold
    client->stale_after_ms = sqlite3_column_int64 (stmt, 5);
    return 0;
}

static int
s_reason_parse (const char *name, msg_reason_t *reason)
{
    for (int i = 0; i < MSG_REASON_COUNT; i++) {
        if (strcmp (name, s_reason_names[i]) == 0) {
            *reason = (msg_reason_t) i;
            return 0;
        }
    }
    return -1;
}

/*  Reads a row of EVENT_COLUMNS.  */
static int
s_read_event (store_t *self, sqlite3_stmt *stmt, const char *op,
              store_event_t *event)
{
    char reason[16];
    event->seq = (uint64_t) sqlite3_column_int64 (stmt, 0);
    event->prev = (uint64_t) sqlite3_column_int64 (stmt, 1);
    if (s_column_text (self, stmt, 2, event->id, sizeof event->id, op)
        || s_column_text (self, stmt, 3, event->node, sizeof event->node, op)
        || s_column_text (self, stmt, 4, reason, sizeof reason, op))
        return -1;
    if (s_reason_parse (reason, &event->reason) == -1) {
        s_failf (self, "%s: event %" PRIu64 " has reason \"%s\", expected"
                 " stale, deregistered or operator", op, event->seq, reason);
        return -1;
    }
    event->last_activity_ms = sqlite3_column_int64 (stmt, 5);
    event->removed_ms = sqlite3_column_int64 (stmt, 6);
    event->sweep = (uint64_t) sqlite3_column_int64 (stmt, 7);
    return 0;
}

/*  Reads a row of TOMBSTONE_COLUMNS.  */
static int
s_read_tombstone (store_t *self, sqlite3_stmt *stmt, const char *op,
                  store_tombstone_t *tombstone)
{
    char reason[16];
    if (s_column_text (self, stmt, 0, tombstone->id, sizeof tombstone->id,
                       op)
        || s_column_text (self, stmt, 1, tombstone->node,
                          sizeof tombstone->node, op)
        || s_column_text (self, stmt, 2, reason, sizeof reason, op))
        return -1;
    if (s_reason_parse (reason, &tombstone->reason) == -1) {
        s_failf (self, "%s: tombstone of \"%s\" has reason \"%s\","
                 " expected stale, deregistered or operator", op,
                 tombstone->id, reason);
        return -1;
    }
    tombstone->last_activity_ms = sqlite3_column_int64 (stmt, 3);
    tombstone->removed_ms = sqlite3_column_int64 (stmt, 4);
    tombstone->seq = (uint64_t) sqlite3_column_int64 (stmt, 5);
    return 0;
}

/*  Steps a bound client query and calls fn on each row.  Returns 0, -1,
    or fn's non-zero value.  Resets the statement either way.  */
static int
s_each_client_row (store_t *self, sqlite3_stmt *stmt, const char *op,
                   store_client_fn *fn, void *arg)
{
    store_client_t client;
    int result = 0;
    int rc;
    while ((rc = s_step (self, stmt, op)) == SQLITE_ROW) {
        if (s_read_client (self, stmt, op, &client) == -1) {
            result = -1;
            break;
        }
        result = fn (&client, arg);
        if (result != 0)
            break;
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        result = -1;
    s_reset (stmt);
    return result;
}

static int
s_meta_get (store_t *self, const char *key, const char *op, int64_t *value)
{
    sqlite3_stmt *stmt = self->stmt[STMT_META_GET];
    s_bind_text (self, stmt, 1, key);
    int rc = s_step (self, stmt, op);
    if (rc == SQLITE_ROW)
        *value = sqlite3_column_int64 (stmt, 0);
    s_reset (stmt);
    if (rc == SQLITE_DONE)
        s_failf (self, "%s: meta has no \"%s\" row", op, key);
    return rc == SQLITE_ROW ? 0 : -1;
}

static int
s_meta_set (store_t *self, const char *key, int64_t value, const char *op)
{
    sqlite3_stmt *stmt = self->stmt[STMT_META_SET];
    s_bind_text (self, stmt, 1, key);
    s_bind_int64 (self, stmt, 2, value);
    return s_exec (self, STMT_META_SET, op);
}

/*  The newest event seq of each node a batch of removals touched, kept
    in memory for the batch and written to node_seq once at its end.  A
    sweep batch removes many clients of few nodes, and reading and
    writing node_seq for each removal took two of its four statements.
    An open-addressing table with room for twice the batch.  */
typedef struct {
    const char *node;           /* NULL marks an empty slot */
    uint64_t seq;
} s_node_seq_t;

typedef struct {
    s_node_seq_t *slots;
    size_t mask;
} s_node_seqs_t;

static uint64_t
s_node_hash (const char *node)
{
    uint64_t hash = 14695981039346656037ULL;    /* FNV-1a */
    for (const unsigned char *c = (const unsigned char *) node; *c; c++)
        hash = (hash ^ *c) * 1099511628211ULL;
    return hash;
}

static int
s_node_seqs_init (store_t *self, s_node_seqs_t *seqs, uint32_t removals)
{
    size_t size = 4;
    while (size < (size_t) removals * 2)
        size *= 2;
    seqs->slots = calloc (size, sizeof *seqs->slots);
    seqs->mask = size - 1;
    if (!seqs->slots) {
        s_failf (self, "evict batch: out of memory for %u removals",
                 removals);
        return -1;
    }
    return 0;
}

/*  Returns the slot of node, empty when the batch has not seen it.  */
static s_node_seq_t *
s_node_seqs_find (s_node_seqs_t *seqs, const char *node)
{
    for (size_t slot = s_node_hash (node) & seqs->mask;;
         slot = (slot + 1) & seqs->mask) {
        s_node_seq_t *entry = &seqs->slots[slot];
        if (!entry->node || strcmp (entry->node, node) == 0)
            return entry;
    }
}

static int
s_node_seq_write (store_t *self, const char *node, uint64_t seq,
                  const char *op)
{
    sqlite3_stmt *stmt = self->stmt[STMT_NODE_SEQ_SET];
    s_bind_text (self, stmt, 1, node);
    s_bind_int64 (self, stmt, 2, (int64_t) seq);
    return s_exec (self, STMT_NODE_SEQ_SET, op);
}

/*  Writes every node's newest seq and frees the table.  */
static int
s_node_seqs_flush (store_t *self, s_node_seqs_t *seqs, const char *op)
{
    int rc = 0;
    for (size_t slot = 0; slot <= seqs->mask && rc == 0; slot++)
        if (seqs->slots[slot].node)
            rc = s_node_seq_write (self, seqs->slots[slot].node,
                                   seqs->slots[slot].seq, op);
    free (seqs->slots);
    seqs->slots = NULL;
    return rc;
}

/*  Writes the event row for one removal, with prev the node's previous
    seq, and the client's tombstone when tombstones are on.  With seqs,
    the node's newest seq is read from and recorded in that table, which
    the caller writes to node_seq at the end.  Without, node_seq is read
    and written directly.  The caller fills every field but prev and has
    chosen seq.  seqs keeps a pointer to event->node, which must outlive
    it.  */
static int
s_append_event (store_t *self, store_event_t *event, s_node_seqs_t *seqs,
                const char *op)
{
    s_node_seq_t *known = seqs ? s_node_seqs_find (seqs, event->node) : NULL;
    if (known && known->node)
        event->prev = known->seq;
    else {
        sqlite3_stmt *stmt = self->stmt[STMT_NODE_SEQ_GET];
        s_bind_text (self, stmt, 1, event->node);
        int64_t prev;
        if (s_query_int64 (self, STMT_NODE_SEQ_GET, op, &prev) == -1)
            return -1;
        event->prev = (uint64_t) prev;
    }

    sqlite3_stmt *stmt = self->stmt[STMT_EVENT_INSERT];
    s_bind_int64 (self, stmt, 1, (int64_t) event->seq);
    s_bind_int64 (self, stmt, 2, (int64_t) event->prev);
    s_bind_text (self, stmt, 3, event->id);
    s_bind_text (self, stmt, 4, event->node);
    s_bind_text (self, stmt, 5, s_reason_names[event->reason]);
    s_bind_int64 (self, stmt, 6, event->last_activity_ms);
    s_bind_int64 (self, stmt, 7, event->removed_ms);
    s_bind_int64 (self, stmt, 8, (int64_t) event->sweep);
    if (s_exec (self, STMT_EVENT_INSERT, op) == -1)
        return -1;

    if (known) {
        known->node = event->node;
        known->seq = event->seq;
    }
    else if (s_node_seq_write (self, event->node, event->seq, op) == -1)
        return -1;
    if (!self->tombstones)
        return 0;

    //  Written with the event, so a removal never has one without the
    //  other.  A tombstone left from an earlier removal is replaced.
    stmt = self->stmt[STMT_TOMBSTONE_SET];
    s_bind_text (self, stmt, 1, event->id);
    s_bind_text (self, stmt, 2, event->node);
    s_bind_text (self, stmt, 3, s_reason_names[event->reason]);
    s_bind_int64 (self, stmt, 4, event->last_activity_ms);
    s_bind_int64 (self, stmt, 5, event->removed_ms);
    s_bind_int64 (self, stmt, 6, (int64_t) event->seq);
    return s_exec (self, STMT_TOMBSTONE_SET, op);
}

/*  ------------------------------------------------------------------
    Opening: lock, connection, schema, statements.  */

static store_t *
s_open_store_find (dev_t dev, ino_t ino)
{
    for (store_t *store = s_open_stores; store; store = store->next_open) {
        /*  A child process inherits the list but not the locks.  */
        if (store->owner == getpid () && store->lock_dev == dev
            && store->lock_ino == ino)
            return store;
    }
    return NULL;
}

static void
s_open_store_remove (store_t *self)
{
    for (store_t **link = &s_open_stores; *link;
         link = &(*link)->next_open) {
        if (*link == self) {
            *link = self->next_open;
            return;
        }
    }
}

static void
s_fail_in_use (store_t *self, long pid)
{
    if (pid > 0)
        s_failf (self, "store %s is in use by process %ld (lock %s); stop"
                 " that registry or point --store at another file",
                 self->path, pid, self->lock_path);
    else
        s_failf (self, "store %s is in use by another process (lock %s);"
                 " stop that registry or point --store at another file",
                 self->path, self->lock_path);
}

static int
s_lock_open (store_t *self)
{
    struct stat status;
    if (stat (self->lock_path, &status) == 0) {
        store_t *holder = s_open_store_find (status.st_dev, status.st_ino);
        if (holder) {
            s_fail_in_use (self, (long) holder->owner);
            return -1;
        }
    }

    pid_t other = 0;
    self->lock_fd = lockfile_acquire (self->lock_path, &other);
    if (self->lock_fd == -1 && errno == EAGAIN) {
        s_fail_in_use (self, (long) other);
        return -1;
    }
    if (self->lock_fd == -1) {
        s_failf (self, "lock %s: %s", self->lock_path, strerror (errno));
        return -1;
    }
    if (fstat (self->lock_fd, &status) == -1) {
        s_failf (self, "stat lock file %s: %s", self->lock_path,
                 strerror (errno));
        return -1;
    }

    self->locked = true;
    self->owner = getpid ();
    self->lock_dev = status.st_dev;
    self->lock_ino = status.st_ino;
    self->next_open = s_open_stores;
    s_open_stores = self;
    return 0;
}

static int
s_lock (store_t *self)
{
    pthread_mutex_lock (&s_open_mutex);
    int rc = s_lock_open (self);
    pthread_mutex_unlock (&s_open_mutex);
    return rc;
}

/*  The page caches, in KiB (a negative cache_size is in KiB).  The
    writing connection keeps the pages a sweep or a flush walks again
    soon.  The reading one serves point reads, for which SQLite's default
    of about 2 MiB is enough.  Each connection has its own cache, and
    both count in the registry's memory.  */
#define STORE_WRITE_CACHE_KIB 16384
#define STORE_READ_CACHE_KIB 2048

/*  A byte of the database file that SQLite never locks: its own locks
    lie in the 512 bytes from 0x40000000.  */
#define FILE_LOCK_OFFSET 0x50000000

/*  Takes an open-file-description lock on the database file itself.
    The lock on "<path>.lock" names the holder but follows the path, so
    a symlink or hard link to a store in use would pass it; this lock
    follows the file.  Unlike a POSIX lock, an OFD lock conflicts with
    another description in the same process and is not dropped when some
    other descriptor of the file is closed, so SQLite's own descriptors
    cannot release it.  */
static int
s_lock_file (store_t *self)
{
    self->file_fd = open (self->path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (self->file_fd == -1) {
        s_failf (self, "open %s: %s", self->path, strerror (errno));
        return -1;
    }

    struct flock lock = { .l_type = F_WRLCK, .l_whence = SEEK_SET,
                          .l_start = FILE_LOCK_OFFSET, .l_len = 1 };
    if (fcntl (self->file_fd, F_OFD_SETLK, &lock) == 0)
        return 0;

    if (errno == EAGAIN || errno == EACCES)
        s_failf (self, "store %s is in use by another registry that opened "
                 "the same file through another path (a symlink or hard "
                 "link); stop that registry", self->path);
    else
        s_failf (self, "lock %s: %s", self->path, strerror (errno));
    return -1;
}

static int
s_check_writable (store_t *self)
{
    if (sqlite3_db_readonly (self->db, "main") != 1)
        return 0;

    s_failf (self, "store %s can only be opened read-only; the registry "
             "must write it, so check the permissions of the file and its "
             "folder", self->path);
    return -1;
}

static int
s_set_wal (store_t *self)
{
    sqlite3_stmt *stmt;
    int rc = sqlite3_prepare_v2 (self->db, "PRAGMA journal_mode=WAL", -1,
                                 &stmt, NULL);
    if (rc != SQLITE_OK) {
        s_fail (self, "set WAL mode", rc);
        return -1;
    }
    rc = sqlite3_step (stmt);
    if (rc != SQLITE_ROW) {
        s_fail (self, "set WAL mode", rc);
        sqlite3_finalize (stmt);
        return -1;
    }
    const char *mode = (const char *) sqlite3_column_text (stmt, 0);
    int is_wal = mode && strcasecmp (mode, "wal") == 0;
    if (!is_wal)
        s_failf (self, "set WAL mode: SQLite kept journal mode %s",
                 mode ? mode : "(none)");
    sqlite3_finalize (stmt);
    return is_wal ? 0 : -1;
}

static int
s_connect (store_t *self, int busy_timeout_ms, int cache_kib)
{
    //  One thread uses the connection, so SQLite's own per-call mutex
    //  is pure cost (it showed as about 7 % of a sweep's CPU time)
    int rc = sqlite3_open_v2 (self->path, &self->db,
                              SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE
                                  | SQLITE_OPEN_NOMUTEX,
                              NULL);
    if (rc != SQLITE_OK) {
        s_fail (self, "open database", rc);
        return -1;
    }
    sqlite3_extended_result_codes (self->db, 1);
    sqlite3_busy_timeout (self->db, busy_timeout_ms);
    self->busy_timeout_ms = busy_timeout_ms;
    if (s_check_writable (self) == -1)
        return -1;

    if (s_set_wal (self) == -1)
        return -1;
    rc = sqlite3_exec (self->db, "PRAGMA synchronous=NORMAL", NULL, NULL,
                       NULL);
    if (rc != SQLITE_OK) {
        s_fail (self, "set synchronous=NORMAL", rc);
        return -1;
    }

    char pragma[64];
    snprintf (pragma, sizeof pragma, "PRAGMA cache_size=-%d", cache_kib);
    rc = sqlite3_exec (self->db, pragma, NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        s_fail (self, "set cache_size", rc);
        return -1;
    }
    return 0;
}

/*  Runs a one-off query returning one integer, before the statements are
    prepared.  Sets *found to whether it returned a row.  */
static int
s_query_once (store_t *self, const char *sql, const char *op, int64_t *value,
              bool *found)
{
    sqlite3_stmt *stmt;
    int rc = sqlite3_prepare_v2 (self->db, sql, -1, &stmt, NULL);
    if (rc != SQLITE_OK) {
        s_fail (self, op, rc);
        return -1;
    }
    rc = sqlite3_step (stmt);
    *found = rc == SQLITE_ROW;
    *value = *found ? sqlite3_column_int64 (stmt, 0) : 0;
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        s_fail (self, op, rc);
    sqlite3_finalize (stmt);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : -1;
}

/*  Reads the file's schema version: 0 for a file with no tables.  A file
    that has tables but no meta table belongs to something else and is
    rejected rather than written into.  */
static int
s_schema_version (store_t *self, int64_t *version)
{
    const char *op = "read schema version";
    int64_t count;
    bool found;
    if (s_query_once (self, "SELECT count(*) FROM sqlite_master"
                      " WHERE type = 'table' AND name = 'meta'",
                      op, &count, &found) == -1)
        return -1;
    if (count == 0) {
        if (s_query_once (self, "SELECT count(*) FROM sqlite_master"
                          " WHERE type = 'table'", op, &count, &found) == -1)
            return -1;
        if (count > 0) {
            s_failf (self, "%s: the file has %" PRId64 " tables but no meta"
                     " table, so it is not a Lapse store", op, count);
            return -1;
        }
        *version = 0;
        return 0;
    }
    if (s_query_once (self, "SELECT value FROM meta"
                      " WHERE key = 'schema_version'", op, version,
                      &found) == -1)
        return -1;
    if (!found) {
        s_failf (self, "%s: the meta table has no schema_version row", op);
        return -1;
    }
    return 0;
}

/*  Brings the file to STORE_SCHEMA_VERSION, from inside a transaction.  */
static int
s_migrate_steps (store_t *self)
{
    int64_t version;
    if (s_schema_version (self, &version) == -1)
        return -1;
    if (version > STORE_SCHEMA_VERSION) {
        s_failf (self, "the file has schema version %" PRId64 ", newer than"
                 " version %d, the newest this build supports; run a newer"
                 " lapse-registry", version, STORE_SCHEMA_VERSION);
        return -1;
    }

    size_t steps = sizeof s_migrations / sizeof s_migrations[0];
    for (size_t i = 0; i < steps; i++) {
        if (s_migrations[i].version <= version)
            continue;
        int rc = sqlite3_exec (self->db, s_migrations[i].sql, NULL, NULL,
                               NULL);
        if (rc != SQLITE_OK) {
            s_fail (self, "create schema", rc);
            return -1;
        }
        char sql[128];
        snprintf (sql, sizeof sql, "INSERT INTO meta (key, value)"
                  " VALUES ('schema_version', %d) ON CONFLICT (key)"
                  " DO UPDATE SET value = excluded.value",
                  s_migrations[i].version);
        rc = sqlite3_exec (self->db, sql, NULL, NULL, NULL);
        if (rc != SQLITE_OK) {
            s_fail (self, "record schema version", rc);
            return -1;
        }
    }
    return 0;
}

static int
s_migrate (store_t *self)
{
    int rc = sqlite3_exec (self->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        s_fail (self, "begin schema check", rc);
        return -1;
    }
    if (s_migrate_steps (self) == -1) {
        sqlite3_exec (self->db, "ROLLBACK", NULL, NULL, NULL);
        return -1;
    }
    rc = sqlite3_exec (self->db, "COMMIT", NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        s_fail (self, "commit schema", rc);
        sqlite3_exec (self->db, "ROLLBACK", NULL, NULL, NULL);
        return -1;
    }
    return 0;
}

static int
s_prepare (store_t *self)
{
    for (int i = 0; i < STMT_COUNT; i++) {
        int rc = sqlite3_prepare_v3 (self->db, s_sql[i], -1,
                                     SQLITE_PREPARE_PERSISTENT,
                                     &self->stmt[i], NULL);
        if (rc != SQLITE_OK) {
            s_fail (self, s_sql[i], rc);
            return -1;
        }
    }
    return 0;
}

static char *
s_strdup_suffix (const char *text, const char *suffix)
{
    size_t size = strlen (text) + strlen (suffix) + 1;
    char *copy = malloc (size);
    if (copy)
        snprintf (copy, size, "%s%s", text, suffix);
    return copy;
}

/*  SQLite counts every allocation under a global mutex, for statistics
    the store never reads.  In a profile of a sweep, mutex lock and
    unlock took about 8 % of the CPU time with the counting on, and
    about 1 % with it off.  The setting takes effect only before SQLite
    initializes, so a process that used SQLite first (a test's
    fault-injecting VFS) keeps the default, which is harmless.  */
static void
s_configure_sqlite (void)
{
    int rc = sqlite3_config (SQLITE_CONFIG_MEMSTATUS, 0);
    (void) rc;
}

static pthread_once_t s_configure_once = PTHREAD_ONCE_INIT;

store_t *
store_open (const char *path, int busy_timeout_ms, char *error,
            size_t error_size)
{
    assert (path);
    assert (error && error_size > 0);
    pthread_once (&s_configure_once, s_configure_sqlite);
    store_t *self = calloc (1, sizeof *self);
    if (!self) {
        snprintf (error, error_size, "open store %s: out of memory", path);
        return NULL;
    }
    self->lock_fd = -1;
    self->file_fd = -1;
    self->path = s_strdup_suffix (path, "");
    self->lock_path = s_strdup_suffix (path, ".lock");
    if (!self->path || !self->lock_path) {
        snprintf (error, error_size, "open store %s: out of memory", path);
        goto failed;
    }
    if (busy_timeout_ms < 0) {
        snprintf (error, error_size, "open store %s: busy timeout is %d ms,"
                  " expected 0 or more", path, busy_timeout_ms);
        goto failed;
    }

    /*  Lock before touching the database, so a second registry leaves the
        file alone.  */
    if (s_lock (self) == -1 || s_lock_file (self) == -1
        || s_connect (self, busy_timeout_ms, STORE_READ_CACHE_KIB) == -1
        || s_migrate (self) == -1 || s_prepare (self) == -1) {
        if (self->locked)
            snprintf (error, error_size, "open store %s: %s", path,
                      self->error);
        else
            snprintf (error, error_size, "%s", self->error);
        goto failed;
    }
    self->error[0] = '\0';
    self->code = SQLITE_OK;
    return self;

failed:
    store_destroy (&self);
    return NULL;
}

store_t *
store_open_peer (store_t *primary, char *error, size_t error_size)
{
    assert (primary);
    assert (error && error_size > 0);
    store_t *self = calloc (1, sizeof *self);
    if (!self) {
        snprintf (error, error_size, "open store %s: out of memory",
                  primary->path);
        return NULL;
    }
    self->lock_fd = -1;
    self->file_fd = -1;
    self->path = s_strdup_suffix (primary->path, "");
    self->lock_path = s_strdup_suffix (primary->lock_path, "");
    if (!self->path || !self->lock_path) {
        snprintf (error, error_size, "open store %s: out of memory",
                  primary->path);
        goto failed;
    }

    //  The primary holds the lock and brought the schema up to date, so
    //  the peer only connects and prepares
    if (s_connect (self, primary->busy_timeout_ms, STORE_WRITE_CACHE_KIB)
            == -1
        || s_prepare (self) == -1) {
        snprintf (error, error_size, "open second connection to store %s: "
                  "%s", primary->path, self->error);
        goto failed;
    }
    self->tombstones = primary->tombstones;
    self->error[0] = '\0';
    self->code = SQLITE_OK;
    return self;

failed:
    store_destroy (&self);
    return NULL;
}

void
store_destroy (store_t **self_p)
{
    assert (self_p);
    store_t *self = *self_p;
    if (!self)
        return;

    for (int i = 0; i < STMT_COUNT; i++)
        sqlite3_finalize (self->stmt[i]);
    /*  The last connection to close checkpoints the WAL into the file.  */
    sqlite3_close (self->db);

    /*  The descriptor is closed under the mutex so that no store_open in
        another thread can lock the file between the removal from the list
        and the close, which would drop that new lock.  */
    pthread_mutex_lock (&s_open_mutex);
    if (self->locked) {
        s_open_store_remove (self);
        /*  Emptied rather than unlinked, because a process that opened the
            file just before the unlink would lock the old inode while the
            next opener creates and locks a new one.  A failure here only
            leaves a stale pid.  */
        int rc = ftruncate (self->lock_fd, 0);
        (void) rc;
    }
    if (self->lock_fd != -1)
        close (self->lock_fd);
    if (self->file_fd != -1)
        close (self->file_fd);
    pthread_mutex_unlock (&s_open_mutex);
    free (self->path);
    free (self->lock_path);
    free (self);
    *self_p = NULL;
}

int
store_check_file (store_t *self)
{
    struct stat opened, named;
    if (fstat (self->file_fd, &opened) == -1) {
        s_failf (self, "check store %s: %s", self->path, strerror (errno));
        return -1;
    }
    bool named_exists = stat (self->path, &named) == 0;
    if (named_exists
        && (named.st_dev != opened.st_dev || named.st_ino != opened.st_ino)) {
        s_failf (self, "store %s was replaced by another file while the "
                 "registry ran; what it writes now would be lost",
                 self->path);
        return -1;
    }
    if (!named_exists || opened.st_nlink == 0) {
        s_failf (self, "store %s was deleted while the registry ran; what "
                 "it writes now would be lost", self->path);
        return -1;
    }
    return 0;
}

const char *
store_error (store_t *self)
{
    assert (self);
    return self->error;
}

bool
store_busy (store_t *self)
{
    assert (self);
    int primary = self->code & 0xff;
    return primary == SQLITE_BUSY || primary == SQLITE_LOCKED;
}

/*  ------------------------------------------------------------------
    Clients.  */

static int
s_check_text (store_t *self, const char *op, const char *name,
              const char *text, size_t max)
{
    size_t length = text ? strlen (text) : 0;
    if (length == 0 || length > max) {
        s_failf (self, "%s: %s is %zu bytes, expected 1 to %zu", op, name,
                 length, max);
        return -1;
    }
    return 0;
}

static int
s_register_check (store_t *self, const store_registration_t *reg)
{
    const char *op = "register";
    if (s_check_text (self, op, "id", reg->id, MSG_ID_MAX) == -1
        || s_check_text (self, op, "node", reg->node, MSG_NODE_MAX) == -1)
        return -1;
    if (reg->meta_len > MSG_META_MAX) {
        s_failf (self, "%s: meta of client \"%s\" is %zu bytes, expected"
                 " at most %d", op, reg->id, reg->meta_len, MSG_META_MAX);
        return -1;
    }
    if (reg->stale_after_ms < 0) {
        s_failf (self, "%s: stale_after_ms of client \"%s\" is %" PRId64
                 ", expected 0 (the default) or more", op, reg->id,
                 reg->stale_after_ms);
        return -1;
    }
    return 0;
}

/*  Deletes id's meta, if any.  */
static int
s_client_meta_delete (store_t *self, const char *id, const char *op)
{
    s_bind_text (self, self->stmt[STMT_CLIENT_META_DELETE], 1, id);
    return s_exec (self, STMT_CLIENT_META_DELETE, op);
}

/*  Writes the client's meta, or deletes it when there is none.  */
static int
s_client_meta_write (store_t *self, const store_registration_t *reg,
              const char *op)
{
    if (reg->meta_len == 0)
        return s_client_meta_delete (self, reg->id, op);
    sqlite3_stmt *stmt = self->stmt[STMT_CLIENT_META_SET];
    s_bind_text (self, stmt, 1, reg->id);
    s_bind_blob (self, stmt, 2, reg->meta, reg->meta_len);
    return s_exec (self, STMT_CLIENT_META_SET, op);
}

/*  Updates the client if it exists, else inserts it, writes its meta,
    and deletes its tombstone.  The UPDATE comes first because its
    change count shows which case this is.  */
static int
s_register_write (store_t *self, const store_registration_t *reg,
                  bool *created)
{
    const char *op = "register";
    sqlite3_stmt *stmt = self->stmt[STMT_CLIENT_UPDATE];
    s_bind_text (self, stmt, 1, reg->id);
    s_bind_text (self, stmt, 2, reg->node);
    s_bind_int64 (self, stmt, 3, reg->now_ms);
    s_bind_threshold (self, stmt, 4, reg->stale_after_ms);
    if (s_exec (self, STMT_CLIENT_UPDATE, op) == -1)
        return -1;
    if (sqlite3_changes (self->db) > 0) {
        *created = false;
        return s_client_meta_write (self, reg, op);
    }

    stmt = self->stmt[STMT_CLIENT_INSERT];
    s_bind_text (self, stmt, 1, reg->id);
    s_bind_text (self, stmt, 2, reg->node);
    s_bind_int64 (self, stmt, 3, reg->now_ms);
    s_bind_threshold (self, stmt, 4, reg->stale_after_ms);
    if (s_exec (self, STMT_CLIENT_INSERT, op) == -1)
        return -1;
    *created = true;
    if (s_client_meta_write (self, reg, op) == -1)
        return -1;

    //  Registering a removed client again revives it
    s_bind_text (self, self->stmt[STMT_TOMBSTONE_DELETE], 1, reg->id);
    return s_exec (self, STMT_TOMBSTONE_DELETE, op);
}

void
store_set_tombstones (store_t *self, bool keep)
{
    assert (self);
    self->tombstones = keep;
}

int
store_register (store_t *self,
                const char *id,
                const char *node,
                const void *meta,
                size_t meta_len,
                int64_t stale_after_ms,
                int64_t now_ms,
                bool *created)
{
    assert (self);
    assert (meta || meta_len == 0);
    assert (created);
    store_registration_t reg = { id, node, meta, meta_len, stale_after_ms,
                                 now_ms, false };
    if (store_register_many (self, &reg, 1) == -1)
        return -1;
    *created = reg.created;
    return 0;
}

int
store_register_many (store_t *self, store_registration_t *regs,
                     size_t count)
{
    assert (self);
    assert (regs || count == 0);
    for (size_t i = 0; i < count; i++) {
        assert (regs[i].meta || regs[i].meta_len == 0);
        if (s_register_check (self, &regs[i]) == -1)
            return -1;
    }

    if (s_begin (self, "register") == -1)
        return -1;
    for (size_t i = 0; i < count; i++)
        if (s_register_write (self, &regs[i], &regs[i].created) == -1) {
            s_rollback (self);
            return -1;
        }
    if (s_commit (self, "register") == -1) {
        s_rollback (self);
        return -1;
    }
    return 0;
}

int
store_write_activity (store_t *self, const store_activity_t *updates,
                      size_t count)
{
    assert (self);
    assert (updates || count == 0);
    const char *op = "write activity";
    if (count == 0)
        return 0;

    if (s_begin (self, op) == -1)
        return -1;
    sqlite3_stmt *stmt = self->stmt[STMT_CLIENT_RAISE];
    for (size_t i = 0; i < count; i++) {
        assert (updates[i].id);
        s_bind_text (self, stmt, 1, updates[i].id);
        s_bind_int64 (self, stmt, 2, updates[i].last_activity_ms);
        if (s_exec (self, STMT_CLIENT_RAISE, op) == -1)
            goto failed;
    }
    if (s_commit (self, op) == -1)
        goto failed;
    return 0;

failed:
    s_rollback (self);
    return -1;
}

static int
s_get (store_t *self, const char *id, store_client_t *client, const char *op)
{
    sqlite3_stmt *stmt = self->stmt[STMT_CLIENT_GET];
    s_bind_text (self, stmt, 1, id);
    int rc = s_step (self, stmt, op);
    int result = -1;
    if (rc == SQLITE_ROW)
        result = s_read_client (self, stmt, op, client);
    else if (rc == SQLITE_DONE)
        result = STORE_NOT_FOUND;
    s_reset (stmt);
    return result;
}

int
store_get (store_t *self, const char *id, store_client_t *client)
{
    assert (self);
    assert (id);
    assert (client);
    return s_get (self, id, client, "get");
}

int
store_list (store_t *self, const char *after, const char *node,
            uint32_t limit, store_client_fn *fn, void *arg)
{
    assert (self);
    assert (fn);
    sqlite3_stmt *stmt;
    if (node) {
        stmt = self->stmt[STMT_CLIENT_LIST_NODE];
        s_bind_text (self, stmt, 1, node);
        s_bind_text (self, stmt, 2, after ? after : "");
        s_bind_int64 (self, stmt, 3, limit);
    }
    else {
        stmt = self->stmt[STMT_CLIENT_LIST];
        s_bind_text (self, stmt, 1, after ? after : "");
        s_bind_int64 (self, stmt, 2, limit);
    }
    return s_each_client_row (self, stmt, "list", fn, arg);
}

int
store_each_client (store_t *self, store_client_fn *fn, void *arg)
{
    assert (self);
    assert (fn);
    return s_each_client_row (self, self->stmt[STMT_CLIENT_EACH],
                              "each client", fn, arg);
}

int
store_min_stale_after (store_t *self, int64_t *min)
{
    assert (self);
    assert (min);
    return s_query_int64 (self, STMT_CLIENT_MIN_STALE_AFTER,
                          "min stale after", min);
}

int
store_client_count (store_t *self, uint64_t *count)
{
    assert (self);
    assert (count);
    int64_t value;
    if (s_query_int64 (self, STMT_CLIENT_COUNT, "client count", &value)
        == -1)
        return -1;
    *count = (uint64_t) value;
    return 0;
}

/*  ------------------------------------------------------------------
    Removals and events.  */

/*  Deletes candidate's row if its activity is still at most the one the
    candidate carries, and fills in the candidate's node from the row.
    Returns 1 when deleted, 0 when not, -1 on failure.  */
static int
s_delete_candidate (store_t *self, store_candidate_t *candidate)
{
    /*  The test is part of the DELETE itself, so it runs inside the
        write transaction that removes the row.  A registration committed
        before BEGIN IMMEDIATE raised the activity and keeps the row.  No
        write can commit in between, because this transaction has the
        write lock.  */
    const char *op = "evict batch";
    sqlite3_stmt *stmt = self->stmt[STMT_CLIENT_DELETE_UNTOUCHED];
    s_bind_text (self, stmt, 1, candidate->id);
    s_bind_int64 (self, stmt, 2, candidate->last_activity_ms);
    int rc = s_step (self, stmt, op);
    int deleted = 0;
    if (rc == SQLITE_ROW) {
        deleted = s_column_text (self, stmt, 0, candidate->node,
                                 sizeof candidate->node, op) == 0
                      ? 1
                      : -1;
        if (deleted == 1)
            rc = s_step (self, stmt, op);
    }
    if (rc != SQLITE_DONE)
        deleted = -1;
    s_reset (stmt);
    if (deleted == 1 && s_client_meta_delete (self, candidate->id, op) == -1)
        return -1;
    return deleted;
}

/*  Deletes the candidates that may still go (see s_delete_candidate)
    and writes an event for each, with seq from *last_seq + 1 on, into
    events[0 .. *count - 1].  */
static int
s_remove_candidates (store_t *self, store_candidate_t *candidates,
                     uint32_t found, uint64_t sweep, int64_t now_ms,
                     store_event_t *events, uint64_t *last_seq,
                     uint32_t *count)
{
    const char *op = "evict batch";
    s_node_seqs_t seqs;
    if (s_node_seqs_init (self, &seqs, found) == -1)
        return -1;

    uint32_t removed = 0;
    for (uint32_t i = 0; i < found; i++) {
        int deleted = s_delete_candidate (self, &candidates[i]);
        if (deleted == -1)
            goto failed;
        if (deleted == 0)
            continue;

        store_event_t *event = &events[removed];
        memset (event, 0, sizeof *event);
        memcpy (event->id, candidates[i].id, sizeof event->id);
        memcpy (event->node, candidates[i].node, sizeof event->node);
        event->last_activity_ms = candidates[i].last_activity_ms;
        event->seq = ++*last_seq;
        event->reason = MSG_REASON_STALE;
        event->removed_ms = now_ms;
        event->sweep = sweep;
        if (s_append_event (self, event, &seqs, op) == -1)
            goto failed;
        removed++;
    }
    *count = removed;
    return s_node_seqs_flush (self, &seqs, op);

failed:
    free (seqs.slots);
    return -1;
}

int
store_apply_sweep (store_t *self,
                   store_candidate_t *evict,
                   uint32_t evict_count,
                   uint64_t sweep,
                   int64_t now_ms,
                   store_event_t *events,
                   uint32_t *count)
{
    assert (self);
    assert (evict || evict_count == 0);
    assert (events || evict_count == 0);
    assert (count);
    const char *op = "evict batch";
    *count = 0;
    if (evict_count == 0)
        return 0;

    if (s_begin (self, op) == -1)
        return -1;

    int64_t last_seq;
    uint64_t seq;
    uint32_t removed;
    if (s_meta_get (self, "last_seq", op, &last_seq) == -1)
        goto failed;
    seq = (uint64_t) last_seq;
    if (s_remove_candidates (self, evict, evict_count, sweep, now_ms, events,
                             &seq, &removed) == -1)
        goto failed;
    if (removed > 0 && s_meta_set (self, "last_seq", (int64_t) seq, op) == -1)
        goto failed;
    if (s_commit (self, op) == -1)
        goto failed;
    *count = removed;
    return 0;

failed:
    s_rollback (self);
    return -1;
}

/*  Reads and deletes id and writes its event, inside a transaction.  */
static int
s_remove_client (store_t *self, const char *id, msg_reason_t reason,
                 int64_t now_ms, store_event_t *event)
{
    const char *op = "remove";
    store_client_t client;
    int found = s_get (self, id, &client, op);
    if (found != 0)
        return found;

    sqlite3_stmt *stmt = self->stmt[STMT_CLIENT_DELETE];
    s_bind_text (self, stmt, 1, id);
    int64_t last_seq;
    if (s_exec (self, STMT_CLIENT_DELETE, op) == -1
        || s_client_meta_delete (self, id, op) == -1
        || s_meta_get (self, "last_seq", op, &last_seq) == -1)
        return -1;

    memset (event, 0, sizeof *event);
    event->seq = (uint64_t) last_seq + 1;
    memcpy (event->id, client.id, sizeof event->id);
    memcpy (event->node, client.node, sizeof event->node);
    event->reason = reason;
    event->last_activity_ms = client.last_activity_ms;
    event->removed_ms = now_ms;
    if (s_append_event (self, event, NULL, op) == -1
        || s_meta_set (self, "last_seq", (int64_t) event->seq, op) == -1)
        return -1;
    return 0;
}

int
store_remove (store_t *self, const char *id, msg_reason_t reason,
              int64_t now_ms, store_event_t *event)
{
    assert (self);
    assert (id);
    assert (event);
    const char *op = "remove";
    if (reason != MSG_REASON_DEREGISTERED && reason != MSG_REASON_OPERATOR) {
        s_failf (self, "%s: reason %d is not allowed, expected deregistered"
                 " or operator (a sweep removes stale clients)", op,
                 (int) reason);
        return -1;
    }

    if (s_begin (self, op) == -1)
        return -1;
    int result = s_remove_client (self, id, reason, now_ms, event);
    if (result == 0 && s_commit (self, op) == 0)
        return 0;

    s_rollback (self);
    if (result == STORE_NOT_FOUND) {
        s_failf (self, "%s: client \"%s\" is not registered", op, id);
        return STORE_NOT_FOUND;
    }
    return -1;
}

int
store_events_since (store_t *self, uint64_t since, const char *node,
                    uint32_t limit, store_event_fn *fn, void *arg)
{
    assert (self);
    assert (fn);
    const char *op = "events since";

    //  SQLite integers are signed, and no seq can pass INT64_MAX, so a
    //  larger since selects nothing rather than wrapping to a negative
    if (since > (uint64_t) INT64_MAX)
        since = (uint64_t) INT64_MAX;

    sqlite3_stmt *stmt;
    if (node) {
        stmt = self->stmt[STMT_EVENTS_SINCE_NODE];
        s_bind_text (self, stmt, 1, node);
        s_bind_int64 (self, stmt, 2, (int64_t) since);
        s_bind_int64 (self, stmt, 3, limit);
    }
    else {
        stmt = self->stmt[STMT_EVENTS_SINCE];
        s_bind_int64 (self, stmt, 1, (int64_t) since);
        s_bind_int64 (self, stmt, 2, limit);
    }

    store_event_t event;
    int result = 0;
    int rc;
    while ((rc = s_step (self, stmt, op)) == SQLITE_ROW) {
        if (s_read_event (self, stmt, op, &event) == -1) {
            result = -1;
            break;
        }
        result = fn (&event, arg);
        if (result != 0)
            break;
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        result = -1;
    s_reset (stmt);
    return result;
}

int
store_event_range (store_t *self, uint64_t *first, uint64_t *last)
{
    assert (self);
    assert (first && last);
    const char *op = "event range";
    int64_t first_seq, last_seq;
    if (s_query_int64 (self, STMT_EVENT_FIRST, op, &first_seq) == -1
        || s_meta_get (self, "last_seq", op, &last_seq) == -1)
        return -1;
    *first = (uint64_t) first_seq;
    *last = (uint64_t) last_seq;
    return 0;
}

/*  Finds the newest seq of the prunable prefix: events in seq order,
    never the newest, up to max of them, stopping at the first one
    removed at or after before_ms.  Sets *through to 0 when none.  */
static int
s_prunable_through (store_t *self, int64_t before_ms, uint32_t max,
                    int64_t *through)
{
    sqlite3_stmt *stmt = self->stmt[STMT_EVENT_PRUNABLE];
    s_bind_int64 (self, stmt, 1, max);
    *through = 0;
    int rc;
    while ((rc = s_step (self, stmt, "prune events")) == SQLITE_ROW) {
        if (sqlite3_column_int64 (stmt, 1) >= before_ms)
            break;
        *through = sqlite3_column_int64 (stmt, 0);
    }
    s_reset (stmt);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : -1;
}

int
store_prune_events (store_t *self, int64_t before_ms, uint32_t max,
                    uint32_t *deleted)
{
    assert (self);
    assert (deleted);
    const char *op = "prune events";
    *deleted = 0;
    if (max == 0)
        return 0;

    /*  Only a prefix in seq order is deleted, so the retained events stay
        one gapless range from first to last seq even when the wall clock
        stepped back between two removals.  An event stamped later than
        its successor delays pruning until it is old enough itself.  */
    if (s_begin (self, op) == -1)
        return -1;
    int64_t through;
    if (s_prunable_through (self, before_ms, max, &through) == -1)
        goto failed;
    if (through > 0) {
        s_bind_int64 (self, self->stmt[STMT_EVENT_DELETE_THROUGH], 1,
                      through);
        if (s_exec (self, STMT_EVENT_DELETE_THROUGH, op) == -1)
            goto failed;
    }
    uint32_t changes = through > 0 ? (uint32_t) sqlite3_changes (self->db)
                                   : 0;
    if (s_commit (self, op) == -1)
        goto failed;
    *deleted = changes;
    return 0;

failed:
    s_rollback (self);
    return -1;
}

/*  ------------------------------------------------------------------
    Tombstones.  */

int
store_get_tombstone (store_t *self, const char *id,
                     store_tombstone_t *tombstone)
{
    assert (self);
    assert (id);
    assert (tombstone);
    const char *op = "get tombstone";
    sqlite3_stmt *stmt = self->stmt[STMT_TOMBSTONE_GET];
    s_bind_text (self, stmt, 1, id);
    int rc = s_step (self, stmt, op);
    int result = -1;
    if (rc == SQLITE_ROW)
        result = s_read_tombstone (self, stmt, op, tombstone);
    else if (rc == SQLITE_DONE)
        result = STORE_NOT_FOUND;
    s_reset (stmt);
    return result;
}

int
store_list_tombstones (store_t *self, const char *after, const char *node,
                       uint32_t limit, store_tombstone_fn *fn, void *arg)
{
    assert (self);
    assert (fn);
    const char *op = "list tombstones";
    sqlite3_stmt *stmt;
    if (node) {
        stmt = self->stmt[STMT_TOMBSTONE_LIST_NODE];
        s_bind_text (self, stmt, 1, node);
        s_bind_text (self, stmt, 2, after ? after : "");
        s_bind_int64 (self, stmt, 3, limit);
    }
    else {
        stmt = self->stmt[STMT_TOMBSTONE_LIST];
        s_bind_text (self, stmt, 1, after ? after : "");
        s_bind_int64 (self, stmt, 2, limit);
    }

    store_tombstone_t tombstone;
    int result = 0;
    int rc;
    while ((rc = s_step (self, stmt, op)) == SQLITE_ROW) {
        if (s_read_tombstone (self, stmt, op, &tombstone) == -1) {
            result = -1;
            break;
        }
        result = fn (&tombstone, arg);
        if (result != 0)
            break;
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        result = -1;
    s_reset (stmt);
    return result;
}

int
store_purge_tombstones (store_t *self, int64_t before_ms, uint32_t max,
                        uint32_t *deleted)
{
    assert (self);
    assert (deleted);
    const char *op = "purge tombstones";
    *deleted = 0;
    if (max == 0)
        return 0;

    if (s_begin (self, op) == -1)
        return -1;
    sqlite3_stmt *stmt = self->stmt[STMT_TOMBSTONE_PURGE];
    s_bind_int64 (self, stmt, 1, before_ms);
    s_bind_int64 (self, stmt, 2, max);
    if (s_exec (self, STMT_TOMBSTONE_PURGE, op) == -1)
        goto failed;
    uint32_t changes = (uint32_t) sqlite3_changes (self->db);
    if (s_commit (self, op) == -1)
        goto failed;
    *deleted = changes;
    return 0;

failed:
    s_rollback (self);
    return -1;
}

/*  Appends one line of integrity_check output to result, cut to fit.  */
static void
s_append_line (char *result, size_t size, const char *line)
{
    size_t used = strlen (result);
    if (used + 1 >= size)
        return;
    snprintf (result + used, size - used, "%s%s", used > 0 ? "\n" : "",
              line);
}

/*  Appends the plan of one prepared statement to plan.  */
static int
s_explain_one (store_t *self, const char *name, stmt_id_t id, char *plan,
               size_t size)
{
    char sql[1024];
    snprintf (sql, sizeof sql, "EXPLAIN QUERY PLAN %s", s_sql[id]);
    sqlite3_stmt *stmt;
    int rc = sqlite3_prepare_v2 (self->db, sql, -1, &stmt, NULL);
    if (rc != SQLITE_OK) {
        s_fail (self, "explain", rc);
        return -1;
    }
    while ((rc = sqlite3_step (stmt)) == SQLITE_ROW) {
        const char *detail = (const char *) sqlite3_column_text (stmt, 3);
        char line[256];
        snprintf (line, sizeof line, "%s: %s", name, detail ? detail : "");
        s_append_line (plan, size, line);
    }
    if (rc != SQLITE_DONE)
        s_fail (self, "explain", rc);
    sqlite3_finalize (stmt);
    return rc == SQLITE_DONE ? 0 : -1;
}

int
store_explain (store_t *self, char *plan, size_t size)
{
    assert (self);
    assert (plan && size > 0);
    static const struct {
        const char *name;
        stmt_id_t id;
    } statements[] = {
        {"tombstone purge", STMT_TOMBSTONE_PURGE},
    };
    plan[0] = '\0';
    for (size_t i = 0; i < sizeof statements / sizeof statements[0]; i++) {
        if (s_explain_one (self, statements[i].name, statements[i].id, plan,
                           size) == -1)
            return -1;
    }
    return 0;
}

int
store_integrity_check (store_t *self, char *result, size_t size)
{
    assert (self);
    assert (result && size > 0);
    const char *op = "integrity check";
    sqlite3_stmt *stmt = self->stmt[STMT_INTEGRITY_CHECK];
    result[0] = '\0';
    int rows = 0;
    bool ok = false;
    int rc;
    while ((rc = s_step (self, stmt, op)) == SQLITE_ROW) {
        const char *line = (const char *) sqlite3_column_text (stmt, 0);
        line = line ? line : "";
        ok = rows == 0 && strcmp (line, "ok") == 0;
        s_append_line (result, size, line);
        rows++;
    }
    s_reset (stmt);
    if (rc != SQLITE_DONE)
        return -1;
    if (!ok || rows != 1) {
        s_failf (self, "%s: found problems: %s", op, result);
        return -1;
    }
    return 0;
}
