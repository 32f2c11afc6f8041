/* SPDX-License-Identifier: MIT */
/*
 * Kernel WireGuard over generic netlink (libnl-3, libnl-genl-3).
 *
 * libnl reports its own -NLE_* codes; they are mapped to -errno at the edge
 * (wg_nlerr_to_errno) and the kernel's own errno is taken from the error
 * message itself, so that callers only ever see -errno.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <netlink/attr.h>
#include <netlink/errno.h>
#include <netlink/genl/ctrl.h>
#include <netlink/genl/genl.h>
#include <netlink/msg.h>
#include <netlink/netlink.h>
#include <netlink/socket.h>

#include "log.h"
#include "sockaddr.h"
#include "wg_internal.h"
#include "wg_netlink.h"

/* Dumps interrupted by a concurrent change are retried this often. */
#define DUMP_RETRIES 16

struct wg_netlink {
  struct wg_backend b; /* first */
  struct nl_sock *sk;
  int family;
};

int wg_nlerr_to_errno(int nlerr) {
  switch (nlerr < 0 ? -nlerr : nlerr) {
  case NLE_SUCCESS:
    return 0;
  case NLE_INTR:
    return -EINTR;
  case NLE_BAD_SOCK:
    return -EBADF;
  case NLE_AGAIN:
  case NLE_DUMP_INTR:
    return -EAGAIN;
  case NLE_NOMEM:
    return -ENOMEM;
  case NLE_EXIST:
    return -EEXIST;
  case NLE_INVAL:
    return -EINVAL;
  case NLE_RANGE:
  case NLE_ATTRSIZE:
    return -ERANGE;
  case NLE_MSGSIZE:
  case NLE_MSG_TRUNC:
    return -EMSGSIZE;
  case NLE_OPNOTSUPP:
  case NLE_SRCRT_NOSUPPORT:
  case NLE_MSGTYPE_NOSUPPORT:
    return -EOPNOTSUPP;
  case NLE_AF_NOSUPPORT:
    return -EAFNOSUPPORT;
  case NLE_OBJ_NOTFOUND:
  case NLE_NOCACHE:
  case NLE_PKTLOC_FILE:
    return -ENOENT;
  case NLE_MSG_OVERFLOW:
    return -EOVERFLOW;
  case NLE_NOADDR:
    return -EADDRNOTAVAIL;
  case NLE_BUSY:
    return -EBUSY;
  case NLE_PROTO_MISMATCH:
    return -EPROTONOSUPPORT;
  case NLE_NOACCESS:
    return -EACCES;
  case NLE_PERM:
  case NLE_IMMUTABLE:
    return -EPERM;
  case NLE_NODEV:
    return -ENODEV;
  case NLE_NOATTR:
  case NLE_MISSING_ATTR:
  case NLE_AF_MISMATCH:
  case NLE_SEQ_MISMATCH:
  case NLE_MSG_TOOSHORT:
  case NLE_OBJ_MISMATCH:
  case NLE_PARSE_ERR:
    return -EPROTO;
  default:
    return -EIO;
  }
}

/* ---------------------------------------------------------------------- */
/* Building SET_DEVICE requests                                           */
/* ---------------------------------------------------------------------- */

void wg_nl_msgs_free(struct wg_nl_msgs *m) {
  size_t i;

  for (i = 0; i < m->n; i++)
    nlmsg_free(m->v[i]);
  free(m->v);
  memset(m, 0, sizeof(*m));
}

static int validate_update(const wgam_peer_update *u) {
  if (u->flags & WGAM_PEER_REMOVE_ME)
    return 0;
  if ((u->flags & WGAM_PEER_HAS_ENDPOINT) &&
      u->endpoint.family != WGAM_AF_INET && u->endpoint.family != WGAM_AF_INET6)
    return -EINVAL;
  if (u->nallowedips > WGAM_MAX_ALLOWEDIPS)
    return -EINVAL;
  for (size_t i = 0; i < u->nallowedips; i++) {
    const wgam_cidr *c = &u->allowedips[i];

    if (c->addr.family == WGAM_AF_INET    ? c->prefixlen > 32
        : c->addr.family == WGAM_AF_INET6 ? c->prefixlen > 128
                                          : 1)
      return -EINVAL;
  }
  return 0;
}

