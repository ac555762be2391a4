/*  fuzz_message.c: msg_decode on any body, with a seed corpus of
    every message type, so that inputs may move from one type to another.
    See fuzz.h.  */

#include "fuzz.h"

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    return fuzz_message_round_trip (data, size, FUZZ_FAMILY_ANY);
}
