/*  request_limits.h: the registry's configurable request limits.

    The protocol fixes the largest values any peer may send (MSG_*_MAX
    in protocol.h) and the decoder rejects anything past them.  An
    operator may lower each limit further with the registry's settings;
    a request past a lowered limit gets a limit_exceeded error naming
    the setting, its value and the request's.
*/
#ifndef LAPSE_REQUEST_LIMITS_H
#define LAPSE_REQUEST_LIMITS_H

#include <stddef.h>
#include <stdint.h>

#include "protocol.h"
#include "settings.h"

typedef struct {
    uint32_t message_size;      /* bytes in one message, set on sockets */
    uint32_t touch_ids;         /* ids in one touch */
    uint32_t id_length;         /* bytes in a client id */
    uint32_t meta_size;         /* bytes of metadata */
    uint32_t page_size;         /* clients or events in one page */
} limits_t;

/*  Setting table entries for the limits, for the registry's table.
    Each default is the protocol's maximum, and no limit can go above it.  */
#define LIMITS_SETTINGS                                                     \
    { "max-message-size", SETTING_UINT, "1048576", 4096, MSG_SIZE_MAX,      \
      false, "bytes in one message; libzmq closes the connection of a "    \
      "peer that sends more" },                                             \
    { "max-touch-ids", SETTING_UINT, "1000", 1, MSG_TOUCH_IDS_MAX, false,   \
      "client ids in one touch" },                                          \
    { "max-id-length", SETTING_UINT, "128", 1, MSG_ID_MAX, false,           \
      "bytes in a client id" },                                             \
    { "max-meta-size", SETTING_UINT, "1024", 0, MSG_META_MAX, false,        \
      "bytes of per-client metadata" },                                     \
    { "max-page-size", SETTING_UINT, "1000", 1, MSG_PAGE_MAX, false,        \
      "clients or events in one list or events page" }

/*  Reads the limits from settings loaded with limits_settings.  */
void
limits_read (limits_t *limits, settings_t *settings);

/*  Checks a decoded command against the limits.  Returns 0, or -1 with
    a message naming the limit in error.  */
int
limits_check (const limits_t *limits, const msg_t *request, char *error,
              size_t error_size);

#endif
