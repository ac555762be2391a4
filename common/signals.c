/*  signals.c: SIGHUP as a flag a daemon polls from its event loop.

    A signal handler that runs on the thread blocked in zmq_poll makes
    the poll fail with EINTR, and zloop_start (czmq 4.2) takes any
    failed poll for an interrupt and returns.  So SIGHUP is blocked in
    the calling thread and in every thread it starts later.  One helper
    thread that only waits keeps it unblocked, so the kernel delivers
    the signal there and the event loop never gets EINTR.
*/

#include "signals.h"

#include "log.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t s_reload_requested;

static void
s_handle_sighup (int signal_number)
{
    (void) signal_number;
    s_reload_requested = 1;
}

/*  Waits for signals for the life of the process.  */
static void *
s_wait_for_signals (void *argument)
{
    (void) argument;
    sigset_t sighup;
    sigemptyset (&sighup);
    sigaddset (&sighup, SIGHUP);
    pthread_sigmask (SIG_UNBLOCK, &sighup, NULL);
    while (true)
        pause ();
    return NULL;
}

void
signals_init (void)
{
    struct sigaction action;
    memset (&action, 0, sizeof action);
    action.sa_handler = s_handle_sighup;
    sigemptyset (&action.sa_mask);
    action.sa_flags = SA_RESTART;
    if (sigaction (SIGHUP, &action, NULL) != 0)
        log_fatal ("failed to install the SIGHUP handler", "error=%s",
                   log_quote (strerror (errno)));

    sigset_t sighup;
    sigemptyset (&sighup);
    sigaddset (&sighup, SIGHUP);
    pthread_sigmask (SIG_BLOCK, &sighup, NULL);

    pthread_attr_t attributes;
    pthread_t thread;
    pthread_attr_init (&attributes);
    pthread_attr_setdetachstate (&attributes, PTHREAD_CREATE_DETACHED);
    int rc = pthread_create (&thread, &attributes, s_wait_for_signals, NULL);
    pthread_attr_destroy (&attributes);
    if (rc != 0)
        log_fatal ("failed to start the SIGHUP thread", "error=%s",
                   log_quote (strerror (rc)));
}

bool
signals_take_reload (void)
{
    /*  The handler runs on another thread, so the read and the reset
        must be one atomic step or a signal in between would be lost.  */
    return __atomic_exchange_n (&s_reload_requested, 0, __ATOMIC_SEQ_CST)
           != 0;
}
