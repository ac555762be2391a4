/*  fuzz_duration.c: settings_parse_duration on any text, as it comes
    from flags, LAPSE_* variables and config files.  A parsed duration
    must be a whole number and a unit, and must survive
    settings_format_duration and a second parse unchanged.  See fuzz.h.  */

#include "fuzz.h"
#include "settings.h"

#include <stdlib.h>
#include <string.h>

/*  Returns true when text is one or more digits then a unit.  */
static bool
s_has_duration_form (const char *text)
{
    static const char *const units[] = { "ms", "s", "m", "h", "d" };
    size_t digits = strspn (text, "0123456789");

    if (digits == 0)
        return false;
    for (size_t index = 0; index < sizeof units / sizeof units[0]; index++)
        if (strcmp (text + digits, units[index]) == 0)
            return true;
    return false;
}

/*  Checks a duration that parsed: its form and its round trip through
    settings_format_duration.  */
static void
s_check_parsed (const char *text, int64_t milliseconds)
{
    if (!s_has_duration_form (text))
        fuzz_fail ("\"%s\" parsed, but it is not digits and a unit", text);
    if (milliseconds < 0)
        fuzz_fail ("\"%s\" parsed to %lld ms", text, (long long) milliseconds);

    char formatted[32];
    int64_t again = -1;
    settings_format_duration (milliseconds, formatted, sizeof formatted);
    if (settings_parse_duration (formatted, &again) != 0)
        fuzz_fail ("%lld ms formats as \"%s\", which does not parse",
                   (long long) milliseconds, formatted);
    if (again != milliseconds)
        fuzz_fail ("%lld ms formats as \"%s\", which parses to %lld ms",
                   (long long) milliseconds, formatted, (long long) again);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    /*  The parser takes a C string, so the input ends at its first NUL
        byte, as a value from argv, the environment or zconfig would.  */
    char *text = malloc (size + 1);
    if (!text)
        fuzz_fail ("out of memory copying %zu bytes", size);
    memcpy (text, data, size);
    text[size] = '\0';

    int64_t milliseconds = -1;
    if (settings_parse_duration (text, &milliseconds) == 0)
        s_check_parsed (text, milliseconds);
    free (text);
    return 0;
}
