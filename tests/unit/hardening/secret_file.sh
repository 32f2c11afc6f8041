#!/bin/bash
# SPDX-License-Identifier: MIT
#
# `wgautomesh check` on bad secret files, with exact output and exit codes:
# missing, unreadable, empty, too long, a directory (errors: exit 2), and
# world- or group-readable (a warning: exit 0); and a config file over the
# 16 MiB bound.
#
# Usage: secret_file.sh WGAUTOMESH
set -u

WGAM=$(realpath "$1")
TMP=$(mktemp -d /tmp/hdn-secret-XXXXXX)
trap 'rm -rf "$TMP"' EXIT
chmod 755 "$TMP"
fails=0

K1=lEFx+aA1pzIMPOhRAwFvmTJ1GL6enLup7Tt6y0PDd1k=
K2=NpGxDw7K3av+GCqvk91iGMzXatjSG08RDFN/gHLAnFM=
CFG=$TMP/config.json
write_config() { # SECRET_PATH
  cat >"$CFG" <<EOC
{"interface": "hdn0", "gossip_port": 1666, "gossip_secret_file": "$1",
 "peers": [{"pubkey": "$K1", "address": "100.64.0.1"},
           {"pubkey": "$K2", "address": "100.64.0.2"}]}
EOC
  chmod 644 "$CFG"
}

# Runs `check` (as the user in $AS, if set) and compares exit code, stdout
# and stderr with the expectation.
expect() { # NAME RC STDOUT STDERR
  local out err rc
  if [ -n "${AS:-}" ]; then
    timeout 10 setpriv --reuid="$AS" --regid="$AS" --clear-groups \
      "$WGAM" check "$CFG" >"$TMP/out" 2>"$TMP/err"
  else
    timeout 10 "$WGAM" check "$CFG" >"$TMP/out" 2>"$TMP/err"
  fi
  rc=$?
  out=$(cat "$TMP/out")
  err=$(cat "$TMP/err")
  if [ "$rc" != "$2" ] || [ "$out" != "$3" ] || [ "$err" != "$4" ]; then
    echo "FAIL: $1"
    echo "  expected rc=$2 stdout=[$3] stderr=[$4]"
    echo "  got      rc=$rc stdout=[$out] stderr=[$err]"
    fails=$((fails + 1))
  else
    echo "ok: $1"
  fi
}

OK="$CFG: ok (interface hdn0, 2 peers)"

# A good secret file, mode 600.
printf 's3cret\n' >"$TMP/good" && chmod 600 "$TMP/good"
write_config "$TMP/good"
expect "mode 600" 0 "$OK" ""

write_config "$TMP/missing"
expect "missing" 2 "" \
  "$CFG: gossip_secret_file: cannot read $TMP/missing: No such file or directory"

: >"$TMP/empty" && chmod 600 "$TMP/empty"
write_config "$TMP/empty"
expect "empty" 2 "" "$CFG: gossip_secret_file: $TMP/empty is empty"

head -c 4097 /dev/zero | tr '\0' x >"$TMP/long" && chmod 600 "$TMP/long"
write_config "$TMP/long"
expect "longer than 4096 bytes" 2 "" \
  "$CFG: gossip_secret_file: $TMP/long is longer than 4096 bytes"
head -c 4096 /dev/zero | tr '\0' x >"$TMP/long" && chmod 600 "$TMP/long"
expect "exactly 4096 bytes" 0 "$OK" ""

mkdir "$TMP/dir"
write_config "$TMP/dir"
expect "a directory" 2 "" "$CFG: gossip_secret_file: $TMP/dir is not a regular file"

# A FIFO must be refused, not waited on: open() blocks on a FIFO without
# O_NONBLOCK until a writer comes, so `check` would hang.
mkfifo -m 600 "$TMP/fifo"
write_config "$TMP/fifo"
expect "a FIFO" 2 "" "$CFG: gossip_secret_file: $TMP/fifo is not a regular file"

printf 's3cret\n' >"$TMP/world" && chmod 644 "$TMP/world"
write_config "$TMP/world"
expect "world-readable" 0 "$OK" \
  "warning: $CFG: gossip_secret_file: $TMP/world is readable by group or others (chmod 600 it)"
chmod 640 "$TMP/world"
expect "group-readable" 0 "$OK" \
  "warning: $CFG: gossip_secret_file: $TMP/world is readable by group or others (chmod 600 it)"

# Unreadable: mode 000. root reads anything, so as root check runs as
# nobody (the file then belongs to root with mode 600).
printf 's3cret\n' >"$TMP/unreadable"
write_config "$TMP/unreadable"
if [ "$(id -u)" = 0 ]; then
  chmod 600 "$TMP/unreadable"
  if command -v setpriv >/dev/null; then
    AS=65534 expect "unreadable (as nobody)" 2 "" \
      "$CFG: gossip_secret_file: cannot read $TMP/unreadable: Permission denied"
  else
    echo "note: no setpriv: the unreadable case is not run as root"
  fi
else
  chmod 000 "$TMP/unreadable"
  expect "unreadable (mode 000)" 2 "" \
    "$CFG: gossip_secret_file: cannot read $TMP/unreadable: Permission denied"
fi

# Problems add up: one line each.
cat >"$CFG" <<EOC
{"interface": "hdn0", "gossip_port": 1666, "gossip_secret_file": "$TMP/empty",
 "peers": [{"pubkey": "$K1", "address": "100.64.0.1"},
           {"pubkey": "$K1", "address": "100.64.0.1"}]}
EOC
expect "empty secret and duplicate peers" 2 "" \
  "$CFG: gossip_secret_file: $TMP/empty is empty
$CFG: peers[1].pubkey: duplicate of peers[0].pubkey
$CFG: peers[1].address: duplicate of peers[0].address"

# The config file itself a FIFO.
mv "$CFG" "$CFG.saved"
mkfifo -m 644 "$CFG"
expect "config is a FIFO" 2 "" "$CFG: not a regular file"
rm -f "$CFG"
mv "$CFG.saved" "$CFG"

# A config file larger than CONFIG_MAX_FILE (16 MiB) is refused unread.
truncate -s $((16 * 1024 * 1024 + 1)) "$CFG"
expect "config over 16 MiB" 2 "" "$CFG: larger than 16777216 bytes"

if [ $fails != 0 ]; then
  echo "FAIL: $fails case(s)"
  exit 1
fi
echo PASS
