#!/bin/sh
# Run by the minio-buckets job after MinIO is healthy; safe to run again.
set -eu

mc alias set hallpass http://minio:9000 "$MINIO_ROOT_USER" "$MINIO_ROOT_PASSWORD" >/dev/null

# Versioned: an object overwritten or deleted by mistake (or by an intruder with media's key)
# can be brought back; see docs/deploy.md, "Backups".
mc mb --ignore-existing hallpass/hallpass-media
mc version enable hallpass/hallpass-media

# Media's own key may read and write its bucket and nothing else.
cat > /tmp/hallpass-media-policy.json <<'JSON'
{
  "Version": "2012-10-17",
  "Statement": [
    {"Effect": "Allow", "Action": ["s3:ListBucket", "s3:GetBucketLocation"],
     "Resource": ["arn:aws:s3:::hallpass-media"]},
    {"Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
     "Resource": ["arn:aws:s3:::hallpass-media/*"]}
  ]
}
JSON
mc admin policy create hallpass hallpass-media /tmp/hallpass-media-policy.json
mc admin user add hallpass hallpass-media "$MEDIA_S3_SECRET_KEY"
# A second run finds the policy attached already, which mc reports as an error.
mc admin policy attach hallpass hallpass-media --user hallpass-media 2>/dev/null \
    || mc admin user info hallpass hallpass-media | grep -q "hallpass-media"
echo "minio-buckets: hallpass-media ready"
