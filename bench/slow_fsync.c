/* A slower disk, for bench/send_cycle.py --fsync-delay-ms: loaded with LD_PRELOAD, it adds
 * YIBAO_BENCH_FSYNC_DELAY_MS milliseconds after every fsync() and fdatasync() of the process
 * (SQLite syncs its WAL with one of them at each commit when synchronous=FULL). A spinning
 * disk takes several milliseconds per sync; this machine's virtual disk a fraction of one. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <time.h>

static void slow_down(void) {
    const char *setting = getenv("YIBAO_BENCH_FSYNC_DELAY_MS");
    if (setting == NULL) return;
    double ms = atof(setting);
    if (ms <= 0) return;
    struct timespec pause = {(time_t)(ms / 1000), (long)((ms - 1000.0 * (time_t)(ms / 1000)) * 1e6)};
    nanosleep(&pause, NULL);
}

int fsync(int fd) {
    static int (*real)(int);
    if (real == NULL) real = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
    int result = real(fd);
    slow_down();
    return result;
}

int fdatasync(int fd) {
    static int (*real)(int);
    if (real == NULL) real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
    int result = real(fd);
    slow_down();
    return result;
}
