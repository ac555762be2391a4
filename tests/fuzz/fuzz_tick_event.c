/*  fuzz_tick_event.c: msg_decode on ticks, as the registry
    receives them from schedulers, and on the eviction events it publishes.
    See fuzz.h.  */

#include "fuzz.h"

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    return fuzz_message_round_trip (data, size, FUZZ_FAMILY_PUBLISHED);
}
