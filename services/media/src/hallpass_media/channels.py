"""Where publications go, and the consent purpose each channel is published under: plain
values the pure policy reads."""

from __future__ import annotations

from hallpass_media.models import Channel

# Each channel is published under one consent purpose (C1); internal use never leaves school (C6).
PURPOSE_OF: dict[Channel, str] = {
    Channel.website: "website_photo",
    Channel.social_media: "social_media_photo",
    Channel.print: "print_publication",
    Channel.newspaper: "newspaper_named",
    Channel.livestream: "livestream",
    Channel.internal: "internal_assessment",
}
# Channels whose purpose consents to the pupil being named (C4).
NAMING_CHANNELS = frozenset({Channel.newspaper})
UNPUBLISHABLE = frozenset({Channel.internal})


def channels_for_purpose(purpose: str) -> list[Channel]:
    return [channel for channel, code in PURPOSE_OF.items() if code == purpose]
