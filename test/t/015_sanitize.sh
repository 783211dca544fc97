#!/usr/bin/env bash
# The pg_regress suites (the Makefile's REGRESS) against dmf built with
# AddressSanitizer and UndefinedBehaviorSanitizer (gcc), inside the server.
#
# Builds the working tree with -fsanitize=address,undefined into a private
# copy of the PostgreSQL installation (test/lib/private_tree.sh: the system's
# directories, which other clusters load dmf.so from, are not touched) and
# starts a cluster of its own (port from 54800) whose postmaster runs with
# gcc's libasan and libubsan preloaded, so every backend has the runtimes the
# instrumented dmf.so needs.  Reports go to files (log_path); leak detection
# is off, since PostgreSQL frees memory by context, not by pointer.
#
# Fails if a backend does not map the private, instrumented dmf.so and the
# ASan runtime, if the regression output differs, if any sanitizer report is
# written (files or server log), or if the server restarted (a backend
# crashed).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source-path=SCRIPTDIR source=../lib/cluster.sh
source "$here/../lib/cluster.sh"
# shellcheck source-path=SCRIPTDIR source=../lib/private_tree.sh
source "$here/../lib/private_tree.sh"

fail() {
    echo "FAILED: $*"
    exit 1
}

dmf_install_deps
pgc="$(dmf_pg_config)"
root="$(mktemp -d)"
# the cluster runs the tree's binaries: stop it before deleting them
dmf_at_exit "dmf_cluster_stop; rm -rf '$root'"

runtimes=()
for lib in libasan.so libubsan.so; do
    path="$(readlink -f "$(gcc -print-file-name="$lib")")"
    [[ -f "$path" ]] || fail "gcc's $lib not found (Debian: libasan8, libubsan1)"
    runtimes+=("$path")
done

start=$SECONDS
echo "== building dmf with ASan and UBSan into a private copy of PostgreSQL in $root"
dmf_private_tree "$root"
dmf_private_source "$root/src"
sanitize="-fsanitize=address,undefined -fno-omit-frame-pointer"
dmf_private_install "$root/src" "$root" \
    PG_CFLAGS="-std=gnu99 -Wall -Wextra -Wno-unused-parameter -Wno-sign-compare -O1 -g $sanitize" \
    PG_LDFLAGS="$sanitize" >"$root/build.log" 2>&1 || { cat "$root/build.log"; fail "build"; }
private_so="$root$("$pgc" --pkglibdir)/dmf.so"
undefined=$(nm -D --undefined-only "$private_so")
grep -q __asan_report <<<"$undefined" || fail "$private_so is not built with AddressSanitizer"
grep -q __ubsan_handle <<<"$undefined" || fail "$private_so is not built with UndefinedBehaviorSanitizer"
echo "built in $((SECONDS - start)) s"

# Preloaded, the ASan runtime initialises on the first call it intercepts:
# in PostgreSQL that is a malloc inside bindtextdomain (a library constructor
# of libgpg-error), and the initialisation's dlerror() then waits for the
# gettext lock bindtextdomain holds (llvm-project issue 49223).  It calls
# dlerror() after looking up swift_demangle, which fails unless the symbol
# exists: this stub makes the lookup succeed.  (A stub returning NULL means
# "not a Swift name", so reports are demangled as usual.)
cat >"$root/swift_stub.c" <<'C'
#include <stddef.h>
#include <stdint.h>
char *swift_demangle(const char *name, size_t len, char *out, size_t *out_len, uint32_t flags);
char *swift_demangle(const char *name, size_t len, char *out, size_t *out_len, uint32_t flags)
{
    return NULL;
}
C
gcc -shared -fPIC -O1 -o "$root/libswift_stub.so" "$root/swift_stub.c" || fail "could not build the stub"
runtimes+=("$root/libswift_stub.so")

logs="$root/sanitizer"
mkdir "$logs"
chown "$(dmf__pick_owner)" "$logs"
preload="$(IFS=:; echo "${runtimes[*]}")"
# The suites check a backend's resident memory (sql/security.sql): ASan keeps
# the memory freed last in quarantine, 256 MB by default, which would count
# as the backend's; 16 MB still catches a use of what was just freed.
DMF_SERVER_ENV=(
    "LD_PRELOAD=$preload"
    "ASAN_OPTIONS=detect_leaks=0:halt_on_error=1:quarantine_size_mb=16:log_path=$logs/asan"
    "UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:log_path=$logs/ubsan"
)
# jit off: inlined bitcode would not be instrumented
dmf_private_cluster_start "$root" "jit = off"
started_before=$(psql -X -A -t -q -d postgres -c "SELECT pg_postmaster_start_time()")

# A backend that loaded dmf: which dmf.so, and is the ASan runtime there?
maps=$(psql -X -A -t -q -v ON_ERROR_STOP=1 -d postgres -c "LOAD 'dmf'" \
    -c "SELECT pg_read_file('/proc/self/maps')")
so=$(awk '$6 ~ /\/dmf\.so$/ { print $6; exit }' <<<"$maps")
[[ "$so" == "$private_so" ]] || fail "the backend maps ${so:-no dmf.so}, not $private_so"
grep -q 'libasan' <<<"$maps" || fail "the backend does not map the ASan runtime"
echo "backend maps $so and $(awk '$6 ~ /libasan/ { print $6; exit }' <<<"$maps")"

echo "== pg_regress"
rc=0
make -s -C "$root/src" PG_CONFIG="$pgc" installcheck || rc=$?

reports=$(find "$logs" -type f -size +0 | sort)
for f in $reports; do
    echo "---- $f ----"
    head -n 60 "$f"
done
if grep -E 'AddressSanitizer|UndefinedBehaviorSanitizer|runtime error:' "$DMF_PGDIR/server.log"; then
    reports="$reports server.log"
fi
if ((rc != 0)) && [[ -f "$root/src/regression.diffs" ]]; then
    echo "---- regression.diffs ----"
    head -n 200 "$root/src/regression.diffs"
fi
[[ -z "$reports" ]] || fail "sanitizer reports: $reports"
((rc == 0)) || fail "pg_regress (exit $rc)"
started_after=$(psql -X -A -t -q -d postgres -c "SELECT pg_postmaster_start_time()")
[[ "$started_after" == "$started_before" ]] || fail "the server restarted"
echo "no sanitizer report, no regression diff, server not restarted; $((SECONDS - start)) s"
echo "ok"
