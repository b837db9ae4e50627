"""The media service's own tables. No other service reads them."""

from __future__ import annotations

import datetime as dt
import uuid
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from hallpass_kit.db import UTCDateTime, enum_column, new_metadata
from hallpass_kit.tables import define_kit_tables


class Base(DeclarativeBase):
    metadata = new_metadata()
    type_annotation_map = {dt.datetime: UTCDateTime(), dict[str, Any]: JSON()}


kit_tables = define_kit_tables(Base.metadata)


class Channel(StrEnum):
    website = "website"
    social_media = "social_media"
    print = "print"
    newspaper = "newspaper"
    livestream = "livestream"
    internal = "internal"


class Owner(StrEnum):
    school = "school"
    third_party = "third_party"


class ScanStatus(StrEnum):
    pending = "pending"
    scanning = "scanning"
    done = "done"
    failed = "failed"


class PublicationStatus(StrEnum):
    live = "live"
    takedown_required = "takedown_required"
    taken_down = "taken_down"


class Device(Base):
    """A camera, phone or tablet the school owns; only these may supply media (M4)."""

    __tablename__ = "device"
    __table_args__ = (UniqueConstraint("school_id", "serial"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    school_id: Mapped[str] = mapped_column(String(64), index=True)
    name: Mapped[str] = mapped_column(String(200))
    serial: Mapped[str] = mapped_column(String(200))
    registered_by: Mapped[str] = mapped_column(String(200))
    registered_at: Mapped[dt.datetime]
    retired_at: Mapped[dt.datetime | None]
    retired_by: Mapped[str | None] = mapped_column(String(200))


class MediaItem(Base):
    """One uploaded original and what the scan found in it."""

    __tablename__ = "media_item"
    __table_args__ = (
        Index("ix_media_item_school_uploaded", "school_id", "uploaded_at", "id"),
        Index("ix_media_item_scan_status", "scan_status", "uploaded_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    school_id: Mapped[str] = mapped_column(String(64))
    device_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("device.id"))
    uploaded_by: Mapped[str] = mapped_column(String(200))
    uploaded_at: Mapped[dt.datetime]
    original_filename: Mapped[str] = mapped_column(String(255))
    storage_key: Mapped[str] = mapped_column(String(300), unique=True)
    mime: Mapped[str] = mapped_column(String(40))
    format: Mapped[str] = mapped_column(String(10))
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    size_bytes: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    caption: Mapped[str | None] = mapped_column(Text)
    alt_text: Mapped[str | None] = mapped_column(Text)
    taken_at: Mapped[dt.datetime | None]
    event: Mapped[str | None] = mapped_column(String(200))
    owner: Mapped[Owner] = mapped_column(enum_column(Owner, "media_owner"))
    source: Mapped[str | None] = mapped_column(String(300))
    permission: Mapped[str | None] = mapped_column(String(500))
    scan_status: Mapped[ScanStatus] = mapped_column(enum_column(ScanStatus, "scan_status"))
    scan_claimed_at: Mapped[dt.datetime | None]
    # Claims so far; a scan that kills its worker is not taken again past the limit.
    scan_attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # The job engine's columns (hallpass_kit.jobs): the claim token and its lease, when to try
    # again (NULL: at once), and when the scan was given up as a dead letter.
    scan_claimed_by: Mapped[str | None] = mapped_column(String(100))
    scan_claimed_until: Mapped[dt.datetime | None]
    scan_due_at: Mapped[dt.datetime | None]
    scan_dead_at: Mapped[dt.datetime | None]
    scanned_at: Mapped[dt.datetime | None]
    scan_result: Mapped[dict[str, Any] | None]
    scan_error: Mapped[str | None] = mapped_column(Text)
    # 64-bit perceptual hash stored signed so it fits a BIGINT on every backend.
    phash: Mapped[int | None] = mapped_column(BigInteger)
    face_count: Mapped[int | None] = mapped_column(Integer)
    has_location: Mapped[bool | None] = mapped_column(Boolean)


class MediaPupil(Base):
    """A pupil a member of staff says is shown, with where their face is when they said so."""

    __tablename__ = "media_pupil"

    media_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("media_item.id"), primary_key=True)
    pupil_id: Mapped[uuid.UUID] = mapped_column(primary_key=True, index=True)
    face_x: Mapped[int | None] = mapped_column(Integer)
    face_y: Mapped[int | None] = mapped_column(Integer)
    face_width: Mapped[int | None] = mapped_column(Integer)
    face_height: Mapped[int | None] = mapped_column(Integer)


class Publication(Base):
    """Clean copies put on one channel, who approved them (M6) and whether they must come down."""

    __tablename__ = "publication"
    __table_args__ = (
        Index("ix_publication_school_status", "school_id", "status", "published_at", "id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    school_id: Mapped[str] = mapped_column(String(64))
    channel: Mapped[Channel] = mapped_column(enum_column(Channel, "channel"))
    purpose: Mapped[str] = mapped_column(String(64))
    target_url: Mapped[str | None] = mapped_column(String(2000))
    post_id: Mapped[str | None] = mapped_column(String(200))
    caption: Mapped[str | None] = mapped_column(Text)
    post_body: Mapped[str | None] = mapped_column(Text)
    alt_text: Mapped[str | None] = mapped_column(Text)
    approved_by: Mapped[str] = mapped_column(String(200))
    published_at: Mapped[dt.datetime]
    status: Mapped[PublicationStatus] = mapped_column(enum_column(PublicationStatus, "pub_status"))
    takedown_required_at: Mapped[dt.datetime | None]
    takedown_pupil_id: Mapped[uuid.UUID | None]
    takedown_state: Mapped[str | None] = mapped_column(String(40))
    taken_down_at: Mapped[dt.datetime | None]
    taken_down_by: Mapped[str | None] = mapped_column(String(200))


class PublicationRendition(Base):
    """The clean copy of one original in a publication: pixels only, neutral file name."""

    __tablename__ = "publication_rendition"

    publication_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("publication.id"), primary_key=True
    )
    media_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("media_item.id"), primary_key=True, index=True
    )
    position: Mapped[int] = mapped_column(Integer)
    storage_key: Mapped[str] = mapped_column(String(300), unique=True)
    file_name: Mapped[str] = mapped_column(String(100))
    mime: Mapped[str] = mapped_column(String(40))
    size_bytes: Mapped[int] = mapped_column(Integer)
    blurred_faces: Mapped[int] = mapped_column(Integer)


class PublicationPupil(Base):
    """A pupil a publication shows or names: whom a withdrawal must reach (M7)."""

    __tablename__ = "publication_pupil"

    publication_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("publication.id"), primary_key=True
    )
    pupil_id: Mapped[uuid.UUID] = mapped_column(primary_key=True, index=True)
    named: Mapped[bool] = mapped_column(Boolean)


class SchoolMediaSettings(Base):
    """A school's own choices on top of the policy."""

    __tablename__ = "school_media_settings"

    school_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    forbid_first_names: Mapped[bool] = mapped_column(Boolean)
    blur_untagged_faces: Mapped[bool] = mapped_column(Boolean)
    updated_by: Mapped[str] = mapped_column(String(200))
    updated_at: Mapped[dt.datetime]
