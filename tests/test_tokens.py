import base64

import pytest

from service.events import tokens
from service.events.tokens import InvalidToken

APP = "575ec8687ae143cd83dc4a97"
NOTEBOOK = "5c782b8d4f3a8e51c1db42e4"
OLD, NEW = "old-secret-0123456789", "new-secret-0123456789"


def test_a_signed_token_verifies_and_carries_its_claims():
    token = tokens.sign(NEW, APP, NOTEBOOK, run="run-1", step="report", now=1_000_000)
    claims = tokens.verify(token, [NEW], now=1_000_100)
    assert (claims.application_id, claims.notebook_id) == (APP, NOTEBOOK)
    assert (claims.run, claims.step) == ("run-1", "report")
    assert claims.issued_at == 1_000_000
    assert claims.expires_at == 1_000_000 + tokens.defaults.CALLBACK_TOKEN_TTL


def test_tokens_are_url_safe_and_short():
    plain = tokens.sign(NEW, APP, NOTEBOOK)
    assert len(plain) <= 100
    longest = tokens.sign(NEW, APP, NOTEBOOK, run="r" * 70, step="s" * 70)
    assert len(longest) <= 300
    for token in (plain, longest):
        assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    with pytest.raises(ValueError, match="too long"):
        tokens.sign(NEW, APP, NOTEBOOK, run="r" * 120, step="s" * 120)


def test_rotation_accepts_every_configured_secret():
    token = tokens.sign(OLD, APP, NOTEBOOK)
    assert tokens.verify(token, [NEW, OLD]).notebook_id == NOTEBOOK
    with pytest.raises(InvalidToken) as info:
        tokens.verify(token, [NEW])
    assert info.value.reason == "signature"


def test_an_expired_token_is_refused():
    token = tokens.sign(NEW, APP, NOTEBOOK, ttl=60, now=1_000_000)
    assert tokens.verify(token, [NEW], now=1_000_059)
    with pytest.raises(InvalidToken) as info:
        tokens.verify(token, [NEW], now=1_000_060)
    assert info.value.reason == "expired"


def test_every_single_character_change_is_refused():
    token = tokens.sign(NEW, APP, NOTEBOOK, run="run", step="step")
    alphabet = "AQgw-_09"
    for position in range(len(token)):
        for replacement in alphabet:
            if replacement == token[position]:
                continue
            forged = token[:position] + replacement + token[position + 1 :]
            with pytest.raises(InvalidToken):
                tokens.verify(forged, [NEW])


def test_claims_cannot_be_swapped_without_the_secret():
    token = tokens.sign(NEW, APP, NOTEBOOK)
    raw = bytearray(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    raw[13:25] = bytes.fromhex("aa" * 12)  # another notebook, same MAC
    forged = base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()
    with pytest.raises(InvalidToken) as info:
        tokens.verify(forged, [NEW])
    assert info.value.reason == "signature"


@pytest.mark.parametrize(
    "garbage",
    ["", "x", "not base64!", "a" * 301, "AAAA", "+/+/" * 30, tokens.sign(NEW, APP, NOTEBOOK) + "="],
)
def test_malformed_tokens_are_refused(garbage):
    with pytest.raises(InvalidToken):
        tokens.verify(garbage, [NEW])


def test_no_configured_secret_verifies_nothing():
    with pytest.raises(InvalidToken):
        tokens.verify(tokens.sign(NEW, APP, NOTEBOOK), [])


def test_the_error_never_contains_the_token():
    token = tokens.sign(OLD, APP, NOTEBOOK)
    with pytest.raises(InvalidToken) as info:
        tokens.verify(token, [NEW])
    assert token not in str(info.value)


def test_callback_url():
    assert tokens.callback_url("https://relay.example.com/", "t0k") == (
        "https://relay.example.com/callbacks/t0k"
    )


def test_a_tokens_lifetime_follows_its_runs_limits_not_a_week():
    from service import defaults
    from service.events.records import ExecutionRecord
    from service.events.starter import callback_token_ttl

    unknown = callback_token_ttl(None)
    assert unknown == defaults.CALLBACK_TOKEN_TTL <= 3 * 3600
    short = ExecutionRecord("e", APP, NOTEBOOK, {"maxAllowedRunMinutes": 5})
    assert callback_token_ttl(short) == 5 * 60 + defaults.OVERDUE_SLACK + (
        defaults.CALLBACK_TOKEN_MARGIN
    )
    token = tokens.sign(NEW, APP, NOTEBOOK, ttl=callback_token_ttl(short), now=1_000_000)
    assert tokens.verify(token, [NEW], now=1_000_000 + 3600).notebook_id == NOTEBOOK
    with pytest.raises(InvalidToken):
        tokens.verify(token, [NEW], now=1_000_000 + 2 * 3600)
    # a token minted before (valid for 7 days) keeps its own expiry
    week = tokens.sign(NEW, APP, NOTEBOOK, ttl=7 * 24 * 3600, now=1_000_000)
    assert tokens.verify(week, [NEW], now=1_000_000 + 6 * 24 * 3600).notebook_id == NOTEBOOK
