/*  activity.c: the in-memory activity table behind the touch path.

    An open-addressing hash table with linear probing, sized to a power
    of two and kept at most half full.  Each slot holds a pointer to its
    entry and 32 bits of the id's hash, so that a probe past another id
    rarely has to read that entry.  Removal shifts later entries of the
    same run back instead of leaving tombstones, so lookups never slow
    down as clients come and go.  Compared with czmq's zhashx, this
    stores the id once, inside its entry, and skips a node allocation
    per client.

    Pending entries (activity ahead of the store) are also listed in an
    array, each entry knowing its slot there, so that adding and
    removing a pending entry is O(1) and a flush visits only pending
    entries.
*/
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "activity.h"

#define NOT_PENDING UINT32_MAX
#define INITIAL_CAPACITY 1024

typedef struct {
    int64_t activity_ms;        /* newest activity seen */
    int64_t stored_ms;          /* activity as last written to the store */
    uint32_t pending_slot;      /* index in pending, or NOT_PENDING */
    uint8_t id_len;
    char id[];                  /* NUL-terminated */
} entry_t;

struct activity_t {
    entry_t **slots;            /* NULL marks an empty slot */
    uint32_t *tags;             /* high half of each slot's id hash */
    size_t capacity;            /* a power of two */
    size_t count;
    entry_t **pending;
    size_t pending_count;
    size_t pending_capacity;
};

static uint64_t
s_hash (const char *id, size_t id_len)
{
    return XXH3_64bits (id, id_len);
}

static uint32_t
s_tag (uint64_t hash)
{
    return (uint32_t) (hash >> 32);
}

static int
s_allocate_slots (activity_t *self, size_t capacity)
{
    self->slots = calloc (capacity, sizeof (entry_t *));
    self->tags = calloc (capacity, sizeof (uint32_t));
    if (!self->slots || !self->tags) {
        free (self->slots);
        free (self->tags);
        return -1;
    }
    self->capacity = capacity;
    return 0;
}

activity_t *
activity_new (void)
{
    activity_t *self = calloc (1, sizeof (*self));
    if (!self)
        return NULL;

    if (s_allocate_slots (self, INITIAL_CAPACITY) != 0) {
        free (self);
        return NULL;
    }
    return self;
}

void
activity_destroy (activity_t **self_p)
{
    if (!self_p || !*self_p)
        return;

    activity_t *self = *self_p;
    for (size_t slot = 0; slot < self->capacity; slot++)
        free (self->slots[slot]);
    free (self->slots);
    free (self->tags);
    free (self->pending);
    free (self);
    *self_p = NULL;
}

/*  Returns the slot holding id, or the empty slot where it would go.  */
static size_t
s_find_slot (const activity_t *self, const char *id, size_t id_len,
             uint64_t hash)
{
    size_t mask = self->capacity - 1;
    uint32_t tag = s_tag (hash);
    for (size_t slot = hash & mask;; slot = (slot + 1) & mask) {
        entry_t *entry = self->slots[slot];
        if (!entry)
            return slot;
        if (self->tags[slot] == tag && entry->id_len == id_len
            && memcmp (entry->id, id, id_len) == 0)
            return slot;
    }
}

static entry_t *
s_lookup (const activity_t *self, const char *id, size_t id_len)
{
    uint64_t hash = s_hash (id, id_len);
    return self->slots[s_find_slot (self, id, id_len, hash)];
}

static void
s_place (activity_t *self, entry_t *entry, uint64_t hash)
{
    size_t slot = s_find_slot (self, entry->id, entry->id_len, hash);
    self->slots[slot] = entry;
    self->tags[slot] = s_tag (hash);
}

static int
s_grow (activity_t *self)
{
    entry_t **old_slots = self->slots;
    uint32_t *old_tags = self->tags;
    size_t old_capacity = self->capacity;
    if (s_allocate_slots (self, old_capacity * 2) != 0) {
        self->slots = old_slots;
        self->tags = old_tags;
        return -1;
    }

    for (size_t slot = 0; slot < old_capacity; slot++) {
        entry_t *entry = old_slots[slot];
        if (entry)
            s_place (self, entry, s_hash (entry->id, entry->id_len));
    }
    free (old_slots);
    free (old_tags);
    return 0;
}

static int
s_pending_add (activity_t *self, entry_t *entry)
{
    if (entry->pending_slot != NOT_PENDING)
        return 0;

    if (self->pending_count == self->pending_capacity) {
        size_t capacity = self->pending_capacity ? self->pending_capacity * 2
                                                 : 1024;
        entry_t **grown = realloc (self->pending,
                                   capacity * sizeof (*grown));
        if (!grown)
            return -1;
        self->pending = grown;
        self->pending_capacity = capacity;
    }
    entry->pending_slot = (uint32_t) self->pending_count;
    self->pending[self->pending_count++] = entry;
    return 0;
}

