#!/bin/sh
# Make R and its surveillance package available for the detector evaluation's R peers
# (sahel_pipeline/core/evaluation/surveillance.py): Rscript on PATH and library(surveillance) loading.
# Idempotent, and never fails the build: when they cannot be had, it says so in one line and exits 0, and the
# evaluation lists the R peers as skipped with the same reason (their tests skip).
case $0 in */*) here=${0%/*} ;; *) here=. ;; esac
. "$here/debian.sh"

if command -v Rscript >/dev/null 2>&1 && Rscript --vanilla -e 'library(surveillance)' >/dev/null 2>&1; then
    exit 0
fi
consequence="the R peers of the detector evaluation will be skipped"
can_install ensure_r "no R with the surveillance package" "$consequence" || exit 0

echo "ensure_r: installing Debian's r-base-core and r-cran-surveillance for the detector evaluation"
install_r() {
    apt-get update -qq && apt-get install -y -qq --no-install-recommends r-base-core r-cran-surveillance
}
quietly ensure_r "r-base-core r-cran-surveillance" "$consequence" install_r
exit 0
