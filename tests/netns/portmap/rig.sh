# SPDX-License-Identifier: MIT
# Test rig for the UPnP tests, sourced by the test scripts.
#
#   public host P 198.51.100.1 (STUN responder) --+
#                                                 | bridge in namespace W
#   router R wan 198.51.100.11 -------------------+
#   router R lan 192.168.1.1 (bridge, NAT, miniupnpd)
#     +-- LAN host A 192.168.1.2
#     +-- LAN host B 192.168.1.3
#
# Every name starts with "upn" and a per-run suffix; everything is removed on
# exit. Skips (77) only without root, ip netns, miniupnpd or python3.

set -u

skip() { echo "SKIP: $*"; exit 77; }
die() { echo "FAIL: $*"; exit 1; }

[ "$(id -u)" = 0 ] || skip "needs root"
command -v ip >/dev/null || skip "no iproute2"
command -v nft >/dev/null || skip "no nft"
MINIUPNPD=$(command -v miniupnpd || echo /usr/sbin/miniupnpd)
[ -x "$MINIUPNPD" ] || skip "no miniupnpd"
command -v python3 >/dev/null || skip "no python3"

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
S=$(( $$ % 100000 ))
NW=upn${S}w NP=upn${S}p NR=upn${S}r NA=upn${S}a NB=upn${S}b
RWAN=upn${S}rw RLAN=upn${S}lb
PUB_IP=198.51.100.1 ROUTER_WAN=198.51.100.11
A_IP=192.168.1.2 B_IP=192.168.1.3
# upnpc 2.2.4 refuses an IGD with a reserved external address unless -i;
# -u skips its own 2 s discovery.
UPNPC="upnpc -i -u http://192.168.1.1:5000/rootDesc.xml"
TMP=$(mktemp -d /tmp/upnp-test.XXXXXX)
PIDS=()

