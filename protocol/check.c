/*  check.c: the rule for every field, used when decoding and encoding.  */

#include "msg_check.h"

#include <assert.h>
#include <inttypes.h>
#include <msgpack.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/*  Bytes of a peer's key kept in a path.  The rest is cut.  */
#define KEY_SHOWN_MAX 40

void
msg_check_init (msg_check_t *check, msg_failure_t *failure)
{
    assert (failure);
    check->failure = failure;
    check->path[0] = '\0';
    check->length = 0;
    failure->code = MSG_ERR_NONE;
    failure->message[0] = '\0';
}

/*  Appends formatted text to the path, cut at MSG_PATH_MAX.  */
static void
s_path_append (msg_check_t *check, const char *format, ...)
    __attribute__ ((format (printf, 2, 3)));

static void
s_path_append (msg_check_t *check, const char *format, ...)
{
    size_t room = sizeof (check->path) - check->length;
    va_list args;
    va_start (args, format);
    int written = vsnprintf (check->path + check->length, room, format,
                             args);
    va_end (args);

    if (written < 0)
        check->path[check->length] = '\0';
    else if ((size_t) written >= room)
        check->length = sizeof (check->path) - 1;
    else
        check->length += (size_t) written;
}

size_t
msg_check_push_key (msg_check_t *check, const char *key, size_t size)
{
    size_t mark = check->length;
    char shown[KEY_SHOWN_MAX + 1];

    msg_check_escape (key, size, shown, sizeof (shown));
    s_path_append (check, mark == 0 ? "%s" : ".%s", shown);
    return mark;
}

size_t
msg_check_push_index (msg_check_t *check, uint32_t index)
{
    size_t mark = check->length;
    s_path_append (check, "[%" PRIu32 "]", index);
    return mark;
}

void
msg_check_pop (msg_check_t *check, size_t mark)
{
    assert (mark <= check->length);
    check->length = mark;
    check->path[mark] = '\0';
}

int
msg_check_fail (msg_check_t *check, msg_error_code_t code,
                const char *format, ...)
{
    msg_failure_t *failure = check->failure;
    size_t size = sizeof (failure->message);
    int prefix;

    failure->code = code;
    if (check->length == 0)
        prefix = snprintf (failure->message, size, "body: ");
    else
        prefix = snprintf (failure->message, size, "field \"%s\": ",
                           check->path);

    /*  The path is at most MSG_PATH_MAX bytes, so the detail has room.  */
    assert (prefix > 0 && (size_t) prefix < size);
    va_list args;
    va_start (args, format);
    vsnprintf (failure->message + prefix, size - (size_t) prefix, format,
               args);
    va_end (args);
    return -1;
}

char *
msg_check_escape (const char *data, size_t size, char *buffer,
                  size_t buffer_size)
{
    static const char ellipsis[] = "...";
    assert (buffer_size > sizeof (ellipsis));
    size_t room = buffer_size - sizeof (ellipsis);
    size_t used = 0;
    size_t index;

    for (index = 0; index < size; index++) {
        unsigned char byte = (unsigned char) data[index];
        bool plain = byte >= 0x20 && byte <= 0x7e && byte != '"'
                     && byte != '\\';
        size_t need = plain ? 1 : 4;
        if (used + need > room)
            break;
        if (plain)
            buffer[used] = (char) byte;
        else
            snprintf (buffer + used, 5, "\\x%02x", byte);
        used += need;
    }
    if (index < size) {
        memcpy (buffer + used, ellipsis, sizeof (ellipsis) - 1);
        used += sizeof (ellipsis) - 1;
    }
    buffer[used] = '\0';
    return buffer;
}

const char *
msg_check_type_name (int msgpack_type)
{
    switch (msgpack_type) {
    case MSGPACK_OBJECT_NIL:
        return "nil";
    case MSGPACK_OBJECT_BOOLEAN:
        return "a boolean";
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        return "an unsigned integer";
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        return "a negative integer";
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        return "a float";
    case MSGPACK_OBJECT_STR:
        return "a string";
    case MSGPACK_OBJECT_BIN:
        return "binary";
    case MSGPACK_OBJECT_ARRAY:
        return "an array";
    case MSGPACK_OBJECT_MAP:
        return "a map";
    case MSGPACK_OBJECT_EXT:
        return "an extension";
    }
    return "an unknown msgpack type";
}

/*  Byte classes: ids and scheduler ids are printable ASCII without
    space, node and stats names are letters, digits and "-_.:".  */
static bool
s_is_id_byte (unsigned char byte)
{
    return byte > 0x20 && byte < 0x7f;
}

static bool
s_is_name_byte (unsigned char byte)
{
    return (byte >= 'a' && byte <= 'z') || (byte >= 'A' && byte <= 'Z')
           || (byte >= '0' && byte <= '9') || byte == '-' || byte == '_'
           || byte == '.' || byte == ':';
}

/*  Returns the offset of the first byte that fails is_allowed, or -1.  */
static int64_t
s_find_bad_byte (msg_str_t text, bool (*is_allowed) (unsigned char))
{
    for (uint32_t index = 0; index < text.len; index++) {
        if (!is_allowed ((unsigned char) text.ptr[index]))
            return index;
    }
    return -1;
}

bool
msg_id_is_valid (msg_str_t id)
{
    return id.len >= 1 && id.len <= MSG_ID_MAX
           && s_find_bad_byte (id, s_is_id_byte) < 0;
}

