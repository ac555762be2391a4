/*  fuzz_results.c: msg_decode on the registry's replies,
    results of every command and errors, as a client receives them.
    See fuzz.h.  */

#include "fuzz.h"

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    return fuzz_message_round_trip (data, size, FUZZ_FAMILY_REPLIES);
}
