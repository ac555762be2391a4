/*  lockfile.c: exclusive ownership of a path through a POSIX lock.  */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include "lockfile.h"

static void
s_write_pid (int fd)
{
    //  The pid is only for people reading the file; the lock is what
    //  excludes other processes, so a failed write is not an error
    char text[32];
    int length = snprintf (text, sizeof (text), "%ld\n", (long) getpid ());
    if (ftruncate (fd, 0) != 0)
        return;
    if (pwrite (fd, text, (size_t) length, 0) != length)
        return;
}

int
lockfile_acquire (const char *path, pid_t *holder)
{
    if (holder)
        *holder = 0;

    int fd = open (path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd == -1)
        return -1;

    struct flock lock = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
    if (fcntl (fd, F_SETLK, &lock) == 0) {
        s_write_pid (fd);
        return fd;
    }

    int error = errno == EACCES ? EAGAIN : errno;
    struct flock owner = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
    if (error == EAGAIN && holder && fcntl (fd, F_GETLK, &owner) == 0
        && owner.l_type != F_UNLCK)
        *holder = owner.l_pid;
    close (fd);
    errno = error;
    return -1;
}
