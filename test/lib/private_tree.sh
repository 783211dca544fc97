# shellcheck shell=bash
# A private copy of the PostgreSQL installation, for tests that need a
# special build of dmf (sanitizers) or a server that preloads it, without
# touching the system's lib and share directories: other clusters on the
# machine load dmf.so from there.
#
# PostgreSQL finds its lib and share directories relative to its binary, so a
# copy of bin/, lib/ and share/ at the same paths under a new root is a
# working installation.  Source test/lib/cluster.sh first.
#
#   root=$(mktemp -d)
#   dmf_private_tree "$root"
#   dmf_private_source "$root/src"
#   dmf_private_install "$root/src" "$root"
#   dmf_private_cluster_start "$root" "shared_preload_libraries = 'dmf'"
#
# The cluster starts on the first free port from DMF_PRIVATE_PGPORT (54800).

# dmf_private_tree ROOT: copy the server's bin, lib and share dirs to ROOT.
dmf_private_tree() {
    local root=$1 pgc dir
    pgc="$(dmf_pg_config)" || { dmf_err "pg_config not found"; return 1; }
    # the cluster's owner must read the copy
    chmod 755 "$root" || return 1
    for dir in "$("$pgc" --bindir)" "$("$pgc" --pkglibdir)" "$("$pgc" --sharedir)"; do
        mkdir -p "$root$(dirname "$dir")" || return 1
        cp -a "$dir" "$root$dir" || return 1
    done
    # a stale copy of dmf's JIT bitcode must not be inlined into queries
    rm -rf "$root$("$pgc" --pkglibdir)/bitcode/dmf" "$root$("$pgc" --pkglibdir)/bitcode/dmf.index.bc"
    local got want
    got="$("$root$("$pgc" --bindir)/pg_config" --pkglibdir)"
    want="$root$("$pgc" --pkglibdir)"
    if [[ "$got" != "$want" ]]; then
        dmf_err "the copied PostgreSQL is not relocatable: its pkglibdir is $got, not $want"
        return 1
    fi
}

# dmf_private_source DIR: the working tree's files (tracked and new, not
# ignored) copied to DIR, so builds there do not race with builds in it.
dmf_private_source() {
    local dest=$1 f
    mkdir -p "$dest" || return 1
    if git -C "$DMF_ROOT" rev-parse --git-dir >/dev/null 2>&1; then
        while IFS= read -r -d '' f; do
            [[ -f "$DMF_ROOT/$f" ]] || continue     # deleted, not yet committed
            mkdir -p "$dest/$(dirname "$f")" && cp -p "$DMF_ROOT/$f" "$dest/$f" || return 1
        done < <(git -C "$DMF_ROOT" ls-files -z --cached --others --exclude-standard)
    else
        cp -a "$DMF_ROOT/." "$dest" || return 1
        make -s -C "$dest" PG_CONFIG="$(dmf_pg_config)" clean >/dev/null || return 1
    fi
}

# dmf_private_install SRC ROOT [make variable...]: build SRC with the system's
# pg_config and install it into the copy under ROOT (never the system dirs).
dmf_private_install() {
    local src=$1 root=$2 pgc
    shift 2
    [[ -n "$root" && "$root" != / ]] || { dmf_err "no private root"; return 1; }
    pgc="$(dmf_pg_config)" || return 1
    # with_llvm=no: no JIT bitcode, only the library the variables ask for
    make -s -C "$src" PG_CONFIG="$pgc" with_llvm=no "$@" -j"$(nproc 2>/dev/null || echo 2)" || return 1
    make -s -C "$src" PG_CONFIG="$pgc" with_llvm=no "$@" DESTDIR="$root" install || return 1
    cmp -s "$src/dmf.so" "$root$("$pgc" --pkglibdir)/dmf.so" || {
        dmf_err "dmf.so did not land in $root$("$pgc" --pkglibdir)"
        return 1
    }
}

# dmf_private_cluster_start ROOT [postgresql.conf line...]: a throwaway
# cluster run by ROOT's binaries (so with ROOT's lib and share dirs).
dmf_private_cluster_start() {
    local root=$1 pgc pkglibdir got
    shift
    pgc="$(dmf_pg_config)" || return 1
    pkglibdir="$("$pgc" --pkglibdir)"
    # a suite run by test/check.sh is told to use the shared server: not here
    unset DMF_USE_EXISTING
    PG_CONFIG="$root$("$pgc" --bindir)/pg_config" DMF_PGPORT="${DMF_PRIVATE_PGPORT:-54800}" \
        dmf_cluster_start "$@" || return 1
    got="$(psql -X -A -t -q -d postgres -c "SELECT setting FROM pg_config() WHERE name = 'PKGLIBDIR'")"
    if [[ "$got" != "$root$pkglibdir" ]]; then
        dmf_err "the server's pkglibdir is $got, not $root$pkglibdir"
        return 1
    fi
}

# dmf_postmaster_pid: the pid of the throwaway cluster's postmaster.
dmf_postmaster_pid() {
    head -n 1 "$DMF_PGDIR/data/postmaster.pid"
}

# dmf_threads PID: how many threads the process runs.
dmf_threads() {
    find "/proc/$1/task" -mindepth 1 -maxdepth 1 | wc -l
}

# dmf_mapped PID PATTERN: the files mapped into PID whose path matches the
# extended regular expression PATTERN, one a line.
dmf_mapped() {
    awk -v re="$2" '$6 ~ re { print $6 }' "/proc/$1/maps" | sort -u
}
