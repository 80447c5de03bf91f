#!/bin/sh
# postinstall for the cfimgsync .deb and .rpm: the system user, and the config's
# permissions. It does not start the service: the sample config needs editing first.
set -e

if ! getent group cfimgsync >/dev/null 2>&1; then
	groupadd --system cfimgsync
fi
if ! getent passwd cfimgsync >/dev/null 2>&1; then
	useradd --system --gid cfimgsync --home-dir /var/lib/cfimgsync --no-create-home \
		--shell /usr/sbin/nologin --comment "cfimgsync daemon" cfimgsync
fi

# On a first install (dpkg: "configure" without a previous version; rpm: 1), the config
# directory becomes readable by the service and nobody else, since a token file may sit in
# it. An upgrade leaves whatever the administrator set since.
first=no
case "$1" in
	configure) [ -z "${2:-}" ] && first=yes ;;
	1) first=yes ;;
esac
if [ "$first" = yes ]; then
	chown root:cfimgsync /etc/cfimgsync /etc/cfimgsync/config.toml
	chmod 0750 /etc/cfimgsync
	chmod 0640 /etc/cfimgsync/config.toml
fi

if [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null 2>&1 || true
	# An upgrade restarts a running service on the new binary.
	if systemctl is-active --quiet cfimgsync.service; then
		systemctl try-restart cfimgsync.service || true
	fi
fi
echo "cfimgsync: edit /etc/cfimgsync/config.toml, check it with 'cfimgsync config check', then 'systemctl enable --now cfimgsync'."
exit 0
