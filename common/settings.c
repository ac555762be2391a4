/*  settings.c: typed settings from flags, environment, file and defaults.

    Loading reads the sources of every setting once, highest precedence
    first, and parses the winning text by the setting's type.  Reloading
    reads the environment and the file again into a separate array,
    checks every setting as loading does, and swaps in the reloadable
    ones only when all are valid, so a bad edit leaves the running
    values untouched.
*/

#include "settings.h"

#include "log.h"

#include <assert.h>
#include <czmq.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

/*  Maximum length of a string or endpoint whose table entry has max 0.  */
#define SETTING_TEXT_MAX 4096

/*  Enough for "LAPSE_" and any setting name a table uses.  */
#define SETTING_ENV_NAME_SIZE 128

/*  Enough for one duration or number in text form.  */
#define SETTING_NUMBER_SIZE 32

/*  Maximum length of the fields of the "effective configuration" line.  */
#define SETTING_LOG_FIELDS_MAX 6144

/*  Largest config file read.  The sample is under 10 KiB; anything near
    this is not a config file, and reading it whole would cost memory.  */
#define SETTING_FILE_MAX (1024 * 1024)

/*  Longest ipc:// path: a unix socket path and its NUL must fit in
    sun_path, which is 108 bytes on Linux.  */
#define SETTING_IPC_PATH_MAX (sizeof ((struct sockaddr_un *) 0)->sun_path - 1)

/*  Highest tcp:// port.  */
#define SETTING_PORT_MAX 65535

typedef enum {
    SOURCE_FLAG,
    SOURCE_ENVIRONMENT,
    SOURCE_FILE,
    SOURCE_DEFAULT
} source_kind_t;

/*  The parsed value of one setting.  Only the field of its type is used;
    the others stay zero so that two values compare field by field.  */
typedef struct {
    bool has_value;
    int64_t duration;
    uint64_t number;
    bool boolean;
    char *text;                 /* string or endpoint, owned */
} setting_value_t;

/*  One reading of the config file.  Every field is NULL when no file is
    named; section is NULL when the file has no section for the program.  */
typedef struct {
    char *path;
    zconfig_t *root;
    zconfig_t *section;
} config_read_t;

struct settings_t {
    char *program;
    char *section;
    const setting_def_t *defs;
    size_t count;
    setting_value_t *values;    /* one per def */
    char **flags;               /* text given by flag at start, or NULL */
    char *config_flag;          /* --config PATH, or NULL */
    char *config_path;          /* the file last read, or NULL */
    char **file_texts;          /* value of each key in the file at the
                                   last read, NULL when absent */
    bool help;
    char **positional;
    size_t positional_count;
};

static const struct {
    const char *unit;
    int64_t factor;
} s_units [] = {
    { "d", 86400000 }, { "h", 3600000 }, { "m", 60000 }, { "s", 1000 },
    { "ms", 1 }
};

#define UNIT_COUNT (sizeof s_units / sizeof s_units [0])

/*  The top-level sections of the config file, one per program that
    reads it.  The file is shared, so a program accepts the others'
    sections, and any other name is reported as a misspelling instead of
    being ignored.  A new program adds its section here; settings_load
    rejects a section that is missing.  */
static const char *s_sections [] = {
    "registry", "scheduler", "audit", "lapsectl", "node-sim",
    /*  The benchmark tools in bench/.  */
    "loadgen", "etcdload", "sweepwatch"
};

#define SECTION_COUNT (sizeof s_sections / sizeof s_sections [0])

static const struct {
    const char *word;
    bool value;
} s_bool_words [] = {
    { "true", true }, { "false", false }, { "yes", true }, { "no", false },
    { "on", true }, { "off", false }, { "1", true }, { "0", false }
};

#define BOOL_WORD_COUNT (sizeof s_bool_words / sizeof s_bool_words [0])

static char *
s_strdup (const char *text)
{
    char *copy = strdup (text);
    if (copy == NULL)
        log_fatal ("out of memory", NULL);
    return copy;
}

/*  Writes a message to error, when there is room for one.  */
static void
s_error (char *error, size_t error_size, const char *format, ...)
    __attribute__ ((format (printf, 3, 4)));

static void
s_error (char *error, size_t error_size, const char *format, ...)
{
    if (error == NULL || error_size == 0)
        return;
    va_list args;
    va_start (args, format);
    vsnprintf (error, error_size, format, args);
    va_end (args);
}

/*  Appends to buffer, which has room for size bytes and already contains
    *length.  Output that does not fit is dropped.  */
static void
s_append (char *buffer, size_t size, size_t *length, const char *format,
          ...) __attribute__ ((format (printf, 4, 5)));

static void
s_append (char *buffer, size_t size, size_t *length, const char *format, ...)
{
    if (*length + 1 >= size)
        return;
    va_list args;
    va_start (args, format);
    int rc = vsnprintf (buffer + *length, size - *length, format, args);
    va_end (args);
    if (rc > 0)
        *length += (size_t) rc < size - *length ? (size_t) rc
                                                 : size - *length - 1;
}

/*  Reads one or more decimal digits at *cursor into *number and moves
    *cursor past them.  Returns -1 when there is no digit or the number
    is above limit.  */
static int
s_parse_digits (const char **cursor, uint64_t limit, uint64_t *number)
{
    const char *text = *cursor;
    uint64_t result = 0;

    if (*text < '0' || *text > '9')
        return -1;
    for (; *text >= '0' && *text <= '9'; text++) {
        uint64_t digit = (uint64_t) (*text - '0');
        if (result > (limit - digit) / 10)
            return -1;
        result = result * 10 + digit;
    }
    *cursor = text;
    *number = result;
    return 0;
}

