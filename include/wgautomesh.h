/* SPDX-License-Identifier: MIT */
/*
 * libwgautomesh: a sans-IO engine that keeps a WireGuard full mesh connected
 * through NAT.
 *
 * The library never touches sockets, files, clocks, threads or stdio. Its
 * caller (the wgautomesh daemon, a simulator, a network manager):
 *
 *   - pushes input: received gossip datagrams (wgam_mesh_read_pkt), the
 *     observed state of the WireGuard device (wgam_mesh_observe_device), the
 *     peer list (wgam_mesh_set_peers), a saved state file
 *     (wgam_mesh_load_state), timer expiry (wgam_mesh_handle_expiry);
 *   - pulls output into its own buffers: datagrams to send
 *     (wgam_mesh_write_pkt), changes to apply to the device
 *     (wgam_mesh_next_peer_update), the state file (wgam_mesh_write_state),
 *     the next deadline (wgam_mesh_get_expiry), and what the engine wants
 *     done next (wgam_mesh_get_wants).
 *
 * Time is always a parameter: wgam_tstamp is a monotonic clock in
 * nanoseconds. Wall-clock Unix seconds enter only with the device state,
 * since the protocol carries WireGuard handshake times.
 *
 * All functions are reentrant on distinct wgam_mesh objects; a single object
 * must not be used from two threads at once.
 */
#ifndef WGAUTOMESH_H
#define WGAUTOMESH_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(WGAM_BUILDING_LIB) && defined(__GNUC__)
#define WGAM_EXTERN __attribute__((visibility("default")))
#else
#define WGAM_EXTERN
#endif

/** Library version, as a string and as 0xMMmmpp. */
#define WGAM_VERSION "0.1.0"
#define WGAM_VERSION_NUM 0x000100

/* ------------------------------------------------------------------------ */
/* Basic types and constants                                                */
/* ------------------------------------------------------------------------ */

/** Signed size: a length (>= 0) or a negative WGAM_ERR_* code. */
typedef ptrdiff_t wgam_ssize;

/** Monotonic timestamp in nanoseconds, supplied by the caller. */
typedef uint64_t wgam_tstamp;

/** A timestamp that never comes (no deadline). */
#define WGAM_TSTAMP_NONE UINT64_MAX
#define WGAM_NANOSECONDS ((wgam_tstamp)1ULL)
#define WGAM_MICROSECONDS ((wgam_tstamp)1000ULL)
#define WGAM_MILLISECONDS ((wgam_tstamp)1000000ULL)
#define WGAM_SECONDS ((wgam_tstamp)1000000000ULL)

/** Length of a Curve25519 public key and of the gossip key. */
#define WGAM_KEY_LEN 32
/** Length of a key in base64, without the terminating NUL. */
#define WGAM_KEY_B64_LEN 44
/** XSalsa20-Poly1305 nonce and tag lengths. */
#define WGAM_NONCE_LEN 24
#define WGAM_TAG_LEN 16
/** Datagrams longer than this are rejected (the original's receive buffer). */
#define WGAM_MAX_DATAGRAM_LEN 1500
/** Longest plaintext that fits in a datagram. */
#define WGAM_MAX_PLAINTEXT_LEN                                                 \
  (WGAM_MAX_DATAGRAM_LEN - WGAM_NONCE_LEN - WGAM_TAG_LEN)
/** Endpoints kept per public key in the gossip store (merge rule). */
#define WGAM_MAX_ENDPOINTS 5
/** Peers an announce is propagated to. */
#define WGAM_GOSSIP_FANOUT 10
/** Most endpoints a single Announce datagram can carry. */
#define WGAM_MSG_MAX_ENDPOINTS 80
/** Most endpoints accepted for one key of a state file. */
#define WGAM_STATE_MAX_ENDPOINTS 64
/** Buffer size for wgam_addr_format() ("[v6%scope]:port" + NUL). */
#define WGAM_ADDR_STRLEN 64
/** Extra prefixes one peer entry may route ("allowed_ips" in the config). */
#define WGAM_MAX_PREFIXES 8
/** Allowed IPs of one peer: its mesh address and its extra prefixes. */
#define WGAM_MAX_ALLOWEDIPS (1 + WGAM_MAX_PREFIXES)
/** External endpoints of our own (port mappings, pinholes) at once. */
#define WGAM_MAX_EXTERNAL 4

/* ------------------------------------------------------------------------ */
/* Errors                                                                   */
/* ------------------------------------------------------------------------ */

