/*  decode.c: msgpack body to msg_t, checking each field as it is read.

    msg_scan checks the framing, msgpack_unpack_next builds the object
    tree (its strings point into the caller's buffer, not into copies),
    and the tree is then read key by key against the schema of the
    message type.  The tree is freed before msg_decode returns; what the
    message keeps are views into the caller's buffer and the arrays
    allocated here, which msg_release frees.
*/

#include "msg_check.h"

#include <assert.h>
#include <inttypes.h>
#include <msgpack.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    msg_check_t check;
    msg_t *msg;
} s_decoder_t;

/*  One allocation owned by a message.  msg->owned points to the newest,
    and each block points to the one allocated before it.  */
typedef struct s_block {
    struct s_block *next;
    max_align_t data[];
} s_block_t;

/*  Allocates a zeroed array owned by the message.  */
static void *
s_alloc (s_decoder_t *decoder, size_t count, size_t size)
{
    /*  msg_scan bounds count by MSG_VALUES_MAX, far from overflow.  */
    assert (count <= MSG_VALUES_MAX);
    s_block_t *block = calloc (1, sizeof (s_block_t) + count * size);
    if (!block) {
        msg_check_fail (&decoder->check, MSG_ERR_INTERNAL,
                        "out of memory for %zu items", count);
        return NULL;
    }
    block->next = decoder->msg->owned;
    decoder->msg->owned = block;
    return block->data;
}

static int
s_fail_type (s_decoder_t *decoder, const char *expected,
             const msgpack_object *object)
{
    return msg_check_fail (&decoder->check, MSG_ERR_BAD_REQUEST,
                           "expected %s, got %s", expected,
                           msg_check_type_name (object->type));
}

static int
s_read_str (s_decoder_t *decoder, const msgpack_object *object,
            msg_str_t *value)
{
    if (object->type != MSGPACK_OBJECT_STR)
        return s_fail_type (decoder, "a string", object);
    value->ptr = object->via.str.ptr;
    value->len = object->via.str.size;
    return 0;
}

static int
s_read_bin (s_decoder_t *decoder, const msgpack_object *object,
            msg_str_t *value)
{
    if (object->type != MSGPACK_OBJECT_BIN)
        return s_fail_type (decoder, "binary", object);
    value->ptr = object->via.bin.ptr;
    value->len = object->via.bin.size;
    return 0;
}

