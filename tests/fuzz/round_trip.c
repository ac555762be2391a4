/*  round_trip.c: the checks every protocol fuzz target runs on its
    input.  See fuzz.h.  */

#include "fuzz.h"
#include "msg_schema.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void
fuzz_fail (const char *format, ...)
{
    va_list args;

    fputs ("fuzz: ", stderr);
    va_start (args, format);
    vfprintf (stderr, format, args);
    va_end (args);
    fputc ('\n', stderr);
    abort ();
}

bool
fuzz_family_has (fuzz_family_t family, msg_type_t type)
{
    if (type == MSG_TYPE_COUNT)
        return true;

    switch (family) {
    case FUZZ_FAMILY_ANY:
        return true;
    case FUZZ_FAMILY_COMMANDS:
        return msg_type_is_command (type);
    case FUZZ_FAMILY_REPLIES:
        return type == MSG_RESULT || type == MSG_ERROR;
    case FUZZ_FAMILY_PUBLISHED:
        return type == MSG_TICK || type == MSG_EVENT;
    }
    return false;
}

/*  The comparison walks the same schemas as the decoder and encoder,
    so that a field added to a schema is compared without a change
    here.  A field of a new kind fails the round trip until it is added
    to s_same_field.  */

static bool
s_same_struct (const msg_schema_t *schema, const void *one,
               const void *other);

/*  Returns same, after naming the field on stderr when it is false, so
    that a failed round trip shows where the two messages differ.  */
static bool
s_same (const msg_field_t *field, bool same)
{
    if (!same)
        fprintf (stderr, "fuzz: field \"%s\" differs after the round"
                 " trip\n", field->key);
    return same;
}

static bool
s_same_str (msg_str_t one, msg_str_t other)
{
    return one.len == other.len
           && (one.len == 0 || memcmp (one.ptr, other.ptr, one.len) == 0);
}

static bool
s_same_strs (const msg_str_t *one, const msg_str_t *other, uint32_t count)
{
    for (uint32_t index = 0; index < count; index++)
        if (!s_same_str (one[index], other[index]))
            return false;
    return true;
}

static bool
s_same_structs (const msg_schema_t *schema, const void *one,
                const void *other, uint32_t count, size_t item_size)
{
    for (uint32_t index = 0; index < count; index++)
        if (!s_same_struct (schema, (const char *) one + index * item_size,
                            (const char *) other + index * item_size))
            return false;
    return true;
}

static bool
s_same_stats (const msg_stat_t *one, const msg_stat_t *other,
              uint32_t count)
{
    for (uint32_t index = 0; index < count; index++)
        if (!s_same_str (one[index].name, other[index].name)
            || one[index].value != other[index].value)
            return false;
    return true;
}

/*  Compares the items of an array field, whose counts are equal.  */
static bool
s_same_items (const msg_field_t *field, const void *one, const void *other,
              uint32_t count)
{
    const void *items = *(const void *const *) one;
    const void *other_items = *(const void *const *) other;

    switch (field->kind) {
    case MSG_KIND_ID_ARRAY:
        return s_same_strs (items, other_items, count);
    case MSG_KIND_CLIENT_ARRAY:
        return s_same_structs (&msg_schema_client, items, other_items,
                               count, sizeof (msg_client_t));
    case MSG_KIND_EVENT_ARRAY:
        return s_same_structs (&msg_schema_event, items, other_items,
                               count, sizeof (msg_event_t));
    case MSG_KIND_TOMBSTONE_ARRAY:
        return s_same_structs (&msg_schema_tombstone, items, other_items,
                               count, sizeof (msg_tombstone_t));
    case MSG_KIND_STATS:
        return s_same_stats (items, other_items, count);
    default:
        fuzz_fail ("field \"%s\" is an array of kind %d, which the round"
                   " trip does not compare", field->key, field->kind);
    }
}

static bool
s_is_array (msg_kind_t kind)
{
    return kind == MSG_KIND_ID_ARRAY || kind == MSG_KIND_CLIENT_ARRAY
           || kind == MSG_KIND_EVENT_ARRAY
           || kind == MSG_KIND_TOMBSTONE_ARRAY || kind == MSG_KIND_STATS;
}