int
settings_parse_duration (const char *text, int64_t *milliseconds)
{
    uint64_t number;

    if (text == NULL || s_parse_digits (&text, INT64_MAX, &number) != 0)
        return -1;

    for (size_t index = 0; index < UNIT_COUNT; index++) {
        if (strcmp (text, s_units [index].unit) != 0)
            continue;
        if (number > (uint64_t) (INT64_MAX / s_units [index].factor))
            return -1;
        *milliseconds = (int64_t) number * s_units [index].factor;
        return 0;
    }
    return -1;
}

char *
settings_format_duration (int64_t milliseconds, char *buffer, size_t size)
{
    if (milliseconds == 0) {
        snprintf (buffer, size, "0s");
        return buffer;
    }
    for (size_t index = 0; index < UNIT_COUNT; index++) {
        int64_t factor = s_units [index].factor;
        if (milliseconds % factor == 0) {
            snprintf (buffer, size, "%lld%s",
                      (long long) (milliseconds / factor),
                      s_units [index].unit);
            break;
        }
    }
    return buffer;
}

/*  Returns the index of the setting called name (length bytes, not
    necessarily NUL-terminated), or -1.  */
static int
s_find (const setting_def_t *defs, const char *name, size_t length)
{
    for (int index = 0; defs [index].name; index++) {
        const char *candidate = defs [index].name;
        if (strlen (candidate) == length
            && memcmp (candidate, name, length) == 0)
            return index;
    }
    return -1;
}

/*  Writes the environment variable of a setting: "stale-after" gives
    LAPSE_STALE_AFTER.  */
static void
s_env_name (const char *name, char *buffer, size_t size)
{
    size_t length = (size_t) snprintf (buffer, size, "LAPSE_");
    for (; *name && length + 1 < size; name++, length++) {
        char c = *name == '-' ? '_' : *name;
        buffer [length] = c >= 'a' && c <= 'z' ? (char) (c - 'a' + 'A') : c;
    }
    buffer [length] = '\0';
}

static size_t
s_text_max (const setting_def_t *def)
{
    return def->max ? (size_t) def->max : SETTING_TEXT_MAX;
}

/*  Returns the upper limit of a number or duration; max 0 means none.  */
static uint64_t
s_upper (const setting_def_t *def)
{
    if (def->max)
        return def->max;
    return def->type == SETTING_DURATION ? INT64_MAX : UINT64_MAX;
}

/*  Writes a number or duration limit in the form a user types it.  */
static const char *
s_limit_text (const setting_def_t *def, uint64_t limit, char *buffer,
              size_t size)
{
    if (def->type == SETTING_DURATION)
        return settings_format_duration ((int64_t) limit, buffer, size);
    snprintf (buffer, size, "%llu", (unsigned long long) limit);
    return buffer;
}

/*  Writes " between 1s and 30d", " of at least 1", " of at most 5m" or
    nothing, for a number or duration setting.  */
static void
s_describe_range (const setting_def_t *def, char *buffer, size_t size)
{
    char low [SETTING_NUMBER_SIZE];
    char high [SETTING_NUMBER_SIZE];
    bool bounded = def->max != 0;

    s_limit_text (def, def->min, low, sizeof low);
    s_limit_text (def, s_upper (def), high, sizeof high);
    if (def->min > 0 && bounded)
        snprintf (buffer, size, " between %s and %s", low, high);
    else
    if (def->min > 0)
        snprintf (buffer, size, " of at least %s", low);
    else
    if (bounded)
        snprintf (buffer, size, " of at most %s", high);
    else
        buffer [0] = '\0';
}

/*  Returns true when text starts with transport, such as "tcp://".  */
static bool
s_has_transport (const char *text, const char *transport)
{
    return text && strncmp (text, transport, strlen (transport)) == 0;
}

/*  Returns the longest path an ipc:// endpoint of def may have.  */
static size_t
s_ipc_path_max (const setting_def_t *def)
{
    size_t prefix = strlen ("ipc://");
    size_t room = s_text_max (def) > prefix ? s_text_max (def) - prefix : 0;
    return room < SETTING_IPC_PATH_MAX ? room : SETTING_IPC_PATH_MAX;
}

/*  Writes what an endpoint setting accepts, for the transport that text
    names when it names one (text may be NULL).  */
static void
s_describe_endpoint (const setting_def_t *def, const char *text,
                     char *buffer, size_t size)
{
    if (s_has_transport (text, "ipc://")) {
        snprintf (buffer, size, "ipc://PATH with a path of 1 to %zu bytes, "
                  "the most a unix socket path can hold",
                  s_ipc_path_max (def));
        return;
    }

    const char *form = "tcp://, ipc:// or inproc:// followed by an address";
    if (s_has_transport (text, "tcp://"))
        form = "tcp://HOST:PORT with a host and a port from 1 to 65535 or *";
    else
    if (s_has_transport (text, "inproc://"))
        form = "inproc://NAME with a name of at least 1 byte";
    snprintf (buffer, size, "%s, at most %zu bytes in all", form,
              s_text_max (def));
}

/*  Writes what a setting accepts, to follow "expected ".
    text is the value rejected, or NULL when there is none.  */
