#!/bin/bash
# SPDX-License-Identifier: MIT
#
# Kernel WireGuard in a QEMU micro-VM (software emulation: KVM is not usable
# on our machines). Builds a small initramfs from the installed Debian kernel's
# modules, busybox-static, iproute2, wireguard-tools, nftables and, when given,
# the wgautomesh daemon; boots it; parses the serial console. The guest side is
# tests/vm/init.
#
# Usage: run.sh [--wgnl PATH/TO/wgnl] [PATH/TO/wgautomesh]
#   wgnl (tests/vm/wgnl.c) exercises cli/wg_netlink.c alone: 1,000 peers set
#   and read back through split netlink messages; wgautomesh runs the daemons.
#   With neither, only the kernel WireGuard rig is proven.
# Exit: 0 pass, 1 fail (console printed), 77 qemu/kernel cannot be had at all.
# Env: VM_TIMEOUT (hard limit in seconds, default 300: a loaded host slows
# software emulation down, and that is no failure), VM_KEEP=1 keeps the
# work directory.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
wgnl=""
if [ "${1:-}" = --wgnl ]; then wgnl=$2; shift 2; fi
daemon=${1:-}
timeout_s=${VM_TIMEOUT:-300}
npeers_big=1000

skip() { echo "SKIP: $*"; exit 77; }
die() { echo "FAIL: $*"; exit 1; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

# Installs a package only when we can (root with apt); the caller decides
# what a failure means.
apt_install() {
  [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null || return 1
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >/dev/null 2>&1
}

# --- What we need on the host -------------------------------------------------
command -v qemu-system-x86_64 >/dev/null || apt_install qemu-system-x86 ||
  skip "qemu-system-x86_64 not installed and cannot be installed"
busybox_static() { [ -x /bin/busybox ] && ! ldd /bin/busybox >/dev/null 2>&1; }
busybox_static || apt_install busybox-static || true
busybox_static || skip "no static /bin/busybox (package busybox-static)"
command -v cpio >/dev/null || apt_install cpio || true
for t in cpio wg ip; do
  command -v $t >/dev/null || die "host tool '$t' missing"
done

# Newest installed kernel that ships a wireguard module.
find_kernel() {
  local v
  for v in $(ls /boot/vmlinuz-* 2>/dev/null | sed 's,^/boot/vmlinuz-,,' | sort -rV); do
    if ls /lib/modules/"$v"/kernel/drivers/net/wireguard/wireguard.ko* >/dev/null 2>&1 &&
       [ -r /boot/vmlinuz-"$v" ]; then
      echo "$v"
      return 0
    fi
  done
  return 1
}
kver=$(find_kernel) || { apt_install linux-image-amd64 && kver=$(find_kernel); } ||
  skip "no Debian kernel with wireguard.ko (linux-image-amd64) available"
moddir=/lib/modules/$kver

work=$(mktemp -d "${TMPDIR:-/tmp}/wgam-vm.XXXXXX")
qpid=""
cleanup() {
  [ -n "$qpid" ] && kill "$qpid" 2>/dev/null
  [ "${VM_KEEP:-0}" = 1 ] && echo "kept $work" || rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 1' INT TERM
root=$work/root
t_build=$(now)

# --- Initramfs ----------------------------------------------------------------
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,lib/modules,lib64,proc,sys,dev,run,tmp,etc,keys,cfg}
mkdir -p "$root"/var && ln -s ../run "$root"/var/run
cp /bin/busybox "$root"/bin/busybox
ln -s busybox "$root"/bin/sh
cp "$here"/init "$root"/init
chmod 755 "$root"/init

# Modules in load order: for each one asked, its modules.dep dependencies
# (listed so that the last must be loaded first), then itself. crc32c_generic
# is libcrc32c's softdep: without it nf_tables cannot load.
want="crc32c_generic wireguard veth nf_tables nft_chain_nat nft_masq nft_ct"
for m in $want; do
  line=$(grep -E "/$m\.ko(\.xz|\.zst|\.gz)?:" "$moddir"/modules.dep) ||
    die "module $m not in $moddir/modules.dep"
  for d in $(echo "${line#*:}" | tr ' ' '\n' | tac) "${line%%:*}"; do
    [ -n "$d" ] && echo "$d"
  done
done | awk '!seen[$0]++' >"$work"/modpaths
: >"$root"/modules.list
while read -r p; do
  name=$(basename "$p"); name=${name%%.ko*}
  case $p in
  *.xz) xz -dc "$moddir/$p" ;;
  *.zst) zstd -qdc "$moddir/$p" ;;
  *.gz) gzip -dc "$moddir/$p" ;;
  *) cat "$moddir/$p" ;;
  esac >"$root/lib/modules/$name.ko"
  echo "$name" >>"$root"/modules.list
