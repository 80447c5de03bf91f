#!/bin/sh
# postremove for the cfimgsync .deb and .rpm. The state (/var/lib/cfimgsync) and the user
# stay: the index records what was uploaded, and a reinstall should pick it up. `dpkg
# --purge` removes the state directory as well.
set -e

if [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null 2>&1 || true
fi
if [ "$1" = purge ]; then
	rm -rf /var/lib/cfimgsync
fi
exit 0
