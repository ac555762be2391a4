/*  schema.c: the keys of every message, in wire order.  */

#include "msg_check.h"

#include <stddef.h>

#define COUNT_OF(array) (sizeof (array) / sizeof ((array)[0]))

/*  Commands.  */

static const msg_field_t s_register_fields[] = {
    { .key = "id", .kind = MSG_KIND_ID,
      .offset = offsetof (msg_register_t, id) },
    { .key = "node", .kind = MSG_KIND_NODE,
      .offset = offsetof (msg_register_t, node) },
    { .key = "meta", .kind = MSG_KIND_META, .presence = MSG_OMIT_EMPTY,
      .offset = offsetof (msg_register_t, meta) },
    { .key = "stale_after_ms", .kind = MSG_KIND_INT64,
      .presence = MSG_OMIT_ZERO,
      .offset = offsetof (msg_register_t, stale_after_ms), .min = 1 },
};

static const msg_field_t s_touch_fields[] = {
    { .key = "ids", .kind = MSG_KIND_ID_ARRAY,
      .offset = offsetof (msg_touch_t, ids),
      .count_offset = offsetof (msg_touch_t, count),
      .min = 1, .max = MSG_TOUCH_IDS_MAX, .limit = "MSG_TOUCH_IDS_MAX" },
};

static const msg_field_t s_client_ref_fields[] = {
    { .key = "id", .kind = MSG_KIND_ID,
      .offset = offsetof (msg_client_ref_t, id) },
};

static const msg_field_t s_list_fields[] = {
    { .key = "limit", .kind = MSG_KIND_UINT32,
      .offset = offsetof (msg_list_t, limit),
      .min = 1, .max = MSG_PAGE_MAX, .limit = "MSG_PAGE_MAX" },
    { .key = "after", .kind = MSG_KIND_ID, .presence = MSG_OMIT_EMPTY,
      .offset = offsetof (msg_list_t, after) },
    { .key = "node", .kind = MSG_KIND_NODE, .presence = MSG_OMIT_EMPTY,
      .offset = offsetof (msg_list_t, node) },
};

static const msg_field_t s_sweep_fields[] = {
    { .key = "dry_run", .kind = MSG_KIND_BOOL,
      .offset = offsetof (msg_sweep_t, dry_run) },
};

static const msg_field_t s_events_fields[] = {
    { .key = "since", .kind = MSG_KIND_UINT64,
      .offset = offsetof (msg_events_t, since) },
    { .key = "limit", .kind = MSG_KIND_UINT32,
      .offset = offsetof (msg_events_t, limit),
      .min = 1, .max = MSG_PAGE_MAX, .limit = "MSG_PAGE_MAX" },
    { .key = "node", .kind = MSG_KIND_NODE, .presence = MSG_OMIT_EMPTY,
      .offset = offsetof (msg_events_t, node) },
};

static const msg_field_t s_brake_fields[] = {
    { .key = "action", .kind = MSG_KIND_BRAKE_ACTION,
      .offset = offsetof (msg_brake_t, action) },
    { .key = "for_ms", .kind = MSG_KIND_INT64, .presence = MSG_OMIT_ZERO,
      .offset = offsetof (msg_brake_t, for_ms), .min = 1 },
};

/*  Tick, event and error.  */

static const msg_field_t s_tick_fields[] = {
    { .key = "scheduler", .kind = MSG_KIND_SCHEDULER,
      .offset = offsetof (msg_tick_t, scheduler) },
    { .key = "seq", .kind = MSG_KIND_UINT64,
      .offset = offsetof (msg_tick_t, seq), .min = 1 },
    { .key = "sent_ms", .kind = MSG_KIND_INT64,
      .offset = offsetof (msg_tick_t, sent_ms) },
    { .key = "interval_ms", .kind = MSG_KIND_INT64,
      .offset = offsetof (msg_tick_t, interval_ms), .min = 1 },
};

static const msg_field_t s_event_fields[] = {
    { .key = "seq", .kind = MSG_KIND_UINT64,
      .offset = offsetof (msg_event_t, seq), .min = 1 },
    { .key = "prev", .kind = MSG_KIND_UINT64,
      .offset = offsetof (msg_event_t, prev) },
    { .key = "id", .kind = MSG_KIND_ID,
      .offset = offsetof (msg_event_t, id) },
    { .key = "node", .kind = MSG_KIND_NODE,
      .offset = offsetof (msg_event_t, node) },
    { .key = "reason", .kind = MSG_KIND_REASON,
      .offset = offsetof (msg_event_t, reason) },
    { .key = "last_activity_ms", .kind = MSG_KIND_INT64,
      .offset = offsetof (msg_event_t, last_activity_ms) },
    { .key = "removed_ms", .kind = MSG_KIND_INT64,
      .offset = offsetof (msg_event_t, removed_ms) },
    { .key = "sweep", .kind = MSG_KIND_UINT64,
      .offset = offsetof (msg_event_t, sweep) },
};