done <"$work"/modpaths

# Programs and the shared libraries ldd finds for them. iproute2's ip goes to
# /usr/sbin: busybox's sh prefers its own `ip` applet, so the guest calls it by
# path.
add_prog() { # src dest
  cp -L "$1" "$root$2"
  ldd "$1" 2>/dev/null | awk '/=> \// { print $3 } /^\t\/[^ ]+ \(/ { print $1 }' |
    while read -r lib; do
      case $lib in
      */ld-linux*) cp -L "$lib" "$root"/lib64/ ;;
      *) cp -L "$lib" "$root"/lib/ ;;
      esac
    done
}
add_prog "$(command -v ip)" /usr/sbin/ip
add_prog "$(command -v wg)" /usr/sbin/wg
if command -v nft >/dev/null; then add_prog "$(command -v nft)" /usr/sbin/nft; fi
for p in "$wgnl" "$daemon"; do
  [ -z "$p" ] && continue
  [ -x "$p" ] || die "'$p' is not an executable"
  add_prog "$p" /usr/sbin/"$(basename "$p")"
done

# --- Keys and configs (made here: the guest has no entropy to wait for) ------
umask 077
key() { # name: writes keys/NAME.key and .pub
  wg genkey >"$root/keys/$1.key"
  wg pubkey <"$root/keys/$1.key" >"$root/keys/$1.pub"
}
for n in k1 k2 nl a b c d big; do key $n; done
umask 022
pub() { cat "$root/keys/$1.pub"; }

# Mesh nodes: a is public, b and c sit behind NAT routers, d joins on reload.
# peer_json NAME ADDRESS [ENDPOINT]
peer_json() {
  printf '{"pubkey":"%s","address":"%s"' "$(pub "$1")" "$2"
  [ -n "${3:-}" ] && printf ',"endpoint":"%s"' "$3"
  printf '}'
}
peers3="$(peer_json a 100.64.0.1 198.51.100.1:51820),$(peer_json b 100.64.0.2),$(peer_json c 100.64.0.3)"
peers4="$peers3,$(peer_json d 100.64.0.4 198.51.100.130:51820)"
node_cfg() { # name peers
  printf '{"interface":"wg0","gossip_port":1666,"gossip_secret":"vm-test-secret",'
  printf '"log_level":"debug","control_socket":"/run/wgam-%s.sock",' "$1"
  printf '"peers":[%s]}\n' "$2"
}
for n in a b c; do
  node_cfg $n "$peers3" >"$root/cfg/$n.json"
  node_cfg $n "$peers4" >"$root/cfg/$n-reload.json"
done
node_cfg d "$peers4" >"$root/cfg/d.json"

