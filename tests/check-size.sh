#!/usr/bin/env bash
# Size rules (docs/style.md, "Shape"): outside tests no source file over 700 lines and no
# function over 120 lines. A function is counted from the line that opens its body at
# column 0 to the matching closing brace at column 0.
set -u
cd "$(dirname "$0")/.."
rc=0
for f in $(git ls-files 'directory/*.[ch]' 'node/*.[ch]' 'tools/*.[ch]'); do
  n=$(wc -l <"$f")
  [ "$n" -le 700 ] || { echo "check-size: $f has $n lines (max 700)"; rc=1; }
  awk -v f="$f" '
    /^[A-Za-z_].*\(/ && !/;[ \t]*$/ { name = $0 }
    /^\{/ { start = NR; fn = name }
    /^\}/ && start { len = NR - start - 1
                     if (len > 120) { printf "check-size: %s: %d-line function: %s\n", f, len, fn; bad = 1 }
                     start = 0 }
    END { exit bad }' "$f" || rc=1
done
[ $rc -eq 0 ] && echo "check-size: ok"
exit $rc