static void
s_describe_allowed (const setting_def_t *def, const char *text,
                    char *buffer, size_t size)
{
    char range [2 * SETTING_NUMBER_SIZE + 32];

    switch (def->type) {
        case SETTING_DURATION:
            s_describe_range (def, range, sizeof range);
            snprintf (buffer, size,
                      "a duration with a unit (ms, s, m, h, d)%s", range);
            break;
        case SETTING_UINT:
            s_describe_range (def, range, sizeof range);
            snprintf (buffer, size, "a whole number%s", range);
            break;
        case SETTING_STRING:
            if (def->min > 0)
                snprintf (buffer, size, "text of %llu to %zu bytes",
                          (unsigned long long) def->min, s_text_max (def));
            else
                snprintf (buffer, size, "text of at most %zu bytes",
                          s_text_max (def));
            break;
        case SETTING_BOOL:
            snprintf (buffer, size, "true, false, yes, no, on, off, 1 or 0");
            break;
        case SETTING_ENDPOINT:
            s_describe_endpoint (def, text, buffer, size);
            break;
        case SETTING_LOG_LEVEL:
            snprintf (buffer, size, "debug, info, warn or error");
            break;
    }
}

/*  Writes where a value came from: "flag --stale-after", "environment
    LAPSE_STALE_AFTER", "config /etc/lapse.conf registry/stale-after" or
    "default".  */
static void
s_describe_source (settings_t *self, const setting_def_t *def,
                   source_kind_t kind, const char *path, char *buffer,
                   size_t size)
{
    char env_name [SETTING_ENV_NAME_SIZE];

    switch (kind) {
        case SOURCE_FLAG:
            snprintf (buffer, size, "flag --%s", def->name);
            break;
        case SOURCE_ENVIRONMENT:
            s_env_name (def->name, env_name, sizeof env_name);
            snprintf (buffer, size, "environment %s", env_name);
            break;
        case SOURCE_FILE:
            snprintf (buffer, size, "config %s %s/%s", path, self->section,
                      def->name);
            break;
        case SOURCE_DEFAULT:
            snprintf (buffer, size, "default");
            break;
    }
}

/*  Writes text in double quotes with control characters escaped, cut
    like a log value, for use in an error message.  */
static void
s_quote_for_message (const char *text, char *buffer, size_t size)
{
    const char *quoted = log_quote (text);
    if (quoted [0] == '"')
        snprintf (buffer, size, "%s", quoted);
    else
        snprintf (buffer, size, "\"%s\"", quoted);
}

static void
s_report_invalid (settings_t *self, const setting_def_t *def,
                  source_kind_t kind, const char *path, const char *text,
                  char *error, size_t error_size)
{
    char quoted [1024];
    char source [1024];
    char allowed [256];

    s_quote_for_message (text, quoted, sizeof quoted);
    s_describe_source (self, def, kind, path, source, sizeof source);
    s_describe_allowed (def, text, allowed, sizeof allowed);
    s_error (error, error_size,
             "invalid value %s for %s (from %s): expected %s", quoted,
             def->name, source, allowed);
}

static int
s_parse_uint (const char *text, uint64_t *number)
{
    if (s_parse_digits (&text, UINT64_MAX, number) != 0 || *text != '\0')
        return -1;
    return 0;
}

static int
s_parse_bool (const char *text, bool *value)
{
    for (size_t index = 0; index < BOOL_WORD_COUNT; index++) {
        if (strcasecmp (text, s_bool_words [index].word) == 0) {
            *value = s_bool_words [index].value;
            return 0;
        }
    }
    return -1;
}

/*  Checks the address of a tcp:// endpoint: a host, ':' and a port from
    1 to 65535, or '*' for one the system picks.  libzmq itself would
    take port 99999 as 34463 and -1 as 65535, so a typo would bind a
    port nobody asked for.  The last ':' is taken, so that an IPv6 host
    in brackets keeps its own.  */
static int
s_check_tcp_address (const char *address)
{
    const char *colon = strrchr (address, ':');
    if (colon == NULL || colon == address)
        return -1;

    const char *port = colon + 1;
    uint64_t number = 0;
    if (strcmp (port, "*") == 0)
        return 0;
    if (s_parse_digits (&port, SETTING_PORT_MAX, &number) != 0
        || *port != '\0' || number == 0)
        return -1;
    return 0;
}

static int
s_check_endpoint (const setting_def_t *def, const char *text)
{
    if (strlen (text) > s_text_max (def))
        return -1;

    if (s_has_transport (text, "tcp://"))
        return s_check_tcp_address (text + strlen ("tcp://"));
    if (s_has_transport (text, "ipc://")) {
        size_t length = strlen (text + strlen ("ipc://"));
        return length > 0 && length <= s_ipc_path_max (def) ? 0 : -1;
    }
    if (s_has_transport (text, "inproc://"))
        return text [strlen ("inproc://")] != '\0' ? 0 : -1;
    return -1;
}

static bool
s_in_range (const setting_def_t *def, uint64_t number)
{
    return number >= def->min && number <= s_upper (def);
}

/*  Parses text by the type of def into *value.  Returns 0, or -1 when
    the text is not valid for the setting.  */
