/*  names.c: wire names of types, error codes and reasons, and the
    msg_str_t helpers.  */

#include "msg_schema.h"

#include <assert.h>
#include <string.h>

static const char *const s_type_names[MSG_TYPE_COUNT] = {
    [MSG_REGISTER] = "register",
    [MSG_TOUCH] = "touch",
    [MSG_DEREGISTER] = "deregister",
    [MSG_EVICT] = "evict",
    [MSG_GET] = "get",
    [MSG_LIST] = "list",
    [MSG_STATS] = "stats",
    [MSG_SWEEP] = "sweep",
    [MSG_EVENTS] = "events",
    [MSG_TOMBSTONES] = "tombstones",
    [MSG_BRAKE] = "brake",
    [MSG_TICK] = "tick",
    [MSG_EVENT] = "event",
    [MSG_RESULT] = "result",
    [MSG_ERROR] = "error",
};

static const char *const s_error_code_names[MSG_ERR_CODE_COUNT] = {
    [MSG_ERR_NONE] = "none",
    [MSG_ERR_BAD_REQUEST] = "bad_request",
    [MSG_ERR_UNSUPPORTED_VERSION] = "unsupported_version",
    [MSG_ERR_UNKNOWN_TYPE] = "unknown_type",
    [MSG_ERR_LIMIT_EXCEEDED] = "limit_exceeded",
    [MSG_ERR_UNKNOWN_CLIENT] = "unknown_client",
    [MSG_ERR_BUSY] = "busy",
    [MSG_ERR_INTERNAL] = "internal",
    [MSG_ERR_EVICTED] = "evicted",
};

static const char *const s_reason_names[MSG_REASON_COUNT] = {
    [MSG_REASON_STALE] = "stale",
    [MSG_REASON_DEREGISTERED] = "deregistered",
    [MSG_REASON_OPERATOR] = "operator",
};

static const char *const s_brake_action_names[MSG_BRAKE_ACTION_COUNT] = {
    [MSG_BRAKE_STATUS] = "status",
    [MSG_BRAKE_RELEASE] = "release",
};

const char *
msg_type_name (msg_type_t type)
{
    if ((unsigned) type >= MSG_TYPE_COUNT)
        return "unknown";
    return s_type_names[type];
}

const char *
msg_error_code_name (msg_error_code_t code)
{
    if ((unsigned) code >= MSG_ERR_CODE_COUNT)
        return "unknown";
    return s_error_code_names[code];
}

const char *
msg_reason_name (msg_reason_t reason)
{
    if ((unsigned) reason >= MSG_REASON_COUNT)
        return "unknown";
    return s_reason_names[reason];
}

const char *
msg_brake_action_name (msg_brake_action_t action)
{
    if ((unsigned) action >= MSG_BRAKE_ACTION_COUNT)
        return "unknown";
    return s_brake_action_names[action];
}

bool
msg_type_is_command (msg_type_t type)
{
    return type >= MSG_REGISTER && type <= MSG_BRAKE;
}

/*  Returns the index of name in names[first .. count), or -1.  */
static int
s_name_index (msg_str_t name, const char *const *names, int first,
              int count)
{
    for (int index = first; index < count; index++) {
        if (msg_str_eq (name, names[index]))
            return index;
    }
    return -1;
}

int
msg_type_parse (msg_str_t name, msg_type_t *type)
{
    int index = s_name_index (name, s_type_names, 0, MSG_TYPE_COUNT);
    if (index < 0)
        return -1;
    *type = (msg_type_t) index;
    return 0;
}

int
msg_error_code_parse (msg_str_t name, msg_error_code_t *code)
{
    /*  "none" is no error, so it never travels in an error message.  */
    int index = s_name_index (name, s_error_code_names, MSG_ERR_NONE + 1,
                              MSG_ERR_CODE_COUNT);
    if (index < 0)
        return -1;
    *code = (msg_error_code_t) index;
    return 0;
}

int
msg_reason_parse (msg_str_t name, msg_reason_t *reason)
{
    int index = s_name_index (name, s_reason_names, 0, MSG_REASON_COUNT);
    if (index < 0)
        return -1;
    *reason = (msg_reason_t) index;
    return 0;
}

int
msg_brake_action_parse (msg_str_t name, msg_brake_action_t *action)
{
    int index = s_name_index (name, s_brake_action_names, 0,
                              MSG_BRAKE_ACTION_COUNT);
    if (index < 0)
        return -1;
    *action = (msg_brake_action_t) index;
    return 0;
}

msg_str_t
msg_str (const char *text)
{
    msg_str_t view = { NULL, 0 };
    if (text) {
        size_t length = strlen (text);
        assert (length <= UINT32_MAX);
        view.ptr = text;
        view.len = (uint32_t) length;
    }
    return view;
}

bool
msg_str_eq (msg_str_t a, const char *b)
{
    assert (b);
    size_t length = strlen (b);
    if (length != a.len)
        return false;
    return length == 0 || memcmp (a.ptr, b, length) == 0;
}

char *
msg_str_copy (msg_str_t view, char *buffer, size_t size)
{
    assert (buffer);
    assert (size > 0);
    size_t length = view.len < size - 1 ? view.len : size - 1;
    if (length > 0)
        memcpy (buffer, view.ptr, length);
    buffer[length] = '\0';
    return buffer;
}
