"""Config files: what ``pcapaudit audit --config FILE`` and ``pcapaudit.audit(config=FILE)`` read (the
settings of an environment: its tenants, its trusted issuers, its device networks), and ``VENDOR.NAME=VALUE``
tenant values."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from pcapaudit.errors import ConfigError, UsageError


def parse_kv(items: Iterable[str], flag: str) -> dict[str, str]:
    """``VENDOR.NAME=VALUE`` items (``--tenant``) as a dict; ``UsageError`` naming ``flag`` for a bad one."""
    out = {}
    for it in items:
        k, sep, v = it.partition("=")
        if not sep or not k or "." not in k:
            raise UsageError(f"{flag} {it!r}: expected VENDOR.NAME=VALUE")
        out[k.strip()] = v.strip()
    return out


def load_config(path: str | os.PathLike) -> dict:
    """A config file (YAML): ``rules``, ``vendor``, ``trust_issuers``, ``devices`` as lists of strings,
    ``tenants`` a mapping, ``fail_on``, ``max_flows``; relative rule paths resolved from the file's
    directory. ``ConfigError`` naming the file for anything wrong in it."""
    path = os.fspath(path)
    import yaml

    from pcapaudit.rules.loader import SAFE_LOADER, check_node_budget

    try:
        data = yaml.load(Path(path).read_text(encoding="utf-8"), Loader=SAFE_LOADER) or {}
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot read config: {e}") from None
    except yaml.YAMLError as e:  # where and what, as for --rules files
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}:" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(f"{path}:{where} invalid YAML: {problem}") from None
    except RecursionError:
        raise ConfigError(f"{path}: invalid YAML: nested too deeply") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: config must be a mapping")
    if not check_node_budget(data):
        raise ConfigError(f"{path}: config too large (YAML aliases expanding to a huge document?)")
    allowed = ("rules", "vendor", "tenants", "trust_issuers", "devices", "fail_on", "max_flows")
    for key in data:
        if key not in allowed:
            raise ConfigError(f"{path}: unknown config key {key!r} (allowed: {', '.join(sorted(allowed))})")

    def strings(key: str) -> list[str]:  # a string, or a list of strings
        v = data[key]
        items = v if isinstance(v, list) else [v]
        if not items or not all(isinstance(x, str) and x for x in items):
            raise ConfigError(f"{path}: {key}: expected a string or a list of strings")
        return items

    for key in ("rules", "vendor", "trust_issuers", "devices"):
        if key in data:
            data[key] = strings(key)
    if "fail_on" in data and not isinstance(data["fail_on"], str):
        raise ConfigError(f"{path}: fail_on: expected one of info, low, medium, high, none")
    if "max_flows" in data and (problem := max_flows_problem(data["max_flows"])):
        raise ConfigError(f"{path}: max_flows: {problem}")
    tenants = data.get("tenants")
    if tenants is not None and not (
        isinstance(tenants, dict)
        and all(isinstance(k, str) and isinstance(v, (str, int, float)) and not isinstance(v, bool) for k, v in tenants.items())
    ):
        raise ConfigError(f"{path}: tenants: expected a mapping of VENDOR.NAME: VALUE")
    if tenants is not None:
        data["tenants"] = {str(k): str(v) for k, v in tenants.items()}
    base = Path(path).resolve().parent
    if "rules" in data:
        data["rules"] = [str(base / r) if not Path(r).is_absolute() else r for r in data["rules"]]
    return data


def max_flows_problem(n) -> str | None:
    """What is wrong with ``n`` as a flow cap (``--max-flows``, ``max_flows``), or None."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        return f"expected a whole number of flows (0: no cap), not {n!r}"
    if 0 < n < 1000:
        return f"{n} is too few to audit anything (at least 1000, or 0: no cap)"
    return None


def vendor_names(items) -> tuple[str, ...]:
    """Vendor names from ``--vendor`` values or the config's ``vendor``, each of which may list several with
    commas."""
    return tuple(x.strip() for item in (items or ()) for x in item.split(",") if x.strip())