/* Starts a SET_DEVICE message naming the interface; appends it to @out. */
static struct nl_msg *new_set_msg(int family, const char *ifname,
                                  size_t msgsize, struct wg_nl_msgs *out) {
  struct nl_msg *msg;

  if (out->n == out->cap) {
    size_t cap = out->cap ? out->cap * 2 : 4;
    struct nl_msg **v = realloc(out->v, cap * sizeof(*v));

    if (!v)
      return NULL;
    out->v = v;
    out->cap = cap;
  }
  msg = nlmsg_alloc_size(msgsize);
  if (!msg)
    return NULL;
  if (!genlmsg_put(msg, NL_AUTO_PORT, NL_AUTO_SEQ, family, 0,
                   NLM_F_REQUEST | NLM_F_ACK, WG_CMD_SET_DEVICE,
                   WG_GENL_VERSION) ||
      nla_put_string(msg, WGDEVICE_A_IFNAME, ifname) < 0) {
    nlmsg_free(msg);
    return NULL;
  }
  out->v[out->n++] = msg;
  return msg;
}

/* Adds one peer nest to @msg. Returns 0 or -NLE_NOMEM when it is full. */
static int put_peer(struct nl_msg *msg, const wgam_peer_update *u) {
  struct nlattr *peer, *aips, *aip;
  uint32_t flags;

  peer = nla_nest_start(msg, NLA_F_NESTED);
  if (!peer)
    return -NLE_NOMEM;
  if (nla_put(msg, WGPEER_A_PUBLIC_KEY, WGAM_KEY_LEN, u->pubkey) < 0)
    goto full;
  if (u->flags & WGAM_PEER_REMOVE_ME) {
    if (nla_put_u32(msg, WGPEER_A_FLAGS, WGPEER_F_REMOVE_ME) < 0)
      goto full;
    goto done;
  }
  flags = u->flags & WGAM_PEER_REPLACE_ALLOWEDIPS ? WGPEER_F_REPLACE_ALLOWEDIPS
                                                  : WGPEER_F_UPDATE_ONLY;
  if (nla_put_u32(msg, WGPEER_A_FLAGS, flags) < 0)
    goto full;
  if (u->flags & WGAM_PEER_HAS_ENDPOINT) {
    /* Exact size, zeroed, port in network order: what the kernel copies. */
    struct sockaddr_storage ss;
    socklen_t sl = wgam_to_sockaddr(&ss, &u->endpoint);

    if (nla_put(msg, WGPEER_A_ENDPOINT, (int)sl, &ss) < 0)
      goto full;
  }
  if ((u->flags & WGAM_PEER_HAS_KEEPALIVE) &&
      nla_put_u16(msg, WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL,
                  u->persistent_keepalive) < 0)
    goto full;
  /* At most WGAM_MAX_ALLOWEDIPS: a peer's list always fits one message. */
  if (u->nallowedips) {
    aips = nla_nest_start(msg, WGPEER_A_ALLOWEDIPS | NLA_F_NESTED);
    if (!aips)
      goto full;
    for (size_t i = 0; i < u->nallowedips; i++) {
      const wgam_cidr *c = &u->allowedips[i];
      int v6 = c->addr.family == WGAM_AF_INET6;

      aip = nla_nest_start(msg, NLA_F_NESTED);
      if (!aip ||
          nla_put_u16(msg, WGALLOWEDIP_A_FAMILY, v6 ? AF_INET6 : AF_INET) < 0 ||
          nla_put(msg, WGALLOWEDIP_A_IPADDR, v6 ? 16 : 4, c->addr.ip) < 0 ||
          nla_put_u8(msg, WGALLOWEDIP_A_CIDR_MASK, c->prefixlen) < 0)
        goto full;
      nla_nest_end(msg, aip);
    }
    nla_nest_end(msg, aips);
  }
done:
  nla_nest_end(msg, peer);
  return 0;
full:
  /* Drops the partial peer, inner nests included. */
  nla_nest_cancel(msg, peer);
  return -NLE_NOMEM;
}

