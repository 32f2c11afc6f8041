/* SPDX-License-Identifier: MIT */
/* The daemon: `wgautomesh run`. */
#ifndef WGAM_CLI_DAEMON_H
#define WGAM_CLI_DAEMON_H

/*
 * Loads @config_path, configures the WireGuard interface it names and
 * keeps it meshed until SIGTERM or SIGINT; SIGHUP reloads the peers.
 * @cli_log_level is the level given on the command line, or -1 to take
 * the configuration's. Returns the process exit status (EXIT_RUNTIME,
 * EXIT_USAGE or 0).
 */
int daemon_run(const char *config_path, int cli_log_level);

#endif
