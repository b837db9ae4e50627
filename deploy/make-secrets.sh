#!/usr/bin/env bash
# Makes what docker-compose.yml needs and git must never hold, once per deployment:
#   deploy/secrets.env                   random passwords (compose interpolation)
#   deploy/secrets/service-key.json      the key services sign their calls to each other with
#   deploy/secrets/audit-signing-key.json  the key that signs audit checkpoints
# Existing files are kept: run it again after deleting one to make that one anew.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

random() { python3 -c "import secrets; print(secrets.token_urlsafe(32))"; }

if [[ ! -f deploy/secrets.env ]]; then
    umask 077
    {
        echo "# Made by deploy/make-secrets.sh on $(date -u +%Y-%m-%dT%H:%MZ). Keep a copy in the"
        echo "# school's password manager: the database passwords are needed to restore a backup."
        for name in POSTGRES_PASSWORD CONSENT_DB_PASSWORD MEDIA_DB_PASSWORD COMMS_DB_PASSWORD \
            MINIO_ROOT_PASSWORD MEDIA_S3_SECRET_KEY HALLPASS_WEBHOOK_SECRET HALLPASS_GATEWAY_SESSION_SECRET \
            KEYCLOAK_ADMIN_PASSWORD HALLPASS_SERVICE_CLIENT_SECRET HALLPASS_DEMO_USER_PASSWORD; do
            echo "$name=$(random)"
        done
    } > deploy/secrets.env
    echo "wrote deploy/secrets.env"
fi

# The keys are made by Hallpass itself, from the gateway image.
mkdir -p deploy/secrets
chmod 700 deploy/secrets
image=hallpass/gateway:local
if [[ ! -f deploy/secrets/service-key.json || ! -f deploy/secrets/audit-signing-key.json ]]; then
    docker build --quiet -t "$image" -f gateway/Dockerfile . >/dev/null
fi
if [[ ! -f deploy/secrets/service-key.json ]]; then
    docker run --rm --user "$(id -u):$(id -g)" -v "$PWD/deploy/secrets:/out" "$image" \
        hallpass service-key --out /out/service-key.json
    echo "wrote deploy/secrets/service-key.json"
fi
if [[ ! -f deploy/secrets/audit-signing-key.json ]]; then
    docker run --rm "$image" python -c "import json; from hallpass_kit.checkpoints import AuditSigningKey; print(json.dumps(AuditSigningKey.generate().key.as_dict(private=True)))" \
        > deploy/secrets/audit-signing-key.json
    echo "wrote deploy/secrets/audit-signing-key.json"
fi
# The containers run as uid 10001 and read these files through a bind mount, which needs read
# permission on the file only; the folder (0700) keeps other users of this machine out.
chmod 444 deploy/secrets/*.json
