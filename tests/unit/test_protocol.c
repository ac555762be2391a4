/*  test_protocol.c: encoding, decoding and validation of every message.

    Round trips cover every message type and result variant.  Rejection
    tests come in two sets.  Hand-written bodies cover limits, names and
    framing.  Mutations of each valid sample's msgpack tree (a key
    removed, a value of every other type, a key twice, an unknown key)
    reach every field of every message without listing them.
*/

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocol.h"

#define COUNT_OF(array) (sizeof (array) / sizeof ((array)[0]))
#define STR(text) { text, sizeof (text) - 1 }

/*  Assertions that print both sides.  */

static void
s_assert_contains (const char *text, const char *fragment)
{
    if (strstr (text, fragment))
        return;
    print_error ("expected \"%s\" in \"%s\"\n", fragment, text);
    fail ();
}

static void
s_assert_str_equal (msg_str_t expected, msg_str_t actual)
{
    assert_int_equal (expected.len, actual.len);
    if (expected.len > 0)
        assert_memory_equal (expected.ptr, actual.ptr, expected.len);
}

/*  Sample messages, one per type and result variant, all valid.  */

static const char s_meta_bytes[] = { 0x00, 0x01, (char) 0xff, 'm' };
#define META { s_meta_bytes, sizeof (s_meta_bytes) }

static msg_str_t s_ids[] = {
    STR ("client-1"), STR ("client-2"), STR ("c3!~")
};

static msg_client_t s_clients[] = {
    { STR ("client-1"), STR ("node-a"), 1700000000000, 1700000060000,
      META, 0 },
    { STR ("client-2"), STR ("node-b.east:1"), 1700000000001,
      1700000000001, { NULL, 0 }, 90000 },
};

static msg_str_t s_evicted_ids[] = { STR ("client-4"), STR ("client-5") };

static msg_tombstone_t s_tombstones[] = {
    { STR ("client-4"), STR ("node-a"), MSG_REASON_STALE, 1700000000000,
      1700001800000, 7 },
    { STR ("client-5"), STR ("node-b"), MSG_REASON_DEREGISTERED,
      1700000000500, 1700001800100, 8 },
};

static msg_event_t s_events[] = {
    { 7, 0, STR ("client-1"), STR ("node-a"), MSG_REASON_STALE,
      1700000000000, 1700001800000, 3 },
    { 8, 7, STR ("client-2"), STR ("node-a"), MSG_REASON_OPERATOR,
      1700000000500, 1700001800100, 0 },
};

static msg_stat_t s_stats[] = {
    { STR ("clients"), 12 },
    { STR ("touches_total"), 123456789012 },
    { STR ("sweeps"), 0 },
};

static void
s_build_register (msg_t *msg)
{
    msg->type = MSG_REGISTER;
    msg->req = 1;
    msg->u.register_ = (msg_register_t) { STR ("client-1"), STR ("node-a"),
                                          META, 0 };
}

static void
s_build_register_own_threshold (msg_t *msg)
{
    msg->type = MSG_REGISTER;
    msg->req = 2;
    msg->u.register_ = (msg_register_t) { STR ("client-3"), STR ("node-a"),
                                          { NULL, 0 }, 120000 };
}

static void
s_build_register_bare (msg_t *msg)
{
    msg->type = MSG_REGISTER;
    msg->u.register_ = (msg_register_t) { STR ("client-1"), STR ("node-a"),
                                          { NULL, 0 }, 0 };
}

static void
s_build_touch (msg_t *msg)
{
    msg->type = MSG_TOUCH;
    msg->req = (uint64_t) 1 << 40;
    msg->u.touch = (msg_touch_t) { s_ids, COUNT_OF (s_ids) };
}

static void
s_build_deregister (msg_t *msg)
{
    msg->type = MSG_DEREGISTER;
    msg->req = 3;
    msg->u.client_ref.id = (msg_str_t) STR ("client-1");
}

static void
s_build_evict (msg_t *msg)
{
    msg->type = MSG_EVICT;
    msg->req = 4;
    msg->u.client_ref.id = (msg_str_t) STR ("client-2");
}

static void
s_build_get (msg_t *msg)
{
    msg->type = MSG_GET;
    msg->req = 5;
    msg->u.client_ref.id = (msg_str_t) STR ("client-1");
}

static void
s_build_list (msg_t *msg)
{
    msg->type = MSG_LIST;
    msg->req = 6;
    msg->u.list = (msg_list_t) { 100, STR ("client-1"), STR ("node-a") };
}

static void
s_build_list_bare (msg_t *msg)
{
    msg->type = MSG_LIST;
    msg->u.list.limit = MSG_PAGE_MAX;
}

static void
s_build_stats (msg_t *msg)
{
    msg->type = MSG_STATS;
    msg->req = 7;
}

static void
s_build_sweep (msg_t *msg)
{
    msg->type = MSG_SWEEP;
    msg->req = 8;
    msg->u.sweep.dry_run = true;
}

static void
s_build_events (msg_t *msg)
{
    msg->type = MSG_EVENTS;
    msg->req = 9;
    msg->u.events = (msg_events_t) { 6, 50, STR ("node-a") };
}

static void
s_build_tombstones (msg_t *msg)
{
    msg->type = MSG_TOMBSTONES;
    msg->req = 12;
    msg->u.tombstones = (msg_list_t) { 50, STR ("client-3"), STR ("node-a") };
}

static void
s_build_tombstones_bare (msg_t *msg)
{
    msg->type = MSG_TOMBSTONES;
    msg->u.tombstones.limit = 1;
}

static void
s_build_tick (msg_t *msg)
{
    msg->type = MSG_TICK;
    msg->u.tick = (msg_tick_t) { STR ("sched-1@host"), 99, 1700000000123,
                                 600000 };
}

static void
s_build_event (msg_t *msg)
{
    msg->type = MSG_EVENT;
    msg->u.event = s_events[0];
}

static void
s_build_event_operator (msg_t *msg)
{
    msg->type = MSG_EVENT;
    msg->u.event = s_events[1];
}

static void
s_build_error (msg_t *msg)
{
    msg->type = MSG_ERROR;
    msg->req = 10;
    msg->u.error.code = MSG_ERR_UNKNOWN_CLIENT;
    msg->u.error.message = (msg_str_t) STR (
        "field \"id\": client-9 is not registered");
}

static void
s_build_error_evicted (msg_t *msg)
{
    msg->type = MSG_ERROR;
    msg->req = 13;
    msg->u.error.code = MSG_ERR_EVICTED;
    msg->u.error.message = (msg_str_t) STR (
        "client \"client-4\" was removed at 2023-11-14T22:43:20.000Z"
        " (reason stale, event seq 7)");
}

static void
s_build_result (msg_t *msg, msg_type_t cmd)
{
    msg->type = MSG_RESULT;
    msg->req = 11;
    msg->u.result.cmd = cmd;
}

static void
s_build_result_register (msg_t *msg)
{
    s_build_result (msg, MSG_REGISTER);
    msg->u.result.created = true;
}

static void
s_build_result_touch (msg_t *msg)
{
    s_build_result (msg, MSG_TOUCH);
    msg->u.result.touched = 2;
    msg->u.result.unknown = s_ids + 2;
    msg->u.result.unknown_count = 1;
}

static void
s_build_result_touch_evicted (msg_t *msg)
{
    s_build_result (msg, MSG_TOUCH);
    msg->u.result.touched = 1;
    msg->u.result.evicted = s_evicted_ids;
    msg->u.result.evicted_count = COUNT_OF (s_evicted_ids);
}

static void
s_build_result_deregister (msg_t *msg)
{
    s_build_result (msg, MSG_DEREGISTER);
    msg->u.result.seq = 41;
}

static void
s_build_result_evict (msg_t *msg)
{
    s_build_result (msg, MSG_EVICT);
    msg->u.result.seq = 42;
}

static void
s_build_result_get (msg_t *msg)
{
    s_build_result (msg, MSG_GET);
    msg->u.result.client = s_clients[0];
}

static void
s_build_result_list (msg_t *msg)
{
    s_build_result (msg, MSG_LIST);
    msg->u.result.clients = s_clients;
    msg->u.result.clients_count = COUNT_OF (s_clients);
    msg->u.result.next = (msg_str_t) STR ("client-2");
}

static void
s_build_result_stats (msg_t *msg)
{
    s_build_result (msg, MSG_STATS);
    msg->u.result.stats = s_stats;
    msg->u.result.stats_count = COUNT_OF (s_stats);
}

static void
s_build_result_dry_sweep (msg_t *msg)
{
    s_build_result (msg, MSG_SWEEP);
    msg->u.result.dry_run = true;
    msg->u.result.stale = 5;
    msg->u.result.ids = s_ids;
    msg->u.result.ids_count = COUNT_OF (s_ids);
}

static void
s_build_result_sweep (msg_t *msg)
{
    s_build_result (msg, MSG_SWEEP);
    msg->u.result.sweep = 12;
    msg->u.result.stale = 4;
}

static void
s_build_result_events (msg_t *msg)
{
    s_build_result (msg, MSG_EVENTS);
    msg->u.result.events = s_events;
    msg->u.result.events_count = COUNT_OF (s_events);
    msg->u.result.first_seq = 5;
    msg->u.result.last_seq = 9;
}

static void
s_build_result_tombstones (msg_t *msg)
{
    s_build_result (msg, MSG_TOMBSTONES);
    msg->u.result.tombstones = s_tombstones;
    msg->u.result.tombstones_count = COUNT_OF (s_tombstones);
    msg->u.result.next = (msg_str_t) STR ("client-5");
}

static void
s_build_result_tombstones_empty (msg_t *msg)
{
    s_build_result (msg, MSG_TOMBSTONES);
}

static void
s_build_brake_status (msg_t *msg)
{
    msg->type = MSG_BRAKE;
    msg->req = 14;
    msg->u.brake.action = MSG_BRAKE_STATUS;
}

static void
s_build_brake_release_for (msg_t *msg)
{
    msg->type = MSG_BRAKE;
    msg->req = 15;
    msg->u.brake = (msg_brake_t) { MSG_BRAKE_RELEASE, 600000 };
}

static void
s_build_result_brake_engaged (msg_t *msg)
{
    s_build_result (msg, MSG_BRAKE);
    msg->u.result.brake = (msg_brake_state_t) {
        .enabled = true, .engaged = true, .share = 20, .min_clients = 100,
        .clients = 200, .stale = 100, .limit = 40, .held_back = 60,
    };
}

static void
s_build_result_brake_released (msg_t *msg)
{
    s_build_result (msg, MSG_BRAKE);
    msg->u.result.brake = (msg_brake_state_t) {
        .enabled = true, .share = 100, .min_clients = 0, .clients = 7,
        .stale = 7, .limit = 7, .release_next = true,
        .release_left_ms = 599000,
    };
}

typedef struct {
    const char *name;           /* round-trip test name */
    void (*build) (msg_t *msg);
} s_sample_t;

static const s_sample_t s_samples[] = {
    { "round_trip_register", s_build_register },
    { "round_trip_register_without_meta", s_build_register_bare },
    { "round_trip_register_with_own_threshold",
      s_build_register_own_threshold },
    { "round_trip_touch", s_build_touch },
    { "round_trip_deregister", s_build_deregister },
    { "round_trip_evict", s_build_evict },
    { "round_trip_get", s_build_get },
    { "round_trip_list", s_build_list },
    { "round_trip_list_without_options", s_build_list_bare },
    { "round_trip_stats", s_build_stats },
    { "round_trip_sweep", s_build_sweep },
    { "round_trip_events", s_build_events },
    { "round_trip_tombstones", s_build_tombstones },
    { "round_trip_tombstones_without_options", s_build_tombstones_bare },
    { "round_trip_tick", s_build_tick },
    { "round_trip_event_stale", s_build_event },
    { "round_trip_event_operator", s_build_event_operator },
    { "round_trip_error", s_build_error },
    { "round_trip_error_evicted", s_build_error_evicted },
    { "round_trip_result_register", s_build_result_register },
    { "round_trip_result_touch", s_build_result_touch },
    { "round_trip_result_touch_evicted", s_build_result_touch_evicted },
    { "round_trip_result_deregister", s_build_result_deregister },
    { "round_trip_result_evict", s_build_result_evict },
    { "round_trip_result_get", s_build_result_get },
    { "round_trip_result_list", s_build_result_list },
    { "round_trip_result_stats", s_build_result_stats },
    { "round_trip_result_dry_run_sweep", s_build_result_dry_sweep },
    { "round_trip_result_sweep", s_build_result_sweep },
    { "round_trip_result_events", s_build_result_events },
    { "round_trip_result_tombstones", s_build_result_tombstones },
    { "round_trip_result_tombstones_empty",
      s_build_result_tombstones_empty },
    { "round_trip_brake_status", s_build_brake_status },
    { "round_trip_brake_release_for", s_build_brake_release_for },
    { "round_trip_result_brake_engaged", s_build_result_brake_engaged },
    { "round_trip_result_brake_released", s_build_result_brake_released },
};

static void
s_sample (const s_sample_t *sample, msg_t *msg)
{
    memset (msg, 0, sizeof (*msg));
    sample->build (msg);
}

/*  Encoding and decoding helpers.  */

static void *
s_encode (const msg_t *msg, size_t *size)
{
    void *data = NULL;
    msg_failure_t failure;
    int rc = msg_encode (msg, &data, size, &failure);
    if (rc != 0)
        print_error ("encode failed: %s\n", failure.message);
    assert_int_equal (rc, 0);
    assert_non_null (data);
    return data;
}