int wg_netlink_build_set(int family, const char *ifname,
                         const wgam_peer_update *upds, size_t n, size_t msgsize,
                         struct wg_nl_msgs *out) {
  struct nl_msg *msg = NULL;
  struct nlattr *peers = NULL;
  size_t i, inmsg = 0;
  int ret;

  if (!msgsize)
    msgsize = (size_t)sysconf(_SC_PAGESIZE);
  if (!wg_ifname_valid(ifname))
    return -EINVAL;
  for (i = 0; i < n; i++) {
    ret = validate_update(&upds[i]);
    if (ret < 0)
      return ret;
  }
  for (i = 0; i < n;) {
    if (!msg) {
      msg = new_set_msg(family, ifname, msgsize, out);
      if (!msg) {
        ret = -ENOMEM;
        goto err;
      }
      peers = nla_nest_start(msg, WGDEVICE_A_PEERS | NLA_F_NESTED);
      if (!peers) {
        ret = -EMSGSIZE;
        goto err;
      }
      inmsg = 0;
    }
    if (put_peer(msg, &upds[i]) == 0) {
      inmsg++;
      i++;
      continue;
    }
    if (!inmsg) {
      /* Even an empty message cannot hold this peer. */
      ret = -EMSGSIZE;
      goto err;
    }
    /* Close this message; the same peer starts the next one. */
    nla_nest_end(msg, peers);
    msg = NULL;
  }
  if (msg)
    nla_nest_end(msg, peers);
  return 0;
err:
  wg_nl_msgs_free(out);
  return ret;
}

/* ---------------------------------------------------------------------- */
/* Parsing GET_DEVICE dumps                                               */
/* ---------------------------------------------------------------------- */

static int parse_endpoint(wgam_addr *a, const struct nlattr *attr) {
  size_t len = (size_t)nla_len(attr);
  struct sockaddr_storage ss;
  sa_family_t fam;

  if (len < sizeof(fam))
    return -EPROTO;
  memcpy(&fam, nla_data(attr), sizeof(fam));
  memset(a, 0, sizeof(*a));
  if (fam == AF_UNSPEC)
    return 0; /* no endpoint */
  /* The kernel sends a sockaddr of exactly its family's size. */
  if ((fam != AF_INET || len != sizeof(struct sockaddr_in)) &&
      (fam != AF_INET6 || len != sizeof(struct sockaddr_in6)))
    return -EPROTO;
  memcpy(&ss, nla_data(attr), len);
  return sockaddr_to_wgam(a, (const struct sockaddr *)&ss, (socklen_t)len)
             ? -EPROTO
             : 0;
}

static int parse_allowedip(struct wg_dev *out, const struct nlattr *attr) {
  struct nlattr *tb[WGALLOWEDIP_A_MAX + 1];
  wgam_cidr c;
  uint16_t fam;
  size_t alen;

  if (nla_parse_nested(tb, WGALLOWEDIP_A_MAX, (struct nlattr *)attr, NULL) < 0)
    return -EPROTO;
  if (!tb[WGALLOWEDIP_A_FAMILY] || !tb[WGALLOWEDIP_A_IPADDR] ||
      !tb[WGALLOWEDIP_A_CIDR_MASK] || nla_len(tb[WGALLOWEDIP_A_FAMILY]) != 2 ||
      nla_len(tb[WGALLOWEDIP_A_CIDR_MASK]) != 1)
    return -EPROTO;
  memset(&c, 0, sizeof(c));
  memcpy(&fam, nla_data(tb[WGALLOWEDIP_A_FAMILY]), 2);
  alen = (size_t)nla_len(tb[WGALLOWEDIP_A_IPADDR]);
  if (fam == AF_INET && alen == 4)
    c.addr.family = WGAM_AF_INET;
  else if (fam == AF_INET6 && alen == 16)
    c.addr.family = WGAM_AF_INET6;
  else
    return -EPROTO;
  memcpy(c.addr.ip, nla_data(tb[WGALLOWEDIP_A_IPADDR]), alen);
  c.prefixlen = *(const uint8_t *)nla_data(tb[WGALLOWEDIP_A_CIDR_MASK]);
  if (c.prefixlen > alen * 8)
    return -EPROTO;
  return wg_dev_add_allowedip(out, &c);
}

