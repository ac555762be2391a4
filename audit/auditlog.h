/*  auditlog.h: the audit file, JSON Lines, appended and synced in
    batches.

    Each line is one event as lapse_event_to_json writes it, or a gap
    record {"gap":{"first":F,"last":L}} for seqs the registry no longer
    retained.  Seqs only grow down the file, so the last line gives the
    seq after which a restart resumes.  A line counts as written once it has been synced
    to disk (fdatasync); lines are buffered until then.
*/
#ifndef LAPSE_AUDITLOG_H
#define LAPSE_AUDITLOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "protocol.h"

typedef struct auditlog_t auditlog_t;

/*  Opens path for appending, creating it (mode 0644) when missing, and
    takes an exclusive lock on it so that a second audit process on the
    same file fails here.  Its message names the pid of the process that
    has the lock.  A last line without its newline, left by a crash in
    the middle of a write, is truncated away.  Returns NULL with a
    message of at most error_size bytes in error when the file cannot be
    opened, locked, read or truncated, or when its last line is not an
    audit record.  */
auditlog_t *
auditlog_open (const char *path, char *error, size_t error_size);

/*  Closes the file, dropping lines not yet synced, and sets *self_p to
    NULL.  Accepts NULL.  */
void
auditlog_destroy (auditlog_t **self_p);

/*  Returns the seq of the last record synced: an event's seq or a gap's
    last, 0 for an empty file, or the seq given to auditlog_start_after.  */
uint64_t
auditlog_last_seq (auditlog_t *self);

/*  Takes seq as the last seq written when the file contains no record
    and none is buffered, so that events up to seq are skipped as written
    elsewhere (an earlier file, before a rotation).  Returns 1 when
    applied, 0 when the file contains records and keeps its own last
    seq.  */
int
auditlog_start_after (auditlog_t *self, uint64_t seq);

/*  Returns true when the path given to auditlog_open no longer names the
    open file, because the file was moved or removed.  Writing goes on to
    the open file until it is destroyed.  */
bool
auditlog_moved (auditlog_t *self);

/*  Returns how many bytes of a torn last line auditlog_open removed.  */
size_t
auditlog_truncated_bytes (auditlog_t *self);

/*  Buffers event as one line.  Returns 1 when buffered, 0 when its seq
    is not above the last one synced or buffered (so it is skipped), or
    -1 when the event cannot be formatted.  */
int
auditlog_add_event (auditlog_t *self, const msg_event_t *event);

/*  Buffers a gap record for the lost seqs first to last, without the
    part at or below the last seq synced or buffered.  Returns 1 when
    buffered, 0 when nothing of the range is left.  */
int
auditlog_add_gap (auditlog_t *self, uint64_t first, uint64_t last);

/*  Returns how many lines are buffered and not yet synced.  */
size_t
auditlog_buffered (auditlog_t *self);

/*  Writes the buffered lines and syncs them with one fdatasync.
    Returns 0 when they are on disk.  Returns -1 with a message in error
    on failure.  After a failed write *retry is true: the lines stay
    buffered and the next call first cuts the file back to its last
    synced size, so calling again is safe.  After a failed sync *retry is
    false, because the kernel may have dropped the written pages and only
    a fresh open can show what the file contains.  */
int
auditlog_sync (auditlog_t *self, bool *retry, char *error,
               size_t error_size);

/*  Sets the counts of event and gap lines synced since the open.  */
void
auditlog_written (auditlog_t *self, uint64_t *events, uint64_t *gaps);

#endif