static void
s_decode (const void *data, size_t size, msg_t *msg)
{
    msg_failure_t failure;
    int rc = msg_decode (data, size, msg, &failure);
    if (rc != 0)
        print_error ("decode failed: %s\n", failure.message);
    assert_int_equal (rc, 0);
    assert_int_equal (failure.code, MSG_ERR_NONE);
}

/*  Decodes a body that must be rejected with code and a message that
    contains fragment (usually 'field "name"').  */
static void
s_expect_rejected (const void *data, size_t size, msg_error_code_t code,
                   const char *fragment)
{
    msg_t msg;
    msg_failure_t failure;
    int rc = msg_decode (data, size, &msg, &failure);
    msg_release (&msg);
    if (rc == 0)
        print_error ("decode accepted a body that needs \"%s\"\n",
                     fragment);
    assert_int_equal (rc, -1);
    if (failure.code != code)
        print_error ("code %s, expected %s: %s\n",
                     msg_error_code_name (failure.code),
                     msg_error_code_name (code), failure.message);
    assert_int_equal (failure.code, code);
    s_assert_contains (failure.message, fragment);
}

static void
s_encode_rejects (const msg_t *msg, msg_error_code_t code,
                  const char *fragment)
{
    void *data = NULL;
    size_t size = 0;
    msg_failure_t failure;
    int rc = msg_encode (msg, &data, &size, &failure);
    free (data);
    assert_int_equal (rc, -1);
    assert_null (data);
    if (failure.code != code)
        print_error ("code %s, expected %s: %s\n",
                     msg_error_code_name (failure.code),
                     msg_error_code_name (code), failure.message);
    assert_int_equal (failure.code, code);
    s_assert_contains (failure.message, fragment);
}

/*  Field by field comparison.  */

static void
s_assert_client_equal (const msg_client_t *expected,
                       const msg_client_t *actual)
{
    s_assert_str_equal (expected->id, actual->id);
    s_assert_str_equal (expected->node, actual->node);
    assert_int_equal (expected->registered_ms, actual->registered_ms);
    assert_int_equal (expected->last_activity_ms, actual->last_activity_ms);
    s_assert_str_equal (expected->meta, actual->meta);
    assert_int_equal (expected->stale_after_ms, actual->stale_after_ms);
}

static void
s_assert_tombstone_equal (const msg_tombstone_t *expected,
                          const msg_tombstone_t *actual)
{
    s_assert_str_equal (expected->id, actual->id);
    s_assert_str_equal (expected->node, actual->node);
    assert_int_equal (expected->reason, actual->reason);
    assert_int_equal (expected->last_activity_ms, actual->last_activity_ms);
    assert_int_equal (expected->removed_ms, actual->removed_ms);
    assert_int_equal (expected->seq, actual->seq);
}

static void
s_assert_event_equal (const msg_event_t *expected, const msg_event_t *actual)
{
    assert_int_equal (expected->seq, actual->seq);
    assert_int_equal (expected->prev, actual->prev);
    s_assert_str_equal (expected->id, actual->id);
    s_assert_str_equal (expected->node, actual->node);
    assert_int_equal (expected->reason, actual->reason);
    assert_int_equal (expected->last_activity_ms, actual->last_activity_ms);
    assert_int_equal (expected->removed_ms, actual->removed_ms);
    assert_int_equal (expected->sweep, actual->sweep);
}

static void
s_assert_strs_equal (const msg_str_t *expected, uint32_t expected_count,
                     const msg_str_t *actual, uint32_t actual_count)
{
    assert_int_equal (expected_count, actual_count);
    for (uint32_t index = 0; index < expected_count; index++)
        s_assert_str_equal (expected[index], actual[index]);
}

static void
s_assert_brake_state_equal (const msg_brake_state_t *expected,
                            const msg_brake_state_t *actual)
{
    assert_int_equal (expected->enabled, actual->enabled);
    assert_int_equal (expected->engaged, actual->engaged);
    assert_int_equal (expected->share, actual->share);
    assert_int_equal (expected->min_clients, actual->min_clients);
    assert_int_equal (expected->clients, actual->clients);
    assert_int_equal (expected->stale, actual->stale);
    assert_int_equal (expected->limit, actual->limit);
    assert_int_equal (expected->held_back, actual->held_back);
    assert_int_equal (expected->release_next, actual->release_next);
    assert_int_equal (expected->release_left_ms, actual->release_left_ms);
}

static void
s_assert_result_equal (const msg_result_t *expected,
                       const msg_result_t *actual)
{
    assert_int_equal (expected->cmd, actual->cmd);
    assert_int_equal (expected->created, actual->created);
    assert_int_equal (expected->touched, actual->touched);
    s_assert_strs_equal (expected->unknown, expected->unknown_count,
                         actual->unknown, actual->unknown_count);
    s_assert_strs_equal (expected->evicted, expected->evicted_count,
                         actual->evicted, actual->evicted_count);
    assert_int_equal (expected->seq, actual->seq);
    s_assert_client_equal (&expected->client, &actual->client);
    assert_int_equal (expected->clients_count, actual->clients_count);
    for (uint32_t index = 0; index < expected->clients_count; index++)
        s_assert_client_equal (&expected->clients[index],
                               &actual->clients[index]);
    s_assert_str_equal (expected->next, actual->next);
    assert_int_equal (expected->stats_count, actual->stats_count);
    for (uint32_t index = 0; index < expected->stats_count; index++) {
        s_assert_str_equal (expected->stats[index].name,
                            actual->stats[index].name);
        assert_int_equal (expected->stats[index].value,
                          actual->stats[index].value);
    }
    assert_int_equal (expected->sweep, actual->sweep);
    assert_int_equal (expected->dry_run, actual->dry_run);
    assert_int_equal (expected->stale, actual->stale);
    s_assert_strs_equal (expected->ids, expected->ids_count, actual->ids,
                         actual->ids_count);
    assert_int_equal (expected->events_count, actual->events_count);
    for (uint32_t index = 0; index < expected->events_count; index++)
        s_assert_event_equal (&expected->events[index],
                              &actual->events[index]);
    assert_int_equal (expected->first_seq, actual->first_seq);
    assert_int_equal (expected->last_seq, actual->last_seq);
    s_assert_brake_state_equal (&expected->brake, &actual->brake);
    assert_int_equal (expected->tombstones_count, actual->tombstones_count);
    for (uint32_t index = 0; index < expected->tombstones_count; index++)
        s_assert_tombstone_equal (&expected->tombstones[index],
                                  &actual->tombstones[index]);
}

static void
s_assert_message_equal (const msg_t *expected, const msg_t *actual)
{
    assert_int_equal (expected->type, actual->type);
    assert_int_equal (expected->req, actual->req);

    const msg_register_t *reg_a = &expected->u.register_;
    const msg_register_t *reg_b = &actual->u.register_;
    switch (expected->type) {
    case MSG_REGISTER:
        s_assert_str_equal (reg_a->id, reg_b->id);
        s_assert_str_equal (reg_a->node, reg_b->node);
        s_assert_str_equal (reg_a->meta, reg_b->meta);
        assert_int_equal (reg_a->stale_after_ms, reg_b->stale_after_ms);
        break;
    case MSG_TOUCH:
        s_assert_strs_equal (expected->u.touch.ids, expected->u.touch.count,
                             actual->u.touch.ids, actual->u.touch.count);
        break;
    case MSG_DEREGISTER:
    case MSG_EVICT:
    case MSG_GET:
        s_assert_str_equal (expected->u.client_ref.id,
                            actual->u.client_ref.id);
        break;
    case MSG_LIST:
    case MSG_TOMBSTONES:
        assert_int_equal (expected->u.list.limit, actual->u.list.limit);
        s_assert_str_equal (expected->u.list.after, actual->u.list.after);
        s_assert_str_equal (expected->u.list.node, actual->u.list.node);
        break;
    case MSG_STATS:
        break;
    case MSG_SWEEP:
        assert_int_equal (expected->u.sweep.dry_run,
                          actual->u.sweep.dry_run);
        break;
    case MSG_EVENTS:
        assert_int_equal (expected->u.events.since, actual->u.events.since);
        assert_int_equal (expected->u.events.limit, actual->u.events.limit);
        s_assert_str_equal (expected->u.events.node, actual->u.events.node);
        break;
    case MSG_BRAKE:
        assert_int_equal (expected->u.brake.action, actual->u.brake.action);
        assert_int_equal (expected->u.brake.for_ms, actual->u.brake.for_ms);
        break;
    case MSG_TICK:
        s_assert_str_equal (expected->u.tick.scheduler,
                            actual->u.tick.scheduler);
        assert_int_equal (expected->u.tick.seq, actual->u.tick.seq);
        assert_int_equal (expected->u.tick.sent_ms, actual->u.tick.sent_ms);
        assert_int_equal (expected->u.tick.interval_ms,
                          actual->u.tick.interval_ms);
        break;
    case MSG_EVENT:
        s_assert_event_equal (&expected->u.event, &actual->u.event);
        break;
    case MSG_RESULT:
        s_assert_result_equal (&expected->u.result, &actual->u.result);
        break;
    case MSG_ERROR:
        assert_int_equal (expected->u.error.code, actual->u.error.code);
        s_assert_str_equal (expected->u.error.message,
                            actual->u.error.message);
        break;
    default:
        fail_msg ("sample has type %d", expected->type);
    }
}

/*  Round trip: encode a sample, decode it, compare every field, and
    encode the decoded message again to the same bytes.  */
static void
s_round_trip (void **state)
{
    const s_sample_t *sample = *state;
    msg_t expected;
    s_sample (sample, &expected);

    size_t size;
    void *data = s_encode (&expected, &size);
    msg_t actual;
    s_decode (data, size, &actual);
    s_assert_message_equal (&expected, &actual);

    size_t again_size;
    void *again = s_encode (&actual, &again_size);
    assert_int_equal (again_size, size);
    assert_memory_equal (again, data, size);

    free (again);
    msg_release (&actual);
    free (data);
}

/*  Raw bodies, for what the encoder would reject.  */

typedef struct {
    msgpack_sbuffer buffer;
    msgpack_packer packer;
} s_raw_t;

static void
s_raw_init (s_raw_t *raw)
{
    msgpack_sbuffer_init (&raw->buffer);
    msgpack_packer_init (&raw->packer, &raw->buffer, msgpack_sbuffer_write);
}

static void
s_raw_str (s_raw_t *raw, const char *text, size_t length)
{
    msgpack_pack_str (&raw->packer, length);
    if (length > 0)
        msgpack_pack_str_body (&raw->packer, text, length);
}

static void
s_raw_key (s_raw_t *raw, const char *text)
{
    s_raw_str (raw, text, strlen (text));
}

static void
s_raw_uint (s_raw_t *raw, uint64_t value)
{
    msgpack_pack_uint64 (&raw->packer, value);
}

/*  Starts a body: a map of fields + 2 entries, then "v" and "type".  */
static void
s_raw_head (s_raw_t *raw, uint32_t fields, const char *type)
{
    s_raw_init (raw);
    msgpack_pack_map (&raw->packer, fields + 2);
    s_raw_key (raw, "v");
    s_raw_uint (raw, MSG_VERSION);
    s_raw_key (raw, "type");
    s_raw_key (raw, type);
}

/*  Packs length copies of fill as a string.  */
static void
s_raw_fill (s_raw_t *raw, char fill, size_t length)
{
    char *text = malloc (length + 1);
    assert_non_null (text);
    memset (text, fill, length);
    s_raw_str (raw, text, length);
    free (text);
}

static void
s_raw_expect (s_raw_t *raw, msg_error_code_t code, const char *fragment)
{
    s_expect_rejected (raw->buffer.data, raw->buffer.size, code, fragment);
    msgpack_sbuffer_destroy (&raw->buffer);
}

static void
s_raw_expect_ok (s_raw_t *raw)
{
    msg_t msg;
    s_decode (raw->buffer.data, raw->buffer.size, &msg);
    msg_release (&msg);
    msgpack_sbuffer_destroy (&raw->buffer);
}

/*  A touch of count ids, each length bytes long.  */
static void
s_raw_touch (s_raw_t *raw, uint32_t count, size_t length)
{
    s_raw_head (raw, 1, "touch");
    s_raw_key (raw, "ids");
    msgpack_pack_array (&raw->packer, count);
    for (uint32_t index = 0; index < count; index++)
        s_raw_fill (raw, 'a' + index % 26, length);
}

/*  A register with the given id and node.  */
static void
s_raw_register (s_raw_t *raw, const char *id, size_t id_length,
                const char *node, size_t node_length)
{
    s_raw_head (raw, 2, "register");
    s_raw_key (raw, "id");
    s_raw_str (raw, id, id_length);
    s_raw_key (raw, "node");
    s_raw_str (raw, node, node_length);
}

/*  Names and helpers.  */

static void
names_of_types_codes_and_reasons (void **state)
{
    static const char *const types[] = {
        "register", "touch", "deregister", "evict", "get", "list", "stats",
        "sweep", "events", "tombstones", "brake", "tick", "event",
        "result", "error"
    };
    static const char *const codes[] = {
        "none", "bad_request", "unsupported_version", "unknown_type",
        "limit_exceeded", "unknown_client", "busy", "internal", "evicted"
    };
    static const char *const reasons[] = {
        "stale", "deregistered", "operator"
    };

    assert_int_equal (COUNT_OF (types), MSG_TYPE_COUNT);
    for (int type = 0; type < MSG_TYPE_COUNT; type++)
        assert_string_equal (msg_type_name (type), types[type]);
    assert_string_equal (msg_type_name (MSG_TYPE_COUNT), "unknown");

    assert_int_equal (COUNT_OF (codes), MSG_ERR_CODE_COUNT);
    for (int code = 0; code < MSG_ERR_CODE_COUNT; code++)
        assert_string_equal (msg_error_code_name (code), codes[code]);
    assert_string_equal (msg_error_code_name (MSG_ERR_CODE_COUNT),
                         "unknown");

    assert_int_equal (COUNT_OF (reasons), MSG_REASON_COUNT);
    for (int reason = 0; reason < MSG_REASON_COUNT; reason++)
        assert_string_equal (msg_reason_name (reason), reasons[reason]);
    assert_string_equal (msg_reason_name (MSG_REASON_COUNT), "unknown");
}

