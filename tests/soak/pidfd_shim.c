/*
 * pidfd_shim.c: an LD_PRELOAD library for running jobd under valgrind 3.19
 * (Debian 12's), which does not implement the pidfd_open system call (434):
 * it fails with ENOSYS, so jobd could start no child at all. Used only by
 * tests/soak/valgrind.sh; never part of jobd.
 *
 * jobd calls pidfd_open through libc's syscall(). This library's syscall()
 * passes every call through, and only when pidfd_open fails with ENOSYS
 * emulates it: it returns the read end of a close-on-exec pipe that becomes
 * readable when the process exits (a thread waits for that with
 * waitid(WNOWAIT), which leaves the child to be reaped by jobd as with a
 * real pidfd). That is all jobd does with a pidfd: watch it for EPOLLIN,
 * then close it and waitpid the child.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif

typedef long (*syscall_fn)(long, ...);
static syscall_fn real_syscall;

/* Resolved at load time, so a vfork child never runs dlsym. */
__attribute__((constructor)) static void shim_init(void) {
    real_syscall = (syscall_fn)dlsym(RTLD_NEXT, "syscall");
}

struct watch {
    pid_t pid;
    int wfd;
};

static void *watch_exit(void *arg) {
    struct watch *w = arg;
    siginfo_t si;
    while (waitid(P_PID, (id_t)w->pid, &si, WEXITED | WNOWAIT) < 0 && errno == EINTR) {
    }
    /* Exited, or ECHILD (already reaped): readable either way. */
    char c = 1;
    (void)write(w->wfd, &c, 1);
    close(w->wfd);
    free(w);
    return NULL;
}

static long emulate_pidfd_open(pid_t pid) {
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0)
        return -1;
    struct watch *w = malloc(sizeof(*w));
    pthread_attr_t attr;
    pthread_t t;
    if (!w || pthread_attr_init(&attr) != 0) {
        free(w);
        close(p[0]);
        close(p[1]);
        errno = ENOMEM;
        return -1;
    }
    w->pid = pid;
    w->wfd = p[1];
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, 64 * 1024);
    int e = pthread_create(&t, &attr, watch_exit, w);
    pthread_attr_destroy(&attr);
    if (e != 0) {
        free(w);
        close(p[0]);
        close(p[1]);
        errno = e;
        return -1;
    }
    return p[0];
}

long syscall(long n, ...) {
    va_list ap;
    va_start(ap, n);
    long a1 = va_arg(ap, long), a2 = va_arg(ap, long), a3 = va_arg(ap, long);
    long a4 = va_arg(ap, long), a5 = va_arg(ap, long), a6 = va_arg(ap, long);
    va_end(ap);
    long r = real_syscall(n, a1, a2, a3, a4, a5, a6);
    if (n == SYS_pidfd_open && r < 0 && errno == ENOSYS && a2 == 0)
        return emulate_pidfd_open((pid_t)a1);
    return r;
}
