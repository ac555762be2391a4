/*  lapsectl: operator command line for the Lapse registry.

    One command per run.  list, get, stats, sweep, brake, evict, events,
    tail and tombstones are for operators; register, touch and
    deregister let tests and scripts act as an API node.  Output is
    aligned columns with UTC ISO-8601 times, or one JSON object per line
    with --json.

    Exit status: 0 on success, 1 when the registry returned an error or
    did not reply in time, 2 on a usage error.
*/
#include <czmq.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lapse.h"
#include "log.h"
#include "protocol.h"
#include "settings.h"

#define PROGRAM "lapsectl"

enum { CTL_OK = 0, CTL_FAILED = 1, CTL_USAGE = 2 };

/*  How long tail waits for one event before checking for SIGINT.  */
#define TAIL_WAIT_MS 500

/*  Metadata longer than this is cut in tables; JSON output is whole.  */
#define META_COLUMN_MAX 40

static const setting_def_t s_settings[] = {
    { "commands", SETTING_ENDPOINT, "tcp://127.0.0.1:7710", 0, 0, false,
      "registry command endpoint" },
    { "events", SETTING_ENDPOINT, "tcp://127.0.0.1:7711", 0, 0, false,
      "registry event endpoint, used by tail" },
    { "timeout", SETTING_DURATION, "3s", 1, 3600 * 1000, false,
      "how long one request waits for its reply" },
    { "json", SETTING_BOOL, "false", 0, 0, false,
      "print one JSON object per line instead of tables" },
    { "node", SETTING_STRING, NULL, 0, MSG_NODE_MAX, false,
      "API node: filter for list, events and tail; owner for register" },
    { "limit", SETTING_UINT, "100", 1, MSG_PAGE_MAX, false,
      "clients or events per page" },
    { "after", SETTING_STRING, NULL, 0, MSG_ID_MAX, false,
      "list: start after this client id (the previous page's next)" },
    { "all", SETTING_BOOL, "false", 0, 0, false,
      "list and events: follow every page to the end" },
    { "since", SETTING_UINT, "0", 0, 0, false,
      "events and tail: start after this event seq" },
    { "dry-run", SETTING_BOOL, "false", 0, 0, false,
      "sweep: report the stale clients without removing them" },
    { "meta", SETTING_STRING, NULL, 0, MSG_META_MAX, false,
      "register: client metadata, as text" },
    { "stale-after", SETTING_DURATION, NULL, 1, 0, false,
      "register: the client's own stale-after threshold, within the "
      "registry's client-stale-after-min and -max (default: the "
      "registry's stale-after)" },
    { "for", SETTING_DURATION, NULL, 1000, MSG_BRAKE_FOR_MAX_MS, false,
      "brake release: lift the brake for this long instead of for the "
      "next sweep only" },
    { "log-level", SETTING_LOG_LEVEL, "warn", 0, 0, false,
      "lowest level logged on stderr: debug, info, warn or error" },
    SETTING_END
};

typedef struct ctl_s ctl_t;
typedef int (ctl_handler_fn) (ctl_t *ctl);

typedef struct {
    const char *name;
    const char *arguments;      /* shown in help after the name */
    size_t min_args;
    size_t max_args;            /* SIZE_MAX: no upper bound */
    ctl_handler_fn *handler;
    const char *help;
} ctl_command_t;

struct ctl_s {
    settings_t *settings;
    const ctl_command_t *command;
    lapse_t *lapse;
    bool json;
};

/*  Aligned text columns, filled row by row and printed at the end.  */
typedef struct {
    size_t columns;
    size_t rows;
    size_t capacity;            /* rows that cells has room for */
    char **cells;               /* rows * columns strings, row-major */
} table_t;

static table_t *
s_table_new (size_t columns)
{
    table_t *self = (table_t *) calloc (1, sizeof (table_t));
    if (self)
        self->columns = columns;
    return self;
}

static void
s_table_destroy (table_t **self_p)
{
    if (!*self_p)
        return;
    table_t *self = *self_p;
    for (size_t cell = 0; cell < self->rows * self->columns; cell++)
        free (self->cells[cell]);
    free (self->cells);
    free (self);
    *self_p = NULL;
}

/*  Appends one row of self->columns strings, which are copied.  Returns
    0, or -1 when out of memory.  */
static int
s_table_add (table_t *self, const char *const *values)
{
    if (self->rows == self->capacity) {
        size_t capacity = self->capacity ? self->capacity * 2 : 64;
        char **cells = (char **) realloc (
            self->cells, capacity * self->columns * sizeof (char *));
        if (!cells)
            return -1;
        self->cells = cells;
        self->capacity = capacity;
    }
    char **row = self->cells + self->rows * self->columns;
    for (size_t column = 0; column < self->columns; column++)
        row[column] = strdup (values[column] ? values[column] : "");
    self->rows++;
    return 0;
}

static void
s_table_print (table_t *self)
{
    size_t widths[16] = { 0 };
    assert (self->columns <= 16);
    for (size_t cell = 0; cell < self->rows * self->columns; cell++) {
        size_t length = self->cells[cell] ? strlen (self->cells[cell]) : 0;
        if (length > widths[cell % self->columns])
            widths[cell % self->columns] = length;
    }
    for (size_t row = 0; row < self->rows; row++) {
        char **cells = self->cells + row * self->columns;
        for (size_t column = 0; column < self->columns; column++) {
            const char *text = cells[column] ? cells[column] : "";
            if (column + 1 == self->columns)
                printf ("%s\n", text);
            else
                printf ("%-*s  ", (int) widths[column], text);
        }
    }
}

