#!/usr/bin/env bash
# Checks that src/ keeps its layers (README "Layout"): every #include "x.h"
# of a layer's sources and headers names a header of a layer it may use.
#   util    : util
#   channel : util channel, and the channel interface (core/channel.h, app.h)
#             -- never storage: protocol adapters take bytes, give facts
#   store   : util store
#   web     : util web
#   core    : util channel store core
set -euo pipefail
cd "$(dirname "$0")/.."
declare -A ALLOW=(
  [util]="util" [channel]="util channel core/channel.h core/app.h core/config.h"
  [store]="util store" [web]="util web" [core]="util channel store core"
)
bad=0
for layer in "${!ALLOW[@]}"; do
  for f in src/$layer/*.c include/$layer/*.h; do
    [ -e "$f" ] || continue
    while read -r h; do
      where=$(cd include && ls -d */"$h" 2>/dev/null | head -1)
      [ -n "$where" ] || continue            # a system or generated header
      ok=0
      for a in ${ALLOW[$layer]}; do
        case "$a" in */*) [ "$where" = "$a" ] && ok=1 ;; *) [ "${where%%/*}" = "$a" ] && ok=1 ;; esac
      done
      if [ $ok = 0 ]; then echo "layers: $f includes $where (not allowed for $layer)"; bad=1; fi
    done < <(sed -n 's/^#include "\([a-z_0-9]*\.h\)".*/\1/p' "$f")
  done
done
if grep -nE '\bdb_(exec|query|tx)' src/channel/*.c src/util/*.c src/web/*.c; then
  echo "layers: a database call outside store/ and core/"; bad=1
fi
exit $bad
