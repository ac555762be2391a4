/*  encode.c: msg_t to a msgpack body, after the same checks the decoder
    applies.  Keys go out in schema order: "v", "type", "req" (when not
    0), "cmd" (results), then the fields of the type.  */

#include "msg_check.h"

#include <assert.h>
#include <msgpack.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    msgpack_sbuffer buffer;
    msgpack_packer packer;
    int rc;                 /* the first packer failure, or 0 */
} s_encoder_t;

/*  Each s_pack_* call does nothing once a call has failed, so a
    sequence of them needs one check at the end.  */

static void
s_pack_str (s_encoder_t *encoder, const char *text, size_t length)
{
    if (encoder->rc == 0)
        encoder->rc = msgpack_pack_str (&encoder->packer, length);
    if (encoder->rc == 0 && length > 0)
        encoder->rc = msgpack_pack_str_body (&encoder->packer, text, length);
}

static void
s_pack_view (s_encoder_t *encoder, msg_str_t view)
{
    s_pack_str (encoder, view.ptr, view.len);
}

static void
s_pack_key (s_encoder_t *encoder, const char *key)
{
    s_pack_str (encoder, key, strlen (key));
}

static void
s_pack_bin (s_encoder_t *encoder, msg_str_t view)
{
    if (encoder->rc == 0)
        encoder->rc = msgpack_pack_bin (&encoder->packer, view.len);
    if (encoder->rc == 0 && view.len > 0)
        encoder->rc = msgpack_pack_bin_body (&encoder->packer, view.ptr,
                                             view.len);
}

static void
s_pack_uint (s_encoder_t *encoder, uint64_t value)
{
    if (encoder->rc == 0)
        encoder->rc = msgpack_pack_uint64 (&encoder->packer, value);
}

static void
s_pack_int (s_encoder_t *encoder, int64_t value)
{
    if (encoder->rc == 0)
        encoder->rc = msgpack_pack_int64 (&encoder->packer, value);
}

static void
s_pack_bool (s_encoder_t *encoder, bool value)
{
    if (encoder->rc == 0)
        encoder->rc = value ? msgpack_pack_true (&encoder->packer)
                            : msgpack_pack_false (&encoder->packer);
}

static void
s_pack_array (s_encoder_t *encoder, uint32_t count)
{
    if (encoder->rc == 0)
        encoder->rc = msgpack_pack_array (&encoder->packer, count);
}

static void
s_pack_map (s_encoder_t *encoder, uint32_t count)
{
    if (encoder->rc == 0)
        encoder->rc = msgpack_pack_map (&encoder->packer, count);
}

static void
s_pack_struct (s_encoder_t *encoder, const msg_schema_t *schema,
               const void *target);

static void
s_pack_structs (s_encoder_t *encoder, const msg_schema_t *schema,
                const void *items, uint32_t count, size_t item_size)
{
    s_pack_array (encoder, count);
    for (uint32_t index = 0; index < count; index++)
        s_pack_struct (encoder, schema,
                       (const char *) items + index * item_size);
}

static void
s_pack_field (s_encoder_t *encoder, const msg_field_t *field,
              const void *target)
{
    const void *value = (const char *) target + field->offset;
    uint32_t count = *(const uint32_t *) ((const char *) target
                                          + field->count_offset);

    switch (field->kind) {
    case MSG_KIND_ID:
    case MSG_KIND_NODE:
    case MSG_KIND_SCHEDULER:
    case MSG_KIND_TEXT:
        s_pack_view (encoder, *(const msg_str_t *) value);
        return;
    case MSG_KIND_META:
        s_pack_bin (encoder, *(const msg_str_t *) value);
        return;
    case MSG_KIND_UINT32:
        s_pack_uint (encoder, *(const uint32_t *) value);
        return;
    case MSG_KIND_UINT64:
        s_pack_uint (encoder, *(const uint64_t *) value);
        return;
    case MSG_KIND_INT64:
        s_pack_int (encoder, *(const int64_t *) value);
        return;
    case MSG_KIND_BOOL:
        s_pack_bool (encoder, *(const bool *) value);
        return;
    case MSG_KIND_REASON:
        s_pack_key (encoder, msg_reason_name (*(const msg_reason_t *) value));
        return;
    case MSG_KIND_CODE:
        s_pack_key (encoder,
                    msg_error_code_name (*(const msg_error_code_t *) value));
        return;
    case MSG_KIND_BRAKE_ACTION:
        s_pack_key (encoder, msg_brake_action_name (
                                 *(const msg_brake_action_t *) value));
        return;
    case MSG_KIND_ID_ARRAY: {
        const msg_str_t *ids = *(msg_str_t *const *) value;
        s_pack_array (encoder, count);
        for (uint32_t index = 0; index < count; index++)
            s_pack_view (encoder, ids[index]);
        return;
    }
    case MSG_KIND_CLIENT:
        s_pack_struct (encoder, &msg_schema_client, value);
        return;
    case MSG_KIND_CLIENT_ARRAY:
        s_pack_structs (encoder, &msg_schema_client,
                        *(msg_client_t *const *) value, count,
                        sizeof (msg_client_t));
        return;
    case MSG_KIND_EVENT_ARRAY:
        s_pack_structs (encoder, &msg_schema_event,
                        *(msg_event_t *const *) value, count,
                        sizeof (msg_event_t));
        return;
    case MSG_KIND_TOMBSTONE_ARRAY:
        s_pack_structs (encoder, &msg_schema_tombstone,
                        *(msg_tombstone_t *const *) value, count,
                        sizeof (msg_tombstone_t));
        return;
    case MSG_KIND_STATS: {
        const msg_stat_t *stats = *(msg_stat_t *const *) value;
        s_pack_map (encoder, count);
        for (uint32_t index = 0; index < count; index++) {
            s_pack_view (encoder, stats[index].name);
            s_pack_uint (encoder, stats[index].value);
        }
        return;
    }
    }
    assert (!"unknown field kind");
}

