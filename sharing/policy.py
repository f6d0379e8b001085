"""The data-sharing policy: which fields each recipient may receive on each channel.

The policy is data (`schemas/defaults/policy.toml`, overridable by the LA); this module is the
only place that applies it, so what the policy files say is what the code enforces.
"""
from __future__ import annotations


class PolicyError(PermissionError):
    """A disclosure the policy does not allow."""


def allowed_fields(policy: dict, channel: str, recipient_kind: str) -> list[str]:
    try:
        return list(policy["channels"][channel][recipient_kind])
    except KeyError:
        raise PolicyError(
            f"the data-sharing policy allows nothing on channel {channel!r} to {recipient_kind!r}; "
            f"add it to policy.toml if the data-sharing agreement permits"
        ) from None


def filter_payload(policy: dict, channel: str, recipient_kind: str, payload: dict) -> tuple[dict, list[str]]:
    """The payload reduced to what this recipient may see, and the list of fields disclosed."""
    allowed = allowed_fields(policy, channel, recipient_kind)
    kept = {k: v for k, v in payload.items() if k in allowed and v is not None}
    return kept, sorted(kept)


def display_name(forename: str | None, surname: str | None) -> str:
    """'Jayden B.': the forename and the surname's initial, as alerts show a child."""
    fore = (forename or "").strip()
    initial = (surname or "").strip()[:1]
    return f"{fore} {initial}.".strip() if initial else fore or "(name not held)"