static const msg_field_t s_error_fields[] = {
    { .key = "code", .kind = MSG_KIND_CODE,
      .offset = offsetof (msg_error_t, code) },
    { .key = "message", .kind = MSG_KIND_TEXT,
      .offset = offsetof (msg_error_t, message) },
};

static const msg_field_t s_client_fields[] = {
    { .key = "id", .kind = MSG_KIND_ID,
      .offset = offsetof (msg_client_t, id) },
    { .key = "node", .kind = MSG_KIND_NODE,
      .offset = offsetof (msg_client_t, node) },
    { .key = "registered_ms", .kind = MSG_KIND_INT64,
      .offset = offsetof (msg_client_t, registered_ms) },
    { .key = "last_activity_ms", .kind = MSG_KIND_INT64,
      .offset = offsetof (msg_client_t, last_activity_ms) },
    { .key = "meta", .kind = MSG_KIND_META, .presence = MSG_OMIT_EMPTY,
      .offset = offsetof (msg_client_t, meta) },
    { .key = "stale_after_ms", .kind = MSG_KIND_INT64,
      .presence = MSG_OMIT_ZERO,
      .offset = offsetof (msg_client_t, stale_after_ms), .min = 1 },
};

static const msg_field_t s_tombstone_fields[] = {
    { .key = "id", .kind = MSG_KIND_ID,
      .offset = offsetof (msg_tombstone_t, id) },
    { .key = "node", .kind = MSG_KIND_NODE,
      .offset = offsetof (msg_tombstone_t, node) },
    { .key = "reason", .kind = MSG_KIND_REASON,
      .offset = offsetof (msg_tombstone_t, reason) },
    { .key = "last_activity_ms", .kind = MSG_KIND_INT64,
      .offset = offsetof (msg_tombstone_t, last_activity_ms) },
    { .key = "removed_ms", .kind = MSG_KIND_INT64,
      .offset = offsetof (msg_tombstone_t, removed_ms) },
    { .key = "seq", .kind = MSG_KIND_UINT64,
      .offset = offsetof (msg_tombstone_t, seq), .min = 1 },
};

/*  Result variants, one per command.  */

static const msg_field_t s_register_result_fields[] = {
    { .key = "created", .kind = MSG_KIND_BOOL,
      .offset = offsetof (msg_result_t, created) },
};

static const msg_field_t s_touch_result_fields[] = {
    { .key = "touched", .kind = MSG_KIND_UINT32,
      .offset = offsetof (msg_result_t, touched),
      .max = MSG_TOUCH_IDS_MAX, .limit = "MSG_TOUCH_IDS_MAX" },
    { .key = "unknown", .kind = MSG_KIND_ID_ARRAY,
      .offset = offsetof (msg_result_t, unknown),
      .count_offset = offsetof (msg_result_t, unknown_count),
      .max = MSG_TOUCH_IDS_MAX, .limit = "MSG_TOUCH_IDS_MAX" },
    /*  Left out when empty, so that a peer that predates tombstones can
        read every touch result of a registry that keeps none.  */
    { .key = "evicted", .kind = MSG_KIND_ID_ARRAY,
      .presence = MSG_OMIT_EMPTY,
      .offset = offsetof (msg_result_t, evicted),
      .count_offset = offsetof (msg_result_t, evicted_count),
      .max = MSG_TOUCH_IDS_MAX, .limit = "MSG_TOUCH_IDS_MAX" },
};

static const msg_field_t s_removal_result_fields[] = {
    { .key = "seq", .kind = MSG_KIND_UINT64,
      .offset = offsetof (msg_result_t, seq), .min = 1 },
};

static const msg_field_t s_get_result_fields[] = {
    { .key = "client", .kind = MSG_KIND_CLIENT,
      .offset = offsetof (msg_result_t, client) },
};

static const msg_field_t s_list_result_fields[] = {
    { .key = "clients", .kind = MSG_KIND_CLIENT_ARRAY,
      .offset = offsetof (msg_result_t, clients),
      .count_offset = offsetof (msg_result_t, clients_count),
      .max = MSG_PAGE_MAX, .limit = "MSG_PAGE_MAX" },
    { .key = "next", .kind = MSG_KIND_ID, .presence = MSG_OMIT_EMPTY,
      .offset = offsetof (msg_result_t, next) },
};

