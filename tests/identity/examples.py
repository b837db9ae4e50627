"""The example identity files under ``deploy/identity/``, as tests use them: loaded as an IT lead
would load them, and pointed at loopback providers in place of the real issuers."""

from __future__ import annotations

from pathlib import Path

from hallpass_kit.identity import IdentityFile, Issuer, load_identity_file

DEPLOY_IDENTITY = Path(__file__).resolve().parents[2] / "deploy" / "identity"


def example(file_name: str) -> IdentityFile:
    """The example file ``file_name`` (``entra.toml``…), loaded and checked."""
    return load_identity_file(DEPLOY_IDENTITY / file_name)


def issuer_named(identity: IdentityFile, name: str) -> Issuer:
    issuer = identity.by_name(name)
    assert issuer is not None, f"the example has no issuer named {name!r}"
    return issuer


def at_loopback(identity: IdentityFile, **issuers: str) -> IdentityFile:
    """``identity`` with the named issuers' ``issuer`` swapped for a loopback provider's (by
    issuer name: ``entra=provider.issuer``); everything else as the file says."""
    unknown = set(issuers) - {issuer.name for issuer in identity.issuers}
    assert not unknown, f"the example has no issuers named {sorted(unknown)}"
    return identity.model_copy(
        update={
            "issuers": [
                issuer.model_copy(update={"issuer": issuers[issuer.name]})
                if issuer.name in issuers
                else issuer
                for issuer in identity.issuers
            ]
        }
    )
