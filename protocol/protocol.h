/*  protocol.h: every Lapse message, its msgpack encoding and validation.

    A message body is one msgpack map.  Every map has "v" (the protocol
    version, an unsigned integer) and "type" (a string naming the message
    type); the other keys depend on the type and are listed beside each
    struct below.  docs/protocol.md is the full specification.

    Strings in decoded messages are msg_str_t views into the buffer that
    was decoded, not copies, so that a touch of a thousand ids costs no
    allocation per id.  The buffer must outlive the message.  Arrays in a
    decoded message (touch ids, list, events and tombstones results) are
    allocated and freed by msg_release.

    Decoding is strict: an unknown key, a missing required key, a value
    of the wrong msgpack type, a string of the wrong length or bytes left
    over after the map are all errors, and the error names the field.
*/
#ifndef LAPSE_PROTOCOL_H
#define LAPSE_PROTOCOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MSG_VERSION 1

/*  Limits every peer must keep to.  A decoder rejects a message past any
    of them with MSG_ERR_LIMIT_EXCEEDED naming the limit.  */
#define MSG_ID_MAX 128          /* bytes in a client id */
#define MSG_NODE_MAX 64         /* bytes in a node name */
#define MSG_SCHEDULER_MAX 64    /* bytes in a scheduler id */
#define MSG_META_MAX 1024       /* bytes of per-client metadata */
#define MSG_TOUCH_IDS_MAX 1000  /* ids in one touch */
#define MSG_PAGE_MAX 1000       /* clients or events in one result page */
#define MSG_TEXT_MAX 512        /* bytes in an error message */
#define MSG_STATS_MAX 64        /* entries in a stats result */
#define MSG_STAT_NAME_MAX 48    /* bytes in a stats entry name */
#define MSG_SIZE_MAX (1024 * 1024) /* bytes in one encoded body */

/*  Event topic prefix.  An eviction event is published with the topic
    "evicted.<node>"; subscribers filter by prefix, so one subscribed to
    node "a" also receives node "ab" and must check the body's node.  */
#define MSG_TOPIC_EVICTED "evicted."
#define MSG_TOPIC_TICK "tick"

typedef enum {
    MSG_REGISTER,
    MSG_TOUCH,
    MSG_DEREGISTER,
    MSG_EVICT,
    MSG_GET,
    MSG_LIST,
    MSG_STATS,
    MSG_SWEEP,
    MSG_EVENTS,
    MSG_TOMBSTONES,
    MSG_BRAKE,
    MSG_TICK,
    MSG_EVENT,
    MSG_RESULT,
    MSG_ERROR,
    MSG_TYPE_COUNT
} msg_type_t;

/*  Error codes carried by MSG_ERROR replies and returned by the decoder.
    The wire form is the lower-case name, for example "bad_request".  */
typedef enum {
    MSG_ERR_NONE,
    MSG_ERR_BAD_REQUEST,        /* malformed body or field */
    MSG_ERR_UNSUPPORTED_VERSION,
    MSG_ERR_UNKNOWN_TYPE,       /* "type" names no message type */
    MSG_ERR_LIMIT_EXCEEDED,     /* a size or count limit was passed */
    MSG_ERR_UNKNOWN_CLIENT,     /* the client id is not registered */
    MSG_ERR_BUSY,               /* the store was busy; retry later */
    MSG_ERR_INTERNAL,           /* the registry failed; see its log */
    MSG_ERR_EVICTED,            /* the client was removed; a tombstone
                                   says when and why */
    MSG_ERR_CODE_COUNT
} msg_error_code_t;

/*  Why a client was removed.  Wire form: "stale", "deregistered",
    "operator".  */
typedef enum {
    MSG_REASON_STALE,
    MSG_REASON_DEREGISTERED,
    MSG_REASON_OPERATOR,
    MSG_REASON_COUNT
} msg_reason_t;

/*  A byte string that is not NUL-terminated.  */
typedef struct {
    const char *ptr;
    uint32_t len;
} msg_str_t;

/*  A registered client as returned by get and list.
    Keys: "id", "node", "registered_ms", "last_activity_ms", "meta"
    (binary, omitted when empty), "stale_after_ms" (the client's own
    threshold, omitted when it follows the registry's default).  Times
    are wall-clock milliseconds since the Unix epoch.  */
typedef struct {
    msg_str_t id;
    msg_str_t node;
    int64_t registered_ms;
    int64_t last_activity_ms;
    msg_str_t meta;
    int64_t stale_after_ms;     /* 0: the default */
} msg_client_t;

/*  A removed client that the registry keeps as a tombstone, as returned
    by the tombstones command.  Keys: "id", "node", "reason",
    "last_activity_ms", "removed_ms", "seq" (the removal's event).  */
typedef struct {
    msg_str_t id;
    msg_str_t node;
    msg_reason_t reason;
    int64_t last_activity_ms;
    int64_t removed_ms;
    uint64_t seq;
} msg_tombstone_t;