static const msg_field_t s_stats_result_fields[] = {
    { .key = "stats", .kind = MSG_KIND_STATS,
      .offset = offsetof (msg_result_t, stats),
      .count_offset = offsetof (msg_result_t, stats_count),
      .max = MSG_STATS_MAX, .limit = "MSG_STATS_MAX" },
};

static const msg_field_t s_sweep_result_fields[] = {
    { .key = "sweep", .kind = MSG_KIND_UINT64,
      .offset = offsetof (msg_result_t, sweep) },
    { .key = "dry_run", .kind = MSG_KIND_BOOL,
      .offset = offsetof (msg_result_t, dry_run) },
    { .key = "stale", .kind = MSG_KIND_UINT64,
      .offset = offsetof (msg_result_t, stale) },
    { .key = "ids", .kind = MSG_KIND_ID_ARRAY, .presence = MSG_DRY_RUN_ONLY,
      .offset = offsetof (msg_result_t, ids),
      .count_offset = offsetof (msg_result_t, ids_count),
      .max = MSG_PAGE_MAX, .limit = "MSG_PAGE_MAX" },
};

static const msg_field_t s_tombstones_result_fields[] = {
    { .key = "tombstones", .kind = MSG_KIND_TOMBSTONE_ARRAY,
      .offset = offsetof (msg_result_t, tombstones),
      .count_offset = offsetof (msg_result_t, tombstones_count),
      .max = MSG_PAGE_MAX, .limit = "MSG_PAGE_MAX" },
    { .key = "next", .kind = MSG_KIND_ID, .presence = MSG_OMIT_EMPTY,
      .offset = offsetof (msg_result_t, next) },
};

static const msg_field_t s_events_result_fields[] = {
    { .key = "events", .kind = MSG_KIND_EVENT_ARRAY,
      .offset = offsetof (msg_result_t, events),
      .count_offset = offsetof (msg_result_t, events_count),
      .max = MSG_PAGE_MAX, .limit = "MSG_PAGE_MAX" },
    { .key = "first_seq", .kind = MSG_KIND_UINT64,
      .offset = offsetof (msg_result_t, first_seq) },
    { .key = "last_seq", .kind = MSG_KIND_UINT64,
      .offset = offsetof (msg_result_t, last_seq) },
};

#define SCHEMA(name, fields, cross_check) \
    { name, fields, COUNT_OF (fields), cross_check }

static const msg_schema_t s_register = SCHEMA ("register",
                                               s_register_fields, NULL);
static const msg_schema_t s_touch = SCHEMA ("touch", s_touch_fields, NULL);
static const msg_schema_t s_deregister = SCHEMA ("deregister",
                                                 s_client_ref_fields, NULL);
static const msg_schema_t s_evict = SCHEMA ("evict", s_client_ref_fields,
                                            NULL);
static const msg_schema_t s_get = SCHEMA ("get", s_client_ref_fields, NULL);
static const msg_schema_t s_list = SCHEMA ("list", s_list_fields, NULL);
static const msg_schema_t s_stats = { "stats", NULL, 0, NULL };
static const msg_schema_t s_sweep = SCHEMA ("sweep", s_sweep_fields, NULL);
static const msg_schema_t s_events = SCHEMA ("events", s_events_fields,
                                             NULL);
static const msg_schema_t s_tombstones = SCHEMA ("tombstones",
                                                 s_list_fields, NULL);
static const msg_schema_t s_tick = SCHEMA ("tick", s_tick_fields, NULL);
static const msg_schema_t s_error = SCHEMA ("error", s_error_fields, NULL);

const msg_schema_t msg_schema_event = SCHEMA ("event", s_event_fields,
                                              msg_check_event_fields);
const msg_schema_t msg_schema_client = SCHEMA ("client", s_client_fields,
                                               NULL);
const msg_schema_t msg_schema_tombstone = SCHEMA ("tombstone",
                                                  s_tombstone_fields, NULL);

static const msg_schema_t s_result_register = SCHEMA (
    "register result", s_register_result_fields, NULL);
static const msg_schema_t s_result_touch = SCHEMA (
    "touch result", s_touch_result_fields, msg_check_touch_result);
static const msg_schema_t s_result_deregister = SCHEMA (
    "deregister result", s_removal_result_fields, NULL);
static const msg_schema_t s_result_evict = SCHEMA (
    "evict result", s_removal_result_fields, NULL);
static const msg_schema_t s_result_get = SCHEMA (
    "get result", s_get_result_fields, NULL);
static const msg_schema_t s_result_list = SCHEMA (
    "list result", s_list_result_fields, NULL);
static const msg_schema_t s_result_stats = SCHEMA (
    "stats result", s_stats_result_fields, NULL);
static const msg_schema_t s_result_sweep = SCHEMA (
    "sweep result", s_sweep_result_fields, msg_check_sweep_result);
