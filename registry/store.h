/*  store.h: the registry's SQLite store; every SQL statement lives here.

    One store_t is one open database in WAL mode plus an exclusive lock
    on "<path>.lock", held for as long as the store is open, so that a
    second registry on the same file fails to open it and can name the
    process that holds it.

    Tables: clients (id, node, registered_ms, last_activity_ms,
    stale_after_ms), clustered by id, with an index by node; client_meta
    (id, meta), a row for each client with meta; events (the outbox:
    seq, prev, id, node, reason, last_activity_ms, removed_ms, sweep),
    whose seq is gapless and increasing, and whose prev is the seq of
    the node's previous event; node_seq (each node's newest event seq,
    kept apart from events so that pruning does not reset prev);
    tombstones (removed clients kept for a while when tombstones are on,
    see store_set_tombstones); meta (schema version and the last seq, so
    that seq never restarts even when every event was pruned).  Every
    removal writes its event row, and its tombstone when tombstones are
    on, in the same transaction as the delete.

    Every function returns 0 on success and -1 on failure unless stated
    otherwise; after a failure store_error returns SQLite's message and
    store_busy says whether the failure was a lock held by another
    connection, which a later retry may get past.  A failed write leaves
    the store as it was before the call.
*/
#ifndef LAPSE_STORE_H
#define LAPSE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "protocol.h"

#define STORE_SCHEMA_VERSION 3
#define STORE_NOT_FOUND 1

typedef struct store_t store_t;

/*  A client row.  The strings are copies owned by the row.  */
typedef struct {
    char id[MSG_ID_MAX + 1];
    char node[MSG_NODE_MAX + 1];
    int64_t registered_ms;
    int64_t last_activity_ms;
    uint8_t meta[MSG_META_MAX];
    size_t meta_len;
    int64_t stale_after_ms;     /* own threshold, 0 on the default */
} store_client_t;

/*  An event row.  */
typedef struct {
    uint64_t seq;
    uint64_t prev;
    char id[MSG_ID_MAX + 1];
    char node[MSG_NODE_MAX + 1];
    msg_reason_t reason;
    int64_t last_activity_ms;
    int64_t removed_ms;
    uint64_t sweep;
} store_event_t;

/*  A removed client kept as a tombstone.  seq is its removal's event.  */
typedef struct {
    char id[MSG_ID_MAX + 1];
    char node[MSG_NODE_MAX + 1];
    msg_reason_t reason;
    int64_t last_activity_ms;
    int64_t removed_ms;
    uint64_t seq;
} store_tombstone_t;

/*  A client a sweep may remove.  */
typedef struct {
    char id[MSG_ID_MAX + 1];
    char node[MSG_NODE_MAX + 1];
    int64_t last_activity_ms;
    int64_t stale_after_ms;     /* own threshold, 0 on the default */
} store_candidate_t;

/*  One registration for store_register_many.  created is set by it.  */
typedef struct {
    const char *id;
    const char *node;
    const void *meta;
    size_t meta_len;
    int64_t stale_after_ms;
    int64_t now_ms;
    bool created;
} store_registration_t;

/*  A last-activity update for one client.  */
typedef struct {
    const char *id;
    int64_t last_activity_ms;
} store_activity_t;

typedef int (store_client_fn) (const store_client_t *client, void *arg);
typedef int (store_event_fn) (const store_event_t *event, void *arg);
typedef int (store_tombstone_fn) (const store_tombstone_t *tombstone,
                                  void *arg);

/*  Opens or creates the store at path, takes the lock, sets WAL mode and
    synchronous=NORMAL, creates or migrates the schema, and prepares the
    statements.  busy_timeout_ms is how long a statement waits for a lock
    held by another connection before failing as busy.  Returns NULL with
    a message in error on failure.  When another process or another open
    store_t in this process holds the lock, the message names its pid.  */
store_t *
store_open (const char *path, int busy_timeout_ms, char *error,
            size_t error_size);

/*  Opens a second connection to primary's file, for another thread: the
    registry reads on the primary and writes on the peer, which gets the
    larger page cache.  The peer takes no lock of its own and leaves the
    schema alone; close it before the primary.  Returns NULL with a
    message in error on failure.  */
store_t *
store_open_peer (store_t *primary, char *error, size_t error_size);

/*  Closes the store and releases the lock.  Accepts NULL.  */
void
store_destroy (store_t **self_p);

/*  Checks that the file at the store's path is still the one opened:
    not deleted, and not replaced by another file.  Returns 0, or -1
    with the reason in store_error.  */
int
store_check_file (store_t *self);

const char *
store_error (store_t *self);
bool
store_busy (store_t *self);

/*  Sets whether every removal from now on also writes a tombstone (off
    after store_open).  */
void
store_set_tombstones (store_t *self, bool keep);

/*  Inserts a client, or when the id exists updates its node, meta and
    threshold and raises its last activity to now_ms.  stale_after_ms is
    the client's own threshold, or 0 to follow the default.  Deletes the
    id's tombstone, if any, in the same transaction.  Sets *created.  */