typedef enum wgam_error {
  /** An argument is out of range or inconsistent. */
  WGAM_ERR_INVALID_ARGUMENT = -201,
  /** The output buffer is too small; nothing was consumed. */
  WGAM_ERR_NOBUF = -202,
  /** A datagram is shorter than a nonce or longer than 1500 bytes. */
  WGAM_ERR_PKT_LENGTH = -210,
  /** A datagram failed authentication (wrong key, tampered, truncated). */
  WGAM_ERR_PKT_AUTH = -211,
  /** An authentic datagram does not hold a valid v1 message. */
  WGAM_ERR_PKT_DECODE = -212,
  /** A message is valid but refers to something we do not accept
   *  (unknown public key, an invalid endpoint, our own broadcast). */
  WGAM_ERR_PKT_IGNORED = -213,
  /** A state file is malformed. */
  WGAM_ERR_STATE_DECODE = -220,
  /** A bounded table is full (peers, pending datagrams, state size). */
  WGAM_ERR_LIMIT = -230,
  /** The peer list holds the same public key or mesh address twice. */
  WGAM_ERR_DUPLICATE_PEER = -231,
  /** A base64 key or an address string does not parse. */
  WGAM_ERR_PARSE = -232,
  /** Errors below this value are fatal: the object must be deleted. */
  WGAM_ERR_FATAL = -500,
  /** Memory allocation failed. */
  WGAM_ERR_NOMEM = -501,
  /** A callback (randomness) failed. */
  WGAM_ERR_CALLBACK_FAILURE = -502,
} wgam_error;

/**
 * Returns a static English description of an error code (never NULL).
 */
WGAM_EXTERN const char *wgam_strerror(int liberr);

/**
 * Returns nonzero if @liberr is a fatal error (see WGAM_ERR_FATAL).
 */
WGAM_EXTERN int wgam_err_is_fatal(int liberr);

/* ------------------------------------------------------------------------ */
/* Addresses and keys                                                       */
/* ------------------------------------------------------------------------ */

typedef enum wgam_af {
  WGAM_AF_NONE = 0,
  WGAM_AF_INET = 4,
  WGAM_AF_INET6 = 6,
} wgam_af;

/**
 * An IPv4 or IPv6 address with a port: the library's own compact socket
 * address, independent of the OS headers.
 */
typedef struct wgam_addr {
  /** WGAM_AF_INET, WGAM_AF_INET6, or WGAM_AF_NONE for "no address". */
  uint8_t family;
  uint8_t reserved;
  /** Port in host byte order. */
  uint16_t port;
  /** Address in network byte order; IPv4 uses ip[0..3], the rest is 0. */
  uint8_t ip[16];
} wgam_addr;

/** An address with a prefix length (a WireGuard allowed IP). */
typedef struct wgam_cidr {
  wgam_addr addr; /* port ignored, 0 */
  uint8_t prefixlen;
} wgam_cidr;

/** An endpoint and the wall-clock Unix second it was last seen. */
typedef struct wgam_endpoint {
  wgam_addr addr;
  uint64_t time;
} wgam_endpoint;

/**
 * Parses "a.b.c.d:port", "[v6]:port" or, with @port_optional nonzero, also a
 * bare address (port 0). A "%scope" suffix inside the brackets is accepted
 * and dropped, as the protocol does not carry it.
 *
 * Returns 0, or WGAM_ERR_PARSE.
 */
WGAM_EXTERN int wgam_addr_parse(wgam_addr *addr, const char *s,
                                int port_optional);

/**
 * Formats @addr in Rust's SocketAddr Display syntax ("198.51.100.7:51820",
 * "[2001:db8::1]:51820"), or the bare address when @with_port is zero.
 * "-" for WGAM_AF_NONE. Always NUL-terminates when @destlen > 0.
 *
 * Returns the length written (without NUL), or WGAM_ERR_NOBUF.
 */
WGAM_EXTERN wgam_ssize wgam_addr_format(char *dest, size_t destlen,
                                        const wgam_addr *addr, int with_port);

/** Returns nonzero if @a and @b are the same family, address and port. */
WGAM_EXTERN int wgam_addr_equal(const wgam_addr *a, const wgam_addr *b);

/**
 * Returns nonzero if @addr may be used as a WireGuard endpoint: a unicast
 * address that is not unspecified, loopback, multicast or broadcast, with a
 * nonzero port.
 */
WGAM_EXTERN int wgam_addr_is_valid_endpoint(const wgam_addr *addr);

/**
 * Decodes a 44-character base64 WireGuard key (with its '=' padding) into
 * @key. Returns 0 or WGAM_ERR_PARSE.
 */
WGAM_EXTERN int wgam_key_from_base64(uint8_t key[WGAM_KEY_LEN], const char *b64,
                                     size_t b64len);

/** Encodes @key as base64 into @dest (44 characters + NUL). */
WGAM_EXTERN void wgam_key_to_base64(char dest[WGAM_KEY_B64_LEN + 1],
                                    const uint8_t key[WGAM_KEY_LEN]);

/* ------------------------------------------------------------------------ */
/* v1 wire codec (stateless)                                                */
/* ------------------------------------------------------------------------ */

