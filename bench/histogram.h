/*  histogram.h: a latency histogram for the benchmark tools.

    Values are nanoseconds.  Below 128 ns every value has a bucket of its
    own; above, each power of two is cut into 64 buckets, so a reported
    percentile is within 1.6 % of the true value, up to about 9 hours.
    Recording is one index computation and one increment, cheap enough
    to run on every reply of a load generator.
*/
#ifndef LAPSE_BENCH_HISTOGRAM_H
#define LAPSE_BENCH_HISTOGRAM_H

#include <stdint.h>

#define HISTOGRAM_BUCKETS 4096

typedef struct {
    uint64_t counts[HISTOGRAM_BUCKETS];
    uint64_t total;
    uint64_t max;
} histogram_t;

/*  Empties the histogram.  */
void
histogram_reset (histogram_t *self);

/*  Records one value in nanoseconds.  */
void
histogram_record (histogram_t *self, uint64_t value);

/*  Returns the value at percentile (0 to 100): the middle of the bucket
    holding it, or the exact maximum for 100.  Returns 0 when empty.  */
uint64_t
histogram_percentile (const histogram_t *self, double percentile);

#endif
