/*
 * jobd/job.h: the closed sets of the job model (states and executors), their
 * wire names, and the state machine every job follows.
 *
 *   queued -> running -> succeeded | failed | cancelled | timed_out
 *      ^         |
 *      +---------+   (a failed attempt with retries left goes back to queued)
 *
 * A queued job may also end directly: cancelled (cancel while queued) or
 * failed (it could not be started, or recovery found it unrunnable).
 */
#ifndef JOBD_JOB_H
#define JOBD_JOB_H

#include <stdbool.h>

enum jobd_state {
    JOBD_QUEUED = 0,
    JOBD_RUNNING,
    JOBD_SUCCEEDED,
    JOBD_FAILED,
    JOBD_CANCELLED,
    JOBD_TIMED_OUT,
    JOBD_STATE_COUNT
};

enum jobd_executor { JOBD_EXEC_PROCESS = 0, JOBD_EXEC_THREAD, JOBD_EXEC_REMOTE, JOBD_EXEC_COUNT };

/* The wire name of a state ("queued"...); NULL for a value out of range. */
const char *jobd_state_name(enum jobd_state s);

/* Parse a wire name. Return 0, or -EINVAL for an unknown name. */
int jobd_state_parse(const char *name, enum jobd_state *out);

/* True for succeeded, failed, cancelled and timed_out. */
bool jobd_state_is_final(enum jobd_state s);

/* True when a job in state `from` may move to state `to`. */
bool jobd_state_can_transition(enum jobd_state from, enum jobd_state to);

const char *jobd_executor_name(enum jobd_executor e);
int jobd_executor_parse(const char *name, enum jobd_executor *out);

#endif