static int
s_parse_value (const setting_def_t *def, const char *text,
               setting_value_t *value)
{
    setting_value_t parsed = { .has_value = true };
    log_level_t level = LOG_LEVEL_INFO;
    int rc = -1;

    switch (def->type) {
        case SETTING_DURATION:
            rc = settings_parse_duration (text, &parsed.duration);
            if (rc == 0 && !s_in_range (def, (uint64_t) parsed.duration))
                rc = -1;
            break;
        case SETTING_UINT:
            rc = s_parse_uint (text, &parsed.number);
            if (rc == 0 && !s_in_range (def, parsed.number))
                rc = -1;
            break;
        case SETTING_BOOL:
            rc = s_parse_bool (text, &parsed.boolean);
            break;
        case SETTING_STRING:
            rc = strlen (text) >= def->min
                         && strlen (text) <= s_text_max (def) ? 0 : -1;
            break;
        case SETTING_ENDPOINT:
            rc = s_check_endpoint (def, text);
            break;
        case SETTING_LOG_LEVEL:
            rc = log_level_parse (text, &level);
            parsed.number = (uint64_t) level;
            break;
    }
    if (rc != 0)
        return -1;

    /*  A log level keeps its text too, for settings_log.  */
    if (def->type == SETTING_STRING || def->type == SETTING_ENDPOINT
        || def->type == SETTING_LOG_LEVEL)
        parsed.text = s_strdup (text);
    *value = parsed;
    return 0;
}

static void
s_value_clear (setting_value_t *value)
{
    free (value->text);
    memset (value, 0, sizeof *value);
}

static bool
s_value_equal (const setting_value_t *one, const setting_value_t *other)
{
    if (one->has_value != other->has_value)
        return false;
    if (one->text || other->text)
        return one->text && other->text && strcmp (one->text, other->text) == 0;
    return one->duration == other->duration && one->number == other->number
           && one->boolean == other->boolean;
}

/*  Returns the value of the flag at argv [*index]: inline_value, the
    text after '=', when there is one, else the next argument, which is
    consumed.  An argument that starts with "--" is taken for the next
    flag and not a value, so that a forgotten value is reported instead
    of swallowing a flag.  Such a value can still be given as
    --name=--value.  */
static const char *
s_flag_value (const char *inline_value, int argc, char **argv, int *index)
{
    if (inline_value)
        return inline_value;
    if (*index + 1 >= argc || strncmp (argv [*index + 1], "--", 2) == 0)
        return NULL;
    *index += 1;
    return argv [*index];
}

/*  Handles the flags that are not settings: --help and --config.
    Returns 1 when arg was one of them, 0 when not, -1 on error.  */
static int
s_parse_builtin_flag (settings_t *self, const char *name, size_t length,
                      const char *inline_value, int argc, char **argv,
                      int *index, char *error, size_t error_size)
{
    if (length == 4 && memcmp (name, "help", 4) == 0) {
        if (inline_value) {
            s_error (error, error_size, "invalid flag %s: --help takes no "
                     "value", argv [*index]);
            return -1;
        }
        self->help = true;
        return 1;
    }
    if (length == 6 && memcmp (name, "config", 6) == 0) {
        const char *path = s_flag_value (inline_value, argc, argv, index);
        if (path == NULL || *path == '\0') {
            s_error (error, error_size, "missing value for flag --config: "
                     "expected the path of a config file");
            return -1;
        }
        free (self->config_flag);
        self->config_flag = s_strdup (path);
        return 1;
    }
    return 0;
}

/*  Reports the first length bytes of arg as an unknown flag.  Returns
    -1.  */
static int
s_report_unknown_flag (settings_t *self, const char *arg, size_t length,
                       char *error, size_t error_size)
{
    s_error (error, error_size, "unknown flag %.*s: run \"%s --help\" for "
             "the list of flags", (int) length, arg, self->program);
    return -1;
}

/*  Parses the flag at argv [*index], consuming its value when that is
    the next argument.  Returns 0 or -1.  */
static int
s_parse_flag (settings_t *self, int argc, char **argv, int *index,
              char *error, size_t error_size)
{
    const char *arg = argv [*index];
    if (strncmp (arg, "--", 2) != 0)
        return s_report_unknown_flag (self, arg, strlen (arg), error,
                                      error_size);

    const char *name = arg + 2;
    const char *equals = strchr (name, '=');
    size_t length = equals ? (size_t) (equals - name) : strlen (name);
    const char *inline_value = equals ? equals + 1 : NULL;

    int rc = s_parse_builtin_flag (self, name, length, inline_value, argc,
                                   argv, index, error, error_size);
    if (rc != 0)
        return rc < 0 ? -1 : 0;

    int def_index = s_find (self->defs, name, length);
    if (def_index < 0)
        return s_report_unknown_flag (self, arg, length + 2, error,
                                      error_size);

    const setting_def_t *def = &self->defs [def_index];
    const char *value = def->type == SETTING_BOOL && !inline_value
                            ? "true"
                            : s_flag_value (inline_value, argc, argv, index);
    if (value == NULL) {
        char allowed [256];
        s_describe_allowed (def, NULL, allowed, sizeof allowed);
        s_error (error, error_size, "missing value for flag --%s: "
                 "expected %s", def->name, allowed);
        return -1;
    }
    /*  A repeated flag overrides the earlier one, as in most tools.  */
    free (self->flags [def_index]);
    self->flags [def_index] = s_strdup (value);
    return 0;
}

/*  Sorts argv into flags and positional arguments.  Flags may follow
    positional arguments; "--" ends the flags and "-" alone is a
    positional argument (it often means standard input).  */