static int parse_peer(struct wg_dev *out, const struct nlattr *attr) {
  struct nlattr *tb[WGPEER_A_MAX + 1], *a;
  wgam_device_peer *p;
  const uint8_t *key;
  int rem, ret;

  if (nla_parse_nested(tb, WGPEER_A_MAX, (struct nlattr *)attr, NULL) < 0)
    return -EPROTO;
  if (!tb[WGPEER_A_PUBLIC_KEY] ||
      nla_len(tb[WGPEER_A_PUBLIC_KEY]) != WGAM_KEY_LEN)
    return -EPROTO;
  key = nla_data(tb[WGPEER_A_PUBLIC_KEY]);
  if (out->dev.npeers &&
      !memcmp(out->peers[out->dev.npeers - 1].pubkey, key, WGAM_KEY_LEN)) {
    /* The rest of a peer the previous message ran out of room for. */
    p = &out->peers[out->dev.npeers - 1];
  } else {
    ret = wg_dev_add_peer(out, &p);
    if (ret < 0)
      return ret;
    memcpy(p->pubkey, key, WGAM_KEY_LEN);
  }
  if (tb[WGPEER_A_ENDPOINT]) {
    ret = parse_endpoint(&p->endpoint, tb[WGPEER_A_ENDPOINT]);
    if (ret < 0)
      return ret;
  }
  if ((a = tb[WGPEER_A_LAST_HANDSHAKE_TIME])) {
    /* struct __kernel_timespec; 32-bit struct timespec on old modules. */
    if (nla_len(a) == 16) {
      int64_t sec;

      memcpy(&sec, nla_data(a), 8);
      p->last_handshake = sec > 0 ? (uint64_t)sec : 0;
    } else if (nla_len(a) == 8) {
      int32_t sec;

      memcpy(&sec, nla_data(a), 4);
      p->last_handshake = sec > 0 ? (uint64_t)sec : 0;
    } else {
      return -EPROTO;
    }
  }
  if ((a = tb[WGPEER_A_RX_BYTES])) {
    if (nla_len(a) != 8)
      return -EPROTO;
    memcpy(&p->rx_bytes, nla_data(a), 8);
  }
  if ((a = tb[WGPEER_A_TX_BYTES])) {
    if (nla_len(a) != 8)
      return -EPROTO;
    memcpy(&p->tx_bytes, nla_data(a), 8);
  }
  if ((a = tb[WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL])) {
    if (nla_len(a) != 2)
      return -EPROTO;
    memcpy(&p->persistent_keepalive, nla_data(a), 2);
  }
  if (tb[WGPEER_A_ALLOWEDIPS]) {
    nla_for_each_nested(a, tb[WGPEER_A_ALLOWEDIPS], rem) {
      ret = parse_allowedip(out, a);
      if (ret < 0)
        return ret;
    }
  }
  return 0;
}

static int parse_attrs(struct nlattr *attrs, int attrlen, struct wg_dev *out) {
  struct nlattr *tb[WGDEVICE_A_MAX + 1], *a;
  int rem, ret;

  if (nla_parse(tb, WGDEVICE_A_MAX, attrs, attrlen, NULL) < 0)
    return -EPROTO;
  /* Device attributes come with the first message only. */
  if ((a = tb[WGDEVICE_A_PUBLIC_KEY])) {
    static const uint8_t zero[WGAM_KEY_LEN];

    if (nla_len(a) != WGAM_KEY_LEN)
      return -EPROTO;
    memcpy(out->dev.pubkey, nla_data(a), WGAM_KEY_LEN);
    out->dev.has_pubkey = memcmp(out->dev.pubkey, zero, WGAM_KEY_LEN) != 0;
  }
  if ((a = tb[WGDEVICE_A_LISTEN_PORT])) {
    if (nla_len(a) != 2)
      return -EPROTO;
    memcpy(&out->dev.listen_port, nla_data(a), 2);
  }
  if (tb[WGDEVICE_A_PEERS]) {
    nla_for_each_nested(a, tb[WGDEVICE_A_PEERS], rem) {
      ret = parse_peer(out, a);
      if (ret < 0)
        return ret;
    }
  }
  return 0;
}

