#!/bin/sh
# First start: a cluster whose `deploybot` user has the password of the Swarm secret
# `postgres_password`; every start: serve on the stack's network with password auth.
set -eu
DATA=/var/lib/deploybot-pg/data
BIN=/usr/lib/postgresql/15/bin
chown postgres:postgres /var/lib/deploybot-pg
if [ ! -s "$DATA/PG_VERSION" ]; then
  su postgres -s /bin/sh -c "$BIN/initdb -D $DATA -U postgres --auth-local=peer --auth-host=scram-sha-256 --pwfile=/run/secrets/postgres_password" >/dev/null
  echo "host all all 0.0.0.0/0 scram-sha-256" >> "$DATA/pg_hba.conf"
  su postgres -s /bin/sh -c "$BIN/pg_ctl -D $DATA -w -o '-c listen_addresses=' start" >/dev/null
  PW=$(cat /run/secrets/postgres_password)
  su postgres -s /bin/sh -c "psql -q -h /var/run/postgresql -U postgres" <<SQL
CREATE USER deploybot PASSWORD '$PW';
CREATE DATABASE deploybot OWNER deploybot;
SQL
  su postgres -s /bin/sh -c "$BIN/pg_ctl -D $DATA -w stop" >/dev/null
fi
mkdir -p /var/run/postgresql && chown postgres:postgres /var/run/postgresql
exec su postgres -s /bin/sh -c "exec $BIN/postgres -D $DATA -c listen_addresses='*'"
