#!/bin/sh
# Debian packages for the tests that start real services beside PostgreSQL (scripts/ensure_postgres.sh):
# nginx for the reverse-proxy test, openssl for its self-signed certificate, chromium for the report's browser test,
# redis-server for the Celery scale-out test (its broker and result backend). Idempotent and never fails the build:
# without root apt-get it says so in one line, and those tests skip with the same reason.
missing=""
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing="$missing nginx"
command -v openssl >/dev/null 2>&1 || missing="$missing openssl"
command -v chromium >/dev/null 2>&1 || missing="$missing chromium"
command -v redis-server >/dev/null 2>&1 || missing="$missing redis-server"
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "ensure_test_services: missing$missing and no root apt-get to install them; their tests will skip"
    exit 0
fi
echo "ensure_test_services: installing Debian's$missing"
export DEBIAN_FRONTEND=noninteractive
log=$(mktemp)
# nginx's and redis-server's packages would start servers (ports 80, 6379): policy-rc.d keeps services from
# starting during the install; the tests start their own on free ports.
made_policy=""
if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && made_policy=1
fi
if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends $missing; } >"$log" 2>&1; then
    echo "ensure_test_services: apt-get could not install$missing (last lines below); their tests will skip"
    tail -n 5 "$log"
fi
rm -f "$log"
[ -n "$made_policy" ] && rm -f /usr/sbin/policy-rc.d
exit 0
