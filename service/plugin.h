/*
 * plugin.h: task plugins (--plugin path.so).
 *
 * A plugin is a shared library that defines `int jobd_plugin_init(void)`,
 * which registers its tasks with jobd_task_register (see jobd/task.h). A
 * loaded plugin stays loaded for the life of the process: the registry
 * points into it.
 */
#ifndef JOBD_PLUGIN_H
#define JOBD_PLUGIN_H

#include <stddef.h>

/*
 * Load the plugin at `path` and call its jobd_plugin_init. A path without a
 * '/' is taken relative to the working directory, not searched for in the
 * library path. Return 0, or a negative errno after writing a message that
 * names the plugin into err (errlen bytes):
 *   "cannot load plugin X: <dlerror>"             (-ENOENT, -EACCES or -ELIBBAD)
 *   "plugin X has no jobd_plugin_init"            (-ENOEXEC)
 *   "plugin X failed to register its tasks: ..."  (what jobd_plugin_init returned)
 * Not thread-safe: call at start-up, before threads run tasks.
 */
int plugin_load(const char *path, char *err, size_t errlen);

#endif
