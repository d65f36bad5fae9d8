/*
 * badplugin.c: a plugin whose registration fails (jobd_badplugin.so), for
 * the test that jobd refuses to start with it.
 */
#include <errno.h>

int jobd_plugin_init(void);

int jobd_plugin_init(void) {
    return -EINVAL;
}