int
store_register (store_t *self,
                const char *id,
                const char *node,
                const void *meta,
                size_t meta_len,
                int64_t stale_after_ms,
                int64_t now_ms,
                bool *created);

/*  Writes count registrations as store_register does, all in one
    transaction, and sets each one's created.  When one fails, none is
    written.  */
int
store_register_many (store_t *self, store_registration_t *regs,
                     size_t count);

/*  Writes count last-activity updates in one transaction.  A row's
    activity is only ever raised, never lowered; ids that are no longer
    registered are skipped.  */
int
store_write_activity (store_t *self, const store_activity_t *updates,
                      size_t count);

/*  Reads one client.  Returns 0, STORE_NOT_FOUND, or -1.  */
int
store_get (store_t *self, const char *id, store_client_t *client);

/*  Calls fn for up to limit clients in id order with id > after (after
    may be NULL or ""), only those of node when node is not NULL.  Stops
    early and returns fn's value when fn returns non-zero.  */
int
store_list (store_t *self, const char *after, const char *node,
            uint32_t limit, store_client_fn *fn, void *arg);

/*  Calls fn for every client, in no particular order, for loading the
    registry's in-memory table at start.  Meta is not read: every row
    comes with meta_len 0.  */
int
store_each_client (store_t *self, store_client_fn *fn, void *arg);

/*  Sets *min to the smallest own threshold of any client, 0 when every
    client follows the default.  Reads every client with its own
    threshold, so it is meant for start-up.  */
int
store_min_stale_after (store_t *self, int64_t *min);

/*  Removes one client for a reason other than staleness and writes its
    event (and tombstone), in one transaction; fills *event.  Returns 0,
    STORE_NOT_FOUND, or -1.  */
int
store_remove (store_t *self, const char *id, msg_reason_t reason,
              int64_t now_ms, store_event_t *event);

/*  Removes the clients a sweep found stale in memory, in one
    transaction: each evict entry whose stored activity is still at most
    its last_activity_ms goes, with one event (and tombstone) carrying
    that activity, and gets its node filled in from the store.  A client
    registered again since the sweep decided, or already removed, is
    left alone.  Fills events[0 .. *count - 1]; events must have room
    for evict_count.  On failure nothing is written and *count is 0.  */
int
store_apply_sweep (store_t *self,
                   store_candidate_t *evict,
                   uint32_t evict_count,
                   uint64_t sweep,
                   int64_t now_ms,
                   store_event_t *events,
                   uint32_t *count);

/*  Calls fn for up to limit events with seq > since in seq order, only
    those of node when node is not NULL.  */
int
store_events_since (store_t *self, uint64_t since, const char *node,
                    uint32_t limit, store_event_fn *fn, void *arg);

/*  Sets *first and *last to the oldest and newest retained event seq, 0
    when there are none.  *last never goes backwards, even after every
    event was pruned.  */
int
store_event_range (store_t *self, uint64_t *first, uint64_t *last);

/*  Deletes events removed before before_ms, at most max of them, and
    sets *deleted.  The newest event is always kept, so seq never
    restarts.  Deletion goes in seq order and stops at the first event
    removed at or after before_ms, so the retained events stay one
    gapless range even when the wall clock stepped back.  */
int
store_prune_events (store_t *self, int64_t before_ms, uint32_t max,
                    uint32_t *deleted);

/*  Reads the tombstone of id.  Returns 0, STORE_NOT_FOUND, or -1.  */
int
store_get_tombstone (store_t *self, const char *id,
                     store_tombstone_t *tombstone);

/*  Calls fn for up to limit tombstones in id order with id > after (after
    may be NULL or ""), only those of node when node is not NULL.  Stops
    early and returns fn's value when fn returns non-zero.  */
int
store_list_tombstones (store_t *self, const char *after, const char *node,
                       uint32_t limit, store_tombstone_fn *fn, void *arg);

/*  Deletes tombstones of clients removed before before_ms, at most max
    of them, oldest first, and sets *deleted.  */
int
store_purge_tombstones (store_t *self, int64_t before_ms, uint32_t max,
                        uint32_t *deleted);

/*  Sets *count to the number of registered clients.  */
int
store_client_count (store_t *self, uint64_t *count);

/*  Writes SQLite's query plan of the statement that purges tombstones
    into plan, cut to fit size, so that a test can check that it is an
    index search.  Each step of a plan is one line, for example
    "tombstone purge: SEARCH tombstones USING INDEX tombstones_removed
    (removed_ms<?)".  */
int
store_explain (store_t *self, char *plan, size_t size);

/*  Runs SQLite's PRAGMA integrity_check, which reads the whole file, and
    copies its output into result, cut to fit size: "ok", or one problem
    per line.  Returns 0 when the output is "ok", -1 when it lists
    problems or the check could not run.  */
int
store_integrity_check (store_t *self, char *result, size_t size);

#endif