/**
 * Derives the gossip key: BLAKE3("wgautomesh: " || @secret). The secret is
 * used byte for byte (a trailing newline is part of it); no secret is the
 * empty secret.
 */
WGAM_EXTERN void wgam_key_derive(uint8_t key[WGAM_KEY_LEN],
                                 const uint8_t *secret, size_t secretlen);

typedef enum wgam_msg_type {
  WGAM_MSG_PING = 0,
  WGAM_MSG_PONG = 1,
  WGAM_MSG_ANNOUNCE = 2,
  WGAM_MSG_REQUEST = 3,
  WGAM_MSG_LAN_BROADCAST = 4,
} wgam_msg_type;

/** Number of message types (for per-type counters). */
#define WGAM_MSG_TYPE_COUNT 5

/**
 * A decoded or to-be-encoded gossip message. @pubkey points into the buffer
 * it was decoded from (or the caller's string when encoding): it is the
 * string as sent, valid UTF-8, not NUL-terminated and not necessarily a key.
 */
typedef struct wgam_msg {
  uint32_t type; /* wgam_msg_type */
  /* ANNOUNCE, LAN_BROADCAST */
  const uint8_t *pubkey;
  size_t pubkeylen;
  /* ANNOUNCE */
  size_t nendpoints;
  wgam_endpoint endpoints[WGAM_MSG_MAX_ENDPOINTS];
  /* LAN_BROADCAST */
  uint16_t listen_port;
} wgam_msg;

/**
 * Encodes @msg (bincode 1.x layout of the original) into @dest.
 *
 * Returns the plaintext length, WGAM_ERR_NOBUF if @destlen is too small, or
 * WGAM_ERR_INVALID_ARGUMENT for an unknown type, more than
 * WGAM_MSG_MAX_ENDPOINTS endpoints or an endpoint of family WGAM_AF_NONE.
 */
WGAM_EXTERN wgam_ssize wgam_msg_encode(uint8_t *dest, size_t destlen,
                                       const wgam_msg *msg);

/**
 * Decodes one message from @plaintext. Every length is checked before use,
 * strings must be UTF-8, unknown variant tags are rejected. Bytes after a
 * complete message are ignored, as the original does.
 *
 * Returns the number of bytes consumed, or WGAM_ERR_PKT_DECODE.
 */
WGAM_EXTERN wgam_ssize wgam_msg_decode(wgam_msg *msg, const uint8_t *plaintext,
                                       size_t plaintextlen);

/**
 * Seals @plaintext into a datagram: @nonce || crypto_secretbox_easy().
 * @dest needs WGAM_NONCE_LEN + WGAM_TAG_LEN + @plaintextlen bytes.
 *
 * Returns the datagram length, WGAM_ERR_NOBUF, or WGAM_ERR_INVALID_ARGUMENT
 * if the datagram would exceed WGAM_MAX_DATAGRAM_LEN.
 */
WGAM_EXTERN wgam_ssize wgam_pkt_seal(uint8_t *dest, size_t destlen,
                                     const uint8_t key[WGAM_KEY_LEN],
                                     const uint8_t nonce[WGAM_NONCE_LEN],
                                     const uint8_t *plaintext,
                                     size_t plaintextlen);

/**
 * Opens a datagram into @dest (at least @pktlen - 40 bytes, or
 * WGAM_MAX_PLAINTEXT_LEN).
 *
 * Returns the plaintext length, WGAM_ERR_PKT_LENGTH (shorter than the nonce,
 * longer than WGAM_MAX_DATAGRAM_LEN), WGAM_ERR_PKT_AUTH, or WGAM_ERR_NOBUF.
 */
WGAM_EXTERN wgam_ssize wgam_pkt_open(uint8_t *dest, size_t destlen,
                                     const uint8_t key[WGAM_KEY_LEN],
                                     const uint8_t *pkt, size_t pktlen);

/* ------------------------------------------------------------------------ */
/* State file codec (stateless)                                             */
/* ------------------------------------------------------------------------ */

/**
 * Called once per entry of a state file. @pubkey is the key string as
 * stored. Return 0 to go on, nonzero to stop (wgam_state_parse returns it).
 */
typedef int (*wgam_state_entry_cb)(const uint8_t *pubkey, size_t pubkeylen,
                                   const wgam_endpoint *endpoints,
                                   size_t nendpoints, void *user_data);

/**
 * Parses a state file (bincode HashMap<String, Vec<(SocketAddr, u64)>>) of
 * the original layout, in any entry order; trailing bytes are ignored as the
 * original does. The whole file is validated before the first callback, so a
 * malformed file produces no callback at all.
 *
 * Returns 0, WGAM_ERR_STATE_DECODE, or the callback's nonzero value.
 */
WGAM_EXTERN int wgam_state_parse(const uint8_t *data, size_t datalen,
                                 wgam_state_entry_cb cb, void *user_data);

