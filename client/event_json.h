/*  event_json.h: JSON string escaping for liblapse.  Internal; the
    public lapse_event_to_json is declared in lapse.h.
*/
#ifndef LAPSE_EVENT_JSON_H
#define LAPSE_EVENT_JSON_H

#include <stddef.h>

/*  A buffer size that fits any json_quote result.  */
#define JSON_QUOTED_MAX 200

/*  Writes text as a JSON string for an error message: quoted, escaped,
    and cut to fit buffer with the full length added after it, for
    example "abc"... (5000 bytes).  NULL gives null.  Returns buffer.  */
const char *
json_quote (const char *text, char *buffer, size_t size);

#endif
