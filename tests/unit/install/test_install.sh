#!/bin/sh
# SPDX-License-Identifier: MIT
# Installs the build into a temporary root (meson install --destdir) and
# uses the installed copy the way a consumer does:
#   - every file the package promises is there;
#   - the shared library exports wgam_* only, the archive defines no other
#     global symbol, the SONAME is right and there is no RUNPATH;
#   - pkg-config finds the library (PKG_CONFIG_PATH into the root, and
#     PKG_CONFIG_SYSROOT_DIR as for any staged install), --static adds
#     libsodium;
#   - examples/embed, from the installed example sources, is built with
#     pkg-config only, against the shared and against the static library,
#     and run (two engines exchanging real datagrams over loopback);
#   - the complete event loop of doc/embedding.md compiles and links;
#   - the installed daemon runs (--version, check on the installed example
#     configuration).
# Usage: test_install.sh BUILD VERSION PREFIX LIBDIR INCLUDEDIR SBINDIR MANDIR
#                        DATADIR daemon|nodaemon
set -eu

build=$1 version=$2 prefix=$3 libdir=$4 includedir=$5 sbindir=$6 mandir=$7
datadir=$8 daemon=$9

for tool in meson pkg-config nm readelf "${CC:-cc}"; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "SKIP: $tool not found"
    exit 77
  fi
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/wgam-install.XXXXXX")
cleanup() { rm -rf "$tmp"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
ok() { echo "ok: $*"; }

dest=$tmp/root
echo "== meson install --destdir $dest"
if ! meson install -C "$build" --no-rebuild --quiet --destdir "$dest" \
    >"$tmp/install.log" 2>&1; then
  cat "$tmp/install.log"
  echo "FAIL: meson install"
  exit 1
fi

# ---- the file list --------------------------------------------------------
echo "== installed files"
docdir=$datadir/doc/wgautomesh
expect="$includedir/wgautomesh.h
$libdir/libwgautomesh.so
$libdir/libwgautomesh.so.0
$libdir/libwgautomesh.a
$libdir/pkgconfig/libwgautomesh.pc
$mandir/man8/wgautomesh.8
$mandir/man5/wgautomesh.json.5
$docdir/protocol.md
$docdir/embedding.md
$docdir/examples/wgautomesh.json
$docdir/examples/wgautomesh.service
$docdir/examples/embed/embed.c
$docdir/examples/embed/Makefile"
if [ "$daemon" = daemon ]; then
  expect="$expect
$sbindir/wgautomesh
$prefix/bin/wgautomesh-toml2json
$mandir/man1/wgautomesh-toml2json.1
$docdir/migrating.md"
fi
missing=0
for f in $expect; do
  if [ ! -e "$dest$f" ]; then
    fail "not installed: $f"
    missing=1
  fi
done
[ $missing -eq 0 ] && ok "$(echo "$expect" | wc -l) expected files installed"
so=$(readlink -f "$dest$libdir/libwgautomesh.so")
[ -f "$so" ] || { echo "FAIL: no shared library"; exit 1; }

# ---- symbols ---------------------------------------------------------------
echo "== symbols of the installed library"
# Version nodes (WGAM_0) are absolute symbols, not code or data.
bad=$(nm -D --defined-only "$so" | awk '$2 != "A" {print $3}' |
  sed 's/@.*//' | grep -v '^wgam_' || true)
n=$(nm -D --defined-only "$so" | awk '$2 == "T"' | wc -l)
if [ -n "$bad" ]; then
  fail "exported outside wgam_*: $(echo "$bad" | tr '\n' ' ')"
elif [ "$n" -lt 30 ]; then
  fail "only $n exported functions: is the API there?"
else
  ok "$n exported functions, all wgam_*"
fi
# (__odr_asan.* are AddressSanitizer's markers for instrumented globals.)
bad=$(nm -g --defined-only "$dest$libdir/libwgautomesh.a" |
  awk 'NF == 3 {print $3}' | grep -v '^wgam_' | grep -v '^__odr_asan\.' ||
  true)
if [ -n "$bad" ]; then
  fail "libwgautomesh.a defines globals outside wgam_*: $(echo "$bad" | tr '\n' ' ')"
else
  ok "libwgautomesh.a defines wgam_* globals only"
fi
soname=$(readelf -d "$so" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
if [ "$soname" = libwgautomesh.so.0 ]; then
  ok "SONAME $soname"
else
  fail "SONAME is '$soname'"
fi
if readelf -d "$so" | grep -Eq '\((RUNPATH|RPATH)\)'; then
  fail "installed library carries a RUNPATH"
fi

# ---- pkg-config ------------------------------------------------------------
echo "== pkg-config"
PKG_CONFIG_PATH=$dest$libdir/pkgconfig
PKG_CONFIG_SYSROOT_DIR=$dest
# A prefix of /usr must not make pkg-config drop our -I and -L as "system".
PKG_CONFIG_ALLOW_SYSTEM_CFLAGS=1
PKG_CONFIG_ALLOW_SYSTEM_LIBS=1
export PKG_CONFIG_PATH PKG_CONFIG_SYSROOT_DIR PKG_CONFIG_ALLOW_SYSTEM_CFLAGS \
  PKG_CONFIG_ALLOW_SYSTEM_LIBS
v=$(pkg-config --modversion libwgautomesh) || v=
if [ "$v" = "$version" ]; then ok "modversion $v"; else fail "modversion '$v', want $version"; fi
if grep -qxF "prefix=$prefix" "$PKG_CONFIG_PATH/libwgautomesh.pc"; then
  ok "libwgautomesh.pc has prefix=$prefix"
else
  fail "libwgautomesh.pc does not say prefix=$prefix"
fi
cflags=$(pkg-config --cflags libwgautomesh)
libs=$(pkg-config --libs libwgautomesh)
slibs=$(pkg-config --static --libs libwgautomesh)
echo "cflags: $cflags"
echo "libs: $libs"
echo "static libs: $slibs"
case " $cflags " in *" -I$dest$includedir "*) ok "cflags point into the root" ;;
  *) fail "cflags do not name $dest$includedir" ;; esac
