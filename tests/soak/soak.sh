#!/usr/bin/env bash
# The soak test of `folio serve` (tests/soak/soak.py says what it drives and checks), on
# stories260K with a chat template (tests/cli/server.inc). ctest runs the short version
# (label soak); the long one by hand:
#   FOLIO_SOAK_SECONDS=300 bash tests/soak/soak.sh build/folio
# FOLIO_SOAK_FIGURES=FILE keeps the figures as JSON; FOLIO_SOAK_LOG=FILE keeps the server's log.
set -uo pipefail
. "$(dirname "$0")/../cli/common.inc"
. "$(dirname "$0")/../cli/server.inc"
command -v python3 >/dev/null || { echo "SKIPPED: python3 not installed"; exit 77; }
python3 "$SRC/tests/soak/soak.py" --folio "$FOLIO" --model "$MODEL" \
  --log "${FOLIO_SOAK_LOG:-$TMP/server.log}" ${FOLIO_SOAK_FIGURES:+--figures "$FOLIO_SOAK_FIGURES"}
