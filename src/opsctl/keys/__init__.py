"""API keys: declared in ``[keys.NAME]``, resolved from the environment and ``.env``,
checked for shape and verified live, and written to ``.env`` safely.
"""

from opsctl.keys._dotenv import EnvWrite, quote, set_key, unset_key
from opsctl.keys._formats import KEY_FORMATS
from opsctl.keys._providers import (
    PROVIDERS,
    Answer,
    Provider,
    Verdict,
    judge_by_status,
    known_providers,
)
from opsctl.keys._state import KeyState, key_states
from opsctl.keys._verify import KeyResult, last_verification, load_records, verify_keys, verify_one

__all__ = [
    "KEY_FORMATS",
    "PROVIDERS",
    "Answer",
    "EnvWrite",
    "KeyResult",
    "KeyState",
    "Provider",
    "Verdict",
    "judge_by_status",
    "key_states",
    "known_providers",
    "last_verification",
    "load_records",
    "quote",
    "set_key",
    "unset_key",
    "verify_keys",
    "verify_one",
]
