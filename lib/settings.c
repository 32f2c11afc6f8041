/* SPDX-License-Identifier: MIT */
/*
 * The two timer presets. "classic" reproduces the original daemon: one
 * 30 s loop reads the device and moves every disconnected peer to its next
 * candidate. "fast" is ours: the device is read every 2 s, a candidate gets
 * one handshake window (WireGuard retries a handshake every 5 s), silent
 * paths are probed, and the state file follows changes.
 */
#include <string.h>

#include "internal.h"

static void settings_common(wgam_settings *s) {
  memset(s, 0, sizeof(*s));
  s->gossip_port = 1666;
  s->timeout = 300 * WGAM_SECONDS;
  s->gossip_interval = 300 * WGAM_SECONDS;
  s->lan_interval = 60 * WGAM_SECONDS;
  s->lan_timeout = 300 * WGAM_SECONDS;
  s->igd_interval = 60 * WGAM_SECONDS;
  s->keepalive_trying = 10;
  s->keepalive_connected = 30;
  s->max_peers = 16384;
  s->max_pending = 65536;
  s->log_level = WGAM_LOG_INFO;
}

int wgam_settings_default_versioned(int settings_version,
                                    wgam_settings *settings) {
  if (settings_version != WGAM_SETTINGS_VERSION_V1 || !settings)
    return WGAM_ERR_INVALID_ARGUMENT;
  settings_common(settings);
  settings->policy = WGAM_POLICY_FAST;
  /* WireGuard renews a session with traffic every 120 s and rejects one
   * older than 180 s: a handshake older than that means a broken path. */
  settings->timeout = 200 * WGAM_SECONDS;
  settings->device_interval = 2 * WGAM_SECONDS;
  settings->try_interval = 6 * WGAM_SECONDS;
  settings->backoff_min = 10 * WGAM_SECONDS;
  settings->backoff_max = 120 * WGAM_SECONDS;
  settings->persist_interval = 5 * WGAM_SECONDS;
  settings->probe_idle = 4 * WGAM_SECONDS;
  settings->probe_timeout = 1500 * WGAM_MILLISECONDS;
  return 0;
}

int wgam_settings_classic_versioned(int settings_version,
                                    wgam_settings *settings) {
  if (settings_version != WGAM_SETTINGS_VERSION_V1 || !settings)
    return WGAM_ERR_INVALID_ARGUMENT;
  settings_common(settings);
  settings->policy = WGAM_POLICY_CLASSIC;
  settings->device_interval = 30 * WGAM_SECONDS;
  settings->try_interval = 30 * WGAM_SECONDS;
  settings->backoff_min = 30 * WGAM_SECONDS;
  settings->backoff_max = 30 * WGAM_SECONDS;
  settings->persist_interval = 600 * WGAM_SECONDS;
  settings->probe_idle = 0;
  settings->probe_timeout = 0;
  return 0;
}

/*
 * Fixed timers and limits of the fast policy's machinery (the classic
 * policy uses none of them but answer_interval and queue_keep).
 */