static const msg_schema_t s_result_events = SCHEMA (
    "events result", s_events_result_fields, msg_check_events_result);
static const msg_schema_t s_result_tombstones = SCHEMA (
    "tombstones result", s_tombstones_result_fields, NULL);

static const msg_field_t s_brake_result_fields[] = {
    { .key = "enabled", .kind = MSG_KIND_BOOL,
      .offset = offsetof (msg_result_t, brake.enabled) },
    { .key = "engaged", .kind = MSG_KIND_BOOL,
      .offset = offsetof (msg_result_t, brake.engaged) },
    { .key = "share", .kind = MSG_KIND_UINT32,
      .offset = offsetof (msg_result_t, brake.share), .min = 1,
      .max = 100 },
    { .key = "min_clients", .kind = MSG_KIND_UINT64,
      .offset = offsetof (msg_result_t, brake.min_clients) },
    { .key = "clients", .kind = MSG_KIND_UINT64,
      .offset = offsetof (msg_result_t, brake.clients) },
    { .key = "stale", .kind = MSG_KIND_UINT64,
      .offset = offsetof (msg_result_t, brake.stale) },
    { .key = "limit", .kind = MSG_KIND_UINT64,
      .offset = offsetof (msg_result_t, brake.limit) },
    { .key = "held_back", .kind = MSG_KIND_UINT64,
      .offset = offsetof (msg_result_t, brake.held_back) },
    { .key = "release_next", .kind = MSG_KIND_BOOL,
      .offset = offsetof (msg_result_t, brake.release_next) },
    { .key = "release_left_ms", .kind = MSG_KIND_UINT64,
      .offset = offsetof (msg_result_t, brake.release_left_ms) },
};

static const msg_schema_t s_brake = SCHEMA ("brake", s_brake_fields,
                                            msg_check_brake);
static const msg_schema_t s_result_brake = SCHEMA (
    "brake result", s_brake_result_fields, msg_check_brake_result);

/*  Indexed by msg_type_t.  Results are looked up by command below.  */
static const msg_schema_t *const s_schemas[MSG_TYPE_COUNT] = {
    [MSG_REGISTER] = &s_register,
    [MSG_TOUCH] = &s_touch,
    [MSG_DEREGISTER] = &s_deregister,
    [MSG_EVICT] = &s_evict,
    [MSG_GET] = &s_get,
    [MSG_LIST] = &s_list,
    [MSG_STATS] = &s_stats,
    [MSG_SWEEP] = &s_sweep,
    [MSG_EVENTS] = &s_events,
    [MSG_TOMBSTONES] = &s_tombstones,
    [MSG_BRAKE] = &s_brake,
    [MSG_TICK] = &s_tick,
    [MSG_EVENT] = &msg_schema_event,
    [MSG_RESULT] = NULL,
    [MSG_ERROR] = &s_error,
};

static const msg_schema_t *const s_result_schemas[MSG_TYPE_COUNT] = {
    [MSG_REGISTER] = &s_result_register,
    [MSG_TOUCH] = &s_result_touch,
    [MSG_DEREGISTER] = &s_result_deregister,
    [MSG_EVICT] = &s_result_evict,
    [MSG_GET] = &s_result_get,
    [MSG_LIST] = &s_result_list,
    [MSG_STATS] = &s_result_stats,
    [MSG_SWEEP] = &s_result_sweep,
    [MSG_EVENTS] = &s_result_events,
    [MSG_TOMBSTONES] = &s_result_tombstones,
    [MSG_BRAKE] = &s_result_brake,
};

const msg_schema_t *
msg_schema_of (msg_type_t type, msg_type_t cmd)
{
    if ((unsigned) type >= MSG_TYPE_COUNT)
        return NULL;
    if (type != MSG_RESULT)
        return s_schemas[type];
    if (!msg_type_is_command (cmd))
        return NULL;
    return s_result_schemas[cmd];
}

bool
msg_field_is_present (const msg_field_t *field, const void *target)
{
    const char *base = target;

    switch (field->presence) {
    case MSG_REQUIRED:
        return true;
    case MSG_OMIT_EMPTY: {
        if (field->kind == MSG_KIND_ID_ARRAY)
            return *(const uint32_t *) (base + field->count_offset) > 0;
        const msg_str_t *text = (const msg_str_t *) (base + field->offset);
        return text->len > 0;
    }
    case MSG_OMIT_ZERO:
        return *(const int64_t *) (base + field->offset) != 0;
    case MSG_DRY_RUN_ONLY:
        return ((const msg_result_t *) target)->dry_run;
    }
    return true;
}

bool
msg_type_has_req (msg_type_t type)
{
    return type != MSG_TICK && type != MSG_EVENT;
}