static uint32_t
s_count_present (const msg_schema_t *schema, const void *target)
{
    uint32_t count = 0;
    for (size_t index = 0; index < schema->field_count; index++)
        count += msg_field_is_present (&schema->fields[index], target);
    return count;
}

static void
s_pack_fields (s_encoder_t *encoder, const msg_schema_t *schema,
               const void *target)
{
    for (size_t index = 0; index < schema->field_count; index++) {
        const msg_field_t *field = &schema->fields[index];
        if (!msg_field_is_present (field, target))
            continue;
        s_pack_key (encoder, field->key);
        s_pack_field (encoder, field, target);
    }
}

static void
s_pack_struct (s_encoder_t *encoder, const msg_schema_t *schema,
               const void *target)
{
    s_pack_map (encoder, s_count_present (schema, target));
    s_pack_fields (encoder, schema, target);
}

/*  Packs the root map: the header keys, then the fields of the type.  */
static void
s_pack_message (s_encoder_t *encoder, const msg_t *msg)
{
    bool is_result = msg->type == MSG_RESULT;
    const void *target = is_result ? (const void *) &msg->u.result
                                   : (const void *) &msg->u;
    const msg_schema_t *schema = msg_schema_of (msg->type,
                                                msg->u.result.cmd);
    assert (schema);

    uint32_t count = 2 + (msg->req != 0) + is_result
                     + s_count_present (schema, target);
    s_pack_map (encoder, count);
    s_pack_key (encoder, "v");
    s_pack_uint (encoder, MSG_VERSION);
    s_pack_key (encoder, "type");
    s_pack_key (encoder, msg_type_name (msg->type));
    if (msg->req != 0) {
        s_pack_key (encoder, "req");
        s_pack_uint (encoder, msg->req);
    }
    if (is_result) {
        s_pack_key (encoder, "cmd");
        s_pack_key (encoder, msg_type_name (msg->u.result.cmd));
    }
    s_pack_fields (encoder, schema, target);
}

int
msg_encode (const msg_t *msg, void **data, size_t *size,
            msg_failure_t *failure)
{
    assert (msg);
    assert (data);
    assert (size);
    assert (failure);

    msg_check_t check;
    msg_check_init (&check, failure);
    *data = NULL;
    *size = 0;
    if (msg_check_message (&check, msg))
        return -1;

    s_encoder_t encoder = { .rc = 0 };
    msgpack_sbuffer_init (&encoder.buffer);
    msgpack_packer_init (&encoder.packer, &encoder.buffer,
                         msgpack_sbuffer_write);
    s_pack_message (&encoder, msg);

    if (encoder.rc != 0) {
        msgpack_sbuffer_destroy (&encoder.buffer);
        return msg_check_fail (&check, MSG_ERR_INTERNAL,
                               "out of memory encoding a %s",
                               msg_type_name (msg->type));
    }
    /*  Only a large list page can get here.  MSG_PAGE_MAX clients with
        the longest ids, nodes and metadata take about 1.3 MB.  */
    if (encoder.buffer.size > MSG_SIZE_MAX) {
        size_t encoded = encoder.buffer.size;
        msgpack_sbuffer_destroy (&encoder.buffer);
        return msg_check_fail (&check, MSG_ERR_LIMIT_EXCEEDED,
                               "%zu bytes is over MSG_SIZE_MAX (%d bytes)",
                               encoded, MSG_SIZE_MAX);
    }
    *size = encoder.buffer.size;
    *data = msgpack_sbuffer_release (&encoder.buffer);
    return 0;
}