/*  Compares one field of two structs of the same schema.  */
static bool
s_same_field (const msg_field_t *field, const void *one, const void *other)
{
    const void *value = (const char *) one + field->offset;
    const void *other_value = (const char *) other + field->offset;

    if (s_is_array (field->kind)) {
        uint32_t count = *(const uint32_t *) ((const char *) one
                                              + field->count_offset);
        uint32_t other_count = *(const uint32_t *) ((const char *) other
                                                    + field->count_offset);
        return s_same (field, count == other_count
                                  && s_same_items (field, value,
                                                   other_value, count));
    }

    switch (field->kind) {
    case MSG_KIND_ID:
    case MSG_KIND_NODE:
    case MSG_KIND_SCHEDULER:
    case MSG_KIND_META:
    case MSG_KIND_TEXT:
        return s_same (field, s_same_str (*(const msg_str_t *) value,
                                          *(const msg_str_t *) other_value));
    case MSG_KIND_UINT32:
        return s_same (field, *(const uint32_t *) value
                                  == *(const uint32_t *) other_value);
    case MSG_KIND_UINT64:
        return s_same (field, *(const uint64_t *) value
                                  == *(const uint64_t *) other_value);
    case MSG_KIND_INT64:
        return s_same (field, *(const int64_t *) value
                                  == *(const int64_t *) other_value);
    case MSG_KIND_BOOL:
        return s_same (field,
                       *(const bool *) value == *(const bool *) other_value);
    case MSG_KIND_REASON:
        return s_same (field, *(const msg_reason_t *) value
                                  == *(const msg_reason_t *) other_value);
    case MSG_KIND_CODE:
        return s_same (field, *(const msg_error_code_t *) value
                                  == *(const msg_error_code_t *) other_value);
    case MSG_KIND_BRAKE_ACTION:
        return s_same (field,
                       *(const msg_brake_action_t *) value
                           == *(const msg_brake_action_t *) other_value);
    case MSG_KIND_CLIENT:
        return s_same_struct (&msg_schema_client, value, other_value);
    default:
        fuzz_fail ("field \"%s\" has kind %d, which the round trip does"
                   " not compare", field->key, field->kind);
    }
}

/*  Compares every field of the schema, present on the wire or not: a
    field left out must be zero on both sides.  */
static bool
s_same_struct (const msg_schema_t *schema, const void *one,
               const void *other)
{
    for (size_t index = 0; index < schema->field_count; index++)
        if (!s_same_field (&schema->fields[index], one, other))
            return false;
    return true;
}

static bool
s_same_message (const msg_t *one, const msg_t *other)
{
    if (one->type != other->type || one->req != other->req) {
        fprintf (stderr, "fuzz: type or req differs after the round trip\n");
        return false;
    }
    if (one->type != MSG_RESULT)
        return s_same_struct (msg_schema_of (one->type, MSG_TYPE_COUNT),
                              &one->u, &other->u);

    if (one->u.result.cmd != other->u.result.cmd) {
        fprintf (stderr, "fuzz: cmd differs after the round trip\n");
        return false;
    }
    return s_same_struct (msg_schema_of (MSG_RESULT, one->u.result.cmd),
                          &one->u.result, &other->u.result);
}

/*  Checks what msg_decode returned for a body it rejected.  */
static void
s_check_failure (const msg_t *msg, const msg_failure_t *failure)
{
    if (failure->code == MSG_ERR_NONE
        || failure->code >= MSG_ERR_CODE_COUNT)
        fuzz_fail ("decode failed with error code %d", failure->code);
    if (!memchr (failure->message, '\0', sizeof (failure->message)))
        fuzz_fail ("decode failure message is not terminated");
    if (failure->message[0] == '\0')
        fuzz_fail ("decode failed without a message");
    if (msg->type > MSG_TYPE_COUNT)
        fuzz_fail ("decode failed with type %d", msg->type);
}

/*  Encodes msg, which decoded from a body, and aborts when the encoder
    rejects it: the decoder and encoder must accept the same messages.  */
static void
s_encode (const msg_t *msg, void **data, size_t *size)
{
    msg_failure_t failure;
    if (msg_encode (msg, data, size, &failure) != 0)
        fuzz_fail ("a decoded %s does not encode: %s",
                   msg_type_name (msg->type), failure.message);
}

int
fuzz_message_round_trip (const uint8_t *data, size_t size,
                         fuzz_family_t family)
{
    msg_t first, second;
    msg_failure_t failure;

    if (msg_decode (data, size, &first, &failure) != 0) {
        s_check_failure (&first, &failure);
        msg_type_t type = first.type;
        msg_release (&first);
        return fuzz_family_has (family, type) ? 0 : -1;
    }
    if (!fuzz_family_has (family, first.type)) {
        msg_release (&first);
        return -1;
    }

    void *encoded = NULL, *again = NULL;
    size_t encoded_size = 0, again_size = 0;
    s_encode (&first, &encoded, &encoded_size);
    if (msg_decode (encoded, encoded_size, &second, &failure) != 0)
        fuzz_fail ("a re-encoded %s does not decode: %s",
                   msg_type_name (first.type), failure.message);
    if (!s_same_message (&first, &second))
        fuzz_fail ("a re-encoded %s decodes to another message",
                   msg_type_name (first.type));

    s_encode (&second, &again, &again_size);
    if (again_size != encoded_size
        || memcmp (again, encoded, encoded_size) != 0)
        fuzz_fail ("a %s encodes to %zu bytes, then to %zu other bytes",
                   msg_type_name (first.type), encoded_size, again_size);

    msg_release (&second);
    msg_release (&first);
    free (again);
    free (encoded);
    return 0;
}