int wg_netlink_parse_dump_msg(const void *buf, size_t len, struct wg_dev *out) {
  const size_t hdrlen = NLMSG_HDRLEN + GENL_HDRLEN;
  struct nlmsghdr nlh;
  void *copy = NULL;
  int ret;

  if (len < hdrlen)
    return -EPROTO;
  memcpy(&nlh, buf, sizeof(nlh));
  if (nlh.nlmsg_len < hdrlen || nlh.nlmsg_len > len ||
      nlh.nlmsg_len > INT32_MAX)
    return -EPROTO;
  /* Attributes are read in place: give them an aligned copy if needed. */
  if ((uintptr_t)buf % NLA_ALIGNTO) {
    copy = malloc(nlh.nlmsg_len);
    if (!copy)
      return -ENOMEM;
    memcpy(copy, buf, nlh.nlmsg_len);
    buf = copy;
  }
  ret = parse_attrs((struct nlattr *)((char *)buf + hdrlen),
                    (int)(nlh.nlmsg_len - hdrlen), out);
  free(copy);
  return ret;
}

void wg_netlink_finish_dump(struct wg_dev *out) {
  wg_dev_finish(out);
}

/* ---------------------------------------------------------------------- */
/* Socket I/O                                                             */
/* ---------------------------------------------------------------------- */

struct recv_ctx {
  struct wg_dev *out; /* for dumps */
  int err;            /* first -errno: kernel's, or ours while parsing */
};

static int on_valid(struct nl_msg *msg, void *arg) {
  struct recv_ctx *ctx = arg;
  struct nlmsghdr *nlh = nlmsg_hdr(msg);
  int ret;

  /* After an error, keep reading to the end of the dump so that no stale
   * message is left in the socket for the next request. */
  if (ctx->err || !ctx->out)
    return NL_SKIP;
  ret = wg_netlink_parse_dump_msg(nlh, nlh->nlmsg_len, ctx->out);
  if (ret < 0)
    ctx->err = ret;
  return NL_OK;
}

static int on_error(struct sockaddr_nl *nla, struct nlmsgerr *e, void *arg) {
  struct recv_ctx *ctx = arg;

  (void)nla;
  if (!ctx->err)
    ctx->err = e->error < 0 ? e->error : -EIO;
  return NL_STOP;
}

static int on_ack(struct nl_msg *msg, void *arg) {
  (void)msg;
  (void)arg;
  return NL_STOP;
}

/* Sends @msg (completing its header) and processes replies until the ack,
 * the end of the dump or an error. */
static int transact(struct wg_netlink *w, struct nl_msg *msg,
                    struct recv_ctx *ctx) {
  struct nl_cb *cb;
  int ret;

  ret = nl_send_auto(w->sk, msg);
  if (ret < 0)
    return wg_nlerr_to_errno(ret);
  cb = nl_cb_alloc(NL_CB_DEFAULT);
  if (!cb)
    return -ENOMEM;
  nl_cb_set(cb, NL_CB_VALID, NL_CB_CUSTOM, on_valid, ctx);
  nl_cb_set(cb, NL_CB_ACK, NL_CB_CUSTOM, on_ack, ctx);
  nl_cb_err(cb, NL_CB_CUSTOM, on_error, ctx);
  ret = nl_recvmsgs(w->sk, cb);
  nl_cb_put(cb);
  /* The kernel's errno beats libnl's translation of it. */
  if (ctx->err)
    return ctx->err;
  if (ret == -NLE_DUMP_INTR)
    return -EINTR;
  return ret < 0 ? wg_nlerr_to_errno(ret) : 0;
}

