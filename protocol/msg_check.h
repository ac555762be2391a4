/*  msg_check.h: the field rules shared by the decoder and the encoder,
    private to the protocol library.

    A msg_check_t carries the path of the field being checked (for
    example "clients[2].node") and the failure to fill in, so that every
    error names its field the same way whichever side found it.
*/
#ifndef LAPSE_MSG_CHECK_H
#define LAPSE_MSG_CHECK_H

#include "msg_schema.h"

/*  Bytes in a field path, for example "events[999].last_activity_ms".
    Keys from a peer are cut short before they go in, so a path never
    needs more.  */
#define MSG_PATH_MAX 128

typedef struct msg_check {
    msg_failure_t *failure;
    char path[MSG_PATH_MAX];
    size_t length;              /* of path, without the NUL */
} msg_check_t;

/*  Starts a check with an empty path and clears *failure.  */
void
msg_check_init (msg_check_t *check, msg_failure_t *failure);

/*  Append ".key" (or "key" at the top) or "[index]" to the path.  Each
    returns a mark for msg_check_pop.  Bytes of a key that are not
    printable ASCII are written as \xNN, and a long key is cut.  */
size_t
msg_check_push_key (msg_check_t *check, const char *key, size_t size);

size_t
msg_check_push_index (msg_check_t *check, uint32_t index);

/*  Restores the path to what it was when mark was returned.  */
void
msg_check_pop (msg_check_t *check, size_t mark);

/*  Fills in the failure as 'field "<path>": <detail>', or 'body:
    <detail>' when the path is empty.  Returns -1.  */
int
msg_check_fail (msg_check_t *check, msg_error_code_t code,
                const char *format, ...)
    __attribute__ ((format (printf, 3, 4)));

/*  Writes up to size bytes of peer data into buffer as printable ASCII,
    escaping the rest as \xNN and cutting long input with "...".  Returns
    buffer.  */
char *
msg_check_escape (const char *data, size_t size, char *buffer,
                  size_t buffer_size);

/*  Returns the msgpack type of a value in words ("string", "map", ...)
    for error messages.  */
const char *
msg_check_type_name (int msgpack_type);

/*  Rules for one value.  Each returns 0, or -1 with the failure filled
    in for the current path.  A length or count over a header limit
    fails with MSG_ERR_LIMIT_EXCEEDED, any other break with
    MSG_ERR_BAD_REQUEST.  */
int
msg_check_id (msg_check_t *check, msg_str_t id);

int
msg_check_node (msg_check_t *check, msg_str_t node);

int
msg_check_scheduler (msg_check_t *check, msg_str_t scheduler);

int
msg_check_stat_name (msg_check_t *check, msg_str_t name);

int
msg_check_meta (msg_check_t *check, msg_str_t meta);

int
msg_check_text (msg_check_t *check, msg_str_t text);

/*  Checks that a container ("an array" or "a map") of count items has
    min to max of them.  limit names the header limit behind max.  */
int
msg_check_count (msg_check_t *check, const char *container,
                 uint64_t count, uint64_t min, uint64_t max,
                 const char *limit);

/*  Checks that an unsigned integer is from min to max.  */
int
msg_check_uint (msg_check_t *check, uint64_t value, uint64_t min,
                uint64_t max, const char *limit);

/*  Checks that a signed integer is min or more.  */
int
msg_check_int (msg_check_t *check, int64_t value, int64_t min);

/*  Checks the value of one field of target, which must be present.  The
    path must already name the field.  */
int
msg_check_field (msg_check_t *check, const msg_field_t *field,
                 const void *target);

/*  Checks the stats entries: count, names, no name twice.  */
int
msg_check_stats (msg_check_t *check, const msg_stat_t *stats,
                 uint32_t count);

/*  Checks every field of a struct described by schema, then the rules
    between them.  */
int
msg_check_struct (msg_check_t *check, const msg_schema_t *schema,
                  const void *target);

/*  Checks a whole message as msg_encode is about to send it.  */
int
msg_check_message (msg_check_t *check, const msg_t *msg);

/*  Maximum nesting of maps and arrays in a body.  A valid message needs
    three levels (result, clients, client).  */
#define MSG_DEPTH_MAX 8

/*  Maximum msgpack values in a body.  The largest valid message, a page
    of MSG_PAGE_MAX events, has about 17,000.  */
#define MSG_VALUES_MAX 65536

/*  Walks the msgpack value at the start of data and checks its framing
    only: each header complete, each count possible in the bytes left,
    at most MSG_DEPTH_MAX deep and MSG_VALUES_MAX values.  Returns 0 and
    sets *end to the offset after the value, or -1.  */
int
msg_scan (msg_check_t *check, const uint8_t *data, size_t size,
          size_t *end);

/*  Rules between the fields of one schema (see msg_cross_check_fn).  */
int
msg_check_event_fields (msg_check_t *check, const void *target);

int
msg_check_touch_result (msg_check_t *check, const void *target);

int
msg_check_sweep_result (msg_check_t *check, const void *target);

int
msg_check_events_result (msg_check_t *check, const void *target);

int
msg_check_brake (msg_check_t *check, const void *target);

int
msg_check_brake_result (msg_check_t *check, const void *target);

#endif