bool
msg_node_is_valid (msg_str_t node)
{
    return node.len >= 1 && node.len <= MSG_NODE_MAX
           && s_find_bad_byte (node, s_is_name_byte) < 0;
}

/*  Checks the length of a string or binary value (noun is "a string" or
    "binary").  Over max fails with MSG_ERR_LIMIT_EXCEEDED, under min
    with MSG_ERR_BAD_REQUEST.  */
static int
s_check_length (msg_check_t *check, const char *noun, uint32_t length,
                uint32_t min, uint32_t max, const char *limit)
{
    if (length > max)
        return msg_check_fail (check, MSG_ERR_LIMIT_EXCEEDED,
                               "expected %s of %" PRIu32 " to %" PRIu32
                               " bytes, got %" PRIu32 " bytes (over %s)",
                               noun, min, max, length, limit);
    if (length < min)
        return msg_check_fail (check, MSG_ERR_BAD_REQUEST,
                               "expected %s of %" PRIu32 " to %" PRIu32
                               " bytes, got %" PRIu32 " bytes",
                               noun, min, max, length);
    return 0;
}

static int
s_check_bytes (msg_check_t *check, msg_str_t text,
               bool (*is_allowed) (unsigned char), const char *allowed)
{
    int64_t offset = s_find_bad_byte (text, is_allowed);
    if (offset < 0)
        return 0;
    return msg_check_fail (check, MSG_ERR_BAD_REQUEST,
                           "expected %s, got byte 0x%02x at offset %" PRId64,
                           allowed, (unsigned char) text.ptr[offset], offset);
}

#define ID_BYTES "printable ASCII without spaces"
#define NAME_BYTES "only letters, digits and \"-_.:\""

int
msg_check_id (msg_check_t *check, msg_str_t id)
{
    if (s_check_length (check, "a string", id.len, 1, MSG_ID_MAX,
                        "MSG_ID_MAX"))
        return -1;
    return s_check_bytes (check, id, s_is_id_byte, ID_BYTES);
}

int
msg_check_node (msg_check_t *check, msg_str_t node)
{
    if (s_check_length (check, "a string", node.len, 1, MSG_NODE_MAX,
                        "MSG_NODE_MAX"))
        return -1;
    return s_check_bytes (check, node, s_is_name_byte, NAME_BYTES);
}

int
msg_check_scheduler (msg_check_t *check, msg_str_t scheduler)
{
    if (s_check_length (check, "a string", scheduler.len, 1,
                        MSG_SCHEDULER_MAX, "MSG_SCHEDULER_MAX"))
        return -1;
    return s_check_bytes (check, scheduler, s_is_id_byte, ID_BYTES);
}

int
msg_check_stat_name (msg_check_t *check, msg_str_t name)
{
    if (s_check_length (check, "a name", name.len, 1, MSG_STAT_NAME_MAX,
                        "MSG_STAT_NAME_MAX"))
        return -1;
    return s_check_bytes (check, name, s_is_name_byte, NAME_BYTES);
}

int
msg_check_meta (msg_check_t *check, msg_str_t meta)
{
    return s_check_length (check, "binary", meta.len, 0, MSG_META_MAX,
                           "MSG_META_MAX");
}

int
msg_check_text (msg_check_t *check, msg_str_t text)
{
    return s_check_length (check, "a string", text.len, 1, MSG_TEXT_MAX,
                           "MSG_TEXT_MAX");
}

int
msg_check_count (msg_check_t *check, const char *container,
                 uint64_t count, uint64_t min, uint64_t max,
                 const char *limit)
{
    if (count > max)
        return msg_check_fail (check, MSG_ERR_LIMIT_EXCEEDED,
                               "expected %s of %" PRIu64 " to %" PRIu64
                               " items, got %" PRIu64 " items (over %s)",
                               container, min, max, count, limit);
    if (count < min)
        return msg_check_fail (check, MSG_ERR_BAD_REQUEST,
                               "expected %s of %" PRIu64 " to %" PRIu64
                               " items, got %" PRIu64 " items",
                               container, min, max, count);
    return 0;
}

int
msg_check_uint (msg_check_t *check, uint64_t value, uint64_t min,
                uint64_t max, const char *limit)
{
    if (value > max)
        return msg_check_fail (check,
                               limit ? MSG_ERR_LIMIT_EXCEEDED
                                     : MSG_ERR_BAD_REQUEST,
                               "expected an integer from %" PRIu64
                               " to %" PRIu64 ", got %" PRIu64 " (over %s)",
                               min, max, value, limit ? limit : "the range");
    if (value < min) {
        if (max == UINT64_MAX)
            return msg_check_fail (check, MSG_ERR_BAD_REQUEST,
                                   "expected an integer of at least %" PRIu64
                                   ", got %" PRIu64, min, value);
        return msg_check_fail (check, MSG_ERR_BAD_REQUEST,
                               "expected an integer from %" PRIu64
                               " to %" PRIu64 ", got %" PRIu64,
                               min, max, value);
    }
    return 0;
}

int
msg_check_int (msg_check_t *check, int64_t value, int64_t min)
{
    if (value < min)
        return msg_check_fail (check, MSG_ERR_BAD_REQUEST,
                               "expected an integer of at least %" PRId64
                               ", got %" PRId64, min, value);
    return 0;
}
