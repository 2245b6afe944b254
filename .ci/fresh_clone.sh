#!/usr/bin/env bash
# A fresh clone, as a new user meets it: clone this repository's HEAD into a temporary folder that
# has no ../shared beside it, run the README's test command (`make test`) there, and check that it
# passes with only the tests that need the third-party samples skipped (their skip reason starts
# with "shared data not found", tests/sample_oracle.py).
#
#   .ci/fresh_clone.sh            reuse this checkout's installed .venv packages (no second torch
#                                 install): the clone gets a new venv whose only package paths are
#                                 the clone's src/ and the packages of ./.venv (built if missing)
#   .ci/fresh_clone.sh --install  also install from scratch, as the README says (`make test` builds
#                                 the clone's own .venv from constraints.txt; minutes, and a download
#                                 of torch unless pip's cache has it)
#   .ci/fresh_clone.sh --baseline LOG
#                                 LOG: the output of `make test` in this checkout (same commit,
#                                 same machine); a skip listed there for another reason (e.g. a
#                                 test that cannot run as root) is allowed in the clone too
#   KEEP=1 .ci/fresh_clone.sh     keep the temporary folder (its path is printed)
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
mode=reuse
baseline=
while [ $# -gt 0 ]; do
    case "$1" in
        --install) mode=install; shift ;;
        --baseline) baseline="$(cd "$(dirname "$2")" && pwd)/$(basename "$2")"; shift 2 ;;
        *) echo "usage: $0 [--install] [--baseline LOG]" >&2; exit 2 ;;
    esac
done

if [ -n "$(git -C "$repo" status --porcelain --untracked-files=no)" ]; then
    echo "fresh_clone: note: uncommitted changes are not in the clone (it tests HEAD)" >&2
fi
tmp="$(mktemp -d "${TMPDIR:-/tmp}/evstream-fresh-clone.XXXXXX")"
if [ "${KEEP:-0}" = 1 ]; then echo "fresh_clone: keeping $tmp"; else trap 'rm -rf "$tmp"' EXIT; fi
clone="$tmp/evstream"
git clone -q --no-hardlinks "$repo" "$clone"
[ ! -e "$tmp/shared" ] || { echo "fresh_clone: $tmp/shared exists" >&2; exit 1; }

make_args=()
if [ "$mode" = reuse ]; then
    make -C "$repo" -s venv
    base_site="$("$repo/.venv/bin/python" -c 'import sysconfig; print(sysconfig.get_path("purelib"))')"
    "$repo/.venv/bin/python" -m venv --without-pip "$tmp/venv"
    site="$("$tmp/venv/bin/python" -c 'import sysconfig; print(sysconfig.get_path("purelib"))')"
    # plain path entries: the clone's sources first; ./.venv's own .pth files (among them the
    # editable install of this checkout) are not processed, so nothing is imported from here
    printf '%s\n%s\n' "$clone/src" "$base_site" > "$site/evstream_fresh_clone.pth"
    touch "$tmp/venv/.installed"           # newer than the clone's pyproject.toml / constraints.txt
    make_args=("VENV=$tmp/venv")
    origin="$("$tmp/venv/bin/python" -c 'import evstream, os; print(os.path.dirname(evstream.__file__))')"
    [ "$origin" = "$clone/src/evstream" ] || { echo "fresh_clone: evstream imported from $origin" >&2; exit 1; }
fi

echo "fresh_clone: make test in $clone (no ../shared; EVSTREAM_* unset)"
set +e
(cd "$clone" && env -u EVSTREAM_SAMPLES -u EVSTREAM_TUTORIAL -u EVSTREAM_REQUIRE_SAMPLES \
    make test "${make_args[@]}") > "$tmp/test.log" 2>&1
rc=$?
set -e
tail -n 40 "$tmp/test.log"
if [ "$rc" -ne 0 ]; then echo "fresh_clone: FAILED: make test exited $rc in the fresh clone" >&2; exit 1; fi
skips="$(grep -E '^SKIPPED \[[0-9]+\] ' "$tmp/test.log" || true)"
# a skip's identity: "file:line: reason" (the count in brackets may differ between runs)
identity() { sed -E 's/^SKIPPED \[[0-9]+\] //'; }
other="$(printf '%s\n' "$skips" | grep -v ': shared data not found: ' | grep -v '^$' | identity || true)"
if [ -n "$other" ] && [ -n "$baseline" ]; then
    known="$(grep -E '^SKIPPED \[[0-9]+\] ' "$baseline" | identity || true)"
    other="$(printf '%s\n' "$other" | grep -vxF -f <(printf '%s\n' "$known") || true)"
fi
if [ -n "$other" ]; then
    printf 'fresh_clone: FAILED: tests skipped for another reason than missing samples:\n%s\n' "$other" >&2
    exit 1
fi
if [ -z "$skips" ]; then
    echo "fresh_clone: FAILED: no sample test was skipped, so the samples were found somewhere" >&2
    exit 1
fi
count="$(printf '%s\n' "$skips" | awk -F'[][]' '{n += $2} END {print n}')"
echo "fresh_clone: OK: passed in a fresh clone; $count skipped, each for missing shared data or as in the baseline run"
