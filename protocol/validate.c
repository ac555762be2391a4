/*  validate.c: checks whole structs and messages against their schemas,
    and the rules that tie one field to another.  */

#include "msg_check.h"

#include <assert.h>
#include <inttypes.h>
#include <string.h>

/*  Returns a pointer to the field's value inside target.  */
static const void *
s_value (const msg_field_t *field, const void *target)
{
    return (const char *) target + field->offset;
}

static uint32_t
s_count (const msg_field_t *field, const void *target)
{
    return *(const uint32_t *) ((const char *) target + field->count_offset);
}

static int
s_check_ids (msg_check_t *check, const msg_field_t *field,
             const void *target)
{
    const msg_str_t *ids = *(msg_str_t *const *) s_value (field, target);
    uint32_t count = s_count (field, target);

    if (msg_check_count (check, "an array", count, field->min, field->max,
                         field->limit))
        return -1;
    assert (count == 0 || ids);

    /*  Format the path only for an id that fails.  */
    for (uint32_t index = 0; index < count; index++) {
        if (msg_id_is_valid (ids[index]))
            continue;
        msg_check_push_index (check, index);
        return msg_check_id (check, ids[index]);
    }
    return 0;
}

/*  Checks an array of structs of one schema: clients, events or
    tombstones.  */
static int
s_check_struct_array (msg_check_t *check, const msg_field_t *field,
                      const void *items, uint32_t count,
                      const msg_schema_t *schema, size_t item_size)
{
    if (msg_check_count (check, "an array", count, field->min, field->max,
                         field->limit))
        return -1;
    assert (count == 0 || items);

    for (uint32_t index = 0; index < count; index++) {
        size_t mark = msg_check_push_index (check, index);
        if (msg_check_struct (check, schema,
                              (const char *) items + index * item_size))
            return -1;
        msg_check_pop (check, mark);
    }
    return 0;
}

int
msg_check_stats (msg_check_t *check, const msg_stat_t *stats,
                 uint32_t count)
{
    if (msg_check_count (check, "a map", count, 0, MSG_STATS_MAX,
                         "MSG_STATS_MAX"))
        return -1;
    assert (count == 0 || stats);

    for (uint32_t index = 0; index < count; index++) {
        size_t mark = msg_check_push_index (check, index);
        if (msg_check_stat_name (check, stats[index].name))
            return -1;

        /*  At most MSG_STATS_MAX squared comparisons, so a plain scan.  */
        for (uint32_t other = 0; other < index; other++) {
            if (stats[other].name.len == stats[index].name.len
                && memcmp (stats[other].name.ptr, stats[index].name.ptr,
                           stats[index].name.len) == 0)
                return msg_check_fail (check, MSG_ERR_BAD_REQUEST,
                                       "duplicate name, also at index %"
                                       PRIu32, other);
        }
        msg_check_pop (check, mark);
    }
    return 0;
}

static int
s_check_enum (msg_check_t *check, int value, int first, int count,
              const char *what)
{
    if (value < first || value >= count)
        return msg_check_fail (check, MSG_ERR_BAD_REQUEST,
                               "%d is not a valid %s", value, what);
    return 0;
}

int
msg_check_field (msg_check_t *check, const msg_field_t *field,
                 const void *target)
{
    const void *value = s_value (field, target);

    switch (field->kind) {
    case MSG_KIND_ID:
        return msg_check_id (check, *(const msg_str_t *) value);
    case MSG_KIND_NODE:
        return msg_check_node (check, *(const msg_str_t *) value);
    case MSG_KIND_SCHEDULER:
        return msg_check_scheduler (check, *(const msg_str_t *) value);
    case MSG_KIND_META:
        return msg_check_meta (check, *(const msg_str_t *) value);
    case MSG_KIND_TEXT:
        return msg_check_text (check, *(const msg_str_t *) value);
    case MSG_KIND_UINT32:
        return msg_check_uint (check, *(const uint32_t *) value, field->min,
                               field->max, field->limit);
    case MSG_KIND_UINT64:
        return msg_check_uint (check, *(const uint64_t *) value, field->min,
                               UINT64_MAX, NULL);
    case MSG_KIND_INT64:
        return msg_check_int (check, *(const int64_t *) value,
                              (int64_t) field->min);
    case MSG_KIND_BOOL:
        return 0;
    case MSG_KIND_REASON:
        return s_check_enum (check, *(const msg_reason_t *) value, 0,
                             MSG_REASON_COUNT, "reason");
    case MSG_KIND_CODE:
        return s_check_enum (check, *(const msg_error_code_t *) value,
                             MSG_ERR_NONE + 1, MSG_ERR_CODE_COUNT,
                             "error code");
    case MSG_KIND_BRAKE_ACTION:
        return s_check_enum (check, *(const msg_brake_action_t *) value, 0,
                             MSG_BRAKE_ACTION_COUNT, "brake action");
    case MSG_KIND_ID_ARRAY:
        return s_check_ids (check, field, target);
    case MSG_KIND_CLIENT:
        return msg_check_struct (check, &msg_schema_client, value);
    case MSG_KIND_CLIENT_ARRAY:
        return s_check_struct_array (check, field,
                                     *(msg_client_t *const *) value,
                                     s_count (field, target),
                                     &msg_schema_client,
                                     sizeof (msg_client_t));
    case MSG_KIND_EVENT_ARRAY:
        return s_check_struct_array (check, field,
                                     *(msg_event_t *const *) value,
                                     s_count (field, target),
                                     &msg_schema_event,
                                     sizeof (msg_event_t));
    case MSG_KIND_TOMBSTONE_ARRAY:
        return s_check_struct_array (check, field,
                                     *(msg_tombstone_t *const *) value,
                                     s_count (field, target),
                                     &msg_schema_tombstone,
                                     sizeof (msg_tombstone_t));
    case MSG_KIND_STATS:
        return msg_check_stats (check,
                                *(msg_stat_t *const *) value,
                                s_count (field, target));
    }
    assert (!"unknown field kind");
    return -1;
}

