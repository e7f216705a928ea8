"""The environment a command source's program runs with, and which variables it may set.

A command gets a minimal environment made here (PATH, locale, time zone, HOME) plus the
variables its source declares in ``connection_config.environment`` and
``authentication_config.environment``. Nothing is inherited from the service, so its
``FACTORYSYNC_*`` settings, database URLs and key never reach a command.

Declared variables pass two checks, in this order:

1. **Hooks are refused, always.** Many variables make the loader, the C library, a shell
   or an interpreter load code from a path or run a command line of their own:
   ``LD_PRELOAD=/tmp/x.so`` runs the library in any program, ``PYTHONWARNINGS`` with
   ``BROWSER`` runs any command through an allow-listed ``python3``. Any one of them turns
   "may run /usr/bin/python3" into "may run anything", and the executable allowlist
   (``FACTORYSYNC_COMMAND_ALLOWLIST``) would mean nothing. ``HOOKS`` lists them, matched
   without regard to case; no setting allows them, whatever its patterns match.
2. **Every other name must be on the safe list**: ``DEFAULT_ALLOWED`` (locale, time zone
   and the application settings a Laravel ``.env`` holds) plus the names and patterns an
   administrator adds with ``FACTORYSYNC_COMMAND_ENV_ALLOWLIST``. A source never widens it.

Values may not hold a NUL byte, refer to the service's own settings
(``${env:FACTORYSYNC_SECRET_KEY}``) or carry the service's secrets.

The rule is checked where a source is validated (``apply``, the API, the console) and
again before every run, for sources stored before it existed.
"""

from __future__ import annotations

import contextlib
import re
import tempfile
from collections.abc import Mapping
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from factorysync.settings import Settings

# The PATH commands are looked up on, and run with.
COMMAND_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_ENV_REF = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}")

# Names a source may declare without an administrator's say-so.
DEFAULT_ALLOWED: tuple[str, ...] = (
    # locale and time zone
    "LANG",
    "LANGUAGE",
    "LC_*",
    "TZ",
    # application settings, as a Laravel .env names them (artisan reads them first)
    "APP_*",
    "DB_*",
    "DATABASE_URL",
    "LOG_CHANNEL",
    "LOG_LEVEL",
    "CACHE_STORE",
    "CACHE_DRIVER",
    "QUEUE_CONNECTION",
    "REDIS_HOST",
    "REDIS_PORT",
    "REDIS_PASSWORD",
    "REDIS_DB",
    # plain output from tools that colour it
    "NO_COLOR",
)

# Never passed to a command: (what it is, what it does, patterns). Drawn from glibc's list
# of variables it ignores for setuid programs (elf/dl-unsecvars.h), the shells' start-up
# variables, and the option, path and start-up variables of common interpreters and
# libraries.
HOOKS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    (
        "a loader hook",
        "it makes the dynamic loader or the C library load code or data from a path",
        (
            "LD_*",
            "DYLD_*",
            "GCONV_PATH",
            "GETCONF_DIR",
            "GLIBC_TUNABLES",
            "MALLOC_*",
            "LOCPATH",
            "NLSPATH",
            "NIS_PATH",
            "HOSTALIASES",
            "LOCALDOMAIN",
            "RES_OPTIONS",
            "RESOLV_HOST_CONF",
            "TZDIR",
            "*SAN_OPTIONS",
            "LIBRARY_PATH",
        ),
    ),
    (
        "a library plug-in hook",
        "it makes a library load modules from a path or file it names",
        (
            "OPENSSL_*",
            "KRB5*",
            "SASL_PATH",
            "ODBCINI",
            "ODBCSYSINI",
            "ORACLE_HOME",
            "GIO_*",
            "GTK_*",
            "GDK_*",
            "GST_*",
            "QT_*",
            "PKCS11_*",
            "P11_KIT_*",
        ),
    ),
    (
        "a shell hook",
        "it changes where programs and start-up files are found, or runs code in a shell",
        (
            "PATH",
            "IFS",
            "ENV",
            "BASH_ENV",
            "BASH_FUNC_*",
            "BASHOPTS",
            "SHELLOPTS",
            "BASH_XTRACEFD",
            "PS1",
            "PS2",
            "PS3",
            "PS4",
            "PROMPT_COMMAND",
            "CDPATH",
            "GLOBIGNORE",
            "ZDOTDIR",
            "SHELL",
            "HOME",
            "XDG_*",
        ),
    ),
    (
        "an interpreter hook",
        "it makes an interpreter load modules or options from a path or value it names",
        (
            "PYTHON*",
            "PERL*",
            "RUBY*",
            "GEM_*",
            "BUNDLE_*",
            "NODE_OPTIONS",
            "NODE_PATH",
            "NODE_REPL_EXTERNAL_MODULE",
            "NPM_CONFIG_*",
            "PHPRC",
            "PHP_*",
            "COMPOSER*",
            "JAVA_*",
            "_JAVA_OPTIONS",
            "JDK_JAVA_OPTIONS",
            "CLASSPATH",
            "LUA_*",
            "TCLLIBPATH",
            "R_PROFILE*",
            "R_ENVIRON*",
            "R_LIBS*",
            "DOTNET_*",
            "CORECLR_*",
            "COR_*",
            "COMPLUS_*",
        ),
    ),
    (
        "a program launcher",
        "programs run the command it names",
        (
            "BROWSER",
            "EDITOR",
            "VISUAL",
            "PAGER",
            "MANPAGER",
            "LESSOPEN",
            "LESSCLOSE",
            "*_ASKPASS",
            "GIT_*",
            "VIMINIT",
            "EXINIT",
        ),
    ),
    (
        "a Laravel path hook",
        "artisan loads PHP files from the path it names",
        (
            "APP_BASE_PATH",
            "APP_*_CACHE",
            "LARAVEL_*",
            "VIEW_COMPILED_PATH",
        ),
    ),
    (
        "a factorysync setting",
        "the service's own settings stay with the service",
        ("FACTORYSYNC_*",),
    ),
)