static int
s_parse_args (settings_t *self, int argc, char **argv, char *error,
              size_t error_size)
{
    bool flags_ended = false;

    for (int index = 1; index < argc; index++) {
        const char *arg = argv [index];
        if (!flags_ended && strcmp (arg, "--") == 0) {
            flags_ended = true;
            continue;
        }
        if (flags_ended || arg [0] != '-' || arg [1] == '\0') {
            self->positional [self->positional_count++] = s_strdup (arg);
            continue;
        }
        if (s_parse_flag (self, argc, argv, &index, error, error_size) != 0)
            return -1;
    }
    return 0;
}

/*  Writes the names of every setting, separated by ", ".  */
static void
s_list_names (const setting_def_t *defs, char *buffer, size_t size)
{
    size_t length = 0;
    buffer [0] = '\0';
    for (size_t index = 0; defs [index].name; index++)
        s_append (buffer, size, &length, "%s%s", index ? ", " : "",
                  defs [index].name);
}

/*  Returns true when a later sibling of item has the same name.  */
static bool
s_has_duplicate (zconfig_t *item)
{
    for (zconfig_t *other = zconfig_next (item); other;
         other = zconfig_next (other))
        if (streq (zconfig_name (other), zconfig_name (item)))
            return true;
    return false;
}

/*  Returns true when name is one of s_sections.  */
static bool
s_section_known (const char *name)
{
    for (size_t index = 0; index < SECTION_COUNT; index++)
        if (streq (s_sections [index], name))
            return true;
    return false;
}

/*  Writes the names of s_sections, separated by ", ".  */
static void
s_list_sections (char *buffer, size_t size)
{
    size_t length = 0;
    buffer [0] = '\0';
    for (size_t index = 0; index < SECTION_COUNT; index++)
        s_append (buffer, size, &length, "%s%s", index ? ", " : "",
                  s_sections [index]);
}

/*  Rejects a top-level item of the file that is not a known section: a
    misspelt section, or a key outside any section, would otherwise be
    ignored and leave every value at its default without a word.  */
static int
s_check_sections (config_read_t *config, char *error, size_t error_size)
{
    char names [256];

    for (zconfig_t *item = zconfig_child (config->root); item;
         item = zconfig_next (item)) {
        /*  zconfig gives a section the value "", like a key "name =".  */
        const char *name = zconfig_name (item);
        const char *value = zconfig_value (item);
        bool is_key = value && *value;
        if (!is_key && s_section_known (name))
            continue;

        s_list_sections (names, sizeof names);
        if (is_key)
            s_error (error, error_size, "key \"%s\" outside any section "
                     "in config file %s: put it under one of the sections "
                     "%s, indented by 4 spaces", name, config->path, names);
        else
            s_error (error, error_size, "unknown section \"%s\" in config "
                     "file %s: expected one of %s", name, config->path,
                     names);
        return -1;
    }
    return 0;
}

/*  Rejects keys of the program's section that are not settings, so that
    a misspelt key is reported instead of silently falling back to the
    default.  Keys under a setting's key and repeated keys or sections
    are rejected for the same reason, because zconfig would use the
    first and ignore the rest.  */
static int
s_check_keys (settings_t *self, config_read_t *config, char *error,
              size_t error_size)
{
    char names [1024];

    if (config->section && s_has_duplicate (config->section)) {
        s_error (error, error_size, "duplicate section %s in config file "
                 "%s: merge them into one", self->section, config->path);
        return -1;
    }
    zconfig_t *key = config->section ? zconfig_child (config->section) : NULL;
    for (; key; key = zconfig_next (key)) {
        const char *name = zconfig_name (key);
        zconfig_t *child = zconfig_child (key);
        if (s_has_duplicate (key)) {
            s_error (error, error_size, "duplicate key %s/%s in config file "
                     "%s: keep only one", self->section, name, config->path);
            return -1;
        }
        if (child) {
            s_error (error, error_size, "invalid key %s/%s/%s in config "
                     "file %s: a setting takes a value, not keys under it",
                     self->section, name, zconfig_name (child), config->path);
            return -1;
        }
        if (s_find (self->defs, name, strlen (name)) < 0) {
            s_list_names (self->defs, names, sizeof names);
            s_error (error, error_size, "unknown key \"%s\" in section %s of "
                     "config file %s: expected one of %s", name,
                     self->section, config->path, names);
            return -1;
        }
    }
    return 0;
}

static void
s_config_release (config_read_t *config)
{
    zconfig_destroy (&config->root);
    free (config->path);
    config->path = NULL;
    config->section = NULL;
}

/*  Names the kind of file that mode describes, for a message about a
    file that is not a regular one.  */
static const char *
s_file_kind (mode_t mode)
{
    if (S_ISDIR (mode))
        return "a folder";
    if (S_ISFIFO (mode))
        return "a FIFO";
    if (S_ISSOCK (mode))
        return "a socket";
    if (S_ISCHR (mode) || S_ISBLK (mode))
        return "a device";
    return "a special file";
}

/*  Opens the config file at path for reading and checks that it is a
    regular file of at most SETTING_FILE_MAX bytes.  Returns the open
    file with its size in *size, or NULL.  It opens without blocking,
    because opening a FIFO for reading waits for a writer, which would
    hang start-up or a reload for good; for a regular file the flag
    changes nothing.  */
