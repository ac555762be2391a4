/*  histogram.c: log-linear buckets, see histogram.h.  */
#include <string.h>

#include "histogram.h"

#define SUB_BITS 6
#define SUB_COUNT (1u << SUB_BITS)
#define LINEAR_LIMIT (2u * SUB_COUNT)

static uint32_t
s_index (uint64_t value)
{
    if (value < LINEAR_LIMIT)
        return (uint32_t) value;

    //  Bucket width doubles with each power of two past the linear part
    uint32_t msb = 63u - (uint32_t) __builtin_clzll (value);
    uint32_t shift = msb - SUB_BITS;
    uint32_t index = ((shift + 1) << SUB_BITS)
                     + (uint32_t) ((value >> shift) - SUB_COUNT);
    return index < HISTOGRAM_BUCKETS ? index : HISTOGRAM_BUCKETS - 1;
}

/*  The middle of bucket index, the inverse of s_index.  */
static uint64_t
s_value (uint32_t index)
{
    if (index < LINEAR_LIMIT)
        return index;

    uint32_t shift = (index >> SUB_BITS) - 1;
    uint64_t low = (uint64_t) ((index & (SUB_COUNT - 1)) + SUB_COUNT)
                   << shift;
    return low + ((1ull << shift) >> 1);
}

void
histogram_reset (histogram_t *self)
{
    memset (self, 0, sizeof (*self));
}

void
histogram_record (histogram_t *self, uint64_t value)
{
    self->counts[s_index (value)]++;
    self->total++;
    if (value > self->max)
        self->max = value;
}

uint64_t
histogram_percentile (const histogram_t *self, double percentile)
{
    if (self->total == 0)
        return 0;
    if (percentile >= 100.0)
        return self->max;

    //  The rank of the value asked for, counting from 1, rounded up
    double exact = percentile / 100.0 * (double) self->total;
    uint64_t rank = (uint64_t) exact;
    if ((double) rank < exact || rank == 0)
        rank++;
    uint64_t seen = 0;
    for (uint32_t index = 0; index < HISTOGRAM_BUCKETS; index++) {
        seen += self->counts[index];
        if (seen >= rank) {
            uint64_t value = s_value (index);
            return value < self->max ? value : self->max;
        }
    }
    return self->max;
}
