/*  signals.h: SIGHUP as a flag a daemon polls from its event loop.

    SIGINT and SIGTERM are left to czmq, which sets zsys_interrupted and
    makes zloop_start return.  SIGHUP has no such handling in czmq, so a
    handler sets a flag here and the daemon checks it on a short timer.
*/
#ifndef LAPSE_SIGNALS_H
#define LAPSE_SIGNALS_H

#include <stdbool.h>

/*  Installs the SIGHUP handler.  Call after zsys_init and before the
    program starts threads of its own: SIGHUP is blocked in the calling
    thread and the threads it starts later, and delivered to a helper
    thread instead, so that it never interrupts zmq_poll in zloop.  */
void
signals_init (void);

/*  Returns true once for each SIGHUP received since the last call
    (several signals between two calls count as one).  */
bool
signals_take_reload (void);

#endif
