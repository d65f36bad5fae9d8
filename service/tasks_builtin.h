/*
 * tasks_builtin.h: the tasks every jobd has (sleep, echo, http).
 *
 *   sleep  {"seconds": n}      waits n seconds (0..31622400), promptly cancellable.
 *   echo   any JSON            result = args; args printed as compact JSON + "\n".
 *   http   {"url", "method", "headers", "body", "timeout", "expect",
 *           "follow_redirects"}
 *                              one HTTP request through libcurl; the response body
 *                              goes to stdout, result {status, headers, elapsed_ms}.
 *
 * Each has a check function that jobd_task_check_spec runs at submit time.
 * The http task needs curl_global_init to have been called (main does it
 * before any thread starts).
 */
#ifndef JOBD_TASKS_BUILTIN_H
#define JOBD_TASKS_BUILTIN_H

/* Register the builtin tasks. Return 0 or a negative errno (-EEXIST, -ENOMEM). */
int tasks_builtin_register(void);

#endif
