"""beta_neg while a run goes on: by hand through RUN_DIR/control.json.

    echo '{"beta_neg": 64}' > saves/fantasy/control.json

The training loop polls the file; a new valid value applies from the next step.
"""
import json
from pathlib import Path

KEYS = {"beta_neg"}


class ControlFile:
    """Watches a JSON file of settings; reports content that is not valid once and ignores it."""

    def __init__(self, path, log=print):
        self.path, self.log = Path(path), log
        self.last_text = None  # the content last seen, valid or not: each version is handled once

    def poll(self):
        """New settings {key: value} if the file changed to valid content, else None."""
        try:
            text = self.path.read_text()
        except (FileNotFoundError, IsADirectoryError):
            return None
        except (OSError, UnicodeDecodeError) as err:
            text = f"<unreadable: {err}>"
        if text == self.last_text:
            return None
        self.last_text = text
        try:
            settings = parse(text)
        except ValueError as err:
            self.log(f"warning: ignoring {self.path}: {err}")
            return None
        return settings or None


def parse(text):
    """{"beta_neg": positive number} -> dict; raises ValueError saying what is wrong."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"not valid JSON ({err.msg}, line {err.lineno})") from None
    if not isinstance(data, dict):
        raise ValueError('expected an object such as {"beta_neg": 64}')
    unknown = set(data) - KEYS
    if unknown:
        raise ValueError(f"unknown key(s) {sorted(unknown)}; known: {sorted(KEYS)}")
    value = data.get("beta_neg")
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                              or not value > 0 or value == float("inf")):
        raise ValueError(f"beta_neg must be a positive number, got {value!r}")
    return {k: float(v) for k, v in data.items()}
