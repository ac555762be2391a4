/*  faulty_registry.c: linked only into lapse-registry-faulty, a test
    build of lapse-registry whose store runs on the fault-injecting VFS.

    The constructor runs before main, so the shim is the default VFS
    before the store opens, and the registry's own sources stay exactly
    as they are.  LAPSE_FAULT_CONTROL names the control file the shim
    watches (see faultvfs_watch); without it no fault is ever injected.
*/
#include <stdio.h>
#include <stdlib.h>

#include "faultvfs.h"

#define FAULTY_REGISTRY_CONTROL_ENV "LAPSE_FAULT_CONTROL"

static void
s_install (void) __attribute__ ((constructor));

static void
s_install (void)
{
    if (faultvfs_register (true) != 0) {
        fprintf (stderr, "lapse-registry-faulty: registering the %s VFS "
                 "failed; the store would run without fault injection\n",
                 FAULTVFS_NAME);
        exit (2);
    }
    faultvfs_watch (getenv (FAULTY_REGISTRY_CONTROL_ENV));
}
