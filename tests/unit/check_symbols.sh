#!/bin/sh
# SPDX-License-Identifier: MIT
# The library exports only wgam_* and calls nothing of the OS: its undefined
# symbols must all be on this allow-list (memory, strings, sorting, log
# formatting, libsodium's secretbox, and compiler/runtime glue).
set -eu
so=$1
static=$2
header=$3
fail=0

exports=$(nm -D --defined-only "$so" | awk '$2 ~ /^[TDBRW]$/ {print $3}' | grep -v '^wgam_' || true)
if [ -n "$exports" ]; then
  echo "exported symbols outside wgam_*:"; echo "$exports"; fail=1
fi
# Every function the header declares is exported, and nothing else.
declared=$(tr '\n' ' ' < "$header" | grep -o 'WGAM_EXTERN[^(]*(' | grep -o 'wgam_[a-z0-9_]*(' | tr -d '(' | sort -u)
exported=$(nm -D --defined-only "$so" | awk '$2 == "T" {sub(/@.*/, "", $3); print $3}' | sort -u)
n=$(printf '%s\n' "$exported" | wc -l)
if [ "$declared" != "$exported" ]; then
  echo "header declarations and exports differ:"
  printf '%s\n' "$declared" > "${TMPDIR:-/tmp}/wgam-declared.$$"
  printf '%s\n' "$exported" | diff "${TMPDIR:-/tmp}/wgam-declared.$$" - || true
  rm -f "${TMPDIR:-/tmp}/wgam-declared.$$"
  fail=1
fi

allow='^(memcpy|memmove|memcmp|memset|strlen|malloc|calloc|realloc|free|qsort|vsnprintf|__vsnprintf_chk|__memcpy_chk|__memset_chk|__stack_chk_fail|crypto_secretbox_easy|crypto_secretbox_open_easy|sodium_init|sodium_memzero|_ITM_deregisterTMCloneTable|_ITM_registerTMCloneTable|__cxa_finalize|__gmon_start__|_GLOBAL_OFFSET_TABLE_|__(asan|ubsan|lsan|sanitizer)_[A-Za-z0-9_]*)(@.*)?$'
undef=$(nm -u "$static" | awk 'NF == 2 {print $2}' | sort -u)
bad=$(printf '%s\n' "$undef" | grep -Ev "$allow" | grep -v '^wgam_' || true)
if [ -n "$bad" ]; then
  echo "lib/ uses symbols outside the allow-list (sockets, files, clocks, stdio?):"
  echo "$bad"; fail=1
fi
[ $fail -eq 0 ] && echo "ok: $n exported functions, $(printf '%s\n' "$undef" | wc -l) undefined symbols all allowed"
exit $fail
