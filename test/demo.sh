#!/usr/bin/env bash
# Train a recommender on synthetic ratings and show what it predicts.
#
# With PGHOST, PGPORT, PGUSER or PGDATABASE set, the demo runs on that server
# (the dmf extension must be installed there; the demo creates it in the
# database if needed and uses the schema dmf_demo). Otherwise it installs
# what is missing, builds and installs dmf, and runs on a throwaway cluster
# that is deleted afterwards.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source-path=SCRIPTDIR source=lib/cluster.sh
source "$here/lib/cluster.sh"

dmf_use_server

# -X: a user's ~/.psqlrc must not change what the demo prints.
psql -X -v ON_ERROR_STOP=1 -f "$here/demo.sql" </dev/null