# 1,000 keys nobody holds (wg genkey output is as good a public key as any)
# for two cases, each checked against `wg show wg0 dump` in the guest:
# - nl*.set/.expect: updates applied by wgnl, then what the device must hold
#   (fields: public key, endpoint, allowed IPs, keepalive), first 1,000 new
#   peers, then a second round that removes some and moves others;
# - big.json/.expect: the daemon's config (one peer in ten with an endpoint)
#   and what its engine must ask for (public key, endpoint, allowed IPs).
for i in $(seq $npeers_big); do wg genkey; done 2>/dev/null >"$work"/keys
awk -v cfg="$root/cfg" -v self="$(pub big)" '
  {
    i = NR - 1; k = $1
    ip4 = "100.65." int(i / 250) "." (i % 250 + 1)
    ep = (i % 10 == 0) ? "203.0.113." (int(i / 10) % 250 + 1) ":" (20000 + i) : "-"
    ka = (i % 10 == 0) ? 25 : "-"
    print k, ep, ip4 "/32", ka > (cfg "/nl.set")
    print k "\t" (ep == "-" ? "(none)" : ep) "\t" ip4 "/32\t" (ka == "-" ? "off" : ka) > (cfg "/nl.expect")
    print k "\t" (ep == "-" ? "(none)" : ep) "\t" ip4 "/32" > (cfg "/big.expect")
    json = json sprintf(",{\"pubkey\":\"%s\",\"address\":\"%s\"%s}", k, ip4,
                        ep == "-" ? "" : ",\"endpoint\":\"" ep "\"")
    # Second round: every 100th peer from 5 leaves, every 100th from 7 moves
    # (endpoint only, so its allowed IP and keepalive must stay).
    if (i % 100 == 5) {
      print k, "remove" > (cfg "/nl2.set")
    } else {
      if (i % 100 == 7) {
        ep = "198.51.100." (int(i / 100) + 1) ":" (30000 + i)
        print k, ep, "-", "-" > (cfg "/nl2.set")
      }
      print k "\t" (ep == "-" ? "(none)" : ep) "\t" ip4 "/32\t" (ka == "-" ? "off" : ka) > (cfg "/nl2.expect")
    }
  }
  END {
    printf "{\"pubkey\":\"%s\",\"address\":\"100.65.255.254\"}%s", self, json > (cfg "/big.peers")
  }' "$work"/keys
node_cfg big "$(cat "$root"/cfg/big.peers)" >"$root"/cfg/big.json
rm "$root"/cfg/big.peers
sort -o "$root"/cfg/big.expect "$root"/cfg/big.expect
# One peer with more allowed IPs than a netlink message holds: the kernel
# splits it across dump messages and wgnl must join the parts.
awk 'BEGIN { for (i = 0; i < 600; i++) printf "%s10.%d.%d.0/24", i ? "," : "", int(i / 250), i % 250
             for (i = 0; i < 100; i++) printf ",fd00:%x::/64", i + 1 }' >"$root"/cfg/many.ips

(cd "$root" && find . | cpio -o -H newc -R 0:0 --quiet) >"$work"/initramfs.cpio
echo "initramfs: kernel $kver, $(wc -l <"$root"/modules.list) modules," \
  "$(($(stat -c %s "$work"/initramfs.cpio) / 1024)) KiB, built in $(since "$t_build") s"

# --- Boot ---------------------------------------------------------------------
console=$work/console.log
t_boot=$(now)
# In the background so that a signal to us (meson's timeout) stops qemu at
# once through the EXIT trap; timeout(1) passes the TERM on to qemu.
timeout -k 5 "$timeout_s" qemu-system-x86_64 -accel tcg -M pc -cpu max -smp 1 -m 256 \
  -nographic -no-reboot -nic none -kernel /boot/vmlinuz-"$kver" \
  -initrd "$work"/initramfs.cpio -append 'console=ttyS0 panic=-1 quiet' \
  </dev/null >"$console" 2>"$work"/qemu.err &
qpid=$!
rc=0
wait "$qpid" || rc=$?
qpid=""
tr -d '\r' <"$console" >"$console.txt"
echo "qemu exited $rc after $(since "$t_boot") s"
grep -ao "VMTEST: .*" "$console.txt" || true

if ! grep -aq "VMTEST: init" "$console.txt" && [ $rc != 0 ] && [ $rc != 124 ] &&
   [ $rc != 137 ]; then
  cat "$work"/qemu.err
  skip "qemu could not run (exit $rc)"
fi
want_line="VMTEST: PASS"
if grep -aq "$want_line" "$console.txt" && [ $rc = 0 ]; then
  exit 0
fi
echo "===== guest console ====="
cat "$console.txt"
echo "===== qemu stderr ====="
cat "$work"/qemu.err
[ $rc = 124 ] || [ $rc = 137 ] && die "hard timeout ${timeout_s}s hit"
die "guest did not report PASS"
