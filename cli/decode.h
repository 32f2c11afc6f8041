/* SPDX-License-Identifier: MIT */
/* `wgautomesh decode`: datagrams (hex) and state files as JSON lines. */
#ifndef WGAM_CLI_DECODE_H
#define WGAM_CLI_DECODE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "jsonw.h"

/* Appends one JSON object for the decoded message @msg. */
void decode_msg_json(struct sbuf *b, const wgam_msg *msg);

/* Decodes one datagram with @key into a JSON object (or {"error":..}). */
void decode_pkt_json(struct sbuf *b, const uint8_t key[WGAM_KEY_LEN],
                     const uint8_t *pkt, size_t pktlen);

/* Reads hex datagrams, one per line, from @in and prints one JSON object per
 * line to @out. Blank lines and lines starting with '#' are skipped; spaces
 * and ':' between hex digits are ignored. Returns 0 or -errno (I/O). */
int decode_stream(FILE *in, FILE *out, const uint8_t *secret, size_t secretlen);

/* Appends the state file @data as one JSON object {"<pubkey>":[{"addr":..,
 * "time":..}],..}, or {"error":..}. Returns 0 or a WGAM_ERR_* code. */
int decode_state_json(struct sbuf *b, const uint8_t *data, size_t datalen);

#endif
