"""What the console says about things that happened, in the user's language: alerts,
validation problems, run errors and probe answers.

factorysync stores and logs these in English (the API, the CLI and the alert channels
use them as they are). The console says them again from what they were made of:

* an alert from its ``rule`` and ``details`` (:func:`alert_message`); the stored English
  message is shown only for a rule the table does not know (a plugin's);
* a validation problem (:class:`factorysync.errors.Problem`) from its pydantic error
  type or factorysync key and their parameters (:func:`problem_text`);
* a run error from the frames factorysync builds (:func:`run_error`).

Only the frame is translated. What comes from outside (a driver's or an upstream
server's text, a path, a value) is kept verbatim and quoted “like this” (:func:`quote`),
never run through a dictionary.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextvars import ContextVar
from typing import Any

from factorysync.errors import Problem
from factorysync.web.i18n import MESSAGES, translator

T = Callable[..., str]
INTERRUPTED = "interrupted: the process running this sync stopped"  # engine.history
_CONNECTION = re.compile(r"connection '((?:[^'\\]|\\.)*)' failed: (.*?)(?=; connection '|$)", re.S)
_DELETE_SKIPPED = re.compile(
    r"^(\d+) record\(s\) could not be read with a key \((.*)\): the delete phase was skipped"
)


def quote(text: object) -> str:
    """Text from outside, verbatim, visibly quoted."""
    return f"“{text}”"


def known(key: str) -> bool:
    return key in MESSAGES


def span(seconds: float, t: T) -> str:
    """``90 s``, ``5 min``, ``3 h``, ``2 d`` in the user's language."""
    s = abs(int(seconds))
    if s < 120:
        return t("unit.s", n=s)
    if s < 7200:
        return t("unit.min", n=s // 60)
    if s < 172800:
        return t("unit.h", n=s // 3600)
    return t("unit.d", n=s // 86400)


# -- alerts ----------------------------------------------------------------------------
def alert_title(alert: Mapping[str, Any], t: T) -> str:
    """The alert's rule as the user reads it (a plugin's rule: its own name)."""
    rule = str(alert.get("rule") or "")
    return t(f"rule.{rule}") if known(f"rule.{rule}") else rule


def alert_message(alert: Mapping[str, Any], t: T) -> str:
    """The alert's message from its rule and details; the stored English message for a
    rule the table does not know, or details that lack what the text needs (an alert
    recorded by an older version)."""
    rule = str(alert.get("rule") or "")
    details = alert.get("details") or {}
    render = _ALERTS.get(rule)
    if render is None or not isinstance(details, Mapping):
        return str(alert.get("message") or "")
    try:
        return render(details, t)
    except (KeyError, TypeError, ValueError, ZeroDivisionError):
        return str(alert.get("message") or "")


def _failures(d: Mapping[str, Any], t: T) -> str:
    if d.get("error"):
        error = run_error(str(d["error"]), t)
        return t("alert.consecutive_failures", n=int(d["failures"]), error=error)
    return t("alert.consecutive_failures_short", n=int(d["failures"]))


def _stale(d: Mapping[str, Any], t: T) -> str:
    quiet = span(d["quiet_s"], t)
    if "expected_s" not in d:
        return t("alert.stale_short", quiet=quiet)
    key = "alert.stale" if d.get("succeeded", True) else "alert.stale_never"
    return t(key, quiet=quiet, every=span(d["expected_s"], t))


def _rejected(d: Mapping[str, Any], t: T) -> str:
    rejected, total = int(d["rejected"]), int(d["total"])
    share = f"{rejected / total:.0%}"
    return t("alert.rejected_rows", run=d["run_id"], rejected=rejected, total=total, share=share)


def _silence(d: Mapping[str, Any], t: T) -> str:
    return t("alert.realtime_silence", quiet=span(d["quiet_s"], t))


def _change(c: Mapping[str, Any], t: T) -> str:
    column = f"{c.get('table')}.{c.get('column')}"
    if c.get("kind") == "added":
        return t("alert.column_added", column=column, type=c.get("new_type"))
    if c.get("kind") == "dropped":
        return t("alert.column_dropped", column=column, type=c.get("old_type"))
    return t("alert.column_changed", column=column, old=c.get("old_type"), new=c.get("new_type"))


def _schema(d: Mapping[str, Any], t: T) -> str:
    changes = list(d["changes"])
    listed = "; ".join(_change(c, t) for c in changes[:5])
    if len(changes) > 5:
        listed = t("alert.schema_more", changes=listed, n=len(changes) - 5)
    refused = any(c.get("refused") for c in changes)
    return t("alert.schema_refused" if refused else "alert.schema_change", changes=listed)


def _spool(d: Mapping[str, Any], t: T) -> str:
    used, most = int(d["used_bytes"]), int(d["max_bytes"])
    share = f"{used / most:.0%}" if most else "100%"
    return t(
        "alert.spool_filling",
        spool=quote(d["spool"]),
        share=share,
        used=f"{used / 2**20:.0f}",
        max=f"{most / 2**20:.0f}",
        n=int(d["messages"]),
    )


_ALERTS: dict[str, Callable[[Mapping[str, Any], T], str]] = {
    "consecutive_failures": _failures,
    "stale": _stale,
    "rejected_rows": _rejected,
    "realtime_silence": _silence,
    "schema_change": _schema,
    "spool_filling": _spool,
}


# -- validation problems ----------------------------------------------------------------
def problem_text(problem: str, t: T) -> str:
    """A 'path: message' problem with the message in the user's language: from its kind
    and parameters when it carries them (the path stays as written: it names a field);
    a problem the table has no text for is left as it is. In English, the problem's own
    text (pydantic's or factorysync's wording, as the API and the CLI give it)."""
    if not isinstance(problem, Problem) or not known(f"problem.{problem.kind}"):
        return str(problem)
    if getattr(t, "language", None) == "en":  # English is what it says already
        return str(problem)
    params: dict[str, Any] = dict(problem.params)
    if "expected" in params:  # pydantic's "'a', 'b' or 'c'"
        params["expected"] = params["expected"].replace(" or ", f" {t('word.or')} ")
    if problem.kind in ("value_error", "assertion_error"):
        params["error"] = quote(problem.message)
    try:
        said = t(f"problem.{problem.kind}", **params)
    except (KeyError, IndexError, ValueError):
        return str(problem)
    return f"{problem.path}: {said}" if problem.path else said


def problem_texts(problems: Iterable[str], t: T) -> list[str]:
    return [problem_text(p, t) for p in problems]


# -- run errors and probe answers ----------------------------------------------------------
def run_error(text: str | None, t: T, limit: int | None = None) -> str:
    """A run's ``error_message`` in the user's language: the frames factorysync builds
    are translated, the connector's or the server's own text is quoted verbatim
    (cut at ``limit`` characters)."""
    if not text:
        return ""

    def outside(part: str) -> str:
        cut = part if limit is None or len(part) <= limit else part[: limit - 1] + "…"
        return quote(cut)

    if text == INTERRUPTED:
        return t("run.interrupted")
    skipped = _DELETE_SKIPPED.match(text)
    if skipped:
        return t("run.delete_skipped", n=skipped.group(1), counts=skipped.group(2))
    failed = _CONNECTION.findall(text)
    if failed and text.startswith("connection '"):
        return "; ".join(
            t("run.connection_failed", name=quote(name), error=outside(error))
            for name, error in failed
        )
    return t("run.error", error=outside(text))


def probe_message(text: str | None, t: T) -> str:
    """A connector's own answer to a test or discovery, quoted under a translated frame."""
    return t("probe.message", text=quote(text)) if text else ""


def reasons_text(reasons: Iterable[str] | None) -> str:
    """A quarantined record's reasons, as stored (the engine's own words), quoted."""
    return "; ".join(quote(r) for r in reasons or [])


# -- words for stored values ----------------------------------------------------------------
def code_word(group: str, value: object, t: T) -> str:
    """``value`` (a stored code: a sync type, a trigger, a status) in the user's words when
    the table has ``group.value``, else as it is (a code of a plugin or a user name)."""
    text = "" if value is None else str(value)
    return t(f"{group}.{text}") if known(f"{group}.{text}") else text


def trigger_text(trigger: str | None, t: T) -> str:
    """Who started a run: ``manual``, ``schedule`` … in words; ``console:ana`` as
    "console: ana" with the user name kept."""
    if not trigger:
        return ""
    origin, sep, who = trigger.partition(":")
    if sep and known(f"trigger.{origin}"):
        return t("trigger.by", origin=t(f"trigger.{origin}"), who=who)
    return code_word("trigger", trigger, t)


_ZONE = re.compile(r"\(([^()]*)\)$")


def cadence_text(cadence: Any, t: T) -> str:
    """How often a source runs (:class:`factorysync.engine.schedule.Cadence`, or its
    dict) in the user's language."""

    def part(name: str) -> Any:
        return cadence.get(name) if isinstance(cadence, Mapping) else getattr(cadence, name, None)

    kind, set_by = part("kind"), str(part("set_by") or "")
    if kind == "subscription":
        return t("cadence.subscription", type=set_by.removesuffix(" subscription"))
    if kind == "push":
        return t("cadence.push")
    if kind == "cron":
        zone = _ZONE.search(str(part("text") or ""))
        return t("cadence.cron", schedule=part("schedule"), zone=zone.group(1) if zone else "")
    if kind == "interval" and part("seconds") is not None:
        by = t("cadence.default") if set_by == "default" else set_by
        return t("cadence.interval", every=span(float(part("seconds")), t), by=by)
    return str(part("text") or "")


# -- labels of source types ---------------------------------------------------------------
# The language of the page being rendered (templating.render sets it): the macros that show
# a type's label are imported without the page's context, so they cannot be handed ``t``.
page_language: ContextVar[str] = ContextVar("page_language", default="en")


class KindLabels(Mapping[str, str]):
    """source_type → its label in the page's language: the table's ``kind_label.<type>``
    when it has one (a label that is a word, not a product name), else the connector's."""

    def __init__(self, labels: Mapping[str, str]) -> None:
        self.labels = labels

    def __getitem__(self, source_type: str) -> str:
        label = self.labels[source_type]
        key = f"kind_label.{source_type}"
        return translator(page_language.get())(key) if known(key) else label

    def __iter__(self) -> Iterator[str]:
        return iter(self.labels)

    def __len__(self) -> int:
        return len(self.labels)


def template_text(template: Mapping[str, Any], part: str, t: T) -> str:
    """A template's ``display_name`` or ``description`` in the user's language: a built-in
    template's from the table (``template.<name>``, ``template.<name>.about``) as long as
    it reads as shipped; an admin's own, or an edited one, as written."""
    stored = str(template.get(part) or "")
    key = f"template.{template.get('template_name')}" + (".about" if part == "description" else "")
    if known(key) and MESSAGES[key][0] == stored:
        return t(key)
    return stored