/*  Every command comes before MSG_TICK in the enum.  */
static void
type_is_command_for_commands_only (void **state)
{
    for (int type = 0; type < MSG_TYPE_COUNT; type++)
        assert_int_equal (msg_type_is_command (type), type < MSG_TICK);
    assert_false (msg_type_is_command (MSG_TYPE_COUNT));
}

static void
str_helpers_view_compare_and_copy (void **state)
{
    msg_str_t empty = msg_str (NULL);
    assert_null (empty.ptr);
    assert_int_equal (empty.len, 0);
    assert_true (msg_str_eq (empty, ""));

    msg_str_t view = msg_str ("client-1");
    assert_int_equal (view.len, 8);
    assert_true (msg_str_eq (view, "client-1"));
    assert_false (msg_str_eq (view, "client-"));
    assert_false (msg_str_eq (view, "client-12"));

    char buffer[5];
    assert_ptr_equal (msg_str_copy (view, buffer, sizeof (buffer)), buffer);
    assert_string_equal (buffer, "clie");
    msg_str_copy (empty, buffer, sizeof (buffer));
    assert_string_equal (buffer, "");
    char one[1];
    msg_str_copy (view, one, sizeof (one));
    assert_string_equal (one, "");
}

static void
id_and_node_validity (void **state)
{
    char text[MSG_ID_MAX + 2];
    memset (text, 'x', sizeof (text));

    assert_true (msg_id_is_valid ((msg_str_t) { text, 1 }));
    assert_true (msg_id_is_valid ((msg_str_t) { text, MSG_ID_MAX }));
    assert_false (msg_id_is_valid ((msg_str_t) { text, MSG_ID_MAX + 1 }));
    assert_false (msg_id_is_valid ((msg_str_t) { text, 0 }));
    assert_true (msg_id_is_valid (msg_str ("a!~\"{}")));
    assert_false (msg_id_is_valid (msg_str ("a b")));
    assert_false (msg_id_is_valid (msg_str ("a\x7f")));
    assert_false (msg_id_is_valid (msg_str ("a\t")));
    assert_false (msg_id_is_valid ((msg_str_t) { "a\0b", 3 }));
    assert_false (msg_id_is_valid (msg_str ("caf\xc3\xa9")));

    assert_true (msg_node_is_valid ((msg_str_t) { text, MSG_NODE_MAX }));
    assert_false (msg_node_is_valid ((msg_str_t) { text, MSG_NODE_MAX + 1 }));
    assert_false (msg_node_is_valid ((msg_str_t) { text, 0 }));
    assert_true (msg_node_is_valid (msg_str ("Node-1_a.b:9")));
    assert_false (msg_node_is_valid (msg_str ("node/1")));
    assert_false (msg_node_is_valid (msg_str ("node 1")));
    assert_false (msg_node_is_valid (msg_str ("node!")));
}

/*  Decoding details.  */

static void
decode_returns_views_into_buffer (void **state)
{
    msg_t expected;
    memset (&expected, 0, sizeof (expected));
    s_build_touch (&expected);
    size_t size;
    char *data = s_encode (&expected, &size);

    msg_t msg;
    s_decode (data, size, &msg);
    assert_int_equal (msg.u.touch.count, COUNT_OF (s_ids));
    for (uint32_t index = 0; index < msg.u.touch.count; index++) {
        assert_true (msg.u.touch.ids[index].ptr >= data);
        assert_true (msg.u.touch.ids[index].ptr < data + size);
    }
    msg_release (&msg);
    free (data);
}

static void
decode_accepts_keys_in_any_order (void **state)
{
    s_raw_t raw;
    s_raw_init (&raw);
    msgpack_pack_map (&raw.packer, 5);
    s_raw_key (&raw, "node");
    s_raw_key (&raw, "node-a");
    s_raw_key (&raw, "req");
    s_raw_uint (&raw, 77);
    s_raw_key (&raw, "id");
    s_raw_key (&raw, "client-1");
    s_raw_key (&raw, "type");
    s_raw_key (&raw, "register");
    s_raw_key (&raw, "v");
    s_raw_uint (&raw, MSG_VERSION);

    msg_t msg;
    s_decode (raw.buffer.data, raw.buffer.size, &msg);
    assert_int_equal (msg.type, MSG_REGISTER);
    assert_int_equal (msg.req, 77);
    assert_true (msg_str_eq (msg.u.register_.id, "client-1"));
    assert_true (msg_str_eq (msg.u.register_.node, "node-a"));
    assert_int_equal (msg.u.register_.meta.len, 0);
    msg_release (&msg);
    msgpack_sbuffer_destroy (&raw.buffer);
}

static void
decode_accepts_any_integer_width (void **state)
{
    /*  "v" as int 8, "limit" as uint 64 and "since" as int 16: msgpack
        lets a sender pick any width that fits the value.  */
    static const unsigned char body[] = {
        0x84, 0xa1, 'v', 0xd0, 0x01,
        0xa4, 't', 'y', 'p', 'e', 0xa6, 'e', 'v', 'e', 'n', 't', 's',
        0xa5, 'l', 'i', 'm', 'i', 't', 0xcf, 0, 0, 0, 0, 0, 0, 0, 0x0a,
        0xa5, 's', 'i', 'n', 'c', 'e', 0xd1, 0x01, 0x00
    };
    msg_t msg;
    s_decode (body, sizeof (body), &msg);
    assert_int_equal (msg.type, MSG_EVENTS);
    assert_int_equal (msg.u.events.limit, 10);
    assert_int_equal (msg.u.events.since, 256);
    msg_release (&msg);
}

static void
decode_sets_type_and_req_on_failure (void **state)
{
    s_raw_t raw;
    s_raw_head (&raw, 2, "touch");
    s_raw_key (&raw, "req");
    s_raw_uint (&raw, 42);
    s_raw_key (&raw, "ids");
    msgpack_pack_array (&raw.packer, 0);

    msg_t msg;
    msg_failure_t failure;
    assert_int_equal (msg_decode (raw.buffer.data, raw.buffer.size, &msg,
                                  &failure), -1);
    assert_int_equal (msg.type, MSG_TOUCH);
    assert_int_equal (msg.req, 42);
    msg_release (&msg);
    msgpack_sbuffer_destroy (&raw.buffer);
}

static void
decode_sets_req_when_type_is_unknown (void **state)
{
    s_raw_t raw;
    s_raw_head (&raw, 1, "frob");
    s_raw_key (&raw, "req");
    s_raw_uint (&raw, 43);

    msg_t msg;
    msg_failure_t failure;
    assert_int_equal (msg_decode (raw.buffer.data, raw.buffer.size, &msg,
                                  &failure), -1);
    assert_int_equal (failure.code, MSG_ERR_UNKNOWN_TYPE);
    assert_int_equal (msg.type, MSG_TYPE_COUNT);
    assert_int_equal (msg.req, 43);
    msg_release (&msg);
    msgpack_sbuffer_destroy (&raw.buffer);
}

static void
release_accepts_zeroed_message (void **state)
{
    msg_t msg;
    memset (&msg, 0, sizeof (msg));
    msg_release (&msg);
    assert_null (msg.owned);
    msg_release (NULL);
}

/*  Rejections: framing and header.  */

static void
decode_rejects_empty_body (void **state)
{
    s_expect_rejected ("", 0, MSG_ERR_BAD_REQUEST, "body: empty");
}

static void
decode_rejects_oversize_body (void **state)
{
    size_t size = MSG_SIZE_MAX + 1;
    char *data = calloc (1, size);
    assert_non_null (data);
    s_expect_rejected (data, size, MSG_ERR_LIMIT_EXCEEDED, "MSG_SIZE_MAX");
    s_expect_rejected (data, size, MSG_ERR_LIMIT_EXCEEDED, "1048577");

    /*  At the limit the size is fine and the content is what fails.  */
    s_expect_rejected (data, MSG_SIZE_MAX, MSG_ERR_BAD_REQUEST,
                       "expected a map");
    free (data);
}

static void
decode_rejects_non_map_body (void **state)
{
    static const unsigned char array[] = { 0x91, 0x01 };
    static const unsigned char text[] = { 0xa1, 'x' };
    static const unsigned char nil[] = { 0xc0 };
    static const unsigned char number[] = { 0x07 };

    s_expect_rejected (array, sizeof (array), MSG_ERR_BAD_REQUEST,
                       "body: expected a map, got an array");
    s_expect_rejected (text, sizeof (text), MSG_ERR_BAD_REQUEST,
                       "body: expected a map, got a string");
    s_expect_rejected (nil, sizeof (nil), MSG_ERR_BAD_REQUEST,
                       "body: expected a map, got nil");
    s_expect_rejected (number, sizeof (number), MSG_ERR_BAD_REQUEST,
                       "body: expected a map, got an unsigned integer");
}

static void
decode_rejects_hostile_counts (void **state)
{
    /*  Headers that claim far more items than the body holds.  */
    static const unsigned char array32[] = { 0xdd, 0xff, 0xff, 0xff, 0xff };
    static const unsigned char map32[] = { 0xdf, 0xff, 0xff, 0xff, 0xff };
    static const unsigned char str32[] = { 0xdb, 0xff, 0xff, 0xff, 0xff };
    static const unsigned char bin32[] = { 0xc6, 0x7f, 0xff, 0xff, 0xff };
    static const unsigned char nested[] = {
        0x81, 0xa3, 'i', 'd', 's', 0xdd, 0x10, 0x00, 0x00, 0x00, 0xc0
    };

    s_expect_rejected (array32, sizeof (array32), MSG_ERR_BAD_REQUEST,
                       "body: truncated");
    s_expect_rejected (map32, sizeof (map32), MSG_ERR_BAD_REQUEST,
                       "body: truncated");
    s_expect_rejected (str32, sizeof (str32), MSG_ERR_BAD_REQUEST,
                       "body: truncated");
    s_expect_rejected (bin32, sizeof (bin32), MSG_ERR_BAD_REQUEST,
                       "body: truncated");
    s_expect_rejected (nested, sizeof (nested), MSG_ERR_BAD_REQUEST,
                       "body: truncated");
}

static void
decode_rejects_invalid_msgpack_byte (void **state)
{
    static const unsigned char body[] = { 0x81, 0xa1, 'v', 0xc1 };
    s_expect_rejected (body, sizeof (body), MSG_ERR_BAD_REQUEST,
                       "invalid msgpack byte 0xc1 at byte 3");
}

static void
decode_rejects_deep_nesting (void **state)
{
    unsigned char body[64];
    size_t size = 0;
    body[size++] = 0x81;
    body[size++] = 0xa1;
    body[size++] = 'x';
    for (int level = 0; level < 40; level++)
        body[size++] = 0x91;
    body[size++] = 0xc0;
    s_expect_rejected (body, size, MSG_ERR_BAD_REQUEST, "nested more than");
}

static void
decode_rejects_too_many_values (void **state)
{
    s_raw_t raw;
    s_raw_head (&raw, 1, "touch");
    s_raw_key (&raw, "ids");
    msgpack_pack_array (&raw.packer, 70000);
    for (int index = 0; index < 70000; index++)
        msgpack_pack_nil (&raw.packer);
    s_raw_expect (&raw, MSG_ERR_BAD_REQUEST, "more than 65536");
}

static void
decode_rejects_trailing_bytes (void **state)
{
    for (size_t index = 0; index < COUNT_OF (s_samples); index++) {
        msg_t msg;
        s_sample (&s_samples[index], &msg);
        size_t size;
        char *data = s_encode (&msg, &size);
        char *longer = malloc (size + 3);
        assert_non_null (longer);
        memcpy (longer, data, size);
        memcpy (longer + size, "\xc0\x01\x02", 3);

        s_expect_rejected (longer, size + 1, MSG_ERR_BAD_REQUEST,
                           "body: 1 byte left over after the map");
        s_expect_rejected (longer, size + 3, MSG_ERR_BAD_REQUEST,
                           "body: 3 bytes left over after the map");
        free (longer);
        free (data);
    }
}

static void
decode_rejects_every_prefix (void **state)
{
    for (size_t index = 0; index < COUNT_OF (s_samples); index++) {
        msg_t msg;
        s_sample (&s_samples[index], &msg);
        size_t size;
        char *data = s_encode (&msg, &size);

        /*  A copy of exactly the prefix, so that a read past its end
            shows up under valgrind or AddressSanitizer.  */
        for (size_t length = 0; length < size; length++) {
            char *prefix = malloc (length + 1);
            assert_non_null (prefix);
            memcpy (prefix, data, length);
            s_expect_rejected (prefix, length, MSG_ERR_BAD_REQUEST, "body: ");
            free (prefix);
        }
        free (data);
    }
}

static void
decode_rejects_unsupported_version (void **state)
{
    s_raw_t raw;
    s_raw_init (&raw);
    msgpack_pack_map (&raw.packer, 2);
    s_raw_key (&raw, "v");
    s_raw_uint (&raw, 2);
    s_raw_key (&raw, "type");
    s_raw_key (&raw, "stats");
    s_raw_expect (&raw, MSG_ERR_UNSUPPORTED_VERSION,
                  "field \"v\": unsupported version 2, this peer speaks"
                  " version 1");

    /*  A newer peer's new type still gets the version error.  */
    s_raw_init (&raw);
    msgpack_pack_map (&raw.packer, 2);
    s_raw_key (&raw, "type");
    s_raw_key (&raw, "rename");
    s_raw_key (&raw, "v");
    s_raw_uint (&raw, 0);
    s_raw_expect (&raw, MSG_ERR_UNSUPPORTED_VERSION,
                  "unsupported version 0");
}