static int wgnl_get(wg_backend *b, struct wg_dev *out) {
  struct wg_netlink *w = (struct wg_netlink *)b;
  struct nl_msg *msg = NULL;
  int tries, ret = -EAGAIN;

  for (tries = 0; tries < DUMP_RETRIES; tries++) {
    struct recv_ctx ctx = {out, 0};

    wg_dev_reset(out);
    msg = nlmsg_alloc();
    if (!msg)
      return -ENOMEM;
    if (!genlmsg_put(msg, NL_AUTO_PORT, NL_AUTO_SEQ, w->family, 0,
                     NLM_F_REQUEST | NLM_F_DUMP, WG_CMD_GET_DEVICE,
                     WG_GENL_VERSION) ||
        nla_put_string(msg, WGDEVICE_A_IFNAME, b->ifname) < 0) {
      nlmsg_free(msg);
      return -ENOMEM;
    }
    ret = transact(w, msg, &ctx);
    nlmsg_free(msg);
    /* A peer changed during the dump: the pieces may not fit together. */
    if (ret != -EINTR)
      break;
    log_debug("%s: netlink dump interrupted, retrying", b->ifname);
  }
  if (ret == -EINTR)
    ret = -EAGAIN;
  if (ret == -EOPNOTSUPP)
    ret = -ENODEV; /* an interface, but not a WireGuard one */
  return ret;
}

static int wgnl_set(wg_backend *b, const wgam_peer_update *upds, size_t n) {
  struct wg_netlink *w = (struct wg_netlink *)b;
  struct wg_nl_msgs msgs = {0};
  size_t i;
  int ret;

  ret = wg_netlink_build_set(w->family, b->ifname, upds, n, 0, &msgs);
  if (ret < 0)
    return ret;
  for (i = 0; i < msgs.n; i++) {
    struct recv_ctx ctx = {NULL, 0};

    /* The kernel applies peers one at a time and may stop midway; the
     * caller reconciles at its next read. */
    ret = transact(w, msgs.v[i], &ctx);
    if (ret < 0) {
      log_warn("%s: netlink set (message %zu of %zu) failed: %s", b->ifname,
               i + 1, msgs.n, strerror(-ret));
      break;
    }
  }
  wg_nl_msgs_free(&msgs);
  return ret;
}

static void wgnl_close(wg_backend *b) {
  struct wg_netlink *w = (struct wg_netlink *)b;

  nl_socket_free(w->sk);
  free(w);
}

static const struct wg_backend_ops netlink_ops = {
    .name = "netlink",
    .get = wgnl_get,
    .set = wgnl_set,
    .close = wgnl_close,
};

int wg_netlink_open(wg_backend **pb, const char *ifname) {
  struct wg_netlink *w = NULL;
  struct wg_dev probe;
  int ret;

  *pb = NULL;
  if (!wg_ifname_valid(ifname))
    return -EINVAL;
  if (!if_nametoindex(ifname))
    return -ENODEV;
  w = calloc(1, sizeof(*w));
  if (!w)
    return -ENOMEM;
  w->b.ops = &netlink_ops;
  strcpy(w->b.ifname, ifname);
  w->sk = nl_socket_alloc();
  if (!w->sk) {
    ret = -ENOMEM;
    goto err;
  }
  ret = genl_connect(w->sk);
  if (ret < 0) {
    ret = wg_nlerr_to_errno(ret);
    goto err;
  }
  /* Dump messages may exceed the default buffer: peek at their size. */
  nl_socket_enable_msg_peek(w->sk);
  ret = genl_ctrl_resolve(w->sk, WG_GENL_NAME);
  if (ret < 0) {
    /* No WireGuard in this kernel, so @ifname cannot be a WireGuard one. */
    log_debug("%s: generic netlink family \"%s\" not found", ifname,
              WG_GENL_NAME);
    ret = -ENODEV;
    goto err;
  }
  w->family = ret;
  /* Fail at open, not at the first read, for a non-WireGuard interface. */
  wg_dev_init(&probe);
  ret = wgnl_get(&w->b, &probe);
  wg_dev_free(&probe);
  if (ret < 0)
    goto err;
  *pb = &w->b;
  return 0;
err:
  if (w->sk)
    nl_socket_free(w->sk);
  free(w);
  return ret;
}
