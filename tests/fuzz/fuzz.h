/*  fuzz.h: what the fuzz targets share.

    Each fuzz_*.c defines LLVMFuzzerTestOneInput, the libFuzzer entry
    point.  With -DLAPSE_FUZZ=ON and clang it is linked with libFuzzer;
    in every build it is also linked with replay.c, whose main() feeds it
    the files of the seed corpus and of tests/fuzz/regressions/, so that
    each input that once crashed a target is replayed by CTest.

    A target reports a finding by aborting (fuzz_fail), as a sanitizer
    does, so libFuzzer and the replay driver both see it as a crash.
    The protocol targets' libFuzzer builds also link mutate.c, which
    changes single msgpack values to the edges of their rules.
*/
#ifndef LAPSE_FUZZ_H
#define LAPSE_FUZZ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "protocol.h"

/*  The libFuzzer entry point.  Returns 0, or -1 for an input that must
    not be added to the corpus (libFuzzer's rule), for example a message
    of a type outside the target's family.  */
int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

/*  Prints "fuzz: " and the formatted text to stderr, then aborts.  */
void
fuzz_fail (const char *format, ...)
    __attribute__ ((format (printf, 1, 2), noreturn));

/*  Message families, one per protocol target.  */
typedef enum {
    FUZZ_FAMILY_ANY,        /* every message type */
    FUZZ_FAMILY_COMMANDS,   /* register through events */
    FUZZ_FAMILY_REPLIES,    /* result and error */
    FUZZ_FAMILY_PUBLISHED   /* tick and event */
} fuzz_family_t;

/*  Returns true when type belongs to family.  MSG_TYPE_COUNT, the type
    of a body whose type could not be read, belongs to every family.  */
bool
fuzz_family_has (fuzz_family_t family, msg_type_t type);

/*  Decodes data with msg_decode and checks what came back.  A failure
    must carry an error code and a message.  A decoded message must
    encode, decode again to an equal message, and encode again to the
    same bytes.  Aborts through fuzz_fail when a check fails.  Returns
    0, or -1 when the body's type is outside family.  */
int
fuzz_message_round_trip (const uint8_t *data, size_t size,
                         fuzz_family_t family);

#endif
