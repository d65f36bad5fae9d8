/*
 * node_agent.h: the worker-node side of joining a coordinator (--join).
 *
 * One thread registers this jobd with the coordinator (POST /v1/nodes with
 * the cluster token) and then heartbeats with the same request at the
 * interval the coordinator answers (a third of its --node-timeout). When the
 * coordinator cannot be reached, or refuses, it tries again with a backoff
 * that never grows past that interval, and says so in the log once per
 * change; the node keeps serving its jobs meanwhile.
 */
#ifndef JOBD_NODE_AGENT_H
#define JOBD_NODE_AGENT_H

struct node_agent;

struct node_agent_config {
    const char *join;    /* the coordinator's URL */
    const char *id;      /* this node's id (its instance id) */
    const char *url;     /* the advertised URL */
    const char **labels; /* "K=V" */
    int n_labels;
    int capacity;
    const char *cluster_token;
    const char *cacert; /* or NULL */
};

/* Start the thread (strings are copied). Return 0 or a negative errno. */
int node_agent_start(const struct node_agent_config *cfg, struct node_agent **out);

/* Stop the thread (an exchange in flight is cut short) and free. */
void node_agent_stop(struct node_agent *a);

#endif