cleanup() {
  local i
  # Newest first: daemons go before the miniupnpd they talk to.
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
    kill "${PIDS[i]}" 2>/dev/null || continue
    # Bounded: a process stuck in its shutdown gets SIGKILL after 5 s.
    for _ in $(seq 50); do
      kill -0 "${PIDS[i]}" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "${PIDS[i]}" 2>/dev/null
    wait "${PIDS[i]}" 2>/dev/null
  done
  for ns in "$NA" "$NB" "$NR" "$NP" "$NW"; do
    ip netns del "$ns" 2>/dev/null
  done
  if [ -n "${KEEP_TMP:-}" ]; then echo "logs kept in $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# Starts "$@" in the background and remembers its PID for cleanup.
bg() {
  "$@" &
  PIDS+=($!)
}

rig_up() {
  ip netns add "$NW" || skip "cannot create network namespaces"
  for ns in "$NP" "$NR" "$NA" "$NB"; do
    ip netns add "$ns" || die "netns add $ns"
  done
  for ns in "$NW" "$NP" "$NR" "$NA" "$NB"; do
    ip -n "$ns" link set lo up
  done

  ip -n "$NW" link add upn${S}wb type bridge
  ip -n "$NW" link set upn${S}wb up
  ip -n "$NW" link add upn${S}wp type veth peer name upn${S}pe netns "$NP"
  ip -n "$NW" link add upn${S}wr type veth peer name "$RWAN" netns "$NR"
  for l in upn${S}wp upn${S}wr; do
    ip -n "$NW" link set "$l" master upn${S}wb up
  done
  ip -n "$NP" addr add $PUB_IP/24 dev upn${S}pe
  ip -n "$NP" link set upn${S}pe up

  ip -n "$NR" addr add $ROUTER_WAN/24 dev "$RWAN"
  ip -n "$NR" link set "$RWAN" up
  ip -n "$NR" route add default via $PUB_IP
  ip -n "$NR" link add "$RLAN" type bridge
  ip -n "$NR" addr add 192.168.1.1/24 dev "$RLAN"
  ip -n "$NR" link set "$RLAN" up
  # Link-local multicast (NAT-PMP/PCP announcements to 224.0.0.1) goes to
  # the LAN, not along the default route to the WAN.
  ip -n "$NR" route add 224.0.0.0/24 dev "$RLAN"
  ip netns exec "$NR" sysctl -qw net.ipv4.ip_forward=1

  ip -n "$NR" link add upn${S}ra type veth peer name upn${S}ae netns "$NA"
  ip -n "$NR" link add upn${S}rb type veth peer name upn${S}be netns "$NB"
  ip -n "$NR" link set upn${S}ra master "$RLAN" up
  ip -n "$NR" link set upn${S}rb master "$RLAN" up
  ip -n "$NA" addr add $A_IP/24 dev upn${S}ae
  ip -n "$NA" link set upn${S}ae up
  ip -n "$NA" route add default via 192.168.1.1
  ip -n "$NB" addr add $B_IP/24 dev upn${S}be
  ip -n "$NB" link set upn${S}be up
  ip -n "$NB" route add default via 192.168.1.1

  # The router's firewall: miniupnpd's chains (as its nft backend expects
  # them), masquerade to the WAN, and no unsolicited UDP to the router itself.
  ip netns exec "$NR" nft -f - <<NFT || die "nft rules"
table inet filter {
  chain miniupnpd { }
  chain prerouting_miniupnpd { }
  chain postrouting_miniupnpd { }
  chain forward {
    type filter hook forward priority filter; policy drop;
    ct state established,related accept
    iifname "$RLAN" accept
    jump miniupnpd
  }
  chain input {
    type filter hook input priority filter;
    iifname "$RWAN" ct state new meta l4proto udp drop
  }
  chain prerouting {
    type nat hook prerouting priority -100;
    jump prerouting_miniupnpd
  }
  chain postrouting {
    type nat hook postrouting priority 100;
    jump postrouting_miniupnpd
    oifname "$RWAN" masquerade
  }
}
NFT
}

# Routed IPv6 (no NAT, as real IPv6): public fd00:100::/64, LAN fd00:1::/64.
PUB_IP6=fd00:100::1 ROUTER_WAN6=fd00:100::11 A_IP6=fd00:1::2
rig_ipv6() {
  ip -n "$NP" addr add $PUB_IP6/64 dev upn${S}pe nodad
  ip -n "$NP" route add fd00:1::/64 via $ROUTER_WAN6
  ip -n "$NR" addr add $ROUTER_WAN6/64 dev "$RWAN" nodad
  ip -n "$NR" addr add fd00:1::1/64 dev "$RLAN" nodad
  ip netns exec "$NR" sysctl -qw net.ipv6.conf.all.forwarding=1
  ip -n "$NA" addr add $A_IP6/64 dev upn${S}ae nodad
  ip -n "$NA" route add default via fd00:1::1
}

stun_up() {
  bg ip netns exec "$NP" python3 "$HERE/stun_responder.py" $PUB_IP 3478
}

# Starts miniupnpd on the router and waits until it accepts forwarding;
# with MINIUPNPD_IPV6=1 it also serves IPv6 (pinholes). MINIUPNPD_UPNP
# (default yes) and MINIUPNPD_NATPMP (NAT-PMP and PCP on UDP 5351, default
# no) choose the protocols it speaks.
miniupnpd_up() {
  local v6off=yes
  [ -n "${MINIUPNPD_IPV6:-}" ] && v6off=no
  cat > "$TMP/miniupnpd.conf" <<CONF
ext_ifname=$RWAN
listening_ip=$RLAN
http_port=5000
enable_upnp=${MINIUPNPD_UPNP:-yes}
enable_natpmp=${MINIUPNPD_NATPMP:-no}
min_lifetime=10
secure_mode=yes
system_uptime=yes
ipv6_disable=$v6off
uuid=3a7e9c52-5d0b-4c1e-9f4e-$(printf %012d $S)
lease_file=$TMP/leases
ext_perform_stun=yes
ext_stun_host=$PUB_IP
ext_stun_port=3478
allow 1024-65535 192.168.1.0/24 1024-65535
deny 0-65535 0.0.0.0/0 0-65535
CONF
  : > "$TMP/miniupnpd.log"
  bg ip netns exec "$NR" "$MINIUPNPD" -d -f "$TMP/miniupnpd.conf" \
    -P "$TMP/miniupnpd.pid" >"$TMP/miniupnpd.log" 2>&1
  local i
  for i in $(seq 100); do
    grep -q "Port forwarding is now enabled" "$TMP/miniupnpd.log" && return 0
    sleep 0.1
  done
  cat "$TMP/miniupnpd.log"
  die "miniupnpd did not enable port forwarding"
}

# Prints the router's UPnP DNAT rules.
router_rules() {
  ip netns exec "$NR" nft list chain inet filter prerouting_miniupnpd
}

# node NAME NS MESHIP: a wireguard-go interface upn$S g NAME in NS with a
# new key (in $TMP/NAME.key, .pub), listening on $WGPORT, MESHIP/24 on it.
node() {
  local ifn=upn${S}g$1 ns=$2
  umask 077
  wg genkey > "$TMP/$1.key"
  wg pubkey < "$TMP/$1.key" > "$TMP/$1.pub"
  bg ip netns exec "$ns" env WG_PROCESS_FOREGROUND=1 wireguard-go -f "$ifn" \
    >"$TMP/wg-$1.log" 2>&1
  for i in $(seq 50); do
    [ -S /var/run/wireguard/$ifn.sock ] && break
    sleep 0.1
  done
  ip netns exec "$ns" wg set "$ifn" private-key "$TMP/$1.key" listen-port $WGPORT ||
    die "wg set $ifn"
  ip -n "$ns" addr add "$3/24" dev "$ifn"
  ip -n "$ns" link set "$ifn" up
}

# write_hooks SETTLE [CHECK]: the driver's hooks in $TMP. mapped.sh: the
# router's rule is in place, CHECK (shell lines) passes, a datagram from the
# public host to the router's WAN port $EXT reaches A on $INT, then after
# SETTLE seconds the lease is noted; renewed.sh: the lease's expiry moves
# forward; stopped.sh: gone from the rules and the lease file.
write_hooks() {
  local settle=$1 check=${2:-}
  cat > "$TMP/mapped.sh" <<HOOK
set -e
ip netns exec $NR nft list chain inet filter prerouting_miniupnpd | grep -q "dport $EXT dnat ip to $A_IP:$INT"
$check
ip netns exec $NA timeout 5 python3 -c '
import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("$A_IP", $INT)); print(s.recvfrom(100)[0].decode(), flush=True)' > $TMP/recv.out &
sleep 0.5
ip netns exec $NP python3 -c '
import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.sendto(b"through-the-mapping", ("$ROUTER_WAN", $EXT))'
wait
grep -q through-the-mapping $TMP/recv.out
sleep $settle
grep "^UDP:$EXT:" $TMP/leases > $TMP/lease.before
HOOK
  cat > "$TMP/renewed.sh" <<HOOK
for i in \$(seq 50); do
  b=\$(cut -d: -f5 $TMP/lease.before)
  a=\$(grep "^UDP:$EXT:" $TMP/leases | cut -d: -f5)
  [ -n "\$a" ] && [ "\$a" -gt "\$b" ] && exit 0
  sleep 0.1
done
echo "lease not renewed: before \$b after \$a"; exit 1
HOOK
  cat > "$TMP/stopped.sh" <<HOOK
! ip netns exec $NR nft list chain inet filter prerouting_miniupnpd | grep -q "dport $EXT" &&
! grep -q "^UDP:$EXT:" $TMP/leases
HOOK
}
