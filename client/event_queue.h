/*  event_queue.h: events waiting for delivery, in seq order, each seq
    once.  Internal to liblapse.

    An item is a copy of one event, or a gap marker standing for the
    seqs from event.seq to gap_last that the registry no longer retains.
*/
#ifndef LAPSE_EVENT_QUEUE_H
#define LAPSE_EVENT_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "protocol.h"

typedef struct {
    msg_event_t event;          /* id and node point into the arrays below */
    bool is_gap;
    uint64_t gap_last;          /* for a gap marker: the last lost seq */
    char id[MSG_ID_MAX + 1];
    char node[MSG_NODE_MAX + 1];
} queue_item_t;

typedef struct event_queue_t event_queue_t;

/*  Creates an empty queue.  Returns NULL when out of memory.  */
event_queue_t *
event_queue_new (void);

/*  Frees every item and the queue, and sets *self_p to NULL.  Accepts
    NULL.  */
void
event_queue_destroy (event_queue_t **self_p);

size_t
event_queue_size (event_queue_t *self);

/*  Returns the item at index (0 is the lowest seq), or NULL past the
    end.  */
queue_item_t *
event_queue_at (event_queue_t *self, size_t index);

/*  Inserts a copy of event in seq order.  Returns 1 when inserted, 0
    when an item with the same seq is queued already, or -1 when the id
    or node is too long to copy or memory runs out.  */
int
event_queue_insert (event_queue_t *self, const msg_event_t *event);

/*  Inserts a marker for the lost seqs first to last.  Returns 1, 0 or -1
    like event_queue_insert.  */
int
event_queue_insert_gap (event_queue_t *self, uint64_t first, uint64_t last);

/*  Removes the item with the lowest seq and returns it; the caller frees
    it with free.  Returns NULL when the queue is empty.  */
queue_item_t *
event_queue_pop (event_queue_t *self);

/*  Removes and frees every item whose seq is from first to last.  */
void
event_queue_drop_range (event_queue_t *self, uint64_t first, uint64_t last);

#endif
