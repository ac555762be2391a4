/*  scan.c: checks the framing of a msgpack body before msgpack-c reads it.

    msgpack_unpack_next allocates room for all the items of an array or
    map as soon as it reads the header's count, before it reads any item.
    Five bytes (dd ff ff ff ff) would make it ask for about 100 GB.  This
    scan walks the headers first and rejects a count that the bytes left
    cannot hold, so what msgpack-c allocates stays in proportion to the
    body, which is itself at most MSG_SIZE_MAX bytes.
*/

#include "msg_check.h"

#include <inttypes.h>

/*  The fields of one msgpack header.  */
typedef struct {
    size_t header;          /* bytes of the header itself */
    uint64_t payload;       /* bytes of data after the header */
    uint64_t items;         /* values that follow as items (maps: 2 per
                               entry) */
    bool container;
} s_head_t;

static uint64_t
s_read_be (const uint8_t *bytes, size_t width)
{
    uint64_t value = 0;
    for (size_t index = 0; index < width; index++)
        value = (value << 8) | bytes[index];
    return value;
}

/*  Sets head for a header whose length or count is a width-byte big
    endian number after the format byte.  Returns -1 when the header does
    not fit in the size bytes left.  */
static int
s_sized (const uint8_t *data, size_t size, size_t width, size_t extra,
         s_head_t *head)
{
    if (size < 1 + width + extra)
        return -1;
    uint64_t length = s_read_be (data + 1, width);
    head->header = 1 + width + extra;
    if (head->container)
        head->items = length;
    else
        head->payload = length;
    return 0;
}

/*  Reads the header at data.  Returns 0, 1 for a truncated header or
    -1 for a byte that starts no msgpack value.  */
static int
s_read_head (const uint8_t *data, size_t size, s_head_t *head)
{
    uint8_t byte = data[0];
    *head = (s_head_t) { .header = 1 };

    if (byte <= 0x7f || byte >= 0xe0 || byte == 0xc0 || byte == 0xc2
        || byte == 0xc3)
        return 0;
    if (byte <= 0x8f) {
        *head = (s_head_t) { 1, 0, 2 * (uint64_t) (byte & 0x0f), true };
        return 0;
    }
    if (byte <= 0x9f) {
        *head = (s_head_t) { 1, 0, byte & 0x0f, true };
        return 0;
    }
    if (byte <= 0xbf) {
        head->payload = byte & 0x1f;
        return 0;
    }

    int truncated = 0;
    switch (byte) {
    case 0xc4: case 0xc5: case 0xc6:    /* bin 8, 16, 32 */
        truncated = s_sized (data, size, (size_t) 1 << (byte - 0xc4), 0,
                             head);
        break;
    case 0xc7: case 0xc8: case 0xc9:    /* ext 8, 16, 32, then a type */
        truncated = s_sized (data, size, (size_t) 1 << (byte - 0xc7), 1,
                             head);
        break;
    case 0xca: case 0xcb:               /* float 32, 64 */
        head->payload = byte == 0xca ? 4 : 8;
        break;
    case 0xcc: case 0xcd: case 0xce: case 0xcf:     /* uint 8 to 64 */
        head->payload = (uint64_t) 1 << (byte - 0xcc);
        break;
    case 0xd0: case 0xd1: case 0xd2: case 0xd3:     /* int 8 to 64 */
        head->payload = (uint64_t) 1 << (byte - 0xd0);
        break;
    case 0xd4: case 0xd5: case 0xd6: case 0xd7: case 0xd8: /* fixext */
        head->payload = 1 + ((uint64_t) 1 << (byte - 0xd4));
        break;
    case 0xd9: case 0xda: case 0xdb:    /* str 8, 16, 32 */
        truncated = s_sized (data, size, (size_t) 1 << (byte - 0xd9), 0,
                             head);
        break;
    case 0xdc: case 0xdd:               /* array 16, 32 */
        head->container = true;
        truncated = s_sized (data, size, byte == 0xdc ? 2 : 4, 0, head);
        break;
    case 0xde: case 0xdf:               /* map 16, 32 */
        head->container = true;
        truncated = s_sized (data, size, byte == 0xde ? 2 : 4, 0, head);
        head->items *= 2;
        break;
    default:                            /* 0xc1 is never used */
        return -1;
    }
    return truncated ? 1 : 0;
}

int
msg_scan (msg_check_t *check, const uint8_t *data, size_t size,
          size_t *end)
{
    /*  left[level] counts the values still due at that nesting level.  */
    uint64_t left[MSG_DEPTH_MAX + 1] = { 1 };
    size_t depth = 1;
    size_t values = 0;
    size_t offset = 0;

    while (depth > 0) {
        if (left[depth - 1] == 0) {
            depth--;
            continue;
        }
        left[depth - 1]--;
        if (++values > MSG_VALUES_MAX)
            return msg_check_fail (check, MSG_ERR_BAD_REQUEST,
                                   "more than %d msgpack values",
                                   MSG_VALUES_MAX);
        if (offset == size)
            return msg_check_fail (check, MSG_ERR_BAD_REQUEST,
                                   "truncated, a value is missing at byte"
                                   " %zu", offset);

        s_head_t head;
        int rc = s_read_head (data + offset, size - offset, &head);
        if (rc < 0)
            return msg_check_fail (check, MSG_ERR_BAD_REQUEST,
                                   "invalid msgpack byte 0x%02x at byte %zu",
                                   data[offset], offset);
        if (rc > 0 || head.payload > size - offset - head.header)
            return msg_check_fail (check, MSG_ERR_BAD_REQUEST,
                                   "truncated, the value at byte %zu"
                                   " runs past the end at byte %zu",
                                   offset, size);
        size_t start = offset;
        offset += head.header + (size_t) head.payload;
        if (!head.container)
            continue;

        /*  Each item takes at least one byte.  */
        if (head.items > size - offset)
            return msg_check_fail (check, MSG_ERR_BAD_REQUEST,
                                   "truncated, the container at byte %zu"
                                   " needs %" PRIu64 " more values but"
                                   " only %zu bytes follow", start,
                                   head.items, size - offset);
        if (depth > MSG_DEPTH_MAX)
            return msg_check_fail (check, MSG_ERR_BAD_REQUEST,
                                   "maps and arrays nested more than %d"
                                   " deep", MSG_DEPTH_MAX);
        left[depth++] = head.items;
    }
    *end = offset;
    return 0;
}