int
msg_check_struct (msg_check_t *check, const msg_schema_t *schema,
                  const void *target)
{
    for (size_t index = 0; index < schema->field_count; index++) {
        const msg_field_t *field = &schema->fields[index];
        size_t mark = msg_check_push_key (check, field->key,
                                          strlen (field->key));

        if (msg_field_is_present (field, target)) {
            if (msg_check_field (check, field, target))
                return -1;
        }
        else if (field->presence == MSG_DRY_RUN_ONLY
                 && s_count (field, target) > 0)
            return msg_check_fail (check, MSG_ERR_BAD_REQUEST,
                                   "must be empty unless dry_run is true");
        msg_check_pop (check, mark);
    }
    if (schema->cross_check)
        return schema->cross_check (check, target);
    return 0;
}

int
msg_check_message (msg_check_t *check, const msg_t *msg)
{
    if ((unsigned) msg->type >= MSG_TYPE_COUNT) {
        msg_check_push_key (check, "type", 4);
        return msg_check_fail (check, MSG_ERR_BAD_REQUEST,
                               "%d is not a message type", (int) msg->type);
    }
    if (msg->req != 0 && !msg_type_has_req (msg->type)) {
        msg_check_push_key (check, "req", 3);
        return msg_check_fail (check, MSG_ERR_BAD_REQUEST,
                               "must be 0 in a %s, got %" PRIu64,
                               msg_type_name (msg->type), msg->req);
    }
    const void *target = &msg->u;
    if (msg->type == MSG_RESULT) {
        target = &msg->u.result;
        if (!msg_type_is_command (msg->u.result.cmd)) {
            msg_check_push_key (check, "cmd", 3);
            return msg_check_fail (check, MSG_ERR_BAD_REQUEST,
                                   "expected a command, got %s",
                                   msg_type_name (msg->u.result.cmd));
        }
    }
    return msg_check_struct (check,
                             msg_schema_of (msg->type, msg->u.result.cmd),
                             target);
}

/*  Moves the path to a field of the struct being checked, so that a
    rule between fields blames one of them.  */
static msg_check_t *
s_at (msg_check_t *check, const char *key)
{
    msg_check_push_key (check, key, strlen (key));
    return check;
}

int
msg_check_event_fields (msg_check_t *check, const void *target)
{
    const msg_event_t *event = target;

    if (event->prev >= event->seq)
        return msg_check_fail (s_at (check, "prev"), MSG_ERR_BAD_REQUEST,
                               "expected less than seq %" PRIu64
                               ", got %" PRIu64, event->seq, event->prev);

    /*  Only a sweep removes a client as stale, and sweep ids start at 1.  */
    if (event->reason == MSG_REASON_STALE && event->sweep == 0)
        return msg_check_fail (s_at (check, "sweep"), MSG_ERR_BAD_REQUEST,
                               "expected a sweep id of at least 1 for"
                               " reason stale, got 0");
    if (event->reason != MSG_REASON_STALE && event->sweep != 0)
        return msg_check_fail (s_at (check, "sweep"), MSG_ERR_BAD_REQUEST,
                               "expected 0 for reason %s, got %" PRIu64,
                               msg_reason_name (event->reason),
                               event->sweep);
    return 0;
}