const struct wgam_fixed wgam_fixed = {
    /* A peer that connects is asked for its store (a late joiner missed
     * the announces), but at most once per this interval overall. */
    .request_interval = 10 * WGAM_SECONDS,
    /* A replayed Request must not make us send the whole store again and
     * again: one answer per source per interval. */
    .answer_interval = 5 * WGAM_SECONDS,
    /* What a peer sends this soon after our Request is its answer: stored
     * and tried, not flooded again. */
    .answer_window = 3 * WGAM_SECONDS,
    /* ... and, with roam hints (no idle probes to find what the answer
     * hid), this soon after the first datagram of the answer: the whole
     * store is sent at once, and what comes later is news (a peer that
     * moved right after we asked), not part of it. The first datagram may
     * be news that crossed our Request: at start the answer itself came
     * 0.2-0.3 s after it (simulator, 50 nodes, loss; with 200 ms here
     * answers taken as news slowed the mesh from 1.3 to 2.1 s). */
    .answer_burst = 500 * WGAM_MILLISECONDS,
    /* A candidate is given at least this long before a newly learned one
     * replaces it (its handshake initiation is on its way); a LAN endpoint
     * heard by broadcast replaces it at once, and so does any when the try
     * only kept a path just found silent (nothing is on its way). */
    .min_try = 2 * WGAM_SECONDS,
    /*
     * WireGuard starts at most one handshake per peer every 5 s, counting
     * attempts it could not send for lack of an endpoint; a first
     * handshake can arrive before the other daemon configured us; and two
     * ends that configure each other at the same instant send crossing
     * initiations, neither answer accepted. Each makes a first try wait
     * 5 s for WireGuard's retry. So the device is read again this long
     * after such a try started and, with still no handshake, the peer is
     * removed and added back (it has no session to lose): a new peer
     * handshakes at once.
     */
    .early_retry = 1 * WGAM_SECONDS,
    /* The same when the try gave the entry its first endpoint: WireGuard
     * spent the initiation without one, so none of ours is under way; the
     * read right after the write says whether the other end's came, and
     * if not the entry is re-created at once (the greater key adds
     * early_stagger). Waiting longer only delays the pair: at 1,000 nodes
     * (simulator, seed 7) 100 ms here cost 100 ms of the time to full
     * mesh, and two ends that go at once cross no more often. */
    .early_first = 0,
    /* Bytes from a peer without a handshake are an initiation we answered.
     * If the answer was taken the initiator's first data follows within a
     * round trip, and re-creating the peer first would throw the session
     * away: the retry waits until the bytes are this old. */
    .early_quiet = 500 * WGAM_MILLISECONDS,
    /* After crossing initiations both ends would re-create each other at
     * the same instant and cross again: the greater public key waits this
     * much longer, so the other's fresh initiation finds it in place. Two
     * NAT-ed ends that learn of each other from the same news do so within
     * 150 ms of each other (simulator, 1,000 nodes), and a one-way trip
     * takes less: waiting longer only delays the greater key. */
    .early_stagger = 250 * WGAM_MILLISECONDS,
    /* First and smallest interval between Requests sent while some peers
     * have no candidate endpoint at all (news of them went past us while
     * we were not connected to those who spread it: at a thousand nodes
     * starting within a second, a tenth of them miss some, and this first
     * interval is what they wait; at 500 ms the last of them set the time
     * to full mesh, simulator seed 7, and a round costs one Request and
     * its answer). */
    .ask_min = 250 * WGAM_MILLISECONDS,
    .ask_max = 600 * WGAM_SECONDS,
    /* News about one subject is propagated at once, then held back for a
     * time that doubles while it keeps changing (a flapping peer does not
     * flood the mesh). */
    .prop_hold_min = 2 * WGAM_SECONDS,
    .prop_hold_max = 300 * WGAM_SECONDS,
    /* Liveness probes the whole engine may send per second in steady
     * state. */
    .probe_rate = 4,
    /* Peers asked for their store after the first device read. */
    .initial_requests = 3,
    /* Slots the datagram ring keeps once a burst is written out. */
    .queue_keep = 256,
    /* Reachability first: a peer without a direct path this long (never
     * connected since start, or since its path broke) is routed through a
     * connected relay while the direct path keeps being tried. Short: a
     * punch that works takes well under a second, and a direct handshake
     * moves the peer back at once. */
    .relay_after = 1 * WGAM_SECONDS,
    /* A Pong through the relay confirms it; without one this long the
     * next usable relay is taken (or the same one asked again). */
    .relay_confirm = 2 * WGAM_SECONDS,
    /* A confirmed relayed route is asked again this often, with two
     * Pings: the relay may have stopped forwarding or lost the peer, or
     * the other end moved to another relay (a packet is accepted only from
     * the entry that holds its source). A failed relay is left within
     * relay_probe + relay_confirm. */
    .relay_probe = 2500 * WGAM_MILLISECONDS,
    /* Two ends searching for a relay that carries their pair (one fresh,
     * the other with history, or a relay that failed them): the end with
     * the higher key goes round the relays, one per relay_dwell, while the
     * other holds each for a round and more (relay.c). Long enough for a
     * Ping through the relay and its answer. */
    .relay_dwell = 1 * WGAM_SECONDS,
    /* After this long without an answer the peer is likely away: the
     * round ends with a rest of 2 * relay_confirm, the failed relay is no
     * longer passed over, and the holding end holds each relay for two
     * rounds, so that a peer away costs a route change every few
     * seconds, not every second. */
    .relay_scan = 8 * WGAM_SECONDS,
    /* An announced time further ahead of our wall clock than this is
     * taken as our clock's now (store.c): clocks a little apart are
     * normal, a member a year ahead must not pin its endpoints. */
    .clock_slack = 60 * WGAM_SECONDS,
    /* A relayed peer's direct path is tried again at least this often
     * (the backoff would reach backoff_max): a NAT that changed kind or a
     * firewall rule lifted is found within this time. */
    .relay_direct_retry = 20 * WGAM_SECONDS,
    /* A try started, or gossip other than the answer came through the
     * tunnel from a peer whose path is probed: a handshake (or WireGuard's
     * roaming) is likely done within a round trip, so the device is read
     * again this soon rather than a device_interval later. */
    .read_soon = 150 * WGAM_MILLISECONDS,
    /* Gossip through the tunnel from a peer not seen connected proves a
     * session already made: the device is read at once, not read_soon
     * later, and then at most this often while such datagrams keep coming
     * (a node that starts hears from hundreds of peers within a round
     * trip). The read tells which peers are connected and where they are,
     * and a node starting learns its NAT-ed peers that much sooner. */
    .session_read_gap = 50 * WGAM_MILLISECONDS,
    /* News of another address of a connected peer (another node saw its
     * packets come from there) has it probed; a probe unanswered this long
     * while such news came is taken as the path gone, not probe_timeout:
     * a Pong takes a round trip, and the news says where to go. */
    .probe_news = 500 * WGAM_MILLISECONDS,
    /* ... or four times the slowest recent round trip of a probe, when
     * that is shorter, but not below this: on a path a few milliseconds
     * long the moved peer is tried at once, not half a second later. */
    .probe_news_min = 100 * WGAM_MILLISECONDS,
    /* At a node with an endpoint of its own configured, a Ping from a
     * connected peer has the device read at once (WireGuard roamed its
     * entry to where the Ping came from), at most this often: such a node
     * hears about one a second from the peers behind NATs of a small mesh,
     * and a read done in the Ping's wake-up costs less than one of its
     * own. */
    .ping_read_gap = 1 * WGAM_SECONDS,
    /* A probe round's first Ping goes alone and the others this much
     * later. Behind a NAT that lost its mappings (rebooted), each Ping
     * opens a new flow; set up together (WireGuard sends them from
     * parallel workers), the NAT finds no mapping of ours to reuse for
     * any of them and may give each its own port, and a peer then knows
     * only the port the others saw: the pair never meets again (five-node
     * rig). Once the first flow is set up, the NAT maps the others to
     * its port. */
    .round_stagger = 20 * WGAM_MILLISECONDS,
    /* A roam hint comes from a packet seen on its way to WireGuard, which
     * has yet to handle it (and move the peer's entry): the device is read
     * this much later, not at once. */
    .hint_settle = 10 * WGAM_MILLISECONDS,
    /* A roam hint (a packet to WireGuard's port from an address no peer
     * had) has the device read hint_settle later, or this long after the
     * last read:
     * the first packets of a peer that moved or starts come in a burst
     * (an initiation, then its data), and one read a little later serves
     * them all. It also bounds what a stranger spraying packets at the
     * port can cost (the daemon listens for the next hint only after the
     * read). */
    .hint_read_gap = 250 * WGAM_MILLISECONDS,
    /* With roam hints, the device is read this often while every path is
     * settled (none tried or probed): a move announces itself by a hint,
     * and what is left for periodic reads (handshakes growing old,
     * traffic that goes unanswered) is not urgent. */
    .rest_read = 30 * WGAM_SECONDS,
    /* With roam hints, a node behind a NAT has WireGuard send a persistent
     * keepalive this often to a few peers with an endpoint configured: when
     * its NAT reboots or takes another address, the first one after has
     * the move announced, so this bounds the time to heal (five-node rig:
     * half a heartbeat and about 0.5 s on average). WireGuard's, not
     * ours: it wakes no daemon. */
    .heartbeat = 2 * WGAM_SECONDS,
};
