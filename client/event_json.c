/*  event_json.c: events as JSON objects, with JSON string escaping.
*/
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "event_json.h"
#include "lapse.h"

/*  Room json_quote keeps for the closing quote and the length note.  */
#define QUOTE_SUFFIX_MAX 40

/*  Output into a caller's buffer, always NUL-terminated; once something
    does not fit, full is set and nothing more is written.  */
typedef struct {
    char *data;
    size_t size;
    size_t length;
    bool full;
} writer_t;

static void
s_put (writer_t *writer, const char *text, size_t length)
{
    if (writer->full || writer->length + length >= writer->size) {
        writer->full = true;
        return;
    }
    memcpy (writer->data + writer->length, text, length);
    writer->length += length;
    writer->data[writer->length] = '\0';
}

static void
s_printf (writer_t *writer, const char *format, ...)
    __attribute__ ((format (printf, 2, 3)));

static void
s_printf (writer_t *writer, const char *format, ...)
{
    char text[256];
    va_list args;

    va_start (args, format);
    int length = vsnprintf (text, sizeof text, format, args);
    va_end (args);
    if (length < 0 || (size_t) length >= sizeof text) {
        writer->full = true;
        return;
    }
    s_put (writer, text, (size_t) length);
}

/*  Writes the JSON form of one byte into escaped, returning its length.
    Bytes outside printable ASCII become \u00XX, so the output is valid
    JSON whatever the input holds.  */
static size_t
s_escape_byte (unsigned char byte, char escaped[7])
{
    switch (byte) {
    case '"':
        return (size_t) snprintf (escaped, 7, "\\\"");
    case '\\':
        return (size_t) snprintf (escaped, 7, "\\\\");
    case '\n':
        return (size_t) snprintf (escaped, 7, "\\n");
    case '\r':
        return (size_t) snprintf (escaped, 7, "\\r");
    case '\t':
        return (size_t) snprintf (escaped, 7, "\\t");
    default:
        break;
    }
    if (byte < 0x20 || byte > 0x7e)
        return (size_t) snprintf (escaped, 7, "\\u%04x", byte);
    escaped[0] = (char) byte;
    escaped[1] = '\0';
    return 1;
}

static void
s_put_string (writer_t *writer, const char *text, size_t length)
{
    char escaped[7];

    s_put (writer, "\"", 1);
    for (size_t index = 0; index < length; index++) {
        size_t escaped_length =
            s_escape_byte ((unsigned char) text[index], escaped);
        s_put (writer, escaped, escaped_length);
    }
    s_put (writer, "\"", 1);
}

int
lapse_event_to_json (const msg_event_t *event, char *buffer, size_t size)
{
    if (!buffer || size == 0)
        return -1;

    writer_t writer = { buffer, size, 0, false };
    buffer[0] = '\0';
    s_printf (&writer, "{\"seq\":%" PRIu64 ",\"prev\":%" PRIu64 ",\"id\":",
              event->seq, event->prev);
    s_put_string (&writer, event->id.ptr, event->id.len);
    s_put (&writer, ",\"node\":", 8);
    s_put_string (&writer, event->node.ptr, event->node.len);
    s_put (&writer, ",\"reason\":", 10);
    const char *reason = msg_reason_name (event->reason);
    s_put_string (&writer, reason, strlen (reason));
    s_printf (&writer,
              ",\"last_activity_ms\":%" PRId64 ",\"removed_ms\":%" PRId64
              ",\"sweep\":%" PRIu64 "}",
              event->last_activity_ms, event->removed_ms, event->sweep);
    return writer.full ? -1 : (int) writer.length;
}

const char *
json_quote (const char *text, char *buffer, size_t size)
{
    if (size == 0)
        return buffer;
    if (!text) {
        snprintf (buffer, size, "null");
        return buffer;
    }

    size_t length = strlen (text);
    if (size <= 2 * QUOTE_SUFFIX_MAX) {
        snprintf (buffer, size, "(%zu bytes)", length);
        return buffer;
    }

    /*  Bytes are shown while there is room for them and the suffix.  */
    writer_t writer = { buffer, size, 0, false };
    size_t copied = 0;
    char escaped[7];
    buffer[0] = '\0';
    s_put (&writer, "\"", 1);
    while (copied < length) {
        size_t escaped_length =
            s_escape_byte ((unsigned char) text[copied], escaped);
        if (writer.length + escaped_length + QUOTE_SUFFIX_MAX > size)
            break;
        s_put (&writer, escaped, escaped_length);
        copied++;
    }
    s_put (&writer, "\"", 1);
    if (copied < length)
        s_printf (&writer, "... (%zu bytes)", length);
    return buffer;
}
