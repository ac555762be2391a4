/*  activity.c: the in-memory activity table behind the touch path.

    An open-addressing hash table with linear probing, sized to a power
    of two and kept at most half full.  Each slot is one 64-bit word
    that holds 32 bits of the id's hash and a 32-bit reference to its
    entry, so a probe past another id rarely has to read that entry.
    Removal shifts later entries of the same run back instead of leaving
    tombstones, so lookups never slow down as clients come and go.

    Entries live in an arena of 1 MiB blocks instead of one malloc each.
    An entry takes its header and NUL-terminated id rounded up to 8
    bytes (48 bytes for a 19-byte id, where glibc malloc used a 64-byte
    chunk).  A removed entry goes on a free list for its size, and the
    next entry of that size reuses it, so churn among ids of similar
    length does not grow the arena.  Blocks are freed only with the
    table, so the arena stays at its largest size after mass removals.

    Pending entries (activity ahead of the store) are also listed in an
    array of references, each entry knowing its slot there, so that
    adding and removing a pending entry is O(1) and a flush visits only
    pending entries.
*/
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "activity.h"

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ARENA_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define ARENA_ASAN 1
#endif

//  Freed entries are poisoned under AddressSanitizer, so an id used
//  after its entry was removed is still reported
#ifdef ARENA_ASAN
#include <sanitizer/asan_interface.h>
#define ARENA_POISON(address, size) ASAN_POISON_MEMORY_REGION (address, size)
#define ARENA_UNPOISON(address, size)                                        \
    ASAN_UNPOISON_MEMORY_REGION (address, size)
#else
#define ARENA_POISON(address, size) ((void) (address), (void) (size))
#define ARENA_UNPOISON(address, size) ((void) (address), (void) (size))
#endif

#define NOT_PENDING UINT32_MAX
#define INITIAL_CAPACITY 1024

//  An entry reference is a block number (from 1, so that 0 means no
//  entry) above the entry's offset in that block, counted in units
#define UNIT_SIZE 8
#define OFFSET_BITS 17
#define OFFSET_MASK ((UINT32_C (1) << OFFSET_BITS) - 1)
#define BLOCK_UNITS (UINT32_C (1) << OFFSET_BITS)
#define BLOCK_SIZE ((size_t) BLOCK_UNITS * UNIT_SIZE)
#define MAX_BLOCKS ((UINT32_C (1) << (32 - OFFSET_BITS)) - 1)

typedef struct {
    int64_t activity_ms;        /* newest activity seen */
    int64_t stored_ms;          /* activity as last written to the store */
    uint32_t pending_slot;      /* index in pending, or NOT_PENDING; in a
                                   free entry, the next free reference */
    uint8_t id_len;
    char id[];                  /* NUL-terminated */
} entry_t;

//  Units in an entry for the longest id, which sizes the free lists
#define MAX_ENTRY_UNITS                                                      \
    ((offsetof (entry_t, id) + MSG_ID_MAX + 1 + UNIT_SIZE - 1) / UNIT_SIZE)

struct activity_t {
    uint64_t *slots;            /* tag << 32 | reference; 0 is empty */
    size_t capacity;            /* a power of two */
    size_t count;
    uint32_t *pending;          /* references of pending entries */
    size_t pending_count;
    size_t pending_capacity;

