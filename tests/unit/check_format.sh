#!/bin/sh
# SPDX-License-Identifier: MIT
# Every C file of the tree is formatted as .clang-format says.
set -eu
cd "$1"
command -v clang-format >/dev/null || { echo "no clang-format"; exit 77; }
files=$(git ls-files '*.c' '*.h' 2>/dev/null || find include lib cli tests examples -name '*.[ch]')
# shellcheck disable=SC2086
clang-format --dry-run --Werror $files
echo "ok: $(echo "$files" | wc -w) files formatted"
