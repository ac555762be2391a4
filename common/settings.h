/*  settings.h: typed settings from flags, environment, file and defaults.

    Each program declares a table of setting_def_t.  A setting named
    "stale-after" is read, in this order of precedence, from the flag
    --stale-after VALUE (or --stale-after=VALUE), the environment variable
    LAPSE_STALE_AFTER, the key "stale-after" under the program's section
    of the config file (czmq ZPL format, see deploy/lapse.conf.sample),
    and the table's default.  The config file is named by --config PATH
    or LAPSE_CONFIG; without either, no file is read.  It must be a
    regular file of at most 1 MiB.  Every program reads the same file,
    so it may hold the section of any known program (the list is in
    settings.c), and nothing else at the top level.

    Durations take a unit: "500ms", "10s", "30m", "1h", "2d".  An invalid
    value is reported with the setting's name, where the value came from,
    the value itself and what is allowed.
*/
#ifndef LAPSE_SETTINGS_H
#define LAPSE_SETTINGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "log.h"

typedef enum {
    SETTING_DURATION,   /* milliseconds; min and max in milliseconds,
                           inclusive; max 0 = no upper limit */
    SETTING_UINT,       /* unsigned integer; min and max inclusive,
                           max 0 = no upper limit */
    SETTING_STRING,     /* any string; min and max are its shortest and
                           longest length in bytes, max 0 = 4096 */
    SETTING_BOOL,       /* true/false, yes/no, on/off, 1/0; a bare flag
                           on the command line means true */
    SETTING_ENDPOINT,   /* a ZeroMQ endpoint: tcp://HOST:PORT with a port
                           from 1 to 65535 or *, ipc://PATH with a path
                           short enough for a unix socket (107 bytes on
                           Linux), or inproc://NAME; max as for
                           SETTING_STRING, min unused */
    SETTING_LOG_LEVEL   /* debug, info, warn or error, read with
                           settings_log_level; min and max unused */
} setting_type_t;

typedef struct {
    const char *name;           /* "stale-after" */
    setting_type_t type;
    const char *default_value;  /* as text, parsed like any other source;
                                   NULL means the setting has no value
                                   unless one is given */
    uint64_t min;
    uint64_t max;
    bool reloadable;            /* re-read by settings_reload */
    const char *help;           /* one line for --help: what it sets */
} setting_def_t;

/*  Marks the end of a setting table.  */
#define SETTING_END { NULL, SETTING_STRING, NULL, 0, 0, false, NULL }

typedef struct settings_t settings_t;

/*  Loads every setting in defs for the program called program, whose
    config file section is section.  argv may contain positional
    arguments, which are kept in order (see settings_positional); "--"
    ends the flags.  --help is recognised and sets settings_help_requested;
    then only the defaults are read, so that help works even when the
    environment or config file is invalid.
    Returns NULL on any invalid flag or value, unknown flag, unreadable
    or invalid config file, or a section missing from the known list,
    with a message of at most error_size bytes in error.
    defs must outlive the returned object.  */
settings_t *
settings_load (const char *program,
               const char *section,
               const setting_def_t *defs,
               int argc,
               char **argv,
               char *error,
               size_t error_size);

/*  Destroys the settings and sets *self_p to NULL.  Accepts NULL.  */
void
settings_destroy (settings_t **self_p);

/*  Re-reads the environment and config file and checks every setting
    as settings_load does, then applies the values of the settings marked
    reloadable; a flag given at start still wins.  Returns 1 when any
    reloadable value changed, 0 when none did, or -1 on an invalid value
    of any setting, reloadable or not, or an invalid file, with the
    message in error and every value left as it was.
    A config file value that changed since the last read but cannot take
    effect is logged as a warning: msg="configuration value overridden"
    when a flag or environment variable wins over it, and
    msg="configuration value needs a restart" when the setting is not
    reloadable.  */
int
settings_reload (settings_t *self, char *error, size_t error_size);

/*  Accessors.  The name must be in the table with the matching type;
    anything else is a programming error and aborts.  */
int64_t
settings_duration (settings_t *self, const char *name);
uint64_t
settings_uint (settings_t *self, const char *name);
bool
settings_bool (settings_t *self, const char *name);
log_level_t
settings_log_level (settings_t *self, const char *name);

/*  Returns the string or endpoint value, or NULL when the setting has no
    default and was not given.  The pointer stays valid until the next
    settings_reload or settings_destroy.  */
const char *
settings_string (settings_t *self, const char *name);

/*  Returns true when --help was given.  */
bool
settings_help_requested (settings_t *self);

/*  Prints usage and one entry per setting (flag, value type, default,
    range, help, and whether SIGHUP reloads it) to stdout.  usage is the
    first line, for example "usage: lapsectl [options] COMMAND [ARGS]".  */
void
settings_print_help (const setting_def_t *defs, const char *usage);

size_t
settings_positional_count (settings_t *self);
const char *
settings_positional (settings_t *self, size_t index);

/*  Logs the effective configuration as one info line,
    msg="effective configuration", one key per setting, with durations
    in their text form.  */
void
settings_log (settings_t *self);

/*  Parses a duration with a unit (ms, s, m, h, d) into milliseconds.
    Returns 0, or -1 when text is not a whole number followed by one of
    those units, or overflows.  */
int
settings_parse_duration (const char *text, int64_t *milliseconds);

/*  Formats milliseconds as the largest unit that divides them exactly,
    for example 1800000 as "30m".  Returns buffer.  */
char *
settings_format_duration (int64_t milliseconds, char *buffer, size_t size);

#endif