static void
decode_rejects_unknown_type (void **state)
{
    s_raw_t raw;
    s_raw_head (&raw, 0, "frob");
    s_raw_expect (&raw, MSG_ERR_UNKNOWN_TYPE,
                  "field \"type\": unknown message type \"frob\"");

    s_raw_head (&raw, 0, "unknown");
    s_raw_expect (&raw, MSG_ERR_UNKNOWN_TYPE, "field \"type\"");

    s_raw_init (&raw);
    msgpack_pack_map (&raw.packer, 2);
    s_raw_key (&raw, "v");
    s_raw_uint (&raw, 1);
    s_raw_key (&raw, "type");
    s_raw_str (&raw, "a\"\n\xff", 4);
    s_raw_expect (&raw, MSG_ERR_UNKNOWN_TYPE, "\"a\\x22\\x0a\\xff\"");
}

static void
decode_rejects_req_in_tick_and_event (void **state)
{
    s_raw_t raw;
    s_raw_head (&raw, 5, "tick");
    s_raw_key (&raw, "scheduler");
    s_raw_key (&raw, "s1");
    s_raw_key (&raw, "seq");
    s_raw_uint (&raw, 1);
    s_raw_key (&raw, "sent_ms");
    s_raw_uint (&raw, 1);
    s_raw_key (&raw, "interval_ms");
    s_raw_uint (&raw, 1000);
    s_raw_key (&raw, "req");
    s_raw_uint (&raw, 5);
    s_raw_expect (&raw, MSG_ERR_BAD_REQUEST,
                  "field \"req\": unknown key in tick");

    /*  The event sample with one more entry, "req": 5, on the end.  */
    msg_t msg;
    memset (&msg, 0, sizeof (msg));
    s_build_event (&msg);
    size_t size;
    unsigned char *data = s_encode (&msg, &size);
    unsigned char *longer = malloc (size + 5);
    assert_non_null (longer);
    memcpy (longer, data, size);
    memcpy (longer + size, "\xa3req\x05", 5);
    assert_int_equal (longer[0], 0x8a);
    longer[0] = 0x8b;
    s_expect_rejected (longer, size + 5, MSG_ERR_BAD_REQUEST,
                       "field \"req\": unknown key in event");
    free (longer);
    free (data);
}

static void
decode_rejects_result_without_command (void **state)
{
    s_raw_t raw;
    s_raw_head (&raw, 2, "result");
    s_raw_key (&raw, "cmd");
    s_raw_key (&raw, "tick");
    s_raw_key (&raw, "seq");
    s_raw_uint (&raw, 1);
    s_raw_expect (&raw, MSG_ERR_BAD_REQUEST,
                  "field \"cmd\": expected a command name");

    s_raw_head (&raw, 1, "result");
    s_raw_key (&raw, "created");
    msgpack_pack_true (&raw.packer);
    s_raw_expect (&raw, MSG_ERR_BAD_REQUEST, "field \"cmd\": missing");
}

static void
decode_rejects_non_string_key (void **state)
{
    s_raw_t raw;
    s_raw_head (&raw, 1, "stats");
    s_raw_uint (&raw, 1);
    s_raw_uint (&raw, 2);
    s_raw_expect (&raw, MSG_ERR_BAD_REQUEST,
                  "body: expected string keys, key 2 is an unsigned"
                  " integer");
}

/*  Rejections: ids, nodes and limits, one over each.  */

static void
decode_rejects_empty_id_in_touch (void **state)
{
    s_raw_t raw;
    s_raw_head (&raw, 1, "touch");
    s_raw_key (&raw, "ids");
    msgpack_pack_array (&raw.packer, 4);
    s_raw_key (&raw, "a");
    s_raw_key (&raw, "b");
    s_raw_key (&raw, "c");
    s_raw_key (&raw, "");
    s_raw_expect (&raw, MSG_ERR_BAD_REQUEST,
                  "field \"ids[3]\": expected a string of 1 to 128 bytes,"
                  " got 0 bytes");
}

static void
decode_limits_id_length (void **state)
{
    char id[MSG_ID_MAX + 1];
    memset (id, 'i', sizeof (id));
    s_raw_t raw;

    s_raw_register (&raw, id, MSG_ID_MAX, "n", 1);
    s_raw_expect_ok (&raw);
    s_raw_register (&raw, id, MSG_ID_MAX + 1, "n", 1);
    s_raw_expect (&raw, MSG_ERR_LIMIT_EXCEEDED,
                  "field \"id\": expected a string of 1 to 128 bytes, got"
                  " 129 bytes (over MSG_ID_MAX)");
    s_raw_register (&raw, id, 0, "n", 1);
    s_raw_expect (&raw, MSG_ERR_BAD_REQUEST,
                  "field \"id\": expected a string of 1 to 128 bytes, got"
                  " 0 bytes");

    s_raw_touch (&raw, 3, MSG_ID_MAX + 1);
    s_raw_expect (&raw, MSG_ERR_LIMIT_EXCEEDED,
                  "field \"ids[0]\": expected a string of 1 to 128 bytes,"
                  " got 129 bytes (over MSG_ID_MAX)");
}

static void
decode_rejects_bad_id_bytes (void **state)
{
    s_raw_t raw;
    s_raw_register (&raw, "ab cd", 5, "n", 1);
    s_raw_expect (&raw, MSG_ERR_BAD_REQUEST,
                  "field \"id\": expected printable ASCII without spaces,"
                  " got byte 0x20 at offset 2");
    s_raw_register (&raw, "ab\0", 3, "n", 1);
    s_raw_expect (&raw, MSG_ERR_BAD_REQUEST, "got byte 0x00 at offset 2");
    s_raw_register (&raw, "\xc3\xa9", 2, "n", 1);
    s_raw_expect (&raw, MSG_ERR_BAD_REQUEST, "got byte 0xc3 at offset 0");
}

static void
decode_rejects_bad_node (void **state)
{
    char node[MSG_NODE_MAX + 1];
    memset (node, 'n', sizeof (node));
    s_raw_t raw;

    s_raw_register (&raw, "c", 1, node, MSG_NODE_MAX);
    s_raw_expect_ok (&raw);
    s_raw_register (&raw, "c", 1, node, MSG_NODE_MAX + 1);
    s_raw_expect (&raw, MSG_ERR_LIMIT_EXCEEDED,
                  "field \"node\": expected a string of 1 to 64 bytes, got"
                  " 65 bytes (over MSG_NODE_MAX)");
    s_raw_register (&raw, "c", 1, "", 0);
    s_raw_expect (&raw, MSG_ERR_BAD_REQUEST,
                  "field \"node\": expected a string of 1 to 64 bytes, got"
                  " 0 bytes");
    s_raw_register (&raw, "c", 1, "node/1", 6);
    s_raw_expect (&raw, MSG_ERR_BAD_REQUEST,
                  "field \"node\": expected only letters, digits and"
                  " \"-_.:\", got byte 0x2f at offset 4");
    s_raw_register (&raw, "c", 1, "a b", 3);
    s_raw_expect (&raw, MSG_ERR_BAD_REQUEST, "got byte 0x20 at offset 1");
    s_raw_register (&raw, "c", 1, "a*", 2);
    s_raw_expect (&raw, MSG_ERR_BAD_REQUEST, "got byte 0x2a at offset 1");
}

static void
decode_limits_touch_ids (void **state)
{
    s_raw_t raw;
    s_raw_touch (&raw, MSG_TOUCH_IDS_MAX, 8);
    s_raw_expect_ok (&raw);
    s_raw_touch (&raw, MSG_TOUCH_IDS_MAX + 1, 8);
    s_raw_expect (&raw, MSG_ERR_LIMIT_EXCEEDED,
                  "field \"ids\": expected an array of 1 to 1000 items, got"
                  " 1001 items (over MSG_TOUCH_IDS_MAX)");
    s_raw_touch (&raw, 0, 8);
    s_raw_expect (&raw, MSG_ERR_BAD_REQUEST,
                  "field \"ids\": expected an array of 1 to 1000 items, got"
                  " 0 items");
}

static void
decode_limits_meta (void **state)
{
    static char meta[MSG_META_MAX + 1];
    s_raw_t raw;
    s_raw_head (&raw, 3, "register");
    s_raw_key (&raw, "id");
    s_raw_key (&raw, "c");
    s_raw_key (&raw, "node");
    s_raw_key (&raw, "n");
    s_raw_key (&raw, "meta");
    msgpack_pack_bin_with_body (&raw.packer, meta, MSG_META_MAX);
    s_raw_expect_ok (&raw);

    s_raw_head (&raw, 3, "register");
    s_raw_key (&raw, "id");
    s_raw_key (&raw, "c");
    s_raw_key (&raw, "node");
    s_raw_key (&raw, "n");
    s_raw_key (&raw, "meta");
    msgpack_pack_bin_with_body (&raw.packer, meta, MSG_META_MAX + 1);
    s_raw_expect (&raw, MSG_ERR_LIMIT_EXCEEDED,
                  "field \"meta\": expected binary of 0 to 1024 bytes, got"
                  " 1025 bytes (over MSG_META_MAX)");

    /*  Empty metadata is left out, never sent as an empty value.  */
    s_raw_head (&raw, 3, "register");
    s_raw_key (&raw, "id");
    s_raw_key (&raw, "c");
    s_raw_key (&raw, "node");
    s_raw_key (&raw, "n");
    s_raw_key (&raw, "meta");
    msgpack_pack_bin (&raw.packer, 0);
    s_raw_expect (&raw, MSG_ERR_BAD_REQUEST,
                  "field \"meta\": must be left out when empty");
}

static void
s_raw_list (s_raw_t *raw, const char *type, uint64_t limit)
{
    s_raw_head (raw, 2, type);
    s_raw_key (raw, "since");
    s_raw_uint (raw, 0);
    s_raw_key (raw, "limit");
    s_raw_uint (raw, limit);
}

static void
decode_limits_page_size (void **state)
{
    s_raw_t raw;
    s_raw_list (&raw, "events", MSG_PAGE_MAX);
    s_raw_expect_ok (&raw);
    s_raw_list (&raw, "events", MSG_PAGE_MAX + 1);
    s_raw_expect (&raw, MSG_ERR_LIMIT_EXCEEDED,
                  "field \"limit\": expected an integer from 1 to 1000, got"
                  " 1001 (over MSG_PAGE_MAX)");
    s_raw_list (&raw, "events", 0);
    s_raw_expect (&raw, MSG_ERR_BAD_REQUEST,
                  "field \"limit\": expected an integer from 1 to 1000, got"
                  " 0");
    s_raw_list (&raw, "events", UINT64_MAX);
    s_raw_expect (&raw, MSG_ERR_LIMIT_EXCEEDED, "field \"limit\"");

    s_raw_head (&raw, 1, "list");
    s_raw_key (&raw, "limit");
    s_raw_uint (&raw, MSG_PAGE_MAX + 1);
    s_raw_expect (&raw, MSG_ERR_LIMIT_EXCEEDED,
                  "field \"limit\": expected an integer from 1 to 1000, got"
                  " 1001 (over MSG_PAGE_MAX)");
}

static void
s_raw_tick (s_raw_t *raw, const char *scheduler, size_t length)
{
    s_raw_head (raw, 4, "tick");
    s_raw_key (raw, "scheduler");
    s_raw_str (raw, scheduler, length);
    s_raw_key (raw, "seq");
    s_raw_uint (raw, 1);
    s_raw_key (raw, "sent_ms");
    s_raw_uint (raw, 1700000000000);
    s_raw_key (raw, "interval_ms");
    s_raw_uint (raw, 600000);
}

static void
decode_limits_scheduler_id (void **state)
{
    char scheduler[MSG_SCHEDULER_MAX + 1];
    memset (scheduler, 's', sizeof (scheduler));
    s_raw_t raw;

    s_raw_tick (&raw, scheduler, MSG_SCHEDULER_MAX);
    s_raw_expect_ok (&raw);
    s_raw_tick (&raw, scheduler, MSG_SCHEDULER_MAX + 1);
    s_raw_expect (&raw, MSG_ERR_LIMIT_EXCEEDED,
                  "field \"scheduler\": expected a string of 1 to 64 bytes,"
                  " got 65 bytes (over MSG_SCHEDULER_MAX)");
    s_raw_tick (&raw, "s 1", 3);
    s_raw_expect (&raw, MSG_ERR_BAD_REQUEST,
                  "field \"scheduler\": expected printable ASCII");
}

static void
s_raw_error (s_raw_t *raw, const char *code, size_t message_length)
{
    s_raw_head (raw, 2, "error");
    s_raw_key (raw, "code");
    s_raw_key (raw, code);
    s_raw_key (raw, "message");
    s_raw_fill (raw, 'm', message_length);
}

static void
decode_limits_error_message (void **state)
{
    s_raw_t raw;
    s_raw_error (&raw, "busy", MSG_TEXT_MAX);
    s_raw_expect_ok (&raw);
    s_raw_error (&raw, "busy", MSG_TEXT_MAX + 1);
    s_raw_expect (&raw, MSG_ERR_LIMIT_EXCEEDED,
                  "field \"message\": expected a string of 1 to 512 bytes,"
                  " got 513 bytes (over MSG_TEXT_MAX)");
    s_raw_error (&raw, "busy", 0);
    s_raw_expect (&raw, MSG_ERR_BAD_REQUEST, "field \"message\"");
    s_raw_error (&raw, "none", 4);
    s_raw_expect (&raw, MSG_ERR_BAD_REQUEST,
                  "field \"code\": expected one of bad_request");
    s_raw_error (&raw, "Busy", 4);
    s_raw_expect (&raw, MSG_ERR_BAD_REQUEST, "got \"Busy\"");
}

