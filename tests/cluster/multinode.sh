#!/usr/bin/env bash
# launch/examples/multinode.sh and its host file with two "nodes" on this machine: Open MPI's
# rsh launcher starts each node's orted through tests/cluster/local-rsh (instead of ssh) in its
# own UTS namespace named after the host file's node, so Open MPI and folio see two hosts.
#   - the host file's node names (launch/examples/hostfile) with 2 slots each, 4 ranks: the
#     text one rank prints; --verbose shows ranks 0,1 on the first node (local ranks 0 and 1
#     of 2) and ranks 2,3 on the second (local ranks 0 and 1 of 2): local ranks counted from
#     host names, as a GPU per local rank needs;
#   - a rank failing at load on the second node ends the whole job (exit status non-zero, the
#     error line names the rank and its host), and no orted or folio process is left.
# Without CAP_SYS_ADMIN (unshare --uts refused, e.g. an unprivileged container) the two nodes
# share the real host name: the same run, but the placement check then expects local ranks
# 0..3 of 4 on one host, and says so.
set -uo pipefail
. "$(dirname "$0")/cluster.inc"
. "$(dirname "$0")/../cli/common.inc"
cluster_start
command -v mpirun >/dev/null || skip "no mpirun"
[ -d "$STORIES" ] || skip "$STORIES not found"
start=$(date +%s.%N)
export OMP_NUM_THREADS=1
RSH=$SRC/tests/cluster/local-rsh
mapfile -t NODES < <(awk '!/^#/ && NF { print $1 }' "$SRC/launch/examples/hostfile")
[ "${#NODES[@]}" -ge 2 ] || { fail "launch/examples/hostfile names ${#NODES[@]} nodes, expected 2"; exit 1; }
HOSTFILE=$TMP/hostfile
printf '%s slots=2\n' "${NODES[0]}" "${NODES[1]}" >"$HOSTFILE"
if unshare --uts true 2>/dev/null; then
  host0=${NODES[0]} host1=${NODES[1]} local1=0 size=2
else
  export LOCAL_RSH_PLAIN=1
  host0=$(hostname) host1=$(hostname) local1=2 size=4
  echo "note: unshare --uts refused here (no CAP_SYS_ADMIN): both nodes keep the host name $host0"
fi
# mpi_yield_when_idle: 4 ranks on fewer cores (Open MPI counts 4 slots, so it would spin).
export HOSTFILE MPI_IFACE=lo FOLIO_MPIRUN_EXTRA="--mca plm_rsh_agent $RSH --mca mpi_yield_when_idle 1"
MULTI=(timeout 120 bash "$SRC/launch/examples/multinode.sh" 4 "$FOLIO")
GEN=(generate --model "$STORIES" --device cpu --temperature 0 --max-tokens 40)

ref=$("$FOLIO" "${GEN[@]}" 2>"$TMP/ref.err") || fail "one rank failed: $(tail -1 "$TMP/ref.err")"
t0=$(date +%s.%N)
got=$("${MULTI[@]}" "${GEN[@]}" --verbose 2>"$TMP/err")
rc=$?
if [ "$rc" != 0 ]; then fail "multinode.sh 4 generate: exit $rc: $(tail -5 "$TMP/err")"
elif [ -n "$ref" ] && [ "$got" = "$ref" ]; then
  echo "ok: multinode.sh 4 ranks over ${NODES[0]} and ${NODES[1]} (2 slots each): the text one rank prints, $(elapsed_since "$t0") s"
else fail "multinode.sh 4 generate: '$got' vs one rank's '$ref'"; fi
want="folio: rank 0: $host0, local rank 0 of $size
folio: rank 1: $host0, local rank 1 of $size
folio: rank 2: $host1, local rank $local1 of $size
folio: rank 3: $host1, local rank $((local1 + 1)) of $size"
placed=$(grep -oE "folio: rank [0-9]: [^:]*" "$TMP/err")
if [ "$placed" = "$want" ]; then echo "ok: placement: $(tr '\n' ';' <<<"$placed")"
else fail "placement: got '$placed', expected '$want'"; fi

# A failing rank on the second node ends the job, naming its rank and host.
t0=$(date +%s.%N)
FOLIO_FAULT=2:load "${MULTI[@]}" "${GEN[@]}" >/dev/null 2>"$TMP/err"
rc=$?
if [ "$rc" = 0 ] || [ "$rc" = 124 ]; then fail "FOLIO_FAULT=2:load: exit $rc, expected the job's failure"
elif ! grep -q "folio: error (rank 2 on $host1)" "$TMP/err"; then fail "FOLIO_FAULT=2:load: no error line naming rank 2 on $host1: $(grep -m3 error "$TMP/err")"
else echo "ok: rank 2 failing at load on $host1 ends the job (exit $rc) in $(elapsed_since "$t0") s"; fi
sleep 0.5
stray=$(for p in $(descendants $$); do echo "$p $(tr '\0' ' ' 2>/dev/null <"/proc/$p/cmdline")"; done |
        grep -E "^[0-9]+ ([^ ]*/)?(orted|prted|mpirun|folio) " || true)
[ -z "$stray" ] || fail "left running after the jobs: $stray"

echo "multinode: $(elapsed_since "$start") s"
finish
