"""A deployment that put the provider's discovery URL where the key set belongs still verifies:
the document names its ``jwks_uri``, and the verifier follows it instead of refusing every token."""

from __future__ import annotations

from hallpass_kit.auth import Role, TokenVerifier
from hallpass_kit.settings import CommonSettings, Environment
from tests.identity.provider import running_provider


def test_a_discovery_url_given_as_the_jwks_url_is_followed_to_the_keys() -> None:
    with running_provider("/realms/oakfield") as provider:
        common = CommonSettings(
            env=Environment.test,
            auth_issuer=provider.issuer,
            auth_jwks_url=provider.discovery_url,
        )
        token = provider.mint(
            {"sub": "head-1", "school": "oakfield", "roles": ["head"]}, audience="hallpass"
        )

        principal = TokenVerifier(common).verify(token)

        assert (principal.school, principal.roles) == ("oakfield", frozenset({Role.head}))
        assert provider.asked(provider.jwks_uri) == 1