static int
s_read_uint (s_decoder_t *decoder, const msgpack_object *object,
             uint64_t *value)
{
    if (object->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
        return s_fail_type (decoder, "an unsigned integer", object);
    *value = object->via.u64;
    return 0;
}

static int
s_read_int (s_decoder_t *decoder, const msgpack_object *object,
            int64_t *value)
{
    if (object->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
        *value = object->via.i64;
        return 0;
    }
    if (object->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
        return s_fail_type (decoder, "an integer", object);
    if (object->via.u64 > INT64_MAX)
        return msg_check_fail (&decoder->check, MSG_ERR_BAD_REQUEST,
                               "expected an integer of at most %" PRId64
                               ", got %" PRIu64, INT64_MAX,
                               object->via.u64);
    *value = (int64_t) object->via.u64;
    return 0;
}

static int
s_fail_name (s_decoder_t *decoder, msg_str_t name, const char *expected)
{
    char shown[48];
    msg_check_escape (name.ptr, name.len, shown, sizeof (shown));
    return msg_check_fail (&decoder->check, MSG_ERR_BAD_REQUEST,
                           "expected %s, got \"%s\"", expected, shown);
}

static int
s_read_reason (s_decoder_t *decoder, const msgpack_object *object,
               msg_reason_t *reason)
{
    msg_str_t name;
    if (s_read_str (decoder, object, &name))
        return -1;
    if (msg_reason_parse (name, reason))
        return s_fail_name (decoder, name,
                            "one of stale, deregistered, operator");
    return 0;
}

static int
s_read_code (s_decoder_t *decoder, const msgpack_object *object,
             msg_error_code_t *code)
{
    msg_str_t name;
    if (s_read_str (decoder, object, &name))
        return -1;
    if (msg_error_code_parse (name, code))
        return s_fail_name (decoder, name,
                            "one of bad_request, unsupported_version,"
                            " unknown_type, limit_exceeded,"
                            " unknown_client, busy, internal, evicted");
    return 0;
}

static int
s_read_brake_action (s_decoder_t *decoder, const msgpack_object *object,
                     msg_brake_action_t *action)
{
    msg_str_t name;
    if (s_read_str (decoder, object, &name))
        return -1;
    if (msg_brake_action_parse (name, action))
        return s_fail_name (decoder, name, "one of status, release");
    return 0;
}

static int
s_read_map (s_decoder_t *decoder, const msgpack_object *object,
            const msg_schema_t *schema, void *target,
            const char *const *header_keys);

/*  Checks the array header of a field and allocates its items.  Returns
    the items (NULL for none) through *items.  */
static int
s_read_array (s_decoder_t *decoder, const msg_field_t *field,
              const msgpack_object *object, size_t item_size, void **items)
{
    if (object->type != MSGPACK_OBJECT_ARRAY)
        return s_fail_type (decoder, "an array", object);
    uint32_t count = object->via.array.size;
    if (msg_check_count (&decoder->check, "an array", count, field->min,
                         field->max, field->limit))
        return -1;

    *items = NULL;
    if (count > 0) {
        *items = s_alloc (decoder, count, item_size);
        if (!*items)
            return -1;
    }
    return 0;
}

static int
s_read_ids (s_decoder_t *decoder, const msg_field_t *field,
            const msgpack_object *object, msg_str_t **ids, uint32_t *count)
{
    void *items;
    if (s_read_array (decoder, field, object, sizeof (msg_str_t), &items))
        return -1;
    *ids = items;
    *count = object->via.array.size;

    /*  This is the touch path, so a valid id costs no path formatting.
        Only a bad one goes back through the checks that name it.  */
    for (uint32_t index = 0; index < *count; index++) {
        const msgpack_object *item = &object->via.array.ptr[index];
        msg_str_t *id = &(*ids)[index];
        if (item->type == MSGPACK_OBJECT_STR) {
            *id = (msg_str_t) { item->via.str.ptr, item->via.str.size };
            if (msg_id_is_valid (*id))
                continue;
        }
        msg_check_push_index (&decoder->check, index);
        if (s_read_str (decoder, item, id) == 0)
            msg_check_id (&decoder->check, *id);
        return -1;
    }
    return 0;
}

static int
s_read_struct (s_decoder_t *decoder, const msgpack_object *object,
               const msg_schema_t *schema, void *target)
{
    if (object->type != MSGPACK_OBJECT_MAP)
        return s_fail_type (decoder, "a map", object);
    return s_read_map (decoder, object, schema, target, NULL);
}

/*  Reads an array of maps of one schema: clients, events or
    tombstones.  */
static int
s_read_structs (s_decoder_t *decoder, const msg_field_t *field,
                const msgpack_object *object, const msg_schema_t *schema,
                size_t item_size, void **items, uint32_t *count)
{
    if (s_read_array (decoder, field, object, item_size, items))
        return -1;
    *count = object->via.array.size;

    for (uint32_t index = 0; index < *count; index++) {
        size_t mark = msg_check_push_index (&decoder->check, index);
        if (s_read_struct (decoder, &object->via.array.ptr[index], schema,
                           (char *) *items + index * item_size))
            return -1;
        msg_check_pop (&decoder->check, mark);
    }
    return 0;
}

static int
s_read_stats (s_decoder_t *decoder, const msgpack_object *object,
              msg_stat_t **stats, uint32_t *count)
{
    if (object->type != MSGPACK_OBJECT_MAP)
        return s_fail_type (decoder, "a map", object);
    uint32_t size = object->via.map.size;
    if (msg_check_count (&decoder->check, "a map", size, 0, MSG_STATS_MAX,
                         "MSG_STATS_MAX"))
        return -1;
    if (size == 0)
        return 0;
    *stats = s_alloc (decoder, size, sizeof (msg_stat_t));
    if (!*stats)
        return -1;
    *count = size;

    for (uint32_t index = 0; index < *count; index++) {
        const msgpack_object_kv *entry = &object->via.map.ptr[index];
        msg_stat_t *stat = &(*stats)[index];

        size_t mark = msg_check_push_index (&decoder->check, index);
        if (s_read_str (decoder, &entry->key, &stat->name))
            return -1;
        msg_check_pop (&decoder->check, mark);

        mark = msg_check_push_key (&decoder->check, stat->name.ptr,
                                   stat->name.len);
        if (s_read_uint (decoder, &entry->val, &stat->value))
            return -1;
        msg_check_pop (&decoder->check, mark);
    }

    /*  Names and duplicates, by the same rule the encoder applies.  */
    return msg_check_stats (&decoder->check, *stats, *count);
}

/*  Reads the value of one field into target and checks it.  */
static int
s_read_field (s_decoder_t *decoder, const msg_field_t *field,
              const msgpack_object *object, void *target)
{
    void *value = (char *) target + field->offset;
    uint32_t *count = (uint32_t *) ((char *) target + field->count_offset);
    uint64_t number = 0;
    void *items = NULL;
    int rc;

    switch (field->kind) {
    case MSG_KIND_ID:
    case MSG_KIND_NODE:
    case MSG_KIND_SCHEDULER:
    case MSG_KIND_TEXT:
        if (s_read_str (decoder, object, value))
            return -1;
        return msg_check_field (&decoder->check, field, target);
    case MSG_KIND_META:
        if (s_read_bin (decoder, object, value))
            return -1;
        return msg_check_field (&decoder->check, field, target);
    case MSG_KIND_UINT32:
        /*  Range first: the value may not fit in 32 bits.  */
        if (s_read_uint (decoder, object, &number)
            || msg_check_uint (&decoder->check, number, field->min,
                               field->max, field->limit))
            return -1;
        *(uint32_t *) value = (uint32_t) number;
        return 0;
    case MSG_KIND_UINT64:
        if (s_read_uint (decoder, object, value))
            return -1;
        return msg_check_field (&decoder->check, field, target);
    case MSG_KIND_INT64:
        if (s_read_int (decoder, object, value))
            return -1;
        return msg_check_field (&decoder->check, field, target);
    case MSG_KIND_BOOL:
        if (object->type != MSGPACK_OBJECT_BOOLEAN)
            return s_fail_type (decoder, "a boolean", object);
        *(bool *) value = object->via.boolean;
        return 0;
    case MSG_KIND_REASON:
        return s_read_reason (decoder, object, value);
    case MSG_KIND_CODE:
        return s_read_code (decoder, object, value);
    case MSG_KIND_BRAKE_ACTION:
        return s_read_brake_action (decoder, object, value);
    case MSG_KIND_ID_ARRAY:
        return s_read_ids (decoder, field, object, value, count);
    case MSG_KIND_CLIENT:
        return s_read_struct (decoder, object, &msg_schema_client, value);
    case MSG_KIND_CLIENT_ARRAY:
        rc = s_read_structs (decoder, field, object, &msg_schema_client,
                             sizeof (msg_client_t), &items, count);
        *(msg_client_t **) value = items;
        return rc;
    case MSG_KIND_EVENT_ARRAY:
        rc = s_read_structs (decoder, field, object, &msg_schema_event,
                             sizeof (msg_event_t), &items, count);
        *(msg_event_t **) value = items;
        return rc;
    case MSG_KIND_TOMBSTONE_ARRAY:
        rc = s_read_structs (decoder, field, object, &msg_schema_tombstone,
                             sizeof (msg_tombstone_t), &items, count);
        *(msg_tombstone_t **) value = items;
        return rc;
    case MSG_KIND_STATS:
        return s_read_stats (decoder, object, value, count);
    }
    assert (!"unknown field kind");
    return -1;
}

static bool
s_key_is (const msgpack_object *key, const char *name)
{
    size_t length = strlen (name);
    return key->type == MSGPACK_OBJECT_STR && key->via.str.size == length
           && memcmp (key->via.str.ptr, name, length) == 0;
}

static bool
s_is_header_key (const msgpack_object *key, const char *const *header_keys)
{
    for (; header_keys && *header_keys; header_keys++) {
        if (s_key_is (key, *header_keys))
            return true;
    }
    return false;
}

/*  Appends ", key" (or "key" first) to a list, cut at size.  */
static size_t
s_list_append (char *list, size_t size, size_t used, const char *key)
{
    if (used >= size - 1)
        return used;
    int written = snprintf (list + used, size - used, "%s%s",
                            used ? ", " : "", key);
    if (written < 0 || (size_t) written >= size - used)
        return size - 1;
    return used + (size_t) written;
}

/*  Fails on an unknown key, listing the keys the map may have.  */
static int
s_fail_unknown_key (s_decoder_t *decoder, const msg_schema_t *schema,
                    const char *const *header_keys)
{
    char keys[MSG_TEXT_MAX] = "";
    size_t used = 0;

    for (; header_keys && *header_keys; header_keys++)
        used = s_list_append (keys, sizeof (keys), used, *header_keys);
    for (size_t index = 0; index < schema->field_count; index++)
        used = s_list_append (keys, sizeof (keys), used,
                              schema->fields[index].key);
    return msg_check_fail (&decoder->check, MSG_ERR_BAD_REQUEST,
                           "unknown key in %s, expected one of: %s",
                           schema->name, keys);
}

/*  Reads one key of a map into target.  *seen has a bit per field of
    the schema already read.  */
static int
s_read_entry (s_decoder_t *decoder, const msgpack_object_kv *entry,
              const msg_schema_t *schema, void *target,
              const char *const *header_keys, uint32_t *seen)
{
    const msg_field_t *field = NULL;
    size_t index;
    for (index = 0; index < schema->field_count; index++) {
        if (s_key_is (&entry->key, schema->fields[index].key)) {
            field = &schema->fields[index];
            break;
        }
    }

    size_t mark = msg_check_push_key (&decoder->check,
                                      entry->key.via.str.ptr,
                                      entry->key.via.str.size);
    if (!field)
        return s_fail_unknown_key (decoder, schema, header_keys);
    if (*seen & (UINT32_C (1) << index))
        return msg_check_fail (&decoder->check, MSG_ERR_BAD_REQUEST,
                               "duplicate key");
    *seen |= UINT32_C (1) << index;

    if (s_read_field (decoder, field, &entry->val, target))
        return -1;
    msg_check_pop (&decoder->check, mark);
    return 0;
}

/*  Checks that each key is on the wire exactly when its presence rule
    requires, now that every value is known.  */
static int
s_check_presence (s_decoder_t *decoder, const msg_schema_t *schema,
                  const void *target, uint32_t seen)
{
    for (size_t index = 0; index < schema->field_count; index++) {
        const msg_field_t *field = &schema->fields[index];
        bool was_seen = seen & (UINT32_C (1) << index);
        bool present = msg_field_is_present (field, target);
        if (was_seen == present)
            continue;

        msg_check_push_key (&decoder->check, field->key,
                            strlen (field->key));
        if (present && field->presence == MSG_DRY_RUN_ONLY)
            return msg_check_fail (&decoder->check, MSG_ERR_BAD_REQUEST,
                                   "missing, required when dry_run is"
                                   " true");
        if (present)
            return msg_check_fail (&decoder->check, MSG_ERR_BAD_REQUEST,
                                   "missing, required in %s", schema->name);
        if (field->presence == MSG_DRY_RUN_ONLY)
            return msg_check_fail (&decoder->check, MSG_ERR_BAD_REQUEST,
                                   "allowed only when dry_run is true");
        return msg_check_fail (&decoder->check, MSG_ERR_BAD_REQUEST,
                               "must be left out when empty");
    }
    return 0;
}

/*  Reads a map into target by schema.  Keys in header_keys (a NULL
    terminated list, or NULL) were read by the caller and are skipped.  */
static int
s_read_map (s_decoder_t *decoder, const msgpack_object *object,
            const msg_schema_t *schema, void *target,
            const char *const *header_keys)
{
    assert (schema->field_count <= MSG_SCHEMA_KEYS_MAX);
    const msgpack_object_map *map = &object->via.map;
    uint32_t seen = 0;

    for (uint32_t index = 0; index < map->size; index++) {
        const msgpack_object_kv *entry = &map->ptr[index];
        if (entry->key.type != MSGPACK_OBJECT_STR)
            return msg_check_fail (&decoder->check, MSG_ERR_BAD_REQUEST,
                                   "expected string keys, key %" PRIu32
                                   " is %s", index,
                                   msg_check_type_name (entry->key.type));
        if (s_is_header_key (&entry->key, header_keys))
            continue;
        if (s_read_entry (decoder, entry, schema, target, header_keys,
                          &seen))
            return -1;
    }

    if (s_check_presence (decoder, schema, target, seen))
        return -1;
    if (schema->cross_check)
        return schema->cross_check (&decoder->check, target);
    return 0;
}

/*  The keys every body may start with, found before the rest is read.  */
typedef struct {
    const msgpack_object *version;
    const msgpack_object *type;
    const msgpack_object *req;
    const msgpack_object *cmd;
    const char *duplicate;          /* first header key seen twice */
} s_header_t;

static void
s_find_header (const msgpack_object_map *map, s_header_t *header)
{
    static const char *const names[] = { "v", "type", "req", "cmd" };
    const msgpack_object **slots[] = {
        &header->version, &header->type, &header->req, &header->cmd
    };

    for (uint32_t index = 0; index < map->size; index++) {
        const msgpack_object_kv *entry = &map->ptr[index];
        for (size_t name = 0; name < 4; name++) {
            if (!s_key_is (&entry->key, names[name]))
                continue;
            if (*slots[name] && !header->duplicate)
                header->duplicate = names[name];
            if (!*slots[name])
                *slots[name] = &entry->val;
        }
    }
}

/*  Sets msg->type, msg->req and the result's cmd from whatever of the
    header can be read, before anything is checked, so that an error
    reply can echo them.  */
static void
s_peek_header (const s_header_t *header, msg_t *msg)
{
    msg_str_t name;
    msg_type_t type;

    if (header->type && header->type->type == MSGPACK_OBJECT_STR) {
        name = (msg_str_t) { header->type->via.str.ptr,
                             header->type->via.str.size };
        if (msg_type_parse (name, &type) == 0)
            msg->type = type;
    }
    if (header->req && header->req->type == MSGPACK_OBJECT_POSITIVE_INTEGER
        && msg_type_has_req (msg->type))
        msg->req = header->req->via.u64;
    if (msg->type == MSG_RESULT && header->cmd
        && header->cmd->type == MSGPACK_OBJECT_STR) {
        name = (msg_str_t) { header->cmd->via.str.ptr,
                             header->cmd->via.str.size };
        if (msg_type_parse (name, &type) == 0 && msg_type_is_command (type))
            msg->u.result.cmd = type;
    }
}

static int
s_check_version (s_decoder_t *decoder, const s_header_t *header)
{
    uint64_t version = 0;
    size_t mark = msg_check_push_key (&decoder->check, "v", 1);

    if (!header->version)
        return msg_check_fail (&decoder->check, MSG_ERR_BAD_REQUEST,
                               "missing, required in every message");
    if (s_read_uint (decoder, header->version, &version))
        return -1;
    if (version != MSG_VERSION)
        return msg_check_fail (&decoder->check, MSG_ERR_UNSUPPORTED_VERSION,
                               "unsupported version %" PRIu64
                               ", this peer speaks version %d",
                               version, MSG_VERSION);
    msg_check_pop (&decoder->check, mark);
    return 0;
}

static int
s_check_type (s_decoder_t *decoder, const s_header_t *header)
{
    msg_str_t name;
    msg_type_t type;
    size_t mark = msg_check_push_key (&decoder->check, "type", 4);

    if (!header->type)
        return msg_check_fail (&decoder->check, MSG_ERR_BAD_REQUEST,
                               "missing, required in every message");
    if (s_read_str (decoder, header->type, &name))
        return -1;
    if (msg_type_parse (name, &type)) {
        char shown[48];
        msg_check_escape (name.ptr, name.len, shown, sizeof (shown));
        return msg_check_fail (&decoder->check, MSG_ERR_UNKNOWN_TYPE,
                               "unknown message type \"%s\"", shown);
    }
    msg_check_pop (&decoder->check, mark);
    return 0;
}

static int
s_check_cmd (s_decoder_t *decoder, const s_header_t *header)
{
    msg_str_t name;
    msg_type_t type;
    size_t mark = msg_check_push_key (&decoder->check, "cmd", 3);

    if (!header->cmd)
        return msg_check_fail (&decoder->check, MSG_ERR_BAD_REQUEST,
                               "missing, required in result");
    if (s_read_str (decoder, header->cmd, &name))
        return -1;
    if (msg_type_parse (name, &type) || !msg_type_is_command (type))
        return s_fail_name (decoder, name,
                            "a command name: register, touch, deregister,"
                            " evict, get, list, stats, sweep, events,"
                            " tombstones or brake");
    msg_check_pop (&decoder->check, mark);
    return 0;
}

/*  Reads and checks "v", "type", "req" and, in a result, "cmd".  */
static int
s_read_header (s_decoder_t *decoder, const msgpack_object_map *map,
               msg_t *msg)
{
    s_header_t header = { 0 };
    s_find_header (map, &header);
    s_peek_header (&header, msg);

    if (header.duplicate) {
        msg_check_push_key (&decoder->check, header.duplicate,
                            strlen (header.duplicate));
        return msg_check_fail (&decoder->check, MSG_ERR_BAD_REQUEST,
                               "duplicate key");
    }
    /*  Version first: a newer peer may send a type this one lacks.  */
    if (s_check_version (decoder, &header) || s_check_type (decoder, &header))
        return -1;

    if (header.req && msg_type_has_req (msg->type)) {
        uint64_t req;
        size_t mark = msg_check_push_key (&decoder->check, "req", 3);
        if (s_read_uint (decoder, header.req, &req))
            return -1;
        msg_check_pop (&decoder->check, mark);
    }
    if (msg->type == MSG_RESULT)
        return s_check_cmd (decoder, &header);
    return 0;
}

/*  The keys read by s_read_header, which the schema walk skips.  */
static const char *const *
s_header_keys (msg_type_t type)
{
    static const char *const result_keys[] = { "v", "type", "req", "cmd",
                                               NULL };
    static const char *const command_keys[] = { "v", "type", "req", NULL };
    static const char *const plain_keys[] = { "v", "type", NULL };

    if (type == MSG_RESULT)
        return result_keys;
    return msg_type_has_req (type) ? command_keys : plain_keys;
}

/*  Scans and unpacks the body, then reads the root map.  */
static int
s_decode_body (s_decoder_t *decoder, const char *data, size_t size,
               msgpack_unpacked *unpacked)
{
    msg_t *msg = decoder->msg;
    size_t end = 0;
    if (msg_scan (&decoder->check, (const uint8_t *) data, size, &end))
        return -1;

    size_t offset = 0;
    msgpack_unpack_return rc = msgpack_unpack_next (unpacked, data, end,
                                                    &offset);
    if (rc == MSGPACK_UNPACK_NOMEM_ERROR)
        return msg_check_fail (&decoder->check, MSG_ERR_INTERNAL,
                               "out of memory unpacking %zu bytes", end);
    if (rc != MSGPACK_UNPACK_SUCCESS || offset != end)
        return msg_check_fail (&decoder->check, MSG_ERR_BAD_REQUEST,
                               "invalid msgpack");

    const msgpack_object *root = &unpacked->data;
    if (root->type != MSGPACK_OBJECT_MAP)
        return s_fail_type (decoder, "a map", root);
    if (s_read_header (decoder, &root->via.map, msg))
        return -1;

    void *target = msg->type == MSG_RESULT ? (void *) &msg->u.result
                                           : (void *) &msg->u;
    const msg_schema_t *schema = msg_schema_of (msg->type,
                                                msg->u.result.cmd);
    assert (schema);
    if (s_read_map (decoder, root, schema, target,
                    s_header_keys (msg->type)))
        return -1;

    if (end < size)
        return msg_check_fail (&decoder->check, MSG_ERR_BAD_REQUEST,
                               "%zu %s left over after the map", size - end,
                               size - end == 1 ? "byte" : "bytes");
    return 0;
}

int
msg_decode (const void *data, size_t size, msg_t *msg,
            msg_failure_t *failure)
{
    assert (msg);
    assert (failure);
    assert (data || size == 0);

    s_decoder_t decoder = { .msg = msg };
    msg_check_init (&decoder.check, failure);
    memset (msg, 0, sizeof (*msg));
    msg->type = MSG_TYPE_COUNT;

    if (size > MSG_SIZE_MAX)
        return msg_check_fail (&decoder.check, MSG_ERR_LIMIT_EXCEEDED,
                               "%zu bytes is over MSG_SIZE_MAX (%d bytes)",
                               size, MSG_SIZE_MAX);
    if (size == 0)
        return msg_check_fail (&decoder.check, MSG_ERR_BAD_REQUEST,
                               "empty, expected a msgpack map");

    msgpack_unpacked unpacked;
    msgpack_unpacked_init (&unpacked);
    int rc = s_decode_body (&decoder, data, size, &unpacked);
    msgpack_unpacked_destroy (&unpacked);
    return rc;
}

void
msg_release (msg_t *msg)
{
    if (!msg)
        return;
    s_block_t *block = msg->owned;
    while (block) {
        s_block_t *next = block->next;
        free (block);
        block = next;
    }
    memset (msg, 0, sizeof (*msg));
}
