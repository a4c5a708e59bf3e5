#!/usr/bin/env bash
# readme_example.sh: the function-pool program shown in README.md is
# examples/squares.c, byte for byte (make check builds and runs the file,
# so the README's copy is known to work).
top=${srcdir:-.}
pass=0 fail=0
block=$(awk '/^```c$/ { inb = 1; buf = ""; next }
             /^```$/ && inb { inb = 0; if (buf ~ /squares\.c:/) { printf "%s", buf; exit } next }
             inb { buf = buf $0 "\n" }' "$top/README.md")
if [ -n "$block" ] && [ "$block" = "$(cat "$top/examples/squares.c")" ]; then
    pass=$((pass + 1))
else
    echo "FAIL: README.md's squares.c block differs from examples/squares.c"
    fail=$((fail + 1))
fi
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