static FILE *
s_config_open (const char *path, size_t *size, char *error,
               size_t error_size)
{
    int fd = open (path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    struct stat info;
    if (fd == -1 || fstat (fd, &info) != 0) {
        s_error (error, error_size, "failed to read config file %s: %s", path,
                 strerror (errno));
        goto failed;
    }
    if (!S_ISREG (info.st_mode)) {
        s_error (error, error_size, "failed to read config file %s: not "
                 "a regular file (%s)", path, s_file_kind (info.st_mode));
        goto failed;
    }
    if (info.st_size > SETTING_FILE_MAX) {
        s_error (error, error_size, "failed to read config file %s: it has "
                 "%lld bytes, more than the %d (1 MiB) a config file may "
                 "have", path, (long long) info.st_size, SETTING_FILE_MAX);
        goto failed;
    }
    FILE *file = fdopen (fd, "r");
    if (file == NULL) {
        s_error (error, error_size, "failed to read config file %s: %s", path,
                 strerror (errno));
        goto failed;
    }
    *size = (size_t) info.st_size;
    return file;

failed:
    if (fd != -1)
        close (fd);
    return NULL;
}

/*  Parses the ZPL file at path into *root.  The file is read here
    rather than by zconfig_load, which returns NULL alike for a missing
    file and a syntax error, and in czmq 4.2.1 leaks its file object on
    a syntax error (seen under valgrind).  */
static int
s_config_parse (const char *path, zconfig_t **root, char *error,
                size_t error_size)
{
    size_t size = 0;
    FILE *file = s_config_open (path, &size, error, error_size);
    if (file == NULL)
        return -1;
    zchunk_t *chunk = zchunk_read (file, size);
    fclose (file);

    /*  zconfig logs the line and the cause of a syntax error itself.  */
    *root = chunk ? zconfig_chunk_load (chunk) : NULL;
    zchunk_destroy (&chunk);
    if (*root == NULL) {
        s_error (error, error_size, "invalid config file %s: expected ZPL "
                 "(sections, keys indented by 4 spaces, \"name = value\")",
                 path);
        return -1;
    }
    return 0;
}

/*  Reads the config file named by --config, else by LAPSE_CONFIG, into
    *config.  Without either, *config is left empty and 0 is returned.  */
static int
s_config_read (settings_t *self, config_read_t *config, char *error,
               size_t error_size)
{
    memset (config, 0, sizeof *config);
    const char *path = self->config_flag;
    if (path == NULL)
        path = getenv ("LAPSE_CONFIG");
    if (path == NULL || *path == '\0')
        return 0;

    if (s_config_parse (path, &config->root, error, error_size) != 0)
        return -1;
    config->path = s_strdup (path);
    if (self->section)
        config->section = zconfig_locate (config->root, self->section);

    if (s_check_sections (config, error, error_size) != 0
        || s_check_keys (self, config, error, error_size) != 0) {
        s_config_release (config);
        return -1;
    }
    return 0;
}

/*  Returns the text of the setting at index in the config file just
    read, or NULL when the file has no key for it.  */
static const char *
s_file_text (settings_t *self, size_t index, config_read_t *config)
{
    zconfig_t *key = config->section
                         ? zconfig_locate (config->section,
                                           self->defs [index].name)
                         : NULL;
    if (key == NULL)
        return NULL;
    return zconfig_value (key) ? zconfig_value (key) : "";
}

/*  Keeps the file's text of every setting, so that a reload can tell
    which of them an edit of the file changed.  */
static void
s_remember_file (settings_t *self, config_read_t *config)
{
    for (size_t index = 0; index < self->count; index++) {
        const char *text = s_file_text (self, index, config);
        free (self->file_texts [index]);
        self->file_texts [index] = text ? s_strdup (text) : NULL;
    }
}

static bool
s_text_equal (const char *one, const char *other)
{
    if (one == NULL || other == NULL)
        return one == other;
    return strcmp (one, other) == 0;
}

/*  Warns about each setting whose value in the file changed since the
    last read but cannot take effect: a flag or environment variable
    wins over the file, or the setting is read only at start.  */
static void
s_warn_ignored_changes (settings_t *self, config_read_t *config)
{
    char env_name [SETTING_ENV_NAME_SIZE];
    char source [SETTING_ENV_NAME_SIZE + 16];

    for (size_t index = 0; index < self->count; index++) {
        const setting_def_t *def = &self->defs [index];
        const char *text = s_file_text (self, index, config);
        if (s_text_equal (text, self->file_texts [index]))
            continue;

        s_env_name (def->name, env_name, sizeof env_name);
        if (self->flags [index] || getenv (env_name)) {
            s_describe_source (self, def, self->flags [index]
                                              ? SOURCE_FLAG
                                              : SOURCE_ENVIRONMENT,
                               NULL, source, sizeof source);
            log_warn ("configuration value overridden",
                      "setting=%s file_value=%s source=%s", def->name,
                      log_quote (text), log_quote (source));
        }
        else
        if (!def->reloadable)
            log_warn ("configuration value needs a restart",
                      "setting=%s file_value=%s", def->name,
                      log_quote (text));
    }
}

/*  Reads the setting at index from its source of highest precedence into
    *value.  With config NULL only the default is read, for --help.  */
static int
s_resolve (settings_t *self, size_t index, config_read_t *config,
           setting_value_t *value, char *error, size_t error_size)
{
    const setting_def_t *def = &self->defs [index];
    char env_name [SETTING_ENV_NAME_SIZE];
    s_env_name (def->name, env_name, sizeof env_name);
    const char *env_value = config ? getenv (env_name) : NULL;
    zconfig_t *key = config && config->section
                         ? zconfig_locate (config->section, def->name)
                         : NULL;
    source_kind_t kind = SOURCE_DEFAULT;
    const char *text = def->default_value;

    if (config && self->flags [index]) {
        kind = SOURCE_FLAG;
        text = self->flags [index];
    }
    else
    if (env_value) {
        kind = SOURCE_ENVIRONMENT;
        text = env_value;
    }
    else
    if (key) {
        kind = SOURCE_FILE;
        text = zconfig_value (key) ? zconfig_value (key) : "";
    }

    memset (value, 0, sizeof *value);
    if (text == NULL || s_parse_value (def, text, value) == 0)
        return 0;
    s_report_invalid (self, def, kind, config ? config->path : NULL, text,
                      error, error_size);
    return -1;
}

static settings_t *
s_new (const char *program, const char *section, const setting_def_t *defs,
       int argc)
{
    settings_t *self = calloc (1, sizeof *self);
    if (self == NULL)
        return NULL;
    self->program = s_strdup (program ? program : "lapse");
    self->section = section ? s_strdup (section) : NULL;
    self->defs = defs;
    while (defs [self->count].name)
        self->count++;

    /*  One extra slot keeps calloc from being asked for zero bytes.  */
    self->values = calloc (self->count + 1, sizeof *self->values);
    self->flags = calloc (self->count + 1, sizeof *self->flags);
    self->file_texts = calloc (self->count + 1, sizeof *self->file_texts);
    self->positional = calloc ((size_t) (argc > 0 ? argc : 1),
                               sizeof *self->positional);
    if (!self->values || !self->flags || !self->file_texts
        || !self->positional)
        settings_destroy (&self);
    return self;
}

settings_t *
settings_load (const char *program,
               const char *section,
               const setting_def_t *defs,
               int argc,
               char **argv,
               char *error,
               size_t error_size)
{
    config_read_t config;
    if (section && !s_section_known (section)) {
        s_error (error, error_size, "section %s of %s is not among the "
                 "known sections of common/settings.c: add it there",
                 section, program ? program : "lapse");
        return NULL;
    }
    settings_t *self = s_new (program, section, defs, argc);
    if (self == NULL) {
        s_error (error, error_size, "out of memory loading settings");
        return NULL;
    }

    if (s_parse_args (self, argc, argv, error, error_size) != 0)
        goto failed;

    /*  --help must work whatever the environment or file holds, so only
        the defaults are read; the program prints help and exits.  */
    if (self->help) {
        for (size_t index = 0; index < self->count; index++)
            if (s_resolve (self, index, NULL, &self->values [index], error,
                           error_size) != 0)
                goto failed;
        return self;
    }

    if (s_config_read (self, &config, error, error_size) != 0)
        goto failed;
    for (size_t index = 0; index < self->count; index++) {
        if (s_resolve (self, index, &config, &self->values [index], error,
                       error_size) != 0) {
            s_config_release (&config);
            goto failed;
        }
    }
    s_remember_file (self, &config);
    self->config_path = config.path;
    config.path = NULL;
    s_config_release (&config);
    return self;

failed:
    settings_destroy (&self);
    return NULL;
}

void
settings_destroy (settings_t **self_p)
{
    if (self_p == NULL || *self_p == NULL)
        return;
    settings_t *self = *self_p;

    for (size_t index = 0; self->values && index < self->count; index++)
        s_value_clear (&self->values [index]);
    for (size_t index = 0; self->flags && index < self->count; index++)
        free (self->flags [index]);
    for (size_t index = 0; self->file_texts && index < self->count;
         index++)
        free (self->file_texts [index]);
    for (size_t index = 0; index < self->positional_count; index++)
        free (self->positional [index]);
    free (self->values);
    free (self->flags);
    free (self->file_texts);
    free (self->positional);
    free (self->program);
    free (self->section);
    free (self->config_flag);
    free (self->config_path);
    free (self);
    *self_p = NULL;
}

/*  Returns true when settings_reload reads the setting at index: it is
    reloadable and no flag fixed it at start.  */
static bool
s_reloads (settings_t *self, size_t index)
{
    return self->defs [index].reloadable && self->flags [index] == NULL;
}

/*  Moves the values of the reloadable settings read by a reload into
    self and frees the others.  Returns 1 when any value changed, else
    0.  */
static int
s_commit_reload (settings_t *self, setting_value_t *fresh)
{
    int changed = 0;

    for (size_t index = 0; index < self->count; index++) {
        if (!s_reloads (self, index)) {
            s_value_clear (&fresh [index]);
            continue;
        }
        if (!s_value_equal (&self->values [index], &fresh [index]))
            changed = 1;
        s_value_clear (&self->values [index]);
        self->values [index] = fresh [index];
    }
    return changed;
}

int
settings_reload (settings_t *self, char *error, size_t error_size)
{
    assert (self);
    config_read_t config;
    if (s_config_read (self, &config, error, error_size) != 0)
        return -1;

    setting_value_t *fresh = calloc (self->count + 1, sizeof *fresh);
    int rc = fresh ? 0 : -1;
    if (fresh == NULL)
        s_error (error, error_size, "out of memory reloading settings");

    /*  Every setting is checked, not only those a reload applies, so
        that an invalid value is reported now rather than by a failed
        start at the next restart.  */
    for (size_t index = 0; rc == 0 && index < self->count; index++)
        rc = s_resolve (self, index, &config, &fresh [index], error,
                        error_size);

    if (rc == 0) {
        rc = s_commit_reload (self, fresh);
        s_warn_ignored_changes (self, &config);
        s_remember_file (self, &config);
        free (self->config_path);
        self->config_path = config.path;
        config.path = NULL;
    }
    else
    for (size_t index = 0; fresh && index < self->count; index++)
        s_value_clear (&fresh [index]);

    free (fresh);
    s_config_release (&config);
    return rc;
}

/*  Returns the index of the setting called name, which must have one of
    the given types.  A wrong name or type is a bug in the caller, so it
    aborts at once rather than run with a made-up value.  */
static size_t
s_lookup (settings_t *self, const char *name, setting_type_t type,
          setting_type_t other_type)
{
    assert (self);
    int index = name ? s_find (self->defs, name, strlen (name)) : -1;
    if (index < 0 || (self->defs [index].type != type
                      && self->defs [index].type != other_type)) {
        log_error ("setting read with an unknown name or the wrong type",
                   "setting=%s", log_quote (name));
        abort ();
    }
    return (size_t) index;
}

int64_t
settings_duration (settings_t *self, const char *name)
{
    size_t index = s_lookup (self, name, SETTING_DURATION, SETTING_DURATION);
    return self->values [index].duration;
}

uint64_t
settings_uint (settings_t *self, const char *name)
{
    size_t index = s_lookup (self, name, SETTING_UINT, SETTING_UINT);
    return self->values [index].number;
}

bool
settings_bool (settings_t *self, const char *name)
{
    size_t index = s_lookup (self, name, SETTING_BOOL, SETTING_BOOL);
    return self->values [index].boolean;
}

log_level_t
settings_log_level (settings_t *self, const char *name)
{
    size_t index = s_lookup (self, name, SETTING_LOG_LEVEL,
                             SETTING_LOG_LEVEL);
    return (log_level_t) self->values [index].number;
}

const char *
settings_string (settings_t *self, const char *name)
{
    size_t index = s_lookup (self, name, SETTING_STRING, SETTING_ENDPOINT);
    return self->values [index].text;
}

bool
settings_help_requested (settings_t *self)
{
    assert (self);
    return self->help;
}

size_t
settings_positional_count (settings_t *self)
{
    assert (self);
    return self->positional_count;
}

const char *
settings_positional (settings_t *self, size_t index)
{
    assert (self);
    return index < self->positional_count ? self->positional [index] : NULL;
}

/*  Returns the value at index in logfmt form, formatting numbers into
    buffer.  */
static const char *
s_value_text (settings_t *self, size_t index, char *buffer, size_t size)
{
    const setting_value_t *value = &self->values [index];

    if (!value->has_value)
        return "null";
    switch (self->defs [index].type) {
        case SETTING_DURATION:
            return settings_format_duration (value->duration, buffer, size);
        case SETTING_UINT:
            snprintf (buffer, size, "%llu",
                      (unsigned long long) value->number);
            return buffer;
        case SETTING_BOOL:
            return value->boolean ? "true" : "false";
        case SETTING_STRING:
        case SETTING_ENDPOINT:
        case SETTING_LOG_LEVEL:
            break;
    }
    return log_quote (value->text);
}

void
settings_log (settings_t *self)
{
    assert (self);
    char fields [SETTING_LOG_FIELDS_MAX];
    size_t length = 0;

    s_append (fields, sizeof fields, &length, "config=%s",
              log_quote (self->config_path));
    for (size_t index = 0; index < self->count; index++) {
        char number [SETTING_NUMBER_SIZE];
        s_append (fields, sizeof fields, &length, " %s=%s",
                  self->defs [index].name,
                  s_value_text (self, index, number, sizeof number));
    }
    log_info ("effective configuration", "%s", fields);
}

static const char *
s_placeholder (setting_type_t type)
{
    switch (type) {
        case SETTING_DURATION:
            return " DURATION";
        case SETTING_UINT:
            return " NUMBER";
        case SETTING_STRING:
            return " TEXT";
        case SETTING_BOOL:
            return "[=BOOL]";
        case SETTING_ENDPOINT:
            return " ENDPOINT";
        case SETTING_LOG_LEVEL:
            return " LEVEL";
    }
    return "";
}

static void
s_print_setting_help (const setting_def_t *def)
{
    char range [2 * SETTING_NUMBER_SIZE + 32] = "";
    if (def->type == SETTING_DURATION || def->type == SETTING_UINT)
        s_describe_range (def, range, sizeof range);

    printf ("  --%s%s  (", def->name, s_placeholder (def->type));
    if (def->default_value)
        printf ("default %s", def->default_value);
    else
        printf ("no default");
    printf ("%s%s)\n", range [0] ? "," : "", range);
    printf ("      %s%s\n", def->help ? def->help : "",
            def->reloadable ? " (reloaded on SIGHUP)" : "");
}

void
settings_print_help (const setting_def_t *defs, const char *usage)
{
    printf ("%s\n\noptions:\n", usage);
    for (size_t index = 0; defs [index].name; index++)
        s_print_setting_help (&defs [index]);
    printf ("  --config PATH\n"
            "      Config file to read, in ZPL; LAPSE_CONFIG also names "
            "it.\n"
            "  --help\n"
            "      Print this help and exit.\n"
            "\n"
            "Each option NAME can also be set by the environment variable "
            "LAPSE_NAME\n"
            "(upper case, '_' for '-') or by the key NAME in this "
            "program's section of\n"
            "the config file.  Flags take precedence over the environment, "
            "and the\n"
            "environment over the file.  Durations take a unit: ms, s, m, "
            "h or d.\n");
}
