/* SPDX-License-Identifier: MIT */
/*
 * The local control socket: a unix stream socket where a client writes one
 * command line ("status\n" for JSON, "table\n", "metrics\n" for Prometheus
 * text) and reads the reply until EOF.
 * The server side never blocks the event loop: clients are polled like any
 * other descriptor and dropped after a deadline.
 */
#ifndef WGAM_CLI_CONTROL_H
#define WGAM_CLI_CONTROL_H

#include <poll.h>
#include <stddef.h>
#include <stdint.h>

#include "jsonw.h"

#define CONTROL_MAX_CLIENTS 8
/* Longest command line a client may send. */
#define CONTROL_MAX_CMD 256

struct control;

/* Builds the reply to @cmd (without its newline) into @reply. */
typedef void (*control_handler)(void *user_data, const char *cmd,
                                struct sbuf *reply);

/* Creates the socket at @path (mode 0600; parent directory created 0755).
 * A stale socket is replaced; a live one (another daemon answers) is
 * -EADDRINUSE. Returns 0 or -errno. */
int control_open(struct control **pc, const char *path, control_handler h,
                 void *user_data);

/* The listening socket (the only descriptor when no client is
 * connected). */
int control_fd(const struct control *c);

/* Fills at most @max pollfds; returns how many. */
size_t control_pollfds(struct control *c, struct pollfd *pfds, size_t max);

/* Handles the events of the pollfds filled by control_pollfds(). @now is a
 * monotonic time in ns. */
void control_handle(struct control *c, const struct pollfd *pfds, size_t n,
                    uint64_t now);

/* The next client deadline (monotonic ns) or UINT64_MAX. */
uint64_t control_expiry(const struct control *c);

/* Closes every client and the socket, and unlinks the path. NULL is a
 * no-op. */
void control_close(struct control *c);

/* Client: sends @cmd and reads the reply into @reply. Returns 0 or -errno
 * (-ENOENT/-ECONNREFUSED: no daemon). */
int control_query(const char *path, const char *cmd, struct sbuf *reply);

#endif
