/*
 * job.c: the closed sets of the job model (states and executors) and the job
 * state machine (jobd/job.h).
 *
 * Each enum has one table that maps it to its wire name; the state machine is
 * one table of allowed moves. Both tables are indexed by enum value, so an
 * out-of-range value is checked before any lookup and is never a valid
 * state, name or move.
 */
#include "jobd/job.h"

#include <errno.h>
#include <stddef.h>
#include <string.h>

static const char *const state_names[JOBD_STATE_COUNT] = {
    [JOBD_QUEUED] = "queued", [JOBD_RUNNING] = "running",     [JOBD_SUCCEEDED] = "succeeded",
    [JOBD_FAILED] = "failed", [JOBD_CANCELLED] = "cancelled", [JOBD_TIMED_OUT] = "timed_out",
};

static const char *const executor_names[JOBD_EXEC_COUNT] = {
    [JOBD_EXEC_PROCESS] = "process",
    [JOBD_EXEC_THREAD] = "thread",
    [JOBD_EXEC_REMOTE] = "remote",
};

/*
 * transitions[from][to] is true when a job may move from `from` to `to`.
 * A queued job starts, or ends without running (cancelled at once, or failed
 * because it could not be started). A running job ends in any final state,
 * or goes back to queued for a retry. Nothing leaves a final state.
 */
static const bool transitions[JOBD_STATE_COUNT][JOBD_STATE_COUNT] = {
    [JOBD_QUEUED] =
        {
            [JOBD_RUNNING] = true,
            [JOBD_CANCELLED] = true,
            [JOBD_FAILED] = true,
        },
    [JOBD_RUNNING] =
        {
            [JOBD_QUEUED] = true,
            [JOBD_SUCCEEDED] = true,
            [JOBD_FAILED] = true,
            [JOBD_CANCELLED] = true,
            [JOBD_TIMED_OUT] = true,
        },
};

static bool state_valid(enum jobd_state s) {
    return (int)s >= 0 && s < JOBD_STATE_COUNT;
}

const char *jobd_state_name(enum jobd_state s) {
    return state_valid(s) ? state_names[s] : NULL;
}

int jobd_state_parse(const char *name, enum jobd_state *out) {
    if (name == NULL)
        return -EINVAL;
    for (int i = 0; i < JOBD_STATE_COUNT; i++) {
        if (strcmp(name, state_names[i]) == 0) {
            *out = (enum jobd_state)i;
            return 0;
        }
    }
    return -EINVAL;
}

bool jobd_state_is_final(enum jobd_state s) {
    return s == JOBD_SUCCEEDED || s == JOBD_FAILED || s == JOBD_CANCELLED || s == JOBD_TIMED_OUT;
}

bool jobd_state_can_transition(enum jobd_state from, enum jobd_state to) {
    if (!state_valid(from) || !state_valid(to))
        return false;
    return transitions[from][to];
}

const char *jobd_executor_name(enum jobd_executor e) {
    if ((int)e < 0 || e >= JOBD_EXEC_COUNT)
        return NULL;
    return executor_names[e];
}

int jobd_executor_parse(const char *name, enum jobd_executor *out) {
    if (name == NULL)
        return -EINVAL;
    for (int i = 0; i < JOBD_EXEC_COUNT; i++) {
        if (strcmp(name, executor_names[i]) == 0) {
            *out = (enum jobd_executor)i;
            return 0;
        }
    }
    return -EINVAL;
}