int
msg_check_touch_result (msg_check_t *check, const void *target)
{
    const msg_result_t *result = target;

    /*  Each id of the touch is touched, unknown or evicted.  */
    uint64_t total = (uint64_t) result->touched + result->unknown_count
                     + result->evicted_count;
    if (total > MSG_TOUCH_IDS_MAX)
        return msg_check_fail (s_at (check, result->evicted_count
                                                ? "evicted"
                                                : "unknown"),
                               MSG_ERR_LIMIT_EXCEEDED,
                               "expected touched, unknown and evicted ids"
                               " to be at most %d together, got %" PRIu64
                               " (over MSG_TOUCH_IDS_MAX)",
                               MSG_TOUCH_IDS_MAX, total);
    return 0;
}

int
msg_check_sweep_result (msg_check_t *check, const void *target)
{
    const msg_result_t *result = target;

    if (result->dry_run && result->sweep != 0)
        return msg_check_fail (s_at (check, "sweep"), MSG_ERR_BAD_REQUEST,
                               "expected 0 in a dry run, got %" PRIu64,
                               result->sweep);
    if (!result->dry_run && result->sweep == 0)
        return msg_check_fail (s_at (check, "sweep"), MSG_ERR_BAD_REQUEST,
                               "expected a sweep id of at least 1 when"
                               " dry_run is false, got 0");
    if (result->ids_count > result->stale)
        return msg_check_fail (s_at (check, "ids"), MSG_ERR_BAD_REQUEST,
                               "expected at most stale (%" PRIu64
                               ") ids, got %" PRIu32, result->stale,
                               result->ids_count);
    return 0;
}

int
msg_check_events_result (msg_check_t *check, const void *target)
{
    const msg_result_t *result = target;

    if (result->first_seq > result->last_seq)
        return msg_check_fail (s_at (check, "first_seq"),
                               MSG_ERR_BAD_REQUEST,
                               "expected at most last_seq %" PRIu64
                               ", got %" PRIu64, result->last_seq,
                               result->first_seq);
    if (result->events_count > 0 && result->first_seq == 0)
        return msg_check_fail (s_at (check, "first_seq"),
                               MSG_ERR_BAD_REQUEST,
                               "expected at least 1 when events are"
                               " returned, got 0");

    /*  A returned event is retained, so it lies within the window.  */
    for (uint32_t index = 0; index < result->events_count; index++) {
        uint64_t seq = result->events[index].seq;
        if (seq >= result->first_seq && seq <= result->last_seq)
            continue;
        msg_check_push_index (s_at (check, "events"), index);
        return msg_check_fail (s_at (check, "seq"), MSG_ERR_BAD_REQUEST,
                               "expected a seq from first_seq %" PRIu64
                               " to last_seq %" PRIu64 ", got %" PRIu64,
                               result->first_seq, result->last_seq, seq);
    }
    return 0;
}

int
msg_check_brake (msg_check_t *check, const void *target)
{
    const msg_brake_t *brake = target;

    if (brake->for_ms > MSG_BRAKE_FOR_MAX_MS)
        return msg_check_fail (s_at (check, "for_ms"),
                               MSG_ERR_LIMIT_EXCEEDED,
                               "expected at most %lld ms, got %" PRId64
                               " (over MSG_BRAKE_FOR_MAX_MS)",
                               MSG_BRAKE_FOR_MAX_MS, brake->for_ms);
    if (brake->for_ms != 0 && brake->action != MSG_BRAKE_RELEASE)
        return msg_check_fail (s_at (check, "for_ms"), MSG_ERR_BAD_REQUEST,
                               "allowed only with action release, got"
                               " action %s",
                               msg_brake_action_name (brake->action));
    return 0;
}

int
msg_check_brake_result (msg_check_t *check, const void *target)
{
    const msg_brake_state_t *brake = &((const msg_result_t *) target)->brake;

    if (brake->stale > brake->clients)
        return msg_check_fail (s_at (check, "stale"), MSG_ERR_BAD_REQUEST,
                               "expected at most clients (%" PRIu64
                               "), got %" PRIu64, brake->clients,
                               brake->stale);
    if (brake->limit > brake->clients)
        return msg_check_fail (s_at (check, "limit"), MSG_ERR_BAD_REQUEST,
                               "expected at most clients (%" PRIu64
                               "), got %" PRIu64, brake->clients,
                               brake->limit);
    if (brake->held_back > brake->stale)
        return msg_check_fail (s_at (check, "held_back"),
                               MSG_ERR_BAD_REQUEST,
                               "expected at most stale (%" PRIu64
                               "), got %" PRIu64, brake->stale,
                               brake->held_back);
    if (brake->held_back != 0 && !brake->engaged)
        return msg_check_fail (s_at (check, "held_back"),
                               MSG_ERR_BAD_REQUEST,
                               "expected 0 when engaged is false, got %"
                               PRIu64, brake->held_back);
    return 0;
}