/* ------------------------------------------------------------------------ */
/* The engine                                                               */
/* ------------------------------------------------------------------------ */

typedef struct wgam_mesh wgam_mesh;

typedef enum wgam_log_level {
  WGAM_LOG_ERROR = 0,
  WGAM_LOG_WARN = 1,
  WGAM_LOG_INFO = 2,
  WGAM_LOG_DEBUG = 3,
  WGAM_LOG_TRACE = 4,
} wgam_log_level;

/** Log callback: @msg is a NUL-terminated line without newline. */
typedef void (*wgam_log_cb)(void *user_data, int level, const char *msg);

/** Fills @dest with @destlen random bytes. Returns 0, or nonzero on failure. */
typedef int (*wgam_rand_cb)(void *user_data, uint8_t *dest, size_t destlen);

/** Optional allocator (tests inject failures). NULL means malloc/free. */
typedef struct wgam_mem {
  void *user_data;
  void *(*malloc)(size_t size, void *user_data);
  void (*free)(void *ptr, void *user_data);
  void *(*calloc)(size_t nmemb, size_t size, void *user_data);
  void *(*realloc)(void *ptr, size_t size, void *user_data);
} wgam_mem;

typedef enum wgam_policy {
  /** The original's timers: one candidate per 30 s cycle, device read every
   *  30 s, state file every 600 s. */
  WGAM_POLICY_CLASSIC = 0,
  /** Ours: new candidates at once, next one after a handshake window,
   *  backoff, device read every 2 s, liveness probes, state on change. */
  WGAM_POLICY_FAST = 1,
} wgam_policy;

/** Settings flags. */
#define WGAM_SETTINGS_LAN_DISCOVERY 0x1u    /* send/accept IPv4 LanBroadcast */
#define WGAM_SETTINGS_LAN_DISCOVERY_V6 0x2u /* also send to [ff05::1] */
#define WGAM_SETTINGS_PERSIST 0x4u          /* keep a state file */
#define WGAM_SETTINGS_IGD 0x8u              /* UPnP IGD renewals wanted */

#define WGAM_SETTINGS_VERSION_V1 1
#define WGAM_SETTINGS_VERSION WGAM_SETTINGS_VERSION_V1

/**
 * Engine settings. Initialise with wgam_settings_default() or
 * wgam_settings_classic(), then change fields. The struct is versioned:
 * fields are only ever appended.
 */
typedef struct wgam_settings {
  /** WGAM_POLICY_FAST or WGAM_POLICY_CLASSIC: which behaviour the engine
   *  runs (the classic one is the original daemon's 30 s loop, no relays),
   *  not only which timers. */
  int policy;
  /** Shared gossip secret, used verbatim; copied by wgam_mesh_new(). */
  const uint8_t *secret;
  size_t secretlen;
  /** UDP port of the gossip protocol, the same on every node. */
  uint16_t gossip_port;
  /** WGAM_SETTINGS_* flags. */
  uint32_t flags;

  /** Interval between device reads; in the classic policy also the loop's
   *  cycle (each read moves every disconnected peer to its next
   *  candidate). */
  wgam_tstamp device_interval;
  /** Fast: the handshake window of one candidate endpoint; it closes at the
   *  first device read after it ended. Not used by the classic policy. */
  wgam_tstamp try_interval;
  /** Fast, after every candidate failed: first and largest wait before the
   *  next round (doubling); backoff_max is also how long a LAN endpoint that
   *  did not answer is not tried again. Not used by the classic policy. */
  wgam_tstamp backoff_min;
  wgam_tstamp backoff_max;
  /** A peer is connected while its last handshake is younger (fast 200 s,
   *  classic 300 s). */
  wgam_tstamp timeout;
  /** Observed endpoints, and our external ones, are re-announced when the
   *  store's time for them is older than this (300 s). */
  wgam_tstamp gossip_interval;
  /** LAN broadcast interval (60 s) and LAN endpoint lifetime (300 s). */
  wgam_tstamp lan_interval;
  wgam_tstamp lan_timeout;
  /** Classic: write the state file this often (600 s). Fast: write it this
   *  long after it changed (debounce). */
  wgam_tstamp persist_interval;
  /** Interval of WGAM_WANT_IGD: renew the port mappings (60 s). */
  wgam_tstamp igd_interval;
  /** Liveness probe: a connected peer silent (no received bytes) this long
   *  is sent a Ping (fast 4 s; large meshes stretch it to stay within 4
   *  probes a second); 0 disables probing (classic). The fast policy also
   *  probes at once (two Pings) a path whose traffic went unanswered at a
   *  device read. */
  wgam_tstamp probe_idle;
  /** A probe unanswered this long marks the path broken (fast 1.5 s). */
  wgam_tstamp probe_timeout;
  /** Persistent keepalive in seconds while trying (10) and connected (30). */
  uint16_t keepalive_trying;
  uint16_t keepalive_connected;

  /** Bounds: configured peers, queued datagrams. */
  size_t max_peers;
  size_t max_pending;

  /** Log callback (may be NULL) and the most verbose level it receives. */
  wgam_log_cb log;
  int log_level;
  /** Randomness for nonces (required). */
  wgam_rand_cb rand;
  /** Passed to the callbacks. */
  void *user_data;
  /** Allocator, or NULL. */
  const wgam_mem *mem;
} wgam_settings;

