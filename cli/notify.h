/* SPDX-License-Identifier: MIT */
/* systemd service notification (sd_notify protocol, no libsystemd). */
#ifndef WGAM_CLI_NOTIFY_H
#define WGAM_CLI_NOTIFY_H

/* Sends @state ("READY=1", ...) to $NOTIFY_SOCKET. Returns 1 if sent, 0 when
 * NOTIFY_SOCKET is unset, or -errno. */
int notify_send(const char *state);

#endif
