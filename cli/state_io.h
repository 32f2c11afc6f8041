/* SPDX-License-Identifier: MIT */
/* The state file on disk: bounded read, atomic write, set-aside. */
#ifndef WGAM_CLI_STATE_IO_H
#define WGAM_CLI_STATE_IO_H

#include <stddef.h>
#include <stdint.h>

/* A state file larger than this is treated as corrupt: the engine never
 * writes one near this size (peers x WGAM_MAX_ENDPOINTS entries). */
#define STATE_MAX_FILE (4u << 20)

/* Reads @path into a malloc'd buffer. Returns 0, -ENOENT, -EFBIG (larger
 * than STATE_MAX_FILE), or another -errno. */
int state_read(const char *path, uint8_t **data, size_t *len);

/* Writes @path atomically: a temporary file in the same directory, fsync,
 * rename over @path, fsync of the directory. Returns 0 or -errno. */
int state_write(const char *path, const uint8_t *data, size_t len);

/* Removes temporary files a write interrupted by a crash left beside
 * @path (@path.tmp.XXXXXX). Returns how many were removed, or -errno. */
int state_clean_tmp(const char *path);

/* Renames @path to @path.corrupt so a bad file is kept for inspection
 * rather than overwritten. Returns 0 or -errno. */
int state_set_aside(const char *path);

#endif