/**
 * Fills @settings with our fast policy. Use the wgam_settings_default()
 * macro. Returns 0 or WGAM_ERR_INVALID_ARGUMENT for an unknown version.
 */
WGAM_EXTERN int wgam_settings_default_versioned(int settings_version,
                                                wgam_settings *settings);
/**
 * Fills @settings with the original's timers (WGAM_POLICY_CLASSIC).
 * Returns 0 or WGAM_ERR_INVALID_ARGUMENT for an unknown version.
 */
WGAM_EXTERN int wgam_settings_classic_versioned(int settings_version,
                                                wgam_settings *settings);
#define wgam_settings_default(S)                                               \
  wgam_settings_default_versioned(WGAM_SETTINGS_VERSION, (S))
#define wgam_settings_classic(S)                                               \
  wgam_settings_classic_versioned(WGAM_SETTINGS_VERSION, (S))

/**
 * Creates an engine. @settings is copied (the secret too).
 *
 * Returns 0 and sets *@pmesh, or WGAM_ERR_INVALID_ARGUMENT (no rand callback,
 * zero gossip port, inconsistent timers, unknown version) or WGAM_ERR_NOMEM.
 */
WGAM_EXTERN int wgam_mesh_new_versioned(wgam_mesh **pmesh, int settings_version,
                                        const wgam_settings *settings,
                                        wgam_tstamp ts);
#define wgam_mesh_new(P, S, TS)                                                \
  wgam_mesh_new_versioned((P), WGAM_SETTINGS_VERSION, (S), (TS))

/** Frees @mesh and wipes its key. wgam_mesh_del(NULL) does nothing. */
WGAM_EXTERN void wgam_mesh_del(wgam_mesh *mesh);

/** A peer of the static configuration. */
typedef struct wgam_peer_config {
  uint8_t pubkey[WGAM_KEY_LEN];
  /** Mesh address (port ignored): allowed IP /32 or /128, gossip target. */
  wgam_addr address;
  /** Configured endpoint, or family WGAM_AF_NONE. A hostname is resolved by
   *  the caller and given with wgam_mesh_set_peer_endpoints(). */
  wgam_addr endpoint;
  /** Nonzero: this node forwards mesh traffic for the others, so a peer
   *  that cannot be reached directly may be routed through it. The same
   *  peer list is on every node, so every node knows the relays. */
  int relay;
  /** Extra prefixes routed to this peer (a network behind it), installed
   *  next to its mesh address. Host bits must be zero. */
  size_t nprefixes;
  wgam_cidr prefixes[WGAM_MAX_PREFIXES];
} wgam_peer_config;

/**
 * Sets the peer list: at start and on reload. New peers are configured on
 * the device, removed peers removed from it, unchanged peers keep their
 * state and sessions. Our own key may appear in the list and is ignored.
 * All or nothing: on error the previous list stays.
 *
 * Returns 0, WGAM_ERR_INVALID_ARGUMENT (an address of family NONE, an
 * invalid endpoint), WGAM_ERR_DUPLICATE_PEER, WGAM_ERR_LIMIT (more than
 * max_peers) or WGAM_ERR_NOMEM.
 */
WGAM_EXTERN int wgam_mesh_set_peers(wgam_mesh *mesh,
                                    const wgam_peer_config *peers,
                                    size_t npeers, wgam_tstamp ts);

/**
 * Replaces the configured endpoints of one peer with resolved addresses
 * (a configured hostname may resolve to several). @naddrs may be 0.
 *
 * Returns 0, WGAM_ERR_INVALID_ARGUMENT (unknown key, more than
 * WGAM_MAX_ENDPOINTS addresses, or an invalid endpoint).
 */
WGAM_EXTERN int wgam_mesh_set_peer_endpoints(wgam_mesh *mesh,
                                             const uint8_t pubkey[WGAM_KEY_LEN],
                                             const wgam_addr *addrs,
                                             size_t naddrs, wgam_tstamp ts);

/** A peer as read from the WireGuard device. */
typedef struct wgam_device_peer {
  uint8_t pubkey[WGAM_KEY_LEN];
  wgam_addr endpoint;
  /** Wall-clock Unix seconds of the last handshake, 0 = never. */
  uint64_t last_handshake;
  uint64_t rx_bytes;
  uint64_t tx_bytes;
  uint16_t persistent_keepalive;
  /** Allowed IPs, valid during the call only. */
  const wgam_cidr *allowedips;
  size_t nallowedips;
} wgam_device_peer;

