#!/usr/bin/env bash
# The demo's live view filter: reads `kubectl get changeorders --watch -o custom-columns=...`
# (NAME, PROVIDER, ORDER ID, PHASE, ...) on stdin and prints each order once per state: the
# header, then an order's first row with a phase, then only rows that differ from its last one.
#
# Plain bash, not awk: Debian's default awk is mawk, which reads a pipe in large blocks and so
# showed nothing until kubectl exited. bash's `read` takes a pipe line by line.
set -uo pipefail

declare -A last=()
IFS= read -r header || exit 0
printf '%s\n' "$header"
while IFS= read -r row; do
  # Fields are separated by blanks; only the last column (TYPE) may contain spaces.
  read -r name _ _ phase _ <<<"$row"
  [[ -z ${name:-} || ${phase:-} == "<none>" ]] && continue
  [[ ${last[$name]:-} == "$row" ]] && continue
  last[$name]=$row
  printf '%s\n' "$row"
done
