#!/usr/bin/env bash
# Airlock's vhost-user-blk backend against qemu-storage-daemon's vhost-user-blk export: the same
# 1 GiB raw image in /dev/shm, the same realguest boot.sh options and the same fio jobs in the guest
# (examples/fio-blk.sh: 4k randread QD32 and QD1, 64k sequential write QD8), alternating the two
# backends (ABBA order) for --runs rounds. Prints every run and, per job, the median of each backend
# and the ratio airlock/qsd (higher is better for IOPS and MiB/s).
#
# usage: bench/scripts/vhost-user-vs-qsd.sh [--runs N] [--fio-seconds S]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
realguest=$root/../shared/realguest
RUNS=3 FIO_S=5
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) RUNS=$2; shift 2 ;;
    --fio-seconds) FIO_S=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
work=$(mktemp -d /tmp/airlock-vu-bench.XXXXXX)
disk=/dev/shm/airlock-vu-bench-$$.raw
pid=""
cleanup() {
  [ -n "$pid" ] && { kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; }
  rm -f "$disk"; rm -rf "$work"
}
trap cleanup EXIT
fallocate -l 1G "$disk"
airlock=${AIRLOCK:-$root/bin/airlock}   # AIRLOCK="java ... -m dev.airlock.cli/..." to use another build
$airlock --help >/dev/null              # bin/airlock builds on first use, outside the measurements

start_backend() { # airlock|qsd
  local sock=$work/$1.sock
  rm -f "$sock"
  if [ "$1" = airlock ]; then
    $airlock backend blk --vhost-user "$sock" --image "$disk" >"$work/$1.log" 2>&1 &
  else
    qemu-storage-daemon --blockdev "driver=file,node-name=disk0,filename=$disk,cache.direct=off" \
      --export "type=vhost-user-blk,id=exp0,node-name=disk0,addr.type=unix,addr.path=$sock,writable=on,num-queues=1" \
      >"$work/$1.log" 2>&1 &
  fi
  pid=$!
  for _ in $(seq 300); do [ -S "$sock" ] && return 0; sleep 0.1; done
  cat "$work/$1.log" >&2; echo "$1 did not start" >&2; exit 1
}
stop_backend() { kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; pid=""; }

run_one() { # backend run
  start_backend "$1"
  echo "load $(cut -d' ' -f1-3 /proc/loadavg) before $1 run $2" >&2
  "$realguest/boot.sh" --blk "$work/$1.sock,num-queues=1" "$realguest/examples/fio-blk.sh" -- /dev/vda "$FIO_S" \
    | sed "s/^FIO /FIO $1 /" | tee -a "$work/results.txt"
  stop_backend
}
for i in $(seq "$RUNS"); do
  if [ $((i % 2)) = 1 ]; then run_one airlock "$i"; run_one qsd "$i"; else run_one qsd "$i"; run_one airlock "$i"; fi
done
echo
echo "job                 airlock (median)        qsd (median)            ratio airlock/qsd"
for job in randread4k_qd32 randread4k_qd1 seqwrite64k_qd8; do
  med() { grep "^FIO $1 $job " "$work/results.txt" | sed -n "s/.*$2=\([0-9.]*\).*/\1/p" | sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
  key=iops; [ "$job" = seqwrite64k_qd8 ] && key=bw_MiBps
  a=$(med airlock $key); q=$(med qsd $key)
  printf "%-19s %-23s %-23s %.2f\n" "$job" "$key=$a" "$key=$q" "$(echo "$a $q" | awk '{print ($2 > 0 ? $1/$2 : 0)}')"
done