    //  The arena: blocks[0] is unused, so block numbers start at 1
    uint64_t **blocks;
    uint32_t block_count;       /* including the unused blocks[0] */
    uint32_t block_capacity;
    uint32_t units_used;        /* in the newest block */
    uint32_t free_lists[MAX_ENTRY_UNITS + 1];   /* by entry size in units */
    uint64_t layout;            /* counts removals and growths */
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

static uint32_t
s_slot_ref (uint64_t slot)
{
    return (uint32_t) slot;
}

static entry_t *
s_entry (const activity_t *self, uint32_t ref)
{
    return (entry_t *) (self->blocks[ref >> OFFSET_BITS]
                        + (ref & OFFSET_MASK));
}

static uint32_t
s_entry_units (size_t id_len)
{
    return (uint32_t) ((offsetof (entry_t, id) + id_len + 1 + UNIT_SIZE - 1)
                       / UNIT_SIZE);
}

/*  Puts the entry at ref, of size units, on the free list for its size.  */
static void
s_entry_free (activity_t *self, uint32_t ref, uint32_t units)
{
    entry_t *entry = s_entry (self, ref);
    entry->pending_slot = self->free_lists[units];
    self->free_lists[units] = ref;
    ARENA_POISON (entry, (size_t) units * UNIT_SIZE);
}

/*  Starts a new arena block.  The unused end of the newest block, too
    short for the entry being allocated, joins the free list of its
    size.  Returns 0, or -1 when out of memory or references.  */
static int
s_block_add (activity_t *self)
{
    if (self->block_count == MAX_BLOCKS + 1)
        return -1;

    if (self->block_count == self->block_capacity) {
        uint32_t capacity = self->block_capacity * 2;
        uint64_t **grown = realloc (self->blocks,
                                    capacity * sizeof (*grown));
        if (!grown)
            return -1;
        self->blocks = grown;
        self->block_capacity = capacity;
    }
    uint64_t *block = malloc (BLOCK_SIZE);
    if (!block)
        return -1;
    ARENA_POISON (block, BLOCK_SIZE);

    uint32_t tail_units = BLOCK_UNITS - self->units_used;
    if (self->block_count > 1 && tail_units >= s_entry_units (0)) {
        uint32_t tail_ref = (self->block_count - 1) << OFFSET_BITS
                          | self->units_used;
        ARENA_UNPOISON (s_entry (self, tail_ref), sizeof (entry_t));
        s_entry_free (self, tail_ref, tail_units);
    }
    self->blocks[self->block_count++] = block;
    self->units_used = 0;
    return 0;
}

/*  Returns a reference to units of unused arena, or 0 when out of
    memory.  */
static uint32_t
s_entry_allocate (activity_t *self, uint32_t units)
{
    uint32_t ref = self->free_lists[units];
    if (ref) {
        entry_t *entry = s_entry (self, ref);
        ARENA_UNPOISON (entry, (size_t) units * UNIT_SIZE);
        self->free_lists[units] = entry->pending_slot;
        return ref;
    }

    if ((self->block_count == 1 || self->units_used + units > BLOCK_UNITS)
        && s_block_add (self) != 0)
        return 0;

    ref = (self->block_count - 1) << OFFSET_BITS | self->units_used;
    self->units_used += units;
    ARENA_UNPOISON (s_entry (self, ref), (size_t) units * UNIT_SIZE);
    return ref;
}

static int
s_allocate_slots (activity_t *self, size_t capacity)
{
    self->slots = calloc (capacity, sizeof (uint64_t));
    if (!self->slots)
        return -1;
    self->capacity = capacity;
    return 0;
}

activity_t *
activity_new (void)
{
    activity_t *self = calloc (1, sizeof (*self));
    if (!self)
        return NULL;

    self->block_capacity = 16;
    self->blocks = calloc (self->block_capacity, sizeof (*self->blocks));
    self->block_count = 1;
    if (!self->blocks || s_allocate_slots (self, INITIAL_CAPACITY) != 0) {
        free (self->blocks);
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
    for (uint32_t block = 1; block < self->block_count; block++) {
        ARENA_UNPOISON (self->blocks[block], BLOCK_SIZE);
        free (self->blocks[block]);
    }
    free (self->blocks);
    free (self->slots);
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
        uint64_t word = self->slots[slot];
        if (!word)
            return slot;
        if (s_tag (word) != tag)
            continue;

        entry_t *entry = s_entry (self, s_slot_ref (word));
        if (entry->id_len == id_len && memcmp (entry->id, id, id_len) == 0)
            return slot;
    }
}

/*  Returns the reference of id's entry, or 0 when it is absent.  */
static uint32_t
s_lookup (const activity_t *self, const char *id, size_t id_len)
{
    uint64_t hash = s_hash (id, id_len);
    return s_slot_ref (self->slots[s_find_slot (self, id, id_len, hash)]);
}

static void
s_place (activity_t *self, uint32_t ref, uint64_t hash)
{
    entry_t *entry = s_entry (self, ref);
    size_t slot = s_find_slot (self, entry->id, entry->id_len, hash);
    self->slots[slot] = (uint64_t) s_tag (hash) << 32 | ref;
}

static int
s_grow (activity_t *self)
{
    uint64_t *old_slots = self->slots;
    size_t old_capacity = self->capacity;
    if (s_allocate_slots (self, old_capacity * 2) != 0) {
        self->slots = old_slots;
        return -1;
    }

    for (size_t slot = 0; slot < old_capacity; slot++) {
        uint32_t ref = s_slot_ref (old_slots[slot]);
        if (!ref)
            continue;

        entry_t *entry = s_entry (self, ref);
        s_place (self, ref, s_hash (entry->id, entry->id_len));
    }
    free (old_slots);
    self->layout++;
    return 0;
}

static int
s_pending_add (activity_t *self, uint32_t ref)
{
    entry_t *entry = s_entry (self, ref);
    if (entry->pending_slot != NOT_PENDING)
        return 0;

    if (self->pending_count == self->pending_capacity) {
        size_t capacity = self->pending_capacity ? self->pending_capacity * 2
                                                 : 1024;
        uint32_t *grown = realloc (self->pending,
                                   capacity * sizeof (*grown));
        if (!grown)
            return -1;
        self->pending = grown;
        self->pending_capacity = capacity;
    }
    entry->pending_slot = (uint32_t) self->pending_count;
    self->pending[self->pending_count++] = ref;
    return 0;
}

static void
s_pending_remove (activity_t *self, entry_t *entry)
{
    if (entry->pending_slot == NOT_PENDING)
        return;

    uint32_t last_ref = self->pending[--self->pending_count];
    self->pending[entry->pending_slot] = last_ref;
    s_entry (self, last_ref)->pending_slot = entry->pending_slot;
    entry->pending_slot = NOT_PENDING;
}

int
activity_add (activity_t *self, const char *id, int64_t stored_ms)
{
    size_t id_len = strlen (id);
    if (id_len > MSG_ID_MAX)
        return -1;

    uint64_t hash = s_hash (id, id_len);
    uint32_t ref = s_slot_ref (self->slots[s_find_slot (self, id, id_len,
                                                        hash)]);
    if (ref) {
        entry_t *entry = s_entry (self, ref);
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

    ref = s_entry_allocate (self, s_entry_units (id_len));
    if (!ref)
        return -1;
    entry_t *entry = s_entry (self, ref);
    entry->activity_ms = stored_ms;
    entry->stored_ms = stored_ms;
    entry->pending_slot = NOT_PENDING;
    entry->id_len = (uint8_t) id_len;
    memcpy (entry->id, id, id_len + 1);

    s_place (self, ref, hash);
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
        entry_t *entry = s_entry (self, s_slot_ref (self->slots[next]));
        size_t home = s_hash (entry->id, entry->id_len) & mask;

        //  The entry may fill the hole unless its home lies cyclically
        //  after the hole, up to its own slot
        bool home_after_hole = hole <= next ? (home > hole && home <= next)
                                            : (home > hole || home <= next);
        if (home_after_hole)
            continue;

        self->slots[hole] = self->slots[next];
        hole = next;
    }
    self->slots[hole] = 0;
}

void
activity_remove (activity_t *self, const char *id)
{
    size_t id_len = strlen (id);
    uint64_t hash = s_hash (id, id_len);
    size_t slot = s_find_slot (self, id, id_len, hash);
    uint32_t ref = s_slot_ref (self->slots[slot]);
    if (!ref)
        return;

    entry_t *entry = s_entry (self, ref);
    s_pending_remove (self, entry);
    s_remove_slot (self, slot);
    self->count--;
    self->layout++;
    s_entry_free (self, ref, s_entry_units (entry->id_len));
}

int
activity_touch (activity_t *self, const char *id, size_t id_len,
                int64_t now_ms)
{
    if (id_len > MSG_ID_MAX)
        return -1;

    uint32_t ref = s_lookup (self, id, id_len);
    if (!ref)
        return -1;

    entry_t *entry = s_entry (self, ref);
    if (now_ms > entry->activity_ms) {
        entry->activity_ms = now_ms;
        //  On allocation failure the touch stays in memory only; the
        //  next touch of the same client retries the listing
        s_pending_add (self, ref);
    }
    return 0;
}

int64_t
activity_get (activity_t *self, const char *id)
{
    uint32_t ref = s_lookup (self, id, strlen (id));
    return ref ? s_entry (self, ref)->activity_ms : -1;
}

size_t
activity_count (activity_t *self)
{
    return self->count;
}

size_t
activity_walk (activity_t *self, size_t from, size_t slots,
               int64_t before_ms, activity_fn *fn, void *arg)
{
    size_t end = from + slots < self->capacity ? from + slots
                                               : self->capacity;
    for (size_t slot = from; slot < end; slot++) {
        uint32_t ref = s_slot_ref (self->slots[slot]);
        if (!ref)
            continue;

        entry_t *entry = s_entry (self, ref);
        if (entry->activity_ms < before_ms)
            fn (entry->id, entry->activity_ms, arg);
    }
    return end < self->capacity ? end : 0;
}

uint64_t
activity_layout (activity_t *self)
{
    return self->layout;
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
        entry_t *entry = s_entry (self, self->pending[slot]);
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
        uint32_t ref = s_lookup (self, updates[index].id,
                                 strlen (updates[index].id));
        if (!ref)
            continue;

        entry_t *entry = s_entry (self, ref);
        if (updates[index].last_activity_ms > entry->stored_ms)
            entry->stored_ms = updates[index].last_activity_ms;
        if (entry->activity_ms <= entry->stored_ms)
            s_pending_remove (self, entry);
    }
}