/** The WireGuard device as read by the caller. */
typedef struct wgam_device {
  /** Our public key; has_pubkey is 0 while the device has no private key. */
  uint8_t pubkey[WGAM_KEY_LEN];
  int has_pubkey;
  uint16_t listen_port;
  /** Peers, valid during the call only. */
  const wgam_device_peer *peers;
  size_t npeers;
} wgam_device;

/**
 * Feeds the device state. @unix_now is the wall clock in Unix seconds at the
 * time of the read; the engine uses it to age handshakes and to timestamp
 * what it announces. Clears WGAM_WANT_DEVICE.
 *
 * Returns 0, WGAM_ERR_INVALID_ARGUMENT, or WGAM_ERR_NOMEM.
 */
WGAM_EXTERN int wgam_mesh_observe_device(wgam_mesh *mesh,
                                         const wgam_device *dev, wgam_tstamp ts,
                                         uint64_t unix_now);

/**
 * Roam hints. WireGuard gives no event when it moves a peer's entry to
 * where that peer's packets now come from (its NAT rebooted or took
 * another address) nor when a new peer's first handshake arrives: only a
 * device read shows them. A caller that sees the packets WireGuard
 * receives (a packet socket with a kernel filter, say) can tell the engine
 * when one came from an address that no peer had at the last device read.
 *
 * With hints on (fast policy), the engine reads the device when told,
 * and otherwise every device_interval only while some path is being tried
 * or probed; when every path is settled it reads rarely. A node behind a
 * NAT (no endpoint of its own configured) then keeps its NAT open towards
 * a few peers that see its moves unasked (with an endpoint configured)
 * with WireGuard's persistent keepalive, every 2 s, instead of probe
 * rounds of its own: a mesh at rest costs next to nothing, and a move is
 * seen as soon as the moved node's next keepalive arrives.
 *
 * wgam_mesh_set_roam_hints() says whether hints come (default: they do
 * not); a caller that loses its way to see them turns them off.
 * Returns 0 or WGAM_ERR_INVALID_ARGUMENT.
 */
WGAM_EXTERN int wgam_mesh_set_roam_hints(wgam_mesh *mesh, int on,
                                         wgam_tstamp ts);

/**
 * A packet came to WireGuard's port from an address that no peer had at
 * the last device read: the engine asks for a read (WGAM_WANT_DEVICE) at
 * once, or a short while after the last one (a burst of such packets
 * costs one read). Returns 0 or WGAM_ERR_INVALID_ARGUMENT.
 */
WGAM_EXTERN int wgam_mesh_roam_hint(wgam_mesh *mesh, wgam_tstamp ts);

/**
 * Feeds a received gossip datagram from @src (the sender's address and
 * port). A rejected datagram leaves the state unchanged and is counted.
 *
 * Returns 0, WGAM_ERR_PKT_LENGTH, WGAM_ERR_PKT_AUTH, WGAM_ERR_PKT_DECODE,
 * WGAM_ERR_PKT_IGNORED (non-fatal), WGAM_ERR_INVALID_ARGUMENT (@src is not
 * an IPv4 or IPv6 address), or WGAM_ERR_NOMEM.
 */
WGAM_EXTERN int wgam_mesh_read_pkt(wgam_mesh *mesh, const wgam_addr *src,
                                   const uint8_t *pkt, size_t pktlen,
                                   wgam_tstamp ts);

/**
 * Feeds a saved state file; each entry is handled as a received Announce of
 * that origin. Clears nothing and sends the resulting propagation.
 *
 * Returns 0, WGAM_ERR_STATE_DECODE (nothing was loaded), or WGAM_ERR_NOMEM
 * (the entries before the one that did not fit are loaded).
 */
WGAM_EXTERN int wgam_mesh_load_state(wgam_mesh *mesh, const uint8_t *data,
                                     size_t datalen, wgam_tstamp ts);

/**
 * Sets our external endpoints: what port mappings and firewall pinholes
 * (UPnP IGD, PCP, NAT-PMP) opened for us, e.g. an IPv4 mapping and an IPv6
 * pinhole. The list replaces the previous one; @naddrs 0 clears it. The
 * engine announces each as our own endpoint to every peer, and again
 * whenever the list changes.
 *
 * Returns 0 or WGAM_ERR_INVALID_ARGUMENT (more than WGAM_MAX_EXTERNAL
 * addresses, or one that is not a valid endpoint; nothing is changed).
 */
WGAM_EXTERN int wgam_mesh_set_external_endpoints(wgam_mesh *mesh,
                                                 const wgam_addr *addrs,
                                                 size_t naddrs, wgam_tstamp ts);