case " $libs " in *" -L$dest$libdir "*) ok "libs point into the root" ;;
  *) fail "libs do not name -L$dest$libdir" ;; esac
case " $libs " in *" -lwgautomesh "*) ;; *) fail "libs lack -lwgautomesh" ;; esac
case " $libs " in *" -lsodium "*) fail "libsodium leaks into the shared link flags" ;; esac
case " $slibs " in *" -lsodium "*) ok "--static adds -lsodium" ;;
  *) fail "--static does not add -lsodium (Requires.private)" ;; esac

# ---- examples/embed from the installed sources ------------------------------
echo "== examples/embed against the installed copy"
cp -r "$dest$docdir/examples/embed" "$tmp/embed"
cd "$tmp/embed"
cc=${CC:-cc}
flags="-std=c11 -D_GNU_SOURCE -O2 -Wall -Wextra -Werror"
# A sanitizer build (-Db_sanitize=...) installs an instrumented library:
# its consumers need the same runtime, first in the link order.
if nm -D "$so" | grep -q ' U __asan_'; then
  flags="$flags -fsanitize=address"
fi
if nm -D "$so" | grep -q ' U __ubsan_'; then
  flags="$flags -fsanitize=undefined"
fi
# shellcheck disable=SC2086
if $cc $flags $cflags embed.c $libs -o embed 2>"$tmp/cc.log"; then
  ok "embed built with pkg-config --cflags/--libs only"
else
  cat "$tmp/cc.log"
  fail "embed does not build"
fi
if [ -x embed ]; then
  ldd_line=$(LD_LIBRARY_PATH=$dest$libdir ldd ./embed | grep libwgautomesh || true)
  case "$ldd_line" in *"$dest"*) ok "embed loads ${ldd_line#*=> }" ;;
    *) fail "embed does not load the installed library: $ldd_line" ;; esac
  if LD_LIBRARY_PATH=$dest$libdir timeout 30 ./embed >"$tmp/embed.out" 2>&1 &&
      grep -q "^ok: B learned C's endpoint" "$tmp/embed.out"; then
    ok "embed (shared): $(tail -n 1 "$tmp/embed.out")"
  else
    cat "$tmp/embed.out"
    fail "embed (shared) did not succeed"
  fi
fi
if command -v make >/dev/null 2>&1; then
  if make -s embed-static CFLAGS="$flags" >"$tmp/make.log" 2>&1; then
    if readelf -d embed-static | grep -q 'libwgautomesh'; then
      fail "embed-static still needs libwgautomesh.so"
    elif timeout 30 ./embed-static >"$tmp/embed.out" 2>&1 &&
        grep -q "^ok: " "$tmp/embed.out"; then
      ok "embed-static (libwgautomesh.a + pkg-config --static): $(tail -n 1 "$tmp/embed.out")"
    else
      cat "$tmp/embed.out"
      fail "embed-static did not succeed"
    fi
  else
    cat "$tmp/make.log"
    fail "make embed-static"
  fi
else
  echo "note: make not found: the Makefile's static target is not exercised"
fi
cd "$tmp"

# ---- doc/embedding.md: its complete event loop compiles ---------------------
echo "== doc/embedding.md"
# The block after the marker line "<!-- compile: NAME.c -->" is extracted.
awk '/<!-- compile: [a-z_]+\.c -->/ { want = 1; next }
     want && /^```c$/ { copy = 1; want = 0; next }
     copy && /^```$/ { copy = 0; next }
     copy { print }' "$dest$docdir/embedding.md" >"$tmp/loop.c"
if [ ! -s "$tmp/loop.c" ]; then
  fail "doc/embedding.md has no '<!-- compile: ... -->' code block"
else
  # shellcheck disable=SC2086
  if $cc $flags $cflags "$tmp/loop.c" $libs -o "$tmp/loop" 2>"$tmp/cc.log"; then
    ok "the event loop of embedding.md compiles and links ($(wc -l <"$tmp/loop.c") lines)"
  else
    cat "$tmp/cc.log"
    fail "the event loop of embedding.md does not compile"
  fi
fi

# ---- the installed daemon ---------------------------------------------------
if [ "$daemon" = daemon ]; then
  echo "== the installed daemon"
  bin=$dest$sbindir/wgautomesh
  out=$(LD_LIBRARY_PATH=$dest$libdir "$bin" --version 2>&1) || out="failed: $out"
  if [ "$out" = "wgautomesh $version" ]; then ok "$out"; else fail "--version: $out"; fi
  if readelf -d "$bin" | grep -Eq '\((RUNPATH|RPATH)\)'; then
    fail "installed daemon carries a RUNPATH"
  fi
  (umask 077; echo "install test secret" >"$tmp/secret")
  sed "s#/etc/wgautomesh.secret#$tmp/secret#" \
    "$dest$docdir/examples/wgautomesh.json" >"$tmp/wgautomesh.json"
  if out=$("$bin" check "$tmp/wgautomesh.json" 2>&1); then
    ok "check on the installed example config: $out"
  else
    echo "$out"
    fail "check rejects the installed example config"
  fi
fi

if [ $fails -ne 0 ]; then
  echo "$fails check(s) failed"
  exit 1
fi
echo "all install checks passed"
