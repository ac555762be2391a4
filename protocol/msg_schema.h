/*  msg_schema.h: the table of keys behind every message, private to the
    protocol library.

    Each message body, result variant and nested map is described once,
    as a schema.  A schema lists the keys in wire order, with the kind of
    value behind each key, where the value lives in the C struct and
    when the key may be left out.  The decoder, the validator and the
    encoder all walk the same schemas, so the three cannot disagree about
    a field.
*/
#ifndef LAPSE_MSG_SCHEMA_H
#define LAPSE_MSG_SCHEMA_H

#include "protocol.h"

/*  The kind of value behind a key: its msgpack type, its C type and the
    rule it must pass.  */
typedef enum {
    MSG_KIND_ID,            /* str, msg_str_t, msg_id_is_valid */
    MSG_KIND_NODE,          /* str, msg_str_t, msg_node_is_valid */
    MSG_KIND_SCHEDULER,     /* str, msg_str_t, like an id, shorter */
    MSG_KIND_META,          /* bin, msg_str_t, up to MSG_META_MAX bytes */
    MSG_KIND_TEXT,          /* str, msg_str_t, 1 to MSG_TEXT_MAX bytes */
    MSG_KIND_UINT32,        /* uint, uint32_t, min to max */
    MSG_KIND_UINT64,        /* uint, uint64_t, min or more */
    MSG_KIND_INT64,         /* int, int64_t, min or more */
    MSG_KIND_BOOL,          /* bool, bool */
    MSG_KIND_REASON,        /* str, msg_reason_t, by wire name */
    MSG_KIND_CODE,          /* str, msg_error_code_t, by wire name */
    MSG_KIND_BRAKE_ACTION,  /* str, msg_brake_action_t, by wire name */
    MSG_KIND_ID_ARRAY,      /* array of ids, msg_str_t * and a count */
    MSG_KIND_CLIENT,        /* map, msg_client_t */
    MSG_KIND_CLIENT_ARRAY,  /* array of client maps, and a count */
    MSG_KIND_EVENT_ARRAY,   /* array of event maps, and a count */
    MSG_KIND_TOMBSTONE_ARRAY,   /* array of tombstone maps, and a count */
    MSG_KIND_STATS          /* map of name to uint, msg_stat_t * */
} msg_kind_t;

/*  When a key is on the wire.  */
typedef enum {
    MSG_REQUIRED,           /* always */
    MSG_OMIT_EMPTY,         /* when its string or id array is not empty */
    MSG_OMIT_ZERO,          /* when its INT64 value is not 0 */
    MSG_DRY_RUN_ONLY        /* when the sweep result's dry_run is true */
} msg_presence_t;

typedef struct {
    const char *key;
    msg_kind_t kind;
    msg_presence_t presence;
    size_t offset;          /* of the value in the target struct */
    size_t count_offset;    /* arrays and stats: of the uint32_t count */
    uint64_t min;           /* minimum integer value or array count */
    uint64_t max;           /* maximum UINT32 value or array count */
    const char *limit;      /* the limit that sets max, or NULL */
} msg_field_t;

/*  A map: its keys and the rules that tie its fields together.  */
typedef struct msg_schema msg_schema_t;

/*  Checks the rules between fields once every field is known to be
    valid on its own.  Returns 0, or -1 after a call to msg_check_fail.  */
struct msg_check;
typedef int (msg_cross_check_fn) (struct msg_check *check,
                                  const void *target);

struct msg_schema {
    const char *name;       /* for messages: "touch", "client", ... */
    const msg_field_t *fields;
    size_t field_count;
    msg_cross_check_fn *cross_check;    /* or NULL */
};

/*  Maximum keys in one schema, because the decoder tracks the keys it
    has seen in one bit each of a uint32_t.  */
#define MSG_SCHEMA_KEYS_MAX 32

/*  Returns the schema of a message body: for a result, the variant of
    cmd; for other types cmd is ignored.  Returns NULL when type is not a
    message type or cmd is not a command.  */
const msg_schema_t *
msg_schema_of (msg_type_t type, msg_type_t cmd);

extern const msg_schema_t msg_schema_client;
extern const msg_schema_t msg_schema_event;
extern const msg_schema_t msg_schema_tombstone;

/*  Returns true when the field's presence rule puts it on the wire for
    this target.  */
bool
msg_field_is_present (const msg_field_t *field, const void *target);

/*  Returns true when a message of this type carries "req".  */
bool
msg_type_has_req (msg_type_t type);

/*  Look up a wire name.  Each returns 0 and sets *value, or -1 when the
    name is not one of the names (for types, "unknown" is not a name and
    neither is the error code "none").  */
int
msg_type_parse (msg_str_t name, msg_type_t *type);

int
msg_error_code_parse (msg_str_t name, msg_error_code_t *code);

int
msg_reason_parse (msg_str_t name, msg_reason_t *reason);

int
msg_brake_action_parse (msg_str_t name, msg_brake_action_t *action);

#endif