/*  One removal.  Keys: "seq", "prev", "id", "node", "reason",
    "last_activity_ms", "removed_ms", "sweep".  prev is the seq of the
    previous event for the same node (0 when none), so a subscriber to
    one node can tell that it missed one.  sweep is the id of the sweep
    that removed a stale client, 0 for other reasons.  */
typedef struct {
    uint64_t seq;
    uint64_t prev;
    msg_str_t id;
    msg_str_t node;
    msg_reason_t reason;
    int64_t last_activity_ms;
    int64_t removed_ms;
    uint64_t sweep;
} msg_event_t;

/*  One stats counter.  */
typedef struct {
    msg_str_t name;
    uint64_t value;
} msg_stat_t;

/*  Keys: "id", "node", "meta" (optional binary), "stale_after_ms"
    (optional, 1 or more: the client's own threshold).  The registry
    accepts a threshold only within its configured bounds.  Without one
    the client follows the registry's default.  */
typedef struct {
    msg_str_t id;
    msg_str_t node;
    msg_str_t meta;
    int64_t stale_after_ms;     /* 0: leave the key out */
} msg_register_t;

/*  Keys: "ids", an array of 1 to MSG_TOUCH_IDS_MAX client ids.  */
typedef struct {
    msg_str_t *ids;
    uint32_t count;
} msg_touch_t;

/*  deregister, evict and get.  Key: "id".  */
typedef struct {
    msg_str_t id;
} msg_client_ref_t;

/*  list and tombstones.  Keys: "limit" (1 to MSG_PAGE_MAX), "after"
    (optional: the last id of the previous page), "node" (optional
    filter).  Clients and tombstones come in id order.  */
typedef struct {
    uint32_t limit;
    msg_str_t after;
    msg_str_t node;
} msg_list_t;

/*  Keys: "dry_run" (boolean).  */
typedef struct {
    bool dry_run;
} msg_sweep_t;

/*  Keys: "since" (return events with seq > since), "limit" (1 to
    MSG_PAGE_MAX), "node" (optional filter).  */
typedef struct {
    uint64_t since;
    uint32_t limit;
    msg_str_t node;
} msg_events_t;

/*  What a brake command does.  Wire form: "status", "release".  */
typedef enum {
    MSG_BRAKE_STATUS,           /* report the eviction brake's state */
    MSG_BRAKE_RELEASE,          /* lift it for the next sweep, or for
                                   for_ms */
    MSG_BRAKE_ACTION_COUNT
} msg_brake_action_t;

/*  Maximum duration of a brake release: 7 days.  */
#define MSG_BRAKE_FOR_MAX_MS (7LL * 24 * 3600 * 1000)

/*  Keys: "action", "for_ms" (optional, release only: 1 to
    MSG_BRAKE_FOR_MAX_MS; without it the release lasts for the next
    sweep only).  */
typedef struct {
    msg_brake_action_t action;
    int64_t for_ms;             /* 0: leave the key out */
} msg_brake_t;

/*  The eviction brake's state in a brake result.  Keys:
      "enabled":         the brake setting
      "engaged":         the brake made the latest sweep evict fewer
                         clients than were stale
      "share":           percent of the clients one sweep may evict, 1
                         to 100
      "min_clients":     registries with fewer clients are exempt
      "clients", "stale", "limit", "held_back": the latest sweep's
                         clients, stale clients, eviction limit and
                         stale clients left in place
      "release_next":    the next sweep runs without the brake
      "release_left_ms": how much longer a timed release lasts, 0 when
                         none  */
typedef struct {
    bool enabled;
    bool engaged;
    uint32_t share;
    uint64_t min_clients;
    uint64_t clients;
    uint64_t stale;
    uint64_t limit;
    uint64_t held_back;
    bool release_next;
    uint64_t release_left_ms;
} msg_brake_state_t;

/*  Keys: "scheduler" (the sender's id), "seq" (per scheduler, from 1),
    "sent_ms" (wall clock), "interval_ms" (the sender's tick interval).  */
typedef struct {
    msg_str_t scheduler;
    uint64_t seq;
    int64_t sent_ms;
    int64_t interval_ms;
} msg_tick_t;

/*  A result.  Keys: "cmd" (the request's type name), then by command:
      register:          "created" (boolean)
      touch:             "touched" (count), "unknown" (array of the ids
                         that are not registered), "evicted" (array of
                         the ids that are not registered because they
                         were removed and are kept as tombstones; omitted
                         when empty)
      deregister, evict: "seq" (the removal's event)
      get:               "client" (map)
      list:              "clients" (array of maps), "next" (the id to
                         pass as "after" for the next page; omitted on
                         the last page)
      stats:             "stats" (map of name to unsigned integer)
      sweep:             "sweep" (sweep id, 0 for a dry run), "dry_run",
                         "stale" (clients stale now), "ids" (up to
                         MSG_PAGE_MAX of them, dry run only)
      events:            "events" (array of event maps), "first_seq"
                         (oldest retained, 0 when none), "last_seq"
                         (newest, 0 when none)
      tombstones:        "tombstones" (array of tombstone maps), "next"
                         (as in list)
      brake:             the keys of msg_brake_state_t, after the
                         action was applied
    Only the fields of the command named by cmd are meaningful.  */