/*  A stats result with count entries named "s<n>", the last one's name
    length bytes long when length is not 0.  */
static void
s_raw_stats (s_raw_t *raw, uint32_t count, size_t length)
{
    s_raw_head (raw, 2, "result");
    s_raw_key (raw, "cmd");
    s_raw_key (raw, "stats");
    s_raw_key (raw, "stats");
    msgpack_pack_map (&raw->packer, count);
    for (uint32_t index = 0; index < count; index++) {
        char name[16];
        snprintf (name, sizeof (name), "s%u", (unsigned) index);
        if (index + 1 == count && length > 0)
            s_raw_fill (raw, 'n', length);
        else
            s_raw_key (raw, name);
        s_raw_uint (raw, index);
    }
}

static void
decode_limits_stats (void **state)
{
    s_raw_t raw;
    s_raw_stats (&raw, MSG_STATS_MAX, 0);
    s_raw_expect_ok (&raw);
    s_raw_stats (&raw, MSG_STATS_MAX + 1, 0);
    s_raw_expect (&raw, MSG_ERR_LIMIT_EXCEEDED,
                  "field \"stats\": expected a map of 0 to 64 items, got 65"
                  " items (over MSG_STATS_MAX)");
    s_raw_stats (&raw, 2, MSG_STAT_NAME_MAX);
    s_raw_expect_ok (&raw);
    s_raw_stats (&raw, 2, MSG_STAT_NAME_MAX + 1);
    s_raw_expect (&raw, MSG_ERR_LIMIT_EXCEEDED,
                  "field \"stats[1]\": expected a name of 1 to 48 bytes,"
                  " got 49 bytes (over MSG_STAT_NAME_MAX)");
}

static void
decode_rejects_bad_stats_names (void **state)
{
    s_raw_t raw;
    s_raw_head (&raw, 2, "result");
    s_raw_key (&raw, "cmd");
    s_raw_key (&raw, "stats");
    s_raw_key (&raw, "stats");
    msgpack_pack_map (&raw.packer, 3);
    s_raw_key (&raw, "a");
    s_raw_uint (&raw, 1);
    s_raw_key (&raw, "b");
    s_raw_uint (&raw, 2);
    s_raw_key (&raw, "a");
    s_raw_uint (&raw, 3);
    s_raw_expect (&raw, MSG_ERR_BAD_REQUEST,
                  "field \"stats[2]\": duplicate name, also at index 0");

    s_raw_head (&raw, 2, "result");
    s_raw_key (&raw, "cmd");
    s_raw_key (&raw, "stats");
    s_raw_key (&raw, "stats");
    msgpack_pack_map (&raw.packer, 1);
    s_raw_key (&raw, "a b");
    s_raw_uint (&raw, 1);
    s_raw_expect (&raw, MSG_ERR_BAD_REQUEST,
                  "field \"stats[0]\": expected only letters");
}

/*  A result with one array key of count items written by pack_item.  */
static void
s_raw_result_array (s_raw_t *raw, const char *cmd, const char *key,
                    uint32_t count, void (*pack_item) (s_raw_t *, uint32_t),
                    uint32_t extra_fields)
{
    s_raw_head (raw, 2 + extra_fields, "result");
    s_raw_key (raw, "cmd");
    s_raw_key (raw, cmd);
    s_raw_key (raw, key);
    msgpack_pack_array (&raw->packer, count);
    for (uint32_t index = 0; index < count; index++)
        pack_item (raw, index);
}

static void
s_pack_client (s_raw_t *raw, uint32_t index)
{
    char id[16];
    snprintf (id, sizeof (id), "c%u", (unsigned) index);
    msgpack_pack_map (&raw->packer, 4);
    s_raw_key (raw, "id");
    s_raw_key (raw, id);
    s_raw_key (raw, "node");
    s_raw_key (raw, "n");
    s_raw_key (raw, "registered_ms");
    s_raw_uint (raw, 1);
    s_raw_key (raw, "last_activity_ms");
    s_raw_uint (raw, 2);
}

static void
s_pack_event (s_raw_t *raw, uint32_t index)
{
    char id[16];
    snprintf (id, sizeof (id), "c%u", (unsigned) index);
    msgpack_pack_map (&raw->packer, 8);
    s_raw_key (raw, "seq");
    s_raw_uint (raw, index + 1);
    s_raw_key (raw, "prev");
    s_raw_uint (raw, index);
    s_raw_key (raw, "id");
    s_raw_key (raw, id);
    s_raw_key (raw, "node");
    s_raw_key (raw, "n");
    s_raw_key (raw, "reason");
    s_raw_key (raw, "deregistered");
    s_raw_key (raw, "last_activity_ms");
    s_raw_uint (raw, 1);
    s_raw_key (raw, "removed_ms");
    s_raw_uint (raw, 2);
    s_raw_key (raw, "sweep");
    s_raw_uint (raw, 0);
}

static void
s_pack_id (s_raw_t *raw, uint32_t index)
{
    char id[16];
    snprintf (id, sizeof (id), "c%u", (unsigned) index);
    s_raw_key (raw, id);
}

static void
s_raw_clients (s_raw_t *raw, uint32_t count)
{
    s_raw_result_array (raw, "list", "clients", count, s_pack_client, 0);
}

static void
s_raw_events (s_raw_t *raw, uint32_t count)
{
    s_raw_result_array (raw, "events", "events", count, s_pack_event, 2);
    s_raw_key (raw, "first_seq");
    s_raw_uint (raw, count ? 1 : 0);
    s_raw_key (raw, "last_seq");
    s_raw_uint (raw, count);
}

static void
s_raw_dry_sweep (s_raw_t *raw, uint32_t count)
{
    s_raw_result_array (raw, "sweep", "ids", count, s_pack_id, 3);
    s_raw_key (raw, "sweep");
    s_raw_uint (raw, 0);
    s_raw_key (raw, "dry_run");
    msgpack_pack_true (&raw->packer);
    s_raw_key (raw, "stale");
    s_raw_uint (raw, 5000);
}

static void
s_raw_touch_result (s_raw_t *raw, uint32_t count, uint64_t touched)
{
    s_raw_result_array (raw, "touch", "unknown", count, s_pack_id, 1);
    s_raw_key (raw, "touched");
    s_raw_uint (raw, touched);
}

static void
decode_limits_result_pages (void **state)
{
    s_raw_t raw;
    s_raw_clients (&raw, MSG_PAGE_MAX);
    s_raw_expect_ok (&raw);
    s_raw_clients (&raw, MSG_PAGE_MAX + 1);
    s_raw_expect (&raw, MSG_ERR_LIMIT_EXCEEDED,
                  "field \"clients\": expected an array of 0 to 1000 items,"
                  " got 1001 items (over MSG_PAGE_MAX)");

    s_raw_events (&raw, MSG_PAGE_MAX);
    s_raw_expect_ok (&raw);
    s_raw_events (&raw, MSG_PAGE_MAX + 1);
    s_raw_expect (&raw, MSG_ERR_LIMIT_EXCEEDED,
                  "field \"events\": expected an array of 0 to 1000 items,"
                  " got 1001 items (over MSG_PAGE_MAX)");

    s_raw_dry_sweep (&raw, MSG_PAGE_MAX);
    s_raw_expect_ok (&raw);
    s_raw_dry_sweep (&raw, MSG_PAGE_MAX + 1);
    s_raw_expect (&raw, MSG_ERR_LIMIT_EXCEEDED,
                  "field \"ids\": expected an array of 0 to 1000 items, got"
                  " 1001 items (over MSG_PAGE_MAX)");
}

static void
decode_limits_touch_result (void **state)
{
    s_raw_t raw;
    s_raw_touch_result (&raw, MSG_TOUCH_IDS_MAX, 0);
    s_raw_expect_ok (&raw);
    s_raw_touch_result (&raw, MSG_TOUCH_IDS_MAX + 1, 0);
    s_raw_expect (&raw, MSG_ERR_LIMIT_EXCEEDED,
                  "field \"unknown\": expected an array of 0 to 1000 items,"
                  " got 1001 items (over MSG_TOUCH_IDS_MAX)");
    s_raw_touch_result (&raw, 0, MSG_TOUCH_IDS_MAX + 1);
    s_raw_expect (&raw, MSG_ERR_LIMIT_EXCEEDED,
                  "field \"touched\": expected an integer from 0 to 1000,"
                  " got 1001 (over MSG_TOUCH_IDS_MAX)");
    s_raw_touch_result (&raw, 1, MSG_TOUCH_IDS_MAX);
    s_raw_expect (&raw, MSG_ERR_LIMIT_EXCEEDED,
                  "field \"unknown\": expected touched, unknown and evicted"
                  " ids to be at most 1000 together, got 1001");
}

/*  Rejections: rules between fields.  */

static void
decode_rejects_inconsistent_event (void **state)
{
    msg_t msg;
    size_t size;
    char *data;

    /*  Each case encodes through a valid message, then patches bytes, so
        the encoder's own check does not stop it first.  */
    memset (&msg, 0, sizeof (msg));
    s_build_event (&msg);
    msg.u.event.prev = 6;
    data = s_encode (&msg, &size);
    char *prev = memmem (data, size, "\xa4prev\x06", 6);
    assert_non_null (prev);
    prev[5] = 0x07;
    s_expect_rejected (data, size, MSG_ERR_BAD_REQUEST,
                       "field \"prev\": expected less than seq 7, got 7");
    free (data);

    memset (&msg, 0, sizeof (msg));
    s_build_event (&msg);
    data = s_encode (&msg, &size);
    char *sweep = memmem (data, size, "\xa5sweep\x03", 7);
    assert_non_null (sweep);
    sweep[6] = 0x00;
    s_expect_rejected (data, size, MSG_ERR_BAD_REQUEST,
                       "field \"sweep\": expected a sweep id of at least 1"
                       " for reason stale, got 0");
    free (data);

    memset (&msg, 0, sizeof (msg));
    s_build_event_operator (&msg);
    data = s_encode (&msg, &size);
    sweep = memmem (data, size, "\xa5sweep\x00", 7);
    assert_non_null (sweep);
    sweep[6] = 0x05;
    s_expect_rejected (data, size, MSG_ERR_BAD_REQUEST,
                       "field \"sweep\": expected 0 for reason operator,"
                       " got 5");
    free (data);
}

static void
decode_rejects_inconsistent_sweep_result (void **state)
{
    s_raw_t raw;

    /*  ids with dry_run false.  */
    s_raw_result_array (&raw, "sweep", "ids", 1, s_pack_id, 3);
    s_raw_key (&raw, "sweep");
    s_raw_uint (&raw, 4);
    s_raw_key (&raw, "dry_run");
    msgpack_pack_false (&raw.packer);
    s_raw_key (&raw, "stale");
    s_raw_uint (&raw, 1);
    s_raw_expect (&raw, MSG_ERR_BAD_REQUEST,
                  "field \"ids\": allowed only when dry_run is true");

    /*  A dry run without ids, and one with a sweep id.  */
    s_raw_head (&raw, 4, "result");
    s_raw_key (&raw, "cmd");
    s_raw_key (&raw, "sweep");
    s_raw_key (&raw, "sweep");
    s_raw_uint (&raw, 0);
    s_raw_key (&raw, "dry_run");
    msgpack_pack_true (&raw.packer);
    s_raw_key (&raw, "stale");
    s_raw_uint (&raw, 0);
    s_raw_expect (&raw, MSG_ERR_BAD_REQUEST,
                  "field \"ids\": missing, required when dry_run is true");

    s_raw_result_array (&raw, "sweep", "ids", 0, s_pack_id, 3);
    s_raw_key (&raw, "sweep");
    s_raw_uint (&raw, 9);
    s_raw_key (&raw, "dry_run");
    msgpack_pack_true (&raw.packer);
    s_raw_key (&raw, "stale");
    s_raw_uint (&raw, 0);
    s_raw_expect (&raw, MSG_ERR_BAD_REQUEST,
                  "field \"sweep\": expected 0 in a dry run, got 9");

    s_raw_result_array (&raw, "sweep", "ids", 2, s_pack_id, 3);
    s_raw_key (&raw, "sweep");
    s_raw_uint (&raw, 0);
    s_raw_key (&raw, "dry_run");
    msgpack_pack_true (&raw.packer);
    s_raw_key (&raw, "stale");
    s_raw_uint (&raw, 1);
    s_raw_expect (&raw, MSG_ERR_BAD_REQUEST,
                  "field \"ids\": expected at most stale (1) ids, got 2");
}

static void
decode_rejects_inconsistent_events_result (void **state)
{
    s_raw_t raw;
    s_raw_result_array (&raw, "events", "events", 0, s_pack_event, 2);
    s_raw_key (&raw, "first_seq");
    s_raw_uint (&raw, 9);
    s_raw_key (&raw, "last_seq");
    s_raw_uint (&raw, 8);
    s_raw_expect (&raw, MSG_ERR_BAD_REQUEST,
                  "field \"first_seq\": expected at most last_seq 8, got 9");

    s_raw_result_array (&raw, "events", "events", 2, s_pack_event, 2);
    s_raw_key (&raw, "first_seq");
    s_raw_uint (&raw, 2);
    s_raw_key (&raw, "last_seq");
    s_raw_uint (&raw, 2);
    s_raw_expect (&raw, MSG_ERR_BAD_REQUEST,
                  "field \"events[0].seq\": expected a seq from first_seq 2"
                  " to last_seq 2, got 1");

    s_raw_result_array (&raw, "events", "events", 1, s_pack_event, 2);
    s_raw_key (&raw, "first_seq");
    s_raw_uint (&raw, 0);
    s_raw_key (&raw, "last_seq");
    s_raw_uint (&raw, 1);
    s_raw_expect (&raw, MSG_ERR_BAD_REQUEST,
                  "field \"first_seq\": expected at least 1 when events are"
                  " returned, got 0");
}

