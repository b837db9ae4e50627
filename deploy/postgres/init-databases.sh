#!/bin/sh
# Run by the postgres image once, when its data volume is first created: one login and one
# database per service. Each service owns its database and cannot connect to the others'
# (services never read each other's tables).
set -eu

for service in consent media comms; do
    password_variable="$(echo "$service" | tr '[:lower:]' '[:upper:]')_DB_PASSWORD"
    password="$(printenv "$password_variable" || true)"
    if [ -z "$password" ]; then
        echo "init-databases: $password_variable is not set" >&2
        exit 1
    fi
    # psql's :"name" and :'password' quote an identifier and a literal, so no value is
    # interpolated into SQL unquoted.
    psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
        -v role="$service" -v database="hallpass_$service" -v password="$password" <<'SQL'
CREATE ROLE :"role" LOGIN PASSWORD :'password';
CREATE DATABASE :"database" OWNER :"role";
REVOKE ALL ON DATABASE :"database" FROM PUBLIC;
GRANT CONNECT, TEMPORARY ON DATABASE :"database" TO :"role";
SQL
done