/*  Formats wall-clock milliseconds as UTC ISO-8601, "-" for none.  */
static char *
s_time_format (int64_t ms, char *buffer, size_t size)
{
    if (ms <= 0) {
        snprintf (buffer, size, "-");
        return buffer;
    }
    time_t seconds = (time_t) (ms / 1000);
    struct tm tm;
    gmtime_r (&seconds, &tm);
    size_t length = strftime (buffer, size, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf (buffer + length, size - length, ".%03dZ", (int) (ms % 1000));
    return buffer;
}

/*  Formats a span of milliseconds in its two largest units, "5m12s".  */
static char *
s_age_format (int64_t ms, char *buffer, size_t size)
{
    long long value = ms < 0 ? 0 : (long long) ms;
    if (value < 1000)
        snprintf (buffer, size, "%lldms", value);
    else if (value < 60 * 1000)
        snprintf (buffer, size, "%llds", value / 1000);
    else if (value < 3600 * 1000)
        snprintf (buffer, size, "%lldm%02llds", value / 60000,
                  value / 1000 % 60);
    else if (value < 86400 * 1000)
        snprintf (buffer, size, "%lldh%02lldm", value / 3600000,
                  value / 60000 % 60);
    else
        snprintf (buffer, size, "%lldd%02lldh", value / 86400000,
                  value / 3600000 % 24);
    return buffer;
}

/*  Writes bytes as a JSON string.  Bytes from 0x80 up pass through, so
    the output is valid JSON when the input is UTF-8.  */
static void
s_json_string (const char *text, size_t length)
{
    putchar ('"');
    for (size_t index = 0; index < length; index++) {
        unsigned char c = (unsigned char) text[index];
        if (c == '"' || c == '\\')
            printf ("\\%c", c);
        else if (c == '\n')
            printf ("\\n");
        else if (c == '\t')
            printf ("\\t");
        else if (c < 0x20 || c == 0x7f)
            printf ("\\u%04x", c);
        else
            putchar (c);
    }
    putchar ('"');
}

static void
s_json_view (msg_str_t view)
{
    s_json_string (view.ptr, view.len);
}

/*  True when meta is printable ASCII and so can be shown as text; other
    metadata is shown in hex.  */
static bool
s_meta_is_text (msg_str_t meta)
{
    for (uint32_t index = 0; index < meta.len; index++) {
        unsigned char c = (unsigned char) meta.ptr[index];
        if (c < 0x20 || c > 0x7e)
            return false;
    }
    return true;
}

/*  Formats meta for a table column: text cut to META_COLUMN_MAX, or
    "hex:" and the first bytes in hex.  */
static char *
s_meta_format (msg_str_t meta, char *buffer, size_t size)
{
    if (s_meta_is_text (meta)) {
        if (meta.len <= META_COLUMN_MAX)
            snprintf (buffer, size, "%.*s", (int) meta.len, meta.ptr);
        else
            snprintf (buffer, size, "%.*s...", META_COLUMN_MAX - 3,
                      meta.ptr);
        return buffer;
    }
    size_t used = (size_t) snprintf (buffer, size, "hex:");
    for (uint32_t index = 0; index < meta.len && used + 3 < size
                             && used < META_COLUMN_MAX; index++)
        used += (size_t) snprintf (buffer + used, size - used, "%02x",
                                   (unsigned char) meta.ptr[index]);
    return buffer;
}

static void
s_client_print_json (const msg_client_t *client)
{
    printf ("{\"id\":");
    s_json_view (client->id);
    printf (",\"node\":");
    s_json_view (client->node);
    printf (",\"registered_ms\":%" PRId64 ",\"last_activity_ms\":%" PRId64,
            client->registered_ms, client->last_activity_ms);
    if (client->stale_after_ms > 0)
        printf (",\"stale_after_ms\":%" PRId64, client->stale_after_ms);
    if (client->meta.len > 0 && s_meta_is_text (client->meta)) {
        printf (",\"meta\":");
        s_json_view (client->meta);
    }
    else if (client->meta.len > 0) {
        printf (",\"meta_hex\":\"");
        for (uint32_t index = 0; index < client->meta.len; index++)
            printf ("%02x", (unsigned char) client->meta.ptr[index]);
        putchar ('"');
    }
    printf ("}\n");
}

static const char *const s_client_header[] = {
    "ID", "NODE", "LAST ACTIVITY", "IDLE", "STALE AFTER", "REGISTERED",
    "META"
};

/*  Formats a client's own threshold as a duration, "default" for none.  */
static char *
s_threshold_format (int64_t stale_after_ms, char *buffer, size_t size)
{
    if (stale_after_ms <= 0)
        snprintf (buffer, size, "default");
    else
        settings_format_duration (stale_after_ms, buffer, size);
    return buffer;
}

static int
s_client_row_add (table_t *table, const msg_client_t *client, int64_t now)
{
    char id[MSG_ID_MAX + 1];
    char node[MSG_NODE_MAX + 1];
    char activity[40];
    char idle[32];
    char threshold[32];
    char registered[40];
    char meta[META_COLUMN_MAX + 8];
    const char *row[] = {
        msg_str_copy (client->id, id, sizeof id),
        msg_str_copy (client->node, node, sizeof node),
        s_time_format (client->last_activity_ms, activity, sizeof activity),
        s_age_format (now - client->last_activity_ms, idle, sizeof idle),
        s_threshold_format (client->stale_after_ms, threshold,
                            sizeof threshold),
        s_time_format (client->registered_ms, registered, sizeof registered),
        s_meta_format (client->meta, meta, sizeof meta)
    };
    return s_table_add (table, row);
}

static const char *const s_event_header[] = {
    "SEQ", "REMOVED", "REASON", "IDLE", "SWEEP", "NODE", "ID"
};

/*  One event as text columns in s_event_header order; cells point into
    the buffers beside them.  */
typedef struct {
    char seq[24];
    char removed[40];
    char idle[32];
    char sweep[24];
    char node[MSG_NODE_MAX + 1];
    char id[MSG_ID_MAX + 1];
    const char *cells[7];
} event_cells_t;

/*  IDLE is how long the client had been quiet when it was removed.  */
static void
s_event_cells_fill (event_cells_t *self, const msg_event_t *event)
{
    snprintf (self->seq, sizeof self->seq, "%" PRIu64, event->seq);
    s_time_format (event->removed_ms, self->removed, sizeof self->removed);
    s_age_format (event->removed_ms - event->last_activity_ms, self->idle,
                  sizeof self->idle);
    if (event->sweep)
        snprintf (self->sweep, sizeof self->sweep, "%" PRIu64, event->sweep);
    else
        snprintf (self->sweep, sizeof self->sweep, "-");
    msg_str_copy (event->node, self->node, sizeof self->node);
    msg_str_copy (event->id, self->id, sizeof self->id);

    self->cells[0] = self->seq;
    self->cells[1] = self->removed;
    self->cells[2] = msg_reason_name (event->reason);
    self->cells[3] = self->idle;
    self->cells[4] = self->sweep;
    self->cells[5] = self->node;
    self->cells[6] = self->id;
}

/*  Prints an event as one JSON line.  Returns 0, or -1 when it does not
    fit the buffer, which the protocol's limits rule out.  */
static int
s_event_print_json (const msg_event_t *event)
{
    char buffer[1024];
    if (lapse_event_to_json (event, buffer, sizeof buffer) < 0)
        return -1;
    printf ("%s\n", buffer);
    return 0;
}

static int
s_usage_error (ctl_t *ctl, const char *format, ...)
    __attribute__ ((format (printf, 2, 3)));

/*  Prints "lapsectl: COMMAND: " and the message on stderr.  Returns
    CTL_USAGE.  */
static int
s_usage_error (ctl_t *ctl, const char *format, ...)
{
    va_list args;
    va_start (args, format);
    fprintf (stderr, "%s: %s: ", PROGRAM, ctl->command->name);
    vfprintf (stderr, format, args);
    fprintf (stderr, "\n");
    va_end (args);
    return CTL_USAGE;
}

/*  Prints that the registry did not reply in time, which most often
    means that no registry listens on the endpoint.  Returns CTL_FAILED.  */
static int
s_no_reply (ctl_t *ctl, const char *argument)
{
    fprintf (stderr, "%s: %s", PROGRAM, ctl->command->name);
    if (argument)
        fprintf (stderr, " \"%s\"", argument);
    fprintf (stderr, ": no reply from %s within %" PRId64 " ms; is "
             "lapse-registry running there?\n",
             settings_string (ctl->settings, "commands"),
             settings_duration (ctl->settings, "timeout"));
    return CTL_FAILED;
}

/*  Prints the library's error for a failed request on stderr, naming the
    command and, when given, its argument.  Returns CTL_FAILED.  */
static int
s_request_failed (ctl_t *ctl, const char *argument)
{
    const char *code = msg_error_code_name (lapse_error_code (ctl->lapse));
    const char *message = lapse_error (ctl->lapse);

    if (lapse_timed_out (ctl->lapse))
        return s_no_reply (ctl, argument);

    /*  The library words an error reply as "registry returned CODE:
        MESSAGE"; the code is printed separately, so only the registry's
        message is kept.  */
    char prefix[64];
    snprintf (prefix, sizeof prefix, "registry returned %s: ", code);
    if (strncmp (message, prefix, strlen (prefix)) == 0)
        message += strlen (prefix);

    if (argument)
        fprintf (stderr, "%s: %s \"%s\": %s: %s\n", PROGRAM,
                 ctl->command->name, argument, code, message);
    else
        fprintf (stderr, "%s: %s: %s: %s\n", PROGRAM, ctl->command->name,
                 code, message);
    return CTL_FAILED;
}

static const char *
s_argument (ctl_t *ctl, size_t index)
{
    return settings_positional (ctl->settings, index + 1);
}

/*  Returns 0 when id is a valid client id, else reports a usage error
    and returns CTL_USAGE.  */
static int
s_id_check (ctl_t *ctl, const char *what, const char *id)
{
    if (msg_id_is_valid (msg_str (id)))
        return 0;
    return s_usage_error (ctl,
                          "invalid %s \"%s\": expected 1 to %d printable "
                          "ASCII characters without spaces",
                          what, id, MSG_ID_MAX);
}

/*  Sets *node to the --node value, or NULL when none was given.  Returns
    0, or CTL_USAGE when it is invalid or required and missing.  */
static int
s_node_get (ctl_t *ctl, bool required, const char **node)
{
    *node = settings_string (ctl->settings, "node");
    if (!*node && required)
        return s_usage_error (ctl, "missing --node NAME: the API node "
                                   "that owns the clients is required");
    if (*node && !msg_node_is_valid (msg_str (*node)))
        return s_usage_error (ctl,
                              "invalid node \"%s\": expected 1 to %d "
                              "letters, digits or \"-_.:\"",
                              *node, MSG_NODE_MAX);
    return 0;
}

/*  Opens the command connection, on behalf of node when it is not
    NULL.  Returns 0, or CTL_FAILED.  */
static int
s_connect (ctl_t *ctl, const char *node)
{
    const char *endpoint = settings_string (ctl->settings, "commands");
    ctl->lapse = lapse_new (endpoint, node);
    if (!ctl->lapse) {
        fprintf (stderr, "%s: %s: connection to %s failed: invalid "
                 "endpoint or node\n", PROGRAM, ctl->command->name,
                 endpoint);
        return CTL_FAILED;
    }
    lapse_set_timeout (ctl->lapse,
                       (int) settings_duration (ctl->settings, "timeout"));
    return 0;
}

/*  Sends request and waits for the reply; on failure prints the error
    and returns CTL_FAILED.  On success the caller releases *reply.  */
static int
s_request (ctl_t *ctl, msg_t *request, msg_t *reply, const char *argument)
{
    memset (reply, 0, sizeof *reply);
    if (lapse_request (ctl->lapse, request, reply) != 0)
        return s_request_failed (ctl, argument);
    return 0;
}

/*  Requests one page of clients after cursor and adds it to the output.
    Copies the next page's cursor into cursor, "" on the last page.  */
static int
s_list_page (ctl_t *ctl, const char *node, char *cursor, size_t size,
             table_t *table)
{
    msg_t request;
    msg_t reply;
    memset (&request, 0, sizeof request);
    request.type = MSG_LIST;
    request.u.list.limit = (uint32_t) settings_uint (ctl->settings, "limit");
    request.u.list.after = msg_str (cursor);
    request.u.list.node = msg_str (node);
    int rc = s_request (ctl, &request, &reply, NULL);
    if (rc != 0)
        return rc;

    int64_t now = zclock_time ();
    const msg_result_t *result = &reply.u.result;
    for (uint32_t index = 0; index < result->clients_count && rc == 0;
         index++) {
        if (ctl->json)
            s_client_print_json (&result->clients[index]);
        else if (s_client_row_add (table, &result->clients[index], now))
            rc = CTL_FAILED;
    }
    msg_str_copy (result->next, cursor, size);
    msg_release (&reply);
    return rc;
}

/*  Fetches one page into table (or prints it as JSON) and leaves the
    next page's cursor in cursor.  */
typedef int (page_fn) (ctl_t *ctl, const char *node, char *cursor,
                       size_t size, table_t *table);

/*  Runs a paged listing: one page, or every page with --all, from
    --after, only --node's when given.  Pages are gathered before
    printing so that the columns of every page line up.  */
static int
s_cmd_paged (ctl_t *ctl, const char *const *header, size_t columns,
             page_fn *fetch_page)
{
    const char *node;
    int rc = s_node_get (ctl, false, &node);
    const char *after = settings_string (ctl->settings, "after");
    if (rc == 0 && after)
        rc = s_id_check (ctl, "--after client id", after);
    if (rc == 0)
        rc = s_connect (ctl, NULL);
    if (rc != 0)
        return rc;

    char cursor[MSG_ID_MAX + 1];
    snprintf (cursor, sizeof cursor, "%s", after ? after : "");
    bool all = settings_bool (ctl->settings, "all");
    table_t *table = s_table_new (columns);
    if (!table || s_table_add (table, header) != 0)
        rc = CTL_FAILED;

    while (rc == 0) {
        rc = fetch_page (ctl, node, cursor, sizeof cursor, table);
        if (!all || !cursor[0])
            break;
    }

    if (rc == 0 && !ctl->json)
        s_table_print (table);
    if (rc == 0 && cursor[0] && ctl->json) {
        printf ("{\"next\":");
        s_json_string (cursor, strlen (cursor));
        printf ("}\n");
    }
    else if (rc == 0 && cursor[0])
        printf ("next: %s\n", cursor);
    s_table_destroy (&table);
    return rc;
}

static int
s_cmd_list (ctl_t *ctl)
{
    return s_cmd_paged (ctl, s_client_header, 7, s_list_page);
}

static const char *const s_tombstone_header[] = {
    "ID", "NODE", "REASON", "REMOVED", "SEQ", "LAST ACTIVITY"
};

static int
s_tombstone_row_add (table_t *table, const msg_tombstone_t *tombstone)
{
    char id[MSG_ID_MAX + 1];
    char node[MSG_NODE_MAX + 1];
    char removed[40];
    char seq[24];
    char activity[40];
    snprintf (seq, sizeof seq, "%" PRIu64, tombstone->seq);
    const char *row[] = {
        msg_str_copy (tombstone->id, id, sizeof id),
        msg_str_copy (tombstone->node, node, sizeof node),
        msg_reason_name (tombstone->reason),
        s_time_format (tombstone->removed_ms, removed, sizeof removed),
        seq,
        s_time_format (tombstone->last_activity_ms, activity,
                       sizeof activity)
    };
    return s_table_add (table, row);
}

static void
s_tombstone_print_json (const msg_tombstone_t *tombstone)
{
    printf ("{\"id\":");
    s_json_view (tombstone->id);
    printf (",\"node\":");
    s_json_view (tombstone->node);
    printf (",\"reason\":\"%s\",\"last_activity_ms\":%" PRId64
            ",\"removed_ms\":%" PRId64 ",\"seq\":%" PRIu64 "}\n",
            msg_reason_name (tombstone->reason), tombstone->last_activity_ms,
            tombstone->removed_ms, tombstone->seq);
}

/*  Requests one page of tombstones after cursor and adds it to the
    output.  Copies the next page's cursor into cursor, "" on the last
    page.  */
static int
s_tombstones_page (ctl_t *ctl, const char *node, char *cursor, size_t size,
                   table_t *table)
{
    msg_t request;
    msg_t reply;
    memset (&request, 0, sizeof request);
    request.type = MSG_TOMBSTONES;
    request.u.tombstones.limit
        = (uint32_t) settings_uint (ctl->settings, "limit");
    request.u.tombstones.after = msg_str (cursor);
    request.u.tombstones.node = msg_str (node);
    int rc = s_request (ctl, &request, &reply, NULL);
    if (rc != 0)
        return rc;

    const msg_result_t *result = &reply.u.result;
    for (uint32_t index = 0; index < result->tombstones_count && rc == 0;
         index++) {
        if (ctl->json)
            s_tombstone_print_json (&result->tombstones[index]);
        else if (s_tombstone_row_add (table, &result->tombstones[index]))
            rc = CTL_FAILED;
    }
    msg_str_copy (result->next, cursor, size);
    msg_release (&reply);
    return rc;
}

static int
s_cmd_tombstones (ctl_t *ctl)
{
    return s_cmd_paged (ctl, s_tombstone_header, 6, s_tombstones_page);
}

static void
s_client_print_text (const msg_client_t *client)
{
    char time_text[40];
    char age_text[32];
    char meta[META_COLUMN_MAX + 8];
    int64_t now = zclock_time ();

    printf ("id             %.*s\n", (int) client->id.len, client->id.ptr);
    printf ("node           %.*s\n", (int) client->node.len,
            client->node.ptr);
    printf ("registered     %s (%s ago)\n",
            s_time_format (client->registered_ms, time_text,
                           sizeof time_text),
            s_age_format (now - client->registered_ms, age_text,
                          sizeof age_text));
    printf ("last activity  %s (%s ago)\n",
            s_time_format (client->last_activity_ms, time_text,
                           sizeof time_text),
            s_age_format (now - client->last_activity_ms, age_text,
                          sizeof age_text));
    printf ("stale after    %s\n",
            s_threshold_format (client->stale_after_ms, age_text,
                                sizeof age_text));
    if (client->meta.len > 0)
        printf ("meta           %s\n",
                s_meta_format (client->meta, meta, sizeof meta));
}

static int
s_cmd_get (ctl_t *ctl)
{
    const char *id = s_argument (ctl, 0);
    int rc = s_id_check (ctl, "client id", id);
    if (rc == 0)
        rc = s_connect (ctl, NULL);
    if (rc != 0)
        return rc;

    msg_t request;
    msg_t reply;
    memset (&request, 0, sizeof request);
    request.type = MSG_GET;
    request.u.client_ref.id = msg_str (id);
    rc = s_request (ctl, &request, &reply, id);
    if (rc != 0)
        return rc;

    if (ctl->json)
        s_client_print_json (&reply.u.result.client);
    else
        s_client_print_text (&reply.u.result.client);
    msg_release (&reply);
    return CTL_OK;
}

static void
s_stats_print_json (const msg_result_t *result)
{
    putchar ('{');
    for (uint32_t index = 0; index < result->stats_count; index++) {
        printf ("%s", index ? "," : "");
        s_json_view (result->stats[index].name);
        printf (":%" PRIu64, result->stats[index].value);
    }
    printf ("}\n");
}

static int
s_stats_print_text (const msg_result_t *result)
{
    static const char *const header[] = { "NAME", "VALUE" };
    table_t *table = s_table_new (2);
    int rc = table ? s_table_add (table, header) : -1;
    for (uint32_t index = 0; index < result->stats_count && rc == 0;
         index++) {
        char name[MSG_STAT_NAME_MAX + 1];
        char value[24];
        const char *row[] = { name, value };
        msg_str_copy (result->stats[index].name, name, sizeof name);
        snprintf (value, sizeof value, "%" PRIu64,
                  result->stats[index].value);
        rc = s_table_add (table, row);
    }
    if (rc == 0)
        s_table_print (table);
    s_table_destroy (&table);
    return rc == 0 ? CTL_OK : CTL_FAILED;
}

static int
s_cmd_stats (ctl_t *ctl)
{
    msg_t request;
    msg_t reply;
    memset (&request, 0, sizeof request);
    request.type = MSG_STATS;
    int rc = s_connect (ctl, NULL);
    if (rc == 0)
        rc = s_request (ctl, &request, &reply, NULL);
    if (rc != 0)
        return rc;

    if (ctl->json)
        s_stats_print_json (&reply.u.result);
    else
        rc = s_stats_print_text (&reply.u.result);
    msg_release (&reply);
    return rc;
}

static void
s_sweep_print (ctl_t *ctl, const msg_result_t *result)
{
    if (ctl->json) {
        printf ("{\"sweep\":%" PRIu64 ",\"dry_run\":%s,\"stale\":%" PRIu64,
                result->sweep, result->dry_run ? "true" : "false",
                result->stale);
        if (result->dry_run) {
            printf (",\"ids\":[");
            for (uint32_t index = 0; index < result->ids_count; index++) {
                printf ("%s", index ? "," : "");
                s_json_view (result->ids[index]);
            }
            putchar (']');
        }
        printf ("}\n");
        return;
    }
    if (!result->dry_run) {
        printf ("sweep %" PRIu64 " started: %" PRIu64 " stale clients\n",
                result->sweep, result->stale);
        return;
    }
    printf ("dry run: %" PRIu64 " stale clients", result->stale);
    if (result->stale > result->ids_count)
        printf (", first %" PRIu32 " listed", result->ids_count);
    printf ("\n");
    for (uint32_t index = 0; index < result->ids_count; index++)
        printf ("%.*s\n", (int) result->ids[index].len,
                result->ids[index].ptr);
}

static int
s_cmd_sweep (ctl_t *ctl)
{
    msg_t request;
    msg_t reply;
    memset (&request, 0, sizeof request);
    request.type = MSG_SWEEP;
    request.u.sweep.dry_run = settings_bool (ctl->settings, "dry-run");
    int rc = s_connect (ctl, NULL);
    if (rc == 0)
        rc = s_request (ctl, &request, &reply, NULL);
    if (rc != 0)
        return rc;

    s_sweep_print (ctl, &reply.u.result);
    msg_release (&reply);
    return CTL_OK;
}

static void
s_brake_print_json (const msg_brake_state_t *brake)
{
    printf ("{\"enabled\":%s,\"engaged\":%s,\"share\":%" PRIu32
            ",\"min_clients\":%" PRIu64 ",\"clients\":%" PRIu64
            ",\"stale\":%" PRIu64 ",\"limit\":%" PRIu64
            ",\"held_back\":%" PRIu64 ",\"release_next\":%s"
            ",\"release_left_ms\":%" PRIu64 "}\n",
            brake->enabled ? "true" : "false",
            brake->engaged ? "true" : "false", brake->share,
            brake->min_clients, brake->clients, brake->stale, brake->limit,
            brake->held_back, brake->release_next ? "true" : "false",
            brake->release_left_ms);
}

static void
s_brake_print_text (const msg_brake_state_t *brake)
{
    printf ("brake: %s, %s\n", brake->enabled ? "on" : "off",
            brake->engaged ? "engaged" : "not engaged");
    printf ("latest sweep: %" PRIu64 " stale of %" PRIu64 " clients, limit %"
            PRIu64 ", held back %" PRIu64 "\n",
            brake->stale, brake->clients, brake->limit, brake->held_back);
    printf ("rule: at most %" PRIu32 " %% of the clients per sweep, "
            "registries under %" PRIu64 " clients exempt\n",
            brake->share, brake->min_clients);
    if (brake->release_left_ms > 0)
        printf ("released: for %" PRIu64 " s more%s\n",
                (brake->release_left_ms + 999) / 1000,
                brake->release_next ? ", and for the next sweep" : "");
    else if (brake->release_next)
        printf ("released: for the next sweep\n");
    else
        printf ("released: no\n");
}

/*  brake status | brake release [--for DURATION]  */
static int
s_cmd_brake (ctl_t *ctl)
{
    const char *action = s_argument (ctl, 0);
    msg_t request;
    msg_t reply;
    memset (&request, 0, sizeof request);
    request.type = MSG_BRAKE;
    request.u.brake.for_ms = settings_duration (ctl->settings, "for");
    if (streq (action, "status"))
        request.u.brake.action = MSG_BRAKE_STATUS;
    else if (streq (action, "release"))
        request.u.brake.action = MSG_BRAKE_RELEASE;
    else
        return s_usage_error (ctl, "invalid action \"%s\": expected status "
                              "or release", action);
    if (request.u.brake.for_ms && request.u.brake.action != MSG_BRAKE_RELEASE)
        return s_usage_error (ctl, "--for applies to release only");

    int rc = s_connect (ctl, NULL);
    if (rc == 0)
        rc = s_request (ctl, &request, &reply, action);
    if (rc != 0)
        return rc;

    if (ctl->json)
        s_brake_print_json (&reply.u.result.brake);
    else
        s_brake_print_text (&reply.u.result.brake);
    msg_release (&reply);
    return CTL_OK;
}

/*  Removes the client named by the first argument with a deregister or
    an evict request and prints the seq of the event it wrote.  */
static int
s_client_remove (ctl_t *ctl, msg_type_t type, const char *verb)
{
    const char *id = s_argument (ctl, 0);
    int rc = s_id_check (ctl, "client id", id);
    if (rc == 0)
        rc = s_connect (ctl, NULL);
    if (rc != 0)
        return rc;

    msg_t request;
    msg_t reply;
    memset (&request, 0, sizeof request);
    request.type = type;
    request.u.client_ref.id = msg_str (id);
    rc = s_request (ctl, &request, &reply, id);
    if (rc != 0)
        return rc;

    if (ctl->json) {
        printf ("{\"id\":");
        s_json_string (id, strlen (id));
        printf (",\"seq\":%" PRIu64 "}\n", reply.u.result.seq);
    }
    else
        printf ("%s %s: event seq %" PRIu64 "\n", verb, id,
                reply.u.result.seq);
    msg_release (&reply);
    return CTL_OK;
}

static int
s_cmd_evict (ctl_t *ctl)
{
    return s_client_remove (ctl, MSG_EVICT, "evicted");
}

static int
s_cmd_deregister (ctl_t *ctl)
{
    return s_client_remove (ctl, MSG_DEREGISTER, "deregistered");
}

/*  Sends one events request.  On success the caller releases *reply.  */
static int
s_events_request (ctl_t *ctl, const char *node, uint64_t since,
                  uint32_t limit, msg_t *reply)
{
    msg_t request;
    memset (&request, 0, sizeof request);
    request.type = MSG_EVENTS;
    request.u.events.since = since;
    request.u.events.limit = limit;
    request.u.events.node = msg_str (node);
    return s_request (ctl, &request, reply, NULL);
}

/*  Warns on stderr when events after since are no longer retained, so
    the output cannot be complete.  */
static void
s_events_gap_warn (ctl_t *ctl, uint64_t since, const msg_result_t *result)
{
    if (result->first_seq == 0 || result->first_seq <= since + 1)
        return;
    fprintf (stderr,
             "%s: %s: events %" PRIu64 "..%" PRIu64 " are no longer "
             "retained by the registry; the oldest retained is %" PRIu64
             "\n",
             PROGRAM, ctl->command->name, since + 1, result->first_seq - 1,
             result->first_seq);
}

/*  Adds one page of events to the output and advances *since past it.
    Sets *more when the registry has later events.  */
static int
s_events_page (ctl_t *ctl, const char *node, bool first, uint64_t *since,
               bool *more, table_t *table)
{
    msg_t reply;
    uint32_t limit = (uint32_t) settings_uint (ctl->settings, "limit");
    int rc = s_events_request (ctl, node, *since, limit, &reply);
    if (rc != 0)
        return rc;

    const msg_result_t *result = &reply.u.result;
    if (first)
        s_events_gap_warn (ctl, *since, result);
    for (uint32_t index = 0; index < result->events_count && rc == 0;
         index++) {
        event_cells_t cells;
        const msg_event_t *event = &result->events[index];
        if (ctl->json)
            rc = s_event_print_json (event) ? CTL_FAILED : 0;
        else {
            s_event_cells_fill (&cells, event);
            rc = s_table_add (table, cells.cells) ? CTL_FAILED : 0;
        }
        *since = event->seq;
    }
    *more = result->events_count > 0 && *since < result->last_seq;
    msg_release (&reply);
    return rc;
}

static int
s_cmd_events (ctl_t *ctl)
{
    const char *node;
    int rc = s_node_get (ctl, false, &node);
    if (rc == 0)
        rc = s_connect (ctl, NULL);
    if (rc != 0)
        return rc;

    uint64_t since = settings_uint (ctl->settings, "since");
    bool all = settings_bool (ctl->settings, "all");
    bool more = false;
    table_t *table = s_table_new (7);
    if (!table || s_table_add (table, s_event_header) != 0)
        rc = CTL_FAILED;

    for (bool first = true; rc == 0; first = false) {
        rc = s_events_page (ctl, node, first, &since, &more, table);
        if (!all || !more)
            break;
    }

    if (rc == 0 && !ctl->json)
        s_table_print (table);
    if (rc == 0 && more && !ctl->json)
        printf ("next: --since %" PRIu64 "\n", since);
    s_table_destroy (&table);
    return rc;
}

/*  Prints the seven event columns with fixed widths, because tail cannot
    measure rows it has not received yet.  */
static void
s_tail_row_print (const char *const *cells)
{
    printf ("%-8s  %-24s  %-12s  %-8s  %-13s  %-16s  %s\n", cells[0],
            cells[1], cells[2], cells[3], cells[4], cells[5], cells[6]);
}

static void
s_tail_print (ctl_t *ctl, const msg_event_t *event)
{
    if (ctl->json) {
        if (s_event_print_json (event) != 0)
            fprintf (stderr, "%s: tail: event %" PRIu64 " is too long "
                     "to print\n", PROGRAM, event->seq);
    }
    else {
        event_cells_t cells;
        s_event_cells_fill (&cells, event);
        s_tail_row_print (cells.cells);
    }
    fflush (stdout);
}

/*  Sets *since to the newest retained seq, so that tail without --since
    starts with the next live event.  */
static int
s_tail_start_seq (ctl_t *ctl, uint64_t *since)
{
    msg_t reply;
    int rc = s_connect (ctl, NULL);
    if (rc == 0)
        rc = s_events_request (ctl, NULL, 0, 1, &reply);
    if (rc != 0)
        return rc;
    *since = reply.u.result.last_seq;
    msg_release (&reply);
    return 0;
}

/*  Prints events until SIGINT.  Returns CTL_OK when interrupted, or
    CTL_FAILED when the subscription fails.  */
static int
s_tail_follow (ctl_t *ctl, lapse_sub_t *sub)
{
    if (!ctl->json)
        s_tail_row_print (s_event_header);
    while (!zsys_interrupted) {
        msg_event_t event;
        uint64_t first = 0;
        uint64_t last = 0;
        int rc = lapse_sub_next (sub, &event, TAIL_WAIT_MS);
        if (zsys_interrupted)
            break;
        if (rc == 1)
            s_tail_print (ctl, &event);
        else if (rc == 2 && lapse_sub_gap (sub, &first, &last))
            fprintf (stderr, "%s: tail: events %" PRIu64 "..%" PRIu64
                     " were lost: the registry no longer retains them\n",
                     PROGRAM, first, last);
        else if (rc == -1) {
            fprintf (stderr, "%s: tail: %s\n", PROGRAM,
                     lapse_sub_error (sub));
            return CTL_FAILED;
        }
    }
    return CTL_OK;
}

static int
s_cmd_tail (ctl_t *ctl)
{
    const char *node;
    int rc = s_node_get (ctl, false, &node);
    uint64_t since = settings_uint (ctl->settings, "since");
    if (rc == 0 && since == 0)
        rc = s_tail_start_seq (ctl, &since);
    if (rc != 0)
        return rc;

    lapse_sub_t *sub
        = lapse_sub_new (settings_string (ctl->settings, "commands"),
                         settings_string (ctl->settings, "events"), node,
                         since);
    if (!sub) {
        fprintf (stderr, "%s: tail: subscription to %s failed: invalid "
                 "endpoint or node\n", PROGRAM,
                 settings_string (ctl->settings, "events"));
        return CTL_FAILED;
    }
    log_info ("tail started", "since=%" PRIu64 " node=%s", since,
              log_quote (node));
    rc = s_tail_follow (ctl, sub);
    log_info ("tail stopped", "last_seq=%" PRIu64,
              lapse_sub_last_seq (sub));
    lapse_sub_destroy (&sub);
    return rc;
}

static int
s_cmd_register (ctl_t *ctl)
{
    const char *id = s_argument (ctl, 0);
    const char *node;
    int rc = s_id_check (ctl, "client id", id);
    if (rc == 0)
        rc = s_node_get (ctl, true, &node);
    if (rc == 0)
        rc = s_connect (ctl, node);
    if (rc != 0)
        return rc;

    const char *meta = settings_string (ctl->settings, "meta");
    int64_t stale_after_ms = settings_duration (ctl->settings, "stale-after");
    bool created = false;
    if (lapse_register_stale_after (ctl->lapse, id, meta,
                                    meta ? strlen (meta) : 0, stale_after_ms,
                                    &created) != 0)
        return s_request_failed (ctl, id);

    char threshold[32];
    s_threshold_format (stale_after_ms, threshold, sizeof threshold);
    if (ctl->json) {
        printf ("{\"id\":");
        s_json_string (id, strlen (id));
        printf (",\"node\":");
        s_json_string (node, strlen (node));
        if (stale_after_ms > 0)
            printf (",\"stale_after_ms\":%" PRId64, stale_after_ms);
        printf (",\"created\":%s}\n", created ? "true" : "false");
    }
    else
        printf ("registered %s on node %s, stale after %s (%s)\n", id, node,
                threshold,
                created ? "created" : "already registered, refreshed");
    return CTL_OK;
}

/*  Touch totals over every batch.  */
typedef struct {
    uint64_t touched;
    uint64_t unknown;
    uint64_t evicted;
} touch_totals_t;

/*  Touches count ids, at most MSG_TOUCH_IDS_MAX, prints each id the
    registry did not record on stderr, and adds to *totals.  */
static int
s_touch_batch (ctl_t *ctl, msg_str_t *ids, uint32_t count,
               touch_totals_t *totals)
{
    msg_t request;
    msg_t reply;
    memset (&request, 0, sizeof request);
    request.type = MSG_TOUCH;
    request.u.touch.ids = ids;
    request.u.touch.count = count;
    int rc = s_request (ctl, &request, &reply, NULL);
    if (rc != 0)
        return rc;

    const msg_result_t *result = &reply.u.result;
    totals->touched += result->touched;
    totals->unknown += result->unknown_count;
    totals->evicted += result->evicted_count;
    for (uint32_t index = 0; index < result->unknown_count; index++)
        fprintf (stderr, "%s: touch \"%.*s\": %s: client is not "
                 "registered\n", PROGRAM, (int) result->unknown[index].len,
                 result->unknown[index].ptr,
                 msg_error_code_name (MSG_ERR_UNKNOWN_CLIENT));
    for (uint32_t index = 0; index < result->evicted_count; index++)
        fprintf (stderr, "%s: touch \"%.*s\": %s: client was removed; "
                 "\"%s get ID\" shows when and why, and registering it "
                 "again revives it\n", PROGRAM,
                 (int) result->evicted[index].len, result->evicted[index].ptr,
                 msg_error_code_name (MSG_ERR_EVICTED), PROGRAM);
    msg_release (&reply);
    return 0;
}

static int
s_cmd_touch (ctl_t *ctl)
{
    /*  A touch carries ids only, because the registry stores each
        client's node at registration, so --node is accepted and unused.  */
    size_t count = settings_positional_count (ctl->settings) - 1;
    int rc = 0;
    for (size_t index = 0; index < count && rc == 0; index++)
        rc = s_id_check (ctl, "client id", s_argument (ctl, index));
    if (rc == 0)
        rc = s_connect (ctl, NULL);
    if (rc != 0)
        return rc;

    msg_str_t ids[MSG_TOUCH_IDS_MAX];
    touch_totals_t totals = { 0, 0, 0 };
    for (size_t start = 0; start < count && rc == 0;
         start += MSG_TOUCH_IDS_MAX) {
        uint32_t batch = (uint32_t) (count - start < MSG_TOUCH_IDS_MAX
                                         ? count - start
                                         : MSG_TOUCH_IDS_MAX);
        for (uint32_t index = 0; index < batch; index++)
            ids[index] = msg_str (s_argument (ctl, start + index));
        rc = s_touch_batch (ctl, ids, batch, &totals);
    }
    if (rc != 0)
        return rc;

    if (ctl->json)
        printf ("{\"touched\":%" PRIu64 ",\"unknown\":%" PRIu64
                ",\"evicted\":%" PRIu64 "}\n",
                totals.touched, totals.unknown, totals.evicted);
    else
        printf ("touched %" PRIu64 " of %zu clients\n", totals.touched,
                count);
    return totals.unknown || totals.evicted ? CTL_FAILED : CTL_OK;
}

static const ctl_command_t s_commands[] = {
    { "list", "[--node N] [--limit N] [--after ID] [--all]", 0, 0,
      s_cmd_list, "list registered clients in id order, one page or --all" },
    { "get", "ID", 1, 1, s_cmd_get, "show one client" },
    { "stats", "", 0, 0, s_cmd_stats, "show the registry's counters" },
    { "sweep", "[--dry-run]", 0, 0, s_cmd_sweep,
      "start a sweep now, or list what it would remove" },
    { "brake", "status | release [--for DURATION]", 1, 1, s_cmd_brake,
      "show the eviction brake, or lift it for the next sweep or for "
      "DURATION" },
    { "evict", "ID", 1, 1, s_cmd_evict,
      "remove a client as an operator (event reason \"operator\")" },
    { "events", "[--since N] [--limit N] [--node N] [--all]", 0, 0,
      s_cmd_events, "list retained removal events after seq N" },
    { "tail", "[--since N] [--node N]", 0, 0, s_cmd_tail,
      "follow removal events until SIGINT; without --since, from now" },
    { "tombstones", "[--node N] [--limit N] [--after ID] [--all]", 0, 0,
      s_cmd_tombstones,
      "list removed clients that the registry keeps as tombstones" },
    { "register", "ID --node N [--meta TEXT] [--stale-after DURATION]", 1,
      1, s_cmd_register, "register a client for node N" },
    { "touch", "ID...", 1, SIZE_MAX, s_cmd_touch,
      "record activity of clients; exit 1 if any is unknown or evicted" },
    { "deregister", "ID", 1, 1, s_cmd_deregister,
      "remove a client (event reason \"deregistered\")" },
};

#define COMMAND_COUNT (sizeof s_commands / sizeof s_commands[0])

static void
s_help_print (void)
{
    settings_print_help (s_settings,
                         "usage: " PROGRAM " [options] COMMAND [ARGS]");
    printf ("\ncommands:\n");
    for (size_t index = 0; index < COMMAND_COUNT; index++) {
        const ctl_command_t *command = &s_commands[index];
        printf ("  %s%s%s\n      %s\n", command->name,
                command->arguments[0] ? " " : "", command->arguments,
                command->help);
    }
    printf ("\nexit status: 0 ok, 1 error reply or timeout, 2 usage "
            "error\n");
}

/*  Writes the command names separated by ", " into buffer.  */
static char *
s_command_names (char *buffer, size_t size)
{
    size_t used = 0;
    buffer[0] = '\0';
    for (size_t index = 0; index < COMMAND_COUNT && used < size; index++)
        used += (size_t) snprintf (buffer + used, size - used, "%s%s",
                                   index ? ", " : "",
                                   s_commands[index].name);
    return buffer;
}

/*  Finds the command named by the first argument and checks how many
    arguments follow it.  Returns 0, or CTL_USAGE after saying why.  */
static int
s_command_find (ctl_t *ctl)
{
    char names[256];
    if (settings_positional_count (ctl->settings) == 0) {
        fprintf (stderr, "%s: missing command; expected one of: %s\n",
                 PROGRAM, s_command_names (names, sizeof names));
        return CTL_USAGE;
    }
    const char *name = settings_positional (ctl->settings, 0);
    for (size_t index = 0; index < COMMAND_COUNT; index++)
        if (streq (s_commands[index].name, name))
            ctl->command = &s_commands[index];
    if (!ctl->command) {
        fprintf (stderr, "%s: unknown command \"%s\"; expected one of: %s\n",
                 PROGRAM, name, s_command_names (names, sizeof names));
        return CTL_USAGE;
    }

    size_t count = settings_positional_count (ctl->settings) - 1;
    if (count < ctl->command->min_args)
        return s_usage_error (ctl, "missing argument; usage: %s %s %s",
                              PROGRAM, name, ctl->command->arguments);
    if (count > ctl->command->max_args)
        return s_usage_error (ctl, "unexpected argument \"%s\"; usage: "
                              "%s %s %s", s_argument (ctl, count - 1),
                              PROGRAM, name, ctl->command->arguments);
    return 0;
}

static int
s_ctl_run (ctl_t *ctl)
{
    if (settings_help_requested (ctl->settings)) {
        s_help_print ();
        return CTL_OK;
    }
    log_set_level (settings_log_level (ctl->settings, "log-level"));
    int rc = s_command_find (ctl);
    if (rc != 0)
        return rc;

    ctl->json = settings_bool (ctl->settings, "json");
    settings_log (ctl->settings);
    log_info ("lapsectl started", "command=%s", ctl->command->name);
    rc = ctl->command->handler (ctl);
    log_info ("lapsectl stopped", "command=%s exit=%d", ctl->command->name,
              rc);
    return rc;
}

int
main (int argc, char **argv)
{
    char error[512];
    ctl_t ctl;
    memset (&ctl, 0, sizeof ctl);

    log_init ("lapsectl");
    ctl.settings = settings_load (PROGRAM, "lapsectl", s_settings, argc,
                                  argv, error, sizeof error);
    if (!ctl.settings) {
        fprintf (stderr, "%s: %s\n", PROGRAM, error);
        return CTL_USAGE;
    }
    int rc = s_ctl_run (&ctl);
    lapse_destroy (&ctl.lapse);
    settings_destroy (&ctl.settings);
    return rc;
}
