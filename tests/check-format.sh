#!/usr/bin/env bash
# tests/check-format.sh — every C source and header of the project is laid
# out as .clang-format says (clang-format 14, Debian 12's). Prints the
# offending places and exits 1 otherwise. To fix: clang-format -i FILE...
# (generated code under build*/ is not ours and not checked).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
	mapfile -t files < <(git ls-files 'agent/*.[ch]' 'include/*.h' 'tests/*.[ch]')
else
	mapfile -t files < <(find agent include tests -name '*.[ch]' | sort)
fi
if [ "${#files[@]}" -eq 0 ]; then
	echo "check-format: no C files found" >&2
	exit 1
fi
clang-format --dry-run --Werror "${files[@]}"
echo "check-format: ${#files[@]} files laid out as .clang-format says"
