#!/usr/bin/env bash
# Make sure this machine has what linkrec and its tests need beyond PyPI:
# Java 17+ for Spark, a MariaDB server on 127.0.0.1:3306 with a `test` database, and Chromium for the
# report test.
# Installs from Debian's packages only when something is missing; safe to run again.
set -euo pipefail

need_apt_update=1
apt_install() {
  if [ "$need_apt_update" = 1 ]; then apt-get update -qq; need_apt_update=0; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

java_major() { java -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -n1; }
if ! command -v java >/dev/null || [ "$(java_major)" -lt 17 ]; then
  echo "machine: installing Java 17 (openjdk-17-jre-headless)"
  apt_install openjdk-17-jre-headless
fi

# The run-report test renders the HTML page in a real headless browser.
if [ "${LINKREC_SKIP_BROWSER:-0}" != 1 ] && ! command -v chromium >/dev/null; then
  echo "machine: installing Chromium (chromium)"
  apt_install chromium
fi

if [ "${LINKREC_SKIP_MARIADB:-0}" != 1 ]; then
  if ! mariadb-admin --protocol=tcp -h127.0.0.1 -uroot ping >/dev/null 2>&1; then
    if [ ! -x /usr/sbin/mariadbd ]; then
      echo "machine: installing MariaDB (mariadb-server)"
      apt_install mariadb-server mariadb-client
    fi
    echo "machine: starting MariaDB"
    mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld 2>/dev/null || true
    start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd -- --user=mysql \
      --bind-address=127.0.0.1 --port=3306
    for _ in $(seq 1 60); do
      mariadb-admin --protocol=tcp -h127.0.0.1 -uroot ping >/dev/null 2>&1 && break
      sleep 1
    done
  fi
  mariadb --protocol=tcp -h127.0.0.1 -uroot -e "CREATE DATABASE IF NOT EXISTS test" \
    || { echo "machine: MariaDB at 127.0.0.1:3306 is not usable by root without a password" >&2; exit 1; }
fi
