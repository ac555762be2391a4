/*  request_limits.c: checks of decoded commands against the operator's limits.  */
#include <inttypes.h>
#include <stdio.h>

#include "request_limits.h"

void
limits_read (limits_t *limits, settings_t *settings)
{
    limits->message_size =
        (uint32_t) settings_uint (settings, "max-message-size");
    limits->touch_ids = (uint32_t) settings_uint (settings, "max-touch-ids");
    limits->id_length = (uint32_t) settings_uint (settings, "max-id-length");
    limits->meta_size = (uint32_t) settings_uint (settings, "max-meta-size");
    limits->page_size = (uint32_t) settings_uint (settings, "max-page-size");
}

static int
s_exceeded (char *error, size_t error_size, const char *field,
            uint64_t value, const char *setting, uint32_t limit)
{
    snprintf (error, error_size,
              "field \"%s\": %" PRIu64 " is over the registry's %s of %u",
              field, value, setting, limit);
    return -1;
}

static int
s_check_id (const limits_t *limits, msg_str_t id, const char *field,
            char *error, size_t error_size)
{
    if (id.len <= limits->id_length)
        return 0;
    return s_exceeded (error, error_size, field, id.len, "max-id-length",
                       limits->id_length);
}

static int
s_check_touch (const limits_t *limits, const msg_touch_t *touch,
               char *error, size_t error_size)
{
    if (touch->count > limits->touch_ids)
        return s_exceeded (error, error_size, "ids", touch->count,
                           "max-touch-ids", limits->touch_ids);

    for (uint32_t index = 0; index < touch->count; index++) {
        if (touch->ids[index].len <= limits->id_length)
            continue;

        char field[32];
        snprintf (field, sizeof (field), "ids[%u]", index);
        return s_exceeded (error, error_size, field, touch->ids[index].len,
                           "max-id-length", limits->id_length);
    }
    return 0;
}

int
limits_check (const limits_t *limits, const msg_t *request, char *error,
              size_t error_size)
{
    switch (request->type) {
    case MSG_REGISTER:
        if (request->u.register_.meta.len > limits->meta_size)
            return s_exceeded (error, error_size, "meta",
                               request->u.register_.meta.len,
                               "max-meta-size", limits->meta_size);
        return s_check_id (limits, request->u.register_.id, "id", error,
                           error_size);
    case MSG_TOUCH:
        return s_check_touch (limits, &request->u.touch, error, error_size);
    case MSG_LIST:
        if (request->u.list.limit > limits->page_size)
            return s_exceeded (error, error_size, "limit",
                               request->u.list.limit, "max-page-size",
                               limits->page_size);
        return 0;
    case MSG_EVENTS:
        if (request->u.events.limit > limits->page_size)
            return s_exceeded (error, error_size, "limit",
                               request->u.events.limit, "max-page-size",
                               limits->page_size);
        return 0;
    default:
        return 0;
    }
}
