"""The shape each built-in provider's keys have, checked before any request is sent."""

from __future__ import annotations

KEY_FORMATS: dict[str, str] = {
    "slack_bot": r"xoxb-[0-9]+-[0-9]+-[A-Za-z0-9]+",
    "slack_webhook": r"https://hooks\.slack\.com/services/[A-Z0-9]+/[A-Z0-9]+/[A-Za-z0-9]+",
    "github": r"(gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255})",
    "openai": r"sk-[A-Za-z0-9_-]{20,}",
    "anthropic": r"sk-ant-[A-Za-z0-9_-]{20,}",
    "huggingface": r"hf_[A-Za-z0-9]{30,}",
    "polygon": r"[A-Za-z0-9_]{20,64}",
    "alpaca_key_id": r"[A-Z0-9]{16,32}",
    "alpaca_secret": r"[A-Za-z0-9/+]{30,64}",
    "redis": r"\S+",
}
