/*  fuzz_commands.c: msg_decode on command bodies, register
    through events, as a client sends them to the registry's ROUTER.
    See fuzz.h.  */

#include "fuzz.h"

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    return fuzz_message_round_trip (data, size, FUZZ_FAMILY_COMMANDS);
}