def allowed_patterns(settings: Settings) -> list[str]:
    """The safe list: the built-in names, then the administrator's."""
    extra = [p for p in re.split(r"[,\s]+", settings.command_env_allowlist) if p]
    return [*DEFAULT_ALLOWED, *extra]


def hook_of(name: str) -> str | None:
    """Why ``name`` is refused when it is a hook, else None."""
    upper = name.upper()
    for kind, effect, patterns in HOOKS:
        for pattern in patterns:
            if fnmatchcase(upper, pattern):
                like = "" if pattern == upper else f", like every {pattern} variable"
                return f"{kind} ({name}{like}): {effect}"
    return None


def name_problem(name: str, settings: Settings) -> str | None:
    """Why a command may not get variable ``name``, or None when it may."""
    if not ENV_NAME.match(name):
        return "not a valid variable name (letters, digits and '_', not starting with a digit)"
    hook = hook_of(name)
    if hook is not None:
        return f"not allowed: {hook}; never passed to commands, whatever the settings say"
    allowed = allowed_patterns(settings)
    if not any(fnmatchcase(name, p) for p in allowed):
        return (
            f"not allowed: {name} is not on the safe list ({', '.join(allowed)}); an "
            "administrator may add it to FACTORYSYNC_COMMAND_ENV_ALLOWLIST"
        )
    return None


def service_secrets(settings: Settings) -> list[tuple[str, str]]:
    """(setting, value) of the service's own secrets, which no command may be handed."""
    found = [("FACTORYSYNC_SECRET_KEY", k) for k in re.split(r"[,\s]+", settings.secret_key)]
    with contextlib.suppress(ValueError):  # a URL urlsplit cannot read has no password
        found.append(("FACTORYSYNC_DATABASE_URL", urlsplit(settings.database_url).password or ""))
    found += [
        ("FACTORYSYNC_ALERT_SMTP_PASSWORD", settings.alert_smtp_password),
        ("FACTORYSYNC_ALERT_WEBHOOK_URL", settings.alert_webhook_url),
    ]
    return [(name, value) for name, value in found if len(value) >= 8]


def value_problem(value: Any, settings: Settings) -> str | None:
    """Why a command may not get ``value``, or None when it may."""
    if not isinstance(value, str | int | float | bool):
        return f"the value must be text or a number, not {type(value).__name__}"
    text = str(value)
    if "\0" in text:
        return "the value holds a NUL byte"
    own = [m for m in _ENV_REF.findall(text) if m.upper().startswith("FACTORYSYNC_")]
    if own:
        return (
            f"the value refers to ${{env:{own[0]}}}, a setting of factorysync itself; "
            "the service's settings are never passed to commands"
        )
    for setting, secret in service_secrets(settings):
        if secret in text:
            return f"the value holds the service's own {setting}; never passed to commands"
    return None


def environment_problems(env: Any, settings: Settings, where: str) -> list[str]:
    """Every problem of one declared environment, as '<where>.NAME: message' strings."""
    if env is None:
        return []
    if not isinstance(env, Mapping):
        return [f"{where}: must be a mapping of variable names to values"]
    problems = []
    for name, value in env.items():
        problem = name_problem(str(name), settings) or value_problem(value, settings)
        if problem is not None:
            problems.append(f"{where}.{name}: {problem}")
    return problems


def base_environment(settings: Settings, cwd: Path | None) -> dict[str, str]:
    """What every command starts from: nothing of the service's own environment."""
    return {
        "PATH": COMMAND_PATH,
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "TZ": settings.timezone,
        "HOME": str(cwd or tempfile.gettempdir()),
    }