static void
decode_rejects_out_of_range_numbers (void **state)
{
    s_raw_t raw;

    s_raw_head (&raw, 4, "tick");
    s_raw_key (&raw, "scheduler");
    s_raw_key (&raw, "s");
    s_raw_key (&raw, "seq");
    s_raw_uint (&raw, 0);
    s_raw_key (&raw, "sent_ms");
    s_raw_uint (&raw, 1);
    s_raw_key (&raw, "interval_ms");
    s_raw_uint (&raw, 1);
    s_raw_expect (&raw, MSG_ERR_BAD_REQUEST,
                  "field \"seq\": expected an integer of at least 1, got 0");

    s_raw_head (&raw, 4, "tick");
    s_raw_key (&raw, "scheduler");
    s_raw_key (&raw, "s");
    s_raw_key (&raw, "seq");
    s_raw_uint (&raw, 1);
    s_raw_key (&raw, "sent_ms");
    msgpack_pack_int64 (&raw.packer, -1);
    s_raw_key (&raw, "interval_ms");
    s_raw_uint (&raw, 1);
    s_raw_expect (&raw, MSG_ERR_BAD_REQUEST,
                  "field \"sent_ms\": expected an integer of at least 0,"
                  " got -1");

    s_raw_head (&raw, 4, "tick");
    s_raw_key (&raw, "scheduler");
    s_raw_key (&raw, "s");
    s_raw_key (&raw, "seq");
    s_raw_uint (&raw, 1);
    s_raw_key (&raw, "sent_ms");
    s_raw_uint (&raw, UINT64_MAX);
    s_raw_key (&raw, "interval_ms");
    s_raw_uint (&raw, 1);
    s_raw_expect (&raw, MSG_ERR_BAD_REQUEST,
                  "field \"sent_ms\": expected an integer of at most"
                  " 9223372036854775807");

    s_raw_head (&raw, 4, "tick");
    s_raw_key (&raw, "scheduler");
    s_raw_key (&raw, "s");
    s_raw_key (&raw, "seq");
    s_raw_uint (&raw, 1);
    s_raw_key (&raw, "sent_ms");
    s_raw_uint (&raw, 1);
    s_raw_key (&raw, "interval_ms");
    s_raw_uint (&raw, 0);
    s_raw_expect (&raw, MSG_ERR_BAD_REQUEST,
                  "field \"interval_ms\": expected an integer of at least"
                  " 1, got 0");
}

static void
decode_rejects_unknown_reason (void **state)
{
    msg_t msg;
    memset (&msg, 0, sizeof (msg));
    s_build_event_operator (&msg);
    size_t size;
    char *data = s_encode (&msg, &size);
    char *reason = memmem (data, size, "operator", 8);
    assert_non_null (reason);
    memcpy (reason, "Operator", 8);
    s_expect_rejected (data, size, MSG_ERR_BAD_REQUEST,
                       "field \"reason\": expected one of stale,"
                       " deregistered, operator, got \"Operator\"");
    free (data);
}

/*  Own thresholds and tombstones.  */

/*  A register of id "c1" on node "n" whose "stale_after_ms" the caller
    packs next.  */
static void
s_raw_register_threshold (s_raw_t *raw)
{
    s_raw_head (raw, 3, "register");
    s_raw_key (raw, "id");
    s_raw_key (raw, "c1");
    s_raw_key (raw, "node");
    s_raw_key (raw, "n");
    s_raw_key (raw, "stale_after_ms");
}

static void
decode_rejects_own_threshold_below_one (void **state)
{
    s_raw_t raw;
    s_raw_register_threshold (&raw);
    s_raw_uint (&raw, 0);
    s_raw_expect (&raw, MSG_ERR_BAD_REQUEST,
                  "field \"stale_after_ms\": expected an integer of at least"
                  " 1, got 0");

    s_raw_register_threshold (&raw);
    msgpack_pack_int64 (&raw.packer, -60000);
    s_raw_expect (&raw, MSG_ERR_BAD_REQUEST,
                  "field \"stale_after_ms\": expected an integer of at least"
                  " 1, got -60000");

    s_raw_register_threshold (&raw);
    s_raw_key (&raw, "1m");
    s_raw_expect (&raw, MSG_ERR_BAD_REQUEST,
                  "field \"stale_after_ms\": expected an integer, got a"
                  " string");

    s_raw_register_threshold (&raw);
    s_raw_uint (&raw, 1);
    s_raw_expect_ok (&raw);
}

/*  A touch result with an "evicted" array of count ids besides an empty
    "unknown".  */
static void
s_raw_touch_evicted (s_raw_t *raw, uint32_t count, uint64_t touched)
{
    s_raw_result_array (raw, "touch", "evicted", count, s_pack_id, 2);
    s_raw_key (raw, "unknown");
    msgpack_pack_array (&raw->packer, 0);
    s_raw_key (raw, "touched");
    s_raw_uint (raw, touched);
}

static void
decode_limits_touch_result_evicted (void **state)
{
    s_raw_t raw;
    s_raw_touch_evicted (&raw, MSG_TOUCH_IDS_MAX, 0);
    s_raw_expect_ok (&raw);
    s_raw_touch_evicted (&raw, MSG_TOUCH_IDS_MAX + 1, 0);
    s_raw_expect (&raw, MSG_ERR_LIMIT_EXCEEDED,
                  "field \"evicted\": expected an array of 0 to 1000 items,"
                  " got 1001 items (over MSG_TOUCH_IDS_MAX)");
    s_raw_touch_evicted (&raw, 500, 501);
    s_raw_expect (&raw, MSG_ERR_LIMIT_EXCEEDED,
                  "field \"evicted\": expected touched, unknown and evicted"
                  " ids to be at most 1000 together, got 1001");
}

/*  "evicted" is optional so that older peers can read touch results, so
    like every optional key it is left out rather than sent empty.  */
static void
decode_rejects_empty_evicted_array (void **state)
{
    s_raw_t raw;
    s_raw_touch_evicted (&raw, 0, 1);
    s_raw_expect (&raw, MSG_ERR_BAD_REQUEST,
                  "field \"evicted\": must be left out when empty");

    s_raw_touch_evicted (&raw, 1, 1);
    s_raw_expect_ok (&raw);
}

static void
decode_rejects_evicted_in_other_results (void **state)
{
    s_raw_t raw;
    s_raw_result_array (&raw, "sweep", "evicted", 1, s_pack_id, 0);
    s_raw_expect (&raw, MSG_ERR_BAD_REQUEST,
                  "field \"evicted\": unknown key in sweep result");
}

static void
decode_rejects_inconsistent_tombstone (void **state)
{
    msg_t msg;
    size_t size;
    char *data;

    /*  Encoded from the valid sample, then patched, so that the encoder's
        own checks do not stop it first.  */
    memset (&msg, 0, sizeof (msg));
    s_build_result_tombstones (&msg);
    data = s_encode (&msg, &size);
    char *seq = memmem (data, size, "\xa3seq\x07", 5);
    assert_non_null (seq);
    seq[4] = 0x00;
    s_expect_rejected (data, size, MSG_ERR_BAD_REQUEST,
                       "field \"tombstones[0].seq\": expected an integer of"
                       " at least 1, got 0");
    free (data);

    data = s_encode (&msg, &size);
    char *reason = memmem (data, size, "deregistered", 12);
    assert_non_null (reason);
    memcpy (reason, "Deregistered", 12);
    s_expect_rejected (data, size, MSG_ERR_BAD_REQUEST,
                       "field \"tombstones[1].reason\": expected one of"
                       " stale, deregistered, operator");
    free (data);
}

static void
decode_limits_tombstones_page (void **state)
{
    s_raw_t raw;
    s_raw_result_array (&raw, "tombstones", "tombstones", 0, s_pack_id, 0);
    s_raw_expect_ok (&raw);

    s_raw_result_array (&raw, "tombstones", "tombstones", 1, s_pack_id, 0);
    s_raw_expect (&raw, MSG_ERR_BAD_REQUEST,
                  "field \"tombstones[0]\": expected a map, got a string");

    s_raw_head (&raw, 1, "tombstones");
    s_raw_key (&raw, "limit");
    s_raw_uint (&raw, MSG_PAGE_MAX + 1);
    s_raw_expect (&raw, MSG_ERR_LIMIT_EXCEEDED,
                  "field \"limit\": expected an integer from 1 to 1000,"
                  " got 1001 (over MSG_PAGE_MAX)");
}

static void
encode_rejects_bad_own_threshold_and_tombstones (void **state)
{
    msg_t msg;
    memset (&msg, 0, sizeof (msg));
    s_build_register_own_threshold (&msg);
    msg.u.register_.stale_after_ms = -1;
    s_encode_rejects (&msg, MSG_ERR_BAD_REQUEST,
                      "field \"stale_after_ms\": expected an integer of at"
                      " least 1, got -1");

    memset (&msg, 0, sizeof (msg));
    s_build_result_get (&msg);
    msg.u.result.client.stale_after_ms = -2;
    s_encode_rejects (&msg, MSG_ERR_BAD_REQUEST,
                      "field \"client.stale_after_ms\"");

    memset (&msg, 0, sizeof (msg));
    s_build_result_touch_evicted (&msg);
    msg_str_t evicted[1] = { STR ("bad id") };
    msg.u.result.evicted = evicted;
    msg.u.result.evicted_count = 1;
    s_encode_rejects (&msg, MSG_ERR_BAD_REQUEST, "field \"evicted[0]\"");

    memset (&msg, 0, sizeof (msg));
    s_build_result_tombstones (&msg);
    msg_tombstone_t tombstones[2] = { s_tombstones[0], s_tombstones[1] };
    tombstones[1].reason = MSG_REASON_COUNT;
    msg.u.result.tombstones = tombstones;
    s_encode_rejects (&msg, MSG_ERR_BAD_REQUEST,
                      "field \"tombstones[1].reason\"");
    tombstones[1] = s_tombstones[1];
    tombstones[0].removed_ms = -1;
    s_encode_rejects (&msg, MSG_ERR_BAD_REQUEST,
                      "field \"tombstones[0].removed_ms\"");
}

/*  A brake request with the given action and, when not 0, for_ms.  */
static void
s_raw_brake (s_raw_t *raw, const char *action, uint64_t for_ms)
{
    s_raw_head (raw, for_ms ? 2 : 1, "brake");
    s_raw_key (raw, "action");
    s_raw_key (raw, action);
    if (for_ms) {
        s_raw_key (raw, "for_ms");
        s_raw_uint (raw, for_ms);
    }
}

static void
decode_rejects_bad_brake_request (void **state)
{
    s_raw_t raw;
    s_raw_brake (&raw, "release", MSG_BRAKE_FOR_MAX_MS);
    s_raw_expect_ok (&raw);

    s_raw_brake (&raw, "stop", 0);
    s_raw_expect (&raw, MSG_ERR_BAD_REQUEST,
                  "field \"action\": expected one of status, release, got"
                  " \"stop\"");

    s_raw_brake (&raw, "status", 60000);
    s_raw_expect (&raw, MSG_ERR_BAD_REQUEST,
                  "field \"for_ms\": allowed only with action release, got"
                  " action status");

    s_raw_brake (&raw, "release", MSG_BRAKE_FOR_MAX_MS + 1);
    s_raw_expect (&raw, MSG_ERR_LIMIT_EXCEEDED,
                  "field \"for_ms\": expected at most 604800000 ms, got"
                  " 604800001 (over MSG_BRAKE_FOR_MAX_MS)");

    s_raw_head (&raw, 2, "brake");
    s_raw_key (&raw, "action");
    s_raw_key (&raw, "release");
    s_raw_key (&raw, "for_ms");
    s_raw_uint (&raw, 0);
    s_raw_expect (&raw, MSG_ERR_BAD_REQUEST,
                  "field \"for_ms\": expected an integer of at least 1,"
                  " got 0");

    s_raw_head (&raw, 0, "brake");
    s_raw_expect (&raw, MSG_ERR_BAD_REQUEST,
                  "field \"action\": missing, required in brake");
}

/*  The numbers of a brake result, the rest fixed.  */
typedef struct {
    bool engaged;
    uint64_t share;
    uint64_t clients;
    uint64_t stale;
    uint64_t limit;
    uint64_t held_back;
} s_brake_numbers_t;

static void
s_raw_brake_result (s_raw_t *raw, const s_brake_numbers_t *numbers)
{
    s_raw_head (raw, 11, "result");
    s_raw_key (raw, "cmd");
    s_raw_key (raw, "brake");
    s_raw_key (raw, "enabled");
    msgpack_pack_true (&raw->packer);
    s_raw_key (raw, "engaged");
    if (numbers->engaged)
        msgpack_pack_true (&raw->packer);
    else
        msgpack_pack_false (&raw->packer);
    s_raw_key (raw, "share");
    s_raw_uint (raw, numbers->share);
    s_raw_key (raw, "min_clients");
    s_raw_uint (raw, 100);
    s_raw_key (raw, "clients");
    s_raw_uint (raw, numbers->clients);
    s_raw_key (raw, "stale");
    s_raw_uint (raw, numbers->stale);
    s_raw_key (raw, "limit");
    s_raw_uint (raw, numbers->limit);
    s_raw_key (raw, "held_back");
    s_raw_uint (raw, numbers->held_back);
    s_raw_key (raw, "release_next");
    msgpack_pack_false (&raw->packer);
    s_raw_key (raw, "release_left_ms");
    s_raw_uint (raw, 0);
}

