#!/bin/sh
# preremove for the cfimgsync .deb and .rpm: stop the service on removal, not on upgrade.
set -e

upgrade=no
case "$1" in
	upgrade|failed-upgrade) upgrade=yes ;; # dpkg
	1) upgrade=yes ;;                       # rpm: packages left after this one
esac

if [ "$upgrade" = no ] && [ -d /run/systemd/system ]; then
	systemctl disable --now cfimgsync.service >/dev/null 2>&1 || true
fi
exit 0
