/*  replay.c: runs a fuzz target's entry point on files, without
    libFuzzer, so that CTest replays the seed corpus and every saved
    regression input in any build.

    Usage: replay_TARGET PATH...  Each PATH is a file or a folder whose
    files (not subfolders) are run in name order.  A folder that does not
    exist is skipped, so a target with no regressions yet needs none.
    Exits 0 when at least one input ran and none aborted; a finding
    aborts the process as it would under libFuzzer.
*/
#include "fuzz.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static size_t s_inputs;

/*  Reads a whole file into a malloc'd buffer.  Returns NULL on failure.  */
static uint8_t *
s_read (const char *path, size_t *size)
{
    FILE *file = fopen (path, "rb");
    if (!file)
        return NULL;

    uint8_t *data = NULL;
    struct stat status;
    if (fstat (fileno (file), &status) == 0) {
        *size = (size_t) status.st_size;
        data = malloc (*size ? *size : 1);
        if (data && fread (data, 1, *size, file) != *size) {
            free (data);
            data = NULL;
        }
    }
    fclose (file);
    return data;
}

static int
s_run_file (const char *path)
{
    size_t size = 0;
    uint8_t *data = s_read (path, &size);
    if (!data) {
        fprintf (stderr, "replay: reading %s failed: %s\n", path,
                 strerror (errno));
        return -1;
    }

    /*  The verbose line comes first, so that a finding shows its file.  */
    fprintf (stderr, "replay: %s (%zu bytes)\n", path, size);
    LLVMFuzzerTestOneInput (data, size);
    free (data);
    s_inputs++;
    return 0;
}

static int
s_compare_names (const void *one, const void *other)
{
    return strcmp (*(char *const *) one, *(char *const *) other);
}

/*  Runs every regular file of a folder, in name order.  */
static int
s_run_folder (const char *folder)
{
    DIR *dir = opendir (folder);
    if (!dir) {
        fprintf (stderr, "replay: opening %s failed: %s\n", folder,
                 strerror (errno));
        return -1;
    }

    char **names = NULL;
    size_t count = 0;
    struct dirent *entry;
    while ((entry = readdir (dir))) {
        if (entry->d_name[0] == '.')
            continue;
        char **bigger = realloc (names, (count + 1) * sizeof *names);
        if (!bigger)
            break;
        names = bigger;
        names[count] = malloc (strlen (folder) + strlen (entry->d_name) + 2);
        if (!names[count])
            break;
        sprintf (names[count], "%s/%s", folder, entry->d_name);
        count++;
    }
    closedir (dir);
    qsort (names, count, sizeof *names, s_compare_names);

    int rc = 0;
    for (size_t index = 0; index < count; index++) {
        struct stat status;
        if (stat (names[index], &status) == 0 && S_ISREG (status.st_mode)
            && s_run_file (names[index]) != 0)
            rc = -1;
        free (names[index]);
    }
    free (names);
    return rc;
}

int
main (int argc, char *argv[])
{
    int rc = 0;

    for (int index = 1; index < argc; index++) {
        struct stat status;
        if (stat (argv[index], &status) != 0) {
            fprintf (stderr, "replay: %s does not exist, skipped\n",
                     argv[index]);
            continue;
        }
        int ran = S_ISDIR (status.st_mode) ? s_run_folder (argv[index])
                                           : s_run_file (argv[index]);
        if (ran != 0)
            rc = 1;
    }
    if (s_inputs == 0) {
        fprintf (stderr, "replay: no input found in the %d paths given\n",
                 argc - 1);
        return 1;
    }
    printf ("replay: %zu inputs ran without a finding\n", s_inputs);
    return rc;
}