/**
 * Changes which messages reach settings->log: those of @level
 * (WGAM_LOG_ERROR .. WGAM_LOG_TRACE) and below; the others are not even
 * formatted. A daemon calls this when its configuration is reloaded.
 *
 * Returns 0 or WGAM_ERR_INVALID_ARGUMENT (@level out of range).
 */
WGAM_EXTERN int wgam_mesh_set_log_level(wgam_mesh *mesh, int level);

/** Returns the next deadline, or WGAM_TSTAMP_NONE. */
WGAM_EXTERN wgam_tstamp wgam_mesh_get_expiry(const wgam_mesh *mesh);

/**
 * Runs the timers due at @ts. Call when @ts >= wgam_mesh_get_expiry().
 *
 * Returns 0 or a fatal error.
 */
WGAM_EXTERN int wgam_mesh_handle_expiry(wgam_mesh *mesh, wgam_tstamp ts);

/** wgam_mesh_get_wants() flags. */
#define WGAM_WANT_DEVICE 0x1u /* read the device, call observe_device() */
#define WGAM_WANT_STATE 0x2u  /* write_state() and save it */
#define WGAM_WANT_IGD 0x4u    /* (re)new the UPnP mapping, then ack_igd() */

/** Returns the WGAM_WANT_* actions the engine asks the caller for. */
WGAM_EXTERN uint32_t wgam_mesh_get_wants(const wgam_mesh *mesh);

/** Acknowledges WGAM_WANT_IGD (the renewal was started). */
WGAM_EXTERN void wgam_mesh_ack_igd(wgam_mesh *mesh);

/**
 * Writes the next queued datagram into @dest and its destination into
 * *@destaddr: a peer's mesh address and the gossip port, or the broadcast
 * address (255.255.255.255 or ff05::1) for LAN discovery.
 *
 * Returns the datagram length, 0 if nothing is queued, WGAM_ERR_NOBUF if
 * @destlen < WGAM_MAX_DATAGRAM_LEN (nothing is dequeued), or
 * WGAM_ERR_CALLBACK_FAILURE.
 */
WGAM_EXTERN wgam_ssize wgam_mesh_write_pkt(wgam_mesh *mesh, wgam_addr *destaddr,
                                           uint8_t *dest, size_t destlen,
                                           wgam_tstamp ts);

/** Peer update flags, 1:1 with wireguard-tools' semantics. */
#define WGAM_PEER_REMOVE_ME 0x1u
#define WGAM_PEER_REPLACE_ALLOWEDIPS 0x2u
#define WGAM_PEER_HAS_ENDPOINT 0x4u
#define WGAM_PEER_HAS_KEEPALIVE 0x8u

/** A change to apply to one peer of the device. */
typedef struct wgam_peer_update {
  uint8_t pubkey[WGAM_KEY_LEN];
  uint32_t flags;
  wgam_addr endpoint;            /* with HAS_ENDPOINT */
  uint16_t persistent_keepalive; /* with HAS_KEEPALIVE, seconds */
  /**
   * Allowed IPs. With REPLACE_ALLOWEDIPS: the peer's own list (its mesh
   * address and prefixes), or empty while the peer is routed through a
   * relay. Without it: added to the peer; WireGuard moves an allowed IP
   * from whichever peer held it, which is how a relayed peer's IPs move
   * onto its relay's entry and back in one update. A REPLACE on a relay's
   * entry is followed by one add per peer relayed through it.
   */
  size_t nallowedips;
  wgam_cidr allowedips[WGAM_MAX_ALLOWEDIPS];
} wgam_peer_update;

/**
 * Pops the next pending device change into *@upd. The engine assumes it is
 * applied and checks at the next device read. Apply changes in order: a
 * WGAM_PEER_REMOVE_ME can be followed by the same peer added back whole.
 *
 * Returns 1 if *@upd was filled, 0 if nothing is pending.
 */
WGAM_EXTERN int wgam_mesh_next_peer_update(wgam_mesh *mesh,
                                           wgam_peer_update *upd);

/**
 * Writes the state file (original layout) into @dest. With @dest NULL,
 * returns the length needed. Clears WGAM_WANT_STATE when written.
 *
 * Returns the length, or WGAM_ERR_NOBUF.
 */
WGAM_EXTERN wgam_ssize wgam_mesh_write_state(wgam_mesh *mesh, uint8_t *dest,
                                             size_t destlen);

/* ------------------------------------------------------------------------ */
/* Status                                                                   */
/* ------------------------------------------------------------------------ */

/** Where an endpoint came from. */
typedef enum wgam_source {
  WGAM_SOURCE_NONE = 0,
  WGAM_SOURCE_CONFIG = 1,
  WGAM_SOURCE_GOSSIP = 2,
  WGAM_SOURCE_LAN = 3,
  WGAM_SOURCE_STATE = 4,
  WGAM_SOURCE_UPNP = 5,
  /** WireGuard roamed to it by itself (an authenticated packet came from
   *  there). */
  WGAM_SOURCE_ROAMING = 6,
} wgam_source;

