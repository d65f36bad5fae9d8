/*
 * plugin.c: loading task plugins (see plugin.h).
 *
 * A plugin is opened with RTLD_NOW, so a missing symbol is an error at
 * start-up rather than a crash in the middle of a job, and RTLD_LOCAL, so
 * two plugins cannot collide on their own symbols. It resolves jobd_task_*
 * from the jobd executable, which exports them (ENABLE_EXPORTS).
 *
 * A plugin whose jobd_plugin_init failed is still left loaded: it may have
 * registered some tasks before failing, and the registry points into it.
 * jobd stops at start-up in that case anyway.
 */
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "plugin.h"

typedef int (*plugin_init_fn)(void);

int plugin_load(const char *path, char *err, size_t errlen) {
    char local[4096];
    const char *open_path = path;
    struct stat st;
    void *h;

    if (errlen > 0)
        err[0] = '\0';
    if (path == NULL || path[0] == '\0') {
        snprintf(err, errlen, "cannot load plugin '': empty path");
        return -EINVAL;
    }
    if (strchr(path, '/') == NULL) {
        /* dlopen would search the library path for a bare name. */
        if (snprintf(local, sizeof(local), "./%s", path) >= (int)sizeof(local)) {
            snprintf(err, errlen, "cannot load plugin %s: path too long", path);
            return -ENAMETOOLONG;
        }
        open_path = local;
    }
    if (stat(open_path, &st) < 0) {
        int e = errno;
        snprintf(err, errlen, "cannot load plugin %s: %s", path, strerror(e));
        return -e;
    }

    dlerror();
    h = dlopen(open_path, RTLD_NOW | RTLD_LOCAL);
    if (h == NULL) {
        const char *why = dlerror();
        snprintf(err, errlen, "cannot load plugin %s: %s", path, why ? why : "unknown error");
        return -ELIBBAD;
    }

    /* POSIX: a function pointer is read through a data pointer from dlsym. */
    plugin_init_fn init;
    dlerror();
    *(void **)&init = dlsym(h, "jobd_plugin_init");
    if (init == NULL) {
        snprintf(err, errlen, "plugin %s has no jobd_plugin_init", path);
        dlclose(h);
        return -ENOEXEC;
    }

    int rc = init();
    if (rc != 0) {
        if (rc > 0) /* not the contract: count it as invalid */
            rc = -EINVAL;
        snprintf(err, errlen, "plugin %s failed to register its tasks: %s", path, strerror(-rc));
        return rc;
    }
    return 0;
}