typedef struct {
    msg_type_t cmd;
    bool created;
    uint32_t touched;
    msg_str_t *unknown;
    uint32_t unknown_count;
    msg_str_t *evicted;
    uint32_t evicted_count;
    uint64_t seq;
    msg_client_t client;
    msg_client_t *clients;
    uint32_t clients_count;
    msg_str_t next;
    msg_stat_t *stats;
    uint32_t stats_count;
    uint64_t sweep;
    bool dry_run;
    uint64_t stale;
    msg_str_t *ids;
    uint32_t ids_count;
    msg_event_t *events;
    uint32_t events_count;
    uint64_t first_seq;
    uint64_t last_seq;
    msg_tombstone_t *tombstones;
    uint32_t tombstones_count;
    msg_brake_state_t brake;
} msg_result_t;

/*  Keys: "code" (error code name), "message" (readable text naming the
    offending field or value).  */
typedef struct {
    msg_error_code_t code;
    msg_str_t message;
} msg_error_t;

/*  One message.  "req" is the request id a client chooses for each
    command and the registry copies into its reply; it is 0 on ticks and
    events and optional (default 0) on commands.  */
typedef struct {
    msg_type_t type;
    uint64_t req;
    union {
        msg_register_t register_;
        msg_touch_t touch;
        msg_client_ref_t client_ref;    /* deregister, evict, get */
        msg_list_t list;
        msg_list_t tombstones;
        msg_sweep_t sweep;
        msg_events_t events;
        msg_brake_t brake;
        msg_tick_t tick;
        msg_event_t event;
        msg_result_t result;
        msg_error_t error;
    } u;
    void *owned;                        /* decoder's allocations */
} msg_t;

/*  A decode or validation failure: the code to reply with and a message
    naming the field, for example
    field "ids[3]": expected a string of 1 to 128 bytes, got 0 bytes  */
typedef struct {
    msg_error_code_t code;
    char message[MSG_TEXT_MAX];
} msg_failure_t;

/*  Returns the wire name of a type ("register", ...), or "unknown".  */
const char *
msg_type_name (msg_type_t type);

/*  Returns the wire name of an error code ("bad_request", ...).  */
const char *
msg_error_code_name (msg_error_code_t code);

/*  Returns the wire name of a reason ("stale", ...).  */
const char *
msg_reason_name (msg_reason_t reason);

/*  Returns the wire name of a brake action ("status", ...), or
    "unknown".  */
const char *
msg_brake_action_name (msg_brake_action_t action);

/*  Returns true when type is a command a client sends to the registry's
    command socket (register through brake).  */
bool
msg_type_is_command (msg_type_t type);

/*  Makes a view of a NUL-terminated string (NULL gives an empty view).  */
msg_str_t
msg_str (const char *text);

/*  Returns true when a equals the NUL-terminated string b.  */
bool
msg_str_eq (msg_str_t a, const char *b);

/*  Copies a view into buffer as a NUL-terminated string, cut to fit.
    Returns buffer.  */
char *
msg_str_copy (msg_str_t view, char *buffer, size_t size);

/*  Decodes and validates one body of size bytes into *msg.  Returns 0,
    or -1 with *failure filled in; on failure msg->type and msg->req are
    set when they could be read (otherwise msg->type is MSG_TYPE_COUNT
    and msg->req is 0) so that the error reply can echo them.  Either way
    the caller must call msg_release (msg) afterwards.  */
int
msg_decode (const void *data, size_t size, msg_t *msg,
            msg_failure_t *failure);

/*  Validates and encodes *msg.  On success returns 0 and sets *data to
    a malloc'd buffer of *size bytes that the caller frees.  Returns -1
    with *failure filled in when the message breaks a limit or a field
    rule, so a peer never sends what another peer would reject.  */
int
msg_encode (const msg_t *msg, void **data, size_t *size,
            msg_failure_t *failure);

/*  Frees what msg_decode allocated and clears *msg.  Safe on a message
    that was zeroed, decoded or failed to decode.  */
void
msg_release (msg_t *msg);

/*  Checks a client id: 1 to MSG_ID_MAX bytes of printable ASCII with no
    space.  Returns true when valid.  */
bool
msg_id_is_valid (msg_str_t id);

/*  Checks a node name: 1 to MSG_NODE_MAX bytes of letters, digits and
    "-_.:".  Returns true when valid.  */
bool
msg_node_is_valid (msg_str_t node);

#endif