static void
decode_rejects_inconsistent_brake_result (void **state)
{
    static const struct {
        s_brake_numbers_t numbers;
        msg_error_code_t code;
        const char *fragment;
    } cases[] = {
        { { true, 20, 200, 100, 40, 60 }, MSG_ERR_NONE, NULL },
        { { false, 20, 200, 10, 40, 0 }, MSG_ERR_NONE, NULL },
        { { true, 0, 200, 100, 40, 60 }, MSG_ERR_BAD_REQUEST,
          "field \"share\": expected an integer from 1 to 100, got 0" },
        { { true, 101, 200, 100, 40, 60 }, MSG_ERR_BAD_REQUEST,
          "field \"share\": expected an integer from 1 to 100, got 101" },
        { { true, 20, 200, 201, 40, 60 }, MSG_ERR_BAD_REQUEST,
          "field \"stale\": expected at most clients (200), got 201" },
        { { true, 20, 200, 100, 201, 60 }, MSG_ERR_BAD_REQUEST,
          "field \"limit\": expected at most clients (200), got 201" },
        { { true, 20, 200, 100, 40, 101 }, MSG_ERR_BAD_REQUEST,
          "field \"held_back\": expected at most stale (100), got 101" },
        { { false, 20, 200, 100, 40, 60 }, MSG_ERR_BAD_REQUEST,
          "field \"held_back\": expected 0 when engaged is false, got 60" },
    };

    for (size_t index = 0; index < COUNT_OF (cases); index++) {
        s_raw_t raw;
        s_raw_brake_result (&raw, &cases[index].numbers);
        if (cases[index].code == MSG_ERR_NONE)
            s_raw_expect_ok (&raw);
        else
            s_raw_expect (&raw, cases[index].code, cases[index].fragment);
    }
}

static void
brake_action_names (void **state)
{
    msg_brake_action_t action = MSG_BRAKE_ACTION_COUNT;
    assert_string_equal (msg_brake_action_name (MSG_BRAKE_STATUS), "status");
    assert_string_equal (msg_brake_action_name (MSG_BRAKE_RELEASE),
                         "release");
    assert_string_equal (msg_brake_action_name (MSG_BRAKE_ACTION_COUNT),
                         "unknown");

    msg_t msg;
    memset (&msg, 0, sizeof (msg));
    s_build_brake_status (&msg);
    msg.u.brake.action = action;
    s_encode_rejects (&msg, MSG_ERR_BAD_REQUEST,
                      "field \"action\": 2 is not a valid brake action");
}

/*  Rejections by mutation of each sample's msgpack tree.  */

typedef enum {
    MUTATE_REMOVE,
    MUTATE_RETYPE,
    MUTATE_DUPLICATE,
    MUTATE_ADD_UNKNOWN
} s_mutation_t;

typedef struct {
    const char *sample;
    msg_type_t type;
    msgpack_object *root;
    s_mutation_t mutation;
    int tried;              /* mutations decoded, so a test can check it
                               reached the fields */
} s_mutator_t;

/*  Packs the root as it is now, decodes it and checks the outcome:
    rejected with code and a message naming path, or accepted when
    code is MSG_ERR_NONE.  */
static void
s_mutant_check (s_mutator_t *mutator, const char *what, const char *path,
                msg_error_code_t code)
{
    msgpack_sbuffer buffer;
    msgpack_packer packer;
    msgpack_sbuffer_init (&buffer);
    msgpack_packer_init (&packer, &buffer, msgpack_sbuffer_write);
    assert_int_equal (msgpack_pack_object (&packer, *mutator->root), 0);

    msg_t msg;
    msg_failure_t failure;
    int rc = msg_decode (buffer.data, buffer.size, &msg, &failure);
    msg_release (&msg);
    msgpack_sbuffer_destroy (&buffer);
    mutator->tried++;

    char fragment[160];
    if (*path)
        snprintf (fragment, sizeof (fragment), "field \"%s\"", path);
    else
        snprintf (fragment, sizeof (fragment), "body: ");
    if ((code == MSG_ERR_NONE) != (rc == 0) || failure.code != code
        || (rc != 0 && !strstr (failure.message, fragment)))
        print_error ("%s, %s at \"%s\": rc %d, code %s, message: %s\n",
                     mutator->sample, what, path, rc,
                     msg_error_code_name (failure.code), failure.message);
    assert_int_equal (rc, code == MSG_ERR_NONE ? 0 : -1);
    assert_int_equal (failure.code, code);
    if (rc != 0)
        s_assert_contains (failure.message, fragment);
}

static void
s_join (char *out, size_t size, const char *path, const char *key,
        uint32_t key_length)
{
    if (*path)
        snprintf (out, size, "%s.%.*s", path, (int) key_length, key);
    else
        snprintf (out, size, "%.*s", (int) key_length, key);
}

/*  Keys a sample may leave out.  */
static bool
s_key_is_optional (msg_type_t type, const char *path, const char *key)
{
    bool at_root = strcmp (path, key) == 0;
    if (strcmp (key, "meta") == 0 || strcmp (key, "stale_after_ms") == 0)
        return true;
    if (!at_root)
        return false;
    if (strcmp (key, "req") == 0 || strcmp (key, "next") == 0
        || strcmp (key, "evicted") == 0)
        return true;
    if (type == MSG_BRAKE && strcmp (key, "for_ms") == 0)
        return true;
    if (type != MSG_LIST && type != MSG_EVENTS && type != MSG_TOMBSTONES)
        return false;
    return strcmp (key, "after") == 0 || strcmp (key, "node") == 0;
}

/*  A value of every msgpack type, for swapping in.  */
static void
s_every_type (msgpack_object *objects, size_t count)
{
    assert_int_equal (count, 9);
    memset (objects, 0, count * sizeof (*objects));
    objects[0].type = MSGPACK_OBJECT_NIL;
    objects[1].type = MSGPACK_OBJECT_BOOLEAN;
    objects[1].via.boolean = true;
    objects[2].type = MSGPACK_OBJECT_POSITIVE_INTEGER;
    objects[2].via.u64 = 7;
    objects[3].type = MSGPACK_OBJECT_NEGATIVE_INTEGER;
    objects[3].via.i64 = -7;
    objects[4].type = MSGPACK_OBJECT_FLOAT64;
    objects[4].via.f64 = 1.5;
    objects[5].type = MSGPACK_OBJECT_STR;
    objects[5].via.str.ptr = "x";
    objects[5].via.str.size = 1;
    objects[6].type = MSGPACK_OBJECT_BIN;
    objects[6].via.bin.ptr = "x";
    objects[6].via.bin.size = 1;
    objects[7].type = MSGPACK_OBJECT_ARRAY;
    objects[8].type = MSGPACK_OBJECT_MAP;
}

/*  Swaps every other type into *slot in turn.  Each must be rejected.  */
static void
s_retype (s_mutator_t *mutator, msgpack_object *slot, const char *path)
{
    msgpack_object others[9];
    s_every_type (others, COUNT_OF (others));
    msgpack_object original = *slot;

    for (size_t index = 0; index < COUNT_OF (others); index++) {
        if (others[index].type == original.type)
            continue;
        *slot = others[index];
        s_mutant_check (mutator, "value of another type", path,
                        MSG_ERR_BAD_REQUEST);
    }
    *slot = original;
}

static void s_mutate (s_mutator_t *mutator, msgpack_object *object,
                      const char *path);

/*  Runs one mutation on a map with a copy of its entries plus one spare
    slot, restoring the map afterwards.  */
static void
s_mutate_entry (s_mutator_t *mutator, msgpack_object *map, uint32_t index,
                const char *path)
{
    msgpack_object_map saved = map->via.map;
    msgpack_object_kv *entries = calloc (saved.size + 1, sizeof (*entries));
    assert_non_null (entries);
    memcpy (entries, saved.ptr, saved.size * sizeof (*entries));
    map->via.map.ptr = entries;
    char key[64];
    snprintf (key, sizeof (key), "%.*s",
              (int) saved.ptr[index].key.via.str.size,
              saved.ptr[index].key.via.str.ptr);

    switch (mutator->mutation) {
    case MUTATE_REMOVE:
        entries[index] = entries[saved.size - 1];
        map->via.map.size--;
        s_mutant_check (mutator, "key removed", path,
                        s_key_is_optional (mutator->type, path, key)
                            ? MSG_ERR_NONE : MSG_ERR_BAD_REQUEST);
        break;
    case MUTATE_RETYPE:
        s_retype (mutator, &entries[index].val, path);
        break;
    case MUTATE_DUPLICATE:
        entries[saved.size] = entries[index];
        map->via.map.size++;
        s_mutant_check (mutator, "key twice", path, MSG_ERR_BAD_REQUEST);
        break;
    case MUTATE_ADD_UNKNOWN:
        break;
    }
    map->via.map = saved;
    free (entries);
}

static void
s_add_unknown_key (s_mutator_t *mutator, msgpack_object *map,
                   const char *path)
{
    msgpack_object_map saved = map->via.map;
    msgpack_object_kv *entries = calloc (saved.size + 1, sizeof (*entries));
    assert_non_null (entries);
    memcpy (entries, saved.ptr, saved.size * sizeof (*entries));
    map->via.map.ptr = entries;
    map->via.map.size++;

    msgpack_object_kv *extra = &entries[saved.size];
    extra->key.type = MSGPACK_OBJECT_STR;
    extra->key.via.str.ptr = "zz";
    extra->key.via.str.size = 2;
    extra->val.type = MSGPACK_OBJECT_NIL;
    char child[128];
    s_join (child, sizeof (child), path, "zz", 2);
    s_mutant_check (mutator, "unknown key", child, MSG_ERR_BAD_REQUEST);

    extra->key.type = MSGPACK_OBJECT_POSITIVE_INTEGER;
    extra->key.via.u64 = 1;
    s_mutant_check (mutator, "integer key", path, MSG_ERR_BAD_REQUEST);

    map->via.map = saved;
    free (entries);
}

/*  The stats map has no fixed keys, so only two mutations apply: a value
    of another type and a name twice.  The limit tests check the names.  */
static void
s_mutate_stats (s_mutator_t *mutator, msgpack_object *map, const char *path)
{
    for (uint32_t index = 0; index < map->via.map.size; index++) {
        msgpack_object_kv *entry = &map->via.map.ptr[index];
        char child[128];
        if (mutator->mutation == MUTATE_RETYPE) {
            s_join (child, sizeof (child), path, entry->key.via.str.ptr,
                    entry->key.via.str.size);
            s_retype (mutator, &entry->val, child);
        }
        if (mutator->mutation == MUTATE_DUPLICATE) {
            snprintf (child, sizeof (child), "%s[%u]", path,
                      (unsigned) map->via.map.size);
            s_mutate_entry (mutator, map, index, child);
        }
    }
}

static void
s_mutate_map (s_mutator_t *mutator, msgpack_object *map, const char *path)
{
    if (strcmp (path, "stats") == 0 && mutator->type == MSG_RESULT) {
        s_mutate_stats (mutator, map, path);
        return;
    }
    for (uint32_t index = 0; index < map->via.map.size; index++) {
        msgpack_object_kv *entry = &map->via.map.ptr[index];
        char child[128];
        s_join (child, sizeof (child), path, entry->key.via.str.ptr,
                entry->key.via.str.size);
        s_mutate_entry (mutator, map, index, child);
        s_mutate (mutator, &entry->val, child);
    }
    if (mutator->mutation == MUTATE_ADD_UNKNOWN)
        s_add_unknown_key (mutator, map, path);
}

static void
s_mutate (s_mutator_t *mutator, msgpack_object *object, const char *path)
{
    if (object->type == MSGPACK_OBJECT_MAP) {
        s_mutate_map (mutator, object, path);
        return;
    }
    if (object->type != MSGPACK_OBJECT_ARRAY)
        return;
    for (uint32_t index = 0; index < object->via.array.size; index++) {
        char child[128];
        snprintf (child, sizeof (child), "%s[%u]", path, (unsigned) index);
        if (mutator->mutation == MUTATE_RETYPE)
            s_retype (mutator, &object->via.array.ptr[index], child);
        s_mutate (mutator, &object->via.array.ptr[index], child);
    }
}

static void
s_mutate_samples (s_mutation_t mutation)
{
    int tried = 0;
    for (size_t index = 0; index < COUNT_OF (s_samples); index++) {
        msg_t msg;
        s_sample (&s_samples[index], &msg);
        size_t size;
        char *data = s_encode (&msg, &size);

        msgpack_unpacked unpacked;
        msgpack_unpacked_init (&unpacked);
        size_t offset = 0;
        assert_int_equal (msgpack_unpack_next (&unpacked, data, size,
                                               &offset),
                          MSGPACK_UNPACK_SUCCESS);
        s_mutator_t mutator = {
            .sample = s_samples[index].name, .type = msg.type,
            .root = &unpacked.data, .mutation = mutation
        };
        s_mutate (&mutator, &unpacked.data, "");
        assert_true (mutator.tried > 0);
        tried += mutator.tried;

        msgpack_unpacked_destroy (&unpacked);
        free (data);
    }
    print_message ("%d mutated bodies decoded\n", tried);
}

static void
decode_rejects_each_missing_key (void **state)
{
    s_mutate_samples (MUTATE_REMOVE);
}

static void
decode_rejects_each_wrong_type (void **state)
{
    s_mutate_samples (MUTATE_RETYPE);
}

static void
decode_rejects_each_duplicate_key (void **state)
{
    s_mutate_samples (MUTATE_DUPLICATE);
}

