"""The operator key check: constant-time comparison against every configured key."""

from __future__ import annotations

import pytest

from crmsync.api.auth import Unauthorized, check_operator_key, is_public


@pytest.mark.parametrize(("path", "public"), [("/health", True), ("/webhooks/shopify", True), ("/local-crm/x", False)])
def test_only_health_and_webhooks_are_public(path, public):
    assert is_public(path) is public


def test_any_configured_key_is_accepted():
    check_operator_key("old", ["new", "old"])
    check_operator_key("new", ["new", "old"])


@pytest.mark.parametrize(("presented", "keys"), [(None, ["k"]), ("", ["k"]), ("x", ["k"]), ("k", [])])
def test_missing_wrong_or_unconfigured_keys_are_refused(presented, keys):
    with pytest.raises(Unauthorized):
        check_operator_key(presented, keys)
