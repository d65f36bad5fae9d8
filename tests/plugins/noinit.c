/*
 * noinit.c: a shared library without jobd_plugin_init (jobd_noinit.so), for
 * the test that jobd names what is missing.
 */
int jobd_not_a_plugin(void);

int jobd_not_a_plugin(void) {
    return 0;
}
