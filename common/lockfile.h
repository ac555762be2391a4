/*  lockfile.h: exclusive ownership of a path, for as long as a process
    runs.

    The lock is a POSIX record lock on a small file, so the kernel drops
    it when the process ends in any way, SIGKILL included, and another
    process can learn the holder's pid with F_GETLK.
*/
#ifndef LAPSE_LOCKFILE_H
#define LAPSE_LOCKFILE_H

#include <sys/types.h>

/*  Opens or creates path, takes an exclusive write lock on it without
    waiting, and writes the caller's pid into it for operators to read.
    Returns the descriptor, which holds the lock until it is closed.
    Returns -1 with errno set on failure; when another process holds the
    lock, errno is EAGAIN and *holder (when not NULL) is that process's
    pid, or 0 when it let go in the meantime.  */
int
lockfile_acquire (const char *path, pid_t *holder);

#endif