static void
decode_rejects_unknown_key_in_each_map (void **state)
{
    s_mutate_samples (MUTATE_ADD_UNKNOWN);
}

/*  Encoder rejections: what the decoder rejects is never sent.  */

static void
encode_rejects_bad_strings (void **state)
{
    msg_t msg;
    char text[MSG_META_MAX + 1];
    memset (text, 'x', sizeof (text));

    memset (&msg, 0, sizeof (msg));
    s_build_register (&msg);
    msg.u.register_.id = (msg_str_t) { "", 0 };
    s_encode_rejects (&msg, MSG_ERR_BAD_REQUEST,
                      "field \"id\": expected a string of 1 to 128 bytes,"
                      " got 0 bytes");
    msg.u.register_.id = (msg_str_t) { text, MSG_ID_MAX + 1 };
    s_encode_rejects (&msg, MSG_ERR_LIMIT_EXCEEDED,
                      "field \"id\": expected a string of 1 to 128 bytes,"
                      " got 129 bytes (over MSG_ID_MAX)");
    msg.u.register_.id = msg_str ("a b");
    s_encode_rejects (&msg, MSG_ERR_BAD_REQUEST, "field \"id\"");

    s_build_register (&msg);
    msg.u.register_.node = msg_str ("n/1");
    s_encode_rejects (&msg, MSG_ERR_BAD_REQUEST, "field \"node\"");
    msg.u.register_.node = msg_str (NULL);
    s_encode_rejects (&msg, MSG_ERR_BAD_REQUEST, "field \"node\"");

    s_build_register (&msg);
    msg.u.register_.meta = (msg_str_t) { text, MSG_META_MAX + 1 };
    s_encode_rejects (&msg, MSG_ERR_LIMIT_EXCEEDED,
                      "field \"meta\": expected binary of 0 to 1024 bytes,"
                      " got 1025 bytes (over MSG_META_MAX)");

    memset (&msg, 0, sizeof (msg));
    s_build_tick (&msg);
    msg.u.tick.scheduler = (msg_str_t) { text, MSG_SCHEDULER_MAX + 1 };
    s_encode_rejects (&msg, MSG_ERR_LIMIT_EXCEEDED, "field \"scheduler\"");

    memset (&msg, 0, sizeof (msg));
    s_build_error (&msg);
    msg.u.error.message = (msg_str_t) { text, MSG_TEXT_MAX + 1 };
    s_encode_rejects (&msg, MSG_ERR_LIMIT_EXCEEDED, "field \"message\"");
    msg.u.error.message = msg_str ("");
    s_encode_rejects (&msg, MSG_ERR_BAD_REQUEST, "field \"message\"");
}

static void
encode_rejects_bad_counts_and_numbers (void **state)
{
    static msg_str_t ids[MSG_TOUCH_IDS_MAX + 1];
    for (size_t index = 0; index < COUNT_OF (ids); index++)
        ids[index] = msg_str ("id");
    msg_t msg;

    memset (&msg, 0, sizeof (msg));
    s_build_touch (&msg);
    msg.u.touch = (msg_touch_t) { ids, MSG_TOUCH_IDS_MAX + 1 };
    s_encode_rejects (&msg, MSG_ERR_LIMIT_EXCEEDED,
                      "field \"ids\": expected an array of 1 to 1000 items,"
                      " got 1001 items (over MSG_TOUCH_IDS_MAX)");
    msg.u.touch = (msg_touch_t) { NULL, 0 };
    s_encode_rejects (&msg, MSG_ERR_BAD_REQUEST, "field \"ids\"");
    ids[5] = msg_str ("");
    msg.u.touch = (msg_touch_t) { ids, 6 };
    s_encode_rejects (&msg, MSG_ERR_BAD_REQUEST, "field \"ids[5]\"");

    memset (&msg, 0, sizeof (msg));
    s_build_list (&msg);
    msg.u.list.limit = 0;
    s_encode_rejects (&msg, MSG_ERR_BAD_REQUEST, "field \"limit\"");
    msg.u.list.limit = MSG_PAGE_MAX + 1;
    s_encode_rejects (&msg, MSG_ERR_LIMIT_EXCEEDED,
                      "field \"limit\": expected an integer from 1 to 1000,"
                      " got 1001 (over MSG_PAGE_MAX)");

    memset (&msg, 0, sizeof (msg));
    s_build_tick (&msg);
    msg.u.tick.interval_ms = 0;
    s_encode_rejects (&msg, MSG_ERR_BAD_REQUEST, "field \"interval_ms\"");
    s_build_tick (&msg);
    msg.u.tick.sent_ms = -5;
    s_encode_rejects (&msg, MSG_ERR_BAD_REQUEST, "field \"sent_ms\"");
    s_build_tick (&msg);
    msg.req = 3;
    s_encode_rejects (&msg, MSG_ERR_BAD_REQUEST,
                      "field \"req\": must be 0 in a tick, got 3");
}

static void
encode_rejects_bad_results (void **state)
{
    msg_t msg;
    static msg_stat_t stats[MSG_STATS_MAX + 1];
    static char names[MSG_STATS_MAX + 1][8];
    for (size_t index = 0; index < COUNT_OF (stats); index++) {
        snprintf (names[index], sizeof (names[index]), "s%zu", index);
        stats[index] = (msg_stat_t) { msg_str (names[index]), index };
    }

    memset (&msg, 0, sizeof (msg));
    s_build_result_stats (&msg);
    msg.u.result.stats = stats;
    msg.u.result.stats_count = MSG_STATS_MAX + 1;
    s_encode_rejects (&msg, MSG_ERR_LIMIT_EXCEEDED,
                      "field \"stats\": expected a map of 0 to 64 items, got"
                      " 65 items (over MSG_STATS_MAX)");
    stats[2].name = stats[0].name;
    msg.u.result.stats_count = 3;
    s_encode_rejects (&msg, MSG_ERR_BAD_REQUEST,
                      "field \"stats[2]\": duplicate name");

    memset (&msg, 0, sizeof (msg));
    s_build_result_sweep (&msg);
    msg.u.result.ids = s_ids;
    msg.u.result.ids_count = 1;
    s_encode_rejects (&msg, MSG_ERR_BAD_REQUEST,
                      "field \"ids\": must be empty unless dry_run is true");
    memset (&msg, 0, sizeof (msg));
    s_build_result_sweep (&msg);
    msg.u.result.sweep = 0;
    s_encode_rejects (&msg, MSG_ERR_BAD_REQUEST, "field \"sweep\"");

    memset (&msg, 0, sizeof (msg));
    s_build_result_get (&msg);
    msg.u.result.client.node = msg_str ("bad node");
    s_encode_rejects (&msg, MSG_ERR_BAD_REQUEST, "field \"client.node\"");

    memset (&msg, 0, sizeof (msg));
    s_build_result_list (&msg);
    msg_client_t clients[2] = { s_clients[0], s_clients[1] };
    clients[1].registered_ms = -1;
    msg.u.result.clients = clients;
    s_encode_rejects (&msg, MSG_ERR_BAD_REQUEST,
                      "field \"clients[1].registered_ms\"");

    memset (&msg, 0, sizeof (msg));
    s_build_result_events (&msg);
    msg_event_t events[2] = { s_events[0], s_events[1] };
    events[1].prev = 8;
    msg.u.result.events = events;
    s_encode_rejects (&msg, MSG_ERR_BAD_REQUEST,
                      "field \"events[1].prev\": expected less than seq 8,"
                      " got 8");

    memset (&msg, 0, sizeof (msg));
    s_build_result_register (&msg);
    msg.u.result.cmd = MSG_RESULT;
    s_encode_rejects (&msg, MSG_ERR_BAD_REQUEST,
                      "field \"cmd\": expected a command, got result");
}

static void
encode_rejects_bad_enums (void **state)
{
    msg_t msg;
    memset (&msg, 0, sizeof (msg));
    msg.type = MSG_TYPE_COUNT;
    s_encode_rejects (&msg, MSG_ERR_BAD_REQUEST, "field \"type\"");

    s_build_error (&msg);
    msg.u.error.code = MSG_ERR_NONE;
    s_encode_rejects (&msg, MSG_ERR_BAD_REQUEST,
                      "field \"code\": 0 is not a valid error code");

    memset (&msg, 0, sizeof (msg));
    s_build_event (&msg);
    msg.u.event.reason = MSG_REASON_COUNT;
    s_encode_rejects (&msg, MSG_ERR_BAD_REQUEST, "field \"reason\"");
}

static void
encode_rejects_oversize_body (void **state)
{
    /*  A full page of clients, each with the most metadata, is over
        MSG_SIZE_MAX once encoded.  */
    static char meta[MSG_META_MAX];
    static char ids[MSG_PAGE_MAX][8];
    msg_client_t *clients = calloc (MSG_PAGE_MAX, sizeof (*clients));
    assert_non_null (clients);
    for (uint32_t index = 0; index < MSG_PAGE_MAX; index++) {
        snprintf (ids[index], sizeof (ids[index]), "c%u", (unsigned) index);
        clients[index] = (msg_client_t) { msg_str (ids[index]),
                                          msg_str ("n"), 1, 2,
                                          { meta, MSG_META_MAX }, 0 };
    }
    msg_t msg;
    memset (&msg, 0, sizeof (msg));
    s_build_result (&msg, MSG_LIST);
    msg.u.result.clients = clients;
    msg.u.result.clients_count = MSG_PAGE_MAX;
    s_encode_rejects (&msg, MSG_ERR_LIMIT_EXCEEDED, "body: ");
    s_encode_rejects (&msg, MSG_ERR_LIMIT_EXCEEDED, "MSG_SIZE_MAX");

    msg.u.result.clients_count = MSG_PAGE_MAX / 2;
    size_t size;
    void *data = s_encode (&msg, &size);
    assert_true (size <= MSG_SIZE_MAX);
    free (data);
    free (clients);
}

#define TEST(function) cmocka_unit_test (function)

static const struct CMUnitTest s_tests[] = {
    TEST (names_of_types_codes_and_reasons),
    TEST (type_is_command_for_commands_only),
    TEST (str_helpers_view_compare_and_copy),
    TEST (id_and_node_validity),
    TEST (decode_returns_views_into_buffer),
    TEST (decode_accepts_keys_in_any_order),
    TEST (decode_accepts_any_integer_width),
    TEST (decode_sets_type_and_req_on_failure),
    TEST (decode_sets_req_when_type_is_unknown),
    TEST (release_accepts_zeroed_message),
    TEST (decode_rejects_empty_body),
    TEST (decode_rejects_oversize_body),
    TEST (decode_rejects_non_map_body),
    TEST (decode_rejects_hostile_counts),
    TEST (decode_rejects_invalid_msgpack_byte),
    TEST (decode_rejects_deep_nesting),
    TEST (decode_rejects_too_many_values),
    TEST (decode_rejects_trailing_bytes),
    TEST (decode_rejects_every_prefix),
    TEST (decode_rejects_unsupported_version),
    TEST (decode_rejects_unknown_type),
    TEST (decode_rejects_req_in_tick_and_event),
    TEST (decode_rejects_result_without_command),
    TEST (decode_rejects_non_string_key),
    TEST (decode_rejects_empty_id_in_touch),
    TEST (decode_limits_id_length),
    TEST (decode_rejects_bad_id_bytes),
    TEST (decode_rejects_bad_node),
    TEST (decode_limits_touch_ids),
    TEST (decode_limits_meta),
    TEST (decode_limits_page_size),
    TEST (decode_limits_scheduler_id),
    TEST (decode_limits_error_message),
    TEST (decode_limits_stats),
    TEST (decode_rejects_bad_stats_names),
    TEST (decode_limits_result_pages),
    TEST (decode_limits_touch_result),
    TEST (decode_rejects_own_threshold_below_one),
    TEST (decode_limits_touch_result_evicted),
    TEST (decode_rejects_empty_evicted_array),
    TEST (decode_rejects_evicted_in_other_results),
    TEST (decode_rejects_inconsistent_tombstone),
    TEST (decode_limits_tombstones_page),
    TEST (encode_rejects_bad_own_threshold_and_tombstones),
    TEST (decode_rejects_inconsistent_event),
    TEST (decode_rejects_inconsistent_sweep_result),
    TEST (decode_rejects_inconsistent_events_result),
    TEST (decode_rejects_out_of_range_numbers),
    TEST (decode_rejects_unknown_reason),
    TEST (decode_rejects_bad_brake_request),
    TEST (decode_rejects_inconsistent_brake_result),
    TEST (brake_action_names),
    TEST (decode_rejects_each_missing_key),
    TEST (decode_rejects_each_wrong_type),
    TEST (decode_rejects_each_duplicate_key),
    TEST (decode_rejects_unknown_key_in_each_map),
    TEST (encode_rejects_bad_strings),
    TEST (encode_rejects_bad_counts_and_numbers),
    TEST (encode_rejects_bad_results),
    TEST (encode_rejects_bad_enums),
    TEST (encode_rejects_oversize_body),
};

int
main (void)
{
    /*  The fixed tests, then one round trip per sample.  */
    enum { FIXED = COUNT_OF (s_tests), SAMPLES = COUNT_OF (s_samples) };
    struct CMUnitTest tests[FIXED + SAMPLES];
    memcpy (tests, s_tests, sizeof (s_tests));
    for (size_t index = 0; index < SAMPLES; index++) {
        tests[FIXED + index] = (struct CMUnitTest) {
            .name = s_samples[index].name,
            .test_func = s_round_trip,
            .initial_state = (void *) &s_samples[index],
        };
    }
    return _cmocka_run_group_tests ("protocol", tests, FIXED + SAMPLES,
                                    NULL, NULL);
}
