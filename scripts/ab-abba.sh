# Sourced by scripts/ab-ops.sh and scripts/ab-train.sh: the ABBA loop over
# two binaries and the medians. The sourcing script defines run BINARY
# (prints one time in ms, or nothing on failure) and sets old, new, pairs
# and label.
abba() {
  local -a t_old=() t_new=()
  local i which order bin t mo mn
  for i in $(seq 1 "$pairs"); do
    if [ $((i % 2)) = 1 ]; then order="old new"; else order="new old"; fi
    for which in $order; do
      if [ "$which" = old ]; then bin=$old; else bin=$new; fi
      t=$(run "$bin")
      [ -n "$t" ] || { echo "run of $bin failed" >&2; exit 1; }
      echo "$label $which $t ms"
      if [ "$which" = old ]; then t_old+=("$t"); else t_new+=("$t"); fi
    done
  done
  mo=$(median "${t_old[@]}") mn=$(median "${t_new[@]}")
  echo "medians: old $mo ms, new $mn ms, ratio $(awk -v a="$mo" -v b="$mn" 'BEGIN {printf "%.2f", a/b}')x"
}
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
