#!/usr/bin/env bash
# Tensor parallelism across nodes with Open MPI and a host file (see docs/launch.md):
#   launch/examples/multinode.sh 16 build/folio bench --model configs/llama-3-70b --device cuda \
#     --load-format dummy
# Needs: the same folio build and model path on every node, passwordless ssh between them,
# and a working NCCL network (InfiniBand/RoCE, or sockets on NCCL_SOCKET_IFNAME).
set -euo pipefail
NP=${1:?usage: $0 NP path/to/folio COMMAND [options]}; shift
HOSTFILE=${HOSTFILE:-$(dirname "$0")/hostfile}
export NCCL_NVLS_ENABLE=0               # NVLink multicast off on shared machines
# Change for your cluster (docs/launch.md):
# export NCCL_SOCKET_IFNAME=ib0         # interface NCCL's bootstrap and socket transport use
# export NCCL_IB_HCA=mlx5_0,mlx5_1      # InfiniBand adapters to use
# export NCCL_DEBUG=WARN                # INFO prints the rings/trees and transports chosen
# export FOLIO_STEP_TIMEOUT=600         # seconds one step may take before the job ends
FOLIO_MPIRUN_EXTRA="--hostfile $HOSTFILE --mca btl_tcp_if_include ${MPI_IFACE:-eth0} ${FOLIO_MPIRUN_EXTRA:-}" \
  exec "$(dirname "$0")/../folio-mpirun" -np "$NP" "$@"
