#!/bin/sh
# The house style (.clang-format) holds for every C file we write.
cd "$(dirname "$0")/../.."
files=$(git ls-files '*.c' '*.h' 2>/dev/null)
[ -n "$files" ] || files=$(find src include tests bench fuzz -name '*.[ch]' 2>/dev/null)
clang-format --dry-run --Werror $files
