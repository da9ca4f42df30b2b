#!/bin/sh
# Make PostgreSQL's server binaries (initdb, pg_ctl, postgres) available for
# sahel_pipeline_tests/test_postgres_deployment.py, which starts a throwaway cluster of its own.
# Idempotent, and never fails the build: when the binaries cannot be had, it says so in one line and
# exits 0, and the test skips with the same reason.
case $0 in */*) here=${0%/*} ;; *) here=. ;; esac
. "$here/debian.sh"

# Where the test looks: PATH, then Debian's versioned directories.
for dir in $(dirname "$(command -v initdb 2>/dev/null || echo /nonexistent/initdb)") /usr/lib/postgresql/*/bin; do
    if [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ] && [ -x "$dir/postgres" ]; then
        exit 0
    fi
done
consequence="the PostgreSQL deployment test will skip"
can_install ensure_postgres "no PostgreSQL server binaries" "$consequence" || exit 0

echo "ensure_postgres: installing Debian's postgresql package for the PostgreSQL deployment test"
install_postgres() {
    apt-get update -qq &&
    # postgresql-common first, then tell it not to create and start a 'main' cluster on port 5432:
    # the test needs only the binaries, and a stray server would outlive the build.
    apt-get install -y -qq --no-install-recommends postgresql-common &&
    sed -i 's/^#\{0,1\} *create_main_cluster *=.*/create_main_cluster = false/' \
        /etc/postgresql-common/createcluster.conf &&
    apt-get install -y -qq --no-install-recommends postgresql
}
quietly ensure_postgres postgresql "$consequence" install_postgres
exit 0