static void
s_pending_remove (activity_t *self, entry_t *entry)
{
    if (entry->pending_slot == NOT_PENDING)
        return;

    entry_t *last = self->pending[--self->pending_count];
    self->pending[entry->pending_slot] = last;
    last->pending_slot = entry->pending_slot;
    entry->pending_slot = NOT_PENDING;
}

int
activity_add (activity_t *self, const char *id, int64_t stored_ms)
{
    size_t id_len = strlen (id);
    if (id_len > MSG_ID_MAX)
        return -1;

    uint64_t hash = s_hash (id, id_len);
    entry_t *entry = self->slots[s_find_slot (self, id, id_len, hash)];
    if (entry) {
        if (stored_ms > entry->stored_ms)
            entry->stored_ms = stored_ms;
        if (stored_ms > entry->activity_ms)
            entry->activity_ms = stored_ms;
        if (entry->activity_ms <= entry->stored_ms)
            s_pending_remove (self, entry);
        return 0;
    }

    //  Kept at most half full, so that a miss ends in a short run
    if ((self->count + 1) * 2 > self->capacity && s_grow (self) != 0)
        return -1;

    entry = malloc (sizeof (*entry) + id_len + 1);
    if (!entry)
        return -1;
    entry->activity_ms = stored_ms;
    entry->stored_ms = stored_ms;
    entry->pending_slot = NOT_PENDING;
    entry->id_len = (uint8_t) id_len;
    memcpy (entry->id, id, id_len + 1);

    s_place (self, entry, hash);
    self->count++;
    return 0;
}

/*  Empties slot and moves later entries of its run back, each to the
    first free slot at or after its home, so every entry stays reachable
    from its home without tombstones.  */
static void
s_remove_slot (activity_t *self, size_t slot)
{
    size_t mask = self->capacity - 1;
    size_t hole = slot;
    for (size_t next = (slot + 1) & mask; self->slots[next];
         next = (next + 1) & mask) {
        entry_t *entry = self->slots[next];
        size_t home = s_hash (entry->id, entry->id_len) & mask;

        //  The entry may fill the hole unless its home lies cyclically
        //  after the hole, up to its own slot
        bool home_after_hole = hole <= next ? (home > hole && home <= next)
                                            : (home > hole || home <= next);
        if (home_after_hole)
            continue;

        self->slots[hole] = entry;
        self->tags[hole] = self->tags[next];
        hole = next;
    }
    self->slots[hole] = NULL;
    self->tags[hole] = 0;
}

void
activity_remove (activity_t *self, const char *id)
{
    size_t id_len = strlen (id);
    uint64_t hash = s_hash (id, id_len);
    size_t slot = s_find_slot (self, id, id_len, hash);
    entry_t *entry = self->slots[slot];
    if (!entry)
        return;

    s_pending_remove (self, entry);
    s_remove_slot (self, slot);
    self->count--;
    free (entry);
}

int
activity_touch (activity_t *self, const char *id, size_t id_len,
                int64_t now_ms)
{
    if (id_len > MSG_ID_MAX)
        return -1;

    entry_t *entry = s_lookup (self, id, id_len);
    if (!entry)
        return -1;

    if (now_ms > entry->activity_ms) {
        entry->activity_ms = now_ms;
        //  On allocation failure the touch stays in memory only; the
        //  next touch of the same client retries the listing
        s_pending_add (self, entry);
    }
    return 0;
}

int64_t
activity_get (activity_t *self, const char *id)
{
    entry_t *entry = s_lookup (self, id, strlen (id));
    return entry ? entry->activity_ms : -1;
}

size_t
activity_count (activity_t *self)
{
    return self->count;
}

size_t
activity_pending_count (activity_t *self)
{
    return self->pending_count;
}

size_t
activity_collect (activity_t *self, int64_t granularity_ms,
                  int64_t cutoff_ms, store_activity_t *updates, size_t max)
{
    size_t filled = 0;
    for (size_t slot = 0; slot < self->pending_count && filled < max;
         slot++) {
        entry_t *entry = self->pending[slot];
        bool moved_enough =
            entry->activity_ms - entry->stored_ms >= granularity_ms;
        bool at_risk = entry->stored_ms < cutoff_ms;
        if (!moved_enough && !at_risk)
            continue;

        updates[filled].id = entry->id;
        updates[filled].last_activity_ms = entry->activity_ms;
        filled++;
    }
    return filled;
}

void
activity_mark_stored (activity_t *self, const store_activity_t *updates,
                      size_t count)
{
    for (size_t index = 0; index < count; index++) {
        entry_t *entry = s_lookup (self, updates[index].id,
                                   strlen (updates[index].id));
        if (!entry)
            continue;

        if (updates[index].last_activity_ms > entry->stored_ms)
            entry->stored_ms = updates[index].last_activity_ms;
        if (entry->activity_ms <= entry->stored_ms)
            s_pending_remove (self, entry);
    }
}