/** Returns "none", "config", "gossip", "lan", "state", "upnp" or "roaming". */
WGAM_EXTERN const char *wgam_source_name(int source);

typedef enum wgam_peer_state {
  WGAM_PEER_IDLE = 0,      /* no candidate known */
  WGAM_PEER_TRYING = 1,    /* a candidate is being tried */
  WGAM_PEER_BACKOFF = 2,   /* every candidate failed; waiting */
  WGAM_PEER_CONNECTED = 3, /* recent handshake, path alive */
} wgam_peer_state;

/** Returns "idle", "trying", "backoff" or "connected". */
WGAM_EXTERN const char *wgam_peer_state_name(int state);

/** How a peer's allowed IPs are routed. */
typedef enum wgam_route {
  WGAM_ROUTE_DIRECT = 0,        /* on the peer's own entry */
  WGAM_ROUTE_RELAY_PENDING = 1, /* moved to a relay, no Pong through it yet */
  WGAM_ROUTE_RELAYED = 2,       /* through a relay, confirmed by a Pong */
} wgam_route;

/** Returns "direct", "relay-pending" or "relayed". */
WGAM_EXTERN const char *wgam_route_name(int route);

/** One peer as the engine sees it. */
typedef struct wgam_peer_info {
  uint8_t pubkey[WGAM_KEY_LEN];
  wgam_addr address;
  /** The device's current endpoint and where it came from. */
  wgam_addr endpoint;
  int source;
  int state;
  int connected;
  /** Last handshake (Unix seconds, 0 never). */
  uint64_t last_handshake;
  /** Candidate tries since the last connection. */
  uint32_t tries;
  /** Times the engine wrote a new endpoint for this peer. */
  uint64_t endpoint_changes;
  /** Gossip store for this key, newest first. */
  size_t nknown;
  wgam_endpoint known[WGAM_MAX_ENDPOINTS];
  /** LAN endpoint, family NONE when unknown or stale. */
  wgam_addr lan_endpoint;
  /** The peer is a relay (from the configuration). */
  int relay;
  /** wgam_route, and the relay's key when it is not WGAM_ROUTE_DIRECT. */
  int route;
  uint8_t via[WGAM_KEY_LEN];
  /** Times this peer's route moved to a relay or back. */
  uint64_t route_changes;
} wgam_peer_info;

/** Returns the number of configured peers (ourselves excluded). */
WGAM_EXTERN size_t wgam_mesh_get_npeers(const wgam_mesh *mesh);

/**
 * Fills *@info for peer @idx (0 .. npeers-1, in configuration order).
 * Returns 0 or WGAM_ERR_INVALID_ARGUMENT.
 */
WGAM_EXTERN int wgam_mesh_get_peer_info(const wgam_mesh *mesh, size_t idx,
                                        wgam_peer_info *info);

/** Why a datagram was rejected (wgam_stats.rejected index). */
typedef enum wgam_reject {
  WGAM_REJECT_LENGTH = 0,
  WGAM_REJECT_AUTH = 1,
  WGAM_REJECT_DECODE = 2,
  WGAM_REJECT_UNKNOWN_KEY = 3,
  WGAM_REJECT_BAD_ENDPOINT = 4,
  WGAM_REJECT_OWN = 5,
  WGAM_REJECT_QUEUE_FULL = 6,
  WGAM_REJECT_COUNT = 7,
} wgam_reject;

/** Returns "length", "auth", "decode", "unknown_key", ... */
WGAM_EXTERN const char *wgam_reject_name(int reason);

/** Counters since creation. */
typedef struct wgam_stats {
  uint64_t pkts_in[WGAM_MSG_TYPE_COUNT];
  uint64_t pkts_out[WGAM_MSG_TYPE_COUNT];
  uint64_t bytes_in;
  uint64_t bytes_out;
  uint64_t rejected[WGAM_REJECT_COUNT];
  uint64_t endpoint_changes;
  uint64_t peer_updates;
  uint64_t state_writes;
  /** Moves of a peer's route to a relay or back. */
  uint64_t relay_switches;
  /** Our identity as read from the device, and our external endpoints. */
  uint8_t pubkey[WGAM_KEY_LEN];
  int has_pubkey;
  uint16_t listen_port;
  size_t nexternal;
  wgam_addr external[WGAM_MAX_EXTERNAL];
  /** Peers connected now. */
  size_t npeers_connected;
  /** Bytes the engine holds (tables and queues). */
  size_t mem_bytes;
} wgam_stats;

/** Fills *@stats. */
WGAM_EXTERN void wgam_mesh_get_stats(const wgam_mesh *mesh, wgam_stats *stats);

#ifdef __cplusplus
}
#endif

#endif /* WGAUTOMESH_H */
