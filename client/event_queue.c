/*  event_queue.c: a sorted array of owned items with a moving start, so
    that taking the first item is O(1) and inserting in order at the end,
    the usual case for live events, moves nothing.
*/
#include <stdlib.h>
#include <string.h>

#include "event_queue.h"

#define QUEUE_INITIAL_CAPACITY 64

struct event_queue_t {
    queue_item_t **items;
    size_t start;               /* index of the first item */
    size_t count;
    size_t capacity;
};

event_queue_t *
event_queue_new (void)
{
    event_queue_t *self = (event_queue_t *) calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->items = calloc (QUEUE_INITIAL_CAPACITY, sizeof *self->items);
    if (!self->items) {
        free (self);
        return NULL;
    }
    self->capacity = QUEUE_INITIAL_CAPACITY;
    return self;
}

void
event_queue_destroy (event_queue_t **self_p)
{
    if (!self_p || !*self_p)
        return;

    event_queue_t *self = *self_p;
    for (size_t index = 0; index < self->count; index++)
        free (self->items[self->start + index]);
    free (self->items);
    free (self);
    *self_p = NULL;
}

size_t
event_queue_size (event_queue_t *self)
{
    return self->count;
}

queue_item_t *
event_queue_at (event_queue_t *self, size_t index)
{
    return index < self->count ? self->items[self->start + index] : NULL;
}

/*  Returns the position (relative to start) of the first item whose seq
    is not below seq.  */
static size_t
s_lower_bound (event_queue_t *self, uint64_t seq)
{
    size_t low = 0;
    size_t high = self->count;

    /*  Live events mostly arrive in order, so check the end first.  */
    if (high > 0 && self->items[self->start + high - 1]->event.seq < seq)
        return high;
    while (low < high) {
        size_t middle = low + (high - low) / 2;
        if (self->items[self->start + middle]->event.seq < seq)
            low = middle + 1;
        else
            high = middle;
    }
    return low;
}

/*  Makes room for one more item at the end of the array.  */
static int
s_reserve (event_queue_t *self)
{
    if (self->start + self->count < self->capacity)
        return 0;

    if (self->start > 0) {
        memmove (self->items, self->items + self->start,
                 self->count * sizeof *self->items);
        self->start = 0;
        return 0;
    }
    size_t capacity = self->capacity * 2;
    queue_item_t **items =
        realloc (self->items, capacity * sizeof *self->items);
    if (!items)
        return -1;
    self->items = items;
    self->capacity = capacity;
    return 0;
}

/*  Takes ownership of item and puts it in seq order.  */
static int
s_insert_item (event_queue_t *self, queue_item_t *item)
{
    size_t position = s_lower_bound (self, item->event.seq);
    if (position < self->count
        && self->items[self->start + position]->event.seq
               == item->event.seq) {
        free (item);
        return 0;
    }
    if (s_reserve (self) == -1) {
        free (item);
        return -1;
    }

    queue_item_t **at = self->items + self->start + position;
    memmove (at + 1, at, (self->count - position) * sizeof *at);
    *at = item;
    self->count++;
    return 1;
}

int
event_queue_insert (event_queue_t *self, const msg_event_t *event)
{
    if (event->id.len > MSG_ID_MAX || event->node.len > MSG_NODE_MAX)
        return -1;

    queue_item_t *item = (queue_item_t *) calloc (1, sizeof *item);
    if (!item)
        return -1;
    item->event = *event;
    memcpy (item->id, event->id.ptr, event->id.len);
    memcpy (item->node, event->node.ptr, event->node.len);
    item->event.id.ptr = item->id;
    item->event.node.ptr = item->node;
    return s_insert_item (self, item);
}

int
event_queue_insert_gap (event_queue_t *self, uint64_t first, uint64_t last)
{
    queue_item_t *item = (queue_item_t *) calloc (1, sizeof *item);
    if (!item)
        return -1;
    item->is_gap = true;
    item->event.seq = first;
    item->gap_last = last;
    item->event.id.ptr = item->id;
    item->event.node.ptr = item->node;
    return s_insert_item (self, item);
}

queue_item_t *
event_queue_pop (event_queue_t *self)
{
    if (self->count == 0)
        return NULL;

    queue_item_t *item = self->items[self->start];
    self->start++;
    self->count--;
    if (self->count == 0)
        self->start = 0;
    return item;
}

void
event_queue_drop_range (event_queue_t *self, uint64_t first, uint64_t last)
{
    size_t from = s_lower_bound (self, first);
    size_t to = from;
    while (to < self->count && self->items[self->start + to]->event.seq <= last)
        free (self->items[self->start + to++]);
    if (to == from)
        return;

    queue_item_t **at = self->items + self->start;
    memmove (at + from, at + to, (self->count - to) * sizeof *at);
    self->count -= to - from;
}
